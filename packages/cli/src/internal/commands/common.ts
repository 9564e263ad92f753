//! Options several commands share: the seed and the faults at steps.

import type { Scenario, ScenarioFault } from "@devref/sim";
import type { Command } from "commander";
import { usageError } from "../errors.js";
import { parseNumber } from "../numbers.js";
import { faultAt } from "../scenarios.js";

/** Raw option values of the fault options (commander gives strings). */
export interface FaultFlags {
  readonly seed?: string;
  readonly unplugAt?: string;
  readonly crashAt?: string;
  readonly iommuFaultAt?: string;
  readonly inject?: readonly string[];
  readonly json?: boolean;
}

/** Adds `--seed`, `--unplug-at`, `--crash-at`, `--iommu-fault-at`. */
export function addRunOptions(cmd: Command): Command {
  return cmd
    .option("--seed <n>", "seed of the SoC's random source", "1")
    .option("--unplug-at <step>", "inject the scenario's `unplug` fault just before this step")
    .option("--crash-at <step>", "inject the scenario's `rtkit-crash` fault just before this step")
    .option(
      "--iommu-fault-at <step>",
      "inject the scenario's `iommu-fault` fault just before this step",
    )
    .option(
      "--inject <kind@step>",
      "inject any of the scenario's faults just before a step, e.g. `unplug@120` (repeatable)",
      collect,
      [],
    );
}

/** Collects the values of a repeatable option, in order. */
export function collect(value: string, previous: readonly string[]): string[] {
  return [...previous, value];
}

/** Adds `--json`. */
export function addJson(cmd: Command): Command {
  return cmd.option("--json", "print one JSON document instead of text");
}

/** The seed option's value. */
export function seedOf(flags: FaultFlags): number {
  return parseNumber("--seed", flags.seed ?? "1", 0, 0xffff_ffff);
}

/** The faults the options ask for, checked against the scenario's injections. */
export function faultsOf(scenario: Scenario, flags: FaultFlags): ScenarioFault[] {
  const faults: ScenarioFault[] = [];
  const add = (option: string, kind: string, text: string | undefined): void => {
    if (text === undefined) return;
    faults.push(faultAt(scenario, kind, parseNumber(option, text, 1)));
  };
  add("--unplug-at", "unplug", flags.unplugAt);
  add("--crash-at", "rtkit-crash", flags.crashAt);
  add("--iommu-fault-at", "iommu-fault", flags.iommuFaultAt);
  for (const item of flags.inject ?? []) {
    const at = item.lastIndexOf("@");
    if (at <= 0) {
      throw usageError(`--inject takes <kind>@<step>, e.g. unplug@120, not '${item}'`);
    }
    add("--inject", item.slice(0, at), item.slice(at + 1));
  }
  return faults;
}

/** The `devref run` option that injects `kind` at `step`. */
export function injectOption(kind: string, step: number): string {
  if (kind === "unplug") return `--unplug-at ${step}`;
  if (kind === "rtkit-crash") return `--crash-at ${step}`;
  if (kind === "iommu-fault") return `--iommu-fault-at ${step}`;
  return `--inject ${kind}@${step}`;
}

/** The faults as JSON: kind and step. */
export function faultsJson(faults: readonly ScenarioFault[]): { kind: string; step: number }[] {
  return faults.map((f) => ({
    kind: f.spec.kind,
    step: "step" in f.at ? f.at.step : -1,
  }));
}
