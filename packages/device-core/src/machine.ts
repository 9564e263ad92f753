//! C source: drivers/base/core.c (the device list), drivers/base/dd.c (deferred probe,
//! wait_for_device_probe), kernel/printk (the console), lib/debugobjects-like settings
//!
//! Everything that belongs to one running system: the devices, the driver core's work
//! queue and deferred-probe lists, the log sink, the debug settings, the buses and
//! interrupt domains created on it, and the slot its DMA layer fills. Two machines in one
//! process never see each other.

import {
  checkCallback,
  checkInstance,
  checkObject,
  checkOneOf,
  checkString,
  DevrefError,
  defaultOwnershipSettings,
  OwnershipSettings,
} from "@devref/raw-device";
import type { DevresDebugOptions, DevresMisuse } from "./debug.js";
import type { DeviceState } from "./state.js";
import { sendUevent, type UeventAction, UeventHub, type UeventListener } from "./uevent.js";

/**
 * Where the driver core queues its work (the kernel's workqueues): microtasks by default,
 * a simulator's event queue when simulated.
 *
 * **Invariants:** jobs run one at a time, in the order queued, never inside `queue()`.
 */
export interface Scheduler {
  /** Runs `job` later, after the current job, in queue order. */
  queue(job: () => void): void;
}

/** The default scheduler: each job is a microtask. */
export const microtaskScheduler: Scheduler = {
  queue(job: () => void): void {
    queueMicrotask(job);
  },
};

/** Message levels, as the kernel's `KERN_*` levels. */
export type LogLevel = "err" | "warn" | "notice" | "info" | "dbg";

/** One log message. */
export interface LogRecord {
  readonly level: LogLevel;
  /** The device name. */
  readonly device: string;
  /** What the kernel prints before the device name: the bound driver, else the bus, else null. */
  readonly prefix: string | null;
  /** The message without prefix. */
  readonly message: string;
  /** The full line, `"<driver> <devname>: message"` or `"<devname>: message"`. */
  readonly text: string;
}

/** Where log records go. */
export type LogSink = (record: LogRecord) => void;

/**
 * The default sink: errors and warnings to `console.error`, `notice` and `info` to
 * `console.log`; debug messages are dropped, as without `dyndbg`.
 */
export const consoleSink: LogSink = (record) => {
  if (record.level === "dbg") return;
  if (record.level === "err" || record.level === "warn") console.error(record.text);
  else console.log(record.text);
};

/** The default reporter of devres misuse: one warning through the machine's log. */
function logMisuse(machine: Machine, m: DevresMisuse): void {
  machine.log(
    "warn",
    m.device,
    m.driver,
    `devres misuse (${m.kind}): ${m.message}` +
      (m.storedBy === undefined ? "" : ` [stored by ${m.storedBy}]`),
  );
}

/**
 * What the DMA layer plugs into a machine (the kernel's `bus->dma_configure` at probe and
 * the DMA teardown at unbind). `@devref/dma-iommu`'s `DmaSystem` fills it.
 */
export interface DmaLayer {
  /** Sets up DMA for a device whose probe is starting; throwing fails (or defers) the probe. */
  configure(st: DeviceState): void;
  /**
   * The binding is ending (after remove, or a failed or aborted probe), before its devres
   * is released: DMA the driver left running must stop now, before the buffers it targets
   * are freed by the driver's own devres actions. Must not throw.
   */
  quiesce(st: DeviceState): void;
  /** Tears DMA down after the driver's devres was released; must not throw. */
  deconfigure(st: DeviceState): void;
}

/** What a bus or an interrupt domain registers on its machine under a name. */
export interface NamedOnMachine {
  readonly name: string;
}

/** One device waiting on the deferred-probe list, with the reason its probe gave. */
export interface DeferredDevice {
  readonly name: string;
  readonly reason: string | null;
}

/** What {@link Machine} is created from. Every field has a default. */
export interface MachineOptions {
  /** Shown in messages; default `"machine"`. */
  readonly name?: string;
  /** The driver core's work queue; default {@link microtaskScheduler}. */
  readonly scheduler?: Scheduler;
  /** Where log records go; default {@link consoleSink}. */
  readonly logSink?: LogSink;
  /** Ownership debug settings for the machine's devices; default a fresh set. */
  readonly ownership?: OwnershipSettings;
}

/** Intrusive list heads for the device registry (no per-device allocation, order kept). */
export interface DeviceList {
  head: DeviceState | null;
  tail: DeviceState | null;
}

/** A uevent listener's registration; unregister (or dispose) to stop it. */
export interface UeventRegistration extends Disposable {
  unregister(): void;
}

/**
 * The parts of a machine only device packages reach (through `@devref/device-core/unsafe`,
 * {@link coreOf}): the device registry, the names of buses and interrupt domains, the
 * driver core's deferred-probe lists and work in flight, the release-callback stack.
 *
 * **Invariants:** a device is on `live` from creation to release, and on `roots` (or its
 * parent's child list) while registered.
 */
export class MachineCore {
  readonly machine: Machine;
  /** Every initialized, unreleased device. */
  readonly live: DeviceList = { head: null, tail: null };
  /** Registered devices without a parent. */
  readonly roots: DeviceList = { head: null, tail: null };
  private readonly named: Map<string, NamedOnMachine> = new Map();
  /** Which devices are running their release callback (a release may put a parent). */
  private readonly releasing: string[] = [];
  // Deferred probe (drivers/base/dd.c): pending waits for a trigger, active is being retried.
  private readonly pending: Set<DeviceState> = new Set();
  private readonly active: DeviceState[] = [];
  private triggers = 0;
  private workQueued = false;
  /** @internal */
  readonly inflight: Set<Promise<unknown>> = new Set();
  /** uevent listeners and the sequence number. */
  readonly uevents: UeventHub = new UeventHub();

  constructor(machine: Machine) {
    this.machine = machine;
  }

  /** kobject_uevent for `st` (see {@link Machine.onUevent}). */
  uevent(
    st: DeviceState,
    action: UeventAction,
    driver: string | null,
    devpathOld: string | null = null,
  ): void {
    sendUevent(this.machine, this.uevents, st, action, driver, devpathOld);
  }

  /**
   * Registers a bus or an interrupt domain under its kind and name.
   *
   * **Errors:** `EEXIST` if the name is taken on this machine.
   */
  claimName(kind: string, item: NamedOnMachine): void {
    const key = `${kind}:${item.name}`;
    if (this.named.has(key)) {
      throw new DevrefError(
        "EEXIST",
        `machine '${this.machine.name}' already has a ${kind} named '${item.name}'; pick another name`,
      );
    }
    this.named.set(key, item);
  }

  /** The bus or interrupt domain of `kind` named `name`, if any. */
  lookup(kind: string, name: string): NamedOnMachine | undefined {
    return this.named.get(`${kind}:${name}`);
  }

  /** The names of everything of `kind` registered on the machine, in order. */
  names(kind: string): string[] {
    const prefix = `${kind}:`;
    return [...this.named.keys()]
      .filter((k) => k.startsWith(prefix))
      .map((k) => k.slice(prefix.length));
  }

  enterRelease(name: string): void {
    this.releasing.push(name);
  }
  exitRelease(): void {
    this.releasing.pop();
  }
  /** The device whose release callback is running, if any. */
  get releaseRunning(): string | undefined {
    return this.releasing[this.releasing.length - 1];
  }

  /** Tracks an asynchronous probe or attach so `waitForDeviceProbe` waits for it. */
  track(p: Promise<unknown>): void {
    const inflight = this.inflight;
    inflight.add(p);
    const done = (): void => {
      inflight.delete(p);
    };
    p.then(done, done);
  }

  /** driver_deferred_probe_add. */
  deferredAdd(st: DeviceState): void {
    this.pending.add(st);
  }

  /** driver_deferred_probe_del. */
  deferredDel(st: DeviceState): void {
    if (this.pending.size === 0 && this.active.length === 0) return;
    this.pending.delete(st);
    const i = this.active.indexOf(st);
    if (i >= 0) this.active.splice(i, 1);
  }

  /** The trigger count: a probe that defers compares it with its start value. */
  get triggerCount(): number {
    return this.triggers;
  }

  /**
   * driver_deferred_probe_trigger: moves every pending device to the active list and
   * queues the work that retries them. Runs after any successful bind.
   */
  triggerDeferred(): void {
    if (this.pending.size > 0) {
      for (const st of this.pending) this.active.push(st);
      this.pending.clear();
    }
    this.triggers++;
    if (this.workQueued) return;
    this.workQueued = true;
    this.track(
      new Promise<void>((resolve) => {
        this.machine.scheduler.queue(() => {
          try {
            this.runDeferredWork();
          } finally {
            resolve();
          }
        });
      }),
    );
  }

  private runDeferredWork(): void {
    this.workQueued = false;
    const active = this.active;
    while (active.length > 0) {
      const st = active.shift()!;
      if (st.registered && !st.dead && st.binding === null) st.bus?.probeDevice(st);
    }
  }

  /** Whether `st` is on a deferred list. */
  isDeferred(st: DeviceState): boolean {
    return this.pending.has(st) || this.active.includes(st);
  }

  /** The deferred devices, pending first, in order. */
  deferred(): DeferredDevice[] {
    return [...this.pending, ...this.active].map((st) => ({
      name: st.name,
      reason: st.deferredReason,
    }));
  }
}

// module-state: a privileged-access slot, assigned once by Machine's static block.
let coreOfMachine: (machine: Machine) => MachineCore;

/**
 * One running system (a board, a simulated SoC, a test): its devices, driver-core work,
 * log, debug settings, buses, interrupt domains and DMA layer.
 *
 * **Invariants:** a device belongs to exactly one machine, and so do its parent, its bus
 * and the drivers bound to it; nothing of one machine is reachable from another.
 *
 * **Errors:** the constructor throws `EINVAL` for a bad option.
 *
 * @example
 * ```ts
 * const machine = new Machine({ name: "board-a" });
 * const bus = new PlatformBus({ machine });
 * machine.auditDevices(); // [] — nothing of any other machine
 * ```
 */
export class Machine {
  readonly name: string;
  readonly scheduler: Scheduler;
  /** Ownership debug settings of this machine's devices (stacks, leak reports). */
  readonly ownership: OwnershipSettings;
  private readonly core: MachineCore;
  private dmaLayer: DmaLayer | null = null;
  private sink: LogSink;
  private devresDebugOn = false;
  private misuseReporter: ((misuse: DevresMisuse) => void) | null = null;

  constructor(options: MachineOptions = {}) {
    checkObject("new Machine", "options", options);
    this.name = checkString("new Machine", "options.name", options.name ?? "machine", true);
    const scheduler = options.scheduler ?? microtaskScheduler;
    if (
      typeof scheduler !== "object" ||
      scheduler === null ||
      typeof scheduler.queue !== "function"
    ) {
      throw new DevrefError(
        "EINVAL",
        "new Machine: options.scheduler must have a queue(job) method",
      );
    }
    this.scheduler = scheduler;
    this.sink = checkCallback("new Machine", "options.logSink", options.logSink ?? consoleSink);
    const ownership = options.ownership ?? new OwnershipSettings();
    if (!(ownership instanceof OwnershipSettings)) {
      throw new DevrefError(
        "EINVAL",
        "new Machine: options.ownership must be an OwnershipSettings",
      );
    }
    this.ownership = ownership;
    this.core = new MachineCore(this);
  }

  static {
    coreOfMachine = (machine) => machine.core;
  }

  // --- log ---------------------------------------------------------------------------------

  /** Replaces the log sink and returns the previous one. */
  setLogSink(next: LogSink): LogSink {
    checkCallback("Machine.setLogSink", "sink", next);
    const previous = this.sink;
    this.sink = next;
    return previous;
  }

  /** Emits one record (`"<prefix> <device>: message"`). */
  log(level: LogLevel, device: string, prefix: string | null, message: string): void {
    checkOneOf("Machine.log", "level", level, LOG_LEVELS);
    checkString("Machine.log", "device", device);
    if (prefix !== null) checkString("Machine.log", "prefix", prefix);
    checkString("Machine.log", "message", message);
    const text = prefix === null ? `${device}: ${message}` : `${prefix} ${device}: ${message}`;
    this.sink({ level, device, prefix, message, text });
  }

  // --- uevents ------------------------------------------------------------------------------

  /**
   * Listens to the machine's uevents, as udev does: `add` and `remove` for every device,
   * `bind` (with `DRIVER`) and `unbind` for every driver, each right after the matching bus
   * notifier. Listeners run in registration order; one that throws is logged.
   *
   * **Errors:** `EINVAL` if `fn` is not a function.
   */
  onUevent(fn: UeventListener): UeventRegistration {
    checkCallback("Machine.onUevent", "fn", fn);
    const hub = this.core.uevents;
    hub.listeners = [...hub.listeners, fn];
    const registration: UeventRegistration = {
      unregister: () => {
        hub.listeners = hub.listeners.filter((f) => f !== fn);
      },
      [Symbol.dispose]: () => registration.unregister(),
    };
    return registration;
  }

  // --- DMA layer -------------------------------------------------------------------------------

  /** The DMA layer created on this machine, if any (e.g. `@devref/dma-iommu`'s `DmaSystem`). */
  get dma(): DmaLayer | null {
    return this.dmaLayer;
  }

  /**
   * Plugs in the DMA layer (done by the layer itself when created on the machine).
   *
   * **Errors:** `EEXIST` if the machine has one; `EINVAL` if `layer` lacks a method.
   */
  set dma(layer: DmaLayer | null) {
    if (layer === null) {
      this.dmaLayer = null;
      return;
    }
    checkObject("Machine.dma", "layer", layer);
    for (const m of ["configure", "quiesce", "deconfigure"] as const) {
      if (typeof layer[m] !== "function") {
        throw new DevrefError("EINVAL", `Machine.dma: the layer has no ${m}() method`);
      }
    }
    if (this.dmaLayer !== null && this.dmaLayer !== layer) {
      throw new DevrefError(
        "EEXIST",
        `machine '${this.name}' already has a DMA layer; one DMA system per machine`,
      );
    }
    this.dmaLayer = layer;
  }

  // --- debug settings ------------------------------------------------------------------------

  /**
   * Turns the devres misuse checks on or off and sets where reports go; returns the
   * settings in force before, so a test can put them back.
   */
  configureDevresDebug(options: DevresDebugOptions): {
    debug: boolean;
    onMisuse: ((misuse: DevresMisuse) => void) | null;
  } {
    checkObject("configureDevresDebug", "options", options);
    if (options.debug !== undefined && typeof options.debug !== "boolean") {
      throw new DevrefError("EINVAL", "configureDevresDebug: debug must be true or false");
    }
    if (options.onMisuse !== undefined && options.onMisuse !== null) {
      checkCallback("configureDevresDebug", "onMisuse", options.onMisuse);
    }
    const previous = { debug: this.devresDebugOn, onMisuse: this.misuseReporter };
    if (options.debug !== undefined) this.devresDebugOn = options.debug;
    if (options.onMisuse !== undefined) this.misuseReporter = options.onMisuse;
    return previous;
  }

  /** Whether the devres misuse checks are on. */
  get devresDebug(): boolean {
    return this.devresDebugOn;
  }

  /** Sends one devres misuse report to the configured reporter (or the log). */
  reportMisuse(misuse: DevresMisuse): void {
    checkObject("Machine.reportMisuse", "misuse", misuse);
    if (this.misuseReporter === null) logMisuse(this, misuse);
    else this.misuseReporter(misuse);
  }

  // --- introspection and the driver core's work ---------------------------------------------

  /** The names of the buses (`kind` `"bus"`) or interrupt domains (`"irq domain"`) on this machine. */
  names(kind: "bus" | "irq domain"): string[] {
    checkOneOf("Machine.names", "kind", kind, ["bus", "irq domain"]);
    return this.core.names(kind);
  }

  /**
   * The devices waiting to be probed again, in order, with their deferral reasons (the
   * kernel's debugfs `devices_deferred`).
   */
  deferredDevices(): DeferredDevice[] {
    return this.core.deferred();
  }

  /**
   * Re-runs every deferred probe (the late_initcall trigger after built-in drivers are
   * registered). Wait with {@link waitForDeviceProbe}.
   */
  deferredProbeTrigger(): void {
    this.core.triggerDeferred();
  }

  /**
   * Waits until no probe is in flight and no driver-core work is queued
   * (wait_for_device_probe).
   *
   * **Invariants:** it waits only on work the driver core created. With a simulator's
   * scheduler, queued work runs only as the simulator runs: drive it instead of awaiting.
   * An asynchronous probe that never settles makes it wait forever, as in the kernel.
   */
  async waitForDeviceProbe(): Promise<void> {
    const inflight = this.core.inflight;
    while (inflight.size > 0) await Promise.allSettled([...inflight]);
  }

  /** Whether probes or driver-core work are still in flight. */
  get busy(): boolean {
    return this.core.inflight.size > 0;
  }
}

/** The internals of `machine`, for device packages (`@devref/device-core/unsafe`). */
export function coreOf(machine: Machine): MachineCore {
  return coreOfMachine(machine);
}

const LOG_LEVELS: readonly LogLevel[] = ["err", "warn", "notice", "info", "dbg"];

/**
 * The machine of short examples and of devices created without one: made on first use,
 * one per program, like the one system a kernel runs.
 */
// module-state: the default machine itself, the one system of short examples.
let defaultInstance: Machine | undefined;

/** The default machine (created on first use). */
export function defaultMachine(): Machine {
  if (defaultInstance === undefined) {
    // Its devices follow the process-wide ownership settings (`configureOwnership`).
    defaultInstance = new Machine({ name: "default", ownership: defaultOwnershipSettings });
  }
  return defaultInstance;
}

/** The deferred-probe list of `machine` (the default machine when omitted); see {@link Machine.deferredDevices}. */
export function deferredDevices(machine: Machine = defaultMachine()): DeferredDevice[] {
  return checkInstance("deferredDevices", "machine", machine, Machine).deferredDevices();
}

/** Waits for `machine`'s probes and driver-core work; see {@link Machine.waitForDeviceProbe}. */
export function waitForDeviceProbe(machine: Machine = defaultMachine()): Promise<void> {
  return checkInstance("waitForDeviceProbe", "machine", machine, Machine).waitForDeviceProbe();
}

/** Re-runs every deferred probe of `machine`; see {@link Machine.deferredProbeTrigger}. */
export function deferredProbeTrigger(machine: Machine = defaultMachine()): void {
  checkInstance("deferredProbeTrigger", "machine", machine, Machine).deferredProbeTrigger();
}
