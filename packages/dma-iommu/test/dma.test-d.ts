import type { Device, DeviceIommu } from "@devref/device-core";
import { IOMMU_READ, type IotlbGather } from "@devref/io-pgtable";
import type { ARef, Borrowed, Bound, Core, DmaAddr, Iova, PhysAddr } from "@devref/raw-device";
import { describe, expectTypeOf, it } from "vitest";
import {
  type CoherentAllocation,
  type DeviceDma,
  DMA_TO_DEVICE,
  type DmaSystem,
  dmaAllocCoherent,
  dmaConfigure,
  dmaMapSingle,
  dmaSetMask,
  dmaUnmapSingle,
  type IommuClient,
  type IommuDevice,
  type IommuDomain,
  type IommuDomainOps,
  type IommuFaultHandler,
  type IommuOps,
  iommuDeviceRegister,
  iommuIotlbGatherAddPage,
  iommuIovaToPhys,
  iommuMap,
  iommuPagingDomainAlloc,
  iommuPgsize,
  iommuUnmap,
  iommuUnmapFast,
  reportIommuFault,
} from "../src/index.js";

declare const system: DmaSystem;
declare const owned: ARef<Device>;
declare const bound: Borrowed<Device<Bound>, "probe">;
declare const core: Borrowed<Device<Core>, "probe">;
declare const pa: PhysAddr;
declare const addr: DmaAddr;
declare const ops: IommuOps;
declare const client: IommuClient;
declare const iommuObj: IommuDevice;
declare const dma: DeviceDma;
declare const io: Iova;
declare const domain: IommuDomain;
declare const gather: IotlbGather;

describe("dma-iommu ownership promises at compile time", () => {
  it("coherent allocations and streaming maps need a Bound borrow", () => {
    // @ts-expect-error an owned reference proves nothing about binding: no DMA through it
    dmaAllocCoherent(owned, 4096);
    // @ts-expect-error nor streaming maps
    dmaMapSingle(owned, pa, 64, DMA_TO_DEVICE);
    expectTypeOf(dmaAllocCoherent(bound, 4096)).toEqualTypeOf<CoherentAllocation>();
    expectTypeOf(dmaMapSingle(core, pa, 64, DMA_TO_DEVICE)).toEqualTypeOf<DmaAddr>();
  });

  it("masks and DMA configuration are for probe (Core) only", () => {
    // @ts-expect-error a Bound borrow (an IRQ handler) may not change masks
    dmaSetMask(bound, 64);
    // @ts-expect-error nor configure DMA
    dmaConfigure(system, bound);
    // @ts-expect-error and certainly not a kept reference
    dmaSetMask(owned, 64);
    dmaSetMask(core, 64);
  });

  it("DmaAddr and PhysAddr do not mix", () => {
    // @ts-expect-error the device's address is not a CPU physical address
    dmaMapSingle(bound, addr, 64, DMA_TO_DEVICE);
    // @ts-expect-error unmap takes what map returned, not the buffer's physical address
    dmaUnmapSingle(bound, pa, 64, DMA_TO_DEVICE);
    // @ts-expect-error a bare number is neither
    dmaMapSingle(bound, 0x1000, 64, DMA_TO_DEVICE);
  });

  it("the IOMMU keeps owned references only; registration needs a bound IOMMU driver", () => {
    // What it hands out are names, or fresh references the caller owns (and must put).
    expectTypeOf<IommuDevice["hwDeviceName"]>().toEqualTypeOf<string | null>();
    expectTypeOf<IommuDevice["clientNames"]>().toEqualTypeOf<readonly string[]>();
    expectTypeOf<ReturnType<IommuDevice["getHwDevice"]>>().toEqualTypeOf<ARef<Device> | null>();
    expectTypeOf<ReturnType<IommuDevice["getClientRefs"]>>().toEqualTypeOf<ARef<Device>[]>();
    // @ts-expect-error item 8: the core's own reference on a served device is not reachable
    client.ref.put();
    // @ts-expect-error item 8: nor is the IOMMU's own hardware reference
    iommuObj.hwDevice?.put();
    // @ts-expect-error the DMA state callers see has no internal bookkeeping to call
    dma.track(0, 1, 0, 0, 0, 0);
    // @ts-expect-error one slot for IOMMU data: the device's own iommu, not the DMA state's
    void dma.iommuClient;
    // The client is what the device's slot holds (device-core's DeviceIommu).
    expectTypeOf<IommuClient>().toMatchTypeOf<DeviceIommu>();
    expectTypeOf<IommuClient["gone"]>().toEqualTypeOf<boolean>();
    // @ts-expect-error a borrow is not an owned reference: it cannot be kept as one
    const kept: ARef<Device> = bound;
    void kept;
    // @ts-expect-error registering needs the IOMMU's own device in a bound context
    iommuDeviceRegister(system, owned, ops);
    iommuDeviceRegister(system, bound, ops);
    // @ts-expect-error unmanaged domains are allocated by a bound driver
    iommuPagingDomainAlloc(owned);
  });

  it("item 7: IOVAs, physical addresses and DMA addresses do not swap", () => {
    // @ts-expect-error iova and paddr swapped: a physical address is not an IOVA
    iommuMap(domain, pa, io, 4096, IOMMU_READ);
    // @ts-expect-error nor is an IOVA a physical address
    iommuMap(domain, io, io, 4096, IOMMU_READ);
    // @ts-expect-error a bare number is neither
    iommuMap(domain, 0x1000, pa, 4096, IOMMU_READ);
    iommuMap(domain, io, pa, 4096, IOMMU_READ);
    // @ts-expect-error unmap takes the IOVA, not the physical address
    iommuUnmap(domain, pa, 4096);
    // @ts-expect-error as does the fast form
    iommuUnmapFast(domain, pa, 4096, gather);
    // @ts-expect-error a device's DMA address is no IOVA of a driver-managed domain either
    iommuUnmap(domain, addr, 4096);
    iommuUnmap(domain, io, 4096);
    // @ts-expect-error translation starts from an IOVA, never from a physical address
    iommuIovaToPhys(domain, pa);
    expectTypeOf(iommuIovaToPhys(domain, io)).toEqualTypeOf<PhysAddr>();
    // Like the kernel's dma_addr_t argument: a device's DMA address behind the domain is an IOVA.
    expectTypeOf(iommuIovaToPhys(domain, addr)).toEqualTypeOf<PhysAddr>();
    const out = new Float64Array(1);
    // @ts-expect-error page-size selection takes (iova, paddr) in that order
    iommuPgsize(domain, pa, io, 4096, out);
    // @ts-expect-error a fault is reported at an IOVA
    reportIommuFault(domain, null, pa, 0);
    // @ts-expect-error the gather collects IOVAs
    iommuIotlbGatherAddPage(domain, gather, pa, 4096);
  });

  it("item 7: an IOMMU driver's ops get the address kinds in the right places", () => {
    const good: Pick<IommuDomainOps, "mapPages" | "unmapPages" | "iovaToPhys"> = {
      mapPages: (at: Iova, p: PhysAddr) => (at === 0 || p === 0 ? 0 : 4096),
      unmapPages: (at: Iova) => (at === 0 ? 0 : 4096),
      iovaToPhys: (_at: Iova) => pa,
    };
    void good;
    const swapped: Pick<IommuDomainOps, "mapPages"> = {
      // @ts-expect-error the first argument is the IOVA, the second the physical address
      mapPages: (at: PhysAddr, p: Iova) => (at === 0 || p === 0 ? 0 : 4096),
    };
    void swapped;
    const wrongResult: Pick<IommuDomainOps, "iovaToPhys"> = {
      // @ts-expect-error iova_to_phys answers with a physical address
      iovaToPhys: (at: Iova) => at,
    };
    void wrongResult;
    const handler: IommuFaultHandler = (_d, _dev, at) => {
      expectTypeOf(at).toEqualTypeOf<Iova>();
      return 0;
    };
    void handler;
  });

  it("IOMMU driver callbacks get borrows they cannot store", () => {
    let stash: ARef<Device> | null = null;
    const driverOps: IommuOps = {
      pgsizeBitmap: 0x1000,
      probeDevice: (dev) => {
        // @ts-expect-error the callback's device is a borrow; keep dev.get() instead
        stash = dev;
      },
      domainAllocPaging: () => {
        throw new Error("unused");
      },
    };
    void driverOps;
    void stash;
  });
});
