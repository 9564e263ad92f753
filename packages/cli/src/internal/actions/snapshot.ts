//! `devref tree` and `devref holders`: the machine of a scenario at a step.

import { DevrefError } from "@devref/raw-device";
import type { ScenarioSnapshot } from "@devref/sim";
import { type FaultFlags, faultsJson, faultsOf, seedOf } from "../commands/common.js";
import { EXIT } from "../errors.js";
import { type CliContext, Printer } from "../io.js";
import { parseNumber } from "../numbers.js";
import { formatTime } from "../outcome.js";
import { findScenario } from "../scenarios.js";
import { table } from "../table.js";

export interface SnapshotFlags extends FaultFlags {
  readonly step?: string;
}

export type What = "tree" | "holders";

/** Runs `devref tree` or `devref holders`. */
export async function snapshotCommand(
  ctx: CliContext,
  what: What,
  name: string,
  flags: SnapshotFlags,
): Promise<number> {
  const scenario = await findScenario(ctx.scenarios, name);
  const seed = seedOf(flags);
  const faults = faultsOf(scenario, flags);
  const step = flags.step === undefined ? undefined : parseNumber("--step", flags.step, 1);
  // Filled by the run's callback: a holder, so the type is not narrowed to its initial null.
  const got: { snapshot: ScenarioSnapshot | null } = { snapshot: null };
  const outcome = await scenario.run({
    seed,
    faults,
    snapshot: {
      ...(step === undefined ? {} : { step }),
      take: (s) => {
        got.snapshot = s;
      },
    },
  });
  const s = got.snapshot;
  if (s === null) {
    throw new DevrefError(
      "EOPNOTSUPP",
      `scenario '${scenario.name}' took no snapshot (it does not use a ScenarioObserver): it cannot show its machine at a step`,
    );
  }
  const p = new Printer(ctx.io);
  if (flags.json === true) {
    p.json({
      scenario: scenario.name,
      seed,
      faults: faultsJson(faults),
      at: s.at,
      step: s.step,
      timeNs: s.timeNs,
      ...(what === "tree" ? { tree: s.tree } : {}),
      devices: s.devices,
      runSteps: outcome.steps,
    });
    return EXIT.ok;
  }
  const where =
    s.at === "step"
      ? `just before step ${s.step}`
      : s.at === "scenario"
        ? `at step ${s.step}, every driver bound and the traffic done`
        : `after the end of the run (step ${s.step}): the run has ${outcome.steps} steps`;
  p.line(
    p.c.bold(`${scenario.name} ${where}`) + p.c.dim(` (seed ${seed}, ${formatTime(s.timeNs)})`),
  );
  if (what === "tree") {
    p.line(...s.tree.split("\n"));
    return EXIT.ok;
  }
  if (s.devices.length === 0) {
    p.line("(no devices)");
    return EXIT.ok;
  }
  const rows = s.devices.map((d) => [
    d.name,
    String(d.refcount),
    d.lifecycle,
    d.holders.join(", ") || "no owned references",
  ]);
  p.line(...table([["device", "refs", "state", "holders"], ...rows], [1]));
  return EXIT.ok;
}
