// The whole exploration: every injection at every step of the clean run (fixed seed), with
// no leak, no use after free and no exception other than a DevrefError anywhere.
import { explore } from "@devref/sim";
import { describe, expect, it } from "vitest";
import { socScenario } from "../src/index.js";

describe("explore soc", () => {
  it("every fault at every step leaves nothing behind", { timeout: 600_000 }, async () => {
    const report = await explore(socScenario, { seed: 1 });
    expect(report.explored).toBe(report.steps);
    expect(report.runs).toBe(report.steps * Object.keys(socScenario.injections).length);
    expect(
      report.failures.map((f) => ({ step: f.step, kind: f.kind, outcome: f.outcome })),
    ).toEqual([]);
    expect(report.outcomes.failed ?? 0).toBe(0);
    // The faults changed what happened at the steps that matter.
    expect(report.outcomes["unplug: disk removed"]).toBeGreaterThan(0);
    expect(report.outcomes["iommu-fault: disk I/O error, DART fault reported"]).toBeGreaterThan(0);
    expect(report.outcomes["rtkit-crash: firmware crashed, recovered"]).toBeGreaterThan(0);
  });
});
