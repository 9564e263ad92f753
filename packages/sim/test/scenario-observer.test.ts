// ScenarioObserver: the snapshot a run is asked for (at a step, at the scenario's own point,
// or at the end when the step never comes) and the trace handed over at the end.
import { PciBus, PlatformBus } from "@devref/bus";
import { DevrefError } from "@devref/raw-device";
import {
  createReferenceSoc,
  describeSoc,
  type Scenario,
  ScenarioObserver,
  type ScenarioOptions,
  type ScenarioOutcome,
  type ScenarioSnapshot,
} from "@devref/sim";
import { describe, expect, it } from "vitest";

/** Describes the reference SoC (no drivers), lets it settle, removes it again. */
const describeScenario: Scenario = {
  name: "describe",
  description: "the reference SoC described and removed",
  injections: {},
  async run(options: ScenarioOptions = {}): Promise<ScenarioOutcome> {
    const { soc } = createReferenceSoc({
      seed: options.seed ?? 1,
      trace: options.trace ?? "digest",
    });
    const observer = new ScenarioObserver(soc, options);
    const platform = new PlatformBus({ machine: soc.machine });
    const pci = new PciBus({ machine: soc.machine });
    const fw = describeSoc(soc, { platform, pci });
    await soc.settle();
    observer.point();
    fw.remove();
    await soc.settle();
    observer.finish();
    return {
      scenario: "describe",
      seed: options.seed ?? 1,
      steps: soc.stepCount,
      timeNs: soc.nowNs,
      digest: soc.traceDigest(),
      result: "completed",
      exceptions: [],
      leaks: [],
      useAfterFree: [],
    };
  },
};

async function snapshotOf(step?: number): Promise<[ScenarioSnapshot[], ScenarioOutcome]> {
  const taken: ScenarioSnapshot[] = [];
  const outcome = await describeScenario.run({
    snapshot: { ...(step === undefined ? {} : { step }), take: (s) => taken.push(s) },
  });
  return [taken, outcome];
}

describe("ScenarioObserver", () => {
  it("takes the snapshot at the scenario's own point when no step is asked", async () => {
    const [taken, outcome] = await snapshotOf();
    expect(taken).toHaveLength(1);
    const s = taken[0]!;
    expect(s.at).toBe("scenario");
    expect(s.tree).toContain("dart0");
    expect(s.tree).toContain("0000:00:00.0");
    expect(s.devices.map((d) => d.name)).toContain("pcie0");
    expect(s.step).toBeLessThanOrEqual(outcome.steps);
    // Without a step no record is added: the digest is the plain run's.
    expect(outcome.digest).toBe((await describeScenario.run()).digest);
  });

  it("takes it just before the requested step, inside the run", async () => {
    const plain = await describeScenario.run();
    const step = Math.ceil(plain.steps / 2);
    const [taken, outcome] = await snapshotOf(step);
    expect(taken).toHaveLength(1);
    expect(taken[0]!.at).toBe("step");
    expect(taken[0]!.step).toBe(step);
    expect(taken[0]!.tree).toContain("pcie0");
    expect(outcome.steps).toBe(plain.steps);
  });

  it("takes it at the end, after teardown, when the run is shorter than the step", async () => {
    const [taken, outcome] = await snapshotOf(1_000_000);
    expect(taken).toHaveLength(1);
    expect(taken[0]!.at).toBe("end");
    expect(taken[0]!.step).toBe(outcome.steps);
    expect(taken[0]!.devices).toEqual([]);
  });

  it("hands the kept trace over at the end", async () => {
    let records: readonly unknown[] = [];
    await describeScenario.run({ trace: "full", onTrace: (r) => (records = r) });
    expect(records.length).toBeGreaterThan(0);
    await describeScenario.run({ onTrace: (r) => (records = r) });
    expect(records).toEqual([]); // digest mode keeps none
  });

  it("refuses a malformed request before the run changes anything", () => {
    const { soc } = createReferenceSoc({ seed: 1 });
    const take = (): void => {};
    expect(() => new ScenarioObserver(soc, { snapshot: { step: 0, take } })).toThrowError(
      DevrefError,
    );
    expect(() => new ScenarioObserver(soc, { snapshot: { step: 1.5, take } })).toThrowError(
      DevrefError,
    );
    // SAFETY (test): a wrong type on purpose.
    const notAFunction = { take: 3 } as never;
    expect(() => new ScenarioObserver(soc, { snapshot: notAFunction })).toThrowError(DevrefError);
    expect(soc.faults.pendingBySteps()).toEqual([]);
  });
});
