// The README's example, as a test: it must run as printed.
import { PlatformBus } from "@devref/bus";
import { DMA_TO_DEVICE, DmaSystem, dmaMapSingle, dmaUnmapSingle } from "@devref/dma-iommu";
import { createReferenceSoc, describeSoc } from "@devref/sim";
import { expect, it } from "vitest";
import {
  createAppleDartDriver,
  createDmaEngineDriver,
  DMA_ENGINE_COMPATIBLE,
} from "../src/index.js";

it("README example", async () => {
  const { soc, dart: model } = createReferenceSoc({
    seed: 1,
    blk: false,
    smc: false,
    logSink: () => {},
  });
  const system = new DmaSystem({ machine: soc.machine, memory: soc.memory, ram: soc.ram });
  const platform = new PlatformBus({ machine: soc.machine });
  const darts = createAppleDartDriver({ system });
  const engines = createDmaEngineDriver();
  platform.registerDriver(darts.driver);
  platform.registerDriver(engines.driver);
  {
    using fw = describeSoc(soc, { platform });
    expect(fw.nodes.map((n) => n.name)).toContain("dart0");
    const master = soc.dmaMaster("engine0");
    model.attach(master, 2);
    const engine = platform.register({
      name: "engine0",
      compatible: [DMA_ENGINE_COMPATIBLE],
      iommus: [{ iommu: "dart0", ids: [2] }],
    });
    await soc.settle();

    const buf = system.allocBuffer(0x4000);
    const addr = engines.run("engine0", (dev) => dmaMapSingle(dev, buf, 0x4000, DMA_TO_DEVICE))!;
    soc.memory.write32(buf, 0xcafe);
    expect(master.read32(addr)).toBe(0xcafe);
    engines.run("engine0", (dev) => dmaUnmapSingle(dev, addr, 0x4000, DMA_TO_DEVICE));
    expect(master.read32(addr)).toBe(0xffff_ffff);
    await soc.settle();
    expect(darts.dart("dart0")?.stats.faults).toBe(1);
    platform.unregister(engine);
    system.freeBuffer(buf, 0x4000);
  }
  expect(darts.names).toEqual([]);
  expect(system.audit().ok).toBe(true);
  expect(system.iommuPages.bytesInUse).toBe(0);
  expect(system.leakReports).toEqual([]);
});
