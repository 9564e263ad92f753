//! C header: include/linux/iommu.h
//! C source: drivers/iommu/iommu.c

import type { Device } from "@devref/device-core";
import { DeviceScope, type DeviceState, deviceStateOf, emit } from "@devref/device-core/unsafe";
import { type IommuIotlbGather, IotlbGather } from "@devref/io-pgtable";
import {
  type ARef,
  type Borrowed,
  type Bound,
  DevrefError,
  ERRNO,
  formatAddr,
} from "@devref/raw-device";
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

/** `IOMMU_FAULT_READ`. */
export const IOMMU_FAULT_READ = 0;
/** `IOMMU_FAULT_WRITE`. */
export const IOMMU_FAULT_WRITE = 1;

/** `enum iommu_cap`, as names. */
export type IommuCap = "cache-coherency" | "noexec" | "deferred-flush";

/** The kernel's name of a domain type, for messages. */
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
      return `type ${String(type)}`;
  }
}

// ---------------------------------------------------------------------------------------
// What an IOMMU driver supplies.

/**
 * A paging domain's operations, supplied by the IOMMU driver (`struct iommu_domain_ops`).
 * Addresses are numbers (safe integers).
 *
 * **Invariants:** `mapPages` maps `pgcount` pages of one size and may map fewer (returns the
 * bytes mapped, throws a `DevrefError` on failure); `unmapPages` returns the bytes unmapped
 * and reports each cleared page through {@link iommuIotlbGatherAddPage} unless the gather is
 * `queued`.
 */
export interface IommuDomainOps {
  /** Inclusive aperture; default `0 … 2^ias − 1` is the driver's business, here 0 … 2^53−1. */
  readonly apertureStart?: number;
  readonly apertureEnd?: number;
  /** Whether IOVAs must stay inside the aperture (`geometry.force_aperture`). */
  readonly forceAperture?: boolean;
  /** Called once with the core's domain object right after allocation (the kernel embeds it). */
  bindDomain?(domain: IommuDomain): void;
  /** `attach_dev`: program the hardware so that `dev`'s streams use this domain. */
  attachDev<S>(dev: Borrowed<Device, S>, ids: readonly number[]): void;
  mapPages(iova: number, paddr: number, pgsize: number, pgcount: number, prot: number): number;
  unmapPages(iova: number, pgsize: number, pgcount: number, gather: IotlbGather): number;
  /** `iotlb_sync`: invalidate what the gather collected. */
  iotlbSync(gather: IotlbGather): void;
  /** `flush_iotlb_all`. */
  flushIotlbAll(): void;
  /** `iotlb_sync_map` (optional). */
  iotlbSyncMap?(iova: number, size: number): void;
  /** `iova_to_phys`: 0 when unmapped. */
  iovaToPhys(iova: number): number;
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
  iova: number,
  flags: number,
  token: unknown,
) => number;

// ---------------------------------------------------------------------------------------
// Core objects.

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
  readonly apertureStart: number;
  readonly apertureEnd: number;
  readonly forceAperture: boolean;
  /** @internal dma-iommu's cookie (iova domain, flush queue). */
  cookie: import("./dma-iommu.js").DmaIommuCookie | null = null;
  /** @internal The gather reused by unmaps of this domain. */
  readonly gather: IotlbGather = new IotlbGather(false);
  private faultHandler: IommuFaultHandler | null = null;
  private faultToken: unknown = undefined;
  /** @internal Groups attached. */
  users = 0;
  /** @internal */
  freed = false;
  /** Invalidations sent to the driver (`iotlb_sync` calls with a non-empty gather). */
  iotlbSyncs = 0;

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
    this.apertureStart = ops?.apertureStart ?? 0;
    this.apertureEnd = ops?.apertureEnd ?? Number.MAX_SAFE_INTEGER;
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
  /** @internal */
  get handler(): IommuFaultHandler | null {
    return this.faultHandler;
  }
  /** @internal */
  get handlerToken(): unknown {
    return this.faultToken;
  }
  /** @internal */
  setHandler(h: IommuFaultHandler | null, token: unknown): void {
    this.faultHandler = h;
    this.faultToken = token;
  }
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
  /** @internal Member devices. */
  readonly members: Map<DeviceState, IommuClient> = new Map();
  /** The default domain, allocated when the first device joins. */
  defaultDomain: IommuDomain | null = null;
  /** The domain in use. */
  domain: IommuDomain | null = null;

  constructor(id: number, iommu: IommuDevice, key: string | number) {
    this.id = id;
    this.iommu = iommu;
    this.key = key;
  }

  /** Names of member devices, in join order. */
  get deviceNames(): string[] {
    return [...this.members.keys()].map((st) => st.name);
  }
}

/**
 * Per-device IOMMU data (`struct dev_iommu`): which IOMMU serves the device, its stream
 * IDs, its group and the owned reference the IOMMU keeps.
 */
export class IommuClient {
  readonly iommu: IommuDevice;
  /** @internal */
  readonly st: DeviceState;
  /** The owned reference the IOMMU holds while it serves the device. */
  readonly ref: ARef<Device>;
  readonly ids: readonly number[];
  readonly group: IommuGroup;

  constructor(
    iommu: IommuDevice,
    st: DeviceState,
    ref: ARef<Device>,
    ids: readonly number[],
    group: IommuGroup,
  ) {
    this.iommu = iommu;
    this.st = st;
    this.ref = ref;
    this.ids = ids;
    this.group = group;
  }
}

/**
 * A registered hardware IOMMU (`struct iommu_device`). It keeps an owned reference to its
 * own hardware device and to every device it serves, and gives all of them back when it is
 * unregistered.
 *
 * **Invariants:** only owned references ({@link ARef}) are kept; after unregister it holds
 * none and serves nobody.
 */
export class IommuDevice {
  readonly name: string;
  readonly ops: IommuOps;
  readonly system: DmaSystem;
  /** The IOMMU's own device, owned. Null after unregister. */
  private hwRef: ARef<Device> | null;
  /** @internal */
  readonly clients: Map<DeviceState, IommuClient> = new Map();
  /** @internal */
  readonly groups: Map<string | number, IommuGroup> = new Map();
  registered = true;
  /** @internal the devres action on the hardware device's binding. */
  unbindAction: (() => void) | null = null;

  constructor(system: DmaSystem, name: string, ops: IommuOps, hw: ARef<Device>) {
    this.system = system;
    this.name = name;
    this.ops = ops;
    this.hwRef = hw;
  }

  /** The IOMMU's hardware device (owned), or null once unregistered. */
  get hwDevice(): ARef<Device> | null {
    return this.hwRef;
  }

  /** The owned references this IOMMU keeps to the devices it serves. */
  get clientRefs(): readonly ARef<Device>[] {
    return [...this.clients.values()].map((c) => c.ref);
  }

  /** The groups, by id order. */
  get groupList(): readonly IommuGroup[] {
    return [...this.groups.values()].sort((a, b) => a.id - b.id);
  }

  /** @internal */
  dropHw(): void {
    const hw = this.hwRef;
    this.hwRef = null;
    hw?.put();
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
 * **Errors:** `EEXIST` if an IOMMU of that name is registered; `EINVAL` for an empty
 * `pgsizeBitmap`; `ENODEV` on a revoked borrow.
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
  const st = deviceStateOf(hw);
  const name = options.name ?? st.name;
  if (system.iommus.has(name)) {
    throw new DevrefError(
      "EEXIST",
      `an IOMMU named '${name}' is already registered; unregister it first`,
    );
  }
  const bm = ops.pgsizeBitmap;
  if (!(Number.isSafeInteger(bm) && bm > 0)) {
    throw new DevrefError(
      "EINVAL",
      `IOMMU '${name}': pgsizeBitmap ${String(bm)} must name at least one page size`,
    );
  }
  const iommu = new IommuDevice(system, name, ops, hw.get(`iommu ${name}`));
  const action = (): void => iommuDeviceUnregister(iommu);
  iommu.unbindAction = action;
  try {
    hw.devmAddAction(action, `iommu_device ${name}`);
  } catch (e) {
    iommu.dropHw();
    throw e;
  }
  system.iommus.set(name, iommu);
  return iommu;
}

/**
 * Unregisters an IOMMU (`iommu_device_unregister`): every device it serves loses its
 * translation (pending flush queues are flushed, domains freed, DMA through it fails from
 * then on with `ENODEV`), and every owned reference it kept is put. A second call does
 * nothing.
 */
export function iommuDeviceUnregister(iommu: IommuDevice): void {
  if (!iommu.registered) return;
  iommu.registered = false;
  if (iommu.system.iommus.get(iommu.name) === iommu) iommu.system.iommus.delete(iommu.name);
  for (const client of [...iommu.clients.values()]) {
    onClientGone?.(client);
    iommuReleaseClient(client);
  }
  iommu.dropHw();
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
 * driver declines (ENODEV).
 */
export function iommuProbeClient(
  iommu: IommuDevice,
  st: DeviceState,
  ids: readonly number[],
): IommuClient | null {
  const existing = iommu.clients.get(st);
  if (existing !== undefined) return existing;
  const ops = iommu.ops;
  try {
    withDeviceBorrow(st, (dev) => ops.probeDevice(dev, ids));
  } catch (e) {
    if (DevrefError.is(e, "ENODEV")) return null;
    throw e;
  }
  const key =
    ops.deviceGroup === undefined
      ? `dev:${st.name}`
      : withDeviceBorrow(st, (dev) => ops.deviceGroup!(dev, ids));
  let group = iommu.groups.get(key);
  const newGroup = group === undefined;
  if (group === undefined) group = new IommuGroup(iommu.system.nextGroupId++, iommu, key);
  const ref = withDeviceBorrow(st, (dev) => dev.get(`iommu ${iommu.name}`));
  const client = new IommuClient(iommu, st, ref, [...ids], group);
  try {
    if (group.defaultDomain === null) {
      const type = defaultDomainType(iommu, st);
      const domain = allocDomain(iommu, st, type);
      group.defaultDomain = domain;
      group.domain = domain;
      domain.users++;
    }
    attachClient(group.domain!, client);
  } catch (e) {
    if (newGroup && group.defaultDomain !== null) {
      freeDomainNow(group.defaultDomain);
      group.defaultDomain = null;
      group.domain = null;
    }
    ref.put();
    throw e;
  }
  if (newGroup) iommu.groups.set(key, group);
  group.members.set(st, client);
  iommu.clients.set(st, client);
  return client;
}

function defaultDomainType(iommu: IommuDevice, st: DeviceState): IommuDomainType {
  const forced =
    iommu.ops.defDomainType === undefined
      ? null
      : withDeviceBorrow(st, (d) => iommu.ops.defDomainType!(d));
  if (forced !== null) return forced;
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
  const ops = withDeviceBorrow(st, (d) => iommu.ops.domainAllocPaging(d));
  const domain = new IommuDomain(type, iommu, ops);
  ops.bindDomain?.(domain);
  if (domain.isDma) initDmaDomain?.(domain);
  return domain;
}

function attachClient(domain: IommuDomain, client: IommuClient): void {
  const ops = client.iommu.ops;
  withDeviceBorrow(client.st, (dev) => {
    if (domain.ops !== null) domain.ops.attachDev(dev, client.ids);
    else if (domain.type === IOMMU_DOMAIN_IDENTITY) ops.attachIdentity?.(dev, client.ids);
    else ops.attachBlocked?.(dev, client.ids);
  });
}

/** Flushes and frees a domain that no group uses. */
function freeDomainNow(domain: IommuDomain): void {
  if (domain.freed) return;
  domain.freed = true;
  domain.cookie?.destroy();
  domain.ops?.free();
}

/**
 * @internal `iommu_release_device`: the device leaves its group (the group's default
 * domain is freed with its last device) and the IOMMU puts its reference.
 */
export function iommuReleaseClient(client: IommuClient): void {
  const iommu = client.iommu;
  if (iommu.clients.get(client.st) !== client) return;
  const group = client.group;
  try {
    if (iommu.registered && iommu.ops.releaseDevice !== undefined) {
      withDeviceBorrow(client.st, (dev) => iommu.ops.releaseDevice!(dev, client.ids));
    }
  } finally {
    group.members.delete(client.st);
    iommu.clients.delete(client.st);
    if (group.members.size === 0) {
      const cur = group.domain;
      const def = group.defaultDomain;
      if (cur !== null) cur.users--;
      // The default domain dies with its group; a driver-managed domain the group was on
      // stays allocated until its owner frees it.
      if (def !== null) {
        if (def !== cur) def.users = 0;
        freeDomainNow(def);
      }
      group.domain = null;
      group.defaultDomain = null;
      iommu.groups.delete(group.key);
    }
    client.ref.put();
  }
}

// ---------------------------------------------------------------------------------------
// Looking a device up.

function clientOf(dev: Device): IommuClient {
  const st = deviceStateOf(dev);
  const c = st.dmaOps as { readonly iommuClient?: IommuClient | null } | null;
  const client = c?.iommuClient ?? null;
  if (client === null) {
    throw new DevrefError(
      "ENODEV",
      `device '${st.name}' is not behind an IOMMU (no iommus reference, or dmaConfigure not called in probe)`,
    );
  }
  return client;
}

/** `iommu_get_domain_for_dev`: the domain `dev`'s group uses, or null without an IOMMU. */
export function iommuGetDomainForDev(dev: Device): IommuDomain | null {
  const st = deviceStateOf(dev);
  const c = st.dmaOps as { readonly iommuClient?: IommuClient | null } | null;
  return c?.iommuClient?.group.domain ?? null;
}

/** `iommu_group_get`: the group of `dev`, or null without an IOMMU. */
export function iommuGroupGet(dev: Device): IommuGroup | null {
  const st = deviceStateOf(dev);
  const c = st.dmaOps as { readonly iommuClient?: IommuClient | null } | null;
  return c?.iommuClient?.group ?? null;
}

/**
 * `device_iommu_capable`: asks the IOMMU that serves `dev` (its `capable` op). False without
 * an IOMMU or without the op.
 */
export function deviceIommuCapable(dev: Device, cap: IommuCap): boolean {
  const st = deviceStateOf(dev);
  const c = st.dmaOps as { readonly iommuClient?: IommuClient | null } | null;
  const client = c?.iommuClient ?? null;
  if (client === null) return false;
  const ops = client.iommu.ops;
  if (ops.capable === undefined) return false;
  return withDeviceBorrow(client.st, (d) => ops.capable?.(d, cap) ?? false);
}

// ---------------------------------------------------------------------------------------
// Unmanaged domains and attach (§7.5).

/**
 * `iommu_paging_domain_alloc(dev)`: a new UNMANAGED paging domain on `dev`'s IOMMU, for a
 * driver that manages its own IOVA space.
 *
 * **Errors:** `ENODEV` if `dev` is not behind an IOMMU.
 */
export function iommuPagingDomainAlloc(dev: Device<Bound>): IommuDomain {
  const client = clientOf(dev);
  return allocDomain(client.iommu, client.st, IOMMU_DOMAIN_UNMANAGED);
}

/**
 * `iommu_attach_device`: attaches `dev`'s group to `domain`. Allowed only when `dev` is
 * alone in its group and the group is on its default domain.
 *
 * **Errors:** `EINVAL` if the group has other devices, if the domain is freed or belongs to
 * another IOMMU; `EBUSY` if the group is already on a non-default domain, or if the device
 * has live DMA-API mappings in its default domain.
 */
export function iommuAttachDevice(domain: IommuDomain, dev: Device<Bound>): void {
  const client = clientOf(dev);
  const group = client.group;
  if (group.members.size !== 1) {
    throw new DevrefError(
      "EINVAL",
      `device '${client.st.name}' shares IOMMU group ${group.id} with ${group.deviceNames.filter((n) => n !== client.st.name).join(", ")}: ` +
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
  const busy = (client.st.dmaOps as { readonly liveCount?: number } | null)?.liveCount ?? 0;
  if (busy > 0) {
    throw new DevrefError(
      "EBUSY",
      `device '${client.st.name}' has ${busy} live DMA-API mapping(s) in its default domain; unmap them first`,
    );
  }
  attachClient(domain, client);
  if (group.domain !== null) group.domain.users--;
  group.domain = domain;
  domain.users++;
}

/** `iommu_detach_device`: returns `dev`'s group to its default domain. */
export function iommuDetachDevice(domain: IommuDomain, dev: Device<Bound>): void {
  const client = clientOf(dev);
  const group = client.group;
  if (group.domain !== domain) {
    throw new DevrefError(
      "EINVAL",
      `device '${client.st.name}' is not attached to this domain (its group uses ${iommuDomainTypeName(group.domain?.type ?? -1)})`,
    );
  }
  const def = group.defaultDomain!;
  attachClient(def, client);
  domain.users--;
  group.domain = def;
  def.users++;
}

/**
 * `iommu_domain_free`.
 *
 * **Errors:** `EBUSY` while a group is attached to it.
 */
export function iommuDomainFree(domain: IommuDomain): void {
  if (domain.users > 0) {
    throw new DevrefError("EBUSY", "the domain is still attached; detach its devices first");
  }
  freeDomainNow(domain);
}

// ---------------------------------------------------------------------------------------
// Map and unmap (§7.6).

/**
 * `iommu_pgsize`: the page size to use for the next run and how many pages of it. Writes
 * the count to `out[0]` and returns the page size; 0 when nothing fits.
 */
export function iommuPgsize(
  domain: IommuDomain,
  iova: number,
  paddr: number,
  size: number,
  out: Float64Array,
): number {
  if (size === domain.minPagesz && rem(iova, size) === 0 && rem(paddr, size) === 0) {
    // One smallest page (the common streaming case): no other size can fit.
    out[0] = 1;
    return size;
  }
  const sizes = domain.pgsizes;
  let idx = -1;
  for (let i = 0; i < sizes.length; i++) {
    const s = sizes[i]!;
    if (s > size) break;
    if ((iova === 0 && paddr === 0) || (rem(iova, s) === 0 && rem(paddr, s) === 0)) idx = i;
  }
  if (idx < 0) {
    out[0] = 0;
    return 0;
  }
  const pgsize = sizes[idx]!;
  const next = sizes[idx + 1];
  if (next !== undefined) {
    const r = rem(iova, next);
    if (r === rem(paddr, next)) {
      const offset = next - r;
      if (offset + next <= size) size = offset;
    }
  }
  out[0] = Math.floor(size / pgsize);
  return pgsize;
}

/**
 * `x % size` for a power-of-two `size`. Addresses above 2^31 are doubles, and `%` on doubles
 * is a slow library call in V8; for sizes that divide 2^32 the low 32 bits decide.
 */
function rem(x: number, size: number): number {
  return size <= 0x4000_0000 ? (x >>> 0) & (size - 1) : x % size;
}

const pgCount = new Float64Array(1);

function checkPaging(domain: IommuDomain, what: string): IommuDomainOps {
  const ops = domain.ops;
  if (ops === null || domain.freed) {
    throw new DevrefError(
      "EINVAL",
      `${what} on a ${domain.freed ? "freed" : iommuDomainTypeName(domain.type)} domain: only paging domains have page tables`,
    );
  }
  return ops;
}

/**
 * `iommu_map`: maps `[iova, iova + size)` to `paddr` with `prot` (`IOMMU_READ` …), choosing
 * the largest page sizes that fit (`iommu_pgsize`), then `iotlb_sync_map`. On failure
 * everything this call mapped is unmapped again and the error is thrown.
 *
 * **Errors:** `EINVAL` for a non-paging or freed domain, or `iova`, `paddr`, `size` not
 * aligned to the smallest page size ("unaligned: …"); whatever the driver's `mapPages`
 * throws (`EEXIST` for a double map, `ENOMEM`, `ERANGE`).
 *
 * @example
 * ```ts
 * iommuMap(domain, 0x20_0000, 0x4020_0000, 0x40_1000, IOMMU_READ | IOMMU_WRITE); // 2M×2 + 4K×1
 * ```
 */
export function iommuMap(
  domain: IommuDomain,
  iova: number,
  paddr: number,
  size: number,
  prot: number,
): void {
  const ops = checkPaging(domain, "iommu_map");
  const min = domain.minPagesz;
  if (
    !(iova >= 0 && paddr >= 0 && size > 0) ||
    rem(iova, min) !== 0 ||
    rem(paddr, min) !== 0 ||
    rem(size, min) !== 0 ||
    !Number.isSafeInteger(iova + size)
  ) {
    throw new DevrefError(
      "EINVAL",
      `unaligned: iova ${formatAddr(iova, 1)} pa ${formatAddr(paddr, 1)} size ${formatAddr(size, 1)} min_pagesz ${formatAddr(min, 1)}`,
    );
  }
  let mapped = 0;
  try {
    while (mapped < size) {
      const pgsize = iommuPgsize(domain, iova + mapped, paddr + mapped, size - mapped, pgCount);
      const n = ops.mapPages(iova + mapped, paddr + mapped, pgsize, pgCount[0]!, prot);
      if (!(n > 0)) {
        throw new DevrefError("EIO", `map_pages mapped nothing at ${formatAddr(iova + mapped, 1)}`);
      }
      mapped += n;
    }
    ops.iotlbSyncMap?.(iova, size);
  } catch (e) {
    if (mapped > 0) iommuUnmap(domain, iova, mapped);
    throw e;
  }
}

/**
 * `iommu_unmap_fast`: unmaps `[iova, iova + size)` into `gather` without syncing; the caller
 * calls {@link iommuIotlbSync}. Returns the bytes unmapped (stops at the first hole).
 */
export function iommuUnmapFast(
  domain: IommuDomain,
  iova: number,
  size: number,
  gather: IotlbGather,
): number {
  const ops = domain.ops;
  if (ops === null || domain.freed) return 0;
  const min = domain.minPagesz;
  if (rem(iova, min) !== 0 || rem(size, min) !== 0 || !(size > 0)) {
    emit(
      "err",
      domain.iommu.name,
      null,
      `unaligned: iova ${formatAddr(iova, 1)} size ${formatAddr(size, 1)} min_pagesz ${formatAddr(min, 1)}`,
    );
    return 0;
  }
  let unmapped = 0;
  while (unmapped < size) {
    const at = iova + unmapped;
    const pgsize = iommuPgsize(domain, at, at, size - unmapped, pgCount);
    const n = ops.unmapPages(at, pgsize, pgCount[0]!, gather);
    if (!(n > 0)) break;
    unmapped += n;
  }
  return unmapped;
}

/** `iommu_unmap`: unmap, then `iotlb_sync`. Returns the bytes unmapped; 0 for unaligned input. */
export function iommuUnmap(domain: IommuDomain, iova: number, size: number): number {
  const g = domain.gather;
  const n = iommuUnmapFast(domain, iova, size, g);
  iommuIotlbSync(domain, g);
  return n;
}

/** `iommu_iotlb_sync`: sends the gathered invalidation to the driver (if any) and resets. */
export function iommuIotlbSync(domain: IommuDomain, gather: IotlbGather): void {
  if (gather.pgsize !== 0 && domain.ops !== null) {
    domain.iotlbSyncs++;
    domain.ops.iotlbSync(gather);
  }
  gather.reset();
}

/**
 * `iommu_iotlb_gather_add_page`: called by a driver's `tlbAddPage` for each cleared page.
 * A page of another size, or one disjoint from the gathered range, first syncs what was
 * gathered.
 *
 * **Errors:** `EINVAL` if `gather` is not the core's gather.
 */
export function iommuIotlbGatherAddPage(
  domain: IommuDomain,
  gather: IommuIotlbGather | null,
  iova: number,
  size: number,
): void {
  if (!(gather instanceof IotlbGather)) {
    throw new DevrefError(
      "EINVAL",
      "tlbAddPage got no core gather: pass the one unmapPages received",
    );
  }
  if ((gather.pgsize !== 0 && gather.pgsize !== size) || gather.isDisjoint(iova, size)) {
    iommuIotlbSync(domain, gather);
  }
  gather.pgsize = size;
  gather.addRange(iova, size);
}

/** `iommu_iova_to_phys`: identity domains translate 1:1; others ask the driver (0 = none). */
export function iommuIovaToPhys(domain: IommuDomain, iova: number): number {
  if (domain.type === IOMMU_DOMAIN_IDENTITY) return iova;
  if (domain.ops === null || domain.freed) return 0;
  return domain.ops.iovaToPhys(iova);
}

// ---------------------------------------------------------------------------------------
// Faults (§7.8).

/** `iommu_set_fault_handler`: installs (or with null removes) the domain's fault handler. */
export function iommuSetFaultHandler(
  domain: IommuDomain,
  handler: IommuFaultHandler | null,
  token?: unknown,
): void {
  domain.setHandler(handler, token);
}

/**
 * `report_iommu_fault`: called by IOMMU drivers. Returns the handler's result, or `-ENOSYS`
 * when no handler is installed. The fault is logged either way (the `io_page_fault` trace
 * event).
 */
export function reportIommuFault(
  domain: IommuDomain,
  dev: Device | null,
  iova: number,
  flags: number,
): number {
  const name = dev === null ? domain.iommu.name : dev.name;
  emit(
    "dbg",
    name,
    null,
    `io_page_fault: iova=${formatAddr(iova, 1)} flags=${flags === IOMMU_FAULT_WRITE ? "write" : "read"}`,
  );
  const h = domain.handler;
  if (h === null) return -ERRNO.ENOSYS;
  return h(domain, dev, iova, flags, domain.handlerToken);
}
