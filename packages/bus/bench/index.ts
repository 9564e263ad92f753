// register + bind + unbind + release of 100k platform devices, with a same-run baseline:
// the same number of plain objects created, indexed in Maps, linked and dropped.
// Prints figures; asserts nothing about time.
import { definePlatformDriver, PlatformBus, type PlatformDevice } from "@devref/bus";
import { auditDevices, Machine } from "@devref/device-core";
import type { ARef } from "@devref/raw-device";

const N = 100_000;

const ms = (t0: number): number => performance.now() - t0;
const fmt = (t: number): string => `${t.toFixed(1).padStart(8)} ms`;
const per = (t: number): string => `${((t * 1e6) / N).toFixed(0).padStart(6)} ns/device`;

function runDriverModel(
  n: number,
  label: string,
): { phases: [string, number][]; machine: Machine } {
  const machine = new Machine({ name: `bench-${label}`, logSink: () => {} });
  const bus = new PlatformBus({ machine });
  const drv = definePlatformDriver({
    name: `bench-${label}`,
    ofMatchTable: [{ compatible: "bench,dev" }],
    probe: (dev) => {
      dev.devmAddAction(() => {}, "clk");
      return { id: 1 };
    },
    remove: () => {},
  });
  const devs: ARef<PlatformDevice>[] = new Array(n);
  const phases: [string, number][] = [];
  let t0 = performance.now();
  for (let i = 0; i < n; i++) {
    devs[i] = bus.register({ name: "bench", id: i, compatible: ["bench,dev"] });
  }
  phases.push(["register (device_add)", ms(t0)]);
  t0 = performance.now();
  bus.registerDriver(drv);
  phases.push(["bind (driver_attach → probe)", ms(t0)]);
  t0 = performance.now();
  bus.unregisterDriver(drv);
  phases.push(["unbind (driver_detach → remove, devres)", ms(t0)]);
  t0 = performance.now();
  for (let i = 0; i < n; i++) bus.unregister(devs[i]!);
  phases.push(["release (device_del + last put)", ms(t0)]);
  return { phases, machine };
}

interface PlainDevice {
  name: string;
  refs: number;
  driver: string | null;
  data: unknown;
  res: (() => void)[];
}

function runBaseline(n: number): number {
  const t0 = performance.now();
  const byName = new Map<string, PlainDevice>();
  const bound = new Map<PlainDevice, unknown>();
  for (let i = 0; i < n; i++) {
    const d: PlainDevice = { name: `bench.${i}`, refs: 2, driver: null, data: null, res: [] };
    byName.set(d.name, d);
  }
  for (const d of byName.values()) {
    d.driver = "plain";
    d.res.push(() => {});
    d.data = { id: 1 };
    bound.set(d, d.data);
  }
  for (const d of byName.values()) {
    for (let j = d.res.length - 1; j >= 0; j--) d.res[j]!();
    d.res.length = 0;
    d.driver = null;
    bound.delete(d);
  }
  for (const d of [...byName.values()]) {
    d.refs -= 2;
    byName.delete(d.name);
  }
  return ms(t0);
}

// Warm up both paths so the figures compare compiled code.
runDriverModel(10_000, "warmup");
runBaseline(10_000);

const { phases, machine } = runDriverModel(N, "run");
const baseline = runBaseline(N);
const total = phases.reduce((s, [, t]) => s + t, 0);

console.log(`@devref/bus: ${N.toLocaleString("en-US")} platform devices`);
for (const [name, t] of phases) console.log(`  ${name.padEnd(42)} ${fmt(t)}  ${per(t)}`);
console.log(`  ${"total".padEnd(42)} ${fmt(total)}  ${per(total)}  (target ≤ 2000 ms)`);
console.log(
  `  ${"baseline: plain objects in Maps, same steps".padEnd(42)} ${fmt(baseline)}  ${per(baseline)}`,
);
console.log(`  ratio to baseline: ${(total / baseline).toFixed(1)}×`);
const left = auditDevices(machine).length;
console.log(`  devices left after the run: ${left}`);
