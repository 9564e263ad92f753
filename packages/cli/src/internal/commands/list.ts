//! `devref list`: the scenarios and their fault kinds.

import type { Command } from "commander";
import { EXIT } from "../errors.js";
import { type CliContext, Printer } from "../io.js";
import { scenarios } from "../scenarios.js";
import { table } from "../table.js";
import { addJson } from "./common.js";

/** Adds `list` to the program; `done` receives the exit status. */
export function addListCommand(
  program: Command,
  ctx: CliContext,
  done: (status: number) => void,
): void {
  const cmd = program
    .command("list")
    .description("list the scenarios and the faults each can inject");
  addJson(cmd);
  cmd.action(async (flags: { json?: boolean }) => {
    const p = new Printer(ctx.io);
    const all = (await scenarios(ctx.scenarios)).map((s) => ({
      name: s.name,
      description: s.description,
      injections: Object.keys(s.injections),
    }));
    if (flags.json === true) p.json({ scenarios: all });
    else {
      p.line(
        ...table([
          ["scenario", "faults", "what it does"].map((h) => p.c.bold(h)),
          ...all.map((s) => [s.name, s.injections.join(", ") || "-", s.description]),
        ]),
      );
    }
    done(EXIT.ok);
  });
}
