//! The scenarios `devref` runs, by name, and the fault kinds its options name.

import { DevrefError } from "@devref/raw-device";
import type { FaultSpec, Scenario, ScenarioFault } from "@devref/sim";

/** Scenarios by name, each loaded when first asked for. */
export type ScenarioRegistry = Readonly<Record<string, () => Promise<Scenario>>>;

/**
 * Every scenario the command knows, by name, loaded when asked for: the decoders
 * (`pgtable`, `rtkit`) never load the simulator and the drivers.
 */
export const BUILTIN_SCENARIOS: ScenarioRegistry = Object.freeze({
  soc: async () => (await import("@devref/example-soc")).socScenario,
  "apple-dart": async () => (await import("@devref/example-apple-dart")).appleDartScenario,
  "virtio-blk": async () => (await import("@devref/example-virtio-blk")).virtioBlkScenario,
  "apple-smc": async () => (await import("@devref/example-apple-smc")).appleSmcScenario,
});

/** The scenario names, in the order `devref list` shows them. */
export function scenarioNames(registry: ScenarioRegistry): string[] {
  return Object.keys(registry);
}

/** Every scenario. */
export async function scenarios(registry: ScenarioRegistry): Promise<Scenario[]> {
  return Promise.all(scenarioNames(registry).map((n) => registry[n]!()));
}

/** The scenario called `name`. **Errors:** `EINVAL` listing the names there are. */
export async function findScenario(registry: ScenarioRegistry, name: string): Promise<Scenario> {
  const load = Object.hasOwn(registry, name) ? registry[name] : undefined;
  if (load === undefined) {
    throw new DevrefError(
      "EINVAL",
      `there is no scenario '${name}': the scenarios are ${scenarioNames(registry).join(", ")}`,
    );
  }
  return load();
}

/** Short names the options accept for a scenario's injection kinds. */
const ALIASES: Readonly<Record<string, string>> = Object.freeze({
  crash: "rtkit-crash",
  removal: "unplug",
  fault: "iommu-fault",
});

/**
 * The scenario's injection kind that `kind` names (its own name or a short one: `crash` for
 * `rtkit-crash`). **Errors:** `EINVAL` listing the scenario's kinds.
 */
export function injectionKind(scenario: Scenario, kind: string): string {
  const k = Object.hasOwn(scenario.injections, kind) ? kind : (ALIASES[kind] ?? kind);
  if (!Object.hasOwn(scenario.injections, k)) {
    const kinds = Object.keys(scenario.injections);
    throw new DevrefError(
      "EINVAL",
      `scenario '${scenario.name}' has no '${kind}' injection: its kinds are ${kinds.join(", ") || "(none)"}`,
    );
  }
  return k;
}

/** The scenario's `kind` fault, at `step`. */
export function faultAt(scenario: Scenario, kind: string, step: number): ScenarioFault {
  const k = injectionKind(scenario, kind);
  const spec: FaultSpec = scenario.injections[k]!;
  return { at: { step }, spec };
}
