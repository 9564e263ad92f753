// The benchmark harness every package's bench/ uses: runs a measured body and a baseline in
// the same process, reports the best of several rounds in ns per operation, asserts nothing.

export interface BenchResult {
  readonly name: string;
  readonly nsPerOp: number;
}

/** Keeps results observable so the optimiser cannot drop the measured work. */
export let sink = 0;
export function consume(value: number): void {
  sink = (sink + value) | 0;
}

/**
 * Times `body(iterations)` for several rounds after a warm-up and returns the best
 * round's nanoseconds per operation. `body` does `iterations` operations itself, so the
 * loop stays inside the measured code and is compiled with it.
 */
export function measure(
  name: string,
  iterations: number,
  body: (iterations: number) => void,
  rounds = 7,
): BenchResult {
  body(Math.max(1, Math.floor(iterations / 10)));
  let best = Number.POSITIVE_INFINITY;
  for (let r = 0; r < rounds; r++) {
    const start = process.hrtime.bigint();
    body(iterations);
    const elapsed = Number(process.hrtime.bigint() - start);
    best = Math.min(best, elapsed / iterations);
  }
  return { name, nsPerOp: best };
}

/** Prints a measured figure beside its baseline from the same run. */
export function report(
  title: string,
  subject: BenchResult,
  baseline: BenchResult,
  target?: string,
): void {
  const over = subject.nsPerOp - baseline.nsPerOp;
  console.log(title);
  console.log(`  ${subject.name.padEnd(44)} ${subject.nsPerOp.toFixed(2).padStart(9)} ns/op`);
  console.log(
    `  ${`baseline: ${baseline.name}`.padEnd(44)} ${baseline.nsPerOp.toFixed(2).padStart(9)} ns/op`,
  );
  console.log(
    `  ${"difference".padEnd(44)} ${over.toFixed(2).padStart(9)} ns/op` +
      (target === undefined ? "" : `   (target: ${target})`),
  );
}
