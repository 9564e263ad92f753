// An IOMMU fault on the disk's stream, and a bus error on its DMA, at every step of the
// scenario behind the DART: the driver resets the device (or fails the one request) and
// carries on, with zero failures.
import { explore } from "@devref/sim";
import { describe, expect, it } from "vitest";
import { createVirtioBlkScenario, virtioBlkScenario } from "../src/index.js";

describe("explore: device errors", () => {
  it("iommu-fault at every step, zero failures", async () => {
    const r = await explore(virtioBlkScenario, { kinds: ["iommu-fault"] });
    expect(r.failures).toEqual([]);
    expect(r.outcomes["iommu-fault: I/O error"]).toBeGreaterThan(0);
  }, 300_000);

  it("dma-error at every step, zero failures", async () => {
    const r = await explore(virtioBlkScenario, { kinds: ["dma-error"] });
    expect(r.failures).toEqual([]);
    expect(r.outcomes["dma-error: I/O error"]).toBeGreaterThan(0);
  }, 300_000);

  it("without the IOMMU: unplug and dma-error at every step, zero failures", async () => {
    const r = await explore(createVirtioBlkScenario({ iommu: false }));
    expect(r.failures).toEqual([]);
    expect(r.outcomes["unplug: device removed"]).toBeGreaterThan(0);
  }, 300_000);
});
