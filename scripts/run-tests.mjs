// `pnpm test`: runs every package's tests (runtime and type tests) in one vitest run and
// closes with the line "N passed, N failed". Fails when a test fails or none ran.
// Extra arguments go to vitest (for example `pnpm test --project raw-device`).
import { spawnSync } from "node:child_process";
import { existsSync, readFileSync, rmSync } from "node:fs";
import { join } from "node:path";

const results = join(process.cwd(), ".vitest-results.json");
rmSync(results, { force: true });
const vitest = join(import.meta.dirname, "..", "node_modules", "vitest", "vitest.mjs");
const run = spawnSync(
  process.execPath,
  [
    vitest,
    "run",
    "--reporter=default",
    "--reporter=json",
    `--outputFile.json=${results}`,
    ...process.argv.slice(2),
  ],
  { stdio: "inherit" },
);

let passed = 0;
let failed = 0;
let skipped = 0;
if (existsSync(results)) {
  const report = JSON.parse(readFileSync(results, "utf8"));
  passed = report.numPassedTests ?? 0;
  failed = (report.numFailedTests ?? 0) + (report.numFailedTestSuites ?? 0);
  skipped = (report.numPendingTests ?? 0) + (report.numTodoTests ?? 0);
} else {
  failed = 1;
  console.error("vitest wrote no results: it crashed before running tests");
}
console.log(`${passed} passed, ${failed} failed${skipped > 0 ? `, ${skipped} skipped` : ""}`);
if (run.status !== 0 || failed > 0 || passed === 0) process.exit(1);
