//! C header: include/linux/iommu.h
//! C source: drivers/iommu/iommu.c (the core objects: domains, groups, per-device data,
//! registered IOMMUs; what a driver supplies)

import type { Device, Machine } from "@devref/device-core";
import { DeviceScope, type DeviceState, deviceStateOf } from "@devref/device-core/unsafe";
import { IotlbGather } from "@devref/io-pgtable";
import {
  type ARef,
  argumentError,
  type Borrowed,
  checkBoolean,
  checkCallback,
  checkInteger,
  checkObject,
  checkString,
  describeValue,
  type Iova,
  type PhysAddr,
} from "@devref/raw-device";
import type { Lifetime } from "@devref/raw-device/unsafe";
import type { DmaSystem } from "./system.js";

// ---------------------------------------------------------------------------------------
// Domain types (include/linux/iommu.h).

/** `__IOMMU_DOMAIN_PAGING`: the domain has page tables. */
export const IOMMU_DOMAIN_PAGING_BIT = 1;
/** `__IOMMU_DOMAIN_DMA_API`: the domain is owned by dma-iommu. */
export const IOMMU_DOMAIN_DMA_API_BIT = 2;
/** `__IOMMU_DOMAIN_PT`: pass-through. */
export const IOMMU_DOMAIN_PT_BIT = 4;
/** `__IOMMU_DOMAIN_DMA_FQ`: dma-iommu with a flush queue. */
export const IOMMU_DOMAIN_DMA_FQ_BIT = 8;
/** All DMA is blocked. */
export const IOMMU_DOMAIN_BLOCKED = 0;
/** Pass-through: IOVA = physical address. */
export const IOMMU_DOMAIN_IDENTITY = 4;
/** A paging domain managed by a driver through `iommuMap`/`iommuUnmap`. */
export const IOMMU_DOMAIN_UNMANAGED = 1;
/** A paging domain owned by dma-iommu, strict invalidation. */
export const IOMMU_DOMAIN_DMA = 3;
/** A paging domain owned by dma-iommu, lazy invalidation through a flush queue. */
export const IOMMU_DOMAIN_DMA_FQ = 11;

/** The domain types this model supports. */
export type IommuDomainType =
  | typeof IOMMU_DOMAIN_BLOCKED
  | typeof IOMMU_DOMAIN_IDENTITY
  | typeof IOMMU_DOMAIN_UNMANAGED
  | typeof IOMMU_DOMAIN_DMA
  | typeof IOMMU_DOMAIN_DMA_FQ;

/** @internal */
export const DOMAIN_TYPES: readonly IommuDomainType[] = [
  IOMMU_DOMAIN_BLOCKED,
  IOMMU_DOMAIN_IDENTITY,
  IOMMU_DOMAIN_UNMANAGED,
  IOMMU_DOMAIN_DMA,
  IOMMU_DOMAIN_DMA_FQ,
];

/** `IOMMU_FAULT_READ`. */
export const IOMMU_FAULT_READ = 0;
/** `IOMMU_FAULT_WRITE`. */
export const IOMMU_FAULT_WRITE = 1;

/** `enum iommu_cap`, as names. */
export type IommuCap = "cache-coherency" | "noexec" | "deferred-flush";

/** @internal */
export const CAPS: readonly IommuCap[] = ["cache-coherency", "noexec", "deferred-flush"];

/**
 * The largest IOVA granule dma-iommu can use: the kernel's IOVA granule may not exceed
 * `PAGE_SIZE`, and the largest page size the kernel builds with is 64 KiB.
 */
export const IOMMU_DMA_MAX_GRANULE = 65536;

/** The kernel's name of a domain type, for messages. Any value is accepted. */
export function iommuDomainTypeName(type: number): string {
  switch (type) {
    case IOMMU_DOMAIN_BLOCKED:
      return "BLOCKED";
    case IOMMU_DOMAIN_IDENTITY:
      return "IDENTITY";
    case IOMMU_DOMAIN_UNMANAGED:
      return "UNMANAGED";
    case IOMMU_DOMAIN_DMA:
      return "DMA";
    case IOMMU_DOMAIN_DMA_FQ:
      return "DMA-FQ";
    default:
      return `type ${describeValue(type)}`;
  }
}

// ---------------------------------------------------------------------------------------
// What an IOMMU driver supplies.

/**
 * A paging domain's operations, supplied by the IOMMU driver (`struct iommu_domain_ops`).
 * Input addresses are {@link Iova}s, output addresses {@link PhysAddr}s, so the two cannot be
 * swapped by accident.
 *
 * **Invariants:** `mapPages` maps `pgcount` pages of one size and may map fewer (returns the
 * bytes mapped, throws a `DevrefError` on failure); `unmapPages` returns the bytes unmapped
 * and reports each cleared page through {@link iommuIotlbGatherAddPage} unless the gather is
 * `queued`.
 */
export interface IommuDomainOps {
  /** Inclusive aperture; default `0 … 2^53 − 1`. */
  readonly apertureStart?: Iova;
  readonly apertureEnd?: Iova;
  /** Whether IOVAs must stay inside the aperture (`geometry.force_aperture`). */
  readonly forceAperture?: boolean;
  /** Called once with the core's domain object right after allocation (the kernel embeds it). */
  bindDomain?(domain: IommuDomain): void;
  /** `attach_dev`: program the hardware so that `dev`'s streams use this domain. */
  attachDev<S>(dev: Borrowed<Device, S>, ids: readonly number[]): void;
  mapPages(iova: Iova, paddr: PhysAddr, pgsize: number, pgcount: number, prot: number): number;
  unmapPages(iova: Iova, pgsize: number, pgcount: number, gather: IotlbGather): number;
  /** `iotlb_sync`: invalidate what the gather collected. */
  iotlbSync(gather: IotlbGather): void;
  /** `flush_iotlb_all`. */
  flushIotlbAll(): void;
  /** `iotlb_sync_map` (optional). */
  iotlbSyncMap?(iova: Iova, size: number): void;
  /** `iova_to_phys`: 0 when unmapped. */
  iovaToPhys(iova: Iova): PhysAddr;
  /** `free`: give back page tables. */
  free(): void;
}

/**
 * An IOMMU driver's operations (`struct iommu_ops`). Every device argument is a borrow
 * valid only for the call: the core keeps the owned references, drivers keep none.
 */
export interface IommuOps {
  /** Page sizes the hardware supports (`pgsize_bitmap`). */
  readonly pgsizeBitmap: number;
  /**
   * `probe_device`: accept a device that names this IOMMU in its `iommus`; throw `ENODEV`
   * to decline.
   */
  probeDevice<S>(dev: Borrowed<Device, S>, ids: readonly number[]): void;
  /** `release_device`. */
  releaseDevice?<S>(dev: Borrowed<Device, S>, ids: readonly number[]): void;
  /**
   * `device_group`: a key naming the group; devices with equal keys share a group. Omitted:
   * one group per device (`generic_single_device_group`).
   */
  deviceGroup?<S>(dev: Borrowed<Device, S>, ids: readonly number[]): string | number;
  /** `domain_alloc_paging`: a new paging domain usable by `dev`. */
  domainAllocPaging<S>(dev: Borrowed<Device, S>): IommuDomainOps;
  /** `def_domain_type`: force IDENTITY or DMA for `dev`; null leaves it to the system. */
  defDomainType?<S>(dev: Borrowed<Device, S>): IommuDomainType | null;
  /** `capable`. */
  capable?<S>(dev: Borrowed<Device, S>, cap: IommuCap): boolean;
  /** Attach to the static identity domain; without it IDENTITY is unsupported. */
  attachIdentity?<S>(dev: Borrowed<Device, S>, ids: readonly number[]): void;
  /** Attach to the static blocking domain; without it BLOCKED only stops the DMA API. */
  attachBlocked?<S>(dev: Borrowed<Device, S>, ids: readonly number[]): void;
  /**
   * `get_resv_regions`: IOVA ranges `dev` must never be given (an MSI doorbell the host
   * catches before the IOMMU, say). A DMA domain reserves them in its IOVA space when the
   * first device is configured behind it, as `iova_reserve_iommu_regions` does.
   */
  getResvRegions?<S>(dev: Borrowed<Device, S>, ids: readonly number[]): readonly IommuResvRegion[];
}

/** `enum iommu_resv_type`, as names. */
export type IommuResvType = "direct" | "direct-relaxable" | "reserved" | "msi" | "sw-msi";

/** The reserved-region types {@link IommuOps.getResvRegions} may give. */
export const IOMMU_RESV_TYPES: readonly IommuResvType[] = Object.freeze([
  "direct",
  "direct-relaxable",
  "reserved",
  "msi",
  "sw-msi",
]);

/**
 * A reserved IOVA region (`struct iommu_resv_region`).
 *
 * **Invariants:** `length ≥ 1`; `start + length` is a safe integer.
 */
export interface IommuResvRegion {
  readonly start: number;
  readonly length: number;
  /** The `IOMMU_*` prot bits of the region (`IOMMU_WRITE | IOMMU_NOEXEC | IOMMU_MMIO` for an MSI doorbell). */
  readonly prot: number;
  readonly type: IommuResvType;
}

/** A fault handler (`iommu_fault_handler_t`): returns 0 if handled, a negative errno if not. */
export type IommuFaultHandler = (
  domain: IommuDomain,
  dev: Device | null,
  iova: Iova,
  flags: number,
  token: unknown,
) => number;

const OPTIONAL_OPS = [
  "releaseDevice",
  "deviceGroup",
  "defDomainType",
  "capable",
  "attachIdentity",
  "attachBlocked",
  "getResvRegions",
] as const;

/** The checks of `iommu_device_register` on what the driver hands over. */
/** @internal */
export function checkIommuOps(where: string, ops: IommuOps): void {
  checkObject(where, "ops", ops);
  checkInteger(where, "ops.pgsizeBitmap", ops.pgsizeBitmap, 1, Number.MAX_SAFE_INTEGER);
  checkCallback(where, "ops.probeDevice", ops.probeDevice);
  checkCallback(where, "ops.domainAllocPaging", ops.domainAllocPaging);
  for (const k of OPTIONAL_OPS) {
    const fn = ops[k];
    if (fn !== undefined) checkCallback(where, `ops.${k}`, fn);
  }
}

const DOMAIN_OPS = [
  "attachDev",
  "mapPages",
  "unmapPages",
  "iotlbSync",
  "flushIotlbAll",
  "iovaToPhys",
  "free",
] as const;

/** The checks on the domain ops a driver's `domainAllocPaging` returns. */
/** @internal */
export function checkDomainOps(where: string, ops: IommuDomainOps): void {
  checkObject(where, "the returned domain ops", ops);
  for (const k of DOMAIN_OPS) checkCallback(where, `domain ops.${k}`, ops[k]);
  if (ops.bindDomain !== undefined) checkCallback(where, "domain ops.bindDomain", ops.bindDomain);
  if (ops.iotlbSyncMap !== undefined)
    checkCallback(where, "domain ops.iotlbSyncMap", ops.iotlbSyncMap);
  const limit = Number.MAX_SAFE_INTEGER;
  if (ops.apertureStart !== undefined)
    checkInteger(where, "domain ops.apertureStart", ops.apertureStart, 0, limit);
  if (ops.apertureEnd !== undefined)
    checkInteger(where, "domain ops.apertureEnd", ops.apertureEnd, ops.apertureStart ?? 0, limit);
  if (ops.forceAperture !== undefined)
    checkBoolean(where, "domain ops.forceAperture", ops.forceAperture);
}

// ---------------------------------------------------------------------------------------
// Core objects. Only the core creates them; the package exports their types, not their
// constructors. Whatever would let a caller drop a count the core holds (its owned
// references, the raw device objects) is kept in #private fields that this module reaches
// through the accessors set in the static blocks.

// module-state: a privileged-access slot, assigned once by IommuClient's static block.
let clientInternals: {
  state(c: IommuClient): DeviceState;
  release(c: IommuClient): void;
};
// module-state: a privileged-access slot, assigned once by IommuGroup's static block.
let groupMembers: (g: IommuGroup) => Map<DeviceState, IommuClient>;
// module-state: a privileged-access slot, assigned once by IommuDomain's static block.
let setDomainHandler: (d: IommuDomain, h: IommuFaultHandler | null, token: unknown) => void;
// module-state: a privileged-access slot, assigned once by IommuDevice's static block.
let iommuInternals: {
  clients(i: IommuDevice): Map<DeviceState, IommuClient>;
  groups(i: IommuDevice): Map<string | number, IommuGroup>;
  dropHw(i: IommuDevice): void;
};

/**
 * An IOMMU domain (`struct iommu_domain`): an address space devices attach to.
 *
 * **Invariants:** a freed domain is never attached; `pgsizes` is `pgsizeBitmap` as an
 * ascending list; `ops` is null exactly for IDENTITY and BLOCKED.
 */
export class IommuDomain {
  readonly type: IommuDomainType;
  readonly iommu: IommuDevice;
  /** The driver's ops; null for the static IDENTITY and BLOCKED domains. */
  readonly ops: IommuDomainOps | null;
  readonly pgsizeBitmap: number;
  /** @internal Supported page sizes, ascending. */
  readonly pgsizes: readonly number[];
  /** The smallest page size, or 0 for non-paging domains. */
  readonly minPagesz: number;
  readonly apertureStart: Iova;
  readonly apertureEnd: Iova;
  readonly forceAperture: boolean;
  /** @internal dma-iommu's cookie (iova domain, flush queue). */
  cookie: import("./dma-iommu.js").DmaIommuCookie | null = null;
  /** @internal The gather reused by unmaps of this domain. */
  readonly gather: IotlbGather = new IotlbGather(false);
  #faultHandler: IommuFaultHandler | null = null;
  #faultToken: unknown = undefined;
  /** @internal Groups attached. */
  users = 0;
  /** @internal */
  freed = false;
  /** @internal A group's default domain: it lives and dies with its group. */
  isDefault = false;
  /** Invalidations sent to the driver (`iotlb_sync` calls with a non-empty gather). */
  iotlbSyncs = 0;

  /** @internal Domains come from the core (default domains, `iommuPagingDomainAlloc`). */
  constructor(type: IommuDomainType, iommu: IommuDevice, ops: IommuDomainOps | null) {
    this.type = type;
    this.iommu = iommu;
    this.ops = ops;
    const paging = (type & IOMMU_DOMAIN_PAGING_BIT) !== 0;
    this.pgsizeBitmap = paging ? iommu.ops.pgsizeBitmap : 0;
    const sizes: number[] = [];
    for (let s = 1; s <= this.pgsizeBitmap; s *= 2) {
      if (Math.floor(this.pgsizeBitmap / s) % 2 === 1) sizes.push(s);
    }
    this.pgsizes = sizes;
    this.minPagesz = sizes[0] ?? 0;
    // SAFETY: 0 and 2^53 − 1 are whole IOVAs; the driver's values were checked on hand-over.
    this.apertureStart = ops?.apertureStart ?? (0 as Iova);
    // SAFETY: as above.
    this.apertureEnd = ops?.apertureEnd ?? (Number.MAX_SAFE_INTEGER as Iova);
    this.forceAperture = ops?.forceAperture ?? false;
  }

  /** Whether the domain has page tables (`__IOMMU_DOMAIN_PAGING`). */
  get isPaging(): boolean {
    return (this.type & IOMMU_DOMAIN_PAGING_BIT) !== 0;
  }
  /** `iommu_is_dma_domain`. */
  get isDma(): boolean {
    return (this.type & IOMMU_DOMAIN_DMA_API_BIT) !== 0;
  }
  /** The installed fault handler, or null (`iommuSetFaultHandler`). */
  get handler(): IommuFaultHandler | null {
    return this.#faultHandler;
  }
  /** The token given with the handler. */
  get handlerToken(): unknown {
    return this.#faultToken;
  }

  static {
    setDomainHandler = (d, h, token) => {
      d.#faultHandler = h;
      d.#faultToken = token;
    };
  }
}

/** @internal Installs a checked fault handler (see iommuSetFaultHandler). */
export function installFaultHandler(
  d: IommuDomain,
  h: IommuFaultHandler | null,
  token: unknown,
): void {
  setDomainHandler(d, h, token);
}

/**
 * An IOMMU group (`struct iommu_group`): devices the IOMMU cannot isolate from each other.
 * All its devices share one domain.
 */
export class IommuGroup {
  readonly id: number;
  readonly iommu: IommuDevice;
  /** @internal */
  readonly key: string | number;
  readonly #members: Map<DeviceState, IommuClient> = new Map();
  /** The default domain, allocated when the first device joins. */
  defaultDomain: IommuDomain | null = null;
  /** The domain in use. */
  domain: IommuDomain | null = null;

  /** @internal Groups come from the core. */
  constructor(id: number, iommu: IommuDevice, key: string | number) {
    this.id = id;
    this.iommu = iommu;
    this.key = key;
  }

  /** Names of member devices, in join order. */
  get deviceNames(): string[] {
    return [...this.#members.values()].map((c) => c.device);
  }

  /** How many devices are in the group. */
  get size(): number {
    return this.#members.size;
  }

  static {
    groupMembers = (g) => g.#members;
  }
}

/**
 * Per-device IOMMU data (`struct dev_iommu`), kept in the device's own `iommu` slot: which
 * IOMMU serves the device, its stream IDs and its group. It keeps a counted reference to the
 * device (held as `"iommu client <iommu>"`) until the device is released from the IOMMU —
 * at the end of its DMA binding, or when the IOMMU goes away — and then reads as
 * {@link gone}: whoever uses it next notices that no translation is left.
 *
 * **Invariants:** `gone` turns true once and never back; a gone client holds no reference
 * and is in no group's member list.
 */
export class IommuClient {
  /** The name of the IOMMU (what the device's firmware `iommus` names). */
  readonly iommu: string;
  /** The IOMMU itself. */
  readonly iommuDevice: IommuDevice;
  /** The device's name. */
  readonly device: string;
  readonly ids: readonly number[];
  readonly group: IommuGroup;
  readonly #st: DeviceState;
  #held: Lifetime | null;

  /** @internal Clients come from the core. */
  constructor(iommu: IommuDevice, st: DeviceState, ids: readonly number[], group: IommuGroup) {
    this.iommu = iommu.name;
    this.iommuDevice = iommu;
    this.device = st.name;
    this.#st = st;
    this.ids = ids;
    this.group = group;
    this.#held = st.hold(`iommu client ${iommu.name}`);
  }

  /** Whether the device was released from its IOMMU (no translation is left for it). */
  get gone(): boolean {
    return this.#held === null;
  }

  static {
    clientInternals = {
      state: (c) => c.#st,
      release: (c) => {
        const held = c.#held;
        c.#held = null;
        if (held !== null) c.#st.unhold(held);
      },
    };
  }
}

/** @internal The devices an IOMMU serves (iommu-core's business only). */
export function iommuClientsOf(i: IommuDevice): Map<DeviceState, IommuClient> {
  return iommuInternals.clients(i);
}

/** @internal The groups of an IOMMU. */
export function iommuGroupsOf(i: IommuDevice): Map<string | number, IommuGroup> {
  return iommuInternals.groups(i);
}

/** @internal Puts the IOMMU's reference to its hardware device. */
export function iommuDropHw(i: IommuDevice): void {
  iommuInternals.dropHw(i);
}

/** @internal Puts a client's device reference: it reads as gone from then on. */
export function clientRelease(c: IommuClient): void {
  clientInternals.release(c);
}

/** @internal The members of a group. */
export function groupMembersOf(g: IommuGroup): Map<DeviceState, IommuClient> {
  return groupMembers(g);
}

/** @internal The device object behind a client (the core's business only). */
export function clientStateOf(client: IommuClient): DeviceState {
  return clientInternals.state(client);
}

/**
 * A registered hardware IOMMU (`struct iommu_device`). The core keeps an owned reference to
 * the IOMMU's own device and to every device it serves, and gives all of them back when it
 * is unregistered. It never hands those references out: callers get names, or fresh owned
 * references of their own that they must put.
 *
 * **Invariants:** after unregister it holds no reference and serves nobody.
 *
 * **Errors:** {@link getHwDevice} and {@link getClientRefs} throw `EINVAL` for a label that
 * is not a non-empty string.
 *
 * @example
 * ```ts
 * const iommu = system.iommus.get("smmu")!;
 * iommu.clientNames; // ["gpu"]
 * using hw = iommu.getHwDevice("my tool")!; // a reference of my own, put at scope end
 * ```
 */
export class IommuDevice {
  readonly name: string;
  readonly ops: IommuOps;
  readonly system: DmaSystem;
  /** The machine of the IOMMU's hardware device (where its messages go). */
  readonly machine: Machine;
  #hw: ARef<Device> | null;
  readonly #hwName: string;
  readonly #clients: Map<DeviceState, IommuClient> = new Map();
  readonly #groups: Map<string | number, IommuGroup> = new Map();
  /** Whether the IOMMU is registered. */
  registered = true;

  /** @internal IOMMUs come from {@link iommuDeviceRegister}. */
  constructor(system: DmaSystem, name: string, ops: IommuOps, hw: ARef<Device>) {
    this.system = system;
    this.name = name;
    this.ops = ops;
    this.machine = deviceStateOf(hw).machine;
    this.#hw = hw;
    this.#hwName = hw.name;
  }

  /** The name of the IOMMU's hardware device, or null once unregistered. */
  get hwDeviceName(): string | null {
    return this.#hw === null ? null : this.#hwName;
  }

  /**
   * A new owned reference to the IOMMU's hardware device, labelled `label`, which the caller
   * must put (or dispose); null once unregistered.
   *
   * **Errors:** `EINVAL` for a label that is not a non-empty string.
   */
  getHwDevice(label: string): ARef<Device> | null {
    checkString("IommuDevice.getHwDevice", "label", label, true);
    return this.#hw === null ? null : this.#hw.get(label);
  }

  /** Names of the devices this IOMMU serves, in probe order. */
  get clientNames(): readonly string[] {
    return [...this.#clients.values()].map((c) => c.device);
  }

  /**
   * New owned references to the devices this IOMMU serves, each labelled `label`; the caller
   * must put every one.
   *
   * **Errors:** `EINVAL` for a label that is not a non-empty string.
   */
  getClientRefs(label: string): ARef<Device>[] {
    checkString("IommuDevice.getClientRefs", "label", label, true);
    const out: ARef<Device>[] = [];
    for (const st of this.#clients.keys()) {
      out.push(withDeviceBorrow(st, (dev) => dev.get(label)));
    }
    return out;
  }

  /** The groups, by id order. */
  get groupList(): readonly IommuGroup[] {
    return [...this.#groups.values()].sort((a, b) => a.id - b.id);
  }

  static {
    iommuInternals = {
      clients: (i) => i.#clients,
      groups: (i) => i.#groups,
      dropHw: (i) => {
        const hw = i.#hw;
        i.#hw = null;
        hw?.put();
      },
    };
  }
}

// ---------------------------------------------------------------------------------------
// Borrows for driver callbacks.

/** Calls `fn` with a borrow of `st` that ends with the call. */
export function withDeviceBorrow<R>(st: DeviceState, fn: (dev: Borrowed<Device, never>) => R): R {
  const scope = new DeviceScope();
  try {
    // SAFETY: the borrow is revoked when the scope closes right after fn returns.
    return fn(scope.borrow(st, st.Handle) as Borrowed<Device, never>);
  } finally {
    scope.close();
  }
}

/** @internal The IOMMU data in a device's slot (gone or not), or null. */
export function clientOfState(st: DeviceState): IommuClient | null {
  const c = st.iommu;
  return c instanceof IommuClient ? c : null;
}

/** @internal An IOMMU domain (checkInstance's test written out: it is on the unmap path). */
export function checkDomain(where: string, domain: unknown): IommuDomain {
  if (!(domain instanceof IommuDomain)) {
    throw argumentError(where, "domain", "an IommuDomain", domain);
  }
  return domain;
}

/** For messages of checks on IOTLB gathers. */
export function checkGather(where: string, gather: unknown): IotlbGather {
  if (!(gather instanceof IotlbGather)) {
    throw argumentError(
      where,
      "gather",
      "the core's IotlbGather (the one unmapPages received)",
      gather,
    );
  }
  return gather;
}
