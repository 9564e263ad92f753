// The README's block-API example, run as written (imports from the source tree).
import { PciBus, PlatformBus } from "@devref/bus";
import { DmaSystem } from "@devref/dma-iommu";
import { createAppleDartDriver } from "@devref/example-apple-dart";
import { createReferenceSoc, describeSoc } from "@devref/sim";
import { expect, it } from "vitest";
import { VirtioBlkDriver } from "../src/index.js";

it("runs the README example", async () => {
  const { soc, blk } = createReferenceSoc({ seed: 1, logSink: () => {} });
  const system = new DmaSystem({ machine: soc.machine, memory: soc.memory, ram: soc.ram });
  const platform = new PlatformBus({ machine: soc.machine });
  const pci = new PciBus({ machine: soc.machine });
  platform.registerDriver(createAppleDartDriver({ system }).driver);
  const vblk = new VirtioBlkDriver({ timers: soc.events, queueDepth: 4 });
  pci.registerDriver(vblk.driver);
  using fw = describeSoc(soc, { platform, pci });
  await soc.settle();

  const disk = vblk.disk("0000:00:00.0");
  expect([disk.capacity, disk.blockSize, disk.irqMode]).toEqual([2048, 512, "msix"]);
  const written = disk.write(8, new Uint8Array(4096).fill(0xab));
  await soc.settle();
  await written;
  const read = disk.read(8, 8);
  const flushed = disk.flush();
  await soc.settle();
  expect([(await read)[0], blk!.image[8 * 512]]).toEqual([171, 171]);
  await flushed;
  expect(blk!.flushCount).toBe(1);
  expect(fw.bridge).not.toBeNull();
});
