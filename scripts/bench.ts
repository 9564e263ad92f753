// The benchmark harness every package's bench/ uses, on tinybench: a measured body and a
// baseline in the same process, each reported as the median nanoseconds per operation with
// its spread, beside the baseline, a target and a verdict (met / not met). It asserts
// nothing: a benchmark prints figures; tests never time anything.
import { Bench } from "tinybench";

/** One measurement: the median and spread of many runs, per operation. */
export interface BenchResult {
  readonly name: string;
  /** Median nanoseconds per operation. */
  readonly nsPerOp: number;
  /** Fastest run's nanoseconds per operation. */
  readonly minNsPerOp: number;
  /** Median absolute deviation, as a fraction of the median. */
  readonly spread: number;
  /** Runs measured. */
  readonly samples: number;
}

/** What a figure should reach; the report prints the verdict. */
export type Target =
  /** At most this many ns per operation. */
  | { readonly atMost: number }
  /** At most this many ns per operation above the same-run baseline. */
  | { readonly aboveBaselineAtMost: number }
  /** At most this many times the baseline. */
  | { readonly timesBaselineAtMost: number }
  /** At least this many operations per second. */
  | { readonly perSecondAtLeast: number };

// module-state: a sink the optimiser cannot see through, so measured work is not dropped.
export let sink = 0;
/** Keeps results observable so the optimiser cannot drop the measured work. */
export function consume(value: number): void {
  sink = (sink + value) | 0;
}

/** How long to measure each body, in ms (a quick mode for smoke runs: DEVREF_BENCH_QUICK=1). */
const TIME_MS = process.env.DEVREF_BENCH_QUICK === "1" ? 40 : 400;

/**
 * Runs `body(iterations)` repeatedly (after a warm-up) for a fixed time and returns the
 * median nanoseconds per operation with its spread. `body` does `iterations` operations
 * itself, so the loop stays inside the measured code and is compiled with it. `before`
 * runs untimed before every run, warm-up runs included (setup that a run undoes).
 * `minRuns` (default 7) is the least number of measured runs; `warmupRuns` (default 16)
 * the least number of warm-up runs, to lower for a body that takes seconds per run.
 */
export function measure(
  name: string,
  iterations: number,
  body: (iterations: number) => void,
  options: {
    readonly before?: () => void;
    readonly minRuns?: number;
    readonly warmupRuns?: number;
  } = {},
): BenchResult {
  const bench = new Bench({
    time: TIME_MS,
    warmupTime: Math.max(20, TIME_MS / 8),
    warmupIterations: options.warmupRuns ?? 16,
    iterations: options.minRuns ?? 7,
    throws: true,
  });
  const before = options.before;
  bench.add(name, () => body(iterations), before === undefined ? {} : { beforeEach: before });
  bench.runSync();
  const result = bench.tasks[0]?.result;
  if (result === undefined || result.state !== "completed") {
    throw new Error(`bench '${name}' did not complete (${result?.state ?? "no result"})`);
  }
  const latency = result.latency;
  const perOp = (ms: number): number => (ms * 1e6) / iterations;
  return {
    name,
    nsPerOp: perOp(latency.p50 ?? latency.mean),
    minNsPerOp: perOp(latency.min),
    spread: latency.p50 ? latency.mad / latency.p50 : 0,
    samples: latency.samplesCount,
  };
}

/** Whether `subject` meets `target` given `baseline`. */
export function verdict(
  subject: BenchResult,
  baseline: BenchResult | null,
  target: Target,
): boolean {
  if ("atMost" in target) return subject.nsPerOp <= target.atMost;
  if ("perSecondAtLeast" in target) return 1e9 / subject.nsPerOp >= target.perSecondAtLeast;
  if (baseline === null) return false;
  if ("aboveBaselineAtMost" in target) {
    return subject.nsPerOp - baseline.nsPerOp <= target.aboveBaselineAtMost;
  }
  return subject.nsPerOp <= baseline.nsPerOp * target.timesBaselineAtMost;
}

/** The target in words. */
export function describeTarget(target: Target): string {
  if ("atMost" in target) return `≤ ${target.atMost} ns`;
  if ("aboveBaselineAtMost" in target) return `≤ ${target.aboveBaselineAtMost} ns above baseline`;
  if ("timesBaselineAtMost" in target) return `≤ ${target.timesBaselineAtMost}× baseline`;
  return `≥ ${formatRate(target.perSecondAtLeast)}/s`;
}

function formatRate(perSecond: number): string {
  if (perSecond >= 1e6) return `${(perSecond / 1e6).toFixed(perSecond >= 1e8 ? 0 : 2)} M`;
  if (perSecond >= 1e3) return `${(perSecond / 1e3).toFixed(1)} k`;
  return perSecond.toFixed(0);
}

function line(label: string, r: BenchResult): string {
  return (
    `  ${label.padEnd(46)} ${r.nsPerOp.toFixed(2).padStart(9)} ns/op  ±${(r.spread * 100).toFixed(0).padStart(2)}%` +
    `  (min ${r.minNsPerOp.toFixed(2)}, ${formatRate(1e9 / r.nsPerOp)}/s)`
  );
}

/**
 * Prints a measured figure beside its baseline from the same run, and, when given, a
 * reference figure (e.g. the kernel's C) and the target with its verdict.
 */
export function report(
  title: string,
  subject: BenchResult,
  baseline: BenchResult | null,
  target?: Target | string,
  reference?: { readonly label: string; readonly nsPerOp: number },
): void {
  console.log(title);
  console.log(line(subject.name, subject));
  if (baseline !== null) {
    console.log(line(`baseline: ${baseline.name}`, baseline));
    const over = subject.nsPerOp - baseline.nsPerOp;
    const times = subject.nsPerOp / baseline.nsPerOp;
    console.log(
      `  ${"difference".padEnd(46)} ${over.toFixed(2).padStart(9)} ns/op  (${times.toFixed(2)}× baseline)`,
    );
  }
  if (reference !== undefined) {
    console.log(
      `  ${`reference: ${reference.label}`.padEnd(46)} ${reference.nsPerOp.toFixed(2).padStart(9)} ns/op  (${(subject.nsPerOp / reference.nsPerOp).toFixed(2)}× reference)`,
    );
  }
  if (typeof target === "string") {
    console.log(`  ${"target".padEnd(46)} ${target} (stated in words: no verdict computed)`);
  } else if (target !== undefined) {
    const met = verdict(subject, baseline, target);
    console.log(`  ${"target".padEnd(46)} ${describeTarget(target)}: ${met ? "met" : "NOT MET"}`);
  }
}
