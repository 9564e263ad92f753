// devres and Revocable costs, with same-run baselines. Prints figures; asserts nothing.
import { createDevice, type Device, Devres, Revocable, setLogSink } from "@devref/device-core";
import { Binding, DeviceScope, deviceStateOf, devresReleaseAll } from "@devref/device-core/unsafe";
import type { Borrowed, Core } from "@devref/raw-device";
import { CONTEXT_CORE } from "@devref/raw-device/unsafe";

setLogSink(() => {});
const ms = (t0: number): number => performance.now() - t0;
const row = (name: string, t: number, n: number): void => {
  console.log(
    `  ${name.padEnd(46)} ${t.toFixed(1).padStart(8)} ms  ${((t * 1e6) / n).toFixed(1).padStart(7)} ns/op`,
  );
};

// A device bound by hand, as a bus would, to get a Core borrow.
const dev = createDevice({ name: "bench0", release: () => {} });
const st = deviceStateOf(dev);
st.binding = new Binding("bench", {});
const scope = new DeviceScope(CONTEXT_CORE);
// SAFETY: the bench plays the bus: the binding exists while the borrow is used.
const core = scope.borrow(st, st.Handle) as unknown as Borrowed<Device<Core>, never>;

const N = 100_000;
const R = 10_000_000;
let sink = 0;

console.log("@devref/device-core");
for (let round = 0; round < 2; round++) {
  const last = round === 1;
  let t0 = performance.now();
  for (let i = 0; i < N; i++) core.devmAddAction(() => {}, "a");
  const add = ms(t0);
  t0 = performance.now();
  devresReleaseAll(st);
  const rel = ms(t0);
  t0 = performance.now();
  const plain: (() => void)[] = [];
  for (let i = 0; i < N; i++) plain.push(() => {});
  for (let i = plain.length - 1; i >= 0; i--) plain[i]!();
  const base = ms(t0);
  if (last) {
    row(`devmAddAction × ${N}`, add, N);
    row(`devres_release_all of ${N}`, rel, N);
    row("baseline: push + run closures in an array", base, N);
  }

  const r = new Revocable({ v: 1 });
  const d = new Devres(core, { v: 1 });
  const o = { v: 1 };
  t0 = performance.now();
  for (let i = 0; i < R; i++) sink += r.tryAccess()!.v;
  const rev = ms(t0);
  t0 = performance.now();
  for (let i = 0; i < R; i++) sink += d.access(core).v;
  const acc = ms(t0);
  t0 = performance.now();
  for (let i = 0; i < R; i++) sink += o.v;
  const field = ms(t0);
  d.revoke();
  if (last) {
    row(`Revocable.tryAccess × ${R}`, rev, R);
    row(`Devres.access(boundDev) × ${R}`, acc, R);
    row("baseline: plain property read", field, R);
  }
}
scope.close();
st.binding = null;
dev.put();
if (sink === -1) console.log(sink);
