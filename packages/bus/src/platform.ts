//! C header: include/linux/platform_device.h
//! C source: drivers/base/platform.c (platform_match, platform_device_register)
//! Rust: rust/kernel/platform.rs (platform::Device<Ctx>, platform::Driver)

import { Device, Devres } from "@devref/device-core";
import {
  addState,
  type BusHooks,
  DeviceScope,
  type DeviceState,
  deleteTree,
  deviceStateOf,
  emit,
  DeviceState as State,
} from "@devref/device-core/unsafe";
import type {
  ARef,
  Borrowed,
  Bound,
  Core,
  DeviceContext,
  Normal,
  Static,
} from "@devref/raw-device";
import { DevrefError, defineStatic } from "@devref/raw-device";
import { adoptRef, CONTEXT_BOUND, liveObject } from "@devref/raw-device/unsafe";
import { BusType, type MatchResult } from "./bus.js";
import { Driver, type DriverRegistration } from "./driver.js";
import {
  checkMemResource,
  type MemResource,
  type MmioBackend,
  MmioRegion,
  noRelease,
  RegisterFile,
  unmapRegion,
} from "./mmio.js";

/** One memory resource of a platform device, as given when the device is created. */
export interface MemResourceSpec {
  /** Shown in messages; defaults to `mem<index>`. */
  readonly name?: string;
  /** Physical start address. */
  readonly start: number;
  /** Size in bytes, a multiple of 4. */
  readonly size: number;
  /** The hardware behind it; a plain {@link RegisterFile} by default. */
  readonly backend?: MmioBackend;
}

/** A DT `iommus` entry: which IOMMU translates for the device, with its stream IDs. */
export interface IommuRef {
  /** The IOMMU device's name (the phandle target). */
  readonly iommu: string;
  /** The specifier cells, e.g. the DART stream ID. */
  readonly ids?: readonly number[];
}

/** What a platform device is created from (a DT node or board code). */
export interface PlatformDeviceSpec {
  /** The device's base name; with `id`, the device is named `<name>.<id>`. */
  readonly name: string;
  readonly id?: number;
  /** The parent device (any live handle): the child holds its own reference while registered. */
  readonly parent?: Device | null;
  /** DT `compatible` strings, most specific first. */
  readonly compatible?: readonly string[];
  /** MMIO resources (DT `reg`). */
  readonly mem?: readonly MemResourceSpec[];
  /** Interrupt numbers (DT `interrupts`). */
  readonly irqs?: readonly number[];
  /** DT `iommus` references, for the IOMMU layer. */
  readonly iommus?: readonly IommuRef[];
  /** Restricts matching to the driver of this name from the start. */
  readonly driverOverride?: string;
  /** Runs once, after the bus's own release, when the last reference goes. */
  readonly release?: () => void;
}

const NONE: readonly never[] = Object.freeze([]);

/** @internal The platform device object. */
export class PlatformDeviceState extends State {
  readonly baseName: string;
  readonly compatible: readonly string[];
  readonly resources: readonly MemResource[];
  readonly irqs: readonly number[];
  readonly iommus: readonly IommuRef[];
  /** A bit per resource currently mapped (request_mem_region). */
  requested = 0;

  constructor(spec: PlatformDeviceSpec, hooks: BusHooks, parent: DeviceState | null) {
    const name = spec.id === undefined ? spec.name : `${spec.name}.${spec.id}`;
    super({ name, parent, bus: hooks, release: spec.release ?? noRelease }, PlatformDevice);
    this.baseName = spec.name;
    // Copies, so later changes to the caller's arrays do not reach the device; absent
    // lists share one empty array (most devices have no IRQs or IOMMUs).
    this.compatible = spec.compatible === undefined ? NONE : [...spec.compatible];
    this.resources =
      spec.mem === undefined
        ? NONE
        : spec.mem.map((r, i) => ({
            name: r.name ?? `mem${i}`,
            start: r.start,
            size: r.size,
            backend: r.backend ?? new RegisterFile(r.size),
          }));
    this.irqs = spec.irqs === undefined ? NONE : [...spec.irqs];
    this.iommus =
      spec.iommus === undefined
        ? NONE
        : spec.iommus.map((r) => ({ iommu: r.iommu, ids: [...(r.ids ?? [])] }));
    this.driverOverride = spec.driverOverride ?? null;
  }
}

/**
 * A platform device handle (Rust `platform::Device<Ctx>`): a device plus its firmware
 * description (compatible strings, MMIO resources, IRQs, `iommus`).
 *
 * **Invariants:** as {@link Device}; MMIO is mapped only through a Bound borrow and
 * comes back as a `Devres`, unmapped when the binding ends.
 *
 * @example
 * ```ts
 * const drv = definePlatformDriver({
 *   name: "uart",
 *   ofMatchTable: [{ compatible: "acme,uart" }],
 *   probe: (dev) => ({ regs: dev.ioremapResource(0) }),
 * });
 * ```
 */
export class PlatformDevice<Ctx extends DeviceContext = Normal> extends Device<Ctx> {
  /** Takes an owned reference (get_device). */
  override get(label?: string): ARef<PlatformDevice> {
    // SAFETY: RawDevice.get makes a handle of this handle's own class.
    return super.get(label) as unknown as ARef<PlatformDevice>;
  }

  /** The compatible strings, most specific first. */
  get compatible(): readonly string[] {
    return liveObject<PlatformDeviceState>(this).compatible;
  }

  /** The number of MMIO resources. */
  get resourceCount(): number {
    return liveObject<PlatformDeviceState>(this).resources.length;
  }

  /**
   * The MMIO resource at `index` (platform_get_resource), without mapping it.
   *
   * **Errors:** `ENXIO` if there is none.
   */
  resource(index: number): {
    readonly name: string;
    readonly start: number;
    readonly size: number;
  } {
    const r = liveObject<PlatformDeviceState>(this).resources[index];
    if (r === undefined) {
      throw new DevrefError(
        "ENXIO",
        `device '${this.name}' has no memory resource ${String(index)}`,
      );
    }
    return { name: r.name, start: r.start, size: r.size };
  }

  /**
   * The interrupt number at `index` (platform_get_irq).
   *
   * **Errors:** `ENXIO` if there is none.
   */
  irq(index: number): number {
    const irq = liveObject<PlatformDeviceState>(this).irqs[index];
    if (irq === undefined) {
      throw new DevrefError("ENXIO", `device '${this.name}' has no IRQ ${String(index)}`);
    }
    return irq;
  }

  /** The DT `iommus` references. */
  get iommus(): readonly IommuRef[] {
    return liveObject<PlatformDeviceState>(this).iommus;
  }

  /**
   * Maps the MMIO resource at `index` for the current binding
   * (devm_platform_ioremap_resource): the region is unmapped when the driver unbinds.
   *
   * **Errors:** `ENXIO` if there is no such resource; `EBUSY` if it is already mapped by
   * this binding; `ENODEV` on a revoked borrow.
   */
  ioremapResource(
    this: PlatformDevice<Bound>,
    index: number,
    options: { readonly owner?: string } = {},
  ): Devres<MmioRegion> {
    const st = liveObject<PlatformDeviceState>(this);
    const r = st.resources[index];
    if (r === undefined) {
      throw new DevrefError(
        "ENXIO",
        `device '${st.name}' has no memory resource ${String(index)} (it has ${st.resources.length})`,
      );
    }
    if ((st.requested & (1 << index)) !== 0) {
      throw new DevrefError(
        "EBUSY",
        `device '${st.name}': memory resource '${r.name}' is already mapped; map it once per binding`,
      );
    }
    const region = new MmioRegion(st, {
      resource: r,
      driver: st.binding?.driver ?? null,
      owner: options.owner,
    });
    const res = new Devres(this, region, {
      label: `mmio ${r.name}`,
      release: (m) => {
        unmapRegion(m);
        st.requested &= ~(1 << index);
      },
      ...(options.owner === undefined ? {} : { owner: options.owner }),
    });
    st.requested |= 1 << index;
    return res;
  }

  /**
   * Requests interrupt `index` of this device for the current binding (devm_request_irq):
   * the handler is called on every {@link PlatformBus.raiseIrq} of the line (shared lines
   * call every handler in request order) and never after the binding ends.
   *
   * **Errors:** `ENXIO` if the device has no such IRQ; `ENODEV` on a revoked borrow.
   */
  requestIrq(
    this: PlatformDevice<Bound>,
    index: number,
    handler: IrqHandler,
    name?: string,
  ): Devres<IrqLine> {
    const st = liveObject<PlatformDeviceState>(this);
    const irq = st.irqs[index];
    if (irq === undefined) {
      throw new DevrefError(
        "ENXIO",
        `device '${st.name}' has no IRQ ${String(index)} (it has ${st.irqs.length})`,
      );
    }
    const bus = platformBusOf(st);
    const action: IrqAction = { st, handler, line: { irq, name: name ?? st.name } };
    const res = new Devres<IrqLine>(this, action.line, {
      label: `irq ${irq}`,
      release: () => freeIrq(bus, action),
    });
    addIrq(bus, action);
    return res;
  }
}

/** @internal One requested handler. */
interface IrqAction {
  readonly st: PlatformDeviceState;
  readonly handler: IrqHandler;
  readonly line: IrqLine;
}

function platformBusOf(st: DeviceState): PlatformBus {
  const bus = busOfHooks.get(st.bus as object);
  if (bus === undefined) {
    throw new DevrefError("EINVAL", `device '${st.name}' is not on a platform bus`);
  }
  return bus;
}

const busOfHooks: WeakMap<object, PlatformBus> = new WeakMap();
let addIrq: (bus: PlatformBus, action: IrqAction) => void;
let freeIrq: (bus: PlatformBus, action: IrqAction) => void;

/** What an interrupt handler returns (irqreturn_t). */
export type IrqReturn = "handled" | "none";

/**
 * An interrupt handler: runs with a Bound borrow of its device, valid during the call. It
 * may run until the binding's devres is released, which includes during `remove()`, as
 * in the kernel: quiesce the device (or release the line) first in remove.
 */
export type IrqHandler = <S>(dev: Borrowed<PlatformDevice<Bound>, S>) => IrqReturn;

/** A requested interrupt line (what a `Devres` from `requestIrq` holds). */
export interface IrqLine {
  readonly irq: number;
  /** The name given at request, as /proc/interrupts shows it. */
  readonly name: string;
}

/** An OF (device tree) match entry. */
export interface OfDeviceId<I> {
  readonly compatible: string;
  readonly data?: I;
}

/** A platform id-table entry, matched against the device's base name. */
export interface PlatformDeviceId<I> {
  readonly name: string;
  readonly data?: I;
}

/** What a platform driver is defined from (Rust `platform::Driver`). */
export interface PlatformDriverSpec<D, I = undefined> {
  readonly name: string;
  readonly ofMatchTable?: readonly OfDeviceId<I>[];
  readonly idTable?: readonly PlatformDeviceId<I>[];
  /**
   * Binds the device: gets a Core borrow (valid until probe returns or its promise
   * settles) and the matched entry's data; returns the driver data, owned by the
   * binding. Throw (or reject with) a `DevrefError` to fail; `EPROBE_DEFER` retries later.
   */
  readonly probe: <S>(
    dev: Borrowed<PlatformDevice<Core>, S>,
    info: I | undefined,
  ) => D | Promise<D>;
  /** Unbinds: runs once, before the data is disposed and devres released. Must not block. */
  readonly remove?: <S>(dev: Borrowed<PlatformDevice<Core>, S>, data: D) => void;
  /** No bind/unbind on demand. */
  readonly suppressBindAttrs?: boolean;
}

/** A platform driver definition. */
export class PlatformDriver<D = unknown, I = unknown> extends Driver<D> {
  readonly bus: "platform" = "platform";
  readonly ofMatchTable: readonly OfDeviceId<I>[];
  readonly idTable: readonly PlatformDeviceId<I>[];

  /** @internal Use {@link definePlatformDriver}. */
  constructor(spec: PlatformDriverSpec<D, I>) {
    const remove = spec.remove;
    super(
      spec.name,
      spec.suppressBindAttrs ?? false,
      // SAFETY: the bus calls probe with a Core borrow of a platform device it made, and
      // the matched entry's data (an I) or undefined.
      (dev, info) =>
        spec.probe(dev as unknown as Borrowed<PlatformDevice<Core>, never>, info as I | undefined),
      remove === undefined
        ? null
        : // SAFETY: as for probe; data is what this driver's probe returned.
          (dev, data) => remove(dev as unknown as Borrowed<PlatformDevice<Core>, never>, data as D),
    );
    this.ofMatchTable = [...(spec.ofMatchTable ?? [])];
    this.idTable = [...(spec.idTable ?? [])];
  }
}

/**
 * Defines a platform driver, once (a static, like `module_platform_driver`).
 *
 * **Errors:** `EINVAL` for an invalid driver name.
 *
 * @example
 * ```ts
 * const dartDriver = definePlatformDriver<DartData, { pgsize: number }>({
 *   name: "apple-dart",
 *   ofMatchTable: [{ compatible: "apple,t8103-dart", data: { pgsize: 16384 } }],
 *   probe: (dev, info) => new DartData(dev.ioremapResource(0), info?.pgsize ?? 4096),
 *   remove: (dev, data) => data.quiesce(),
 * });
 * platformBus.registerDriver(dartDriver);
 * ```
 */
export function definePlatformDriver<D, I = undefined>(
  spec: PlatformDriverSpec<D, I>,
): Static<PlatformDriver<D, I>> {
  return defineStatic(new PlatformDriver<D, I>(spec));
}

/**
 * The platform bus (drivers/base/platform.c): devices described by firmware or board code,
 * matched by driver_override, then OF compatible (the device's most specific string
 * first), then the id table, then the driver name. Platform devices get 32-bit DMA masks
 * by default.
 *
 * @example
 * ```ts
 * const uart = platformBus.register({ name: "uart", id: 0, compatible: ["acme,uart"], mem: [{ start: 0x1000, size: 0x100 }] });
 * // … later, surprise removal:
 * platformBus.unplug(uart);
 * uart.put();
 * ```
 */
export class PlatformBus extends BusType<PlatformDevice> {
  readonly #irqs: Map<number, IrqAction[]> = new Map();

  constructor(name = "platform") {
    super(name, undefined, PlatformDevice);
    busOfHooks.set(this.hooks, this);
  }

  static {
    addIrq = (bus, action) => {
      const list = bus.#irqs.get(action.line.irq);
      if (list === undefined) bus.#irqs.set(action.line.irq, [action]);
      else list.push(action);
    };
    freeIrq = (bus, action) => {
      const list = bus.#irqs.get(action.line.irq);
      if (list === undefined) return;
      const i = list.indexOf(action);
      if (i >= 0) list.splice(i, 1);
      if (list.length === 0) bus.#irqs.delete(action.line.irq);
    };
  }

  /**
   * Raises interrupt line `irq`, as the interrupt controller (or a simulator) does: calls
   * every handler requested on it, in request order, each with a Bound borrow of its
   * device. Returns whether any handler said `"handled"`; a handler that throws is logged.
   */
  raiseIrq(irq: number): boolean {
    const list = this.#irqs.get(irq);
    if (list === undefined) return false;
    let handled = false;
    for (const action of [...list]) {
      const scope = new DeviceScope(CONTEXT_BOUND);
      try {
        // SAFETY: the action is registered only while its binding holds the devres, so
        // the device is bound (or unbinding) for the whole call; the borrow dies after it.
        const dev = scope.borrow(action.st, PlatformDevice) as unknown as Borrowed<
          PlatformDevice<Bound>,
          never
        >;
        if (action.handler(dev) === "handled") handled = true;
      } catch (e) {
        emit(
          "err",
          action.st.name,
          action.st.driverString(),
          `IRQ ${irq} handler failed: ${String(e)}`,
        );
      } finally {
        scope.close();
      }
    }
    return handled;
  }

  /** The requested lines, as /proc/interrupts lists them: `"<irq>: <name>, <name>"`. */
  interrupts(): string[] {
    return [...this.#irqs.entries()]
      .sort(([a], [b]) => a - b)
      .map(([irq, list]) => `${irq}: ${list.map((a) => a.line.name).join(", ")}`);
  }

  protected override acceptsDriver(drv: Driver<unknown>): boolean {
    return drv instanceof PlatformDriver;
  }

  protected override matchDriver(st: DeviceState, drv: Driver<unknown>): MatchResult {
    if (!(st instanceof PlatformDeviceState) || !(drv instanceof PlatformDriver)) return null;
    for (const c of st.compatible) {
      const hit = drv.ofMatchTable.find((e) => e.compatible === c);
      if (hit !== undefined) return { info: hit.data };
    }
    const id = drv.idTable.find((e) => e.name === st.baseName);
    if (id !== undefined) return { info: id.data };
    return drv.name === st.baseName ? { info: undefined } : null;
  }

  protected override dmaConfigure(st: DeviceState): void {
    // Platform devices start with 32-bit masks (of_dma_configure / setup_pdev_dma_masks).
    if (st.dmaMaskBits === null) st.dmaMaskBits = 32;
    if (st.coherentDmaMaskBits === null) st.coherentDmaMaskBits = 32;
  }

  /** Registers a platform driver; see {@link BusType.registerDriver}. */
  override registerDriver<D, I>(drv: PlatformDriver<D, I>): DriverRegistration {
    return super.registerDriver(drv);
  }

  /**
   * Creates and registers a platform device (platform_device_register_full), returning the
   * creator's owned reference, labelled `label`. A matching driver may bind at once.
   *
   * **Errors:** `EINVAL` for a bad description (nothing is created); `EEXIST` for a name
   * already on the bus; `ENODEV` if the parent is not registered.
   */
  register(spec: PlatformDeviceSpec, label = "creator"): ARef<PlatformDevice> {
    checkPlatformSpec(spec);
    const parent =
      spec.parent === undefined || spec.parent === null ? null : deviceStateOf(spec.parent);
    const st = new PlatformDeviceState(spec, this.hooks, parent);
    const ref = adoptRef<PlatformDevice>(st, label);
    try {
      addState(st);
    } catch (e) {
      ref.put();
      throw e;
    }
    return ref;
  }

  /**
   * Orderly removal (platform_device_unregister): deletes the device and its descendants,
   * children first, while the hardware still answers, then puts `dev`.
   *
   * **Errors:** `ENODEV` if the device is already gone.
   */
  unregister(dev: ARef<PlatformDevice>): void {
    const st = deviceStateOf(dev);
    if (st.registered && !st.dead) deleteTree(st, false);
    dev.put();
  }
}

function checkPlatformSpec(spec: PlatformDeviceSpec): void {
  if (typeof spec.name !== "string" || !/^[A-Za-z0-9_@,+:-][A-Za-z0-9_@,.+:-]*$/.test(spec.name)) {
    throw new DevrefError(
      "EINVAL",
      `platform device name '${String(spec.name)}' is not valid; use letters, digits and _ @ , . + : -`,
    );
  }
  if (spec.id !== undefined && (!Number.isInteger(spec.id) || spec.id < 0)) {
    throw new DevrefError(
      "EINVAL",
      `platform device '${spec.name}': id ${String(spec.id)} must be a whole number ≥ 0`,
    );
  }
  if ((spec.mem ?? []).length > 32) {
    throw new DevrefError("EINVAL", `platform device '${spec.name}': at most 32 memory resources`);
  }
  (spec.mem ?? []).forEach((r, i) => {
    checkMemResource(`platform device '${spec.name}'`, r, `memory resource ${i}`);
  });
  for (const irq of spec.irqs ?? []) {
    if (!Number.isInteger(irq) || irq < 0) {
      throw new DevrefError(
        "EINVAL",
        `platform device '${spec.name}': IRQ ${String(irq)} must be a whole number ≥ 0`,
      );
    }
  }
}

/** The platform bus, defined once. */
export const platformBus: Static<PlatformBus> = defineStatic(new PlatformBus());
