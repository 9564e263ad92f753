// The scenario run once, narrated, deterministic, and checked piece by piece.
import { describe, expect, it } from "vitest";
import { createVirtioBlkScenario, virtioBlkScenario } from "../src/index.js";

describe("virtioBlkScenario", () => {
  it("boots, probes behind the DART, runs its I/O, tears down and leaves nothing", async () => {
    const lines: string[] = [];
    const o = await virtioBlkScenario.run({ narrate: (l) => lines.push(l) });
    expect(o).toMatchObject({ scenario: "virtio-blk", seed: 1, result: "completed" });
    expect(o.exceptions).toEqual([]);
    expect(o.leaks).toEqual([]);
    expect(o.useAfterFree).toEqual([]);
    expect(lines[0]).toBe("boot: reference SoC, seed 1, disk behind dart0");
    expect(lines).toContain("probe: 0000:00:00.0 bound");
    expect(lines).toContain("burst: 4 in flight, 3 queued");
    expect(lines.at(-1)).toBe("audit: nothing left");
    expect(Object.keys(virtioBlkScenario.injections)).toEqual([
      "unplug",
      "iommu-fault",
      "dma-error",
    ]);
  });

  it("is deterministic: the same seed gives the same run, another seed another image", async () => {
    const a = await virtioBlkScenario.run({ seed: 5 });
    const b = await virtioBlkScenario.run({ seed: 5 });
    const c = await virtioBlkScenario.run({ seed: 6 });
    expect(b).toEqual(a);
    expect(c.digest).not.toBe(a.digest);
    expect(c.result).toBe("completed");
  });

  it("without the IOMMU the same scenario runs on dma-direct", async () => {
    const s = createVirtioBlkScenario({ iommu: false, name: "virtio-blk-direct" });
    expect(Object.keys(s.injections)).toEqual(["unplug", "dma-error"]);
    const lines: string[] = [];
    const o = await s.run({ narrate: (l) => lines.push(l) });
    expect(o).toMatchObject({
      scenario: "virtio-blk-direct",
      result: "completed",
      leaks: [],
      exceptions: [],
    });
    expect(lines[0]).toBe("boot: reference SoC, seed 1, no IOMMU");
  });

  it("reports a removal in the middle of the I/O as such, with nothing left", async () => {
    const clean = await virtioBlkScenario.run();
    const outcomes = [];
    for (let step = clean.steps - 150; step < clean.steps; step += 15) {
      outcomes.push(
        await virtioBlkScenario.run({
          faults: [{ at: { step }, spec: { kind: "unplug", target: "vblk0" } }],
        }),
      );
    }
    expect(outcomes.some((o) => o.result === "device removed")).toBe(true);
    for (const o of outcomes) {
      expect(o.exceptions).toEqual([]);
      expect(o.leaks).toEqual([]);
      expect(o.useAfterFree).toEqual([]);
    }
  });
});
