//! `devref rtkit decode <trace>`: every mailbox message of a trace, named.

import type { Command } from "commander";
import type { CliContext } from "../io.js";
import { addJson } from "./common.js";

/** Adds `rtkit decode` to the program; `done` receives the exit status. */
export function addRtkitCommands(
  program: Command,
  ctx: CliContext,
  done: (status: number) => void,
): void {
  const group = program.command("rtkit").description("Apple RTKit mailbox messages");
  const cmd = group
    .command("decode")
    .description(
      "name every mailbox message of a trace: the SoC's JSON trace (`devref run --trace`, its `mbox` records) or text lines `<ep> <msg0> [to-ap|to-iop]`",
    )
    .argument("<trace>", "trace file");
  addJson(cmd);
  cmd.action(async (file: string, flags: import("../actions/rtkit.js").RtkitFlags) => {
    const { rtkitDecode } = await import("../actions/rtkit.js");
    done(await rtkitDecode(ctx, file, flags));
  });
}
