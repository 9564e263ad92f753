// A client's DMA through domains the driver programmed: the simulator's own walker must
// find the bytes where io-pgtable put them, and an unmap must really flush the IOTLB.
import {
  DMA_BIDIRECTIONAL,
  DMA_TO_DEVICE,
  type DmaDirection,
  dmaMappingError,
  dmaMapSingle,
  dmaUnmapSingle,
  iommuAttachDevice,
  iommuDetachDevice,
  iommuDomainFree,
  iommuGetDomainForDev,
  iommuIotlbSync,
  iommuIovaToPhys,
  iommuMap,
  iommuPagingDomainAlloc,
  iommuUnmapFast,
} from "@devref/dma-iommu";
import { IOMMU_READ, IOMMU_WRITE, IotlbGather } from "@devref/io-pgtable";
import { type DmaAddr, iova, type PhysAddr } from "@devref/raw-device";
import { DART_T8020, DART_T8110, type DartOptions, DMA_STATUS } from "@devref/sim";
import { describe, expect, it } from "vitest";
import { DartDomain, dartTtbrValue } from "../src/index.js";
import { ENGINE_SID, type Rig, rig } from "./helpers.js";

const VARIANTS: { name: string; dart: Partial<DartOptions> }[] = [
  { name: "t8020 (DART1, 16 KiB)", dart: { variant: "t8020" } },
  { name: "t8020 (DART1, 4 KiB, four TTBRs)", dart: { variant: "t8020", pageShift: 12 } },
  { name: "t6000 (DART2, 42-bit PA)", dart: { variant: "t6000" } },
  { name: "t8110 (DART2, 36-bit VA)", dart: { variant: "t8110" } },
  { name: "t8110 (DART2, 42-bit VA, four levels)", dart: { variant: "t8110", vaWidth: 42 } },
];

/** TCR and TTBR(0) of stream `sid`, by variant. */
function streamRegs(r: Rig, sid: number): { tcr: number; ttbr: number[] } {
  const p = r.model.port;
  if (r.model.variant === "t8110") {
    return { tcr: p.read32(DART_T8110.TCR + 4 * sid), ttbr: [p.read32(DART_T8110.TTBR + 4 * sid)] };
  }
  const ttbr = [0, 1, 2, 3].map((i) => p.read32(DART_T8020.TTBR + 16 * sid + 4 * i));
  return { tcr: p.read32(DART_T8020.TCR + 4 * sid), ttbr };
}

function map(r: Rig, pa: PhysAddr, size: number, dir: DmaDirection = DMA_BIDIRECTIONAL): DmaAddr {
  const addr = r.engines.run("engine0", (dev) => dmaMapSingle(dev, pa, size, dir));
  if (addr === undefined || dmaMappingError(r.engine!, addr)) throw new Error("map failed");
  return addr;
}

function unmap(r: Rig, addr: DmaAddr, size: number, dir: DmaDirection = DMA_BIDIRECTIONAL): void {
  r.engines.run("engine0", (dev) => dmaUnmapSingle(dev, addr, size, dir));
}

describe("DMA through a domain the driver programmed", () => {
  for (const v of VARIANTS) {
    it(`${v.name}: TTBRs and TCR as io-pgtable says, bytes land where the table maps them, unmap flushes`, async () => {
      const r = await rig({ dart: v.dart });
      const d = r.dart();
      const pg = d.params.pgsize;
      const domain = iommuGetDomainForDev(r.engine!)!;
      const ops = domain.ops;
      expect(ops).toBeInstanceOf(DartDomain);
      const table = (ops as DartDomain).table;
      // The registers hold what the table's cfg gives, encoded for the variant.
      const regs = streamRegs(r, ENGINE_SID);
      const ttbrs = table.cfg.appleDartCfg.ttbr;
      for (let i = 0; i < regs.ttbr.length; i++) {
        expect(regs.ttbr[i]).toBe(i < ttbrs.length ? dartTtbrValue(d.hw, ttbrs[i]!) : 0);
      }
      expect(regs.tcr).toBe(d.hw.tcrEnabled | (d.params.fourLevel ? d.hw.tcrFourLevel : 0));
      expect(table.cfg.appleDartCfg.nLevels === 4).toBe(d.params.fourLevel);

      const size = 3 * pg;
      const buf = r.system.allocBuffer(size);
      const addr = map(r, buf, size);
      expect(iommuIovaToPhys(domain, addr)).toBe(buf);
      expect(addr).toBeLessThan(2 ** 32); // the engine's 32-bit mask
      // The engine writes all three pages; the simulator walks the tables itself.
      const data = new Uint8Array(size).map((_, i) => (i * 7 + 3) & 0xff);
      expect(r.master.write(addr, data)).toBe(true);
      const got = new Uint8Array(size);
      r.soc.memory.readBytes(buf, got);
      expect(got).toEqual(data);
      expect(r.master.read32(addr + pg + 8)).toBe(r.soc.memory.read32(buf + pg + 8));
      expect(r.model.iotlbEntries().filter((e) => e.sid === ENGINE_SID)).toHaveLength(3);

      const before = d.stats.invalidations;
      unmap(r, addr, size);
      expect(d.stats.invalidations).toBe(before + 1);
      expect(r.model.iotlbEntries().filter((e) => e.sid === ENGINE_SID)).toEqual([]);
      // The same IOVA now faults: no stale translation survived the unmap.
      const old = r.soc.memory.read32(buf + 4);
      expect(r.master.write32(addr + 4, 0xdead)).toBe(false);
      expect(r.master.status).toBe(DMA_STATUS.IOMMU_FAULT);
      expect(r.soc.memory.read32(buf + 4)).toBe(old);
      await r.soc.settle();
      expect(d.faults.at(-1)).toMatchObject({ stream: ENGINE_SID, address: addr + 4 });
      r.system.freeBuffer(buf, size);
      expect(r.teardown()).toEqual([]);
    });
  }

  it("a read-only mapping lets the device read and refuses its writes (WRITE FAULT)", async () => {
    const r = await rig();
    const buf = r.system.allocBuffer(0x4000);
    r.soc.memory.write32(buf, 0xfeed_f00d);
    const addr = map(r, buf, 0x4000, DMA_TO_DEVICE);
    expect(r.master.read32(addr)).toBe(0xfeed_f00d);
    expect(r.master.write32(addr, 1)).toBe(false);
    await r.soc.settle();
    expect(r.dart().faults.at(-1)).toMatchObject({ name: "WRITE FAULT", write: true });
    expect(r.soc.memory.read32(buf)).toBe(0xfeed_f00d);
    unmap(r, addr, 0x4000, DMA_TO_DEVICE);
    r.system.freeBuffer(buf, 0x4000);
    expect(r.teardown()).toEqual([]);
  });
});

describe("the IOTLB: a missing flush is visible, the driver's sync flushes", () => {
  for (const variant of ["t8020", "t8110"] as const) {
    it(`${variant}: unmapped without a sync the old page stays reachable; the sync ends it`, async () => {
      const r = await rig({ dart: { variant } });
      const d = r.dart();
      const buf = r.system.allocBuffer(0x4000);
      const dom = r.engines.run("engine0", (dev) => {
        const dom = iommuPagingDomainAlloc(dev);
        iommuAttachDevice(dom, dev);
        return dom;
      })!;
      expect(d.domainOf(ENGINE_SID)?.domain).toBe(dom);
      const at = iova(0x10_0000);
      iommuMap(dom, at, buf, 0x4000, IOMMU_READ | IOMMU_WRITE);
      expect(r.master.write32(at, 1)).toBe(true);
      expect(r.soc.memory.read32(buf)).toBe(1);
      // Clear the PTE and keep the invalidation back: the DART still has the old entry.
      const gather = new IotlbGather();
      expect(iommuUnmapFast(dom, at, 0x4000, gather)).toBe(0x4000);
      expect(iommuIovaToPhys(dom, at)).toBe(0);
      expect(r.master.write32(at, 2)).toBe(true); // stale: the hardware would too
      expect(r.soc.memory.read32(buf)).toBe(2);
      const before = d.stats.invalidations;
      iommuIotlbSync(dom, gather);
      expect(d.stats.invalidations).toBe(before + 1);
      expect(r.master.write32(at, 3)).toBe(false);
      expect(r.soc.memory.read32(buf)).toBe(2);
      await r.soc.settle();
      expect(d.faults.at(-1)).toMatchObject({ kind: "no-pte", address: 0x10_0000 });
      // Back to the default domain: its tables again, and the unmanaged one freed.
      r.engines.run("engine0", (dev) => iommuDetachDevice(dom, dev));
      expect(d.domainOf(ENGINE_SID)?.domain).toBe(iommuGetDomainForDev(r.engine!));
      iommuDomainFree(dom);
      r.system.freeBuffer(buf, 0x4000);
      expect(r.teardown()).toEqual([]);
    });
  }

  it("a map is followed by an invalidation (iotlb_sync_map), as the kernel does", async () => {
    const r = await rig({ dart: { cacheFaults: true } });
    const d = r.dart();
    const buf = r.system.allocBuffer(0x4000);
    // A failed lookup is cached by this DART: without the invalidation after the map the
    // new mapping would stay invisible.
    expect(r.master.write32(0xffff_c000, 1)).toBe(false);
    await r.soc.settle();
    const addr = map(r, buf, 0x4000);
    expect(addr).toBe(0xffff_c000); // the top-down allocator's first IOVA
    expect(r.master.write32(addr, 7)).toBe(true);
    expect(r.soc.memory.read32(buf)).toBe(7);
    expect(d.stats.invalidations).toBeGreaterThanOrEqual(3); // reset, attach, map
    unmap(r, addr, 0x4000);
    r.system.freeBuffer(buf, 0x4000);
    expect(r.teardown()).toEqual([]);
  });
});

describe("lazy invalidation (DMA_FQ): flush_iotlb_all", () => {
  it("an unmapped IOVA stays translatable until the next invalidation; a full queue flushes all", async () => {
    const r = await rig({ iommuDefaultDomain: "lazy" });
    const d = r.dart();
    const buf = r.system.allocBuffer(0x4000);
    const first = map(r, buf, 0x4000);
    expect(r.master.write32(first, 1)).toBe(true);
    unmap(r, first, 0x4000);
    // Deferred, as the kernel's lazy mode defers it: the old entry still answers.
    expect(r.master.write32(first, 2)).toBe(true);
    expect(r.soc.memory.read32(buf)).toBe(2);
    expect(d.stats.flushAll).toBe(0);
    // A full queue (256 entries) flushes by itself: flush_iotlb_all on every stream.
    for (let i = 0; i < 256; i++) unmap(r, map(r, buf, 0x4000), 0x4000);
    expect(d.stats.flushAll).toBe(1);
    expect(r.master.write32(first, 3)).toBe(false);
    expect(r.soc.memory.read32(buf)).toBe(2);
    await r.soc.settle();
    r.system.freeBuffer(buf, 0x4000);
    expect(r.teardown()).toEqual([]);
  });
});
