// pnpm bench: register + bind + unbind + release of 100k platform devices, in ns per device,
// beside a same-run baseline: the same number of plain objects created, indexed in Maps,
// linked and dropped. A run takes seconds, so it is measured few times; the per-phase
// breakdown is the median of each phase over the measured runs. Prints figures; asserts
// nothing about time.
import { definePlatformDriver, PlatformBus, type PlatformDevice } from "@devref/bus";
import { auditDevices, Machine } from "@devref/device-core";
import type { ARef } from "@devref/raw-device";
import { measure, report } from "../../../scripts/bench.js";

const N = 100_000;
/** One warm-up run and at least three measured runs: each run is 100k devices. */
const HEAVY = { minRuns: 3, warmupRuns: 1 } as const;
const PHASES = [
  "register (device_add)",
  "bind (driver_attach → probe)",
  "unbind (driver_detach → remove, devres)",
  "release (device_del + last put)",
] as const;

/** One run's world: made untimed before the run, so a run measures the four phases only. */
function makeWorld() {
  const machine = new Machine({ name: "bench", logSink: () => {} });
  const bus = new PlatformBus({ machine });
  const driver = definePlatformDriver({
    name: "bench",
    ofMatchTable: [{ compatible: "bench,dev" }],
    probe: (dev) => {
      dev.devmAddAction(() => {}, "clk");
      return { id: 1 };
    },
    remove: () => {},
  });
  return { machine, bus, driver };
}

// Collecting the last run's garbage before each run (untimed, both paths) starts every run
// from the same heap; the garbage a run makes itself stays in its time.
const collect = (): void => globalThis.gc?.();

let world = makeWorld();
const devs: ARef<PlatformDevice>[] = new Array(N);
/** Milliseconds of each phase, one entry per run (warm-up included). */
const phaseMs: number[][] = PHASES.map(() => []);

const model = measure(
  "driver model: PlatformBus + platform driver",
  N,
  (n) => {
    const { bus, driver } = world;
    const t0 = performance.now();
    for (let i = 0; i < n; i++) {
      devs[i] = bus.register({ name: "bench", id: i, compatible: ["bench,dev"] });
    }
    const t1 = performance.now();
    bus.registerDriver(driver);
    const t2 = performance.now();
    bus.unregisterDriver(driver);
    const t3 = performance.now();
    for (let i = 0; i < n; i++) bus.unregister(devs[i]!);
    const t4 = performance.now();
    phaseMs[0]!.push(t1 - t0);
    phaseMs[1]!.push(t2 - t1);
    phaseMs[2]!.push(t3 - t2);
    phaseMs[3]!.push(t4 - t3);
  },
  {
    ...HEAVY,
    before: () => {
      world = makeWorld();
      collect();
    },
  },
);

interface PlainDevice {
  name: string;
  refs: number;
  driver: string | null;
  data: unknown;
  res: (() => void)[];
}

const baseline = measure(
  "plain objects in Maps, same steps",
  N,
  (n) => {
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
  },
  { ...HEAVY, before: collect },
);

const median = (xs: readonly number[]): number => {
  const s = [...xs].sort((a, b) => a - b);
  const mid = s.length >> 1;
  return s.length % 2 === 1 ? s[mid]! : (s[mid - 1]! + s[mid]!) / 2;
};

report(
  `@devref/bus: register + bind + unbind + release of ${N.toLocaleString("en-US")} platform devices (ns per device)`,
  model,
  baseline,
  { timesBaselineAtMost: 4 },
);
console.log(`  phases, median of ${model.samples} measured runs:`);
let total = 0;
for (let p = 0; p < PHASES.length; p++) {
  // The last `samples` entries are the measured runs; those before them were warm-up.
  const ms = median(phaseMs[p]!.slice(-model.samples));
  total += ms;
  console.log(
    `    ${PHASES[p]!.padEnd(42)} ${ms.toFixed(1).padStart(8)} ms  ${((ms * 1e6) / N).toFixed(0).padStart(6)} ns/device`,
  );
}
console.log(
  `    ${"sum of the phase medians".padEnd(42)} ${total.toFixed(1).padStart(8)} ms  ${((total * 1e6) / N).toFixed(0).padStart(6)} ns/device`,
);
console.log(`  devices left after the last run: ${auditDevices(world.machine).length}`);
