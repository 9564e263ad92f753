//! C header: include/linux/device.h (struct device), include/linux/fwnode.h,
//! include/linux/iommu.h (struct iommu_fwspec, dev->iommu)
//! C source: drivers/base/core.c (device_initialize, device_release)
//!
//! The device object itself: never handed to users, who hold handles.

import { DevrefError } from "@devref/raw-device";
import type { Lifetime } from "@devref/raw-device/unsafe";
import { type HandleConstructor, Kobject, liveObject } from "@devref/raw-device/unsafe";
import { captureStack, reportDevresMisuse } from "./debug.js";
import type { DevresNode } from "./devres-list.js";
import { devresReleaseAll, NO_DEVRES } from "./devres-list.js";
import type { DeviceLinks } from "./links.js";
import { coreOf, type Machine } from "./machine.js";
import type { MemResource } from "./mmio.js";

/** Bus notifier events, in the kernel's numeric order (`BUS_NOTIFY_*`). */
export type BusEvent =
  | "ADD_DEVICE"
  | "DEL_DEVICE"
  | "REMOVED_DEVICE"
  | "BIND_DRIVER"
  | "BOUND_DRIVER"
  | "UNBIND_DRIVER"
  | "UNBOUND_DRIVER"
  | "DRIVER_NOT_BOUND";

/**
 * What `deviceAdd`/`deviceDel` need from the device's bus (the kernel's `bus_add_device`,
 * `bus_probe_device`, `bus_remove_device` and `bus_notify`). Implemented by bus packages.
 */
export interface BusHooks {
  /** The bus name (`/sys/bus/<name>`). */
  readonly name: string;
  /** Prefix for devices added without a name: `<devName><id>`. */
  readonly devName: string | undefined;
  /** The machine the bus was created on. */
  readonly machine: Machine;
  /** Joins the bus's device list; throwing fails `deviceAdd`, which unwinds. */
  addDevice(dev: DeviceState): void;
  /** Tries to bind a driver (may start an asynchronous probe, or defer). */
  probeDevice(dev: DeviceState): void;
  /** Unbinds the driver and leaves the bus's device list. */
  removeDevice(dev: DeviceState): void;
  /**
   * The device is being renamed to `name` (device_rename): re-key it, or throw `EEXIST`
   * if the bus has a device of that name (the rename is then refused).
   */
  renameDevice(dev: DeviceState, name: string): void;
  /**
   * Unbinds the driver, if any (device_release_driver): how a supplier's unbind unbinds
   * its consumers first.
   */
  releaseDriver(dev: DeviceState): void;
  /** Calls the bus notifiers. */
  notify(event: BusEvent, dev: DeviceState): void;
}

/** The DMA operations installed on a device (the kernel's `dma_map_ops`); filled in by dma-iommu. */
export interface DmaOps {
  /** A short name for listings, e.g. `"dma-direct"` or `"iommu-dma"`. */
  readonly name: string;
  /**
   * Called before a driver changes the device's DMA masks: throws to refuse (`EBUSY`
   * while mappings are live, `EIO` for a mask the DMA layer cannot serve), changes nothing.
   */
  maskChanging?(st: DeviceState, bits: number, streaming: boolean, coherent: boolean): void;
}

/**
 * Per-device IOMMU data (the kernel's `dev->iommu`): which IOMMU translates for the device
 * and the state the IOMMU layer keeps for it. The IOMMU layer fills the slot with its own
 * object, which has at least these fields.
 */
export interface DeviceIommu {
  /** The name of the IOMMU device. */
  readonly iommu: string;
  /** Stream or device IDs as given by firmware (`iommus = <&dart 1>`). */
  readonly ids: readonly number[];
}

/** How an interrupt line signals (the DT `interrupts` flags). */
export type IrqTrigger = "level" | "edge";

/** One interrupt of a device: a line of an interrupt domain (DT `interrupts`). */
export interface IrqSpec {
  /** The interrupt domain's name, as created on the machine. */
  readonly domain: string;
  /** The line number inside the domain. */
  readonly hwirq: number;
  readonly trigger: IrqTrigger;
}

/** A DT `iommus` entry (or a PCI `iommu-map` result): which IOMMU translates, with IDs. */
export interface IommuRef {
  /** The IOMMU device's name (the phandle target). */
  readonly iommu: string;
  /** The specifier cells, e.g. the DART stream ID. */
  readonly ids: readonly number[];
}

/**
 * What firmware says about a device, whatever its bus (the kernel's fwnode plus
 * `iommu_fwspec`): filled by the bus that creates the device, read-only afterwards.
 */
export interface FirmwareNode {
  /** `compatible` strings, most specific first. */
  readonly compatible: readonly string[];
  /** MMIO resources (`reg`, or PCI BARs). */
  readonly mem: readonly MemResource[];
  /** Interrupts (`interrupts`, or the PCI INTx pin). */
  readonly interrupts: readonly IrqSpec[];
  /** `iommus` (or the PCI `iommu-map` entry of the function). */
  readonly iommus: readonly IommuRef[];
}

/** The firmware node of a device with no description. */
export const EMPTY_FWNODE: FirmwareNode = Object.freeze({
  compatible: Object.freeze([]),
  mem: Object.freeze([]),
  interrupts: Object.freeze([]),
  iommus: Object.freeze([]),
});

/** The phase of a binding. */
export type BindingPhase = "probing" | "bound" | "unbinding" | "ended";

/** Something that ends when its binding does (a borrow scope, a bound callback's scope). */
export interface ScopeLike {
  close(): void;
}

/**
 * One binding of a device to a driver, from the start of probe to the end of unbind.
 *
 * **Invariants:** a device has at most one binding; every scope lent for it (probe,
 * interrupts, bound callbacks) is closed — its borrows revoked — when it ends.
 */
export class Binding {
  /** The driver's name. */
  readonly driver: string;
  /** The bus's driver record (opaque to device-core). */
  readonly owner: object;
  phase: BindingPhase = "probing";
  /** The data probe returned (drvdata), owned by the binding. */
  data: unknown = undefined;
  /** The probe's Core scope while probe runs: it ends with the binding if probe has not returned. */
  probeScope: ScopeLike | null = null;
  /** Other scopes open for this binding (bound callbacks, interrupt handlers); most bindings never have one. */
  private openScopes: ScopeLike[] | null = null;

  constructor(driver: string, owner: object) {
    this.driver = driver;
    this.owner = owner;
  }

  /** Keeps `scope` open until it closes itself or the binding ends. */
  addScope(scope: ScopeLike): void {
    if (this.openScopes === null) this.openScopes = [scope];
    else this.openScopes.push(scope);
  }

  /** Forgets a scope that closed by itself. */
  dropScope(scope: ScopeLike): void {
    const list = this.openScopes;
    if (list !== null) {
      const i = list.lastIndexOf(scope);
      if (i >= 0) list.splice(i, 1);
    }
    if (this.probeScope === scope) this.probeScope = null;
  }

  /** Revokes every borrow handed out for this binding. */
  closeScopes(): void {
    const scope = this.probeScope;
    this.probeScope = null;
    scope?.close();
    const list = this.openScopes;
    this.openScopes = null;
    if (list !== null) for (const s of list) s.close();
  }
}

/** What `DeviceState` is created from. */
export interface DeviceStateInit {
  /** The name (init_name); may be empty when the bus names devices `<devName><id>`. */
  readonly name: string;
  readonly id?: number | undefined;
  readonly parent?: DeviceState | null | undefined;
  readonly bus?: BusHooks | null | undefined;
  /** The machine; the bus's (or the parent's) when omitted. */
  readonly machine?: Machine | undefined;
  /** The firmware description; empty when omitted. */
  readonly fwnode?: FirmwareNode | undefined;
  /** The release callback (dev->release): required, as the kernel warns loudly without one. */
  readonly release: () => void;
}

/** The life-cycle states a device goes through. */
export type DeviceLifecycle =
  | "initialized"
  | "added"
  | "probing"
  | "bound"
  | "unbinding"
  | "unbound"
  | "deleted"
  | "released";

/** An attribute value set on a device (see attributes.ts). */
export interface AttributeSlot {
  readonly attr: { readonly name: string; show(value: never): string };
  value: unknown;
}

const noop = (): void => {};
const NO_ATTRIBUTES: ReadonlyMap<string, AttributeSlot> = new Map();

/** Appends `d` to `list` (the live list when `live`, else a child or root list). */
export function listAppend(
  list: { head: DeviceState | null; tail: DeviceState | null },
  d: DeviceState,
  live: boolean,
): void {
  const last = list.tail;
  if (live) {
    d.prevLive = last;
    d.nextLive = null;
    if (last === null) list.head = d;
    else last.nextLive = d;
  } else {
    d.prevSibling = last;
    d.nextSibling = null;
    if (last === null) list.head = d;
    else last.nextSibling = d;
  }
  list.tail = d;
}

/** Removes `d` from `list`; nothing happens if it is not on it. */
export function listRemove(
  list: { head: DeviceState | null; tail: DeviceState | null },
  d: DeviceState,
  live: boolean,
): void {
  const prev = live ? d.prevLive : d.prevSibling;
  const next = live ? d.nextLive : d.nextSibling;
  if (prev === null) {
    if (list.head !== d) return; // not on this list
    list.head = next;
  } else if (live) prev.nextLive = next;
  else prev.nextSibling = next;
  if (next === null) list.tail = prev;
  else if (live) next.prevLive = prev;
  else next.prevSibling = prev;
  if (live) d.prevLive = d.nextLive = null;
  else d.prevSibling = d.nextSibling = null;
}

/**
 * The counted device object (the kernel's `struct device`). Never handed to users: they
 * hold `Device` handles. Bus packages extend it with their own fields.
 *
 * **Invariants:** created initialized with a count of 1 (device_initialize) on one
 * machine; registered between `deviceAdd` and `deviceDel`; dead from `deviceDel` on and
 * never added again; the release callback runs exactly once, when the last reference goes.
 */
export class DeviceState extends Kobject {
  /** The handle class users see for this device. */
  declare readonly Handle: HandleConstructor<import("./device.js").Device>;
  readonly machine: Machine;
  readonly id: number | undefined;
  /** What firmware says about the device. */
  readonly fwnode: FirmwareNode;
  /** The parent (dev->parent); a reference is held on it from add until del. */
  parent: DeviceState | null;
  readonly bus: BusHooks | null;
  registered = false;
  /** Set by deviceDel (kill_device): a dead device is never bound or added again. */
  dead = false;
  /** The hardware is gone (surprise removal): MMIO reads all-ones and writes are dropped. */
  disconnected = false;
  everBound = false;
  binding: Binding | null = null;
  /** A name that restricts matching to one driver (driver_override). */
  driverOverride: string | null = null;
  /** Why the last probe deferred (dev_err_probe), for the deferred list. */
  deferredReason: string | null = null;
  /** What the last failed probe threw, until a probe succeeds (for bind's error). */
  probeError: unknown = undefined;
  devres: DevresNode[] = NO_DEVRES;
  /** Nonzero while the devres list is being released (a removal then waits for it). */
  releasingDevres = 0;
  dmaMaskBits: number | null = null;
  coherentDmaMaskBits: number | null = null;
  dmaOps: DmaOps | null = null;
  /** The IOMMU layer's data for the device (dev->iommu). */
  iommu: DeviceIommu | null = null;
  /** @internal Device links to suppliers and from consumers (dev->links), made on first use. */
  links: DeviceLinks | undefined = undefined;
  /** @internal The parent reference's holder record while registered. */
  parentRef: Lifetime | null = null;
  private userReleaseFn: (() => void) | null;
  // Most devices have neither children nor attributes: allocate on first use. Plain
  // private properties, not #private ones: V8 constructs subclasses of classes with
  // #private members markedly slower, and bus packages subclass this one.
  /** @internal The bus's own reference while the device is on its bus (klist_devices). */
  busRef: Lifetime | null = null;
  /** @internal Links of the machine's live list. */ prevLive: DeviceState | null = null;
  /** @internal */ nextLive: DeviceState | null = null;
  /** @internal Links of the parent's child list (or the root list). */
  prevSibling: DeviceState | null = null;
  /** @internal */ nextSibling: DeviceState | null = null;
  /** @internal The first registered child (the device is the head of its child list). */
  head: DeviceState | null = null;
  /** @internal The last registered child. */
  tail: DeviceState | null = null;
  private attributeMap: Map<string, AttributeSlot> | null = null;

  constructor(
    init: DeviceStateInit,
    Handle: HandleConstructor<import("./device.js").Device>,
    machine: Machine,
  ) {
    // device_release runs from put() below; the kobject's own callback has nothing to do,
    // so every device shares one instead of allocating a closure.
    super(init.name, noop, Handle, machine.ownership);
    this.machine = machine;
    this.id = init.id;
    this.fwnode = init.fwnode ?? EMPTY_FWNODE;
    this.parent = init.parent ?? null;
    this.bus = init.bus ?? null;
    this.userReleaseFn = init.release;
    listAppend(coreOf(machine).live, this, true);
  }

  /** Registered children, oldest first. */
  get children(): DeviceState[] {
    const out: DeviceState[] = [];
    for (let d = this.head; d !== null; d = d.nextSibling) out.push(d);
    return out;
  }
  /** @internal */
  addChild(child: DeviceState): void {
    listAppend(this, child, false);
  }
  /** @internal */
  removeChild(child: DeviceState): void {
    listRemove(this, child, false);
  }
  /** The attributes set on the device, by name. */
  get attributes(): ReadonlyMap<string, AttributeSlot> {
    return this.attributeMap ?? NO_ATTRIBUTES;
  }
  /** @internal */
  attributesForWrite(): Map<string, AttributeSlot> {
    if (this.attributeMap === null) this.attributeMap = new Map();
    return this.attributeMap;
  }

  /** The kernel's `dev_driver_string`: the bound driver, else the bus, else null. */
  driverString(): string | null {
    return this.binding?.driver ?? this.bus?.name ?? null;
  }

  /** Logs a message about this device through its machine (dev_printk). */
  log(level: "err" | "warn" | "notice" | "info" | "dbg", message: string): void {
    this.machine.log(level, this.name, this.driverString(), message);
  }

  get lifecycle(): DeviceLifecycle {
    if (this.released) return "released";
    if (this.dead) return "deleted";
    if (!this.registered) return "initialized";
    const b = this.binding;
    if (b !== null && b.phase !== "ended") return b.phase;
    return this.everBound ? "unbound" : "added";
  }

  /** Takes a counted reference recorded under `label` (a resource that keeps the device). */
  hold(label: string): Lifetime {
    this.refcount.inc();
    return this.addHolder(label);
  }

  /** Drops a reference taken with {@link hold}. */
  unhold(record: Lifetime): void {
    this.removeHolder(record);
    this.put();
  }

  /** @internal Takes the parent reference (device_add step 4). */
  takeParentRef(): void {
    const parent = this.parent;
    if (parent === null) return;
    this.parentRef = parent.hold(`child ${this.name}`);
  }

  /** @internal Drops the parent reference (device_del's last step). */
  dropParentRef(): void {
    const ref = this.parentRef;
    this.parentRef = null;
    if (ref !== null) this.parent?.unhold(ref);
  }

  /**
   * Drops one count; when it was the last, runs device_release (leftover devres, then the
   * release callback) exactly once: `released` turns true exactly once.
   */
  override put(): void {
    if (this.released) {
      super.put(); // lets the refcount report the underflow
      return;
    }
    super.put();
    if (this.released) this.runDeviceRelease();
  }

  /** device_release: leftover devres, then the release callback, exactly once. */
  private runDeviceRelease(): void {
    const machine = this.machine;
    listRemove(coreOf(machine).live, this, true);
    if (this.devres.length > 0) {
      if (machine.devresDebug) {
        reportDevresMisuse(machine, {
          kind: "left-until-release",
          device: this.name,
          driver: null,
          resource: this.devres.map((n) => n.label).join(", "),
          message:
            "resources registered outside a binding were still on the device at release; " +
            "remove them when their user goes away",
          storedBy: undefined,
          createdAt: this.devres[0]?.createdAt,
          at: captureStack(),
        });
      }
      devresReleaseAll(this);
    }
    this.dmaOps = null;
    this.iommu = null;
    const release = this.userReleaseFn;
    this.userReleaseFn = null;
    coreOf(machine).enterRelease(this.name);
    try {
      release?.();
    } finally {
      coreOf(machine).exitRelease();
    }
  }
}

/**
 * The device object behind a live handle (for bus packages and the DMA layer).
 *
 * **Errors:** `ENODEV` if the handle was revoked or put; `EINVAL` if it is not a handle.
 */
export function deviceStateOf(dev: import("./device.js").Device): DeviceState {
  const object = liveObject(dev);
  if (!(object instanceof DeviceState)) {
    throw new DevrefError(
      "EINVAL",
      `'${object.name}' is a device handle of another kind, not a Device`,
    );
  }
  return object;
}
