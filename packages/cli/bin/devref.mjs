#!/usr/bin/env node
// The `devref` command. In a checkout (src/ present) it runs the TypeScript source through
// tsx with the workspace's "@devref/source" export condition, so it needs no build and can
// never run a stale dist/; an installed package (no src/) runs its bundle in dist/.
// DEVREF_CLI_FROM=dist forces the bundle (how the package checks test what gets published).
import { existsSync } from "node:fs";

const source = new URL("../src/index.ts", import.meta.url);
const bundle = new URL("../dist/index.js", import.meta.url);
const fromSource = process.env.DEVREF_CLI_FROM !== "dist" && existsSync(source);

let entry = bundle;
if (fromSource) {
  const { register } = await import("node:module");
  // Registered first, so it runs last in the resolve chain, right before Node's own
  // resolution, whatever tsx passed on.
  register("./source-condition.mjs", import.meta.url);
  const { register: registerTsx } = await import("tsx/esm/api");
  registerTsx();
  entry = source;
} else if (!existsSync(bundle)) {
  process.stderr.write(
    "devref: error ENOENT: neither src/index.ts nor dist/index.js is there; reinstall @devref/cli\n",
  );
  process.exit(2);
}
// A reader that stops early (`devref run soc | head`) is no error: stop writing quietly.
for (const stream of [process.stdout, process.stderr]) {
  stream.on("error", (e) => {
    if (e.code === "EPIPE") process.exit(process.exitCode ?? 0);
    throw e;
  });
}
const { main } = await import(entry.href);
process.exitCode = await main(process.argv.slice(2));
