//! C header: include/linux/device/bus.h (struct bus_type, bus notifiers)
//! C source: drivers/base/bus.c, drivers/base/dd.c (really_probe, __device_attach,
//! __driver_attach, __device_release_driver)

import { type BusEvent, Device, defaultMachine, Machine } from "@devref/device-core";
import {
  Binding,
  type BusHooks,
  coreOf,
  type DeviceState,
  deleteTree,
  deviceStateOf,
  devresReleaseAll,
  errProbe,
  linksBusy,
  linksCheckSuppliers,
  linksDriverBound,
  linksDriverCleanup,
  linksNoDriver,
  linksUnbindConsumers,
} from "@devref/device-core/unsafe";
import type { ARef, Borrowed } from "@devref/raw-device";
import {
  checkCallback,
  checkInstance,
  checkString,
  DevrefError,
  describeValue,
  isThenable,
} from "@devref/raw-device";
import {
  adoptRef,
  BorrowScope,
  CONTEXT_CORE,
  type HandleConstructor,
} from "@devref/raw-device/unsafe";
import { Driver, type DriverRecord, type DriverRegistration, recordOf } from "./driver.js";

/** What a bus's match says about a device and a driver (the kernel's `bus->match` result). */
export type MatchResult =
  /** A match; `info` is the matched table entry's data, handed to probe. */
  | { readonly info: unknown }
  /** No match. */
  | null
  /** Cannot decide yet: the device goes on the deferred list. */
  | "defer";

/**
 * A bus notifier (bus_register_notifier): called with each event and a Normal borrow of
 * the device, valid during the call.
 */
export type BusNotifier<H extends Device = Device> = <S>(
  event: BusEvent,
  dev: Borrowed<H, S>,
) => void;

/** A registered notifier; unregister (or dispose) to stop it. */
export interface NotifierRegistration extends Disposable {
  unregister(): void;
}

const BOUND = 1;
const FAILED = 0;
/** A managed supplier is not ready: the device waits on the deferred list, no other driver tries. */
const DEFERRED = 2;
type ProbeOutcome = typeof BOUND | typeof FAILED | typeof DEFERRED;

/** What a bus is created on: its name (unique per machine) and its machine. */
export interface BusOptions {
  /** The bus name (`/sys/bus/<name>`); each bus kind has a default. */
  readonly name?: string;
  /** The machine; the default machine when omitted. */
  readonly machine?: Machine;
}

function errnoText(e: unknown): string {
  if (DevrefError.is(e)) return `error -${e.errno} (${e.code})`;
  return `exception: ${e instanceof Error ? e.message : String(e)}`;
}

/** Disposes driver data that owns resources (Rust drops the driver's data after unbind). */
function disposeData(st: DeviceState, driver: string, data: unknown): void {
  if (typeof data !== "object" || data === null) return;
  // SAFETY: reading a property of a non-null object; its type is checked on the next line.
  const dispose = (data as { [Symbol.dispose]?: unknown })[Symbol.dispose];
  if (typeof dispose !== "function") return;
  try {
    dispose.call(data);
  } catch (e) {
    st.machine.log("err", st.name, driver, `disposing driver data failed: ${String(e)}`);
  }
}

// The hooks device-core calls, kept off the public class so users see only bus operations.
class Hooks implements BusHooks {
  readonly bus: BusType;
  readonly name: string;
  readonly devName: string | undefined;
  readonly machine: Machine;
  constructor(bus: BusType, name: string, devName: string | undefined, machine: Machine) {
    this.bus = bus;
    this.name = name;
    this.devName = devName;
    this.machine = machine;
  }
  addDevice(st: DeviceState): void {
    hookAdd(this.bus, st);
  }
  probeDevice(st: DeviceState): void {
    hookProbe(this.bus, st);
  }
  removeDevice(st: DeviceState): void {
    hookRemove(this.bus, st);
  }
  releaseDriver(st: DeviceState): void {
    hookRelease(this.bus, st);
  }
  renameDevice(st: DeviceState, name: string): void {
    hookRename(this.bus, st, name);
  }
  notify(event: BusEvent, st: DeviceState): void {
    hookNotify(this.bus, event, st);
  }
}

// module-state: privileged-access slots, assigned once by BusType's static block.
let hookAdd: (bus: BusType, st: DeviceState) => void;
let hookProbe: (bus: BusType, st: DeviceState) => void;
let hookRemove: (bus: BusType, st: DeviceState) => void;
let hookRelease: (bus: BusType, st: DeviceState) => void;
let hookRename: (bus: BusType, st: DeviceState, name: string) => void;
let hookNotify: (bus: BusType, event: BusEvent, st: DeviceState) => void;

/**
 * A bus type (the kernel's `struct bus_type` with its private part): devices, drivers in
 * registration order, matching, probe and remove, notifiers and removal. Bus packages
 * subclass it (see `PlatformBus`, `PciBus`); instances are defined once, as statics.
 *
 * Binding follows `drivers/base/dd.c`: a new device tries drivers in registration order
 * and binds the first whose probe succeeds; a new driver tries every unbound device. A
 * probe may be asynchronous (return a promise); `settle()` waits for all of them.
 *
 * **Removal during an asynchronous probe** (`unplug`, `unbind`, driver unregistration):
 * the probe is aborted at once — its Core borrow is revoked, `DRIVER_NOT_BOUND` is sent and
 * its devres released, as for a failed probe — and `remove()` does not run, because the
 * driver never finished binding. When the probe's promise settles later, its result is
 * disposed (if it has `[Symbol.dispose]`) and otherwise ignored. The kernel would make the
 * remover wait for the device lock instead; here nothing blocks, so removal works at any
 * moment, and the outcome is the one the kernel reaches when a probe fails.
 *
 * **Invariants:** `remove()` runs exactly once per completed probe and never after the
 * device is unbound; devres is empty whenever no driver is bound; a device is on the
 * bus's list (holding a "bus" reference) exactly while it is registered.
 */
export abstract class BusType<H extends Device = Device> {
  /** The bus name (`/sys/bus/<name>`). */
  readonly name: string;
  /** The machine the bus was created on: its devices and drivers live there. */
  readonly machine: Machine;
  /** The prefix for devices added without a name. */
  readonly devName: string | undefined;
  /** Whether new devices and drivers are matched at once (`drivers_autoprobe`). */
  autoprobe = true;
  readonly #Handle: HandleConstructor<H>;
  readonly #hooks: Hooks;
  // The devices on the bus, by name, in the order they were added. The bus's reference on
  // each (klist_devices holds one) is a holder record on the device object, so holders()
  // lists the bus without a handle object per device.
  readonly #byName: Map<string, DeviceState> = new Map();
  readonly #drivers: DriverRecord[] = [];
  #notifiers: BusNotifier<H>[] = [];
  readonly #holderLabel: string;

  /**
   * **Errors:** `EINVAL` for a bad name or machine; `EEXIST` if the machine has a bus of
   * that name.
   */
  protected constructor(
    options: BusOptions,
    defaultName: string,
    devName: string | undefined,
    Handle: HandleConstructor<H>,
  ) {
    if (typeof options !== "object" || options === null) {
      throw new DevrefError(
        "EINVAL",
        `a bus is created from options { name?, machine? }, not ${describeValue(options)}`,
      );
    }
    const name = options.name ?? defaultName;
    if (typeof name !== "string" || !/^[A-Za-z0-9_.-]+$/.test(name)) {
      throw new DevrefError(
        "EINVAL",
        `a bus name is made of letters, digits and _ . -, not ${describeValue(name)}`,
      );
    }
    const machine = options.machine ?? defaultMachine();
    checkInstance("new bus", "options.machine", machine, Machine);
    this.name = name;
    this.machine = machine;
    coreOf(machine).claimName("bus", this);
    this.devName = devName;
    this.#Handle = Handle;
    // SAFETY: the hooks use only members whose meaning does not depend on H.
    this.#hooks = new Hooks(this as unknown as BusType, name, devName, machine);
    this.#holderLabel = `${name} bus`;
  }

  /** The hooks to give a new device object of this bus (device-core calls them). */
  protected get hooks(): BusHooks {
    return this.#hooks;
  }

  /** The bus-specific match of one device and one driver, after driver_override. */
  protected abstract matchDriver(st: DeviceState, drv: Driver<unknown>): MatchResult;

  /** Whether `drv` is a driver for this kind of bus. */
  protected abstract acceptsDriver(drv: Driver<unknown>): boolean;

  // --- drivers ----------------------------------------------------------------------------

  /**
   * Registers a driver (driver_register) and tries it on every unbound device
   * (driver_attach). Asynchronous probes continue after this returns; see `settle()`.
   *
   * **Errors:** `EINVAL` if the driver is for another kind of bus; `EEXIST` if a driver of
   * that name is registered on this bus, or the driver is registered on a bus already.
   */
  registerDriver(drv: Driver<unknown>): DriverRegistration {
    checkInstance("registerDriver", "drv", drv, Driver);
    if (!this.acceptsDriver(drv)) {
      throw new DevrefError(
        "EINVAL",
        `driver '${drv.name}' is not a ${this.name} driver; register it on its own bus`,
      );
    }
    const rec = recordOf(drv);
    if (rec.bus !== null) {
      throw new DevrefError(
        "EEXIST",
        `driver '${drv.name}' is already registered; unregister it first`,
      );
    }
    if (this.#drivers.some((r) => r.name === drv.name)) {
      throw new DevrefError(
        "EEXIST",
        `a driver named '${drv.name}' is already registered on bus '${this.name}'`,
      );
    }
    rec.bus = this;
    this.#drivers.push(rec);
    if (this.autoprobe) this.#driverAttach(rec);
    const registration: DriverRegistration = {
      driver: drv,
      unregister: () => {
        if (rec.bus === this) this.unregisterDriver(drv);
      },
      [Symbol.dispose]: () => registration.unregister(),
    };
    return registration;
  }

  /**
   * Unregisters a driver (driver_unregister): unbinds its devices, newest binding first
   * (their `remove()` runs), aborts its probes in flight, and leaves the bus.
   *
   * **Errors:** `EINVAL` if the driver is not registered on this bus.
   */
  unregisterDriver(drv: Driver<unknown>): void {
    checkInstance("unregisterDriver", "drv", drv, Driver);
    const rec = recordOf(drv);
    if (rec.bus !== this) {
      throw new DevrefError(
        "EINVAL",
        `driver '${drv.name}' is not registered on bus '${this.name}'`,
      );
    }
    for (const st of rec.devices) {
      if (st.binding?.phase === "unbinding") {
        throw new DevrefError(
          "EBUSY",
          `driver '${drv.name}' is unbinding '${st.name}': it cannot be unregistered from its own remove()`,
        );
      }
    }
    // Off the list first, so nothing matches it while its devices are unbound.
    this.#drivers.splice(this.#drivers.indexOf(rec), 1);
    for (const st of [...this.#byName.values()]) {
      const b = st.binding;
      if (b !== null && b.owner === rec && b.phase === "probing") this.#releaseDriver(st);
    }
    for (const st of [...rec.devices].reverse()) this.#releaseDriver(st);
    rec.bus = null;
  }

  /** The names of the registered drivers, in registration order. */
  driverNames(): string[] {
    return this.#drivers.map((r) => r.name);
  }

  // --- devices ----------------------------------------------------------------------------

  /** The names of the devices on the bus, in the order they were added. */
  deviceNames(): string[] {
    return [...this.#byName.keys()];
  }

  /**
   * Finds a device by name and takes an owned reference to it (bus_find_device_by_name),
   * or returns null.
   */
  findDevice(name: string, label = "anonymous"): ARef<H> | null {
    checkString("findDevice", "name", name);
    checkString("findDevice", "label", label);
    const st = this.#byName.get(name);
    if (st === undefined) return null;
    st.refcount.inc();
    return adoptRef<H>(st, label);
  }

  /** Calls `fn` with a borrow of each device on the bus, in order (bus_for_each_dev). */
  forEachDevice(fn: <S>(dev: Borrowed<H, S>) => void): void {
    checkCallback("forEachDevice", "fn", fn);
    const scope = new BorrowScope();
    try {
      for (const st of [...this.#byName.values()]) {
        // SAFETY: the borrow is revoked when the scope closes, right after the loop.
        fn(scope.borrowObject(st, this.#Handle) as Borrowed<H, never>);
      }
    } finally {
      scope.close();
    }
  }

  #own(dev: Device): DeviceState {
    const st = deviceStateOf(checkInstance(`bus '${this.name}'`, "dev", dev, Device));
    if (st.bus !== this.#hooks) {
      throw new DevrefError(
        "EINVAL",
        `device '${st.name}' is on ${st.bus === null ? "no bus" : `bus '${st.bus.name}'`}, not '${this.name}'`,
      );
    }
    if (!st.registered || st.dead) {
      throw new DevrefError(
        "ENODEV",
        `device '${st.name}' is ${st.lifecycle}: it is no longer on bus '${this.name}'`,
      );
    }
    return st;
  }

  /**
   * Restricts matching of `dev` to the driver named `name` (driver_override), or lifts the
   * restriction with null or "". Does not rebind: call `unbind` and `probe` (or `bind`).
   *
   * **Errors:** `EINVAL` for a name with whitespace; `ENODEV` if the device is gone.
   */
  setDriverOverride(dev: Device, name: string | null): void {
    const st = this.#own(dev);
    if (name !== null) checkString("setDriverOverride", "name", name);
    const value = name === null || name === "" || name === "\n" ? null : name.replace(/\n$/, "");
    if (value !== null && !/^\S+$/.test(value)) {
      throw new DevrefError(
        "EINVAL",
        `driver_override '${value}' must be a driver name without spaces`,
      );
    }
    st.driverOverride = value;
  }

  /**
   * Binds `dev` to `drv` on demand (sysfs `bind`). Resolves once bound.
   *
   * **Errors:** `EBUSY` if a driver is bound or probing; `EINVAL` if the driver is not
   * registered here; `ENODEV` if the device is gone, does not match, or the probe failed
   * (the probe's error is the `cause`); `EPROBE_DEFER` if the match asked to defer or a
   * managed supplier link is not available yet.
   */
  async bind(dev: Device, drv: Driver<unknown>): Promise<void> {
    const st = this.#own(dev);
    checkInstance("bind", "drv", drv, Driver);
    const rec = recordOf(drv);
    if (rec.bus !== this) {
      throw new DevrefError(
        "EINVAL",
        `driver '${drv.name}' is not registered on bus '${this.name}'`,
      );
    }
    if (drv.suppressBindAttrs) {
      throw new DevrefError("EPERM", `driver '${drv.name}' does not allow bind on demand`);
    }
    if (st.binding !== null) {
      throw new DevrefError(
        "EBUSY",
        `device '${st.name}' is already ${st.binding.phase} with driver '${st.binding.driver}'; unbind it first`,
      );
    }
    const m = this.#match(st, rec);
    if (m === null) {
      throw new DevrefError("ENODEV", `device '${st.name}' does not match driver '${drv.name}'`);
    }
    if (m === "defer") {
      coreOf(this.machine).deferredAdd(st);
      throw new DevrefError("EPROBE_DEFER", `bus '${this.name}' cannot match '${st.name}' yet`);
    }
    const outcome = await this.#reallyProbe(st, rec, m.info);
    if (outcome === DEFERRED) {
      throw new DevrefError("EPROBE_DEFER", `device '${st.name}': ${st.deferredReason}`);
    }
    if (outcome !== BOUND) {
      throw new DevrefError("ENODEV", `device '${st.name}' did not bind to driver '${drv.name}'`, {
        cause: st.probeError,
      });
    }
  }

  /**
   * Unbinds the driver of `dev` (sysfs `unbind`, device_release_driver): `remove()`
   * runs, the driver data is disposed, devres is released. A probe in flight is aborted.
   * Returns whether a driver was bound or probing.
   *
   * **Errors:** `EBUSY` when called from the same device's `remove()` (it would deadlock
   * in the kernel); `ENODEV` if the device is gone.
   */
  unbind(dev: Device): boolean {
    const st = this.#own(dev);
    if (st.binding === null) return false;
    // SAFETY: every binding of a device on this bus is made by #reallyProbe, whose owner is
    // the driver's record.
    const rec = st.binding.owner as DriverRecord;
    if (rec.driver.suppressBindAttrs && st.binding.phase !== "unbinding") {
      throw new DevrefError("EPERM", `driver '${rec.name}' does not allow unbind on demand`);
    }
    this.#releaseDriver(st);
    return true;
  }

  /**
   * Tries to bind a driver to `dev` now (sysfs `drivers_probe`, device_attach). Resolves
   * with whether the device ended up bound.
   *
   * **Errors:** `ENODEV` if the device is gone.
   */
  async probe(dev: Device): Promise<boolean> {
    const st = this.#own(dev);
    if (st.binding === null) {
      const r = this.#attach(st, null);
      if (r !== undefined) await r;
    }
    return st.binding?.phase === "bound";
  }

  /**
   * Surprise removal (hot-unplug): the hardware of `dev` and its descendants is gone at
   * once (MMIO reads all-ones, writes are dropped), then they are deleted children first:
   * their drivers are unbound (`remove()` runs once for completed probes; probes in
   * flight are aborted), devres is revoked, and they leave the bus. Holders of owned
   * references keep a valid, dead object until they put it.
   *
   * **Errors:** `ENODEV` if the device is already gone; `EINVAL` if it is on another bus.
   */
  unplug(dev: Device): void {
    deleteTree(this.#own(dev), true);
  }

  /**
   * Waits for every probe in flight and the deferred-probe work of the machine
   * (wait_for_device_probe).
   */
  settle(): Promise<void> {
    return this.machine.waitForDeviceProbe();
  }

  // --- notifiers --------------------------------------------------------------------------

  /**
   * Registers a notifier for this bus's events (bus_register_notifier). Notifiers run in
   * registration order; one that throws is logged and the others still run.
   */
  registerNotifier(fn: BusNotifier<H>): NotifierRegistration {
    checkCallback("registerNotifier", "fn", fn);
    this.#notifiers = [...this.#notifiers, fn];
    const registration: NotifierRegistration = {
      unregister: () => {
        this.#notifiers = this.#notifiers.filter((f) => f !== fn);
      },
      [Symbol.dispose]: () => registration.unregister(),
    };
    return registration;
  }

  #notify(event: BusEvent, st: DeviceState): void {
    const notifiers = this.#notifiers;
    if (notifiers.length === 0) return;
    const scope = new BorrowScope();
    try {
      // SAFETY: a Normal borrow, revoked when the scope closes after the notifiers ran.
      const dev = scope.borrowObject(st, this.#Handle) as Borrowed<H, never>;
      for (const fn of notifiers) {
        try {
          fn(event, dev);
        } catch (e) {
          st.log("err", `bus notifier failed on ${event}: ${String(e)}`);
        }
      }
    } finally {
      scope.close();
    }
  }

  // --- binding (dd.c) ---------------------------------------------------------------------

  #match(st: DeviceState, rec: DriverRecord): MatchResult {
    const override = st.driverOverride;
    if (override !== null) {
      if (override !== rec.name) return null;
      const m = this.matchDriver(st, rec.driver);
      return m === null || m === "defer" ? { info: undefined } : m;
    }
    return this.matchDriver(st, rec.driver);
  }

  /**
   * __device_attach: try drivers in registration order, first bind wins. After an
   * asynchronous probe fails, the attempt goes on over the driver list as it is then,
   * skipping the drivers already tried, so a driver registered meanwhile gets its turn.
   */
  #attach(st: DeviceState, tried: Set<DriverRecord> | null): Promise<void> | undefined {
    const drivers = [...this.#drivers];
    for (const rec of drivers) {
      if (st.dead || !st.registered || st.binding !== null) return undefined;
      if (tried?.has(rec) === true || rec.bus !== this) continue;
      const m = this.#match(st, rec);
      if (m === null) continue;
      if (m === "defer") {
        coreOf(this.machine).deferredAdd(st);
        return undefined;
      }
      const r = this.#reallyProbe(st, rec, m.info);
      if (r === BOUND || r === DEFERRED) return undefined;
      if (r !== FAILED) {
        const done = tried ?? new Set<DriverRecord>();
        for (const d of drivers) {
          done.add(d);
          if (d === rec) break;
        }
        // A failed asynchronous probe lets the next driver try its luck, as a failed
        // synchronous one does.
        const next = r.then((outcome) => (outcome === BOUND ? undefined : this.#attach(st, done)));
        coreOf(this.machine).track(next);
        return next;
      }
    }
    return undefined;
  }

  /** __driver_attach for every unbound device. */
  #driverAttach(rec: DriverRecord): void {
    for (const st of [...this.#byName.values()]) {
      if (rec.bus !== this) return;
      if (st.dead || st.binding !== null) continue;
      const m = this.#match(st, rec);
      if (m === null) continue;
      if (m === "defer") {
        coreOf(this.machine).deferredAdd(st);
        continue;
      }
      this.#reallyProbe(st, rec, m.info);
    }
  }

  /** really_probe. */
  #reallyProbe(
    st: DeviceState,
    rec: DriverRecord,
    info: unknown,
  ): ProbeOutcome | Promise<ProbeOutcome> {
    if (st.dead) return FAILED;
    if (st.devres.length > 0) {
      st.log("warn", "Resources present before probing");
      st.probeError = new DevrefError("EBUSY", `device '${st.name}' has resources before probing`);
      return FAILED;
    }
    const machine = this.machine;
    const missing = linksCheckSuppliers(st);
    if (missing !== null) {
      // A managed supplier link is not available: defer, as device_links_check_suppliers.
      st.probeError = errProbe(st, "EPROBE_DEFER", `supplier ${missing} not ready`);
      coreOf(machine).deferredAdd(st);
      return DEFERRED;
    }
    const b = new Binding(rec.name, rec);
    st.binding = b;
    const core = coreOf(machine);
    const trigger = core.triggerCount;
    // bus->dma_configure: the bus's default masks (32 bits for platform and PCI devices).
    if (st.dmaMaskBits === null) st.dmaMaskBits = 32;
    if (st.coherentDmaMaskBits === null) st.coherentDmaMaskBits = 32;
    try {
      machine.dma?.configure(st);
    } catch (e) {
      // dma_configure failing fails the probe (an IOMMU not yet there defers it).
      return this.#probeFailed(st, b, rec, null, e, trigger);
    }
    this.#notify("BIND_DRIVER", st);
    if (st.binding !== b || b.phase !== "probing") return FAILED;
    const scope = new BorrowScope(CONTEXT_CORE);
    b.probeScope = scope;
    let result: unknown;
    try {
      result = rec.probe(scope.borrowObject(st, this.#Handle), info);
    } catch (e) {
      return this.#probeFailed(st, b, rec, scope, e, trigger);
    }
    if (isThenable(result)) {
      const p = Promise.resolve(result).then(
        (data) => this.#probeDone(st, b, rec, scope, data),
        (e: unknown) => this.#probeFailed(st, b, rec, scope, e, trigger),
      );
      core.track(p);
      return p;
    }
    return this.#probeDone(st, b, rec, scope, result);
  }

  #probeDone(
    st: DeviceState,
    b: Binding,
    rec: DriverRecord,
    scope: BorrowScope,
    data: unknown,
  ): ProbeOutcome {
    scope.close();
    b.dropScope(scope);
    if (st.binding !== b || b.phase !== "probing") {
      // Aborted while in flight: the binding is gone, so is the data.
      st.machine.log(
        "dbg",
        st.name,
        rec.name,
        "probe completed after the binding was aborted; result disposed",
      );
      disposeData(st, rec.name, data);
      return FAILED;
    }
    b.data = data;
    b.phase = "bound";
    st.everBound = true;
    st.deferredReason = null;
    rec.devices.add(st);
    st.probeError = undefined;
    // driver_bound: link states, off the deferred list, retry the others, then BOUND_DRIVER.
    const core = coreOf(this.machine);
    for (const consumer of linksDriverBound(st)) {
      if (consumer.registered && !consumer.dead && consumer.binding === null)
        core.deferredAdd(consumer);
    }
    core.deferredDel(st);
    core.triggerDeferred();
    this.#notify("BOUND_DRIVER", st);
    core.uevent(st, "bind", rec.name);
    return BOUND;
  }

  #probeFailed(
    st: DeviceState,
    b: Binding,
    rec: DriverRecord,
    scope: BorrowScope | null,
    e: unknown,
    trigger: number,
  ): ProbeOutcome {
    if (scope !== null) {
      scope.close();
      b.dropScope(scope);
    }
    if (st.binding !== b || b.phase !== "probing") {
      st.machine.log(
        "dbg",
        st.name,
        rec.name,
        `probe failed after the binding was aborted: ${errnoText(e)}`,
      );
      return FAILED;
    }
    const core = coreOf(this.machine);
    st.probeError = e;
    this.#notify("DRIVER_NOT_BOUND", st);
    linksNoDriver(st);
    this.#endBinding(st, b);
    const err = DevrefError.is(e) ? e : null;
    if (err?.code === "EPROBE_DEFER") {
      if (st.deferredReason === null) st.deferredReason = err.message;
      st.log("dbg", `Driver ${rec.name} requests probe deferral`);
      if (!st.dead) core.deferredAdd(st);
      // A bind that happened while this probe ran would be missed: retry now.
      if (trigger !== core.triggerCount) core.triggerDeferred();
    } else if (err !== null && (err.code === "ENODEV" || err.code === "ENXIO")) {
      st.log("dbg", `probe of ${st.name} rejects match ${-err.errno}: ${err.message}`);
    } else {
      st.log("warn", `probe with driver ${rec.name} failed with ${errnoText(e)}`);
    }
    return FAILED;
  }

  /**
   * The end of every binding: DMA the driver left running stops, devres is released
   * newest first, every borrow lent for the binding is revoked, DMA is torn down.
   */
  #endBinding(st: DeviceState, b: Binding): void {
    const dma = this.machine.dma;
    dma?.quiesce(st);
    devresReleaseAll(st);
    b.closeScopes();
    b.phase = "ended";
    st.binding = null;
    dma?.deconfigure(st);
  }

  /** __device_release_driver; aborts a probe in flight. */
  #releaseDriver(st: DeviceState): void {
    const b = st.binding;
    if (b === null || b.phase === "ended") return;
    // SAFETY: as in unbind(): bindings on this bus are owned by driver records.
    const rec = b.owner as DriverRecord;
    if (b.phase === "probing") {
      b.phase = "ended"; // the probe's continuation sees it was aborted
      b.closeScopes(); // the probe's Core borrow dies now
      this.#notify("DRIVER_NOT_BOUND", st);
      linksNoDriver(st);
      this.#endBinding(st, b);
      st.machine.log(
        "dbg",
        st.name,
        rec.name,
        "probe aborted: the device was unbound or removed while probing",
      );
      return;
    }
    if (b.phase === "unbinding") {
      throw new DevrefError(
        "EBUSY",
        `device '${st.name}' is already being unbound: releasing the driver from its own remove() deadlocks in the kernel`,
      );
    }
    // Consumers first (device_links_busy, device_links_unbind_consumers); one of them may
    // have unbound this device meanwhile.
    while (linksBusy(st)) {
      linksUnbindConsumers(st, (consumer) => consumer.bus?.releaseDriver(consumer));
      if (st.binding !== b || b.phase !== "bound") return;
    }
    b.phase = "unbinding";
    this.#notify("UNBIND_DRIVER", st);
    const remove = rec.remove;
    if (remove !== null) {
      const scope = new BorrowScope(CONTEXT_CORE);
      try {
        remove(scope.borrowObject(st, this.#Handle), b.data);
      } catch (e) {
        // remove() returns void in the kernel: the unbind goes on.
        st.machine.log("err", st.name, rec.name, `remove() failed: ${errnoText(e)}`);
      } finally {
        scope.close();
      }
    }
    const data = b.data;
    b.data = undefined;
    disposeData(st, rec.name, data);
    this.#endBinding(st, b);
    linksDriverCleanup(st);
    rec.devices.delete(st);
    this.#notify("UNBOUND_DRIVER", st);
    coreOf(this.machine).uevent(st, "unbind", null);
  }

  static {
    hookAdd = (bus, st) => {
      if (bus.#byName.has(st.name)) {
        throw new DevrefError(
          "EEXIST",
          `bus '${bus.name}' already has a device named '${st.name}'; names are unique per bus`,
        );
      }
      st.refcount.inc();
      st.busRef = st.addHolder(bus.#holderLabel);
      bus.#byName.set(st.name, st);
    };
    hookProbe = (bus, st) => {
      if (!bus.autoprobe || st.binding !== null || bus.#drivers.length === 0) return;
      bus.#attach(st, null);
    };
    hookRemove = (bus, st) => {
      bus.#releaseDriver(st);
      coreOf(bus.machine).deferredDel(st);
      if (bus.#byName.get(st.name) === st) bus.#byName.delete(st.name);
      const holder = st.busRef;
      if (holder !== null) {
        st.busRef = null;
        st.removeHolder(holder);
        st.put();
      }
    };
    hookNotify = (bus, event, st) => bus.#notify(event, st);
    hookRelease = (bus, st) => bus.#releaseDriver(st);
    hookRename = (bus, st, name) => {
      if (bus.#byName.has(name)) {
        throw new DevrefError(
          "EEXIST",
          `bus '${bus.name}' already has a device named '${name}'; names are unique per bus`,
        );
      }
      // Re-keyed in place: the bus keeps its devices in the order they were added.
      const entries = [...bus.#byName].map(([k, v]): [string, DeviceState] =>
        v === st ? [name, v] : [k, v],
      );
      bus.#byName.clear();
      for (const [k, v] of entries) bus.#byName.set(k, v);
    };
  }
}
