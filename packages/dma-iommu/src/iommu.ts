//! C header: include/linux/iommu.h
//! C source: drivers/iommu/iommu.c (registration, probe and release of devices, groups,
//! default domains, attach and detach)

import type { Device, Machine } from "@devref/device-core";
import { DeviceScope, type DeviceState, deviceStateOf } from "@devref/device-core/unsafe";
import { IotlbGather } from "@devref/io-pgtable";
import {
  type ARef,
  argumentError,
  type Borrowed,
  type Bound,
  checkBoolean,
  checkCallback,
  checkInstance,
  checkInteger,
  checkObject,
  checkOneOf,
  checkString,
  DevrefError,
  describeValue,
  type Iova,
  type PhysAddr,
} from "@devref/raw-device";
import { checkDevice } from "./internal/checks.js";
import { DmaSystem } from "./system.js";

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

const DOMAIN_TYPES: readonly IommuDomainType[] = [
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

const CAPS: readonly IommuCap[] = ["cache-coherency", "noexec", "deferred-flush"];

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
] as const;

/** The checks of `iommu_device_register` on what the driver hands over. */
function checkIommuOps(where: string, ops: IommuOps): void {
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
function checkDomainOps(where: string, ops: IommuDomainOps): void {
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

let clientInternals: {
  state(c: IommuClient): DeviceState;
  putRef(c: IommuClient): void;
};
let groupMembers: (g: IommuGroup) => Map<DeviceState, IommuClient>;
let setDomainHandler: (d: IommuDomain, h: IommuFaultHandler | null, token: unknown) => void;
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
 * Per-device IOMMU data (`struct dev_iommu`): which IOMMU serves the device, its stream IDs
 * and its group. The owned reference the IOMMU keeps on the device is not reachable from
 * here: only the core puts it.
 */
export class IommuClient {
  readonly iommu: IommuDevice;
  /** The device's name. */
  readonly device: string;
  readonly ids: readonly number[];
  readonly group: IommuGroup;
  readonly #st: DeviceState;
  readonly #ref: ARef<Device>;

  /** @internal Clients come from the core. */
  constructor(
    iommu: IommuDevice,
    st: DeviceState,
    ref: ARef<Device>,
    ids: readonly number[],
    group: IommuGroup,
  ) {
    this.iommu = iommu;
    this.device = st.name;
    this.#st = st;
    this.#ref = ref;
    this.ids = ids;
    this.group = group;
  }

  static {
    clientInternals = {
      state: (c) => c.#st,
      putRef: (c) => c.#ref.put(),
    };
  }
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

// ---------------------------------------------------------------------------------------
// Registration.

/** Options of {@link iommuDeviceRegister}. */
export interface IommuRegisterOptions {
  /** The name masters use in `iommus`; default the hardware device's name. */
  readonly name?: string;
}

/**
 * Registers a hardware IOMMU (`iommu_device_register`), from its driver's probe. The core
 * takes an owned reference to `hw`; the registration ends when the driver unbinds (a devres
 * action) or at {@link iommuDeviceUnregister}, whichever is first.
 *
 * Devices that name this IOMMU in their `iommus` and probe later are put behind it (the
 * kernel probes every bus when an IOMMU registers; here a master whose IOMMU is missing
 * defers its probe, and deferred probes are retried when the IOMMU driver binds).
 *
 * **Errors:** `EEXIST` if an IOMMU of that name is registered; `EINVAL` for a bad argument
 * (an `ops` without its required callbacks, a callback that is not a function, an empty
 * `pgsizeBitmap`); `ENODEV` on a revoked borrow.
 *
 * @example
 * ```ts
 * probe(dev) {
 *   const iommu = iommuDeviceRegister(system, dev, testIommuOps);
 *   return { iommu };
 * }
 * ```
 */
export function iommuDeviceRegister(
  system: DmaSystem,
  hw: Device<Bound>,
  ops: IommuOps,
  options: IommuRegisterOptions = {},
): IommuDevice {
  const where = "iommu_device_register";
  checkInstance(where, "system", system, DmaSystem);
  const st = deviceStateOf(checkDevice(where, hw));
  checkIommuOps(where, ops);
  checkObject(where, "options", options);
  const name =
    options.name === undefined ? st.name : checkString(where, "options.name", options.name, true);
  if (system.iommus.has(name)) {
    throw new DevrefError(
      "EEXIST",
      `an IOMMU named '${name}' is already registered; unregister it first`,
    );
  }
  const iommu = new IommuDevice(system, name, ops, hw.get(`iommu ${name}`));
  try {
    hw.devmAddAction(() => iommuDeviceUnregister(iommu), `iommu_device ${name}`);
  } catch (e) {
    iommuInternals.dropHw(iommu);
    throw e;
  }
  system.iommus.set(name, iommu);
  return iommu;
}

/**
 * Unregisters an IOMMU (`iommu_device_unregister`): every device it serves loses its
 * translation (pending flush queues are flushed, domains freed, DMA through it fails from
 * then on with `ENODEV`), and every owned reference it kept is put. A second call does
 * nothing. A driver callback that throws on the way is logged; the rest still happens.
 *
 * **Errors:** `EINVAL` if `iommu` is not an IOMMU.
 */
export function iommuDeviceUnregister(iommu: IommuDevice): void {
  checkInstance("iommu_device_unregister", "iommu", iommu, IommuDevice);
  if (!iommu.registered) return;
  iommu.registered = false;
  if (iommu.system.iommus.get(iommu.name) === iommu) iommu.system.iommus.delete(iommu.name);
  let first: unknown = null;
  for (const client of [...iommuInternals.clients(iommu).values()]) {
    try {
      onClientGone?.(client);
    } catch (e) {
      first ??= e;
    }
    try {
      iommuReleaseClient(client);
    } catch (e) {
      first ??= e;
    }
  }
  iommuInternals.dropHw(iommu);
  if (first !== null) throw first;
}

/** @internal dma-iommu's hook: forget the client's DMA state before it is released. */
let onClientGone: ((client: IommuClient) => void) | null = null;
/** @internal */
export function setClientGoneHook(hook: (client: IommuClient) => void): void {
  onClientGone = hook;
}

// ---------------------------------------------------------------------------------------
// Device probe and release (iommu_probe_device / iommu_release_device).

/**
 * @internal `__iommu_probe_device` for `st` behind `iommu` with firmware `ids`: the driver
 * accepts it, it joins a group, and the group gets a default domain. Returns null if the
 * driver declines (ENODEV). Nothing stays behind when it throws.
 */
export function iommuProbeClient(
  iommu: IommuDevice,
  st: DeviceState,
  ids: readonly number[],
): IommuClient | null {
  const clients = iommuInternals.clients(iommu);
  const existing = clients.get(st);
  if (existing !== undefined) return existing;
  const ops = iommu.ops;
  try {
    withDeviceBorrow(st, (dev) => ops.probeDevice(dev, ids));
  } catch (e) {
    if (DevrefError.is(e, "ENODEV")) return null;
    throw e;
  }
  const key = groupKey(iommu, st, ids);
  const groups = iommuInternals.groups(iommu);
  let group = groups.get(key);
  const newGroup = group === undefined;
  if (group === undefined) group = new IommuGroup(iommu.system.nextGroupId++, iommu, key);
  const ref = withDeviceBorrow(st, (dev) => dev.get(`iommu ${iommu.name}`));
  const client = new IommuClient(iommu, st, ref, [...ids], group);
  try {
    if (group.defaultDomain === null) {
      const type = defaultDomainType(iommu, st);
      const domain = allocDomain(iommu, st, type);
      domain.isDefault = true;
      group.defaultDomain = domain;
      group.domain = domain;
      domain.users++;
    }
    attachClient(group.domain!, client);
  } catch (e) {
    if (newGroup && group.defaultDomain !== null) {
      const dom = group.defaultDomain;
      group.defaultDomain = null;
      group.domain = null;
      try {
        freeDomainNow(dom);
      } finally {
        ref.put();
      }
    } else ref.put();
    throw e;
  }
  if (newGroup) groups.set(key, group);
  groupMembers(group).set(st, client);
  clients.set(st, client);
  return client;
}

function groupKey(iommu: IommuDevice, st: DeviceState, ids: readonly number[]): string | number {
  const fn = iommu.ops.deviceGroup;
  if (fn === undefined) return `dev:${st.name}`;
  const key: unknown = withDeviceBorrow(st, (dev) => fn(dev, ids));
  if (typeof key === "string" || (typeof key === "number" && Number.isFinite(key))) return key;
  throw new DevrefError(
    "EINVAL",
    `IOMMU '${iommu.name}': deviceGroup(${st.name}) returned ${describeValue(key)}; it must return a string or a number naming the group`,
  );
}

function defaultDomainType(iommu: IommuDevice, st: DeviceState): IommuDomainType {
  const fn = iommu.ops.defDomainType;
  const forced: unknown = fn === undefined ? null : withDeviceBorrow(st, (d) => fn(d));
  if (forced !== null) {
    return checkOneOf(`IOMMU '${iommu.name}' defDomainType`, "its result", forced, [
      ...DOMAIN_TYPES,
    ]);
  }
  if (iommu.system.iommuPassthrough && iommu.ops.attachIdentity !== undefined) {
    return IOMMU_DOMAIN_IDENTITY;
  }
  return iommu.system.iommuDefaultDomain === "lazy" ? IOMMU_DOMAIN_DMA_FQ : IOMMU_DOMAIN_DMA;
}

/** @internal dma-iommu installs this to set up a cookie on DMA domains. */
let initDmaDomain: ((domain: IommuDomain) => void) | null = null;
/** @internal */
export function setDmaDomainInit(fn: (domain: IommuDomain) => void): void {
  initDmaDomain = fn;
}

/**
 * Allocates a domain of `type` on `iommu` for `st`. A DMA domain whose smallest page is too
 * large for an IOVA granule is refused before the driver allocates anything, and whatever
 * fails after the driver's allocation gives its tables back.
 */
function allocDomain(iommu: IommuDevice, st: DeviceState, type: IommuDomainType): IommuDomain {
  if ((type & IOMMU_DOMAIN_PAGING_BIT) === 0) {
    if (type === IOMMU_DOMAIN_IDENTITY && iommu.ops.attachIdentity === undefined) {
      throw new DevrefError(
        "EINVAL",
        `IOMMU '${iommu.name}' has no identity domain (attachIdentity); ask for a DMA domain`,
      );
    }
    return new IommuDomain(type, iommu, null);
  }
  const smallest = smallestPage(iommu.ops.pgsizeBitmap);
  if ((type & IOMMU_DOMAIN_DMA_API_BIT) !== 0 && smallest > IOMMU_DMA_MAX_GRANULE) {
    throw new DevrefError(
      "EINVAL",
      `IOMMU '${iommu.name}': its smallest page is ${smallest} bytes, larger than the largest IOVA ` +
        `granule (${IOMMU_DMA_MAX_GRANULE} bytes, the largest CPU page): no DMA domain for '${st.name}'; ` +
        "have defDomainType return IOMMU_DOMAIN_IDENTITY for it",
    );
  }
  const where = `IOMMU '${iommu.name}' domainAllocPaging`;
  const ops = withDeviceBorrow(st, (d) => iommu.ops.domainAllocPaging(d));
  try {
    checkDomainOps(where, ops);
    const domain = new IommuDomain(type, iommu, ops);
    ops.bindDomain?.(domain);
    if (domain.isDma) initDmaDomain?.(domain);
    return domain;
  } catch (e) {
    // Give the driver's tables back if it handed over a usable free().
    const free: unknown = typeof ops === "object" && ops !== null ? ops.free : undefined;
    if (typeof free === "function") free.call(ops);
    throw e;
  }
}

/** The smallest page size in a bitmap (its lowest set bit); 0 for an empty bitmap. */
function smallestPage(bitmap: number): number {
  for (let s = 1; s <= bitmap; s *= 2) if (Math.floor(bitmap / s) % 2 === 1) return s;
  return 0;
}

function attachClient(domain: IommuDomain, client: IommuClient): void {
  const ops = client.iommu.ops;
  withDeviceBorrow(clientStateOf(client), (dev) => {
    if (domain.ops !== null) domain.ops.attachDev(dev, client.ids);
    else if (domain.type === IOMMU_DOMAIN_IDENTITY) ops.attachIdentity?.(dev, client.ids);
    else ops.attachBlocked?.(dev, client.ids);
  });
}

/**
 * @internal Flushes and frees a domain that no group uses. The driver's `free` runs even
 * when the flush before it fails: the tables must not outlive the domain.
 */
export function freeDomainNow(domain: IommuDomain): void {
  if (domain.freed) return;
  domain.freed = true;
  try {
    domain.cookie?.destroy();
  } finally {
    domain.ops?.free();
  }
}

/**
 * @internal `iommu_release_device`: the device leaves its group (the group's default
 * domain is freed with its last device) and the IOMMU puts its reference. Every step runs
 * even if a driver callback before it throws; the first error is rethrown at the end.
 */
export function iommuReleaseClient(client: IommuClient): void {
  const iommu = client.iommu;
  const st = clientStateOf(client);
  const clients = iommuInternals.clients(iommu);
  if (clients.get(st) !== client) return;
  const group = client.group;
  const members = groupMembers(group);
  let first: unknown = null;
  try {
    const release = iommu.ops.releaseDevice;
    if (iommu.registered && release !== undefined) {
      withDeviceBorrow(st, (dev) => release(dev, client.ids));
    }
  } catch (e) {
    first = e;
  }
  members.delete(st);
  clients.delete(st);
  if (members.size === 0) {
    const cur = group.domain;
    const def = group.defaultDomain;
    if (cur !== null) cur.users--;
    group.domain = null;
    group.defaultDomain = null;
    iommuInternals.groups(iommu).delete(group.key);
    // The default domain dies with its group; a driver-managed domain the group was on
    // stays allocated until its owner frees it.
    if (def !== null) {
      if (def !== cur) def.users = 0;
      try {
        freeDomainNow(def);
      } catch (e) {
        first ??= e;
      }
    }
  }
  clientInternals.putRef(client);
  if (first !== null) throw first;
}

// ---------------------------------------------------------------------------------------
// Looking a device up.

/** @internal The IOMMU data of a configured device, or null. */
export function clientOfState(st: DeviceState): IommuClient | null {
  const c = st.dmaOps as { readonly iommuClient?: IommuClient | null } | null;
  return c?.iommuClient ?? null;
}

function clientOf(where: string, dev: Device): IommuClient {
  const st = deviceStateOf(checkDevice(where, dev));
  const client = clientOfState(st);
  if (client === null) {
    throw new DevrefError(
      "ENODEV",
      `device '${st.name}' is not behind an IOMMU (no iommus reference, or dmaConfigure not called in probe)`,
    );
  }
  return client;
}

/**
 * `iommu_get_domain_for_dev`: the domain `dev`'s group uses, or null without an IOMMU.
 *
 * **Errors:** `EINVAL` if `dev` is not a device; `ENODEV` for a revoked handle.
 */
export function iommuGetDomainForDev(dev: Device): IommuDomain | null {
  const st = deviceStateOf(checkDevice("iommu_get_domain_for_dev", dev));
  return clientOfState(st)?.group.domain ?? null;
}

/**
 * `iommu_group_get`: the group of `dev`, or null without an IOMMU.
 *
 * **Errors:** as {@link iommuGetDomainForDev}.
 */
export function iommuGroupGet(dev: Device): IommuGroup | null {
  const st = deviceStateOf(checkDevice("iommu_group_get", dev));
  return clientOfState(st)?.group ?? null;
}

/**
 * `device_iommu_capable`: asks the IOMMU that serves `dev` (its `capable` op). False without
 * an IOMMU or without the op.
 *
 * **Errors:** `EINVAL` for a non-device or an unknown capability.
 */
export function deviceIommuCapable(dev: Device, cap: IommuCap): boolean {
  const where = "device_iommu_capable";
  const st = deviceStateOf(checkDevice(where, dev));
  checkOneOf(where, "cap", cap, CAPS);
  const client = clientOfState(st);
  if (client === null) return false;
  const fn = client.iommu.ops.capable;
  if (fn === undefined) return false;
  return withDeviceBorrow(clientStateOf(client), (d) => fn(d, cap)) === true;
}

// ---------------------------------------------------------------------------------------
// Unmanaged domains and attach (§7.5).

/**
 * `iommu_paging_domain_alloc(dev)`: a new UNMANAGED paging domain on `dev`'s IOMMU, for a
 * driver that manages its own IOVA space.
 *
 * **Errors:** `ENODEV` if `dev` is not behind an IOMMU; `EINVAL` for a non-device.
 */
export function iommuPagingDomainAlloc(dev: Device<Bound>): IommuDomain {
  const client = clientOf("iommu_paging_domain_alloc", dev);
  return allocDomain(client.iommu, clientStateOf(client), IOMMU_DOMAIN_UNMANAGED);
}

/** @internal An IOMMU domain (checkInstance's test written out: it is on the unmap path). */
export function checkDomain(where: string, domain: unknown): IommuDomain {
  if (!(domain instanceof IommuDomain)) {
    throw argumentError(where, "domain", "an IommuDomain", domain);
  }
  return domain;
}

/**
 * `iommu_attach_device`: attaches `dev`'s group to `domain`. Allowed only when `dev` is
 * alone in its group and the group is on its default domain.
 *
 * **Errors:** `EINVAL` if the group has other devices, if the domain is freed or belongs to
 * another IOMMU, or for a bad argument; `EBUSY` if the group is already on a non-default
 * domain, or if the device has live DMA-API mappings in its default domain.
 */
export function iommuAttachDevice(domain: IommuDomain, dev: Device<Bound>): void {
  const where = "iommu_attach_device";
  checkDomain(where, domain);
  const client = clientOf(where, dev);
  const group = client.group;
  if (group.size !== 1) {
    throw new DevrefError(
      "EINVAL",
      `device '${client.device}' shares IOMMU group ${group.id} with ${group.deviceNames.filter((n) => n !== client.device).join(", ")}: ` +
        "iommu_attach_device needs the device alone in its group; attach the whole group instead",
    );
  }
  if (domain.freed || domain.iommu !== client.iommu) {
    throw new DevrefError(
      "EINVAL",
      `domain is ${domain.freed ? "freed" : `on IOMMU '${domain.iommu.name}', not '${client.iommu.name}'`}`,
    );
  }
  if (group.domain === domain) return;
  if (group.domain !== group.defaultDomain) {
    throw new DevrefError(
      "EBUSY",
      `IOMMU group ${group.id} is already attached to a ${iommuDomainTypeName(group.domain?.type ?? -1)} domain; detach it first`,
    );
  }
  const st = clientStateOf(client);
  const busy = (st.dmaOps as { readonly liveCount?: number } | null)?.liveCount ?? 0;
  if (busy > 0) {
    throw new DevrefError(
      "EBUSY",
      `device '${client.device}' has ${busy} live DMA-API mapping(s) in its default domain; unmap them first`,
    );
  }
  attachClient(domain, client);
  if (group.domain !== null) group.domain.users--;
  group.domain = domain;
  domain.users++;
}

/**
 * `iommu_detach_device`: returns `dev`'s group to its default domain.
 *
 * **Errors:** `EINVAL` if the device is not attached to `domain`, or for a bad argument.
 */
export function iommuDetachDevice(domain: IommuDomain, dev: Device<Bound>): void {
  const where = "iommu_detach_device";
  checkDomain(where, domain);
  const client = clientOf(where, dev);
  const group = client.group;
  if (group.domain !== domain) {
    throw new DevrefError(
      "EINVAL",
      `device '${client.device}' is not attached to this domain (its group uses ${iommuDomainTypeName(group.domain?.type ?? -1)})`,
    );
  }
  const def = group.defaultDomain!;
  attachClient(def, client);
  domain.users--;
  group.domain = def;
  def.users++;
}

/**
 * `iommu_domain_free`: frees a domain no group uses (the driver's tables go back). A second
 * call does nothing.
 *
 * **Errors:** `EBUSY` while a group is attached to it; `EINVAL` for a non-domain, or for a
 * group's default domain (it goes with its group; freeing it while the group sits on
 * another domain would leave the group nothing to return to).
 */
export function iommuDomainFree(domain: IommuDomain): void {
  checkDomain("iommu_domain_free", domain);
  if (domain.users > 0) {
    throw new DevrefError("EBUSY", "the domain is still attached; detach its devices first");
  }
  if (domain.isDefault) {
    if (domain.freed) return;
    throw new DevrefError(
      "EINVAL",
      "this is an IOMMU group's default domain: it is freed with its group, not by iommu_domain_free",
    );
  }
  freeDomainNow(domain);
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
