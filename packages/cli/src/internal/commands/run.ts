//! `devref run <scenario>`: one run, narrated, with its outcome.

import type { Command } from "commander";
import type { CliContext } from "../io.js";
import { addJson, addRunOptions } from "./common.js";

/** Adds `run` to the program; `done` receives the exit status. */
export function addRunCommand(
  program: Command,
  ctx: CliContext,
  done: (status: number) => void,
): void {
  const cmd = program
    .command("run")
    .description(
      "run a scenario and narrate it: probe, traffic, the device tree with holders, teardown, audit",
    )
    .argument("<scenario>", "scenario name (see `devref list`)");
  addRunOptions(cmd);
  cmd.option("--trace <file>", "write the SoC's trace to <file>, one JSON record per line");
  addJson(cmd);
  cmd.action(async (name: string, flags: import("../actions/run.js").RunFlags) => {
    const { run } = await import("../actions/run.js");
    done(await run(ctx, name, flags));
  });
}
