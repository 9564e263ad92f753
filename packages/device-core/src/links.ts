//! C header: include/linux/device.h (DL_FLAG_*, enum device_link_state, enum dl_dev_state)
//! C source: drivers/base/core.c (device_link_add, device_links_check_suppliers, …)
//!
//! Device links: "this consumer needs that supplier". A managed link makes the consumer's
//! probe wait for the supplier's driver, and the supplier's unbind unbind the consumer
//! first. Every link holds an owned reference on both ends until it is deleted.

import { checkInstance, checkInteger, DevrefError, describeValue } from "@devref/raw-device";
import type { Lifetime } from "@devref/raw-device/unsafe";
import type { Device } from "./device.js";
import { type DeviceState, deviceStateOf } from "./state.js";

/** The caller creates and deletes the link; it does not take part in binding. */
export const DL_FLAG_STATELESS = 0x1;
/** Delete the link when the consumer's driver unbinds (or its probe fails). */
export const DL_FLAG_AUTOREMOVE_CONSUMER = 0x2;
/** Runtime PM: resuming the consumer resumes the supplier (recorded; no PM model here). */
export const DL_FLAG_PM_RUNTIME = 0x4;
/** Take a runtime-PM reference on the supplier at creation (recorded; no PM model here). */
export const DL_FLAG_RPM_ACTIVE = 0x8;
/** Delete the link when the supplier's driver unbinds. */
export const DL_FLAG_AUTOREMOVE_SUPPLIER = 0x10;
/** Probe the consumer once the supplier is bound. */
export const DL_FLAG_AUTOPROBE_CONSUMER = 0x20;
/** Set by the core on every link that is not stateless; callers may not pass it. */
export const DL_FLAG_MANAGED = 0x40;
/** Only for the supplier's `sync_state()`: does not hold up probing. */
export const DL_FLAG_SYNC_STATE_ONLY = 0x80;
/** Inferred from firmware (fw_devlink). */
export const DL_FLAG_INFERRED = 0x100;
/** Part of a dependency cycle found by fw_devlink. */
export const DL_FLAG_CYCLE = 0x200;

const MANAGED_LINK_FLAGS =
  DL_FLAG_AUTOREMOVE_CONSUMER |
  DL_FLAG_AUTOREMOVE_SUPPLIER |
  DL_FLAG_AUTOPROBE_CONSUMER |
  DL_FLAG_SYNC_STATE_ONLY |
  DL_FLAG_INFERRED |
  DL_FLAG_CYCLE;
const ADD_VALID_FLAGS =
  MANAGED_LINK_FLAGS | DL_FLAG_STATELESS | DL_FLAG_PM_RUNTIME | DL_FLAG_RPM_ACTIVE;

/** Link states (`enum device_link_state`). */
export const DL_STATE_NONE = -1;
/** The supplier has no driver. */
export const DL_STATE_DORMANT = 0;
/** The supplier is bound; the consumer is not. */
export const DL_STATE_AVAILABLE = 1;
/** The consumer is probing. */
export const DL_STATE_CONSUMER_PROBE = 2;
/** Both are bound. */
export const DL_STATE_ACTIVE = 3;
/** The supplier is unbinding. */
export const DL_STATE_SUPPLIER_UNBIND = 4;

const STATE_NAMES: Readonly<Record<number, string>> = {
  [DL_STATE_NONE]: "none",
  [DL_STATE_DORMANT]: "dormant",
  [DL_STATE_AVAILABLE]: "available",
  [DL_STATE_CONSUMER_PROBE]: "consumer probing",
  [DL_STATE_ACTIVE]: "active",
  [DL_STATE_SUPPLIER_UNBIND]: "supplier unbinding",
};

/** A device's driver status as links see it (`enum dl_dev_state`): no driver. */
export const DL_DEV_NO_DRIVER = 0;
/** A driver is probing the device. */
export const DL_DEV_PROBING = 1;
/** A driver is bound. */
export const DL_DEV_DRIVER_BOUND = 2;
/** The driver is unbinding. */
export const DL_DEV_UNBINDING = 3;

/** @internal A device's links: to its suppliers and from its consumers, oldest first. */
export class DeviceLinks {
  readonly suppliers: DeviceLink[] = [];
  readonly consumers: DeviceLink[] = [];
}

/** A device without links reads as these: nothing allocated per probe or unbind. */
const NO_LINKS: readonly DeviceLink[] = [];
const NOBODY: readonly DeviceState[] = [];

/** What only this module can pass to the link constructor. */
const LINK_KEY: unique symbol = Symbol("devref.deviceLink");

// module-state: privileged access to a link's ends, assigned once by DeviceLink's static
// block; holds no state of any system.
let endsOf: (link: DeviceLink) => LinkEnds;
let newLink: (consumer: DeviceState, supplier: DeviceState, flags: number) => DeviceLink;
let setState: (link: DeviceLink, state: number) => void;
let setFlags: (link: DeviceLink, flags: number) => void;
let addKref: (link: DeviceLink) => void;
let putKref: (link: DeviceLink) => void;

interface LinkEnds {
  readonly consumer: DeviceState;
  readonly supplier: DeviceState;
}

/**
 * A device link (`struct device_link`), as {@link deviceLinkAdd} returns it. It names its
 * ends but hands out neither: the references it holds are its own.
 *
 * **Invariants:** while not deleted, it holds one owned reference on each end (listed by
 * `holders()` as `device link to …` on the consumer and `device link from …` on the
 * supplier); a managed link's state follows the two drivers as the kernel's does.
 */
export class DeviceLink {
  #flags: number;
  #state: number;
  /** Stateless references (kref) on the link; a managed link counts one more. */
  #krefs = 1;
  #deleted = false;
  readonly #ends: LinkEnds;
  readonly #consumerRef: Lifetime;
  readonly #supplierRef: Lifetime;

  /** @internal Links are made by {@link deviceLinkAdd} only. */
  constructor(key: typeof LINK_KEY, consumer: DeviceState, supplier: DeviceState, flags: number) {
    if (key !== LINK_KEY) {
      throw new DevrefError(
        "EPERM",
        "device links are made by deviceLinkAdd(consumer, supplier, flags)",
      );
    }
    this.#flags = flags;
    this.#state = DL_STATE_NONE;
    this.#ends = { consumer, supplier };
    this.#consumerRef = consumer.hold(`device link to ${supplier.name}`);
    this.#supplierRef = supplier.hold(`device link from ${consumer.name}`);
  }

  /** The consumer's name (its current one: devices can be renamed). */
  get consumer(): string {
    return this.#ends.consumer.name;
  }
  /** The supplier's name. */
  get supplier(): string {
    return this.#ends.supplier.name;
  }
  /** The `DL_FLAG_*` bits in force (the core adds {@link DL_FLAG_MANAGED}). */
  get flags(): number {
    return this.#flags;
  }
  /** The link's state (`DL_STATE_*`); {@link DL_STATE_NONE} for a stateless link. */
  get state(): number {
    return this.#state;
  }
  /** The state's name, for messages and listings. */
  get stateName(): string {
    return STATE_NAMES[this.#state] ?? String(this.#state);
  }
  /** Whether the link was deleted (its references are dropped). */
  get deleted(): boolean {
    return this.#deleted;
  }
  /** Whether the core manages the link (it was not made stateless). */
  get managed(): boolean {
    return (this.#flags & DL_FLAG_MANAGED) !== 0;
  }

  static {
    endsOf = (link) => link.#ends;
    newLink = (consumer, supplier, flags) => new DeviceLink(LINK_KEY, consumer, supplier, flags);
    setState = (link, state) => {
      link.#state = state;
    };
    setFlags = (link, flags) => {
      link.#flags = flags;
    };
    addKref = (link) => {
      link.#krefs++;
    };
    putKref = (link) => {
      if (--link.#krefs > 0) return;
      link.#deleted = true;
      const { consumer, supplier } = link.#ends;
      remove(consumer.links?.suppliers, link);
      remove(supplier.links?.consumers, link);
      consumer.unhold(link.#consumerRef);
      supplier.unhold(link.#supplierRef);
    };
  }
}

function remove(list: DeviceLink[] | undefined, link: DeviceLink): void {
  if (list === undefined) return;
  const i = list.indexOf(link);
  if (i >= 0) list.splice(i, 1);
}

function linksOf(st: DeviceState): DeviceLinks {
  st.links ??= new DeviceLinks();
  return st.links;
}

/** @internal `dev->links.status`, read from the binding the bus keeps. */
export function linkStatusOf(st: DeviceState): number {
  const b = st.binding;
  if (b === null || b.phase === "ended") return DL_DEV_NO_DRIVER;
  if (b.phase === "probing") return DL_DEV_PROBING;
  return b.phase === "bound" ? DL_DEV_DRIVER_BOUND : DL_DEV_UNBINDING;
}

/** `device_is_dependent`: whether `target` is `st`, below it, or one of its consumers' dependents. */
function isDependent(st: DeviceState, target: DeviceState, seen: Set<DeviceState>): boolean {
  if (st === target) return true;
  if (seen.has(st)) return false;
  seen.add(st);
  for (const child of st.children) if (isDependent(child, target, seen)) return true;
  for (const link of st.links?.consumers ?? NO_LINKS) {
    const syncOnly =
      (link.flags & ~DL_FLAG_INFERRED) === (DL_FLAG_SYNC_STATE_ONLY | DL_FLAG_MANAGED);
    if (!syncOnly && isDependent(endsOf(link).consumer, target, seen)) return true;
  }
  return false;
}

/** `device_link_init_status`: a managed link's state from its two ends' driver status. */
function initialState(consumer: DeviceState, supplier: DeviceState): number {
  const c = linkStatusOf(consumer);
  switch (linkStatusOf(supplier)) {
    case DL_DEV_PROBING:
      return c === DL_DEV_PROBING ? DL_STATE_CONSUMER_PROBE : DL_STATE_DORMANT;
    case DL_DEV_DRIVER_BOUND:
      if (c === DL_DEV_PROBING) return DL_STATE_CONSUMER_PROBE;
      return c === DL_DEV_DRIVER_BOUND ? DL_STATE_ACTIVE : DL_STATE_AVAILABLE;
    case DL_DEV_UNBINDING:
      return DL_STATE_SUPPLIER_UNBIND;
    default:
      return DL_STATE_DORMANT;
  }
}

/** Whether a flag set is a SYNC_STATE_ONLY link's (`device_link_flag_is_sync_state_only`). */
function syncStateOnly(flags: number): boolean {
  return (
    (flags & ~(DL_FLAG_INFERRED | DL_FLAG_CYCLE | DL_FLAG_MANAGED)) === DL_FLAG_SYNC_STATE_ONLY
  );
}

/**
 * `device_link_add`: links `consumer` to `supplier`. Returns the link, or null where the
 * kernel returns NULL (the reason is logged on the consumer at debug level):
 * - the two are one device, or the flags are not a valid combination (an unknown bit,
 *   {@link DL_FLAG_MANAGED}, STATELESS with a managed-link flag, AUTOPROBE_CONSUMER with an
 *   AUTOREMOVE flag, SYNC_STATE_ONLY with anything but INFERRED/CYCLE);
 * - the supplier is not registered, or it already depends on the consumer (its child, or
 *   its consumer through other links): the link would close a cycle.
 *
 * With both AUTOREMOVE flags, AUTOREMOVE_SUPPLIER wins (the longer-lived). A second add for
 * the same pair returns the existing link, updated as the kernel does: a stateless add
 * takes one more reference (delete it as many times), a managed add makes the link
 * managed and keeps it at least as long as the new flags ask.
 *
 * Neither end may be dead; the consumer need not be registered.
 *
 * **Errors:** `EINVAL` if an end is not a device handle, the two are on different machines,
 * or `flags` is not a whole number in [0, 2^31); `ENODEV` for a revoked handle.
 */
export function deviceLinkAdd(
  consumer: Device,
  supplier: Device,
  flags: number,
): DeviceLink | null {
  const c = deviceStateOf(consumer);
  const s = deviceStateOf(supplier);
  checkInteger("device_link_add", "flags", flags, 0, 0x7fff_ffff);
  if (c.machine !== s.machine) {
    throw new DevrefError(
      "EINVAL",
      `device_link_add: '${c.name}' is on machine '${c.machine.name}' and '${s.name}' on '${s.machine.name}'; link devices of one machine`,
    );
  }
  const refuse = (why: string): null => {
    c.log("dbg", `device_link_add to ${s.name} refused: ${why}`);
    return null;
  };
  if (c === s) return refuse("a device cannot be its own supplier");
  if (
    (flags & ~ADD_VALID_FLAGS) !== 0 ||
    ((flags & DL_FLAG_STATELESS) !== 0 && (flags & MANAGED_LINK_FLAGS) !== 0) ||
    ((flags & DL_FLAG_AUTOPROBE_CONSUMER) !== 0 &&
      (flags & (DL_FLAG_AUTOREMOVE_CONSUMER | DL_FLAG_AUTOREMOVE_SUPPLIER)) !== 0)
  ) {
    return refuse(`flags ${describeValue(flags)} are not a valid combination`);
  }
  let f = flags;
  if ((f & DL_FLAG_STATELESS) === 0) f |= DL_FLAG_MANAGED;
  if ((f & DL_FLAG_SYNC_STATE_ONLY) !== 0 && !syncStateOnly(f)) {
    return refuse("SYNC_STATE_ONLY goes with INFERRED and CYCLE only");
  }
  if (c.dead) return refuse(`the consumer '${c.name}' was deleted`);
  if (!s.registered || s.dead) return refuse(`the supplier '${s.name}' is not registered`);
  if ((f & DL_FLAG_SYNC_STATE_ONLY) === 0 && isDependent(c, s, new Set())) {
    return refuse(`'${s.name}' already depends on '${c.name}': the link would close a cycle`);
  }
  const cs = linkStatusOf(c);
  if ((f & DL_FLAG_SYNC_STATE_ONLY) !== 0 && cs !== DL_DEV_NO_DRIVER && cs !== DL_DEV_PROBING) {
    return refuse("a SYNC_STATE_ONLY link is for a consumer without a driver yet");
  }
  if ((f & DL_FLAG_AUTOREMOVE_SUPPLIER) !== 0) f &= ~DL_FLAG_AUTOREMOVE_CONSUMER;
  const existing = linksOf(s).consumers.find((l) => endsOf(l).consumer === c);
  if (existing !== undefined) return reuse(existing, f);
  const link = newLink(c, s, f);
  setState(link, (f & DL_FLAG_STATELESS) !== 0 ? DL_STATE_NONE : initialState(c, s));
  linksOf(c).suppliers.push(link);
  linksOf(s).consumers.push(link);
  return link;
}

/** A second add for a linked pair: the kernel's update of the existing link. */
function reuse(link: DeviceLink, f: number): DeviceLink {
  let flags = link.flags;
  if ((flags & DL_FLAG_INFERRED) !== 0 && (f & DL_FLAG_INFERRED) === 0) flags &= ~DL_FLAG_INFERRED;
  if ((f & DL_FLAG_PM_RUNTIME) !== 0) flags |= DL_FLAG_PM_RUNTIME;
  if ((f & DL_FLAG_STATELESS) !== 0) {
    addKref(link);
    setFlags(link, flags | DL_FLAG_STATELESS);
    return link;
  }
  // Keep the link at least as long as the new flags ask.
  if ((f & DL_FLAG_AUTOREMOVE_SUPPLIER) !== 0) {
    if ((flags & DL_FLAG_AUTOREMOVE_CONSUMER) !== 0) {
      flags = (flags & ~DL_FLAG_AUTOREMOVE_CONSUMER) | DL_FLAG_AUTOREMOVE_SUPPLIER;
    }
  } else if ((f & DL_FLAG_AUTOREMOVE_CONSUMER) === 0) {
    flags &= ~(DL_FLAG_AUTOREMOVE_CONSUMER | DL_FLAG_AUTOREMOVE_SUPPLIER);
  }
  if ((flags & DL_FLAG_MANAGED) === 0) {
    addKref(link);
    flags |= DL_FLAG_MANAGED;
    const { consumer, supplier } = endsOf(link);
    setState(link, initialState(consumer, supplier));
  }
  if ((flags & DL_FLAG_SYNC_STATE_ONLY) !== 0 && (f & DL_FLAG_SYNC_STATE_ONLY) === 0) {
    flags &= ~DL_FLAG_SYNC_STATE_ONLY;
  }
  setFlags(link, flags);
  return link;
}

/** Drops the core's reference on a managed link (`device_link_drop_managed`). */
function dropManaged(link: DeviceLink): void {
  setFlags(link, link.flags & ~DL_FLAG_MANAGED);
  setState(link, DL_STATE_NONE);
  putKref(link);
}

/** `device_link_put_kref`: what deleting a link by hand may do. */
function putByHand(link: DeviceLink, where: string): void {
  if (link.deleted) return;
  if ((link.flags & DL_FLAG_STATELESS) !== 0) {
    putKref(link);
    return;
  }
  const { consumer } = endsOf(link);
  if (!consumer.registered) {
    dropManaged(link);
    return;
  }
  throw new DevrefError(
    "EPERM",
    `${where}: the link from '${link.consumer}' to '${link.supplier}' is managed by the core ` +
      "(Unable to drop a managed device link reference); it goes when its devices unbind or are deleted",
  );
}

/**
 * `device_link_del`: drops one reference on a stateless link; the last deletes it. A
 * deleted link is left as it is.
 *
 * **Errors:** `EPERM` for a managed link of a registered consumer (the kernel warns
 * "Unable to drop a managed device link reference" and keeps it); `EINVAL` if `link` is
 * not a device link.
 */
export function deviceLinkDel(link: DeviceLink): void {
  checkInstance("device_link_del", "link", link, DeviceLink);
  putByHand(link, "device_link_del");
}

/**
 * `device_link_remove`: {@link deviceLinkDel} for the link from `consumer` to `supplier`,
 * if there is one.
 *
 * **Errors:** as {@link deviceLinkDel}; `EINVAL`/`ENODEV` for a bad handle.
 */
export function deviceLinkRemove(consumer: Device, supplier: Device): void {
  const c = deviceStateOf(consumer);
  const s = deviceStateOf(supplier);
  if (c === s) return;
  const link = s.links?.consumers.find((l) => endsOf(l).consumer === c);
  if (link !== undefined) putByHand(link, "device_link_remove");
}

/** The links of a device: to its suppliers and from its consumers, oldest first. */
export interface DeviceLinkList {
  readonly suppliers: readonly DeviceLink[];
  readonly consumers: readonly DeviceLink[];
}

/**
 * The live links of `dev` (its `/sys/class/devlink` entries).
 *
 * **Errors:** `EINVAL`/`ENODEV` for a bad handle.
 */
export function deviceLinks(dev: Device): DeviceLinkList {
  const st = deviceStateOf(dev);
  return {
    suppliers: [...(st.links?.suppliers ?? NO_LINKS)],
    consumers: [...(st.links?.consumers ?? NO_LINKS)],
  };
}

// ---------------------------------------------------------------------------------------
// The driver core's side: called by bus packages around probe and unbind.

function managed(link: DeviceLink): boolean {
  return (link.flags & DL_FLAG_MANAGED) !== 0;
}

/**
 * @internal `device_links_check_suppliers`, before a probe: the name of a managed supplier
 * that is not bound yet (the probe must defer), or null, and then every supplier link is
 * marked as probing.
 */
export function linksCheckSuppliers(st: DeviceState): string | null {
  const suppliers = st.links?.suppliers;
  if (suppliers === undefined) return null;
  for (const link of suppliers) {
    if (!managed(link) || (link.flags & DL_FLAG_SYNC_STATE_ONLY) !== 0) continue;
    if (link.state !== DL_STATE_AVAILABLE) {
      // device_links_missing_supplier: the ones already marked go back.
      for (const l of suppliers)
        if (l.state === DL_STATE_CONSUMER_PROBE) setState(l, DL_STATE_AVAILABLE);
      return link.supplier;
    }
    setState(link, DL_STATE_CONSUMER_PROBE);
  }
  return null;
}

/**
 * @internal `device_links_driver_bound`, once a probe succeeded. Returns the consumers
 * that asked to be probed now (AUTOPROBE_CONSUMER), for the deferred-probe list.
 */
export function linksDriverBound(st: DeviceState): readonly DeviceState[] {
  const links = st.links;
  if (links === undefined) return NOBODY;
  let autoprobe: DeviceState[] | null = null;
  for (const link of links.consumers) {
    if (!managed(link)) continue;
    if (link.state === DL_STATE_CONSUMER_PROBE || link.state === DL_STATE_ACTIVE) continue;
    setState(link, DL_STATE_AVAILABLE);
    if ((link.flags & DL_FLAG_AUTOPROBE_CONSUMER) !== 0) {
      autoprobe ??= [];
      autoprobe.push(endsOf(link).consumer);
    }
  }
  for (const link of links.suppliers) {
    if (managed(link) && link.state === DL_STATE_CONSUMER_PROBE) setState(link, DL_STATE_ACTIVE);
  }
  return autoprobe ?? NOBODY;
}

/** The consumer side of a driver going away: the kernel's `__device_links_no_driver`. */
function supplierLinksNoDriver(st: DeviceState): void {
  const suppliers = st.links?.suppliers;
  if (suppliers === undefined) return;
  for (const link of [...suppliers].reverse()) {
    if (!managed(link)) continue;
    if ((link.flags & DL_FLAG_AUTOREMOVE_CONSUMER) !== 0) {
      dropManaged(link);
      continue;
    }
    if (link.state !== DL_STATE_CONSUMER_PROBE && link.state !== DL_STATE_ACTIVE) continue;
    const supplierBound = linkStatusOf(endsOf(link).supplier) === DL_DEV_DRIVER_BOUND;
    setState(link, supplierBound ? DL_STATE_AVAILABLE : DL_STATE_DORMANT);
  }
}

/** @internal `device_links_no_driver`, after a failed or aborted probe. */
export function linksNoDriver(st: DeviceState): void {
  const links = st.links;
  if (links === undefined) return;
  for (const link of links.consumers) {
    if (!managed(link)) continue;
    // Added by a consumer probing while this device still probed: valid, but dormant now.
    if (link.state === DL_STATE_CONSUMER_PROBE || link.state === DL_STATE_ACTIVE) {
      setState(link, DL_STATE_DORMANT);
    }
  }
  supplierLinksNoDriver(st);
}

/**
 * @internal `device_links_busy`, as an unbind starts: whether a consumer is bound or
 * probing; the links of the others are marked as unbinding.
 */
export function linksBusy(st: DeviceState): boolean {
  const links = st.links;
  if (links === undefined) return false;
  for (const link of links.consumers) {
    if (!managed(link)) continue;
    if (link.state === DL_STATE_CONSUMER_PROBE || link.state === DL_STATE_ACTIVE) return true;
    setState(link, DL_STATE_SUPPLIER_UNBIND);
  }
  return false;
}

/**
 * @internal `device_links_unbind_consumers`: unbinds every bound consumer first, through
 * `release` (its bus's device_release_driver). A consumer still probing is aborted.
 */
export function linksUnbindConsumers(
  st: DeviceState,
  release: (consumer: DeviceState) => void,
): void {
  for (let again = true; again; ) {
    again = false;
    for (const link of [...(st.links?.consumers ?? NO_LINKS)]) {
      if (!managed(link) || (link.flags & DL_FLAG_SYNC_STATE_ONLY) !== 0) continue;
      const before = link.state;
      setState(link, DL_STATE_SUPPLIER_UNBIND);
      if (before === DL_STATE_ACTIVE || before === DL_STATE_CONSUMER_PROBE) {
        release(endsOf(link).consumer);
        again = true;
        break;
      }
    }
  }
}

/** @internal `device_links_driver_cleanup`, once an unbind has finished. */
export function linksDriverCleanup(st: DeviceState): void {
  const links = st.links;
  if (links === undefined) return;
  for (const link of [...links.consumers]) {
    if (!managed(link)) continue;
    if (
      link.state === DL_STATE_SUPPLIER_UNBIND &&
      (link.flags & DL_FLAG_AUTOREMOVE_SUPPLIER) !== 0
    ) {
      dropManaged(link);
      continue;
    }
    setState(link, DL_STATE_DORMANT);
  }
  supplierLinksNoDriver(st);
}

/** @internal `device_links_purge`, in device_del: every link of the device goes. */
export function linksPurge(st: DeviceState): void {
  const links = st.links;
  if (links === undefined) return;
  for (const link of [...links.suppliers].reverse()) deleteLink(link);
  for (const link of [...links.consumers].reverse()) deleteLink(link);
}

/** `__device_link_del`: whatever references the link has, it goes now. */
function deleteLink(link: DeviceLink): void {
  while (!link.deleted) putKref(link);
}
