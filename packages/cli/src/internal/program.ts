//! The command line: commander's program with every command, and how its errors end.

import { Command, CommanderError } from "commander";
import { addExploreCommand } from "./commands/explore.js";
import { addListCommand } from "./commands/list.js";
import { addPgtableCommands } from "./commands/pgtable.js";
import { addRtkitCommands } from "./commands/rtkit.js";
import { addRunCommand } from "./commands/run.js";
import { addSnapshotCommands } from "./commands/snapshot.js";
import { describeError, EXIT } from "./errors.js";
import type { CliContext, CliIo } from "./io.js";
import { BUILTIN_SCENARIOS, type ScenarioRegistry } from "./scenarios.js";

/** Builds the `devref` program; `done` receives the exit status of the command that ran. */
export function createProgram(
  ctx: CliContext,
  version: string,
  done: (status: number) => void,
): Command {
  const io = ctx.io;
  const program = new Command("devref")
    .description(
      "Run the example drivers on the simulated SoC, explore a fault at every step, show the device tree and holders, and decode page tables and RTKit traces.",
    )
    .version(version, "-V, --version", "print the version")
    .helpOption("-h, --help", "show help for a command")
    .addHelpCommand("help [command]", "show help for a command")
    .exitOverride()
    .configureOutput({
      writeOut: (s) => io.out(s),
      writeErr: (s) => io.err(s),
      // Errors are printed by main(), one line each, the same way as every other error.
      outputError: () => {},
    })
    .showSuggestionAfterError(true);
  addRunCommand(program, ctx, done);
  addExploreCommand(program, ctx, done);
  addSnapshotCommands(program, ctx, done);
  addPgtableCommands(program, ctx, done);
  addRtkitCommands(program, ctx, done);
  addListCommand(program, ctx, done);
  program.addHelpText(
    "after",
    `
Examples:
  devref run soc                         the main job: every driver on one SoC, narrated
  devref run virtio-blk --unplug-at 120  pull the disk just before step 120
  devref explore soc --kinds unplug,crash --from 1 --to 200
  devref tree soc --step 300             the device tree just before step 300
  devref pgtable decode ram.bin --format apple-dart2 --base 0x800000000 --ttbr 0x800004000
  devref rtkit decode trace.jsonl        (a trace from devref run soc --trace trace.jsonl)

Exit status: 0 ok; 1 a run or exploration found a leak, a use after free or an exception
other than a DevrefError; 2 the command could not do its job (the error line names the errno).`,
  );
  return program;
}

/** How a commander error ends the command: help and version are no errors. */
export function commanderExit(e: CommanderError, io: CliIo, json: boolean): number {
  if (e.code === "commander.helpDisplayed" || e.code === "commander.version") return EXIT.ok;
  if (e.code === "commander.help") return e.exitCode === 0 ? EXIT.ok : EXIT.error;
  const message = e.message.replace(/^error:\s*/, "");
  printError(io, json, { code: "EINVAL", message: `${message} (see devref --help)` });
  return EXIT.error;
}

/** Prints an error: one line on stderr, or with `--json` one JSON object on stdout. */
export function printError(
  io: CliIo,
  json: boolean,
  e: { readonly code: string; readonly message: string },
): void {
  if (json) io.out(`${JSON.stringify({ error: { code: e.code, message: e.message } })}\n`);
  else io.err(`devref: ${e.code}: ${e.message}\n`);
}

/** Runs the command line `argv` (without node and the script); resolves to the exit status. */
export async function runCli(
  argv: readonly string[],
  io: CliIo,
  version: string,
  scenarios: ScenarioRegistry = BUILTIN_SCENARIOS,
): Promise<number> {
  let status: number = EXIT.ok;
  const json = argv.includes("--json");
  const program = createProgram({ io, scenarios }, version, (s) => {
    status = s;
  });
  try {
    await program.parseAsync([...argv], { from: "user" });
    return status;
  } catch (e) {
    if (e instanceof CommanderError) return commanderExit(e, io, json);
    const d = describeError(e);
    if (d.devref) {
      printError(io, json, d);
      return EXIT.error;
    }
    printError(io, json, {
      code: d.code,
      message: `${d.message} (an exception other than a DevrefError: a bug in devref)`,
    });
    return EXIT.internal;
  }
}
