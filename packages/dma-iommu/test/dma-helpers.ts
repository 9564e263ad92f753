// Test fixtures: a DMA system with a platform bus, devices whose driver configures DMA in
// probe and lends a Bound borrow to test code through an interrupt handler, and a small
// IOMMU driver built on io-pgtable.

import { definePlatformDriver, PlatformBus, type PlatformDevice } from "@devref/bus";
import {
  type BoundCallback,
  type Device,
  type IommuRef,
  type LogRecord,
  Machine,
} from "@devref/device-core";
import {
  type ArmLpaeIoPgtable,
  allocIoPgtable,
  type IommuIotlbGather,
  type IotlbGather,
} from "@devref/io-pgtable";
import {
  type ARef,
  type Bound,
  type Core,
  DevrefError,
  type Iova,
  iova,
  type PhysAddr,
  type PhysAllocator,
} from "@devref/raw-device";
import {
  type DmaConfigureOptions,
  DmaSystem,
  type DmaSystemOptions,
  dmaConfigure,
  dmaSetMaskAndCoherent,
  IOMMU_DOMAIN_IDENTITY,
  type IommuDevice,
  type IommuDomain,
  type IommuDomainOps,
  type IommuDomainType,
  type IommuOps,
  type IommuResvRegion,
  iommuDeviceRegister,
  iommuIotlbGatherAddPage,
} from "../src/index.js";

let uniq = 0;

export interface Env {
  readonly machine: Machine;
  readonly system: DmaSystem;
  readonly bus: PlatformBus;
  /** Everything the machine logged. */
  readonly logs: LogRecord[];
}

/**
 * A machine of its own with a platform bus, and a DMA system that is the machine's DMA
 * layer (so every probe is DMA-configured and every binding's end quiesces DMA first), or
 * with `layer` false a standalone one that drivers configure themselves.
 */
export function makeEnv(options: DmaSystemOptions = {}, layer = true): Env {
  uniq++;
  const logs: LogRecord[] = [];
  const machine = new Machine({ name: `dmatest${uniq}`, logSink: (r) => logs.push(r) });
  return {
    machine,
    system: new DmaSystem(layer ? { ...options, machine } : options),
    bus: new PlatformBus({ name: `dmatest${uniq}`, machine }),
    logs,
  };
}

export interface TestDevice {
  readonly ref: ARef<PlatformDevice>;
  /** Runs `fn` with a Bound borrow of the device, as an interrupt handler would. */
  run<R>(fn: (dev: Device<Bound>) => R): R;
}

export interface DeviceSpec {
  readonly name: string;
  /** dma_set_mask_and_coherent in probe; default: keep the bus's 32-bit default. */
  readonly maskBits?: number;
  readonly iommus?: readonly IommuRef[];
  readonly configure?: DmaConfigureOptions;
  /** More probe work, after DMA is configured. */
  readonly probe?: (dev: Device<Core>) => void;
}

/** Registers a device and a driver for it; the driver binds at once. */
export function addDevice(env: Env, spec: DeviceSpec): TestDevice {
  uniq++;
  const compatible = `test,dev${uniq}`;
  let runner: BoundCallback<[(dev: Device<Bound>) => unknown], unknown> | null = null;
  const drv = definePlatformDriver({
    name: `drv${uniq}`,
    ofMatchTable: [{ compatible }],
    probe: (dev) => {
      dmaConfigure(env.system, dev, spec.configure ?? {});
      if (spec.maskBits !== undefined) dmaSetMaskAndCoherent(dev, spec.maskBits);
      spec.probe?.(dev);
      // What an interrupt handler or deferred work gets: a Bound borrow while bound.
      runner = dev.devmCallback((d, fn: (dev: Device<Bound>) => unknown) => fn(d), "test work");
      return {};
    },
  });
  env.bus.registerDriver(drv);
  const ref = env.bus.register({
    name: spec.name,
    compatible: [compatible],
    ...(spec.iommus === undefined ? {} : { iommus: spec.iommus }),
  });
  return {
    ref,
    run<R>(fn: (dev: Device<Bound>) => R): R {
      if (runner === null || !runner.isActive) throw new Error(`device ${spec.name} is not bound`);
      return runner(fn) as R;
    },
  };
}

// ---------------------------------------------------------------------------------------
// The test IOMMU driver.

export interface TestIommuOptions {
  readonly name?: string;
  readonly pgsizeBitmap?: number;
  /** What def_domain_type answers. */
  readonly defDomainType?: IommuDomainType | null;
  /** Force the aperture to 32 bits (like DART). */
  readonly aperture32?: boolean;
  /** What get_resv_regions answers (checked by the core, so tests may return anything). */
  readonly resvRegions?: (dev: string, ids: readonly number[]) => unknown;
}

/** One event the test IOMMU saw: an attach, a TLB sync with its range, a full flush. */
export type IommuEvent = string;

export class TestDomain implements IommuDomainOps {
  readonly table: ArmLpaeIoPgtable;
  readonly events: IommuEvent[];
  domain: IommuDomain | null = null;
  /** Fault injection: the next this-many unmapPages calls throw EIO. */
  failUnmaps = 0;
  /** Fault injection: the next this-many flushIotlbAll calls throw EIO. */
  failFlushes = 0;
  readonly apertureStart: Iova = iova(0);
  readonly apertureEnd: Iova;
  readonly forceAperture: boolean;

  constructor(pages: PhysAllocator, events: IommuEvent[], bitmap: number, aperture32: boolean) {
    this.events = events;
    this.apertureEnd = iova(aperture32 ? 0xffff_ffff : 2 ** 48 - 1);
    // ARM SMMU-style drivers always force the aperture to the table's input size.
    this.forceAperture = true;
    this.table = allocIoPgtable(
      "arm-64-lpae-s1",
      {
        pgsizeBitmap: bitmap,
        ias: 48,
        oas: 48,
        tlb: {
          tlbAddPage: (gather: IommuIotlbGather | null, at, granule) => {
            iommuIotlbGatherAddPage(this.domain!, gather, iova(Number(at)), granule);
          },
          tlbFlushWalk: () => {},
          tlbFlushAll: () => {},
        },
      },
      pages,
    );
  }
  bindDomain(domain: IommuDomain): void {
    this.domain = domain;
  }
  attachDev(dev: Device): void {
    this.events.push(`attach ${dev.name}`);
  }
  mapPages(at: Iova, paddr: PhysAddr, pgsize: number, pgcount: number, prot: number): number {
    return this.table.mapPages(at, paddr, pgsize, pgcount, prot);
  }
  unmapPages(at: Iova, pgsize: number, pgcount: number, gather: IotlbGather): number {
    if (this.failUnmaps > 0) {
      this.failUnmaps--;
      throw new DevrefError("EIO", "test IOMMU: unmap_pages failed (injected)");
    }
    return this.table.unmapPages(at, pgsize, pgcount, gather);
  }
  iotlbSync(gather: IotlbGather): void {
    this.events.push(
      `sync ${gather.start.toString(16)}-${gather.end.toString(16)} pg ${gather.pgsize.toString(16)}`,
    );
  }
  flushIotlbAll(): void {
    if (this.failFlushes > 0) {
      this.failFlushes--;
      throw new DevrefError("EIO", "test IOMMU: flush_iotlb_all failed (injected)");
    }
    this.events.push("flush-all");
  }
  iovaToPhys(at: Iova): PhysAddr {
    return this.table.iovaToPhys(at);
  }
  free(): void {
    this.events.push("free");
    this.table[Symbol.dispose]();
  }
}

export interface TestIommu {
  readonly ref: ARef<PlatformDevice>;
  readonly events: IommuEvent[];
  readonly domains: TestDomain[];
  readonly pages: PhysAllocator;
  iommu(): IommuDevice;
}

/** Registers an IOMMU device ("test,iommu") and its driver; the driver registers the IOMMU. */
export function addTestIommu(env: Env, options: TestIommuOptions = {}): TestIommu {
  uniq++;
  const name = options.name ?? `iommu${uniq}`;
  const events: IommuEvent[] = [];
  const domains: TestDomain[] = [];
  // Table memory is the system's RAM for IOMMU page tables (counted in its audit).
  const pages = env.system.iommuPages;
  const bitmap = options.pgsizeBitmap ?? 0x4020_1000;
  let registered: IommuDevice | null = null;
  const ops: IommuOps = {
    pgsizeBitmap: bitmap,
    probeDevice: () => {},
    releaseDevice: (dev) => {
      events.push(`release ${dev.name}`);
    },
    deviceGroup: (_dev, ids) => `sid:${ids.join(",")}`,
    domainAllocPaging: () => {
      const d = new TestDomain(pages, events, bitmap, options.aperture32 ?? false);
      domains.push(d);
      return d;
    },
    defDomainType: () => options.defDomainType ?? null,
    capable: (_dev, cap) => cap === "cache-coherency",
    attachIdentity: (dev) => {
      events.push(`identity ${dev.name}`);
    },
    attachBlocked: (dev) => {
      events.push(`blocked ${dev.name}`);
    },
    ...(options.resvRegions === undefined
      ? {}
      : {
          // SAFETY (test): the core checks whatever the test makes this return.
          getResvRegions: (dev, ids) =>
            options.resvRegions!(dev.name, ids) as readonly IommuResvRegion[],
        }),
  };
  const compatible = `test,iommu${uniq}`;
  const drv = definePlatformDriver({
    name: `iommu-drv${uniq}`,
    ofMatchTable: [{ compatible }],
    probe: (dev) => {
      registered = iommuDeviceRegister(env.system, dev, ops, { name });
      return {};
    },
  });
  env.bus.registerDriver(drv);
  const ref = env.bus.register({ name, compatible: [compatible] });
  return {
    ref,
    events,
    domains,
    pages,
    iommu: () => registered!,
  };
}

export { IOMMU_DOMAIN_IDENTITY };
