// Completion by interrupt: MSI-X (a vector for configuration changes, one for the queue)
// and INTx with the ISR byte, through requestIrq; both carry completions and
// configuration changes, and both are given back at unbind.
import { IrqDomain } from "@devref/device-core";
import { REFERENCE_MAP as M } from "@devref/sim";
import { describe, expect, it } from "vitest";
import { done, FN, pattern, rig, sectors } from "./helpers.js";

const ISR_OFFSET = 0x1000;

describe("interrupts", () => {
  it("MSI-X: vector 0 for configuration changes, vector 1 for the queue", async () => {
    const r = await rig();
    const disk = r.vblk.disk(FN);
    expect(disk.irqMode).toBe("msix");
    expect(r.blk.msixEnabled).toBe(true);
    const msi = IrqDomain.find(r.soc.machine, "msi")!;
    await done(r, disk.write(0, pattern(4096, 1)));
    expect(msi.interrupts()).toEqual(["0: 0 virtio-blk config", "1: 1 virtio-blk req.0"]);
    r.blk.resize(4096);
    await r.soc.settle();
    expect(disk.capacity).toBe(4096);
    expect(msi.interrupts()).toEqual(["0: 1 virtio-blk config", "1: 1 virtio-blk req.0"]);
    // The ISR is not used with MSI-X: the driver never reads it.
    const isrReads = r.soc
      .trace()
      .filter((t) => t.kind === "mmio" && t.source === "vblk0.bar4" && t.offset === ISR_OFFSET);
    expect(isrReads).toEqual([]);
    expect(await r.teardown()).toEqual([]);
    expect(msi.interrupts()).toEqual([]);
    expect(r.blk.msixEnabled).toBe(false);
  });

  it("INTx: the level line of the slot, the ISR read to find (and clear) the cause", async () => {
    const r = await rig({ driver: { irq: "intx" } });
    const disk = r.vblk.disk(FN);
    expect(disk.irqMode).toBe("intx");
    expect(r.blk.msixEnabled).toBe(false);
    const aic = IrqDomain.find(r.soc.machine, "aic")!;
    expect(aic.interrupts()).toContain(`${M.INTX_BASE}: 0 virtio-blk`);
    const writes = [0, 1, 2, 3, 4, 5].map((i) => disk.write(i * 8, pattern(4096, i)));
    await r.soc.settle();
    await Promise.all(writes);
    for (let i = 0; i < 6; i++) expect(sectors(r, i * 8, 8)).toEqual(pattern(4096, i));
    expect(r.soc.irq.isAsserted(M.INTX_BASE)).toBe(false); // the ISR read lowered it
    r.blk.resize(1024); // configuration change through the ISR's bit 1
    await r.soc.settle();
    expect(disk.capacity).toBe(1024);
    expect(r.problems()).toEqual([]);
    expect(await r.teardown()).toEqual([]);
    expect(aic.interrupts()).toEqual([]);
  });

  it("INTx behind the DART works the same", async () => {
    const r = await rig({ iommu: true, driver: { irq: "intx" } });
    const disk = r.vblk.disk(FN);
    await done(r, disk.write(10, pattern(8192, 2)));
    expect(await done(r, disk.read(10, 16))).toEqual(pattern(8192, 2));
    expect(await r.teardown()).toEqual([]);
  });
});
