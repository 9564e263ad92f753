// The published package runs from dist/ alone: the launcher is forced onto the bundle (the
// example drivers are inside it) and the main job must run clean.
import { execFileSync } from "node:child_process";
import { existsSync } from "node:fs";
import { fileURLToPath } from "node:url";

const bin = fileURLToPath(new URL("../bin/devref.mjs", import.meta.url));
if (!existsSync(new URL("../dist/index.js", import.meta.url))) {
  console.error("smoke-dist: dist/index.js is missing: run the build first");
  process.exit(1);
}
const run = (...args) =>
  execFileSync(process.execPath, [bin, ...args], {
    env: { ...process.env, DEVREF_CLI_FROM: "dist", NO_COLOR: "1" },
    encoding: "utf8",
  });
const list = JSON.parse(run("list", "--json"));
const names = list.scenarios.map((s) => s.name);
if (!names.includes("soc")) throw new Error(`smoke-dist: no soc scenario in ${names.join(", ")}`);
const soc = JSON.parse(run("run", "soc", "--json"));
if (soc.outcome.failed)
  throw new Error(`smoke-dist: devref run soc failed: ${JSON.stringify(soc.outcome)}`);
console.log(
  `smoke-dist: dist/ runs ${names.join(", ")}; devref run soc: ${soc.outcome.result}, ${soc.outcome.steps} steps`,
);
