//! C header: include/linux/pci.h
//! C source: drivers/pci/pci-driver.c (pci_match_device), drivers/pci/remove.c
//! (pci_stop_and_remove_bus_device), drivers/pci/hotplug/pciehp_pci.c
//! Rust: rust/kernel/pci.rs (pci::Device<Ctx>, pci::Driver)

import {
  type BoundCallback,
  Device,
  Devres,
  type FirmwareNode,
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
  argumentError,
  checkArray,
  checkInstance,
  checkInteger,
  checkObject,
  checkString,
  DevrefError,
  defineStatic,
} from "@devref/raw-device";
import { adoptRef, CONTEXT_CORE, liveObject, requireContext } from "@devref/raw-device/unsafe";
import { type BusOptions, BusType, type MatchResult } from "./bus.js";
import { checkDriverSpec, checkTable, Driver, type DriverRegistration } from "./driver.js";
import type { IommuRefSpec } from "./platform.js";

/** One BAR (base address register) of a PCI function. */
export interface PciBarSpec {
  /** Size in bytes, a multiple of 4. */
  readonly size: number;
  /**
   * Where the CPU reaches the BAR (pci_resource_start: the bus address after the host
   * bridge's window translation); assigned by the bus when omitted.
   */
  readonly start?: number;
  /** The hardware behind it; a plain register file by default. */
  readonly backend?: MmioBackend;
}

/** What a PCI function is created from (its config-space identity and BARs). */
export interface PciDeviceSpec {
  readonly vendor: number;
  readonly device: number;
  readonly subsystemVendor?: number;
  readonly subsystemDevice?: number;
  /** The 24-bit class code (base class, subclass, programming interface). */
  readonly classCode: number;
  /** Up to six BARs, by BAR index; `null` for an index the function does not implement. */
  readonly bars?: readonly (PciBarSpec | null)[];
  /** The function number, 0..7. */
  readonly func?: number;
  /** The parent device (e.g. a host bridge), any live handle. */
  readonly parent?: Device | null;
  /** The INTx line (the interrupt pin routed to an interrupt domain), if any. */
  readonly interrupt?: IrqSpec;
  /** MSI-X vectors the function supports (0: none). */
  readonly msiVectors?: number;
  /**
   * The function's MSI-X table, as the PCI core programs it: told which line of the
   * machine's `"msi"` domain each vector raises (null when the vector is freed). A
   * simulator's function model implements it.
   */
  readonly msiTarget?: MsiTarget;
  /**
   * The function's configuration space, as the host bridge reaches it (ECAM): read by
   * {@link PciDevice.configRead}, and written by the PCI core for the Command register
   * (memory decoding at `enableDevice`, bus mastering at `setMaster` and at unbind). A
   * simulator's host bridge implements it; without one, config accesses fail with `ENXIO`.
   */
  readonly config?: PciConfigSpace;
  /** The IOMMU that translates for the function (the root complex's `iommu-map`). */
  readonly iommus?: readonly IommuRefSpec[];
  readonly driverOverride?: string;
  /** Runs once, after the bus's own release, when the last reference goes. */
  readonly release?: () => void;
}

/** What the PCI core writes into a function's MSI-X table. */
export interface MsiTarget {
  /** Vector `index` now raises line `hwirq` of the machine's `"msi"` domain, or nothing (null). */
  setVector(index: number, hwirq: number | null): void;
}

/**
 * A function's configuration space (4 KiB on PCI Express): naturally aligned accesses of
 * 1, 2 or 4 bytes; values are unsigned and fit the width. A removed function reads
 * all-ones.
 */
export interface PciConfigSpace {
  read(offset: number, width: 1 | 2 | 4): number;
  write(offset: number, width: 1 | 2 | 4, value: number): void;
}

/** The Command register and the bits the PCI core sets in it. */
const PCI_COMMAND = 0x04;
const PCI_COMMAND_MEMORY = 0x2;
const PCI_COMMAND_MASTER = 0x4;
const PCI_CFG_SPACE_EXP_SIZE = 0x1000;

/** The name and size of the machine's MSI domain (created on first use). */
export const MSI_IRQ_DOMAIN = "msi";
const MSI_LINES = 2048;

function noRelease(): void {}

/** @internal The PCI function object. */
export class PciDeviceState extends State {
  readonly vendor: number;
  readonly device: number;
  readonly subsystemVendor: number;
  readonly subsystemDevice: number;
  readonly classCode: number;
  readonly msiVectors: number;
  readonly msiTarget: MsiTarget | null;
  readonly config: PciConfigSpace | null;
  enabled = false;
  busMaster = false;
  requested = 0;
  /** The first MSI line and the count while vectors are allocated. */
  msiFirst = -1;
  msiCount = 0;

  constructor(
    name: string,
    spec: PciDeviceSpec,
    fwnode: FirmwareNode,
    hooks: BusHooks,
    parent: DeviceState | null,
  ) {
    super(
      { name, parent, bus: hooks, fwnode, release: spec.release ?? noRelease },
      PciDevice,
      hooks.machine,
    );
    this.vendor = spec.vendor;
    this.device = spec.device;
    this.subsystemVendor = spec.subsystemVendor ?? 0;
    this.subsystemDevice = spec.subsystemDevice ?? 0;
    this.classCode = spec.classCode;
    this.msiVectors = spec.msiVectors ?? 0;
    this.msiTarget = spec.msiTarget ?? null;
    this.config = spec.config ?? null;
    this.driverOverride = spec.driverOverride ?? null;
  }
}

const hex = (n: number, w: number): string => n.toString(16).padStart(w, "0");

/**
 * A PCI function handle (Rust `pci::Device<Ctx>`).
 *
 * **Invariants:** as {@link Device}; once disconnected (surprise removal) its BARs read
 * all-ones and drop writes.
 *
 * @example
 * ```ts
 * probe: (dev) => {
 *   dev.enableDevice();
 *   dev.setMaster();
 *   return { bar0: dev.iomapBar(0) };
 * }
 * ```
 */
export class PciDevice<Ctx extends DeviceContext = Normal> extends Device<Ctx> {
  /** Takes an owned reference (pci_dev_get). */
  override get(label?: string): ARef<PciDevice> {
    // SAFETY: RawDevice.get makes a handle of this handle's own class.
    return super.get(label) as unknown as ARef<PciDevice>;
  }
  /** The vendor id (config offset 0x00). */
  get vendorId(): number {
    return liveObject<PciDeviceState>(this).vendor;
  }
  /** The device id (config offset 0x02). */
  get deviceId(): number {
    return liveObject<PciDeviceState>(this).device;
  }
  /** The subsystem vendor id (0 when none). */
  get subsystemVendorId(): number {
    return liveObject<PciDeviceState>(this).subsystemVendor;
  }
  /** The subsystem device id (0 when none). */
  get subsystemDeviceId(): number {
    return liveObject<PciDeviceState>(this).subsystemDevice;
  }
  /** The 24-bit class code. */
  get classCode(): number {
    return liveObject<PciDeviceState>(this).classCode;
  }
  /** `vvvv:dddd`, as lspci -n shows it. */
  get ids(): string {
    const st = liveObject<PciDeviceState>(this);
    return `${hex(st.vendor, 4)}:${hex(st.device, 4)}`;
  }
  /** The number of BARs the function implements. */
  get barCount(): number {
    return liveObject<PciDeviceState>(this).fwnode.mem.length;
  }
  /**
   * BAR `index`'s address and size (pci_resource_start/len).
   *
   * **Errors:** `ENXIO` if there is no such BAR.
   */
  bar(index: number): { readonly start: number; readonly size: number } {
    const st = liveObject<PciDeviceState>(this);
    checkInteger("bar", "index", index, 0, 5);
    const b = barResource(st, index);
    if (b === undefined)
      throw new DevrefError("ENXIO", `device '${st.name}' has no BAR ${String(index)}`);
    return { start: b.start, size: b.size };
  }
  /** Whether the device is enabled (memory decoding on). */
  get isEnabled(): boolean {
    return liveObject<PciDeviceState>(this).enabled;
  }
  /** Whether the device may master the bus (DMA). */
  get isBusMaster(): boolean {
    return liveObject<PciDeviceState>(this).busMaster;
  }

  /**
   * Enables the device for the current binding (pcim_enable_device): disabled again when
   * the driver unbinds.
   *
   * **Errors:** `ENODEV` if the hardware is gone; `EBUSY` if already enabled.
   */
  enableDevice(this: PciDevice<Core>): void {
    requireContext(this, CONTEXT_CORE, "pcim_enable_device");
    // SAFETY: the object behind a PCI device handle is a PCI function's.
    const st = boundState(this, "pcim_enable_device") as PciDeviceState;
    if (st.disconnected) {
      throw new DevrefError(
        "ENODEV",
        `PCI device '${st.name}' is disconnected; it cannot be enabled`,
      );
    }
    if (st.enabled) throw new DevrefError("EBUSY", `PCI device '${st.name}' is already enabled`);
    st.enabled = true;
    setCommandBits(st, PCI_COMMAND_MEMORY, true);
    this.devmAddAction(() => {
      // pci_disable_device: bus mastering off; memory decoding stays as it is.
      if (st.busMaster) setCommandBits(st, PCI_COMMAND_MASTER, false);
      st.enabled = false;
      st.busMaster = false;
    }, "pci enable");
  }

  /**
   * Lets the device master the bus (pci_set_master): DMA may start.
   *
   * **Errors:** `EINVAL` if the device is not enabled.
   */
  setMaster(this: PciDevice<Core>): void {
    requireContext(this, CONTEXT_CORE, "pci_set_master");
    // SAFETY: the object behind a PCI device handle is a PCI function's.
    const st = boundState(this, "pci_set_master") as PciDeviceState;
    if (!st.enabled) {
      throw new DevrefError(
        "EINVAL",
        `PCI device '${st.name}': call enableDevice() before setMaster()`,
      );
    }
    st.busMaster = true;
    setCommandBits(st, PCI_COMMAND_MASTER, true);
  }

  /**
   * Reads `width` bytes of configuration space at `offset` (pci_read_config_byte/word/
   * dword): all-ones once the function is disconnected.
   *
   * **Errors:** `EINVAL` for an offset outside 0..0xfff or not aligned to `width`, or a
   * width other than 1, 2, 4; `ENXIO` if the function has no configuration space backend.
   */
  configRead(offset: number, width: 1 | 2 | 4): number {
    const st = liveObject<PciDeviceState>(this);
    const config = checkConfigAccess(st, "configRead", offset, width);
    if (st.disconnected) return width === 4 ? 0xffff_ffff : width === 2 ? 0xffff : 0xff;
    return config.read(offset, width) >>> 0;
  }

  /**
   * Writes `width` bytes of configuration space at `offset` (pci_write_config_*); dropped
   * once the function is disconnected.
   *
   * **Errors:** as {@link configRead}, and `EINVAL` for a value that does not fit the width.
   */
  configWrite(offset: number, width: 1 | 2 | 4, value: number): void {
    const st = liveObject<PciDeviceState>(this);
    const config = checkConfigAccess(st, "configWrite", offset, width);
    checkInteger(
      "configWrite",
      "value",
      value,
      0,
      width === 4 ? 0xffff_ffff : width === 2 ? 0xffff : 0xff,
    );
    if (st.disconnected) return;
    config.write(offset, width, value);
  }

  /**
   * Maps BAR `index` for the current binding (pcim_iomap): unmapped when the driver unbinds.
   *
   * **Errors:** `ENXIO` if there is no such BAR; `EBUSY` if already mapped; `ENODEV` on a
   * revoked borrow.
   */
  iomapBar(
    this: PciDevice<Bound>,
    index: number,
    options: { readonly owner?: string } = {},
  ): Devres<MmioRegion> {
    // SAFETY: the object behind a PCI device handle is a PCI function's.
    const st = boundState(this, "pcim_iomap") as PciDeviceState;
    checkInteger("iomapBar", "index", index, 0, 5);
    checkObject("iomapBar", "options", options);
    if (options.owner !== undefined) checkString("iomapBar", "options.owner", options.owner);
    const b = barResource(st, index);
    if (b === undefined) {
      throw new DevrefError(
        "ENXIO",
        `PCI device '${st.name}' has no BAR ${String(index)} (it has ${st.fwnode.mem.length})`,
      );
    }
    if ((st.requested & (1 << index)) !== 0) {
      throw new DevrefError(
        "EBUSY",
        `PCI device '${st.name}': BAR ${String(index)} is already mapped`,
      );
    }
    const region = new MmioRegion(st, {
      resource: b,
      driver: st.binding?.driver ?? null,
      owner: options.owner,
    });
    const res = new Devres(this, region, {
      label: `bar ${index}`,
      release: (m) => {
        unmapRegion(m);
        st.requested &= ~(1 << index);
      },
      ...(options.owner === undefined ? {} : { owner: options.owner }),
    });
    st.requested |= 1 << index;
    return res;
  }

  /** The number of MSI-X vectors allocated for the current binding (0: INTx is used). */
  get irqVectorCount(): number {
    return liveObject<PciDeviceState>(this).msiCount;
  }

  /**
   * Allocates between `min` and `max` MSI-X vectors for the current binding
   * (pcim_alloc_irq_vectors with PCI_IRQ_MSIX): lines of the machine's `"msi"` domain,
   * written into the function's MSI-X table; freed when the driver unbinds. Returns the
   * count allocated; `requestIrq(i)` then requests vector `i`.
   *
   * **Errors:** `ENOSPC` if the function has fewer than `min` vectors or the domain is
   * full; `EBUSY` if vectors are allocated already; `EINVAL` for bad counts.
   */
  allocIrqVectors(this: PciDevice<Core>, min: number, max: number): number {
    requireContext(this, CONTEXT_CORE, "pci_alloc_irq_vectors");
    // SAFETY: the object behind a PCI device handle is a PCI function's.
    const st = boundState(this, "pci_alloc_irq_vectors") as PciDeviceState;
    checkInteger("allocIrqVectors", "min", min, 1, MSI_LINES);
    checkInteger("allocIrqVectors", "max", max, min, MSI_LINES);
    if (st.msiCount > 0) {
      throw new DevrefError("EBUSY", `PCI device '${st.name}' has MSI-X vectors allocated already`);
    }
    const count = Math.min(max, st.msiVectors);
    if (count < min) {
      throw new DevrefError(
        "ENOSPC",
        `PCI device '${st.name}' supports ${st.msiVectors} MSI-X vectors, fewer than the ${min} asked for`,
      );
    }
    const domain = msiDomainOf(st.machine);
    const first = domain.allocLines(count);
    st.msiFirst = first;
    st.msiCount = count;
    for (let i = 0; i < count; i++) st.msiTarget?.setVector(i, first + i);
    this.devmAddAction(() => {
      for (let i = 0; i < count; i++) st.msiTarget?.setVector(i, null);
      domain.freeLines(first);
      st.msiFirst = -1;
      st.msiCount = 0;
    }, "msi-x vectors");
    return count;
  }

  /**
   * Requests interrupt `index` for the current binding: MSI-X vector `index` once vectors
   * are allocated, else the INTx line (index 0). See `Device.requestIrq`.
   */
  override requestIrq(
    this: PciDevice<Bound>,
    index: number,
    handler: IrqHandler<PciDevice<Bound>>,
    name?: string,
  ): Devres<IrqLine> {
    const st = liveObject<PciDeviceState>(this);
    let spec: IrqSpec | undefined;
    if (st.msiCount > 0 && Number.isInteger(index) && index >= 0) {
      if (index >= st.msiCount) {
        throw new DevrefError(
          "ENXIO",
          `PCI device '${st.name}' has ${st.msiCount} MSI-X vectors allocated, not ${index + 1}`,
        );
      }
      spec = { domain: MSI_IRQ_DOMAIN, hwirq: st.msiFirst + index, trigger: "edge" };
    }
    // SAFETY: the domain calls the handler with a borrow of this device's own handle class.
    return requestIrqOf(this, index, handler as IrqHandler<Device<Bound>>, name, spec);
  }

  /** A function tied to the current binding; see `Device.devmCallback`. */
  override devmCallback<A extends unknown[], R>(
    this: PciDevice<Bound>,
    fn: <S>(dev: Borrowed<PciDevice<Bound>, S>, ...args: A) => R,
    label = "callback",
  ): BoundCallback<A, R> {
    return makeBoundCallback<PciDevice<Bound>, A, R>(this, fn, label);
  }
}

/** BAR `index`'s resource (named `BAR<index>`; indexes without a BAR have none). */
function barResource(st: PciDeviceState, index: number): MemResource | undefined {
  const name = `BAR${index}`;
  return st.fwnode.mem.find((r) => r.name === name);
}

/** Sets or clears `bits` of the Command register through the function's config space, if any. */
function setCommandBits(st: PciDeviceState, bits: number, on: boolean): void {
  const config = st.config;
  if (config === null || st.disconnected) return;
  const cmd = config.read(PCI_COMMAND, 2) & 0xffff;
  const next = on ? cmd | bits : cmd & ~bits;
  if (next !== cmd) config.write(PCI_COMMAND, 2, next);
}

function checkConfigAccess(
  st: PciDeviceState,
  where: string,
  offset: number,
  width: number,
): PciConfigSpace {
  checkInteger(where, "width", width, 1, 4);
  if (width === 3) throw argumentError(where, "width", "1, 2 or 4", width);
  checkInteger(where, "offset", offset, 0, PCI_CFG_SPACE_EXP_SIZE - width);
  if (offset % width !== 0) throw argumentError(where, "offset", `a multiple of ${width}`, offset);
  if (st.config === null) {
    throw new DevrefError(
      "ENXIO",
      `PCI device '${st.name}' was registered without a configuration space (spec.config)`,
    );
  }
  return st.config;
}

/** A PCI id-table entry; an omitted field matches anything (PCI_ANY_ID). */
export interface PciDeviceId<I> {
  readonly vendor?: number;
  readonly device?: number;
  readonly subvendor?: number;
  readonly subdevice?: number;
  /** Compared under `classMask` (default: all 24 bits). */
  readonly classCode?: number;
  readonly classMask?: number;
  readonly data?: I;
}

/** What a PCI driver is defined from (Rust `pci::Driver`). */
export interface PciDriverSpec<D, I = undefined> {
  readonly name: string;
  readonly idTable: readonly PciDeviceId<I>[];
  /** As for platform drivers: a Core borrow and the matched entry's data. */
  readonly probe: <S>(dev: Borrowed<PciDevice<Core>, S>, info: I | undefined) => D | Promise<D>;
  /** Runs once on unbind; must cope with hardware that no longer answers. */
  readonly remove?: <S>(dev: Borrowed<PciDevice<Core>, S>, data: D) => void;
  readonly suppressBindAttrs?: boolean;
}

/** A PCI driver definition. */
export class PciDriver<D = unknown, I = unknown> extends Driver<D> {
  readonly bus: "pci" = "pci";
  readonly idTable: readonly PciDeviceId<I>[];

  /** @internal Use {@link definePciDriver}. */
  constructor(spec: PciDriverSpec<D, I>) {
    const where = "definePciDriver";
    checkDriverSpec(where, spec);
    const table = checkTable(where, "spec.idTable", spec.idTable, (e, at) => {
      for (const [k, max] of [
        ["vendor", 0xffff],
        ["device", 0xffff],
        ["subvendor", 0xffff],
        ["subdevice", 0xffff],
        ["classCode", 0xff_ffff],
        ["classMask", 0xff_ffff],
      ] as const) {
        if (e[k] !== undefined) checkInteger(where, `${at}.${k}`, e[k], 0, max);
      }
    });
    const remove = spec.remove;
    super(
      spec.name,
      spec.suppressBindAttrs ?? false,
      // SAFETY: the PCI bus calls probe with a Core borrow of a PCI device it made and the
      // matched entry's data (an I) or undefined.
      (dev, info) =>
        spec.probe(dev as unknown as Borrowed<PciDevice<Core>, never>, info as I | undefined),
      remove === undefined
        ? null
        : // SAFETY: as for probe; data is what this driver's probe returned.
          (dev, data) => remove(dev as unknown as Borrowed<PciDevice<Core>, never>, data as D),
    );
    this.idTable = [...table];
  }
}

/**
 * Defines a PCI driver, once (like `module_pci_driver`).
 *
 * @example
 * ```ts
 * const nvme = definePciDriver({
 *   name: "nvme",
 *   idTable: [{ classCode: 0x010802 }],
 *   probe: (dev) => { dev.enableDevice(); return { bar: dev.iomapBar(0) }; },
 * });
 * ```
 */
export function definePciDriver<D, I = undefined>(
  spec: PciDriverSpec<D, I>,
): Static<PciDriver<D, I>> {
  return defineStatic(new PciDriver<D, I>(spec));
}

/**
 * A hot-plug slot (pciehp): holds the owned reference of the function plugged into it.
 * `remove()` is the orderly path (attention button), `surpriseRemove()` the link going
 * down: both delete the function and drop the slot's reference.
 */
export class HotplugSlot {
  readonly name: string;
  readonly number: number;
  readonly #bus: PciBus;
  #device: ARef<PciDevice> | null = null;

  /** @internal Use {@link PciBus.addSlot}. */
  constructor(bus: PciBus, name: string, number: number) {
    this.#bus = bus;
    this.name = name;
    this.number = number;
  }

  /** Whether a function is plugged in (and registered). */
  get occupied(): boolean {
    return this.#device !== null;
  }

  /**
   * Plugs a function in: it is created and registered, and may bind at once.
   *
   * **Errors:** `EBUSY` if the slot is occupied; as {@link PciBus.register} otherwise.
   */
  insert(spec: PciDeviceSpec): void {
    checkObject("HotplugSlot.insert", "spec", spec);
    if (this.#device !== null) {
      throw new DevrefError(
        "EBUSY",
        `slot '${this.name}' is occupied by '${this.#device.name}'; remove it first`,
      );
    }
    this.#device = this.#bus.register({ ...spec, slot: this.number }, `slot ${this.name}`);
  }

  /** An owned reference to the plugged-in function, or null. */
  device(label = "anonymous"): ARef<PciDevice> | null {
    checkString("HotplugSlot.device", "label", label);
    return this.#device?.clone(label) ?? null;
  }

  /**
   * Orderly removal: the driver's remove still talks to working hardware.
   *
   * **Errors:** `ENODEV` if the slot is empty.
   */
  remove(): void {
    this.#take(false);
  }

  /**
   * Surprise removal: the link is down before software knows; the driver's remove sees
   * all-ones. Holders of owned references keep a dead object.
   *
   * **Errors:** `ENODEV` if the slot is empty.
   */
  surpriseRemove(): void {
    this.#take(true);
  }

  #take(surprise: boolean): void {
    const dev = this.#device;
    if (dev === null) throw new DevrefError("ENODEV", `slot '${this.name}' is empty`);
    this.#device = null;
    const st = deviceStateOf(dev);
    if (st.registered && !st.dead) deleteTree(st, surprise);
    dev.put();
  }
}

/**
 * A PCI-like bus: functions named `dddd:bb:ss.f`, matched by driver_override, then the id
 * table (vendor, device, subsystem ids, class under a mask), with hot-plug slots. Functions
 * get 32-bit DMA masks by default, as `pci_dev.dma_mask` does.
 */
export class PciBus extends BusType<PciDevice> {
  readonly domain: number;
  readonly busNumber: number;
  readonly #slots: Map<number, HotplugSlot> = new Map();
  #nextBar = 0xc000_0000;

  /**
   * Creates a PCI bus on `options.machine` (the default machine), named `pci` unless
   * `options.name` says otherwise, with PCI domain and bus numbers (default 0, 0).
   *
   * **Errors:** `EEXIST` if the machine has a bus of that name; `EINVAL` for bad numbers.
   */
  constructor(
    options: BusOptions & { readonly domain?: number; readonly busNumber?: number } = {},
  ) {
    super(options, "pci", undefined, PciDevice);
    this.domain = checkInteger("new PciBus", "options.domain", options.domain ?? 0, 0, 0xffff);
    this.busNumber = checkInteger(
      "new PciBus",
      "options.busNumber",
      options.busNumber ?? 0,
      0,
      0xff,
    );
  }

  protected override acceptsDriver(drv: Driver<unknown>): boolean {
    return drv instanceof PciDriver;
  }

  protected override matchDriver(st: DeviceState, drv: Driver<unknown>): MatchResult {
    if (!(st instanceof PciDeviceState) || !(drv instanceof PciDriver)) return null;
    for (const id of drv.idTable) {
      if (id.vendor !== undefined && id.vendor !== st.vendor) continue;
      if (id.device !== undefined && id.device !== st.device) continue;
      if (id.subvendor !== undefined && id.subvendor !== st.subsystemVendor) continue;
      if (id.subdevice !== undefined && id.subdevice !== st.subsystemDevice) continue;
      if (
        id.classCode !== undefined &&
        ((id.classCode ^ st.classCode) & (id.classMask ?? 0xff_ffff)) !== 0
      )
        continue;
      return { info: id.data };
    }
    return null;
  }

  /** Registers a PCI driver; see {@link BusType.registerDriver}. */
  override registerDriver<D, I>(drv: PciDriver<D, I>): DriverRegistration {
    return super.registerDriver(drv);
  }

  /**
   * Adds a hot-plug slot.
   *
   * **Errors:** `EEXIST` if the slot number is taken; `EINVAL` for a number outside 0..31.
   */
  addSlot(name: string, number: number): HotplugSlot {
    checkString("addSlot", "name", name, true);
    checkInteger("addSlot", "number", number, 0, 31);
    if (this.#slots.has(number))
      throw new DevrefError("EEXIST", `bus '${this.name}' already has slot ${number}`);
    const slot = new HotplugSlot(this, name, number);
    this.#slots.set(number, slot);
    return slot;
  }

  /**
   * Creates and registers a function at `spec.slot` (pci_scan_single_device +
   * pci_bus_add_device), returning the creator's owned reference.
   *
   * **Errors:** `EINVAL` for a bad description (nothing is created); `EEXIST` if the
   * address is taken.
   */
  register(spec: PciDeviceSpec & { readonly slot: number }, label = "creator"): ARef<PciDevice> {
    const where = "PciBus.register";
    checkObject(where, "spec", spec);
    checkString(where, "label", label);
    checkInteger(where, "spec.slot", spec.slot, 0, 31);
    const func = checkInteger(where, "spec.func", spec.func ?? 0, 0, 7);
    checkInteger(where, "spec.vendor", spec.vendor, 0, 0xffff);
    checkInteger(where, "spec.device", spec.device, 0, 0xffff);
    checkInteger(where, "spec.subsystemVendor", spec.subsystemVendor ?? 0, 0, 0xffff);
    checkInteger(where, "spec.subsystemDevice", spec.subsystemDevice ?? 0, 0, 0xffff);
    checkInteger(where, "spec.classCode", spec.classCode, 0, 0xff_ffff);
    checkInteger(where, "spec.msiVectors", spec.msiVectors ?? 0, 0, MSI_LINES);
    if (spec.msiTarget !== undefined) {
      checkObject(where, "spec.msiTarget", spec.msiTarget);
      if (typeof spec.msiTarget.setVector !== "function") {
        throw argumentError(
          where,
          "spec.msiTarget.setVector",
          "a function",
          spec.msiTarget.setVector,
        );
      }
    }
    if (spec.config !== undefined) {
      checkObject(where, "spec.config", spec.config);
      for (const m of ["read", "write"] as const) {
        if (typeof spec.config[m] !== "function") {
          throw argumentError(where, `spec.config.${m}`, "a function", spec.config[m]);
        }
      }
    }
    if (spec.driverOverride !== undefined)
      checkString(where, "spec.driverOverride", spec.driverOverride);
    const name = `${hex(this.domain, 4)}:${hex(this.busNumber, 2)}:${hex(spec.slot, 2)}.${func}`;
    if (spec.release !== undefined) checkRelease(name, spec.release);
    const barSpecs = spec.bars === undefined ? [] : spec.bars;
    checkArray(where, "spec.bars", barSpecs);
    if (barSpecs.length > 6)
      throw new DevrefError("EINVAL", `${where}: at most 6 BARs, got ${barSpecs.length}`);
    let next = this.#nextBar;
    const bars: MemResource[] = [];
    barSpecs.forEach((b, i) => {
      if (b === null) return;
      checkObject(where, `spec.bars[${i}]`, b);
      const size = checkInteger(where, `spec.bars[${i}].size`, b.size, 4, 2 ** 40);
      const start = b.start ?? next;
      if (b.start === undefined) next += Math.max(0x1000, Math.ceil(size / 0x1000) * 0x1000);
      bars.push({ name: `BAR${i}`, start, size, backend: b.backend ?? new RegisterFile(size) });
    });
    const iommus = spec.iommus === undefined ? [] : spec.iommus;
    checkArray(where, "spec.iommus", iommus);
    const fwnode = checkFirmwareNode(`PCI device ${name}`, {
      compatible: [
        `pci${hex(spec.vendor, 4)},${hex(spec.device, 4)}`,
        `pciclass,${hex(spec.classCode, 6)}`,
      ],
      mem: bars,
      interrupts: spec.interrupt === undefined ? [] : [spec.interrupt],
      iommus: iommus.map((r, i) => {
        checkObject(where, `spec.iommus[${i}]`, r);
        return { iommu: r.iommu, ids: r.ids ?? [] };
      }),
    });
    const parent =
      spec.parent === undefined || spec.parent === null
        ? null
        : deviceStateOf(checkInstance(where, "spec.parent", spec.parent, Device));
    machineFor(where, this.machine, parent);
    this.#nextBar = next;
    const st = new PciDeviceState(name, spec, fwnode, this.hooks, parent);
    const ref = adoptRef<PciDevice>(st, label);
    try {
      addState(st);
    } catch (e) {
      ref.put();
      throw e;
    }
    return ref;
  }

  /** Orderly removal (pci_stop_and_remove_bus_device), then put `dev`. */
  unregister(dev: ARef<PciDevice>): void {
    const st = deviceStateOf(checkInstance("PciBus.unregister", "dev", dev, PciDevice));
    if (st.registered && !st.dead) deleteTree(st, false);
    dev.put();
  }
}

/** The MSI interrupt domain of `machine` (created on first use). */
export function msiDomainOf(machine: import("@devref/device-core").Machine): IrqDomain {
  checkInstance("msiDomainOf", "machine", machine, Machine);
  return (
    IrqDomain.find(machine, MSI_IRQ_DOMAIN) ??
    new IrqDomain({ machine, name: MSI_IRQ_DOMAIN, size: MSI_LINES })
  );
}
