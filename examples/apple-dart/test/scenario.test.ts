// The apple-dart scenario: a clean run, determinism, and a full exploration with the DART
// removed (or a fault latched) at every step: no leak, no use after free, no exception
// that is not a DevrefError.
import { explore, outcomeFailed } from "@devref/sim";
import { describe, expect, it } from "vitest";
import { APPLE_DART_INJECTIONS, appleDartScenario } from "../src/index.js";

describe("the apple-dart scenario", () => {
  it("runs clean: every round's bytes through the DART, each unmap faulting, nothing left", async () => {
    const lines: string[] = [];
    const o = await appleDartScenario.run({ seed: 1, narrate: (l) => lines.push(l) });
    expect(o).toMatchObject({
      scenario: "apple-dart",
      result: "completed",
      exceptions: [],
      leaks: [],
      useAfterFree: [],
    });
    expect(lines.filter((l) => l.includes("written and read back through the DART"))).toHaveLength(
      3,
    );
    expect(lines.filter((l) => l.includes("faults after unmap"))).toHaveLength(3);
    expect(lines).toContain("fault handler: engine0 read at 0x1000000");
    expect(lines.at(-1)).toBe("audit: nothing left behind");
    expect(outcomeFailed(o)).toBe(false);
  });

  it("is deterministic: the same seed gives the same digest and steps", async () => {
    const a = await appleDartScenario.run({ seed: 7 });
    const b = await appleDartScenario.run({ seed: 7 });
    expect(b.digest).toBe(a.digest);
    expect(b.steps).toBe(a.steps);
  });

  it("declares the DART's removal and an IOMMU fault as its injections", () => {
    expect(Object.keys(APPLE_DART_INJECTIONS)).toEqual(["unplug", "iommu-fault", "stuck-command"]);
    expect(APPLE_DART_INJECTIONS.unplug).toEqual({ kind: "unplug", target: "dart0" });
  });

  it("explored at every step, with the DART pulled, a fault latched or a command stuck: zero failures", async () => {
    const report = await explore(appleDartScenario, { seed: 1 });
    const failures = report.failures.map((f) => ({
      step: f.step,
      kind: f.kind,
      exceptions: f.outcome.exceptions,
      leaks: f.outcome.leaks,
      useAfterFree: f.outcome.useAfterFree,
    }));
    expect(failures).toEqual([]);
    expect(report.explored).toBe(report.steps);
    expect(report.runs).toBe(report.steps * 3);
    expect(report.outcomes.failed ?? 0).toBe(0);
    // Every step was tried with each kind, and the DART's removal was seen for real.
    const count = (prefix: string) =>
      Object.entries(report.outcomes)
        .filter(([k]) => k.startsWith(prefix))
        .reduce((n, [, v]) => n + v, 0);
    expect(count("unplug: ")).toBe(report.steps);
    expect(count("iommu-fault: ")).toBe(report.steps);
    expect(count("stuck-command: ")).toBe(report.steps);
    // Each kind really happened: removals after probe, extra faults reported, timeouts.
    expect(report.outcomes["unplug: DART removed"]).toBeGreaterThan(100);
    expect(report.outcomes["iommu-fault: completed, extra fault reported"]).toBeGreaterThan(0);
    expect(report.outcomes["stuck-command: completed, TLB command timed out"]).toBeGreaterThan(100);
    console.log(
      `apple-dart explore: ${report.steps} steps, ${report.runs} runs, outcomes ${JSON.stringify(report.outcomes)}`,
    );
  }, 300_000);
});
