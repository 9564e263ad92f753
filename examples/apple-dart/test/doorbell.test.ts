// The PCIe MSI doorbell: its CPU page is reserved in a PCI device's DMA domain (the host
// catches writes there before the DART), never in a platform device's.
import { definePciDriver, PciBus, type PciDevice, PlatformBus } from "@devref/bus";
import type { BoundCallback } from "@devref/device-core";
import {
  DMA_FROM_DEVICE,
  DmaSystem,
  dmaMappingError,
  dmaMapSingle,
  dmaUnmapSingle,
} from "@devref/dma-iommu";
import type { Borrowed, Bound, DmaAddr } from "@devref/raw-device";
import { createReferenceSoc, describeSoc, REFERENCE_MAP as M } from "@devref/sim";
import { describe, expect, it } from "vitest";
import { type AppleDartDriverOptions, createAppleDartDriver } from "../src/index.js";

type Job = <S>(dev: Borrowed<PciDevice<Bound>, S>) => void;

async function pciRig(driver: Partial<Omit<AppleDartDriverOptions, "system">> = {}) {
  const { soc } = createReferenceSoc({ seed: 1, smc: false, trace: "off", logSink: () => {} });
  const system = new DmaSystem({ machine: soc.machine, memory: soc.memory, ram: soc.ram });
  const platform = new PlatformBus({ machine: soc.machine });
  const pci = new PciBus({ machine: soc.machine });
  platform.registerDriver(createAppleDartDriver({ system, ...driver }).driver);
  let work: BoundCallback<[Job], void> | null = null;
  pci.registerDriver(
    definePciDriver({
      name: "dma-test",
      idTable: [{ vendor: 0x1af4, device: 0x1042 }],
      probe: (dev) => {
        work = dev.devmCallback(<S>(d: Borrowed<PciDevice<Bound>, S>, job: Job) => job(d));
        return {};
      },
    }),
  );
  const fw = describeSoc(soc, { platform, pci });
  await soc.settle();
  /** Maps `n` 16 KiB buffers from the PCI function and returns their IOVAs. */
  const mapMany = (n: number): { addrs: DmaAddr[]; done: () => void } => {
    const bufs = Array.from({ length: n }, () => system.allocBuffer(0x4000));
    const addrs: DmaAddr[] = [];
    work!((dev) => {
      for (const b of bufs) {
        const a = dmaMapSingle(dev, b, 0x4000, DMA_FROM_DEVICE);
        expect(dmaMappingError(dev, a)).toBe(false);
        addrs.push(a);
      }
    });
    return {
      addrs,
      done: () => {
        work!((dev) => {
          for (const a of addrs) dmaUnmapSingle(dev, a, 0x4000, DMA_FROM_DEVICE);
        });
        for (const b of bufs) system.freeBuffer(b, 0x4000);
      },
    };
  };
  return { soc, system, fw, mapMany };
}

describe("the MSI doorbell page", () => {
  it("is never an IOVA of a PCI device behind the DART", async () => {
    const r = await pciRig();
    const { addrs, done } = r.mapMany(4);
    const page = M.MSI_DOORBELL - (M.MSI_DOORBELL % 0x4000); // 0xffff_c000
    expect(addrs[0]).toBe(page - 0x4000);
    for (const a of addrs) expect(a + 0x4000 <= page || a >= page + 0x4000).toBe(true);
    done();
    r.fw.remove();
    expect(r.system.audit().ok).toBe(true);
    expect(r.system.iommuPages.bytesInUse).toBe(0);
  });

  it("without a doorbell (no Apple PCIe driver) nothing is reserved", async () => {
    const r = await pciRig({ msiDoorbell: null });
    const { addrs, done } = r.mapMany(1);
    expect(addrs[0]).toBe(0xffff_c000); // nothing reserved: the top of the 32-bit space
    done();
    r.fw.remove();
    expect(r.system.audit().ok).toBe(true);
  });
});
