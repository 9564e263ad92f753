// Runs a package's benchmark: bundles bench/index.ts against the packages' TypeScript
// source and runs the bundle in a fresh Node. Bundling, rather than a run-time loader,
// keeps the measured code as a user's build would emit it (loaders that preserve
// function names slow down subclass construction several-fold in V8).
import { execFileSync } from "node:child_process";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { build } from "esbuild";

const entry = resolve(process.argv[2] ?? "bench/index.ts");
const dir = mkdtempSync(join(tmpdir(), "devref-bench-"));
const outfile = join(dir, "bench.mjs");
try {
  await build({
    entryPoints: [entry],
    bundle: true,
    platform: "node",
    format: "esm",
    target: "node20",
    conditions: ["@devref/source"],
    outfile,
    logLevel: "warning",
  });
  execFileSync(process.execPath, ["--expose-gc", outfile, ...process.argv.slice(3)], {
    stdio: "inherit",
  });
} finally {
  rmSync(dir, { recursive: true, force: true });
}
