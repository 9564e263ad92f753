// The soc scenario: every driver on one SoC, clean when nothing fails, the same digest for
// the same seed, and each injection at a step that matters.
import { outcomeFailed, type ScenarioOutcome, type ScenarioSnapshot } from "@devref/sim";
import { describe, expect, it } from "vitest";
import { SOC_INJECTIONS, socScenario } from "../src/index.js";

async function narrated(
  options: Parameters<typeof socScenario.run>[0] = {},
): Promise<{ lines: string[]; outcome: ScenarioOutcome }> {
  const lines: string[] = [];
  const outcome = await socScenario.run({ ...options, narrate: (l) => lines.push(l) });
  return { lines, outcome };
}

describe("the soc scenario", () => {
  it("boots the DART first, runs disk traffic through it, pulls the disk and leaves nothing behind", async () => {
    const { lines, outcome } = await narrated();
    expect(outcome).toMatchObject({
      scenario: "soc",
      seed: 1,
      result: "completed",
      exceptions: [],
      leaks: [],
      useAfterFree: [],
    });
    expect(outcomeFailed(outcome)).toBe(false);
    const text = lines.join("\n");
    expect(text.indexOf("probe: dart0 bound")).toBeLessThan(
      text.indexOf("probe: 0000:00:00.0 bound"),
    );
    expect(text).toContain("read 16 KiB at block 8: done");
    expect(text).toContain("probe: smc bound");
    expect(text).toMatch(/read TB0T: \d/);
    expect(text).toContain("write F0Tg (fan target) = 2400, read back");
    expect(text).toMatch(/smc \[platform, driver macsmc, \d+ refs\]/);
    expect(text).toMatch(/smc: \d+ refs \(.*iommu client dart0.*rtkit/);
    expect(text).toMatch(/dart0 \[platform, driver apple-dart, \d+ refs\]/);
    expect(text).toMatch(/0000:00:00\.0 \[pci, driver virtio_blk, \d+ refs\]/);
    expect(text).toMatch(/0000:00:00\.0: \d+ refs \(.*iommu client dart0/);
    expect(text).toContain("write 8 KiB at block 100: failed, ENODEV");
    expect(text).toContain("unplug: PCI functions now: none");
    expect(lines.at(-1)).toBe("audit: nothing left behind");
  });

  it("is deterministic: the same seed gives the same digest, another seed another", async () => {
    const a = await socScenario.run({ seed: 3 });
    const b = await socScenario.run({ seed: 3 });
    const c = await socScenario.run({ seed: 4 });
    expect(b.digest).toBe(a.digest);
    expect(b.steps).toBe(a.steps);
    expect(c.digest).not.toBe(a.digest);
  });

  it("the disk pulled in the middle of the traffic: its requests fail with ENODEV, nothing leaks", async () => {
    // With seed 1 the disk's traffic runs from about step 397 to step 435.
    for (const step of [400, 416, 432]) {
      const { lines, outcome } = await narrated({
        faults: [{ at: { step }, spec: SOC_INJECTIONS.unplug! }],
      });
      expect(outcome.result, `unplug at ${step}`).toBe("disk removed");
      expect(outcomeFailed(outcome), `unplug at ${step}`).toBe(false);
      expect(lines.some((l) => l.endsWith("failed, ENODEV"))).toBe(true);
    }
  });

  it("a DART fault on the disk's stream is decoded and reported; the request fails with EIO", async () => {
    const { lines, outcome } = await narrated({
      faults: [{ at: { step: 250 }, spec: SOC_INJECTIONS["iommu-fault"]! }],
    });
    expect(outcome.result).toBe("disk I/O error, DART fault reported");
    expect(outcomeFailed(outcome)).toBe(false);
    expect(lines.some((l) => l.includes("failed, EIO"))).toBe(true);
  });

  it("the SMC firmware crashes in the middle of its traffic: the driver restarts it, the command is retried", async () => {
    const { lines, outcome } = await narrated({
      faults: [{ at: { step: 400 }, spec: SOC_INJECTIONS["rtkit-crash"]! }],
    });
    expect(outcome.result).toBe("firmware crashed, recovered");
    expect(outcomeFailed(outcome)).toBe(false);
    expect(lines.some((l) => l.includes("SMC restarted after a crash"))).toBe(true);
    expect(lines.some((l) => l.includes("the SMC runs again after a restart; once more"))).toBe(
      true,
    );
  });

  it("reports its machine at a step and at its own point (ScenarioObserver)", async () => {
    const taken: ScenarioSnapshot[] = [];
    await socScenario.run({ snapshot: { take: (s) => taken.push(s) } });
    await socScenario.run({ snapshot: { step: 5, take: (s) => taken.push(s) } });
    expect(taken.map((s) => s.at)).toEqual(["scenario", "step"]);
    expect(taken[0]!.tree).toContain("driver virtio_blk");
    expect(taken[1]!.step).toBe(5);
    expect(taken[1]!.tree).not.toContain("driver virtio_blk");
  });
});
