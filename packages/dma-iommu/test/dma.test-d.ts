import type { Device } from "@devref/device-core";
import type { ARef, Borrowed, Bound, Core, DmaAddr, PhysAddr } from "@devref/raw-device";
import { describe, expectTypeOf, it } from "vitest";
import {
  type CoherentAllocation,
  DMA_TO_DEVICE,
  type DmaSystem,
  dmaAllocCoherent,
  dmaConfigure,
  dmaMapSingle,
  dmaSetMask,
  dmaUnmapSingle,
  type IommuDevice,
  type IommuOps,
  iommuDeviceRegister,
  iommuPagingDomainAlloc,
} from "../src/index.js";

declare const system: DmaSystem;
declare const owned: ARef<Device>;
declare const bound: Borrowed<Device<Bound>, "probe">;
declare const core: Borrowed<Device<Core>, "probe">;
declare const pa: PhysAddr;
declare const addr: DmaAddr;
declare const ops: IommuOps;

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
    expectTypeOf<IommuDevice["hwDevice"]>().toEqualTypeOf<ARef<Device> | null>();
    expectTypeOf<IommuDevice["clientRefs"]>().toEqualTypeOf<readonly ARef<Device>[]>();
    // @ts-expect-error a borrow is not an owned reference: it cannot be kept as one
    const kept: ARef<Device> = bound;
    void kept;
    // @ts-expect-error registering needs the IOMMU's own device in a bound context
    iommuDeviceRegister(system, owned, ops);
    iommuDeviceRegister(system, bound, ops);
    // @ts-expect-error unmanaged domains are allocated by a bound driver
    iommuPagingDomainAlloc(owned);
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
