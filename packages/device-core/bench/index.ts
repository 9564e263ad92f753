// pnpm bench: devres and Revocable costs, each beside a same-run baseline, with its target as
// data. Prints figures; asserts nothing.
import { createDevice, type Device, Devres, Revocable, setLogSink } from "@devref/device-core";
import { Binding, DeviceScope, deviceStateOf, devresReleaseAll } from "@devref/device-core/unsafe";
import type { Borrowed, Core } from "@devref/raw-device";
import { CONTEXT_CORE } from "@devref/raw-device/unsafe";
import { consume, measure, report } from "../../../scripts/bench.js";

setLogSink(() => {});

// A device bound by hand, as a bus would, to get a Core borrow.
const dev = createDevice({ name: "bench0", release: () => {} });
const st = deviceStateOf(dev);
st.binding = new Binding("bench", {});
const scope = new DeviceScope(CONTEXT_CORE);
// SAFETY: the bench plays the bus: the binding exists while the borrow is used.
const core = scope.borrow(st, st.Handle) as unknown as Borrowed<Device<Core>, never>;

const N = 100_000;
const R = 10_000_000;
const noop = (): void => {};

console.log("@devref/device-core bench");

// devm_add_action: a closure registered on the bound device; the list is emptied and the
// garbage collected untimed before each run (both paths), so every run starts from the same
// heap and pays only for what it allocates itself. Target: registration checks its arguments and the binding, takes a
// device reference and links one node beside the closure: a few times the bare push.
const add = measure(
  `devmAddAction, ${N} per run`,
  N,
  (n) => {
    for (let i = 0; i < n; i++) core.devmAddAction(() => {}, "a");
  },
  {
    before: () => {
      devresReleaseAll(st);
      globalThis.gc?.();
    },
  },
);
let closures: (() => void)[] = [];
const push = measure(
  `push a closure into an array, ${N} per run`,
  N,
  (n) => {
    for (let i = 0; i < n; i++) closures.push(() => {});
  },
  {
    before: () => {
      closures = [];
      globalThis.gc?.();
    },
  },
);
report("devm_add_action (ns per action)", add, push, { timesBaselineAtMost: 3 });
devresReleaseAll(st);
closures = [];

// devres_release_all: N actions registered untimed, then released newest first. The bare
// loop's call is inlined, so the target is in ns: per node one call through the node that
// cannot be inlined and the device reference dropped (raw-device's get + put pair is allowed
// 5 ns above its baseline), so at most 10 ns above the bare loop.
const release = measure(
  `devres_release_all of ${N}`,
  N,
  () => {
    consume(devresReleaseAll(st));
  },
  {
    before: () => {
      for (let i = 0; i < N; i++) core.devmAddAction(noop, "a");
    },
  },
);
// The baseline reads each closure, clears its slot and calls it, as the release loop does with
// a node; the slots are refilled untimed.
const slots: ((() => void) | null)[] = new Array(N).fill(null);
const runAll = measure(
  `run ${N} closures of an array, last first`,
  N,
  (n) => {
    for (let i = n - 1; i >= 0; i--) {
      const run = slots[i]!;
      slots[i] = null;
      run();
    }
  },
  { before: () => slots.fill(noop) },
);
report("devres_release_all (ns per action)", release, runAll, { aboveBaselineAtMost: 10 });

// Access through a Revocable and a Devres. Target: Revocable.tryAccess tests one flag before
// the read, the same cost as a checked borrow read in @devref/raw-device (≤ 1.5 ns above the
// plain read); Devres.access(dev) also proves the device is the resource's own (its fast path
// for a Bound borrow), allowed twice that.
const revocable = new Revocable({ v: 1 });
const devres = new Devres(core, { v: 1 });
const object = { v: 1 };
const tryAccess = measure("Revocable.tryAccess()", R, (n) => {
  let s = 0;
  for (let i = 0; i < n; i++) s = (s + revocable.tryAccess()!.v) | 0;
  consume(s);
});
const access = measure("Devres.access(boundDev)", R, (n) => {
  let s = 0;
  for (let i = 0; i < n; i++) s = (s + devres.access(core).v) | 0;
  consume(s);
});
const field = measure("plain property read", R, (n) => {
  let s = 0;
  for (let i = 0; i < n; i++) s = (s + object.v) | 0;
  consume(s);
});
report("Revocable.tryAccess (ns per access)", tryAccess, field, { aboveBaselineAtMost: 1.5 });
report("Devres.access with a Bound borrow (ns per access)", access, field, {
  aboveBaselineAtMost: 3,
});

devres.revoke();
scope.close();
st.binding = null;
dev.put();
