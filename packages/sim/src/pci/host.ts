//! C source: drivers/pci/controller/pci-host-common.c (ECAM), drivers/pci/hotplug/pciehp_*.c
//! (the idea of slot events), drivers/pci/controller/pcie-apple.c (MSIs caught at a doorbell)
//!
//! A PCI host bridge: ECAM configuration space for bus 0, a memory window in which BARs
//! appear where software programs them, hot-plug slots with surprise and orderly removal,
//! INTx lines per slot, and MSI delivery through a doorbell address.

import {
  argumentError,
  checkCount,
  checkInteger,
  checkObject,
  checkString,
  DevrefError,
} from "@devref/raw-device";
import { type MmioPort, type MmioWidth, MmioWindow } from "../fabric.js";
import type { IrqSource } from "../irq.js";
import { DeviceModel } from "../model.js";
import type { Soc } from "../soc.js";
import { PciFunction, plugFunctionInto, unplugFunctionFromHost } from "./function.js";

/** How a {@link PciHost} is built. */
export interface PciHostOptions {
  readonly name: string;
  /** Base of the 1 MiB ECAM window (bus 0: device << 15 | function << 12 | register). */
  readonly ecamBase: number;
  /** The memory window BARs appear in (CPU physical addresses). */
  readonly windowBase: number;
  readonly windowSize: number;
  /**
   * PCI bus address of the window's first byte (default `windowBase`): BAR values are bus
   * addresses, and a BAR at bus address `b` appears at `windowBase + (b - windowBusBase)`,
   * the outbound translation of a host bridge's `ranges`.
   */
  readonly windowBusBase?: number;
  /** Base of the 4 KiB hot-plug register block. */
  readonly hotplugBase: number;
  /** Slots = device numbers 0..slots-1 on bus 0 (default 4, at most 32). */
  readonly slots?: number;
  /** INTx line of slot `s` is `intxBase + s` (all pins of a slot share it). */
  readonly intxBase: number;
  /** Level line asserted while a hot-plug event is pending. */
  readonly hotplugIrq: number;
  /** An MSI with data `d` pulses line `msiBase + d`. */
  readonly msiBase: number;
  /** MSI lines (default 32). */
  readonly msiCount?: number;
  /** Bus address the host catches as the MSI doorbell (default 0xfffff000, as on Apple PCIe). */
  readonly msiDoorbell?: number;
}

/** Hot-plug register block (the simulator's own, pciehp-like). */
export const PCI_HOTPLUG = {
  /** RO: bit s set while slot s holds a card. */
  SLOT_PRESENT: 0x00,
  /** W1C: bit s set when slot s's presence changed. */
  SLOT_EVENTS: 0x04,
  /** W1C: bit s set when removal of slot s was requested (attention button). */
  SLOT_ATTENTION: 0x08,
  /** WO: writing bit s powers slot s off, which takes its card out. */
  SLOT_POWER_OFF: 0x0c,
  SIZE: 0x1000,
} as const;

/** Size of a host's ECAM window: bus 0, 32 devices of 8 functions of 4 KiB. */
export const ECAM_SIZE = 0x10_0000;

/** One slot (a device number on bus 0). */
export interface PciSlot {
  readonly index: number;
  /** The functions of the card in the slot; empty when the slot is empty. */
  readonly functions: readonly PciFunction[];
  /** Whether removal was requested and not yet completed. */
  readonly removalRequested: boolean;
}

interface SlotState {
  readonly index: number;
  functions: PciFunction[];
  removalRequested: boolean;
}

// module-state: privileged-access slots, assigned once by PciHost's static block, through
// which the functions in its slots reach the host's machinery.
let remapOf: (host: PciHost) => void;
let deliverMsiOf: (host: PciHost, fn: PciFunction, addr: number, data: number) => void;
let surpriseRemoveOf: (host: PciHost, fn: PciFunction) => void;

/** @internal Recomputes which BARs decode in `host`'s window (after Command or BAR writes). */
export function hostRemap(host: PciHost): void {
  remapOf(host);
}

/** @internal An MSI-X message from `fn` reaching `host`. */
export function hostDeliverMsi(host: PciHost, fn: PciFunction, addr: number, data: number): void {
  deliverMsiOf(host, fn, addr, data);
}

/** @internal Surprise removal of the slot of `host` that holds `fn` (fault injection). */
export function hostSurpriseRemove(host: PciHost, fn: PciFunction): void {
  surpriseRemoveOf(host, fn);
}

/**
 * A PCI host bridge with hot-plug slots.
 *
 * Configuration reads of an empty slot or a missing function return all-ones (Vendor ID
 * 0xFFFF) and writes are dropped. Surprise removal takes the card out at once: its
 * functions become gone (config, BARs all-ones; DMA fails; INTx low), their BARs leave the
 * window, and a presence event is raised. An orderly removal first raises an attention
 * event and keeps the card working until software powers the slot off.
 *
 * MSI-X messages whose address is the doorbell pulse line `msiBase + data`; any other
 * address is an ordinary DMA write through the function's master (and its IOMMU).
 *
 * **Invariants:** a function is in at most one slot; BARs decode only inside the window,
 * with memory space enabled, without overlapping each other.
 *
 * **Errors:** `EINVAL` for bad options, slot numbers, or device/function numbers outside
 * 0..31/0..7; `EBUSY` for inserting into an
 * occupied slot or a function that is already plugged in.
 *
 * @example
 * ```ts
 * const host = new PciHost(soc, { name: "pcie0", ecamBase: 0x6_0000_0000, windowBase: 0x6_1000_0000,
 *   windowSize: 0x1000_0000, hotplugBase: 0x6_0010_0000, intxBase: 32, hotplugIrq: 40, msiBase: 64 });
 * host.insert(0, blk);
 * soc.fabric.read32(0x6_0000_0000); // 0x10421af4: virtio-blk in slot 0
 * ```
 */
export class PciHost extends DeviceModel {
  readonly ecamBase: number;
  readonly windowBase: number;
  readonly windowSize: number;
  readonly windowBusBase: number;
  readonly hotplugBase: number;
  /** The level line asserted while a hot-plug event or attention request is pending. */
  readonly hotplugIrq: number;
  readonly intxBase: number;
  readonly msiBase: number;
  readonly msiCount: number;
  readonly msiDoorbell: number;
  readonly ecamPort: MmioPort;
  readonly hotplugPort: MmioPort;
  readonly window: MmioWindow;
  private readonly slotState: SlotState[] = [];
  private readonly hpIrq: IrqSource;
  private events = 0;
  private attention = 0;

  constructor(soc: Soc, options: PciHostOptions) {
    checkObject("new PciHost", "options", options);
    const w = "new PciHost";
    const name = checkString(w, "options.name", options.name, true);
    const slots = checkCount(w, "options.slots", options.slots ?? 4, 1, 32);
    const lines = soc.irq.lines;
    checkInteger(w, "options.intxBase", options.intxBase, 0, lines - slots);
    checkInteger(w, "options.hotplugIrq", options.hotplugIrq, 0, lines - 1);
    const msiCount = checkCount(w, "options.msiCount", options.msiCount ?? 32, 1, lines);
    checkInteger(w, "options.msiBase", options.msiBase, 0, lines - msiCount);
    const doorbell = checkInteger(
      w,
      "options.msiDoorbell",
      options.msiDoorbell ?? 0xffff_f000,
      0,
      2 ** 52,
    );
    checkInteger(w, "options.ecamBase", options.ecamBase, 0, 2 ** 52 - ECAM_SIZE);
    checkInteger(w, "options.windowSize", options.windowSize, 0x1000, 2 ** 40);
    checkInteger(w, "options.windowBase", options.windowBase, 0, 2 ** 52 - options.windowSize);
    checkInteger(w, "options.hotplugBase", options.hotplugBase, 0, 2 ** 52 - PCI_HOTPLUG.SIZE);
    const busBase = checkInteger(
      w,
      "options.windowBusBase",
      options.windowBusBase ?? options.windowBase,
      0,
      2 ** 52 - options.windowSize,
    );
    soc.fabric.checkFree(`${name}.ecam`, options.ecamBase, ECAM_SIZE);
    soc.fabric.checkFree(`${name}.hotplug`, options.hotplugBase, PCI_HOTPLUG.SIZE);
    soc.fabric.checkFree(`${name}.window`, options.windowBase, options.windowSize);
    const regions: [number, number][] = [
      [options.ecamBase, ECAM_SIZE],
      [options.hotplugBase, PCI_HOTPLUG.SIZE],
      [options.windowBase, options.windowSize],
    ];
    for (const [i, [b, n]] of regions.entries()) {
      for (const [c, m] of regions.slice(i + 1)) {
        if (b < c + m && c < b + n) {
          throw argumentError(
            w,
            "options",
            "ECAM, hot-plug and window ranges that do not overlap",
            b,
          );
        }
      }
    }
    super(soc, name, "pci-host");
    this.ecamBase = options.ecamBase;
    this.windowBase = options.windowBase;
    this.windowSize = options.windowSize;
    this.windowBusBase = busBase;
    this.hotplugBase = options.hotplugBase;
    this.hotplugIrq = options.hotplugIrq;
    this.intxBase = options.intxBase;
    this.msiBase = options.msiBase;
    this.msiCount = msiCount;
    this.msiDoorbell = doorbell;
    for (let i = 0; i < slots; i++)
      this.slotState.push({ index: i, functions: [], removalRequested: false });
    this.ecamPort = this.addPort(`${name}.ecam`, ECAM_SIZE, {
      mmioRead: (offset, width) => this.#ecamRead(offset, width),
      mmioWrite: (offset, width, value) => this.#ecamWrite(offset, width, value),
    });
    this.hotplugPort = this.addPort(`${name}.hotplug`, PCI_HOTPLUG.SIZE, {
      mmioRead: (offset, width) => this.#hotplugRead(offset, width),
      mmioWrite: (offset, width, value) => this.#hotplugWrite(offset, width, value),
    });
    // Accesses in the window that no BAR claims: master abort.
    const fallback = this.addPort(`${name}.window`, options.windowSize, {
      mmioRead: (offset, width) => {
        this.#masterAbort(offset);
        return width === 4 ? 0xffff_ffff : width === 2 ? 0xffff : 0xff;
      },
      mmioWrite: (offset) => this.#masterAbort(offset),
    });
    this.window = new MmioWindow(options.windowBase, options.windowSize, fallback);
    this.hpIrq = this.addIrq(options.hotplugIrq);
    soc.fabric.map(options.ecamBase, this.ecamPort, name);
    soc.fabric.map(options.hotplugBase, this.hotplugPort, name);
    soc.fabric.mapWindow(`${name}.window`, this.window, name);
  }

  /** Number of slots. */
  get slotCount(): number {
    return this.slotState.length;
  }

  /** Slot `index`. */
  slot(index: number): PciSlot {
    const s = this.#slotAt("slot", index);
    return { index: s.index, functions: [...s.functions], removalRequested: s.removalRequested };
  }

  /**
   * Puts a card (one function or several with distinct function numbers) into an empty
   * slot: power-on reset of each function, presence event.
   */
  insert(index: number, card: PciFunction | readonly PciFunction[]): void {
    const s = this.#slotAt("insert", index);
    const fns: PciFunction[] = card instanceof PciFunction ? [card] : Array.from(card ?? []);
    if (fns.length === 0 || fns.length > 8) {
      throw argumentError("PciHost.insert", "card", "one to eight PciFunctions", card);
    }
    const numbers = new Set<number>();
    for (const f of fns) {
      if (!(f instanceof PciFunction)) {
        throw argumentError("PciHost.insert", "card", "PciFunction objects", f);
      }
      if (f.soc !== this.soc)
        throw argumentError("PciHost.insert", "card", "functions of this SoC", f.name);
      if (f.host !== null) {
        throw new DevrefError(
          "EBUSY",
          `${f.name} is already plugged into ${f.host.name}: remove it first`,
        );
      }
      if (numbers.has(f.fnNumber)) {
        throw argumentError(
          "PciHost.insert",
          "card",
          "functions with distinct function numbers",
          f.fnNumber,
        );
      }
      numbers.add(f.fnNumber);
    }
    if (s.functions.length > 0) {
      throw new DevrefError(
        "EBUSY",
        `slot ${index} of ${this.name} is occupied: remove its card first`,
      );
    }
    s.functions = fns;
    s.removalRequested = false;
    for (const f of fns) {
      plugFunctionInto(f, this, this.soc.irq.source(this.intxBase + index, f.name), fns.length > 1);
    }
    this.soc.tracer.note(this.traceId, "slot-insert", index, fns.length);
    this.#raiseEvent(index);
    this.#remap();
  }

  /** Takes the card out without warning: every function becomes gone at once. */
  surpriseRemove(index: number): void {
    const s = this.#slotAt("surpriseRemove", index);
    this.#takeOut(s, "slot-surprise-removal");
  }

  /** Asks for an orderly removal (attention button): the card keeps working until power-off. */
  requestRemoval(index: number): void {
    const s = this.#slotAt("requestRemoval", index);
    if (s.functions.length === 0 || s.removalRequested) return;
    s.removalRequested = true;
    this.attention |= 1 << index;
    this.soc.tracer.note(this.traceId, "slot-removal-requested", index);
    this.#updateIrq();
  }

  static {
    remapOf = (host) => host.#remap();
    deliverMsiOf = (host, fn, addr, data) => host.#deliverMsi(fn, addr, data);
    surpriseRemoveOf = (host, fn) => host.#surpriseRemoveFunction(fn);
  }

  #surpriseRemoveFunction(fn: PciFunction): void {
    const s = this.slotState.find((x) => x.functions.includes(fn));
    if (s !== undefined) this.#takeOut(s, "slot-surprise-removal");
  }

  /** The function at device `dev`, function `fn` of bus 0, if present. */
  functionAt(dev: number, fn: number): PciFunction | undefined {
    checkInteger("PciHost.functionAt", "dev", dev, 0, 31);
    checkInteger("PciHost.functionAt", "fn", fn, 0, 7);
    return this.slotState[dev]?.functions.find((f) => f.fnNumber === fn);
  }

  #remap(): void {
    const entries: { base: number; port: MmioPort; owner: string }[] = [];
    for (const s of this.slotState) {
      for (const f of s.functions) {
        for (const d of f.decodedBars()) {
          const base = d.base - this.windowBusBase + this.windowBase;
          entries.push({ base, port: d.port, owner: f.name });
        }
      }
    }
    const end = this.windowBase + this.windowSize;
    for (const r of this.window.setMappings(entries)) {
      // A BAR outside the window is merely unreachable; one inside that overlaps is a bug.
      if (r.base >= this.windowBase && r.base + r.port.size <= end) {
        this.soc.tracer.fault(this.traceId, "pci-bar-overlap", r.base, r.port.size);
      }
    }
  }

  #deliverMsi(fn: PciFunction, addr: number, data: number): void {
    if (addr === this.msiDoorbell) {
      if (data >= this.msiCount) {
        this.soc.tracer.fault(this.traceId, "msi-data-out-of-range", data);
        return;
      }
      this.soc.irq.pulse(this.msiBase + data);
      return;
    }
    // Not the doorbell: an ordinary memory write, through the function's IOMMU if any.
    if (!fn.dma.write32(addr, data))
      this.soc.tracer.fault(this.traceId, "msi-write-failed", addr, fn.dma.status);
  }

  // ---------------------------------------------------------------- registers

  #ecamRead(offset: number, width: MmioWidth): number {
    const f = this.functionAt(offset >>> 15, (offset >>> 12) & 7);
    if (f === undefined) return width === 4 ? 0xffff_ffff : width === 2 ? 0xffff : 0xff;
    return f.configRead(offset & 0xfff, width);
  }

  #ecamWrite(offset: number, width: MmioWidth, value: number): void {
    const f = this.functionAt(offset >>> 15, (offset >>> 12) & 7);
    f?.configWrite(offset & 0xfff, width, value);
  }

  #hotplugRead(offset: number, width: MmioWidth): number {
    let word = 0;
    switch (offset & ~3) {
      case PCI_HOTPLUG.SLOT_PRESENT:
        for (const s of this.slotState) if (s.functions.length > 0) word |= 1 << s.index;
        break;
      case PCI_HOTPLUG.SLOT_EVENTS:
        word = this.events;
        break;
      case PCI_HOTPLUG.SLOT_ATTENTION:
        word = this.attention;
        break;
      default:
        word = 0;
    }
    if (width === 4) return word >>> 0;
    return (word >>> ((offset & 3) * 8)) & (width === 1 ? 0xff : 0xffff);
  }

  #hotplugWrite(offset: number, width: MmioWidth, value: number): void {
    if (width !== 4) return;
    switch (offset) {
      case PCI_HOTPLUG.SLOT_EVENTS:
        this.events &= ~value;
        this.#updateIrq();
        return;
      case PCI_HOTPLUG.SLOT_ATTENTION:
        this.attention &= ~value;
        this.#updateIrq();
        return;
      case PCI_HOTPLUG.SLOT_POWER_OFF:
        for (const s of this.slotState) {
          if (((value >>> s.index) & 1) === 1 && s.functions.length > 0)
            this.#takeOut(s, "slot-power-off");
        }
        return;
      default:
        return;
    }
  }

  #masterAbort(offset: number): void {
    this.soc.tracer.fault(this.traceId, "pci-master-abort", this.windowBase + offset);
  }

  // ---------------------------------------------------------------- internals

  #takeOut(s: SlotState, why: string): void {
    if (s.functions.length === 0) return;
    const fns = s.functions;
    s.functions = [];
    s.removalRequested = false;
    this.attention &= ~(1 << s.index);
    this.soc.tracer.note(this.traceId, why, s.index);
    for (const f of fns) unplugFunctionFromHost(f);
    this.#raiseEvent(s.index);
    this.#remap();
  }

  #raiseEvent(index: number): void {
    this.events |= 1 << index;
    this.#updateIrq();
  }

  #updateIrq(): void {
    this.hpIrq.set((this.events | this.attention) !== 0);
  }

  #slotAt(where: string, index: number): SlotState {
    checkInteger(`PciHost.${where}`, "slot", index, 0, this.slotState.length - 1);
    return this.slotState[index]!;
  }

  protected override onGone(): void {
    for (const s of this.slotState) this.#takeOut(s, "host-gone");
  }
}
