// `pnpm test`: runs every package's and example's tests (runtime and type tests) in one
// vitest run, which closes with the line "N passed, N failed" (scripts/count-reporter.mjs).
// Fails when a test fails or none ran. Extra arguments go to vitest (for example
// `pnpm test --project raw-device`).
import { spawnSync } from "node:child_process";
import { existsSync, mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";

const root = join(import.meta.dirname, "..");
const dir = mkdtempSync(join(tmpdir(), "devref-test-"));
const counts = join(dir, "counts");
const vitest = join(root, "node_modules", "vitest", "vitest.mjs");
const run = spawnSync(
  process.execPath,
  [
    vitest,
    "run",
    "--reporter=default",
    `--reporter=${join(root, "scripts", "count-reporter.mjs")}`,
    ...process.argv.slice(2),
  ],
  { stdio: "inherit", env: { ...process.env, DEVREF_TEST_COUNTS: counts } },
);
const reported = existsSync(counts);
rmSync(dir, { recursive: true, force: true });
if (!reported) {
  // vitest stopped before its reporters ran (a startup or configuration error).
  console.log("0 passed, 1 failed");
  process.exit(1);
}
process.exit(run.status ?? 1);
