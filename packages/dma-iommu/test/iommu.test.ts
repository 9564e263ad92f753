import { deferredDevices, waitForDeviceProbe } from "@devref/device-core";
import { IOMMU_READ, IOMMU_WRITE } from "@devref/io-pgtable";
import { dmaAddr, holders, iova, type PhysAddr, physAddr, refcountOf } from "@devref/raw-device";
import { describe, expect, it } from "vitest";
import {
  DMA_BIDIRECTIONAL,
  DMA_FROM_DEVICE,
  DMA_MAPPING_ERROR,
  DMA_TO_DEVICE,
  deviceIommuCapable,
  dmaAllocCoherent,
  dmaDeviceAudit,
  dmaLastError,
  dmaMapSg,
  dmaMapSingle,
  dmaUnmapSg,
  dmaUnmapSingle,
  IOMMU_DOMAIN_BLOCKED,
  IOMMU_DOMAIN_DMA,
  IOMMU_DOMAIN_DMA_FQ,
  IOMMU_DOMAIN_IDENTITY,
  IOMMU_DOMAIN_UNMANAGED,
  IOMMU_FAULT_WRITE,
  iommuAttachDevice,
  iommuDetachDevice,
  iommuDomainFree,
  iommuGetDomainForDev,
  iommuGroupGet,
  iommuIovaToPhys,
  iommuMap,
  iommuPagingDomainAlloc,
  iommuPgsize,
  iommuSetFaultHandler,
  iommuUnmap,
  reportIommuFault,
  ScatterList,
} from "../src/index.js";
import { IommuClient } from "../src/iommu.js";
import { addDevice, addTestIommu, makeEnv } from "./dma-helpers.js";

describe("devices behind an IOMMU", () => {
  it("probe through the iommus reference: group, default DMA domain, iommu-dma ops", () => {
    const env = makeEnv();
    const mmu = addTestIommu(env, { name: "smmu" });
    const d = addDevice(env, { name: "gpu", iommus: [{ iommu: "smmu", ids: [3] }] });
    expect(d.ref.dmaOps?.name).toBe("iommu-dma");
    // The device's one IOMMU slot holds the client, named as firmware named it.
    expect(d.ref.iommu).toBeInstanceOf(IommuClient);
    expect({ iommu: d.ref.iommu?.iommu, ids: d.ref.iommu?.ids }).toEqual({
      iommu: "smmu",
      ids: [3],
    });
    const dom = iommuGetDomainForDev(d.ref)!;
    expect(dom.type).toBe(IOMMU_DOMAIN_DMA);
    expect(mmu.events).toContain("attach gpu");
    expect(iommuGroupGet(d.ref)?.deviceNames).toEqual(["gpu"]);
    // The IOMMU holds owned references: to its own device and to the device it serves.
    expect(mmu.iommu().clientNames).toEqual(["gpu"]);
    expect(mmu.iommu().hwDeviceName).toBe("smmu");
    expect(deviceIommuCapable(d.ref, "cache-coherency")).toBe(true);
    expect(deviceIommuCapable(d.ref, "deferred-flush")).toBe(false);
  });

  it("a device whose IOMMU is not registered defers its probe, then binds when it is", async () => {
    const env = makeEnv();
    const d = addDevice(env, { name: "early", iommus: [{ iommu: "late-mmu", ids: [1] }] });
    expect(d.ref.isBound).toBe(false);
    expect(deferredDevices(env.machine).find((x) => x.name === "early")?.reason).toMatch(
      /late-mmu.*not registered/,
    );
    addTestIommu(env, { name: "late-mmu" });
    await waitForDeviceProbe(env.machine);
    expect(d.ref.isBound).toBe(true);
    expect(d.ref.dmaOps?.name).toBe("iommu-dma");
  });

  it("a 32-bit device behind an IOMMU gets IOVAs below 4 GiB for high buffers; a 64-bit one above", () => {
    const env = makeEnv();
    addTestIommu(env, { name: "mmu" });
    const d32 = addDevice(env, { name: "d32", iommus: [{ iommu: "mmu", ids: [1] }] });
    const d64 = addDevice(env, { name: "d64", maskBits: 64, iommus: [{ iommu: "mmu", ids: [2] }] });
    const pci = addDevice(env, {
      name: "pci",
      maskBits: 64,
      iommus: [{ iommu: "mmu", ids: [4] }],
      configure: { pci32bitWorkaround: true },
    });
    const buf = env.system.allocBuffer(1 << 16, "high");
    const a = d32.run((dev) => dmaMapSingle(dev, buf, 100, DMA_TO_DEVICE));
    expect(a).toBeGreaterThan(0);
    expect(a).toBeLessThanOrEqual(0xffff_ffff);
    expect(a % 4096).toBe(buf % 4096);
    const dom = iommuGetDomainForDev(d32.ref)!;
    expect(iommuIovaToPhys(dom, a)).toBe(buf);
    expect(env.system.swiotlb.stats().usedSlots).toBe(0); // no bouncing behind the IOMMU
    const b = d64.run((dev) => dmaMapSingle(dev, buf, 100, DMA_TO_DEVICE));
    expect(b).toBeGreaterThan(0xffff_ffff); // platform devices: no 32-bit-first policy
    const c = pci.run((dev) => dmaMapSingle(dev, buf, 100, DMA_TO_DEVICE));
    expect(c).toBeLessThanOrEqual(0xffff_ffff); // PCI: 32-bit first
    d32.run((dev) => dmaUnmapSingle(dev, a, 100, DMA_TO_DEVICE));
    expect(iommuIovaToPhys(dom, a)).toBe(0);
    d64.run((dev) => dmaUnmapSingle(dev, b, 100, DMA_TO_DEVICE));
    pci.run((dev) => dmaUnmapSingle(dev, c, 100, DMA_TO_DEVICE));
  });

  it("the IOVA is never 0 and honours a forced 32-bit aperture", () => {
    const env = makeEnv();
    addTestIommu(env, { name: "dart", aperture32: true });
    const d = addDevice(env, { name: "dev", maskBits: 64, iommus: [{ iommu: "dart", ids: [0] }] });
    const buf = env.system.allocBuffer(4096, "high");
    const a = d.run((dev) => dmaMapSingle(dev, buf, 4096, DMA_BIDIRECTIONAL));
    expect(a).toBeGreaterThan(0);
    expect(a).toBeLessThanOrEqual(0xffff_ffff);
  });

  it("scatter-gather: one IOVA range, adjacent page-aligned segments merge", () => {
    const env = makeEnv();
    addTestIommu(env, { name: "mmu" });
    const d = addDevice(env, { name: "sg", iommus: [{ iommu: "mmu", ids: [1] }] });
    const p = env.system.allocBuffer(1 << 16, "high");
    const sg = new ScatterList([
      // SAFETY (test): inside the buffer.
      { pa: (p + 0x8000) as PhysAddr, length: 4096 },
      { pa: p, length: 4096 },
      { pa: (p + 0x2100) as PhysAddr, length: 100 },
    ]);
    const n = d.run((dev) => dmaMapSg(dev, sg, DMA_FROM_DEVICE));
    expect(n).toBe(2); // segments 0 and 1 meet on a page boundary
    expect(sg.dmaLength[0]).toBe(8192);
    expect(sg.dmaAddress[1]).toBe(sg.dmaAddress[0]! + 8192 + 0x100);
    const dom = iommuGetDomainForDev(d.ref)!;
    expect(iommuIovaToPhys(dom, dmaAddr(sg.dmaAddress[0]! + 4096))).toBe(p);
    d.run((dev) => dmaUnmapSg(dev, sg, 3, DMA_FROM_DEVICE));
    expect(dmaDeviceAudit(d.ref).iovaBytes).toBe(0);
  });

  it("coherent allocations are mapped at an IOVA under the coherent mask", () => {
    const env = makeEnv();
    addTestIommu(env, { name: "mmu" });
    const d = addDevice(env, { name: "c", iommus: [{ iommu: "mmu", ids: [1] }] });
    const buf = d.run((dev) => dmaAllocCoherent(dev, 8192));
    const dom = iommuGetDomainForDev(d.ref)!;
    expect(buf.dmaAddr).toBeLessThanOrEqual(0xffff_ffff);
    expect(iommuIovaToPhys(dom, buf.dmaHandleWithOffset(4100))).toBe(buf.phys + 4100);
    buf.free();
    expect(iommuIovaToPhys(dom, buf.dmaAddr)).toBe(0);
  });

  it("a mapping leaked behind an IOMMU is reported and its IOVA released at unbind", () => {
    const env = makeEnv();
    const mmu = addTestIommu(env, { name: "mmu" });
    const d = addDevice(env, { name: "leak", iommus: [{ iommu: "mmu", ids: [1] }] });
    const buf = env.system.allocBuffer(4096, "high");
    const a = d.run((dev) => dmaMapSingle(dev, buf, 4096, DMA_TO_DEVICE));
    const dom = iommuGetDomainForDev(d.ref)!;
    expect(holders(d.ref).filter((h) => h.label === "iommu client mmu")).toHaveLength(1);
    env.bus.unplug(d.ref);
    const r = env.system.leakReports[0]!;
    expect(r.leaked[0]).toMatchObject({ dmaAddr: a, via: "iommu-dma", size: 4096 });
    expect(r.iovaBytes).toBe(4096);
    expect(iommuIovaToPhys(dom, a)).toBe(0);
    expect(mmu.events.at(-1)).toBe("free"); // last device gone: the default domain is freed
    expect(mmu.iommu().clientNames).toEqual([]);
    // The bus's, the IOMMU's and the binding's references went: only the creator's is left.
    expect(holders(d.ref).map((h) => h.label)).toEqual(["creator"]);
    expect(refcountOf(d.ref)).toBe(1);
    d.ref.put();
  });

  it("unregistering the IOMMU gives back every reference and stops DMA through it", () => {
    const env = makeEnv();
    const mmu = addTestIommu(env, { name: "mmu" });
    const d = addDevice(env, { name: "m", iommus: [{ iommu: "mmu", ids: [1] }] });
    const devCount = refcountOf(d.ref);
    const iommuRefs = (r: typeof d.ref): number =>
      holders(r).filter((h) => h.label === "iommu mmu" || h.label === "iommu client mmu").length;
    expect([iommuRefs(mmu.ref), iommuRefs(d.ref)]).toEqual([1, 1]);
    env.bus.unbind(mmu.ref);
    expect(env.system.iommus.has("mmu")).toBe(false);
    expect([iommuRefs(mmu.ref), iommuRefs(d.ref)]).toEqual([0, 0]);
    expect(refcountOf(d.ref)).toBe(devCount - 1);
    const buf = env.system.allocBuffer(4096, "low");
    expect(d.run((dev) => dmaMapSingle(dev, buf, 64, DMA_TO_DEVICE))).toBe(DMA_MAPPING_ERROR);
    expect(dmaLastError(d.ref)?.code).toBe("ENODEV");
    // The slot keeps the client, gone, until the binding ends: the DMA layer sees it at use.
    const client = d.ref.iommu;
    expect(client instanceof IommuClient && client.gone).toBe(true);
    env.bus.unbind(d.ref);
    expect(d.ref.iommu).toBeNull();
  });
});

describe("groups and domain types", () => {
  it("devices with the same stream IDs share a group and its domain; attach needs a lone device", () => {
    const env = makeEnv();
    addTestIommu(env, { name: "mmu" });
    const a = addDevice(env, { name: "fn0", iommus: [{ iommu: "mmu", ids: [7] }] });
    const b = addDevice(env, { name: "fn1", iommus: [{ iommu: "mmu", ids: [7] }] });
    expect(iommuGroupGet(a.ref)).toBe(iommuGroupGet(b.ref));
    expect(iommuGetDomainForDev(a.ref)).toBe(iommuGetDomainForDev(b.ref));
    const un = a.run((dev) => iommuPagingDomainAlloc(dev));
    expect(un.type).toBe(IOMMU_DOMAIN_UNMANAGED);
    expect(() => a.run((dev) => iommuAttachDevice(un, dev))).toThrow(/shares IOMMU group .* fn1/);
    iommuDomainFree(un);
  });

  it("UNMANAGED: attach, map with page-size selection, the DMA API is refused, detach", () => {
    const env = makeEnv();
    const mmu = addTestIommu(env, { name: "mmu" });
    const d = addDevice(env, { name: "vfio", iommus: [{ iommu: "mmu", ids: [1] }] });
    const un = d.run((dev) => iommuPagingDomainAlloc(dev));
    d.run((dev) => iommuAttachDevice(un, dev));
    expect(iommuGetDomainForDev(d.ref)).toBe(un);
    expect(mmu.events.filter((e) => e === "attach vfio")).toHaveLength(2);
    iommuMap(un, iova(0x20_0000), physAddr(0x4020_0000), 0x40_1000, IOMMU_READ | IOMMU_WRITE);
    const leaves = mmu.domains
      .at(-1)!
      .table.mappings()
      .map((m) => [Number(m.iova), m.size]);
    expect(leaves).toEqual([
      [0x20_0000, 0x20_0000],
      [0x40_0000, 0x20_0000],
      [0x60_0000, 0x1000],
    ]);
    expect(() => iommuMap(un, iova(0x60_0000), physAddr(0x1000), 0x1000, IOMMU_READ)).toThrow(
      /EEXIST/,
    );
    expect(() => iommuMap(un, iova(0x1234), physAddr(0), 0x1000, IOMMU_READ)).toThrow(
      /unaligned: iova 0x1234/,
    );
    const buf = env.system.allocBuffer(4096, "low");
    expect(d.run((dev) => dmaMapSingle(dev, buf, 8, DMA_TO_DEVICE))).toBe(DMA_MAPPING_ERROR);
    expect(iommuUnmap(un, iova(0x20_0000), 0x40_1000)).toBe(0x40_1000);
    expect(() => iommuDomainFree(un)).toThrow(/still attached/);
    d.run((dev) => iommuDetachDevice(un, dev));
    expect(iommuGetDomainForDev(d.ref)?.type).toBe(IOMMU_DOMAIN_DMA);
    iommuDomainFree(un);
  });

  it("the kernel's page-size selection example (§7.6)", () => {
    const env = makeEnv();
    addTestIommu(env, { name: "mmu", pgsizeBitmap: 0x1000 | 0x20_0000 | 0x4000_0000 });
    const d = addDevice(env, { name: "x", iommus: [{ iommu: "mmu", ids: [1] }] });
    const dom = iommuGetDomainForDev(d.ref)!;
    const count = new Float64Array(1);
    expect(iommuPgsize(dom, iova(0x20_0000), physAddr(0x4020_0000), 0x40_1000, count)).toBe(
      0x20_0000,
    );
    expect(count[0]).toBe(2);
    expect(iommuPgsize(dom, iova(0x60_0000), physAddr(0x4060_0000), 0x1000, count)).toBe(0x1000);
    expect(count[0]).toBe(1);
    // A run stops at the next larger page's boundary when a full larger page follows.
    expect(iommuPgsize(dom, iova(0x1000), physAddr(0x1000), 0x40_0000, count)).toBe(0x1000);
    expect(count[0]).toBe(0x1ff);
  });

  it("IDENTITY via def_domain_type: dma-direct addresses; BLOCKED refuses DMA", () => {
    const env = makeEnv();
    addTestIommu(env, { name: "pt", defDomainType: IOMMU_DOMAIN_IDENTITY });
    const d = addDevice(env, { name: "id", maskBits: 64, iommus: [{ iommu: "pt", ids: [1] }] });
    expect(iommuGetDomainForDev(d.ref)?.type).toBe(IOMMU_DOMAIN_IDENTITY);
    expect(d.ref.dmaOps?.name).toBe("dma-direct");
    const buf = env.system.allocBuffer(4096, "high");
    const a = d.run((dev) => dmaMapSingle(dev, buf, 64, DMA_TO_DEVICE));
    expect(a).toBe(buf);
    d.run((dev) => dmaUnmapSingle(dev, a, 64, DMA_TO_DEVICE));

    addTestIommu(env, { name: "blk", defDomainType: IOMMU_DOMAIN_BLOCKED });
    const b = addDevice(env, { name: "blocked", iommus: [{ iommu: "blk", ids: [1] }] });
    expect(b.run((dev) => dmaMapSingle(dev, buf, 64, DMA_TO_DEVICE))).toBe(DMA_MAPPING_ERROR);
    expect(dmaLastError(b.ref)?.message).toMatch(/BLOCKED/);
  });
});

describe("TLB gather and invalidation", () => {
  it("strict: one invalidation per unmap, covering the whole range", () => {
    const env = makeEnv();
    const mmu = addTestIommu(env, { name: "mmu" });
    const d = addDevice(env, { name: "s", iommus: [{ iommu: "mmu", ids: [1] }] });
    const buf = env.system.allocBuffer(1 << 16, "high");
    const a = d.run((dev) => dmaMapSingle(dev, buf, 0x4000, DMA_TO_DEVICE));
    mmu.events.length = 0;
    d.run((dev) => dmaUnmapSingle(dev, a, 0x4000, DMA_TO_DEVICE));
    expect(mmu.events).toEqual([`sync ${a.toString(16)}-${(a + 0x3fff).toString(16)} pg 1000`]);
  });

  it("the gather batches contiguous pages and syncs early for a disjoint or differently sized page", () => {
    const env = makeEnv();
    const mmu = addTestIommu(env, { name: "mmu" });
    const d = addDevice(env, { name: "g", iommus: [{ iommu: "mmu", ids: [1] }] });
    const un = d.run((dev) => iommuPagingDomainAlloc(dev));
    d.run((dev) => iommuAttachDevice(un, dev));
    iommuMap(un, iova(0x10_0000), physAddr(0x9000_0000), 0x8000, IOMMU_READ);
    iommuMap(un, iova(0x40_0000), physAddr(0x9020_0000), 0x20_0000, IOMMU_READ);
    mmu.events.length = 0;
    expect(iommuUnmap(un, iova(0x10_0000), 0x8000)).toBe(0x8000);
    expect(mmu.events).toEqual(["sync 100000-107fff pg 1000"]); // 8 pages, one invalidation
    mmu.events.length = 0;
    // Pages of two sizes in one gather: the 4K run is synced before the 2M block is added.
    iommuMap(un, iova(0x20_0000), physAddr(0x9040_0000), 0x1000, IOMMU_READ);
    const g = un.gather;
    g.queued = false;
    const ops = un.ops!;
    ops.unmapPages(iova(0x20_0000), 0x1000, 1, g);
    ops.unmapPages(iova(0x40_0000), 0x20_0000, 1, g);
    expect(mmu.events).toEqual(["sync 200000-200fff pg 1000"]);
    expect(g.pgsize).toBe(0x20_0000);
    d.run((dev) => iommuDetachDevice(un, dev));
    iommuDomainFree(un);
  });

  it("lazy (DMA_FQ): unmaps queue; one flush-all per tick or full queue; no IOVA reuse before it", () => {
    const env = makeEnv({ iommuDefaultDomain: "lazy" });
    const mmu = addTestIommu(env, { name: "mmu" });
    const d = addDevice(env, { name: "fq", iommus: [{ iommu: "mmu", ids: [1] }] });
    const dom = iommuGetDomainForDev(d.ref)!;
    expect(dom.type).toBe(IOMMU_DOMAIN_DMA_FQ);
    const fq = dom.cookie!.fq!;
    const buf = env.system.allocBuffer(4096, "high");
    mmu.events.length = 0;
    const first = d.run((dev) => dmaMapSingle(dev, buf, 4096, DMA_TO_DEVICE));
    d.run((dev) => dmaUnmapSingle(dev, first, 4096, DMA_TO_DEVICE));
    expect(mmu.events).toEqual([]); // no per-page invalidation
    expect(fq.length).toBe(1);
    const second = d.run((dev) => dmaMapSingle(dev, buf, 4096, DMA_TO_DEVICE));
    expect(second).not.toBe(first); // the queued IOVA is not reused before the flush
    d.run((dev) => dmaUnmapSingle(dev, second, 4096, DMA_TO_DEVICE));
    expect(fq.tick()).toBe(true);
    expect(mmu.events).toEqual(["flush-all"]);
    expect(fq.length).toBe(0);
    expect(fq.tick()).toBe(false);
    // A full queue flushes by itself.
    mmu.events.length = 0;
    d.run((dev) => {
      for (let i = 0; i <= fq.capacity; i++) {
        const a = dmaMapSingle(dev, buf, 4096, DMA_TO_DEVICE);
        dmaUnmapSingle(dev, a, 4096, DMA_TO_DEVICE);
      }
    });
    expect(mmu.events).toEqual(["flush-all"]);
    expect(fq.length).toBe(1);
  });
});

describe("faults", () => {
  it("reach the domain's handler with device, address and flags; -ENOSYS without one", () => {
    const env = makeEnv();
    addTestIommu(env, { name: "mmu" });
    const d = addDevice(env, { name: "f", iommus: [{ iommu: "mmu", ids: [1] }] });
    const dom = iommuGetDomainForDev(d.ref)!;
    expect(reportIommuFault(dom, d.ref, iova(0x1000), IOMMU_FAULT_WRITE)).toBe(-38);
    const seen: string[] = [];
    iommuSetFaultHandler(
      dom,
      (domain, dev, at, flags, token) => {
        seen.push(`${domain.type} ${dev?.name} ${at.toString(16)} ${flags} ${String(token)}`);
        return 0;
      },
      "tok",
    );
    expect(reportIommuFault(dom, d.ref, iova(0xdead_0000), IOMMU_FAULT_WRITE)).toBe(0);
    expect(seen).toEqual([`${IOMMU_DOMAIN_DMA} f dead0000 1 tok`]);
  });
});
