//! @devref/cli: the `devref` command.

import { readFileSync } from "node:fs";
import { type CliIo, processIo } from "./internal/io.js";
import { runCli } from "./internal/program.js";

export type { CliIo } from "./internal/io.js";

/** The package's version (read from its package.json, one directory up from src/ and dist/). */
function version(): string {
  const text = readFileSync(new URL("../package.json", import.meta.url), "utf8");
  const parsed: unknown = JSON.parse(text);
  return typeof parsed === "object" && parsed !== null && "version" in parsed
    ? String(parsed.version)
    : "0.0.0";
}

/**
 * Runs the `devref` command line `argv` (the arguments after the command name) and resolves
 * to its exit status: 0 ok, 1 a scenario failure found (leak, use after free, an exception
 * other than a DevrefError), 2 an error (one line on stderr naming the errno), 3 a bug.
 *
 * **Invariants:** never throws and never exits the process; output goes through `io`.
 *
 * **Errors:** none thrown: every error is printed and reflected in the status.
 *
 * @example
 * ```ts
 * import { main } from "@devref/cli";
 * process.exitCode = await main(["run", "soc", "--seed", "3"]);
 * ```
 */
export async function main(argv: readonly string[], io: CliIo = processIo()): Promise<number> {
  return runCli(argv, io, version());
}
