//! C header: include/linux/device.h (get_device, device accessors, devm_*)
//! Rust: rust/kernel/device.rs (Device<Ctx>)

import {
  type ARef,
  type Borrowed,
  type Bound,
  type Core,
  checkCallback,
  checkInstance,
  checkObject,
  checkString,
  type DeviceContext,
  DevrefError,
  describeValue,
  type Normal,
  RawDevice,
} from "@devref/raw-device";
import {
  adoptRef,
  CONTEXT_BOUND,
  CONTEXT_CORE,
  liveObject,
  requireContext,
} from "@devref/raw-device/unsafe";
import type { Attribute } from "./attributes.js";
import { type BoundCallback, makeBoundCallback } from "./callback.js";
import type { Devres } from "./devres.js";
import {
  type DevresAction,
  DevresGroup,
  DevresNode,
  devresAdd,
  devresUnlink,
  findGroup,
  GROUP_CLOSE,
  GROUP_OPEN,
  noteReleaseFromReleaseCallback,
  RES,
  releaseNodes,
} from "./devres-list.js";
import type { IrqHandler, IrqLine } from "./irq.js";
import { changeIrqDepth, requestIrqOf } from "./irq-request.js";
import type { Machine } from "./machine.js";
import { DeviceScope } from "./scope.js";
import type {
  AttributeSlot,
  DeviceIommu,
  DeviceLifecycle,
  DeviceState,
  DmaOps,
  FirmwareNode,
} from "./state.js";

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
    checkString("Device.getParent", "label", label);
    const parent = st.parent;
    if (parent === null || st.dead || parent.released) return null;
    parent.refcount.inc();
    return adoptRef<Device>(parent, label);
  }

  /** The machine the device belongs to. */
  get machine(): Machine {
    return liveObject<DeviceState>(this).machine;
  }

  /** What firmware says about the device: compatible, MMIO, interrupts, `iommus`. */
  get firmware(): FirmwareNode {
    return liveObject<DeviceState>(this).fwnode;
  }

  /** Calls `fn` with a borrow of each registered child, oldest first (device_for_each_child). */
  forEachChild(fn: <S>(child: Borrowed<Device, S>) => void): void {
    const st = liveObject<DeviceState>(this);
    checkCallback("Device.forEachChild", "fn", fn);
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
    const st = liveObject<DeviceState>(this);
    checkObject("Device.attribute", "attr", attr);
    const slot = st.attributes.get(attr.name);
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
    checkAttribute("Device.setAttribute", attr);
    const slot = st.attributes.get(attr.name);
    if (slot !== undefined && slot.attr !== attr) {
      throw new DevrefError(
        "EEXIST",
        `device '${st.name}' already has a different attribute named '${attr.name}'; remove it first`,
      );
    }
    // SAFETY: the slot is keyed by attr; attribute() only reads it back through attr.
    st.attributesForWrite().set(attr.name, { attr: attr as Attribute<never>, value });
  }

  /** Removes `attr`; returns whether it was set. */
  removeAttribute(attr: Attribute<unknown>): boolean {
    const st = liveObject<DeviceState>(this);
    checkObject("Device.removeAttribute", "attr", attr);
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
    // SAFETY: a slot's value was set through its own attribute, so it is that attribute's T.
    return `${slot.attr.show(slot.value as never)}\n`;
  }

  /**
   * Writes an attribute the way sysfs does (a trailing newline is ignored).
   *
   * **Errors:** `ENODEV`/`ENOENT` as {@link showAttribute}; `EPERM` for a read-only
   * attribute; whatever `store` throws for bad input (the value is unchanged then).
   */
  storeAttribute(name: string, text: string): void {
    const slot = this.sysfsSlot(name);
    checkString("Device.storeAttribute", "text", text);
    // SAFETY: slots are only ever made from Attribute objects (see setAttribute).
    const attr = slot.attr as Attribute<unknown>;
    const store = attr.store;
    if (attr.mode !== "rw" || store === undefined) {
      throw new DevrefError("EPERM", `attribute '${name}' of '${this.name}' is read-only`);
    }
    slot.value = store.call(attr, text.endsWith("\n") ? text.slice(0, -1) : text);
  }

  private sysfsSlot(name: string): AttributeSlot {
    const st = liveObject<DeviceState>(this);
    checkString("Device", "name", name);
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
   * Sets the streaming DMA mask (dma_set_mask); called from probe or remove.
   *
   * **Errors:** `EINVAL` unless `bits` is a whole number in 1..64; `EPERM` unless given
   * the Core borrow of a bus callback; `ENODEV` if the device was removed; whatever the
   * DMA layer refuses (`EBUSY` while mappings exist, `EIO` for a mask it cannot serve).
   */
  setDmaMask(this: Device<Core>, bits: number): void {
    setMasks(this, bits, true, false);
  }
  /** Sets the coherent DMA mask (dma_set_coherent_mask). Errors as {@link setDmaMask}. */
  setCoherentDmaMask(this: Device<Core>, bits: number): void {
    setMasks(this, bits, false, true);
  }
  /** Sets both masks (dma_set_mask_and_coherent). Errors as {@link setDmaMask}. */
  setDmaMaskAndCoherent(this: Device<Core>, bits: number): void {
    setMasks(this, bits, true, true);
  }

  // --- devres (bound context) -----------------------------------------------------------

  /**
   * Registers `action` to run when the binding ends (devm_add_action): after `remove()`,
   * or when probe fails, in reverse order of registration.
   *
   * **Errors:** `EPERM` unless given a Bound borrow; `ENODEV` once the binding is over;
   * `EINVAL` if `action` is not a function or `label` not a string.
   */
  devmAddAction(this: Device<Bound>, action: () => void, label = "action"): DevresAction {
    const st = boundState(this, "devm_add_action");
    checkCallback("devmAddAction", "action", action);
    checkString("devmAddAction", "label", label);
    return devresAdd(st, new DevresNode(label, RES, null, action, st.machine.devresDebug));
  }

  /**
   * As {@link devmAddAction}, but if registration fails the action runs at once before the
   * error is rethrown (devm_add_action_or_reset), so nothing leaks.
   */
  devmAddActionOrReset(this: Device<Bound>, action: () => void, label = "action"): DevresAction {
    checkCallback("devmAddActionOrReset", "action", action);
    let st: DeviceState;
    try {
      st = boundState(this, "devm_add_action_or_reset");
      checkString("devmAddActionOrReset", "label", label);
    } catch (e) {
      action();
      throw e;
    }
    try {
      return devresAdd(st, new DevresNode(label, RES, null, action, st.machine.devresDebug));
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
    const st = boundState(this, "devm_remove_action");
    checkInstance("devmRemoveAction", "action", action, DevresNode);
    devresUnlink(st, action);
    action.release = null;
  }

  /** Unregisters an action and runs it now (devm_release_action). Errors as {@link devmRemoveAction}. */
  devmReleaseAction(this: Device<Bound>, action: DevresAction): void {
    const st = boundState(this, "devm_release_action");
    checkInstance("devmReleaseAction", "action", action, DevresNode);
    const run = action.release;
    devresUnlink(st, action);
    noteReleaseFromReleaseCallback(action.label, st);
    action.release = null;
    run?.();
  }

  /**
   * Opens a devres group (devres_open_group): resources registered from now on can be
   * released together with {@link devresReleaseGroup}. Groups nest.
   */
  devresOpenGroup(this: Device<Bound>, label = "group"): DevresGroup {
    const st = boundState(this, "devres_open_group");
    checkString("devresOpenGroup", "label", label);
    const group = new DevresGroup(label);
    devresAdd(st, new DevresNode(label, GROUP_OPEN, group, null, st.machine.devresDebug));
    return group;
  }

  /**
   * Closes a group (devres_close_group); `group` defaults to the latest open one.
   *
   * **Errors:** `ENOENT` if there is no such open group.
   */
  devresCloseGroup(this: Device<Bound>, group?: DevresGroup): void {
    const st = boundState(this, "devres_close_group");
    const g = findGroup(st, checkGroup("devresCloseGroup", group));
    if (g.closed) {
      throw new DevrefError(
        "EINVAL",
        `devres group '${g.label}' of '${st.name}' is already closed`,
      );
    }
    g.closed = true;
    devresAdd(st, new DevresNode(g.label, GROUP_CLOSE, g, null, st.machine.devresDebug));
  }

  /**
   * Removes a group's markers and keeps its resources, which join the enclosing scope
   * (devres_remove_group).
   */
  devresRemoveGroup(this: Device<Bound>, group?: DevresGroup): void {
    const st = boundState(this, "devres_remove_group");
    const g = findGroup(st, checkGroup("devresRemoveGroup", group));
    st.devres = st.devres.filter((n) => n.group !== g);
  }

  /**
   * Releases only the resources of a group, newest first, and removes the group
   * (devres_release_group). Returns how many resources were released.
   */
  devresReleaseGroup(this: Device<Bound>, group?: DevresGroup): number {
    const st = boundState(this, "devres_release_group");
    const g = findGroup(st, checkGroup("devresReleaseGroup", group));
    const list = st.devres;
    const open = list.findIndex((n) => n.kind === GROUP_OPEN && n.group === g);
    let close = list.findIndex((n) => n.kind === GROUP_CLOSE && n.group === g);
    if (close < 0) close = list.length;
    const taken = list.slice(open + 1, close);
    st.devres = [...list.slice(0, open), ...list.slice(close + 1)];
    return releaseNodes(st, taken);
  }

  // --- interrupts and bound callbacks ---------------------------------------------------

  /**
   * Requests interrupt `index` of the device's firmware description for the current
   * binding (devm_request_irq): the handler runs on every interrupt of the line (shared
   * lines call every handler in request order), each time with a Bound borrow, and never
   * after the binding ends.
   *
   * **Errors:** `ENXIO` if the device has no such interrupt, or its domain does not
   * exist on the machine; `EBUSY` for a trigger mismatch on a shared line; `EPERM` unless
   * given a Bound borrow.
   */
  requestIrq(
    this: Device<Bound>,
    index: number,
    handler: IrqHandler<Device<Bound>>,
    name?: string,
  ): Devres<IrqLine> {
    return requestIrqOf(this, index, handler, name);
  }

  /**
   * Masks a line this binding requested (disable_irq): no handler of the line runs until
   * as many {@link enableIrq} calls; an edge that comes meanwhile is delivered at enable,
   * and a level line still asserted then interrupts again. Disabling nests. It waits for
   * running handlers, so it cannot be called from the line's own handler: use
   * {@link disableIrqNosync} there.
   *
   * **Errors:** `EBUSY` from the line's own handler; `EINVAL` if the binding has no handler
   * on `line`; `EPERM` unless given a Bound borrow.
   */
  disableIrq(this: Device<Bound>, line: IrqLine): void {
    changeIrqDepth(this, line, true, true, "disable_irq");
  }

  /** {@link disableIrq} without waiting for running handlers (disable_irq_nosync). */
  disableIrqNosync(this: Device<Bound>, line: IrqLine): void {
    changeIrqDepth(this, line, true, false, "disable_irq_nosync");
  }

  /**
   * Undoes one {@link disableIrq} (enable_irq); the last one unmasks the line and delivers
   * what waited.
   *
   * **Errors:** `EINVAL` without a matching disable ("Unbalanced enable") or for a line the
   * binding did not request; `EPERM` unless given a Bound borrow.
   */
  enableIrq(this: Device<Bound>, line: IrqLine): void {
    changeIrqDepth(this, line, false, false, "enable_irq");
  }

  /**
   * Makes a function that runs `fn` with a Bound borrow of this device for as long as the
   * current binding lasts, and does nothing (returns undefined) after it ended: the
   * general form of what `requestIrq` does, for deferred work, timers, completions and
   * mailbox callbacks. When `fn` returns a promise, its borrow lives until the promise
   * settles or the binding ends, whichever comes first.
   *
   * **Errors:** `EPERM` unless given a Bound borrow; `EINVAL` if `fn` is not a function.
   *
   * @example
   * ```ts
   * probe: (dev) => {
   *   const poll = dev.devmCallback((d) => readStatus(d));
   *   machine.scheduler.queue(() => poll()); // never touches the device after unbind
   * }
   * ```
   */
  devmCallback<A extends unknown[], R>(
    this: Device<Bound>,
    fn: <S>(dev: Borrowed<Device<Bound>, S>, ...args: A) => R,
    label = "callback",
  ): BoundCallback<A, R> {
    return makeBoundCallback(this, fn, label);
  }
}

function checkAttribute(where: string, attr: Attribute<unknown>): void {
  checkObject(where, "attr", attr);
  checkString(where, "attr.name", attr.name);
  checkCallback(where, "attr.show", attr.show);
}

function checkGroup(where: string, group: DevresGroup | undefined): DevresGroup | undefined {
  if (group !== undefined) checkInstance(where, "group", group, DevresGroup);
  return group;
}

/**
 * The device object behind a handle that must be a live Bound (or Core) borrow of a
 * bound (or probing, or unbinding) device.
 *
 * **Errors:** `EPERM` if the handle was not lent for a binding (an owned reference cast to
 * `Bound`); `ENODEV` if the binding is over.
 */
export function boundState(dev: Device, what: string): DeviceState {
  // SAFETY: a Device handle is made over a DeviceState (its object class).
  const st = requireContext(dev, CONTEXT_BOUND, what) as DeviceState;
  const b = st.binding;
  if (b === null || b.phase === "ended") {
    throw new DevrefError(
      "ENODEV",
      `device '${st.name}': ${what} needs a driver bound, and none is; managed resources exist only for a binding`,
    );
  }
  return st;
}

function setMasks(dev: Device<Core>, bits: number, streaming: boolean, coherent: boolean): void {
  // SAFETY: a Device handle is made over a DeviceState (its object class).
  const st = requireContext(dev, CONTEXT_CORE, "dma_set_mask") as DeviceState;
  if (typeof bits !== "number" || !Number.isInteger(bits) || bits < 1 || bits > 64) {
    throw new DevrefError(
      "EINVAL",
      `device '${st.name}': a DMA mask is given as a number of address bits from 1 to 64, not ${describeValue(bits)}`,
    );
  }
  if (st.dead) {
    throw new DevrefError(
      "ENODEV",
      `device '${st.name}' was removed; its DMA mask can no longer change`,
    );
  }
  // The DMA layer may refuse (mappings live, a mask it cannot serve) before anything changes.
  st.dmaOps?.maskChanging?.(st, bits, streaming, coherent);
  if (streaming) st.dmaMaskBits = bits;
  if (coherent) st.coherentDmaMaskBits = bits;
}
