// `pnpm test`: runs every package's and example's tests (runtime and type tests) in one
// vitest run, which closes with the line "N passed, N failed" (scripts/count-reporter.mjs).
// Fails when a test fails or none ran. Extra arguments go to vitest (for example
// `pnpm test --project raw-device`).
//
// vitest warns that type tests are experimental once per project that has them; the
// warning is passed on once, the repeats are dropped.
import { spawn } from "node:child_process";
import { existsSync, mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { createInterface } from "node:readline";

const root = join(import.meta.dirname, "..");
const dir = mkdtempSync(join(tmpdir(), "devref-test-"));
const counts = join(dir, "counts");
const vitest = join(root, "node_modules", "vitest", "vitest.mjs");
const child = spawn(
  process.execPath,
  [
    vitest,
    "run",
    "--reporter=default",
    `--reporter=${join(root, "scripts", "count-reporter.mjs")}`,
    ...process.argv.slice(2),
  ],
  { stdio: ["inherit", "inherit", "pipe"], env: { ...process.env, DEVREF_TEST_COUNTS: counts } },
);

const BANNER = /Testing types with tsc and vue-tsc is an experimental feature/;
let banners = 0;
let skipNext = false;
createInterface({ input: child.stderr, crlfDelay: Number.POSITIVE_INFINITY }).on("line", (line) => {
  if (skipNext) {
    // The banner's second line ("Breaking changes might not follow SemVer, ...").
    skipNext = false;
    if (/Breaking changes might not follow SemVer/.test(line)) return;
  }
  if (BANNER.test(line)) {
    banners++;
    if (banners > 1) {
      skipNext = true;
      return;
    }
  }
  process.stderr.write(`${line}\n`);
});

child.on("close", (status) => {
  const reported = existsSync(counts);
  rmSync(dir, { recursive: true, force: true });
  if (!reported) {
    // vitest stopped before its reporters ran (a startup or configuration error).
    console.log("0 passed, 1 failed");
    process.exit(1);
  }
  process.exit(status ?? 1);
});
