//! C header: include/linux/platform_device.h
//! C source: drivers/base/platform.c (platform_match, platform_device_register)
//! Rust: rust/kernel/platform.rs (platform::Device<Ctx>, platform::Driver)

import {
  type BoundCallback,
  Device,
  Devres,
  IrqDomain,
  type IrqHandler,
  type IrqLine,
  type IrqSpec,
  Machine,
  type MemResource,
  type MmioBackend,
  MmioRegion,
  RegisterFile,
} from "@devref/device-core";
import {
  addState,
  type BusHooks,
  boundState,
  checkFirmwareNode,
  checkRelease,
  type DeviceState,
  deleteTree,
  deviceStateOf,
  machineFor,
  makeBoundCallback,
  requestIrqOf,
  DeviceState as State,
  unmapRegion,
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
import {
  checkArray,
  checkInstance,
  checkInteger,
  checkObject,
  checkString,
  DevrefError,
  defineStatic,
  describeValue,
} from "@devref/raw-device";
import { adoptRef, liveObject } from "@devref/raw-device/unsafe";
import { type BusOptions, BusType, type MatchResult } from "./bus.js";
import { checkDriverSpec, checkTable, Driver, type DriverRegistration } from "./driver.js";

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

/** A DT `iommus` entry as given in a spec: which IOMMU translates, with its IDs. */
export interface IommuRefSpec {
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
  /**
   * Interrupts (DT `interrupts`): lines of interrupt domains created on the machine. They
   * come before those of {@link irqs}.
   */
  readonly interrupts?: readonly IrqSpec[];
  /**
   * A shorthand for edge-triggered lines of the machine's default `"irq"` domain (created
   * on first use with 1024 lines), as board code with plain IRQ numbers gives them.
   */
  readonly irqs?: readonly number[];
  /** DT `iommus` references, for the IOMMU layer. */
  readonly iommus?: readonly IommuRefSpec[];
  /** Restricts matching to the driver of this name from the start. */
  readonly driverOverride?: string;
  /** Runs once, after the bus's own release, when the last reference goes. */
  readonly release?: () => void;
}

const NONE: readonly never[] = Object.freeze([]);

/** The name and size of the domain behind the `irqs` shorthand. */
export const DEFAULT_IRQ_DOMAIN = "irq";
const DEFAULT_IRQ_LINES = 1024;

/** @internal The platform device object. */
export class PlatformDeviceState extends State {
  readonly baseName: string;
  /** A bit per resource currently mapped (request_mem_region). */
  requested = 0;

  constructor(
    name: string,
    spec: PlatformDeviceSpec,
    hooks: BusHooks,
    parent: DeviceState | null,
    fwnode: import("@devref/device-core").FirmwareNode,
  ) {
    super(
      { name, parent, bus: hooks, fwnode, release: spec.release ?? noRelease },
      PlatformDevice,
      hooks.machine,
    );
    this.baseName = spec.name;
    this.driverOverride = spec.driverOverride ?? null;
  }
}

/** The bus's part of a device release when the creator gave none (shared: it costs nothing per device). */
function noRelease(): void {}

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
    return liveObject<PlatformDeviceState>(this).fwnode.compatible;
  }

  /** The number of MMIO resources. */
  get resourceCount(): number {
    return liveObject<PlatformDeviceState>(this).fwnode.mem.length;
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
    const st = liveObject<PlatformDeviceState>(this);
    checkInteger("resource", "index", index, 0, 31);
    const r = st.fwnode.mem[index];
    if (r === undefined) {
      throw new DevrefError("ENXIO", `device '${st.name}' has no memory resource ${String(index)}`);
    }
    return { name: r.name, start: r.start, size: r.size };
  }

  /**
   * The interrupt at `index` (platform_get_irq): its domain, line and trigger.
   *
   * **Errors:** `ENXIO` if there is none.
   */
  irq(index: number): IrqSpec {
    const st = liveObject<PlatformDeviceState>(this);
    checkInteger("irq", "index", index, 0, 0x7fff_ffff);
    const irq = st.fwnode.interrupts[index];
    if (irq === undefined) {
      throw new DevrefError("ENXIO", `device '${st.name}' has no IRQ ${String(index)}`);
    }
    return irq;
  }

  /** The DT `iommus` references. */
  get iommus(): readonly import("@devref/device-core").IommuRef[] {
    return liveObject<PlatformDeviceState>(this).fwnode.iommus;
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
    // SAFETY: boundState returns the object behind this handle, a platform device's.
    const st = boundState(this, "devm_platform_ioremap_resource") as PlatformDeviceState;
    checkInteger("ioremapResource", "index", index, 0, 0x7fff_ffff);
    checkObject("ioremapResource", "options", options);
    if (options.owner !== undefined) checkString("ioremapResource", "options.owner", options.owner);
    const r = st.fwnode.mem[index];
    if (r === undefined) {
      throw new DevrefError(
        "ENXIO",
        `device '${st.name}' has no memory resource ${String(index)} (it has ${st.fwnode.mem.length})`,
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
   * Requests interrupt `index` for the current binding (devm_request_irq); see
   * `Device.requestIrq`. The handler gets a Bound borrow of the platform device.
   */
  override requestIrq(
    this: PlatformDevice<Bound>,
    index: number,
    handler: IrqHandler<PlatformDevice<Bound>>,
    name?: string,
  ): Devres<IrqLine> {
    // SAFETY: the domain calls the handler with a borrow of this device's own handle class.
    return requestIrqOf(this, index, handler as IrqHandler<Device<Bound>>, name);
  }

  /** A function tied to the current binding; see `Device.devmCallback`. */
  override devmCallback<A extends unknown[], R>(
    this: PlatformDevice<Bound>,
    fn: <S>(dev: Borrowed<PlatformDevice<Bound>, S>, ...args: A) => R,
    label = "callback",
  ): BoundCallback<A, R> {
    return makeBoundCallback<PlatformDevice<Bound>, A, R>(this, fn, label);
  }
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
    const where = "definePlatformDriver";
    checkDriverSpec(where, spec);
    const of = checkTable(where, "spec.ofMatchTable", spec.ofMatchTable, (e, at) => {
      checkString(where, `${at}.compatible`, e.compatible, true);
    });
    const ids = checkTable(where, "spec.idTable", spec.idTable, (e, at) => {
      checkString(where, `${at}.name`, e.name, true);
    });
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
    this.ofMatchTable = [...of];
    this.idTable = [...ids];
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
 * const bus = new PlatformBus();
 * const uart = bus.register({ name: "uart", id: 0, compatible: ["acme,uart"], mem: [{ start: 0x1000, size: 0x100 }] });
 * // … later, surprise removal:
 * bus.unplug(uart);
 * uart.put();
 * ```
 */
export class PlatformBus extends BusType<PlatformDevice> {
  /**
   * Creates a platform bus on `options.machine` (the default machine), named `platform`
   * unless `options.name` says otherwise.
   *
   * **Errors:** `EEXIST` if the machine has a bus of that name.
   */
  constructor(options: BusOptions = {}) {
    super(options, "platform", undefined, PlatformDevice);
  }

  protected override acceptsDriver(drv: Driver<unknown>): boolean {
    return drv instanceof PlatformDriver;
  }

  protected override matchDriver(st: DeviceState, drv: Driver<unknown>): MatchResult {
    if (!(st instanceof PlatformDeviceState) || !(drv instanceof PlatformDriver)) return null;
    for (const c of st.fwnode.compatible) {
      const hit = drv.ofMatchTable.find((e) => e.compatible === c);
      if (hit !== undefined) return { info: hit.data };
    }
    const id = drv.idTable.find((e) => e.name === st.baseName);
    if (id !== undefined) return { info: id.data };
    return drv.name === st.baseName ? { info: undefined } : null;
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
    checkString("PlatformBus.register", "label", label);
    const { name, parent, fwnode } = this.#describe(spec);
    const st = new PlatformDeviceState(name, spec, this.hooks, parent, fwnode);
    const ref = adoptRef<PlatformDevice>(st, label);
    try {
      addState(st);
    } catch (e) {
      ref.put();
      throw e;
    }
    return ref;
  }

  /** Checks a whole spec before anything is created, and builds the firmware node. */
  #describe(spec: PlatformDeviceSpec): {
    name: string;
    parent: DeviceState | null;
    fwnode: import("@devref/device-core").FirmwareNode;
  } {
    const where = "PlatformBus.register";
    checkObject(where, "spec", spec);
    if (
      typeof spec.name !== "string" ||
      !/^[A-Za-z0-9_@,+:-][A-Za-z0-9_@,.+:-]*$/.test(spec.name)
    ) {
      throw new DevrefError(
        "EINVAL",
        `a platform device name is made of letters, digits and _ @ , . + : -, not ${describeValue(spec.name)}`,
      );
    }
    if (spec.id !== undefined) checkInteger(where, "spec.id", spec.id, 0, 0x7fff_ffff);
    const name = spec.id === undefined ? spec.name : `${spec.name}.${spec.id}`;
    if (spec.driverOverride !== undefined)
      checkString(where, "spec.driverOverride", spec.driverOverride);
    if (spec.release !== undefined) checkRelease(name, spec.release);
    const parent =
      spec.parent === undefined || spec.parent === null
        ? null
        : deviceStateOf(checkInstance(where, "spec.parent", spec.parent, Device));
    machineFor(where, this.machine, parent);
    const memSpecs = spec.mem === undefined ? [] : spec.mem;
    checkArray(where, "spec.mem", memSpecs);
    if (memSpecs.length > 32) {
      throw new DevrefError("EINVAL", `platform device '${name}': at most 32 memory resources`);
    }
    const irqs = spec.irqs === undefined ? [] : spec.irqs;
    checkArray(where, "spec.irqs", irqs);
    irqs.forEach((n, i) => {
      checkInteger(where, `spec.irqs[${i}]`, n, 0, DEFAULT_IRQ_LINES - 1);
    });
    const interrupts = spec.interrupts === undefined ? [] : spec.interrupts;
    checkArray(where, "spec.interrupts", interrupts);
    const iommus = spec.iommus === undefined ? [] : spec.iommus;
    checkArray(where, "spec.iommus", iommus);
    // Lists are built only when there is something in them (most devices have few fields).
    const fwnode = checkFirmwareNode(`platform device '${name}'`, {
      compatible: spec.compatible === undefined ? NONE : spec.compatible,
      mem:
        memSpecs.length === 0
          ? NONE
          : memSpecs.map((r, i): MemResource => {
              checkObject(where, `spec.mem[${i}]`, r);
              if (r.name !== undefined) checkString(where, `spec.mem[${i}].name`, r.name);
              return {
                name: r.name ?? `mem${i}`,
                start: r.start,
                size: r.size,
                backend: r.backend ?? lazyRegisterFile(r.size),
              };
            }),
      interrupts:
        irqs.length === 0
          ? interrupts
          : [
              ...interrupts,
              ...irqs.map(
                (hwirq): IrqSpec => ({ domain: DEFAULT_IRQ_DOMAIN, hwirq, trigger: "edge" }),
              ),
            ],
      iommus:
        iommus.length === 0
          ? NONE
          : iommus.map((r, i) => {
              checkObject(where, `spec.iommus[${i}]`, r);
              return { iommu: r.iommu, ids: r.ids ?? [] };
            }),
    });
    // The shorthand's domain exists once a device names it.
    if (irqs.length > 0 && IrqDomain.find(this.machine, DEFAULT_IRQ_DOMAIN) === undefined) {
      new IrqDomain({ machine: this.machine, name: DEFAULT_IRQ_DOMAIN, size: DEFAULT_IRQ_LINES });
    }
    return { name, parent, fwnode };
  }

  /**
   * Orderly removal (platform_device_unregister): deletes the device and its descendants,
   * children first, while the hardware still answers, then puts `dev`.
   *
   * **Errors:** `ENODEV` if the device is already gone.
   */
  unregister(dev: ARef<PlatformDevice>): void {
    const st = deviceStateOf(checkInstance("PlatformBus.unregister", "dev", dev, PlatformDevice));
    if (st.registered && !st.dead) deleteTree(st, false);
    dev.put();
  }
}

/** A register file for a resource with no backend; checked sizes only reach it. */
function lazyRegisterFile(size: number): MmioBackend {
  return typeof size === "number" && Number.isSafeInteger(size) && size >= 4
    ? new RegisterFile(size)
    : new RegisterFile(4);
}

/** The default interrupt domain of `machine`, for the `irqs` shorthand (created on first use). */
export function defaultIrqDomain(machine: import("@devref/device-core").Machine): IrqDomain {
  checkInstance("defaultIrqDomain", "machine", machine, Machine);
  return (
    IrqDomain.find(machine, DEFAULT_IRQ_DOMAIN) ??
    new IrqDomain({ machine, name: DEFAULT_IRQ_DOMAIN, size: DEFAULT_IRQ_LINES })
  );
}
