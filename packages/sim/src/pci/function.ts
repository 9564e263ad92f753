//! C header: include/uapi/linux/pci_regs.h, include/linux/pci.h (the function side)
//! Rules: PCI Local Bus Specification 3.0 §6.1–§6.2, §6.7, §6.8.2 (specs/sim-hardware.md §3).
//!
//! A PCI function: type-0 configuration space with Command/Status semantics, BAR sizing,
//! a capability list, MSI-X, INTx, and a DMA master gated by bus mastering.

import {
  argumentError,
  checkBoolean,
  checkCallback,
  checkCount,
  checkInteger,
  checkObject,
  checkString,
  DevrefError,
} from "@devref/raw-device";
import type { DmaPort, DmaTranslator } from "../dma.js";
import type { MmioHandler, MmioPort, MmioWidth } from "../fabric.js";
import type { FaultSpec } from "../faults.js";
import type { IrqSource } from "../irq.js";
import { DeviceModel } from "../model.js";
import type { Soc } from "../soc.js";
import { hostDeliverMsi, hostRemap, hostSurpriseRemove, type PciHost } from "./host.js";
import { PCI } from "./regs.js";

/** One memory BAR of a function. */
export interface PciBarDef {
  /** Size in bytes: a power of two, at least 16, below 4 GiB. */
  readonly size: number;
  /** A 64-bit BAR (it also takes the next BAR slot). Default false. */
  readonly is64?: boolean;
  readonly prefetchable?: boolean;
  /** The registers behind it (offsets relative to the BAR). */
  readonly handler: MmioHandler;
}

/** MSI-X: how many vectors, and where the table and PBA live. */
export interface PciMsixDef {
  /** Vectors, 1..2048. */
  readonly vectors: number;
  readonly tableBar: number;
  readonly tableOffset: number;
  readonly pbaBar: number;
  readonly pbaOffset: number;
}

/** How a {@link PciFunction} is built. */
export interface PciFunctionOptions {
  readonly name: string;
  readonly vendor: number;
  readonly device: number;
  /** 24-bit class code (base class, sub-class, programming interface). */
  readonly classCode: number;
  readonly revision?: number;
  readonly subsystemVendor?: number;
  readonly subsystemDevice?: number;
  /** BARs by index (0..5); a 64-bit BAR leaves the next index empty. */
  readonly bars?: readonly (PciBarDef | null | undefined)[];
  /** 0 none, 1..4 INTA..INTD (default 1). */
  readonly interruptPin?: number;
  readonly msix?: PciMsixDef;
  /** Function number on its card, 0..7 (default 0). */
  readonly function?: number;
  /** DMA goes through this IOMMU (a Dart) on stream `streamId`; otherwise bus address = PA. */
  readonly iommu?: DmaTranslator;
  readonly streamId?: number;
}

interface Bar {
  /** 0 none, 1 mem32, 2 mem64 low half, 3 mem64 high half. */
  readonly kind: 0 | 1 | 2 | 3;
  readonly size: number;
  readonly flags: number;
}

const NO_BAR: Bar = { kind: 0, size: 0, flags: 0 };

/** A config-space range with behaviour beyond plain masked bytes (virtio's pci_cfg window). */
export interface ConfigHook {
  readonly start: number;
  readonly end: number;
  /** Value for a read inside the range, or null for the stored bytes. */
  read?(reg: number, width: MmioWidth): number | null;
  /** Called after the stored bytes were updated by a write inside the range. */
  write?(reg: number, width: MmioWidth, value: number): void;
}

// module-state: privileged-access slots, assigned once by PciFunction's static block (BAR
// routing, and the host plugging functions in and out, stay off the public surface).
let barReadOf: (fn: PciFunction, index: number, offset: number, width: MmioWidth) => number;
let barWriteOf: (
  fn: PciFunction,
  index: number,
  offset: number,
  width: MmioWidth,
  value: number,
) => void;
let plugIntoOf: (fn: PciFunction, host: PciHost, intx: IrqSource, multiFunction: boolean) => void;
let unplugFromHostOf: (fn: PciFunction) => void;

/** @internal `host` plugs `fn` in: power-on reset, INTx wiring. */
export function plugFunctionInto(
  fn: PciFunction,
  host: PciHost,
  intx: IrqSource,
  multiFunction: boolean,
): void {
  plugIntoOf(fn, host, intx, multiFunction);
}

/** @internal The host took `fn` out (surprise or after power-off). */
export function unplugFunctionFromHost(fn: PciFunction): void {
  unplugFromHostOf(fn);
}

class BarRouter implements MmioHandler {
  constructor(
    private readonly fn: PciFunction,
    private readonly index: number,
  ) {}
  mmioRead(offset: number, width: MmioWidth): number {
    return barReadOf(this.fn, this.index, offset, width);
  }
  mmioWrite(offset: number, width: MmioWidth, value: number): void {
    barWriteOf(this.fn, this.index, offset, width, value);
  }
}

const ONES = [0, 0xff, 0xffff, 0, 0xffff_ffff] as const;

/**
 * A PCI function model: the configuration space a driver sees through ECAM and the BARs
 * it decodes once memory space is enabled. Device models (virtio-blk) extend it and give
 * BAR handlers; the {@link PciHost} puts it in a slot.
 *
 * Semantics: BAR address bits below the size are read-only zero, so writing all-ones and
 * reading back gives the size mask; BARs answer only while Command.MEMORY is set (master
 * abort: all-ones otherwise); DMA and MSI-X messages need Command.MASTER; INTx is asserted
 * while the model asks for it, Command.INTX_DISABLE is clear and MSI-X is off, and
 * Status.INTERRUPT mirrors the model's request. When gone, every config and BAR read is
 * all-ones, writes are dropped and DMA fails.
 *
 * **Invariants:** read-only bytes never change through config writes; Status error bits
 * are write-one-to-clear; the capability list ends with a 0 pointer.
 *
 * **Errors:** `EINVAL` for bad options (BAR sizes, MSI-X placement outside its BAR); for a
 * configuration access that is not 1, 2 or 4 bytes, naturally aligned, inside the 4 KiB
 * space, or a written value that does not fit the width; for a BAR index outside 0..5;
 * and for bad arguments to the subclass helpers (`addCapability`, `addConfigHook`,
 * `signalMsix`, `setIntx`).
 */
export class PciFunction extends DeviceModel {
  readonly vendor: number;
  readonly deviceId: number;
  readonly classCode: number;
  readonly fnNumber: number;
  /** The DMA master of this function. */
  readonly dma: DmaPort;
  /** The slot's host, while the function is plugged in. */
  host: PciHost | null = null;
  private readonly cfg = new Uint8Array(PCI.CFG_SPACE_EXP_SIZE);
  private readonly initial = new Uint8Array(PCI.CFG_SPACE_EXP_SIZE);
  private readonly wmask = new Uint8Array(PCI.CFG_SPACE_EXP_SIZE);
  private readonly w1c = new Uint8Array(PCI.CFG_SPACE_EXP_SIZE);
  private readonly bars: Bar[] = [];
  private readonly barHandlers: (MmioHandler | null)[] = [];
  private readonly barPorts: (MmioPort | null)[] = [];
  private readonly hooks: ConfigHook[] = [];
  private capLast: number = PCI.CAPABILITY_LIST;
  private capFree = 0x40;
  private readonly msixDef: PciMsixDef | null;
  private readonly msixCap: number;
  private readonly msixTable: Uint32Array;
  private readonly msixPending: Uint8Array;
  private intxWanted = false;
  private intxSource: IrqSource | null = null;

  constructor(soc: Soc, options: PciFunctionOptions) {
    checkObject("new PciFunction", "options", options);
    const w = "new PciFunction";
    const name = checkString(w, "options.name", options.name, true);
    checkInteger(w, "options.vendor", options.vendor, 0, 0xfffe);
    checkInteger(w, "options.device", options.device, 0, 0xffff);
    checkInteger(w, "options.classCode", options.classCode, 0, 0xff_ffff);
    const revision = checkInteger(w, "options.revision", options.revision ?? 0, 0, 0xff);
    const subVendor = checkInteger(
      w,
      "options.subsystemVendor",
      options.subsystemVendor ?? 0,
      0,
      0xffff,
    );
    const subDevice = checkInteger(
      w,
      "options.subsystemDevice",
      options.subsystemDevice ?? 0,
      0,
      0xffff,
    );
    const pin = checkInteger(w, "options.interruptPin", options.interruptPin ?? 1, 0, 4);
    const fnNumber = checkInteger(w, "options.function", options.function ?? 0, 0, 7);
    const defs = options.bars ?? [];
    if (!Array.isArray(defs) || defs.length > 6) {
      throw argumentError(w, "options.bars", "an array of at most 6 BARs", defs);
    }
    const bars: Bar[] = [NO_BAR, NO_BAR, NO_BAR, NO_BAR, NO_BAR, NO_BAR];
    const handlers: (MmioHandler | null)[] = [null, null, null, null, null, null];
    defs.forEach((d, i) => {
      if (d === null || d === undefined) return;
      checkObject(w, `options.bars[${i}]`, d);
      const size = checkInteger(w, `options.bars[${i}].size`, d.size, 16, 2 ** 31);
      if (!Number.isInteger(Math.log2(size))) {
        throw argumentError(w, `options.bars[${i}].size`, "a power of two", size);
      }
      checkObject(w, `options.bars[${i}].handler`, d.handler);
      const is64 = d.is64 === true;
      if (bars[i]!.kind !== 0 || (is64 && (i === 5 || defs[i + 1] != null))) {
        throw argumentError(w, `options.bars[${i}]`, "a BAR slot that a 64-bit BAR leaves free", d);
      }
      const flags =
        (is64 ? PCI.BASE_ADDRESS_MEM_TYPE_64 : 0) |
        (d.prefetchable ? PCI.BASE_ADDRESS_MEM_PREFETCH : 0);
      bars[i] = { kind: is64 ? 2 : 1, size, flags };
      if (is64) bars[i + 1] = { kind: 3, size, flags: 0 };
      handlers[i] = d.handler;
    });
    let msix: PciMsixDef | null = null;
    if (options.msix !== undefined) {
      const m = checkObject(w, "options.msix", options.msix);
      const n = checkCount(w, "options.msix.vectors", m.vectors, 1, 2048);
      for (const [bar, off, len, what] of [
        [m.tableBar, m.tableOffset, n * 16, "table"],
        [m.pbaBar, m.pbaOffset, Math.ceil(n / 64) * 8, "pba"],
      ] as const) {
        checkInteger(w, `options.msix.${what}Bar`, bar, 0, 5);
        const b = bars[bar]!;
        if (b.kind !== 1 && b.kind !== 2) {
          throw argumentError(w, `options.msix.${what}Bar`, "a memory BAR of this function", bar);
        }
        checkInteger(w, `options.msix.${what}Offset`, off, 0, b.size - len);
        if (off % 8 !== 0)
          throw argumentError(w, `options.msix.${what}Offset`, "a multiple of 8", off);
      }
      msix = m;
    }
    const dmaIommu = options.iommu;
    if (dmaIommu !== undefined) {
      if (
        typeof dmaIommu !== "object" ||
        dmaIommu === null ||
        typeof dmaIommu.translate !== "function"
      ) {
        throw argumentError(w, "options.iommu", "a DmaTranslator (a Dart)", dmaIommu);
      }
      checkInteger(w, "options.streamId", options.streamId, 0, 255);
    }
    super(soc, name, "pci-function");
    this.vendor = options.vendor;
    this.deviceId = options.device;
    this.classCode = options.classCode;
    this.fnNumber = fnNumber;
    this.bars.push(...bars);
    this.barHandlers.push(...handlers);
    for (let i = 0; i < 6; i++) {
      const b = bars[i]!;
      this.barPorts.push(
        b.kind === 1 || b.kind === 2
          ? this.addPort(`${name}.bar${i}`, b.size, new BarRouter(this, i))
          : null,
      );
    }
    this.dma = this.addDmaMaster(name);
    if (dmaIommu !== undefined) this.dma.attachIommu(dmaIommu, options.streamId!);

    // Identity and read-only header.
    const c = this.cfg;
    this.#put16(PCI.VENDOR_ID, options.vendor);
    this.#put16(PCI.DEVICE_ID, options.device);
    c[PCI.REVISION_ID] = revision;
    c[PCI.CLASS_PROG] = options.classCode & 0xff;
    c[PCI.CLASS_PROG + 1] = (options.classCode >>> 8) & 0xff;
    c[PCI.CLASS_PROG + 2] = (options.classCode >>> 16) & 0xff;
    this.#put16(PCI.SUBSYSTEM_VENDOR_ID, subVendor);
    this.#put16(PCI.SUBSYSTEM_ID, subDevice);
    c[PCI.INTERRUPT_PIN] = pin;
    // Writable bits.
    this.wmask[PCI.COMMAND] = PCI.COMMAND_MEMORY | PCI.COMMAND_MASTER | PCI.COMMAND_PARITY;
    this.wmask[PCI.COMMAND + 1] = (PCI.COMMAND_SERR | PCI.COMMAND_INTX_DISABLE) >>> 8;
    this.w1c[PCI.STATUS + 1] = 0xf9; // error bits 15:11 and 8
    this.wmask[PCI.CACHE_LINE_SIZE] = 0xff;
    this.wmask[PCI.INTERRUPT_LINE] = 0xff;
    for (let i = 0; i < 6; i++) {
      const b = bars[i]!;
      c[PCI.BASE_ADDRESS_0 + 4 * i] = b.kind === 3 ? 0 : b.flags;
    }
    this.msixDef = msix;
    this.msixCap = 0;
    this.msixTable = new Uint32Array(msix === null ? 0 : msix.vectors * 4);
    this.msixPending = new Uint8Array(msix === null ? 0 : msix.vectors);
    if (msix !== null) {
      const body = [0, 0, 0, 0, 0, 0, 0, 0, 0, 0];
      const ctl = msix.vectors - 1;
      body[0] = ctl & 0xff;
      body[1] = ctl >>> 8;
      const table = (msix.tableOffset | msix.tableBar) >>> 0;
      const pba = (msix.pbaOffset | msix.pbaBar) >>> 0;
      for (let i = 0; i < 4; i++) {
        body[2 + i] = (table >>> (8 * i)) & 0xff;
        body[6 + i] = (pba >>> (8 * i)) & 0xff;
      }
      this.msixCap = this.addCapability(PCI.CAP_ID_MSIX, body);
      this.wmask[this.msixCap + PCI.MSIX_FLAGS + 1] =
        (PCI.MSIX_FLAGS_ENABLE | PCI.MSIX_FLAGS_MASKALL) >>> 8;
    }
    this.initial.set(c);
  }

  // ---------------------------------------------------------------- building

  /**
   * Appends a capability (`id`, then the body after the ID and next bytes) to the list and
   * returns its offset. Subclasses call this in their constructor, before the function is
   * plugged in; `writable` marks body bytes the driver may write (offsets in the body).
   */
  protected addCapability(
    id: number,
    body: readonly number[],
    writable: readonly { readonly at: number; readonly mask: number }[] = [],
  ): number {
    const where = `${this.name}.addCapability`;
    checkInteger(where, "id", id, 0, 0xff);
    if (!Array.isArray(body)) throw argumentError(where, "body", "an array of bytes", body);
    for (const [i, b] of body.entries()) checkInteger(where, `body[${i}]`, b, 0, 0xff);
    if (!Array.isArray(writable)) {
      throw argumentError(where, "writable", "an array of { at, mask }", writable);
    }
    writable.forEach((wr, i) => {
      checkObject(where, `writable[${i}]`, wr);
      checkInteger(where, `writable[${i}].at`, wr.at, 0, body.length - 1);
      checkInteger(where, `writable[${i}].mask`, wr.mask, 0, 0xff);
    });
    const len = 2 + body.length;
    const at = (this.capFree + 3) & ~3;
    if (at + len > 0x100) {
      throw new DevrefError("ENOSPC", `${this.name}: no room for another capability in 0x40..0xff`);
    }
    const c = this.cfg;
    c[at] = id;
    c[at + 1] = 0;
    for (let i = 0; i < body.length; i++) c[at + 2 + i] = body[i]! & 0xff;
    for (const wr of writable) this.wmask[at + 2 + wr.at] = wr.mask;
    c[this.capLast === PCI.CAPABILITY_LIST ? PCI.CAPABILITY_LIST : this.capLast + 1] = at;
    this.capLast = at;
    this.capFree = at + len;
    c[PCI.STATUS] = (c[PCI.STATUS]! | PCI.STATUS_CAP_LIST) & 0xff;
    this.initial.set(c);
    return at;
  }

  /** Gives a config range behaviour beyond masked bytes. */
  protected addConfigHook(hook: ConfigHook): void {
    const where = `${this.name}.addConfigHook`;
    checkObject(where, "hook", hook);
    checkInteger(where, "hook.start", hook.start, 0, PCI.CFG_SPACE_EXP_SIZE - 1);
    checkInteger(where, "hook.end", hook.end, hook.start + 1, PCI.CFG_SPACE_EXP_SIZE);
    if (hook.read !== undefined) checkCallback(where, "hook.read", hook.read);
    if (hook.write !== undefined) checkCallback(where, "hook.write", hook.write);
    this.hooks.push(hook);
  }

  /** Whether BAR `index` exists (the low half for a 64-bit BAR). */
  hasBar(index: number): boolean {
    checkInteger(`${this.name}.hasBar`, "index", index, 0, 5);
    const b = this.bars[index];
    return b !== undefined && (b.kind === 1 || b.kind === 2);
  }

  // ---------------------------------------------------------------- config space

  /** A configuration read of `width` bytes at `reg` (what ECAM routes here). */
  configRead(reg: number, width: MmioWidth): number {
    if (!configAccessOk(reg, width)) badConfigAccess(`${this.name}.configRead`, reg, width);
    if (this.gone) return ONES[width];
    for (const h of this.hooks) {
      if (reg >= h.start && reg < h.end && h.read !== undefined) {
        const v = h.read(reg, width);
        if (v !== null) return v;
      }
    }
    let v = 0;
    for (let i = width - 1; i >= 0; i--) v = (v << 8) | this.#cfgByte(reg + i);
    return v >>> 0;
  }

  /** A configuration write (what ECAM routes here). */
  configWrite(reg: number, width: MmioWidth, value: number): void {
    if (!configAccessOk(reg, width)) badConfigAccess(`${this.name}.configWrite`, reg, width);
    if (typeof value !== "number" || (width === 4 ? value >>> 0 : value & ONES[width]) !== value)
      checkInteger(`${this.name}.configWrite`, "value", value, 0, ONES[width]);
    if (this.gone) return;
    const c = this.cfg;
    let barTouched = false;
    for (let i = 0; i < width; i++) {
      const at = reg + i;
      const b = (value >>> (8 * i)) & 0xff;
      if (at >= PCI.BASE_ADDRESS_0 && at < PCI.BASE_ADDRESS_0 + 24) {
        barTouched = true;
        continue;
      }
      c[at] = ((c[at]! & ~this.wmask[at]!) | (b & this.wmask[at]!)) & ~(b & this.w1c[at]!) & 0xff;
    }
    if (barTouched) this.#writeBars(reg, width, value);
    for (const h of this.hooks)
      if (reg < h.end && reg + width > h.start) h.write?.(reg, width, value);
    if (reg <= PCI.COMMAND + 1 && reg + width > PCI.COMMAND) this.#commandChanged();
    if (this.msixCap !== 0 && reg <= this.msixCap + 3 && reg + width > this.msixCap + 2)
      this.#msixControlChanged();
    if (barTouched) if (this.host !== null) hostRemap(this.host);
  }

  #cfgByte(at: number): number {
    if (at === PCI.STATUS) {
      return (this.cfg[at]! & ~PCI.STATUS_INTERRUPT) | (this.intxWanted ? PCI.STATUS_INTERRUPT : 0);
    }
    return this.cfg[at]!;
  }

  #writeBars(reg: number, width: MmioWidth, value: number): void {
    // Merge the written bytes into each BAR dword they touch, then apply the BAR's rules.
    for (let i = 0; i < 6; i++) {
      const start = PCI.BASE_ADDRESS_0 + 4 * i;
      if (reg + width <= start || reg >= start + 4) continue;
      let dword = this.#get32(start);
      for (let k = 0; k < width; k++) {
        const at = reg + k;
        if (at < start || at >= start + 4) continue;
        const shift = 8 * (at - start);
        dword = ((dword & ~(0xff << shift)) | (((value >>> (8 * k)) & 0xff) << shift)) >>> 0;
      }
      const b = this.bars[i]!;
      let stored: number;
      if (b.kind === 1 || b.kind === 2)
        stored = ((dword & ~(b.size - 1) & 0xffff_fff0) | b.flags) >>> 0;
      else if (b.kind === 3) stored = dword;
      else stored = 0;
      this.#put32(start, stored);
    }
  }

  /** The address BAR `index` decodes (low half for 64-bit BARs). */
  barAddress(index: number): number {
    checkInteger(`${this.name}.barAddress`, "index", index, 0, 5);
    const b = this.bars[index];
    if (b === undefined || (b.kind !== 1 && b.kind !== 2)) return 0;
    const lo = (this.#get32(PCI.BASE_ADDRESS_0 + 4 * index) & 0xffff_fff0) >>> 0;
    const hi = b.kind === 2 ? this.#get32(PCI.BASE_ADDRESS_0 + 4 * index + 4) : 0;
    return hi * 0x1_0000_0000 + lo;
  }

  /** The MMIO port of BAR `index` (offsets relative to the BAR), for direct wiring. */
  barPort(index: number): MmioPort {
    checkInteger(`${this.name}.barPort`, "index", index, 0, 5);
    const p = this.barPorts[index];
    if (p === undefined || p === null) {
      throw argumentError(
        `${this.name}.barPort`,
        "index",
        "the index of a memory BAR of this function",
        index,
      );
    }
    return p;
  }

  /** The BARs that decode now: `{ base, port }` for each BAR with memory space enabled. */
  decodedBars(): { base: number; port: MmioPort }[] {
    if (this.gone || !this.memoryEnabled) return [];
    const out: { base: number; port: MmioPort }[] = [];
    for (let i = 0; i < 6; i++) {
      const p = this.barPorts[i];
      if (p !== null && p !== undefined) out.push({ base: this.barAddress(i), port: p });
    }
    return out;
  }

  get command(): number {
    return this.#get16(PCI.COMMAND);
  }
  get memoryEnabled(): boolean {
    return (this.command & PCI.COMMAND_MEMORY) !== 0;
  }
  get busMaster(): boolean {
    return (this.command & PCI.COMMAND_MASTER) !== 0;
  }
  get msixEnabled(): boolean {
    return (
      this.msixCap !== 0 &&
      (this.#get16(this.msixCap + PCI.MSIX_FLAGS) & PCI.MSIX_FLAGS_ENABLE) !== 0
    );
  }
  /** MSI-X vectors (0 without MSI-X). */
  get msixVectors(): number {
    return this.msixDef?.vectors ?? 0;
  }

  // ---------------------------------------------------------------- BARs

  static {
    barReadOf = (fn, index, offset, width) => fn.#barRead(index, offset, width);
    barWriteOf = (fn, index, offset, width, value) => fn.#barWrite(index, offset, width, value);
    plugIntoOf = (fn, host, intx, multiFunction) => fn.#plugInto(host, intx, multiFunction);
    unplugFromHostOf = (fn) => fn.#unplugFromHost();
  }

  #barRead(index: number, offset: number, width: MmioWidth): number {
    if (!this.memoryEnabled) return ONES[width];
    const m = this.msixDef;
    if (m !== null) {
      if (
        index === m.tableBar &&
        offset >= m.tableOffset &&
        offset < m.tableOffset + m.vectors * 16
      ) {
        return lane(this.msixTable[(offset - m.tableOffset) >>> 2]!, offset, width);
      }
      const pbaLen = Math.ceil(m.vectors / 64) * 8;
      if (index === m.pbaBar && offset >= m.pbaOffset && offset < m.pbaOffset + pbaLen) {
        return lane(this.#pbaWord((offset - m.pbaOffset) >>> 2), offset, width);
      }
    }
    return this.barHandlers[index]!.mmioRead(offset, width);
  }

  #barWrite(index: number, offset: number, width: MmioWidth, value: number): void {
    if (!this.memoryEnabled) return;
    const m = this.msixDef;
    if (m !== null) {
      if (
        index === m.tableBar &&
        offset >= m.tableOffset &&
        offset < m.tableOffset + m.vectors * 16
      ) {
        const word = (offset - m.tableOffset) >>> 2;
        this.msixTable[word] = merge(this.msixTable[word]!, offset, width, value);
        if ((word & 3) === 3) this.#deliverPending();
        return;
      }
      const pbaLen = Math.ceil(m.vectors / 64) * 8;
      if (index === m.pbaBar && offset >= m.pbaOffset && offset < m.pbaOffset + pbaLen) return; // read-only
    }
    this.barHandlers[index]!.mmioWrite(offset, width, value);
  }

  #pbaWord(word: number): number {
    let v = 0;
    for (let bit = 0; bit < 32; bit++) {
      const vec = word * 32 + bit;
      if (vec < this.msixPending.length && this.msixPending[vec] === 1) v |= 1 << bit;
    }
    return v >>> 0;
  }

  // ---------------------------------------------------------------- interrupts

  /**
   * Sends MSI-X vector `vector` (masked: set pending). Returns false when MSI-X is not
   * enabled, so the caller falls back to INTx.
   */
  protected signalMsix(vector: number): boolean {
    checkInteger(`${this.name}.signalMsix`, "vector", vector, 0, 0xffff);
    if (this.gone || !this.msixEnabled) return false;
    if (!(vector >= 0 && vector < this.msixPending.length)) {
      this.soc.tracer.fault(this.traceId, "msix-bad-vector", vector);
      return true;
    }
    if (this.#vectorMasked(vector)) this.msixPending[vector] = 1;
    else this.#sendMessage(vector);
    return true;
  }

  /** Asks for INTx to be asserted (level) or released. */
  protected setIntx(level: boolean): void {
    checkBoolean(`${this.name}.setIntx`, "level", level);
    this.intxWanted = level;
    this.#updateIntx();
  }

  #vectorMasked(vector: number): boolean {
    const fnMask = (this.#get16(this.msixCap + PCI.MSIX_FLAGS) & PCI.MSIX_FLAGS_MASKALL) !== 0;
    return fnMask || (this.msixTable[vector * 4 + 3]! & PCI.MSIX_ENTRY_CTRL_MASKBIT) !== 0;
  }

  #sendMessage(vector: number): void {
    const t = this.msixTable;
    const addr = t[vector * 4 + 1]! * 0x1_0000_0000 + t[vector * 4]!;
    const data = t[vector * 4 + 2]!;
    if (!this.busMaster) {
      this.soc.tracer.fault(this.traceId, "msi-without-bus-master", vector);
      return;
    }
    if (this.host !== null) hostDeliverMsi(this.host, this, addr, data);
  }

  #deliverPending(): void {
    if (!this.msixEnabled) return;
    for (let v = 0; v < this.msixPending.length; v++) {
      if (this.msixPending[v] === 1 && !this.#vectorMasked(v)) {
        this.msixPending[v] = 0;
        this.#sendMessage(v);
      }
    }
  }

  #msixControlChanged(): void {
    this.#updateIntx();
    this.#deliverPending();
  }

  #commandChanged(): void {
    this.dma.enabled = this.busMaster;
    this.#updateIntx();
    if (this.host !== null) hostRemap(this.host);
  }

  #updateIntx(): void {
    const on =
      this.intxWanted &&
      !this.gone &&
      !this.msixEnabled &&
      (this.command & PCI.COMMAND_INTX_DISABLE) === 0;
    this.intxSource?.set(on);
  }

  // ---------------------------------------------------------------- life cycle

  #plugInto(host: PciHost, intx: IrqSource, multiFunction: boolean): void {
    this.revive();
    this.#resetConfig();
    this.host = host;
    this.intxSource = intx;
    if (multiFunction && this.fnNumber === 0) {
      this.cfg[PCI.HEADER_TYPE] = this.cfg[PCI.HEADER_TYPE]! | PCI.HEADER_TYPE_MULTI_FUNCTION;
    }
    this.onReset();
  }

  #unplugFromHost(): void {
    this.unplug();
    this.intxSource?.detach();
    this.intxSource = null;
    this.host = null;
  }

  #resetConfig(): void {
    this.cfg.set(this.initial);
    this.msixTable.fill(0);
    for (let v = 0; v < this.msixPending.length; v++)
      this.msixTable[v * 4 + 3] = PCI.MSIX_ENTRY_CTRL_MASKBIT;
    this.msixPending.fill(0);
    this.intxWanted = false;
    this.dma.enabled = false;
    this.dma.injectedErrors = 0;
  }

  /** Power-on or re-insertion reset of the device behind the function. */
  protected onReset(): void {}

  override prepareFault(spec: FaultSpec): (() => void) | null {
    checkObject(`${this.name}.prepareFault`, "spec", spec);
    if (spec.kind === "unplug") {
      return () => {
        const host = this.host;
        if (host !== null) hostSurpriseRemove(host, this);
        else this.unplug();
      };
    }
    return super.prepareFault(spec);
  }

  // ---------------------------------------------------------------- bytes

  #get16(at: number): number {
    return this.cfg[at]! | (this.cfg[at + 1]! << 8);
  }
  #get32(at: number): number {
    const c = this.cfg;
    return (c[at]! | (c[at + 1]! << 8) | (c[at + 2]! << 16) | (c[at + 3]! << 24)) >>> 0;
  }
  #put16(at: number, v: number): void {
    this.cfg[at] = v & 0xff;
    this.cfg[at + 1] = (v >>> 8) & 0xff;
  }
  #put32(at: number, v: number): void {
    for (let i = 0; i < 4; i++) this.cfg[at + i] = (v >>> (8 * i)) & 0xff;
  }
}

/** Whether `(reg, width)` is a naturally aligned access of 1, 2 or 4 bytes in config space. */
function configAccessOk(reg: number, width: number): boolean {
  return (
    (width === 1 || width === 2 || width === 4) &&
    typeof reg === "number" &&
    reg >= 0 &&
    reg <= PCI.CFG_SPACE_EXP_SIZE - width &&
    (reg & (width - 1)) === 0 &&
    Math.floor(reg) === reg
  );
}

function badConfigAccess(where: string, reg: unknown, width: unknown): never {
  if (width !== 1 && width !== 2 && width !== 4)
    throw argumentError(where, "width", "an access width of 1, 2 or 4", width);
  throw argumentError(
    where,
    "reg",
    `a configuration register offset in [0, ${PCI.CFG_SPACE_EXP_SIZE - width}] aligned to ${width}`,
    reg,
  );
}

function lane(word: number, offset: number, width: MmioWidth): number {
  if (width === 4) return word >>> 0;
  return (word >>> ((offset & 3) * 8)) & (width === 1 ? 0xff : 0xffff);
}

function merge(word: number, offset: number, width: MmioWidth, value: number): number {
  if (width === 4) return value >>> 0;
  const shift = (offset & 3) * 8;
  const mask = (width === 1 ? 0xff : 0xffff) << shift;
  return ((word & ~mask) | ((value << shift) & mask)) >>> 0;
}
