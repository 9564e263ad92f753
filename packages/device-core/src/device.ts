//! C header: include/linux/device.h
//! C source: drivers/base/core.c (device_initialize, device_add, device_del, device_release)
//! Rust: rust/kernel/device.rs (Device<Ctx>)

import {
  type ARef,
  type Borrowed,
  type Bound,
  type Core,
  type DeviceContext,
  DevrefError,
  type Normal,
  RawDevice,
  type Static,
} from "@devref/raw-device";
import {
  adoptRef,
  BorrowScope,
  CONTEXT_NORMAL,
  type HandleConstructor,
  Kobject,
  type Lifetime,
  liveObject,
} from "@devref/raw-device/unsafe";
import {
  captureStack,
  devresDebugEnabled,
  enterReleaseCallback,
  exitReleaseCallback,
  releaseCallbackRunning,
  reportDevresMisuse,
} from "./debug.js";
import { emit } from "./log.js";

// ---------------------------------------------------------------------------------------
// Bus hooks and events: what device_add/device_del call into. The bus package implements
// them, so the dependency arrow stays device-core ← bus.

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
  /** Joins the bus's device list; throwing fails `deviceAdd`, which unwinds. */
  addDevice(dev: DeviceState): void;
  /** Tries to bind a driver (may start an asynchronous probe, or defer). */
  probeDevice(dev: DeviceState): void;
  /** Unbinds the driver and leaves the bus's device list. */
  removeDevice(dev: DeviceState): void;
  /** Calls the bus notifiers. */
  notify(event: BusEvent, dev: DeviceState): void;
}

// ---------------------------------------------------------------------------------------
// DMA fields. Masks are kept as a number of address bits (1..64) because a 64-bit mask is
// not a safe integer; dma-iommu fills the ops and IOMMU slots.

/** The DMA operations installed on a device (the kernel's `dma_map_ops`); filled in by dma-iommu. */
export interface DmaOps {
  /** A short name for listings, e.g. `"dma-direct"` or `"iommu-dma"`. */
  readonly name: string;
}

/** Per-device IOMMU data (the kernel's `dev->iommu`): which IOMMU translates for the device. */
export interface DeviceIommu {
  /** The name of the IOMMU device. */
  readonly iommu: string;
  /** Stream or device IDs as given by firmware (`iommus = <&dart 1>`). */
  readonly ids: readonly number[];
}

// ---------------------------------------------------------------------------------------
// Attributes (sysfs-like).

/**
 * A typed device attribute, defined once (static) and set per device: the kernel's
 * `struct device_attribute` with its show/store.
 */
export interface Attribute<T> {
  readonly name: string;
  /** `"ro"` (0444) or `"rw"` (0644). */
  readonly mode: "ro" | "rw";
  /** Formats a value as sysfs shows it. */
  show(value: T): string;
  /** Parses a sysfs write; throws `EINVAL` on bad input. Needed for `"rw"`. */
  store?(text: string): T;
}

/**
 * Defines an attribute once, for every device that carries it.
 *
 * **Errors:** `EINVAL` if the name is not a sysfs file name, or a `"rw"` attribute has no `store`.
 *
 * @example
 * ```ts
 * const serial = defineAttribute<string>({ name: "serial", mode: "ro", show: (s) => s });
 * dev.setAttribute(serial, "C02XK0");
 * dev.showAttribute("serial"); // "C02XK0\n"
 * ```
 */
export function defineAttribute<T>(spec: Attribute<T>): Static<Attribute<T>> {
  if (!/^[A-Za-z0-9_.-]+$/.test(spec.name)) {
    throw new DevrefError(
      "EINVAL",
      `attribute name '${spec.name}' is not a valid sysfs file name; use letters, digits, '_', '-' and '.'`,
    );
  }
  if (spec.mode === "rw" && spec.store === undefined) {
    throw new DevrefError(
      "EINVAL",
      `attribute '${spec.name}' is "rw" but has no store(); add one or make it "ro"`,
    );
  }
  // SAFETY: attribute definitions live as long as the program (they are module constants).
  return spec as Static<Attribute<T>>;
}

interface AttributeSlot {
  readonly attr: Attribute<unknown>;
  value: unknown;
}

// ---------------------------------------------------------------------------------------
// devres nodes.

const RES = 0;
const GROUP_OPEN = 1;
const GROUP_CLOSE = 2;

/** A devres group id (from `devresOpenGroup`): the kernel's `void *id` of `devres_open_group`. */
export class DevresGroup {
  readonly label: string;
  /** @internal */ closed = false;
  constructor(label: string) {
    this.label = label;
  }
}

/** A devres node: one managed resource (or a group marker) on a device's list. */
export class DevresNode {
  readonly label: string;
  /** @internal 0 resource, 1 group open, 2 group close. */
  readonly kind: number;
  /** @internal */ readonly group: DevresGroup | null;
  /** @internal Cleared once run or removed. */ release: (() => void) | null;
  /** @internal The device while the node is on its list. */ owner: DeviceState | null = null;
  /** @internal Creation stack in debug mode. */ readonly createdAt: string | undefined;
  constructor(
    label: string,
    kind: number,
    group: DevresGroup | null,
    release: (() => void) | null,
  ) {
    this.label = label;
    this.kind = kind;
    this.group = group;
    this.release = release;
    this.createdAt = devresDebugEnabled() ? captureStack() : undefined;
  }
}

/** A registered devm action, for `devmRemoveAction`/`devmReleaseAction`. */
export type DevresAction = DevresNode;

// ---------------------------------------------------------------------------------------
// Binding: what exists while a driver is bound (the kernel's dev->driver and drvdata).

/** The phase of a binding. */
export type BindingPhase = "probing" | "bound" | "unbinding" | "ended";

/**
 * One binding of a device to a driver, from the start of probe to the end of unbind.
 *
 * **Invariants:** a device has at most one binding; the probe's scope is closed
 * (their borrows revoked) when it ends.
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
  probeScope: DeviceScope | null = null;

  constructor(driver: string, owner: object) {
    this.driver = driver;
    this.owner = owner;
  }

  /** Revokes every borrow handed out for this binding. */
  closeScopes(): void {
    const scope = this.probeScope;
    this.probeScope = null;
    scope?.close();
  }
}

// ---------------------------------------------------------------------------------------
// Registries for introspection: every initialized, unreleased device; registered roots.

// Intrusive doubly linked lists: every device is on the live list from creation to
// release, and a registered device is on its parent's child list (or the root list). No
// hashing, no per-device allocation, insertion order kept.
interface DeviceList {
  head: DeviceState | null;
  tail: DeviceState | null;
}
const liveList: DeviceList = { head: null, tail: null };
const rootList: DeviceList = { head: null, tail: null };
const noop = (): void => {};
const NO_ATTRIBUTES: ReadonlyMap<string, AttributeSlot> = new Map();
/** The devres list of a device that has none yet: shared and frozen, replaced on first add. */
// SAFETY: the array is frozen, so a write that skipped the replacement throws instead of
// sharing nodes between devices; readers only see an empty list.
const NO_DEVRES: DevresNode[] = Object.freeze([]) as unknown as DevresNode[];

/** @internal */
export function* allLiveDevices(): Iterable<DeviceState> {
  for (let d = liveList.head; d !== null; d = d.nextLive) yield d;
}

/** @internal */
export function* registeredRoots(): Iterable<DeviceState> {
  for (let d = rootList.head; d !== null; d = d.nextSibling) yield d;
}

function listAppend(list: DeviceList, d: DeviceState, live: boolean): void {
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

function listRemove(list: DeviceList, d: DeviceState, live: boolean): void {
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

// ---------------------------------------------------------------------------------------
// The device object.

/** What `DeviceState` is created from. */
export interface DeviceStateInit {
  /** The name (init_name); may be empty when the bus names devices `<devName><id>`. */
  readonly name: string;
  readonly id?: number | undefined;
  readonly parent?: DeviceState | null | undefined;
  readonly bus?: BusHooks | null | undefined;
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

/**
 * The counted device object (the kernel's `struct device`). Never handed to users: they
 * hold {@link Device} handles. Bus packages extend it with their own fields.
 *
 * **Invariants:** created initialized with a count of 1 (device_initialize); registered
 * between `deviceAdd` and `deviceDel`; dead from `deviceDel` on and never added again;
 * the release callback runs exactly once, when the last reference goes.
 */
export class DeviceState extends Kobject {
  /** The handle class users see for this device. */
  declare readonly Handle: HandleConstructor<Device>;
  readonly id: number | undefined;
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
  dmaMaskBits: number | null = null;
  coherentDmaMaskBits: number | null = null;
  dmaOps: DmaOps | null = null;
  iommu: DeviceIommu | null = null;
  private parentRefHandle: ARef<Device> | null = null;
  private userReleaseFn: (() => void) | null;
  // Most devices have neither children nor attributes: allocate on first use. Plain
  // private properties, not #private ones: V8 constructs subclasses of classes with
  // #private members markedly slower, and bus packages subclass this one.
  /** @internal The bus's own reference while the device is on its bus (klist_devices). */
  busRef: Lifetime | null = null;
  /** @internal Links of the live list. */ prevLive: DeviceState | null = null;
  /** @internal */ nextLive: DeviceState | null = null;
  /** @internal Links of the parent's child list (or the root list). */
  prevSibling: DeviceState | null = null;
  /** @internal */ nextSibling: DeviceState | null = null;
  /** @internal The first registered child (the device is the head of its child list). */
  head: DeviceState | null = null;
  /** @internal The last registered child. */
  tail: DeviceState | null = null;
  private attributeMap: Map<string, AttributeSlot> | null = null;

  constructor(init: DeviceStateInit, Handle: HandleConstructor<Device>) {
    if (typeof init.release !== "function") {
      throw new DevrefError(
        "EINVAL",
        `device '${init.name}' has no release() function: it would be broken and leak; ` +
          "pass release, which runs once when the last reference goes",
      );
    }
    // device_release runs from put() below; the kobject's own callback has nothing to do,
    // so every device shares one instead of allocating a closure.
    super(init.name, noop, Handle);
    this.id = init.id;
    this.parent = init.parent ?? null;
    this.bus = init.bus ?? null;
    this.userReleaseFn = init.release;
    listAppend(liveList, this, true);
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

  get lifecycle(): DeviceLifecycle {
    if (this.released) return "released";
    if (this.dead) return "deleted";
    if (!this.registered) return "initialized";
    const b = this.binding;
    if (b !== null && b.phase !== "ended") return b.phase;
    return this.everBound ? "unbound" : "added";
  }

  /** @internal Takes the parent reference (device_add step 4). */
  takeParentRef(): void {
    const parent = this.parent;
    if (parent === null) return;
    parent.refcount.inc();
    this.parentRefHandle = adoptRef<Device>(parent, `child ${this.name}`);
  }

  /** @internal Drops the parent reference (device_del's last step). */
  dropParentRef(): void {
    const ref = this.parentRefHandle;
    this.parentRefHandle = null;
    ref?.put();
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
    listRemove(liveList, this, true);
    if (this.devres.length > 0) {
      if (devresDebugEnabled()) {
        reportDevresMisuse({
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
    enterReleaseCallback(this.name);
    try {
      release?.();
    } finally {
      exitReleaseCallback();
    }
  }
}

// ---------------------------------------------------------------------------------------
// Handles.

/**
 * A device handle (the Rust kernel crate's `Device<Ctx>`): the only way users reach a
 * device. Owned handles ({@link ARef}) keep the structure valid; borrowed handles live
 * inside the callback that received them; the context says what the holder may do:
 * `Normal` (any handle) reads state, `Bound` (a borrow while a driver is bound) may use
 * devres, `Core` (probe/remove) may also set DMA masks.
 *
 * **Invariants:** every method checks the handle is live (revoked borrows and put
 * references throw `ENODEV`); a dead device stays readable through owned references.
 *
 * **Errors:** `ENODEV` on a revoked or put handle; method-specific errors below.
 *
 * @example
 * ```ts
 * const dev = createDevice({ name: "soc", release: () => {} });
 * deviceAdd(dev);
 * dev.lifecycle;      // "added"
 * deviceUnregister(dev); // del + put: released
 * ```
 */
export class Device<Ctx extends DeviceContext = Normal> extends RawDevice<Ctx> {
  /** Takes an owned reference (get_device), listed under `label` by `holders()`. */
  override get(label?: string): ARef<Device> {
    // SAFETY: RawDevice.get makes a handle of this handle's own class, a Device.
    return super.get(label) as ARef<Device>;
  }

  /** Where the device is in its life cycle. */
  get lifecycle(): DeviceLifecycle {
    return liveObject<DeviceState>(this).lifecycle;
  }
  /** Between deviceAdd and deviceDel. */
  get isRegistered(): boolean {
    return liveObject<DeviceState>(this).registered;
  }
  /** A driver is bound (probe completed, unbind not started). */
  get isBound(): boolean {
    return liveObject<DeviceState>(this).binding?.phase === "bound";
  }
  /** deviceDel has started: the device will never be bound or added again. */
  get isDead(): boolean {
    return liveObject<DeviceState>(this).dead;
  }
  /** The hardware is gone (surprise removal). */
  get isDisconnected(): boolean {
    return liveObject<DeviceState>(this).disconnected;
  }
  /** The bound (or probing) driver's name. */
  get driverName(): string | null {
    return liveObject<DeviceState>(this).binding?.driver ?? null;
  }
  /** The bus's name, or null for a device on no bus. */
  get busName(): string | null {
    return liveObject<DeviceState>(this).bus?.name ?? null;
  }
  /** The name that restricts matching to one driver, if set. */
  get driverOverride(): string | null {
    return liveObject<DeviceState>(this).driverOverride;
  }
  /** The parent's name while the device is registered under one. */
  get parentName(): string | null {
    const st = liveObject<DeviceState>(this);
    return st.dead ? null : (st.parent?.name ?? null);
  }

  /**
   * Takes an owned reference to the parent, or returns null if there is none (or the
   * device was deleted and no longer holds its parent).
   */
  getParent(label = "anonymous"): ARef<Device> | null {
    const st = liveObject<DeviceState>(this);
    const parent = st.parent;
    if (parent === null || st.dead || parent.released) return null;
    parent.refcount.inc();
    return adoptRef<Device>(parent, label);
  }

  /** Calls `fn` with a borrow of each registered child, oldest first (device_for_each_child). */
  forEachChild(fn: <S>(child: Borrowed<Device, S>) => void): void {
    const st = liveObject<DeviceState>(this);
    const scope = new DeviceScope();
    try {
      for (const child of st.children) {
        // SAFETY: the borrow is revoked when this scope closes, after the callback.
        fn(scope.borrow(child, child.Handle) as Borrowed<Device, never>);
      }
    } finally {
      scope.close();
    }
  }

  // --- attributes ---------------------------------------------------------------------

  /** The value of `attr` on this device, if set. */
  attribute<T>(attr: Attribute<T>): T | undefined {
    const slot = liveObject<DeviceState>(this).attributes.get(attr.name);
    if (slot === undefined || slot.attr !== attr) return undefined;
    // SAFETY: a slot keyed by this attribute object only ever holds its T.
    return slot.value as T;
  }

  /**
   * Sets `attr` on this device.
   *
   * **Errors:** `EEXIST` if another attribute with the same name is set.
   */
  setAttribute<T>(attr: Attribute<T>, value: T): void {
    const st = liveObject<DeviceState>(this);
    const slot = st.attributes.get(attr.name);
    if (slot !== undefined && slot.attr !== attr) {
      throw new DevrefError(
        "EEXIST",
        `device '${st.name}' already has a different attribute named '${attr.name}'; remove it first`,
      );
    }
    // SAFETY: the slot is keyed by attr; attribute() only reads it back through attr.
    st.attributesForWrite().set(attr.name, { attr: attr as Attribute<unknown>, value });
  }

  /** Removes `attr`; returns whether it was set. */
  removeAttribute(attr: Attribute<unknown>): boolean {
    const st = liveObject<DeviceState>(this);
    const slot = st.attributes.get(attr.name);
    if (slot === undefined || slot.attr !== attr) return false;
    st.attributesForWrite().delete(attr.name);
    return true;
  }

  /** The attribute names, sorted, as `ls` shows them. */
  attributeNames(): string[] {
    return [...liveObject<DeviceState>(this).attributes.keys()].sort();
  }

  /**
   * Reads an attribute the way sysfs does: its text plus a newline.
   *
   * **Errors:** `ENODEV` if the device is not registered (not in sysfs); `ENOENT` if no
   * such attribute.
   */
  showAttribute(name: string): string {
    const slot = this.sysfsSlot(name);
    return `${slot.attr.show(slot.value)}\n`;
  }

  /**
   * Writes an attribute the way sysfs does (a trailing newline is ignored).
   *
   * **Errors:** `ENODEV`/`ENOENT` as {@link showAttribute}; `EPERM` for a read-only
   * attribute; whatever `store` throws for bad input (the value is unchanged then).
   */
  storeAttribute(name: string, text: string): void {
    const slot = this.sysfsSlot(name);
    const store = slot.attr.store;
    if (slot.attr.mode !== "rw" || store === undefined) {
      throw new DevrefError("EPERM", `attribute '${name}' of '${this.name}' is read-only`);
    }
    slot.value = store.call(slot.attr, text.endsWith("\n") ? text.slice(0, -1) : text);
  }

  private sysfsSlot(name: string): AttributeSlot {
    const st = liveObject<DeviceState>(this);
    if (!st.registered) {
      throw new DevrefError(
        "ENODEV",
        `device '${st.name}' is not in sysfs (${st.lifecycle}); its attributes are visible only while it is registered`,
      );
    }
    const slot = st.attributes.get(name);
    if (slot === undefined) {
      throw new DevrefError(
        "ENOENT",
        `device '${st.name}' has no attribute '${name}'; it has: ${[...st.attributes.keys()].sort().join(", ") || "none"}`,
      );
    }
    return slot;
  }

  // --- DMA fields ---------------------------------------------------------------------

  /** The streaming DMA mask as a number of address bits, or null if the device cannot DMA. */
  get dmaMaskBits(): number | null {
    return liveObject<DeviceState>(this).dmaMaskBits;
  }
  /** The coherent DMA mask as a number of address bits. */
  get coherentDmaMaskBits(): number | null {
    return liveObject<DeviceState>(this).coherentDmaMaskBits;
  }
  /** The DMA operations in use, once the DMA layer has set them. */
  get dmaOps(): DmaOps | null {
    return liveObject<DeviceState>(this).dmaOps;
  }
  /** The device's IOMMU data, once the IOMMU layer has set it. */
  get iommu(): DeviceIommu | null {
    return liveObject<DeviceState>(this).iommu;
  }

  /**
   * Sets the streaming DMA mask (dma_set_mask); called from probe.
   *
   * **Errors:** `EINVAL` unless `bits` is a whole number in 1..64; `ENODEV` if the device
   * was removed.
   */
  setDmaMask(this: Device<Core>, bits: number): void {
    liveObject<DeviceState>(this).dmaMaskBits = checkMaskBits(liveObject<DeviceState>(this), bits);
  }
  /** Sets the coherent DMA mask (dma_set_coherent_mask). Errors as {@link setDmaMask}. */
  setCoherentDmaMask(this: Device<Core>, bits: number): void {
    liveObject<DeviceState>(this).coherentDmaMaskBits = checkMaskBits(
      liveObject<DeviceState>(this),
      bits,
    );
  }
  /** Sets both masks (dma_set_mask_and_coherent). Errors as {@link setDmaMask}. */
  setDmaMaskAndCoherent(this: Device<Core>, bits: number): void {
    const st = liveObject<DeviceState>(this);
    const b = checkMaskBits(st, bits);
    st.dmaMaskBits = b;
    st.coherentDmaMaskBits = b;
  }

  // --- devres (bound context) -----------------------------------------------------------

  /**
   * Registers `action` to run when the binding ends (devm_add_action): after `remove()`,
   * or when probe fails, in reverse order of registration.
   *
   * **Errors:** `ENODEV` on a revoked borrow (the binding is over).
   */
  devmAddAction(this: Device<Bound>, action: () => void, label = "action"): DevresAction {
    const st = liveObject<DeviceState>(this);
    return devresAdd(st, new DevresNode(label, RES, null, action));
  }

  /**
   * As {@link devmAddAction}, but if registration fails the action runs at once before the
   * error is rethrown (devm_add_action_or_reset), so nothing leaks.
   */
  devmAddActionOrReset(this: Device<Bound>, action: () => void, label = "action"): DevresAction {
    let st: DeviceState;
    try {
      st = liveObject<DeviceState>(this);
    } catch (e) {
      action();
      throw e;
    }
    try {
      return devresAdd(st, new DevresNode(label, RES, null, action));
    } catch (e) {
      action();
      throw e;
    }
  }

  /**
   * Unregisters an action without running it (devm_remove_action).
   *
   * **Errors:** `ENOENT` if `action` is not registered on this device.
   */
  devmRemoveAction(this: Device<Bound>, action: DevresAction): void {
    devresUnlink(liveObject<DeviceState>(this), action);
    action.release = null;
  }

  /** Unregisters an action and runs it now (devm_release_action). Errors as {@link devmRemoveAction}. */
  devmReleaseAction(this: Device<Bound>, action: DevresAction): void {
    devresUnlink(liveObject<DeviceState>(this), action);
    noteReleaseFromReleaseCallback(action.label, liveObject<DeviceState>(this));
    const run = action.release;
    action.release = null;
    run?.();
  }

  /**
   * Opens a devres group (devres_open_group): resources registered from now on can be
   * released together with {@link devresReleaseGroup}. Groups nest.
   */
  devresOpenGroup(this: Device<Bound>, label = "group"): DevresGroup {
    const st = liveObject<DeviceState>(this);
    const group = new DevresGroup(label);
    devresAdd(st, new DevresNode(label, GROUP_OPEN, group, null));
    return group;
  }

  /**
   * Closes a group (devres_close_group); `group` defaults to the latest open one.
   *
   * **Errors:** `ENOENT` if there is no such open group.
   */
  devresCloseGroup(this: Device<Bound>, group?: DevresGroup): void {
    const st = liveObject<DeviceState>(this);
    const g = findGroup(st, group);
    if (g.closed) {
      throw new DevrefError(
        "EINVAL",
        `devres group '${g.label}' of '${st.name}' is already closed`,
      );
    }
    g.closed = true;
    devresAdd(st, new DevresNode(g.label, GROUP_CLOSE, g, null));
  }

  /**
   * Removes a group's markers and keeps its resources, which join the enclosing scope
   * (devres_remove_group).
   */
  devresRemoveGroup(this: Device<Bound>, group?: DevresGroup): void {
    const st = liveObject<DeviceState>(this);
    const g = findGroup(st, group);
    st.devres = st.devres.filter((n) => n.group !== g);
  }

  /**
   * Releases only the resources of a group, newest first, and removes the group
   * (devres_release_group). Returns how many resources were released.
   */
  devresReleaseGroup(this: Device<Bound>, group?: DevresGroup): number {
    const st = liveObject<DeviceState>(this);
    const g = findGroup(st, group);
    const list = st.devres;
    const open = list.findIndex((n) => n.kind === GROUP_OPEN && n.group === g);
    let close = list.findIndex((n) => n.kind === GROUP_CLOSE && n.group === g);
    if (close < 0) close = list.length;
    const taken = list.slice(open + 1, close);
    st.devres = [...list.slice(0, open), ...list.slice(close + 1)];
    return releaseNodes(st, taken);
  }
}

function checkMaskBits(st: DeviceState, bits: number): number {
  if (!Number.isInteger(bits) || bits < 1 || bits > 64) {
    throw new DevrefError(
      "EINVAL",
      `device '${st.name}': a DMA mask is given as a number of address bits from 1 to 64, not ${String(bits)}`,
    );
  }
  if (st.dead) {
    throw new DevrefError(
      "ENODEV",
      `device '${st.name}' was removed; its DMA mask can no longer change`,
    );
  }
  return bits;
}

/**
 * The device object behind a live handle (for bus packages and the DMA layer).
 *
 * **Errors:** `ENODEV` if the handle was revoked or put.
 */
export function deviceStateOf(dev: Device): DeviceState {
  return liveObject<DeviceState>(dev);
}

// ---------------------------------------------------------------------------------------
// Borrow scopes for bus callbacks.

/**
 * A set of borrows that end together, minted for a device object: what a bus opens around
 * probe, remove and notifier calls. A thin form of raw-device's `BorrowScope` that needs
 * no existing handle and lends with a run-time context level (`CONTEXT_CORE` for probe
 * and remove, `CONTEXT_NORMAL` for notifiers and iteration).
 *
 * **Invariants:** after `close()` every borrow made through it throws `ENODEV` on use,
 * and every borrow re-lent from one of them (an `async` `withBorrow`) ends too.
 */
export class DeviceScope {
  private readonly scope: BorrowScope;

  constructor(context: number = CONTEXT_NORMAL) {
    this.scope = new BorrowScope(context);
  }

  /** A borrowed handle of class `Handle` for `st`, revoked when this scope closes. */
  borrow<T extends Device>(st: DeviceState, Handle: HandleConstructor<T>): T {
    return this.scope.borrowObject(st, Handle);
  }

  /** Revokes every borrow made through this scope. */
  close(): void {
    this.scope.close();
  }

  get closed(): boolean {
    return this.scope.closed;
  }
}

// ---------------------------------------------------------------------------------------
// devres list operations.

function devresAdd(st: DeviceState, node: DevresNode): DevresNode {
  checkDevresAdd(st, node);
  node.owner = st;
  if (st.devres === NO_DEVRES) st.devres = [];
  st.devres.push(node);
  return node;
}

/** @internal Checks done before a managed resource is tied to `st`. */
export function checkDevresAdd(
  st: DeviceState,
  node: { readonly label: string; readonly createdAt: string | undefined },
): void {
  const b = st.binding;
  if (st.dead && (b === null || b.phase === "ended")) {
    throw new DevrefError(
      "ENODEV",
      `device '${st.name}' was removed; managed resources can no longer be tied to it`,
    );
  }
  if (!devresDebugEnabled()) return;
  if (b === null || b.phase === "ended") {
    reportDevresMisuse({
      kind: "registered-unbound",
      device: st.name,
      driver: null,
      resource: node.label,
      message:
        "a managed resource was registered on a device with no driver bound; it will only be " +
        "released at device_del or release. Register it from probe, or manage it yourself",
      storedBy: undefined,
      createdAt: node.createdAt,
      at: captureStack(),
    });
  } else if (b.phase === "unbinding") {
    reportDevresMisuse({
      kind: "registered-during-remove",
      device: st.name,
      driver: b.driver,
      resource: node.label,
      message:
        "a managed resource was registered from remove(); it is released as soon as remove() returns",
      storedBy: undefined,
      createdAt: node.createdAt,
      at: captureStack(),
    });
  }
}

function devresUnlink(st: DeviceState, node: DevresNode): void {
  const i = node.owner === st ? st.devres.lastIndexOf(node) : -1;
  if (i < 0) {
    throw new DevrefError(
      "ENOENT",
      `devres '${node.label}' is not registered on device '${st.name}' (already released or removed?)`,
    );
  }
  st.devres.splice(i, 1);
  node.owner = null;
}

/** @internal Unlinks `node` from its device if it is still on a list (Devres drop). */
export function devresDetach(node: DevresNode): void {
  const st = node.owner;
  if (st === null) return;
  const i = st.devres.lastIndexOf(node);
  if (i >= 0) st.devres.splice(i, 1);
  node.owner = null;
}

/** @internal Adds a node for a Devres<T>. */
export function devresAttach(st: DeviceState, node: DevresNode): void {
  devresAdd(st, node);
}

/** @internal Reports a devres release made from a device release callback (debug mode). */
export function noteReleaseFromReleaseCallback(label: string, st: DeviceState | null): void {
  if (!devresDebugEnabled()) return;
  const running = releaseCallbackRunning();
  if (running === undefined) return;
  reportDevresMisuse({
    kind: "released-from-release-callback",
    device: st?.name ?? running,
    driver: null,
    resource: label,
    message:
      `a managed resource was released from the release callback of '${running}'; devres is ` +
      "released at unbind, long before release: do not release managed resources there",
    storedBy: undefined,
    createdAt: undefined,
    at: captureStack(),
  });
}

function findGroup(st: DeviceState, group: DevresGroup | undefined): DevresGroup {
  const list = st.devres;
  for (let i = list.length - 1; i >= 0; i--) {
    const n = list[i]!;
    if (n.kind !== GROUP_OPEN) continue;
    if (group === undefined ? !n.group!.closed : n.group === group) return n.group!;
  }
  throw new DevrefError(
    "ENOENT",
    group === undefined
      ? `device '${st.name}' has no open devres group`
      : `devres group '${group.label}' is not on device '${st.name}' (released or removed already?)`,
  );
}

function releaseNodes(st: DeviceState, nodes: DevresNode[]): number {
  let released = 0;
  for (let i = nodes.length - 1; i >= 0; i--) {
    const n = nodes[i]!;
    n.owner = null;
    const run = n.release;
    n.release = null;
    if (n.kind !== RES || run === null) continue;
    released++;
    try {
      run();
    } catch (e) {
      // Release functions return void in the kernel: one failing must not stop the rest.
      emit("err", st.name, st.driverString(), `devres '${n.label}' release failed: ${String(e)}`);
    }
  }
  return released;
}

/**
 * Releases every managed resource of `st`, newest first (devres_release_all): after
 * remove, on probe failure, in deviceDel and at release. Returns how many ran.
 */
export function devresReleaseAll(st: DeviceState): number {
  let released = 0;
  // Release actions may register more (they should not); release those too, a bounded
  // number of rounds, so the list is empty afterwards.
  for (let round = 0; st.devres.length > 0 && round < 16; round++) {
    const list = st.devres;
    st.devres = NO_DEVRES;
    released += releaseNodes(st, list);
  }
  return released;
}

// ---------------------------------------------------------------------------------------
// Life cycle.

/** What {@link createDevice} takes. */
export interface DeviceInit {
  /** The device name. */
  readonly name: string;
  /** The parent: the child takes its own reference when added. Any live handle. */
  readonly parent?: Device | null;
  /** Runs once, when the last reference goes (dev->release). Required. */
  readonly release: () => void;
}

/**
 * Creates an initialized device on no bus (device_initialize) and returns the creator's
 * owned reference, labelled `label`.
 *
 * **Invariants:** the device is freed only through put: after this call, even if
 * `deviceAdd` fails or is never called, drop it with `.put()`.
 *
 * **Errors:** `EINVAL` without a release function; `ENODEV` if `parent` is not live.
 *
 * @example
 * ```ts
 * const soc = createDevice({ name: "soc", release: () => console.log("soc released") });
 * deviceAdd(soc);
 * ```
 */
export function createDevice(init: DeviceInit, label = "creator"): ARef<Device> {
  const parent =
    init.parent === undefined || init.parent === null ? null : deviceStateOf(init.parent);
  const st = new DeviceState({ name: init.name, parent, release: init.release }, Device);
  return adoptRef<Device>(st, label);
}

/**
 * Registers a device (device_add): names it, takes a reference on its parent, adds it to
 * its bus (which notifies `ADD_DEVICE` and tries to bind a driver) and to the parent's
 * children.
 *
 * **Errors:** `EEXIST` if already registered; `EINVAL` if it was deleted (allocate a new
 * one) or has no name; `ENODEV` if the parent is not registered; whatever the bus throws
 * when adding (everything is undone; the caller must still put its reference).
 */
export function deviceAdd(dev: Device): void {
  addState(deviceStateOf(dev));
}

/**
 * Unregisters a device (device_del): marks it dead, unbinds its driver, releases devres,
 * leaves the bus and sysfs, and drops the parent reference. The caller's own reference is
 * untouched: the dead device stays readable until the last holder puts it.
 *
 * **Errors:** `EINVAL` if the device is not registered.
 */
export function deviceDel(dev: Device): void {
  delState(deviceStateOf(dev));
}

/** deviceDel, then put the caller's reference (device_unregister). */
export function deviceUnregister(dev: ARef<Device>): void {
  delState(deviceStateOf(dev));
  dev.put();
}

/** @internal device_add on the object. */
export function addState(st: DeviceState): void {
  if (st.dead) {
    throw new DevrefError(
      "EINVAL",
      `device '${st.name}' was deleted and must never be added again; create a new device`,
    );
  }
  if (st.registered) {
    throw new DevrefError("EEXIST", `device '${st.name}' is already registered`);
  }
  if (st.name === "" && st.bus?.devName !== undefined && st.id !== undefined) {
    st.name = `${st.bus.devName}${st.id}`;
    st.refcount.owner = st.name;
  }
  if (st.name === "") {
    throw new DevrefError(
      "EINVAL",
      "a device needs a name before it is added; set one at creation",
    );
  }
  const parent = st.parent;
  if (parent !== null && (!parent.registered || parent.dead)) {
    throw new DevrefError(
      "ENODEV",
      `cannot add '${st.name}' under '${parent.name}', which is ${parent.lifecycle}; add the parent first`,
    );
  }
  st.refcount.inc(); // held for the duration of device_add
  try {
    st.takeParentRef();
    st.registered = true;
    try {
      st.bus?.addDevice(st);
    } catch (e) {
      st.registered = false;
      st.dropParentRef();
      throw e;
    }
    st.bus?.notify("ADD_DEVICE", st);
    if (!st.dead) st.bus?.probeDevice(st);
    if (st.registered) {
      if (parent === null) listAppend(rootList, st, false);
      else parent.addChild(st);
    }
  } finally {
    st.put();
  }
}

function refuseDuringRemove(st: DeviceState): void {
  if (st.binding?.phase === "unbinding") {
    throw new DevrefError(
      "EBUSY",
      `device '${st.name}' is being unbound: it cannot be deleted from its own driver's remove() ` +
        "(that deadlocks in the kernel); delete it after remove() returns",
    );
  }
}

/** @internal device_del on the object. */
export function delState(st: DeviceState): void {
  if (!st.registered || st.dead) {
    throw new DevrefError(
      "EINVAL",
      `device '${st.name}' is ${st.lifecycle}, not registered; only a registered device can be deleted`,
    );
  }
  refuseDuringRemove(st);
  st.refcount.inc(); // the device must outlive its own deletion
  try {
    st.dead = true;
    st.bus?.notify("DEL_DEVICE", st);
    st.bus?.removeDevice(st);
    // Resources added outside a binding (device_del has released them since 2023).
    devresReleaseAll(st);
    st.bus?.notify("REMOVED_DEVICE", st);
    st.registered = false;
    if (st.parent === null) listRemove(rootList, st, false);
    else st.parent.removeChild(st);
    st.dropParentRef();
  } finally {
    st.put();
  }
}

/**
 * Deletes `st` and every registered descendant, children first and newest first, as bus
 * code does on removal. With `surprise`, the whole subtree is marked disconnected first,
 * so drivers' remove callbacks see hardware that no longer answers.
 */
export function deleteTree(st: DeviceState, surprise: boolean): void {
  // Validate the whole subtree before changing anything.
  checkSubtree(st);
  deleteSubtree(st, surprise);
}

function checkSubtree(st: DeviceState): void {
  if (st.registered && !st.dead) refuseDuringRemove(st);
  for (const c of st.children) checkSubtree(c);
}

function deleteSubtree(st: DeviceState, surprise: boolean): void {
  if (surprise) markDisconnected(st);
  const children = st.children.reverse();
  for (const child of children) {
    if (child.registered && !child.dead) deleteSubtree(child, false);
  }
  if (st.registered && !st.dead) delState(st);
}

function markDisconnected(st: DeviceState): void {
  st.disconnected = true;
  for (const child of st.children) markDisconnected(child);
}
