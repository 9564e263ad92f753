// Issue 9's DMA seams: one IOMMU slot per device whatever its bus (a PCI function described
// with `iommus` goes behind an IOMMU like a platform device), honest holders, memory and RAM
// from the caller, and no import-time wiring.
import { definePciDriver, definePlatformDriver, PciBus } from "@devref/bus";
import { auditDevices, holders, IrqDomain, Machine } from "@devref/device-core";
import { BuddyAllocator, type PhysAddr, refcountOf, SparseMemory } from "@devref/raw-device";
import { describe, expect, it } from "vitest";
import {
  type CoherentAllocation,
  DMA_BIDIRECTIONAL,
  DMA_MAPPING_ERROR,
  DMA_TO_DEVICE,
  DmaSystem,
  dmaAllocCoherent,
  dmaLastError,
  dmaMapSingle,
  dmaSetMaskAndCoherent,
  dmaUnmapSingle,
  iommuGetDomainForDev,
  iommuIovaToPhys,
} from "../src/index.js";
import { IommuClient } from "../src/iommu.js";
import { addTestIommu, makeEnv } from "./dma-helpers.js";
import { expectCode } from "./expect-code.js";

describe("issue 9: honest holders", () => {
  it("holders(dev) of a bound device lists its MMIO, IRQ, DMA state, coherent buffer and IOMMU client by label, and all go at unbind", () => {
    const env = makeEnv();
    addTestIommu(env, { name: "hmmu" });
    const aic = new IrqDomain({ machine: env.machine, name: "aic", size: 32 });
    let ring: CoherentAllocation | null = null;
    env.bus.registerDriver(
      definePlatformDriver({
        name: "nic",
        ofMatchTable: [{ compatible: "acme,nic" }],
        probe: (dev) => {
          const regs = dev.ioremapResource(0);
          dev.requestIrq(0, () => "handled", "nic rx");
          dmaSetMaskAndCoherent(dev, 64);
          ring = dmaAllocCoherent(dev, 4096);
          return { regs };
        },
      }),
    );
    const nic = env.bus.register({
      name: "nic0",
      compatible: ["acme,nic"],
      mem: [{ start: 0x2000_0000, size: 0x1000 }],
      interrupts: [{ domain: "aic", hwirq: 3, trigger: "level" }],
      iommus: [{ iommu: "hmmu", ids: [7] }],
    });
    expect(nic.isBound).toBe(true);
    const labels = holders(nic).map((h) => h.label);
    expect(labels).toEqual([
      "creator",
      `${env.bus.name} bus`, // the bus's reference while the device is on it
      "dma", // the DMA state
      "iommu client hmmu", // the IOMMU attachment
      "mmio mem0", // the MMIO region
      "irq aic:3", // the interrupt
      "coherent 4096", // the coherent buffer's memory
      `dma coherent 0x${ring!.dmaAddr.toString(16)}+4096`, // its devres entry
    ]);
    // Every count is accounted for by a label.
    expect(refcountOf(nic)).toBe(labels.length);
    expect(aic.raise(3)).toBe(true);
    env.bus.unplug(nic);
    expect(ring!.isAvailable).toBe(false);
    expect(holders(nic).map((h) => h.label)).toEqual(["creator"]);
    expect(env.system.audit().problems).toEqual([]);
    nic.put();
  });
});

describe("issue 9: a PCI function behind an IOMMU", () => {
  it("a PciBus function described with iommus is mapped through dma-iommu, and unplug leaves nothing", () => {
    const env = makeEnv();
    const mmu = addTestIommu(env, { name: "pcie-dart" });
    const pci = new PciBus({ machine: env.machine, domain: 1, busNumber: 0 });
    const buf = env.system.allocBuffer(8192, "high");
    const seen: { addr: number; ring: CoherentAllocation }[] = [];
    pci.registerDriver(
      definePciDriver<{ addr: number }>({
        name: "virtio-blk",
        idTable: [{ vendor: 0x1af4, device: 0x1042 }],
        probe: (dev) => {
          dev.enableDevice();
          dev.setMaster();
          dmaSetMaskAndCoherent(dev, 64);
          const ring = dmaAllocCoherent(dev, 16384);
          const addr = dmaMapSingle(dev, buf, 6000, DMA_TO_DEVICE);
          expect(addr).not.toBe(DMA_MAPPING_ERROR);
          seen.push({ addr, ring });
          return { addr };
        },
        remove: (dev, data) => {
          dmaUnmapSingle(dev, data.addr as never, 6000, DMA_TO_DEVICE);
        },
      }),
    );
    const fn = pci.register({
      slot: 0,
      vendor: 0x1af4,
      device: 0x1042,
      classCode: 0x010000,
      bars: [null, { size: 0x1000 }],
      iommus: [{ iommu: "pcie-dart", ids: [5] }],
    });
    expect(fn.isBound).toBe(true);
    const keep = fn.get("test");
    expect(fn.dmaOps?.name).toBe("iommu-dma");
    // The one IOMMU slot, filled from the firmware node as for a platform device.
    expect(fn.firmware.iommus).toEqual([{ iommu: "pcie-dart", ids: [5] }]);
    expect(fn.iommu).toBeInstanceOf(IommuClient);
    expect(mmu.events).toContain(`attach ${fn.name}`);
    const dom = iommuGetDomainForDev(fn)!;
    const { addr, ring } = seen[0]!;
    // Both the streaming and the coherent mapping translate through the domain.
    expect(iommuIovaToPhys(dom, addr as never)).toBe(buf);
    expect(iommuIovaToPhys(dom, ring.dmaAddr)).toBe(ring.phys);
    expect(env.system.audit().problems).toEqual([]);
    expect(env.system.audit().iovaBytes).toBeGreaterThan(0);
    pci.unregister(fn); // puts the creator's reference
    expect(holders(keep).map((h) => h.label)).toEqual(["test"]);
    expect(keep.iommu).toBeNull();
    const a = env.system.audit();
    expect(a.problems).toEqual([]);
    expect([a.iovaBytes, a.coherentBytes, a.bounceSlots, a.iommuPageBytes]).toEqual([0, 0, 0, 0]);
    expect(mmu.events.at(-1)).toBe("free");
    keep.put();
    env.system.freeBuffer(buf, 8192);
    expect(env.system.audit().ramInUse).toBe(0);
    expect(auditDevices(env.machine).map((d) => d.name)).toEqual(["pcie-dart"]);
  });
});

describe("issue 9: memory and RAM from the caller", () => {
  function board() {
    const memory = new SparseMemory();
    // One RAM bank above 4 GiB, as on Apple silicon.
    const ram = new BuddyAllocator(memory, 0x8_0000_0000, 256 * 2 ** 20, 64);
    const machine = new Machine({ name: "soc", logSink: () => {} });
    const system = new DmaSystem({ machine, memory, ram, swiotlb: { nslabs: 4096 } });
    return { memory, ram, machine, system };
  }

  it("the pool, coherent memory, buffers and page tables come from the caller's RAM and are audited by use", () => {
    const { memory, ram, system } = board();
    expect(system.memory).toBe(memory);
    // The pool was taken from the caller's RAM (there is none below 4 GiB).
    expect(system.swiotlb.base).toBeGreaterThanOrEqual(0x8_0000_0000);
    expect(system.audit().ramByUse.swiotlb).toBe(4096 * 2048);
    expect(ram.bytesInUse).toBe(4096 * 2048);
    const buf = system.allocBuffer(4096);
    expect(system.ramUseOf(buf, 4096)).toBe("buffer");
    expect(ram.isAllocated(buf, 4096)).toBe(true);
    const page = system.iommuPages.alloc(4096, 4096);
    expect(system.ramUseOf(page)).toBe("iommu-pages");
    // Table pages with no paging domain alive are a leak the audit names.
    expect(system.audit().problems.join()).toMatch(/IOMMU page tables/);
    system.iommuPages.free(page, 4096);
    system.freeBuffer(buf, 4096);
    expect(system.ramUseOf(buf)).toBeNull();
    expect(system.audit()).toMatchObject({ ok: true, ramInUse: 4096 * 2048 });
  });

  it("a device on the caller's RAM: coherent memory is RAM of the board; a 32-bit device cannot reach the pool", () => {
    const { machine, system } = board();
    const pbus = new PciBus({ machine, domain: 2 });
    let wide: CoherentAllocation | null = null;
    let narrowAddr = -2;
    pbus.registerDriver(
      definePciDriver({
        name: "d",
        idTable: [{ vendor: 1 }],
        probe: (dev) => {
          if (dev.ids.endsWith(":0001")) {
            dmaSetMaskAndCoherent(dev, 64);
            wide = dmaAllocCoherent(dev, 8192);
          } else {
            const b = system.allocBuffer(4096);
            narrowAddr = dmaMapSingle(dev, b, 64, DMA_BIDIRECTIONAL);
            expect(dmaLastError(dev)?.message).toMatch(/bounce pool lies above/);
            system.freeBuffer(b, 4096);
          }
          return null;
        },
      }),
    );
    // dma-direct refuses nothing here: the lowest DMA zone is the RAM itself.
    const a = pbus.register({ slot: 0, vendor: 1, device: 1, classCode: 0 });
    const b = pbus.register({ slot: 1, vendor: 1, device: 2, classCode: 0 });
    expect(a.isBound && b.isBound).toBe(true);
    expect(system.ramUseOf(wide!.phys, 8192)).toBe("coherent");
    expect(narrowAddr).toBe(DMA_MAPPING_ERROR);
    const pa: PhysAddr = wide!.phys;
    pbus.unregister(a); // puts the creator's reference
    expect(system.ramUseOf(pa)).toBeNull(); // freed with the binding: a device model sees it
    pbus.unregister(b);
    expect(system.audit().problems).toEqual([]);
  });

  it("refuses RAM over another memory, and conflicting options, before anything is made", () => {
    const memory = new SparseMemory();
    const other = new BuddyAllocator(new SparseMemory(), 0x8_0000_0000, 2 ** 24, 4096);
    expectCode(() => new DmaSystem({ memory, ram: other }), "EINVAL", /options\.memory/);
    expectCode(() => new DmaSystem({ memory, memorySize: 2 ** 40 }), "EINVAL");
    expectCode(
      () => new DmaSystem({ ram: other, lowRam: { base: 0, size: 4096 } }),
      "EINVAL",
      /lowRam/,
    );
    expectCode(() => new DmaSystem({ ram: [] }), "EINVAL");
    // A pool that does not fit the caller's RAM is ENOMEM, not a crash.
    expectCode(() => new DmaSystem({ ram: other, swiotlb: { nslabs: 2 ** 16 } }), "ENOMEM");
  });
});
