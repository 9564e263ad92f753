//! C header: include/linux/iommu.h
//! C source: drivers/iommu/iommu.c (registration, probe and release of devices, groups,
//! default domains, lookups, attach and detach)

import type { Device } from "@devref/device-core";
import { type DeviceState, deviceStateOf } from "@devref/device-core/unsafe";
import {
  argumentError,
  type Bound,
  checkInstance,
  checkInteger,
  checkObject,
  checkOneOf,
  checkSize,
  checkString,
  DevrefError,
  describeValue,
} from "@devref/raw-device";
import { liveDmaState } from "./dma-state.js";
import { checkDevice } from "./internal/checks.js";
import {
  CAPS,
  checkDomain,
  checkDomainOps,
  checkIommuOps,
  clientOfState,
  clientRelease,
  clientStateOf,
  DOMAIN_TYPES,
  groupMembersOf,
  IOMMU_DMA_MAX_GRANULE,
  IOMMU_DOMAIN_DMA,
  IOMMU_DOMAIN_DMA_API_BIT,
  IOMMU_DOMAIN_DMA_FQ,
  IOMMU_DOMAIN_IDENTITY,
  IOMMU_DOMAIN_PAGING_BIT,
  IOMMU_DOMAIN_UNMANAGED,
  IOMMU_RESV_TYPES,
  type IommuCap,
  IommuClient,
  IommuDevice,
  IommuDomain,
  type IommuDomainType,
  IommuGroup,
  type IommuOps,
  type IommuResvRegion,
  iommuClientsOf,
  iommuDomainTypeName,
  iommuDropHw,
  iommuGroupsOf,
  withDeviceBorrow,
} from "./iommu.js";
import { DmaSystem, dmaSystemInternals } from "./system.js";

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
    iommuDropHw(iommu);
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
  // Each client is released and reads as gone: the DMA layer sees it at the next use, and
  // the device's slot keeps it until the DMA binding ends.
  for (const client of [...iommuClientsOf(iommu).values()]) {
    try {
      iommuReleaseClient(client);
    } catch (e) {
      first ??= e;
    }
  }
  iommuDropHw(iommu);
  if (first !== null) throw first;
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
  const clients = iommuClientsOf(iommu);
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
  const groups = iommuGroupsOf(iommu);
  let group = groups.get(key);
  const newGroup = group === undefined;
  if (group === undefined) group = new IommuGroup(iommu.system.nextGroupId++, iommu, key);
  const client = new IommuClient(iommu, st, [...ids], group);
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
        clientRelease(client);
      }
    } else clientRelease(client);
    throw e;
  }
  if (newGroup) groups.set(key, group);
  groupMembersOf(group).set(st, client);
  clients.set(st, client);
  st.iommu = client;
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
    dmaSystemInternals(iommu.system).pagingDomains++;
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
  const ops = client.iommuDevice.ops;
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
  if (domain.ops !== null) dmaSystemInternals(domain.iommu.system).pagingDomains--;
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
  const iommu = client.iommuDevice;
  const st = clientStateOf(client);
  const clients = iommuClientsOf(iommu);
  if (clients.get(st) !== client) return;
  const group = client.group;
  const members = groupMembersOf(group);
  let first: unknown = null;
  try {
    // release_device must stop the hardware using the device's domain before the group's
    // last device takes that domain (and its tables) along — during iommu_device_unregister
    // too, when the driver is still there to be told.
    const release = iommu.ops.releaseDevice;
    if (release !== undefined) withDeviceBorrow(st, (dev) => release(dev, client.ids));
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
    iommuGroupsOf(iommu).delete(group.key);
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
  clientRelease(client);
  if (first !== null) throw first;
}

// ---------------------------------------------------------------------------------------
// Looking a device up.

function clientOf(where: string, dev: Device): IommuClient {
  const st = deviceStateOf(checkDevice(where, dev));
  const client = clientOfState(st);
  if (client === null || client.gone) {
    throw new DevrefError(
      "ENODEV",
      client === null
        ? `device '${st.name}' is not behind an IOMMU (no iommus in its firmware node, or not DMA-configured)`
        : `device '${st.name}' lost its IOMMU '${client.iommu}' (unregistered); rebind the driver once it is back`,
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
 * an IOMMU (or once it is gone) or without the op.
 *
 * **Errors:** `EINVAL` for a non-device or an unknown capability.
 */
export function deviceIommuCapable(dev: Device, cap: IommuCap): boolean {
  const where = "device_iommu_capable";
  const st = deviceStateOf(checkDevice(where, dev));
  checkOneOf(where, "cap", cap, CAPS);
  const client = clientOfState(st);
  if (client === null || client.gone) return false;
  const fn = client.iommuDevice.ops.capable;
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
  return allocDomain(client.iommuDevice, clientStateOf(client), IOMMU_DOMAIN_UNMANAGED);
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
  if (domain.freed || domain.iommu !== client.iommuDevice) {
    throw new DevrefError(
      "EINVAL",
      `domain is ${domain.freed ? "freed" : `on IOMMU '${domain.iommu.name}', not '${client.iommu}'`}`,
    );
  }
  if (group.domain === domain) return;
  if (group.domain !== group.defaultDomain) {
    throw new DevrefError(
      "EBUSY",
      `IOMMU group ${group.id} is already attached to a ${iommuDomainTypeName(group.domain?.type ?? -1)} domain; detach it first`,
    );
  }
  const busy = liveDmaState(clientStateOf(client))?.liveCount ?? 0;
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

/**
 * @internal `iommu_get_resv_regions`: the reserved IOVA regions the IOMMU driver gives for
 * `st` (none without `getResvRegions`), checked. Nothing is kept of what the driver returned.
 *
 * **Errors:** `EINVAL` for a result that is not a list of regions (each a whole `start`, a
 * `length` of at least 1 ending below 2^53, `prot` bits, a known `type`).
 */
export function iommuResvRegionsOf(
  iommu: IommuDevice,
  st: DeviceState,
  ids: readonly number[],
): IommuResvRegion[] {
  const fn = iommu.ops.getResvRegions;
  if (fn === undefined) return [];
  const where = `IOMMU '${iommu.name}' getResvRegions(${st.name})`;
  const got: unknown = withDeviceBorrow(st, (dev) => fn(dev, ids));
  if (!Array.isArray(got)) {
    throw new DevrefError(
      "EINVAL",
      `${where} returned ${describeValue(got)}; it must return an array of regions`,
    );
  }
  const out: IommuResvRegion[] = [];
  for (let i = 0; i < got.length; i++) {
    const r: unknown = got[i];
    const at = `region ${i}`;
    if (typeof r !== "object" || r === null) throw argumentError(where, at, "a region object", r);
    const start = checkInteger(
      where,
      `${at}.start`,
      Reflect.get(r, "start"),
      0,
      Number.MAX_SAFE_INTEGER,
    );
    const length = checkSize(
      where,
      `${at}.length`,
      Reflect.get(r, "length"),
      1,
      Number.MAX_SAFE_INTEGER - start,
    );
    const prot = checkInteger(where, `${at}.prot`, Reflect.get(r, "prot"), 0, 63);
    const type = checkOneOf(where, `${at}.type`, Reflect.get(r, "type"), IOMMU_RESV_TYPES);
    out.push({ start, length, prot, type });
  }
  return out;
}
