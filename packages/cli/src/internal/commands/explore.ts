//! `devref explore <scenario>`: the scenario rerun with a fault at every step.

import type { Command } from "commander";
import type { CliContext } from "../io.js";
import { addJson } from "./common.js";

/** Adds `explore` to the program; `done` receives the exit status. */
export function addExploreCommand(
  program: Command,
  ctx: CliContext,
  done: (status: number) => void,
): void {
  const cmd = program
    .command("explore")
    .description(
      "rerun a scenario once per step with a fault injected at that step; exits 1 on any leak, use after free or exception other than a DevrefError",
    )
    .argument("<scenario>", "scenario name (see `devref list`)")
    .option("--seed <n>", "seed of every run", "1")
    .option(
      "--kinds <list>",
      "comma-separated fault kinds to inject at each step: unplug, crash (rtkit-crash), iommu-fault, ... (default: unplug, or every kind the scenario has when it has no unplug)",
    )
    .option("--from <step>", "first step to explore (default 1)")
    .option("--to <step>", "last step to explore (default: the last step of the clean run)")
    .option("--no-progress", "no progress bar, even on a terminal");
  addJson(cmd);
  cmd.action(async (name: string, flags: import("../actions/explore.js").ExploreFlags) => {
    const { exploreCommand } = await import("../actions/explore.js");
    done(await exploreCommand(ctx, name, flags));
  });
}
