//! `devref run <scenario>`: one run, narrated, with its outcome.

import { writeFile } from "node:fs/promises";
import { DevrefError } from "@devref/raw-device";
import { outcomeFailed, type ScenarioOptions, type TraceRecord } from "@devref/sim";
import { type FaultFlags, faultsJson, faultsOf, seedOf } from "../commands/common.js";
import { EXIT, fileError } from "../errors.js";
import { type CliContext, Printer } from "../io.js";
import { outcomeJson, printOutcome } from "../outcome.js";
import { findScenario } from "../scenarios.js";

export interface RunFlags extends FaultFlags {
  readonly trace?: string;
}

/** Runs `devref run`. */
export async function run(ctx: CliContext, name: string, flags: RunFlags): Promise<number> {
  const scenario = await findScenario(ctx.scenarios, name);
  const seed = seedOf(flags);
  const faults = faultsOf(scenario, flags);
  const p = new Printer(ctx.io);
  const json = flags.json === true;
  const narration: string[] = [];
  // Filled by the run's callback: a holder, so the type is not narrowed to its initial null.
  const got: { trace: readonly TraceRecord[] | null } = { trace: null };
  if (!json) {
    const extra = faults.map((f) => `, ${f.spec.kind} at step ${"step" in f.at ? f.at.step : "?"}`);
    p.line(p.c.bold(`devref run ${scenario.name}`) + p.c.dim(` (seed ${seed}${extra.join("")})`));
    p.line(p.c.dim(scenario.description), "");
  }
  const options: ScenarioOptions = {
    seed,
    faults,
    narrate: (line) => {
      narration.push(line);
      if (!json) p.line(line);
    },
    ...(flags.trace === undefined
      ? {}
      : {
          trace: "full" as const,
          onTrace: (records: readonly TraceRecord[]) => {
            got.trace = records;
          },
        }),
  };
  const outcome = await scenario.run(options);
  if (flags.trace !== undefined) {
    const records = got.trace;
    if (records === null) {
      throw new DevrefError(
        "EOPNOTSUPP",
        `scenario '${scenario.name}' hands over no trace (it does not finish a ScenarioObserver): nothing was written to ${flags.trace}`,
      );
    }
    await writeText(
      flags.trace,
      records.map((r) => JSON.stringify(r)).join("\n") + (records.length > 0 ? "\n" : ""),
    );
    if (!json) p.line("", p.c.dim(`trace: ${records.length} records written to ${flags.trace}`));
  }
  if (json) {
    p.json({
      scenario: scenario.name,
      seed,
      faults: faultsJson(faults),
      narration,
      outcome: outcomeJson(outcome),
      ...(flags.trace === undefined
        ? {}
        : { trace: { file: flags.trace, records: got.trace?.length ?? 0 } }),
    });
  } else {
    p.line("");
    printOutcome(p, outcome);
  }
  return outcomeFailed(outcome) ? EXIT.failed : EXIT.ok;
}

/** Writes a file; a failure is a DevrefError naming the file. */
export async function writeText(file: string, text: string): Promise<void> {
  try {
    await writeFile(file, text);
  } catch (e) {
    throw fileError("write", file, e);
  }
}
