import { iova } from "@devref/raw-device";
import { describe, expect, it } from "vitest";
import {
  type CoherentAllocation,
  DMA_TO_DEVICE,
  dmaAllocCoherent,
  dmaDeviceAudit,
  dmaMapSingle,
  dmaSetMask,
  dmaUnmapSingle,
  iommuGetDomainForDev,
  iommuIovaToPhys,
} from "../src/index.js";
import { addDevice, addTestIommu, makeEnv } from "./dma-helpers.js";

describe("coherent allocations", () => {
  it("are zeroed, page-order aligned and reachable under the coherent mask", () => {
    const env = makeEnv();
    const d32 = addDevice(env, { name: "c32" });
    const d64 = addDevice(env, { name: "c64", maskBits: 64 });
    const a = d32.run((dev) => dmaAllocCoherent(dev, 3 * 4096));
    const b = d64.run((dev) => dmaAllocCoherent(dev, 100));
    expect(a.dmaAddr % (4 * 4096)).toBe(0); // 3 pages → aligned to 4
    expect(a.dmaAddr + a.size - 1).toBeLessThanOrEqual(0xffff_ffff);
    expect(b.dmaAddr).toBeGreaterThan(0xffff_ffff);
    expect(a.read32(0)).toBe(0);
    a.write32(8, 0xdead_beef);
    a.write64(16, 1, 2);
    expect(a.read32(8)).toBe(0xdead_beef);
    expect(a.read64(16)).toEqual({ lo: 1, hi: 2 });
    expect(env.system.memory.read32(a.phys + 8)).toBe(0xdead_beef); // the device sees it
    expect(() => a.read32(3 * 4096)).toThrow(/outside the 12288-byte/);
    expect(dmaDeviceAudit(d32.ref).entries.map((e) => e.kind)).toEqual(["coherent"]);
    b.free();
    b.free(); // a second free does nothing
    expect(() => b.read8(0)).toThrow(/was freed/);
    env.bus.unplug(d32.ref);
    env.bus.unplug(d64.ref);
    d32.ref.put();
    d64.ref.put();
  });

  it("a buffer kept past unbind fails cleanly, and its memory is given back", () => {
    const env = makeEnv();
    let kept: CoherentAllocation | null = null;
    const d = addDevice(env, {
      name: "keeper",
      probe: (dev) => {
        kept = dmaAllocCoherent(dev, 8192);
      },
    });
    const buf = kept! as CoherentAllocation;
    buf.write32(0, 7);
    const inUse = env.system.audit().ramInUse;
    expect(inUse).toBeGreaterThanOrEqual(8192);
    env.bus.unbind(d.ref);
    expect(buf.isAvailable).toBe(false);
    let err: unknown = null;
    try {
      buf.read32(0);
    } catch (e) {
      err = e;
    }
    expect(err).toMatchObject({ code: "ENODEV" });
    expect(String(err)).toMatch(/keeper.*unbound/);
    expect(env.system.audit().ramInUse).toBe(inUse - 8192);
    // Freed by devres: not a leak.
    expect(env.system.leakReports).toEqual([]);
    d.ref.put();
  });

  it("allocations count as DMA state for the mask rule", () => {
    const env = makeEnv();
    let error: unknown = null;
    addDevice(env, {
      name: "late-mask",
      probe: (dev) => {
        dmaAllocCoherent(dev, 4096);
        try {
          dmaSetMask(dev, 64);
        } catch (e) {
          error = e;
        }
      },
    });
    expect(error).toMatchObject({ code: "EBUSY" });
  });

  it("the unbind report lists leaked mappings beside the coherent buffers devres freed", () => {
    const env = makeEnv();
    const d = addDevice(env, {
      name: "mixed",
      probe: (dev) => {
        dmaAllocCoherent(dev, 4096);
        dmaMapSingle(dev, env.system.allocBuffer(4096, "low"), 64, DMA_TO_DEVICE);
      },
    });
    env.bus.unplug(d.ref);
    const r = env.system.leakReports[0]!;
    expect(r.leaked.map((e) => e.kind)).toEqual(["single"]);
    expect(r.coherentFreed).toBe(1);
    d.ref.put();
  });
});

describe("coherent allocations behind an IOMMU whose granule is larger than a page", () => {
  // A 16 KiB-granule domain (the Apple DART's): the mapping is whole granules, so the RAM
  // behind a 4 KiB buffer must be a whole granule too, or the mapping either fails (RAM not
  // granule-aligned) or covers memory that belongs to someone else.
  it("a 4 KiB buffer takes a whole aligned granule of RAM, maps exactly it, and frees all of it", () => {
    const G = 16384;
    const env = makeEnv();
    addTestIommu(env, { name: "dart16", pgsizeBitmap: 0x0200_4000 }); // 16K and 32M pages
    const d = addDevice(env, { name: "smc16", iommus: [{ iommu: "dart16", ids: [0] }] });
    const plain = addDevice(env, { name: "plain16" });
    const dom = iommuGetDomainForDev(d.ref)!;
    const ranges: [number, number][] = [];
    const owns = (c: CoherentAllocation): void => {
      expect(c.dmaAddr % G).toBe(0);
      expect(c.phys % G).toBe(0);
      // The whole granule lies in one block of coherent RAM: this allocation's own.
      expect(env.system.ramUseOf(c.phys, G)).toBe("coherent");
      for (let off = 0; off < G; off += 4096) {
        expect(iommuIovaToPhys(dom, iova(c.dmaAddr + off))).toBe(c.phys + off);
      }
      ranges.push([c.phys, c.phys + G]);
    };
    const a = d.run((dev) => dmaAllocCoherent(dev, 4096));
    owns(a);
    // Other allocations in between: a streaming buffer, its mapping, a direct coherent one.
    const buf = env.system.allocBuffer(4096, "high");
    const mapped = d.run((dev) => dmaMapSingle(dev, buf, 4096, DMA_TO_DEVICE));
    const other = plain.run((dev) => dmaAllocCoherent(dev, 4096));
    ranges.push([buf, buf + 4096], [other.phys, other.phys + 4096]);
    const b = d.run((dev) => dmaAllocCoherent(dev, 4096));
    owns(b);
    // No two pieces of RAM overlap: neither mapping reaches another allocation's memory.
    for (let i = 0; i < ranges.length; i++) {
      for (let j = i + 1; j < ranges.length; j++) {
        const [s1, e1] = ranges[i]!;
        const [s2, e2] = ranges[j]!;
        expect(e1 <= s2 || e2 <= s1).toBe(true);
      }
    }
    expect(env.system.audit().ramByUse.coherent).toBe(2 * G + 4096);
    b.write32(4092, 0x1234_5678);
    expect(env.system.memory.read32(iommuIovaToPhys(dom, iova(b.dmaAddr + 4092)))).toBe(
      0x1234_5678,
    );
    a.free();
    b.free();
    other.free();
    d.run((dev) => dmaUnmapSingle(dev, mapped, 4096, DMA_TO_DEVICE));
    env.system.freeBuffer(buf, 4096);
    expect(env.system.audit().ramByUse.coherent).toBe(0);
    expect(iommuIovaToPhys(dom, iova(a.dmaAddr))).toBe(0);
    expect(iommuIovaToPhys(dom, iova(b.dmaAddr + G - 4096))).toBe(0);
    expect(env.system.audit().problems).toEqual([]);
    env.bus.unplug(d.ref);
    env.bus.unplug(plain.ref);
    d.ref.put();
    plain.ref.put();
  });
});
