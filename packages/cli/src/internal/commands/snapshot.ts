//! `devref tree` and `devref holders`: the machine of a scenario at a step.

import type { Command } from "commander";
import type { CliContext } from "../io.js";
import { addJson, addRunOptions } from "./common.js";

/** Adds `tree` and `holders` to the program; `done` receives the exit status. */
export function addSnapshotCommands(
  program: Command,
  ctx: CliContext,
  done: (status: number) => void,
): void {
  const about: Record<"tree" | "holders", string> = {
    tree: "the device tree of a scenario's machine at a step, like `tree /sys/devices`",
    holders: "every device of a scenario's machine at a step, with its count and who holds it",
  };
  for (const what of ["tree", "holders"] as const) {
    const cmd = program
      .command(what)
      .description(about[what])
      .argument("<scenario>", "scenario name (see `devref list`)")
      .option(
        "--step <n>",
        "just before this step runs (default: the scenario's own point, every driver bound and the traffic done)",
      );
    addRunOptions(cmd);
    addJson(cmd);
    cmd.action(async (name: string, flags: import("../actions/snapshot.js").SnapshotFlags) => {
      const { snapshotCommand } = await import("../actions/snapshot.js");
      done(await snapshotCommand(ctx, what, name, flags));
    });
  }
}
