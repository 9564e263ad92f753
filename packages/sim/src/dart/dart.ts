//! C source: drivers/iommu/apple-dart.c (the hardware it programs), m1n1 hw/dart8020.py,
//! hw/dart8110.py. Model rules: specs/sim-hardware.md §1.9.
//!
//! An Apple DART as an MMIO device with its own table walker (it shares no code with
//! io-pgtable: a wrong bit in a driver's tables shows up as a fault, as on hardware), an
//! IOTLB that only invalidation clears, error latching with a level interrupt, command
//! timing on virtual time, lock/protect, and fault injection.

import {
  argumentError,
  checkBoolean,
  checkCount,
  checkInstance,
  checkInteger,
  checkObject,
  checkOneOf,
  checkString,
} from "@devref/raw-device";
import { DmaPort, type DmaTranslator, XLATE_BLOCKED, XLATE_FAULT } from "../dma.js";
import type { MmioPort, MmioWidth } from "../fabric.js";
import type { DartFaultCode, FaultSpec } from "../faults.js";
import type { IrqSource } from "../irq.js";
import { DeviceModel } from "../model.js";
import type { Soc } from "../soc.js";
import { Iotlb } from "./iotlb.js";
import {
  DART_ERROR_FLAG,
  DART_PARAMS1,
  DART_PARAMS1_PAGE_SHIFT,
  DART_PARAMS2,
  DART_PARAMS2_BYPASS_SUPPORT,
  DART_PTE,
  DART_T8020 as R20,
  DART_T8110 as R110,
} from "./regs.js";

/** The register layout and PTE format: `t8020` (M1, DART1 PTEs), `t6000` (T8020 registers, DART2 PTEs), `t8110` (M2+). */
export type DartVariant = "t8020" | "t6000" | "t8110";

/** How a {@link Dart} is built. */
export interface DartOptions {
  /** Model name, unique on the SoC. */
  readonly name: string;
  readonly variant: DartVariant;
  /** Physical base of the 0x4000-byte register window. */
  readonly base: number;
  /** Interrupt line (level, asserted while `ERROR.FLAG` is set). */
  readonly irq: number;
  /** log2 of the page size: 14 (16 KiB, default), or 12 on `t8020` only. */
  readonly pageShift?: 12 | 14;
  /** Streams: fixed 16 on t8020/t6000; 1..256 on t8110 (default 16). */
  readonly streams?: number;
  /** t8110 `PARAMS3.VA_WIDTH`, 32..42 (default 36); above 36 the DART supports `FOUR_LEVEL`. */
  readonly vaWidth?: number;
  /** t8110 `PARAMS3.PA_WIDTH`, 36..42 (default 42). */
  readonly paWidth?: number;
  /** `PARAMS2.BYPASS_SUPPORT` (default true). Without it the bypass bits are not writable. */
  readonly bypass?: boolean;
  /** IOTLB entries (default 64). */
  readonly iotlbEntries?: number;
  /** Also cache table (non-leaf) entries, which invalidation clears too (default false). */
  readonly cacheTables?: boolean;
  /** Also cache failed lookups (default false). */
  readonly cacheFaults?: boolean;
  /** Virtual time a TLB command keeps BUSY set (default 0: it clears at once). */
  readonly commandLatencyNs?: number;
  /** Extra random latency in [0, jitter] drawn from the SoC's generator (default 0). */
  readonly commandJitterNs?: number;
  /** Latch `NO_TTBR` for a transaction on a blocked stream (default false: fail silently). */
  readonly latchBlocked?: boolean;
  /** Fault accesses outside a leaf's subpage range (default false: ignore the fields). */
  readonly strictSubpage?: boolean;
  /**
   * t8110: keep the interrupt asserted while any `ERROR_STREAMS` bit is set, as t602x
   * DARTs do (default false: only `ERROR.FLAG` drives the line).
   */
  readonly errorStreamsHoldIrq?: boolean;
}

const M_BLOCKED = 0;
const M_BYPASS = 1;
const M_TRANSLATE = 2;
const M_TRANSLATE4 = 3;

// Fault code indices (model-internal), mapped to each family's ERROR bits.
const C_NO_TTBR = 0;
const C_NO_PGD = 1;
const C_NO_PMD = 2;
const C_NO_PTE = 3;
const C_WRITE = 4;
const C_READ = 5;
const C_SUBPAGE = 6;
const CODE_NAMES: readonly DartFaultCode[] = [
  "no-ttbr",
  "no-pgd",
  "no-pmd",
  "no-pte",
  "write-fault",
  "read-fault",
];
const T8020_BITS: readonly number[] = [
  R20.ERR_NO_TTBR,
  R20.ERR_NO_PMD,
  R20.ERR_NO_PMD,
  R20.ERR_NO_PTE,
  R20.ERR_WRITE_FAULT,
  R20.ERR_READ_FAULT,
  R20.ERR_SUBPAGE_PROT,
];
const T8110_BITS: readonly number[] = [
  R110.ERR_NO_TTBR,
  R110.ERR_NO_PGD,
  R110.ERR_NO_PMD,
  R110.ERR_NO_PTE,
  R110.ERR_WRITE_FAULT,
  R110.ERR_READ_FAULT,
  0, // no named subpage bit: the model reports a read or write fault instead
];

// IOTLB entry flags.
const F_NO_READ = 1 << 0;
const F_NO_WRITE = 1 << 1;
const F_SP_START_SHIFT = 2;
const F_SP_END_SHIFT = 14;
const F_CODE_SHIFT = 26;
const F_NEG = 1 << 30;

/** Walk-cache tags: the stream in bits 7:0, the table level above. */
const WALK_LEVEL_TAG = 0x100;
/** Size of a DART's register window (the kernel refuses a smaller one). */
export const DART_REGION_SIZE = 0x4000;

/** What {@link Dart.iotlbEntries} lists. */
export interface DartTlbEntry {
  readonly sid: number;
  /** DVA of the page. */
  readonly dva: number;
  /** Physical page, or -1 for a cached fault. */
  readonly pa: number;
  readonly noRead: boolean;
  readonly noWrite: boolean;
  /** For a cached fault, its code. */
  readonly fault: DartFaultCode | null;
}

/**
 * An Apple DART (IOMMU) model: the register maps of t8020/t6000/t8110, translation for
 * the DMA masters attached to its streams, and the failure modes of §1.9.
 *
 * A device access on stream `sid`: blocked unless the stream is enabled and its TCR
 * selects exactly one of translate and bypass; bypass passes the address through;
 * translate truncates the DVA to the input width (32 bits on t8020/t6000, 36 or with
 * `FOUR_LEVEL` 42 on t8110), looks the page up in the IOTLB and on a miss walks the tables
 * in memory (64-bit little-endian entries, present when bit 0 is set), checks the leaf's
 * permissions and fills the IOTLB. A fault latches `ERROR` (first one wins; t8110 marks
 * later ones `SECONDARY`), records the DVA in `ERROR_ADDR` and asserts the interrupt.
 *
 * **Invariants:** TCR and TTBR writes never flush the IOTLB; only a TLB command does, when
 * it completes; while locked (`CONFIG.LOCK` / `PROTECT` bit 0) TCR and TTBR writes are
 * ignored while table memory and invalidation keep working.
 *
 * **Errors:** `EINVAL` for bad options, an `attach` master that is not a {@link DmaPort}
 * or a stream outside the DART; `EBUSY` if the window overlaps another region.
 *
 * @example
 * ```ts
 * const dart = new Dart(soc, { name: "dart0", variant: "t8110", base: 0x2_8000_0000, irq: 10 });
 * const dma = soc.dmaMaster("nvme");
 * dma.attachIommu(dart, 1); // stream 1: blocked until the driver programs it
 * ```
 */
export class Dart extends DeviceModel implements DmaTranslator {
  readonly variant: DartVariant;
  readonly base: number;
  readonly port: MmioPort;
  readonly irqLine: number;
  readonly pageShift: number;
  readonly pageSize: number;
  readonly numStreams: number;
  /** Input address width used for truncation without `FOUR_LEVEL`. */
  readonly vaWidth: number;
  readonly paWidth: number;
  readonly bypassSupported: boolean;
  private readonly t8110: boolean;
  private readonly dart2: boolean;
  private readonly fourLevelSupported: boolean;
  private readonly vaSpan: number;
  /** 2^(g + bpl) and 2^(g + 2·bpl): the DVA spans of one level-1 and one level-0 entry. */
  private readonly l1Span: number;
  private readonly l0Span: number;
  private readonly indexMask: number;
  private readonly codeBits: readonly number[];
  private readonly tcr: Uint32Array;
  private readonly ttbr: Uint32Array;
  private readonly enable: Uint32Array;
  private readonly modes: Uint8Array;
  private readonly armed: Int8Array;
  private readonly tlb: Iotlb;
  private readonly walkCache: Iotlb | null;
  private readonly cacheFaults: boolean;
  private readonly strictSubpage: boolean;
  private readonly latchBlocked: boolean;
  private readonly latencyNs: number;
  private readonly jitterNs: number;
  private readonly irqOut: IrqSource;
  private readonly select = new Uint32Array(3);
  private readonly errorStreams = new Uint32Array(8);
  private readonly errorStreamsHoldIrq: boolean;
  private error = 0;
  private errorAddr = 0;
  private errorMask = 0;
  private config = 0;
  private protect = 0;
  private protectLocked = false;
  private busy = false;
  private lastCmd = 0;
  /** Pending command: all streams, or the bitmap / single stream below. */
  private cmdAll = false;
  private cmdMask = 0;
  private cmdSid = -1;
  /** Duration of the next stuck command: -1 none, Infinity forever. */
  private stuckNext = -1;
  private walkCode = 0;
  private walkFlags = 0;

  constructor(soc: Soc, options: DartOptions) {
    checkObject("new Dart", "options", options);
    const where = "new Dart";
    const name = checkString(where, "options.name", options.name, true);
    const variant = checkOneOf(where, "options.variant", options.variant, [
      "t8020",
      "t6000",
      "t8110",
    ] as const);
    const t8110 = variant === "t8110";
    const pageShift = checkOneOf(
      where,
      "options.pageShift",
      options.pageShift ?? 14,
      variant === "t8020" ? ([12, 14] as const) : ([14] as const),
    );
    const streams = t8110
      ? checkCount(where, "options.streams", options.streams ?? 16, 1, 256)
      : 16;
    if (!t8110 && options.streams !== undefined && options.streams !== 16) {
      throw argumentError(where, "options.streams", "16 on t8020/t6000 (fixed)", options.streams);
    }
    const vaWidth = t8110
      ? checkInteger(where, "options.vaWidth", options.vaWidth ?? 36, 32, 42)
      : 32;
    const paWidth = t8110
      ? checkInteger(where, "options.paWidth", options.paWidth ?? 42, 36, 42)
      : variant === "t8020"
        ? 36
        : 42;
    const bypass = checkBoolean(where, "options.bypass", options.bypass ?? true);
    const entries = checkCount(
      where,
      "options.iotlbEntries",
      options.iotlbEntries ?? 64,
      1,
      1 << 16,
    );
    const cacheTables = checkBoolean(where, "options.cacheTables", options.cacheTables ?? false);
    const cacheFaults = checkBoolean(where, "options.cacheFaults", options.cacheFaults ?? false);
    const latency = checkInteger(
      where,
      "options.commandLatencyNs",
      options.commandLatencyNs ?? 0,
      0,
      1e15,
    );
    const jitter = checkInteger(
      where,
      "options.commandJitterNs",
      options.commandJitterNs ?? 0,
      0,
      0xffff_ffff,
    );
    const latchBlocked = checkBoolean(where, "options.latchBlocked", options.latchBlocked ?? false);
    const strict = checkBoolean(where, "options.strictSubpage", options.strictSubpage ?? false);
    const hold = checkBoolean(
      where,
      "options.errorStreamsHoldIrq",
      options.errorStreamsHoldIrq ?? false,
    );
    if (hold && variant !== "t8110") {
      throw argumentError(
        where,
        "options.errorStreamsHoldIrq",
        "false on t8020/t6000 (no ERROR_STREAMS)",
        hold,
      );
    }
    checkInteger(where, "options.base", options.base, 0, 2 ** 52 - DART_REGION_SIZE);
    checkInteger(where, "options.irq", options.irq, 0, soc.irq.lines - 1);
    soc.fabric.checkFree(name, options.base, DART_REGION_SIZE);
    super(soc, name, "dart");
    this.variant = variant;
    this.base = options.base;
    this.irqLine = options.irq;
    this.pageShift = pageShift;
    this.pageSize = 2 ** pageShift;
    this.numStreams = streams;
    this.vaWidth = vaWidth;
    this.paWidth = paWidth;
    this.bypassSupported = bypass;
    this.t8110 = t8110;
    this.dart2 = variant !== "t8020";
    this.fourLevelSupported = t8110 && vaWidth > 36;
    this.vaSpan = 2 ** (t8110 ? Math.min(vaWidth, 36) : 32);
    this.l1Span = 2 ** (pageShift + (pageShift - 3));
    this.l0Span = 2 ** (pageShift + 2 * (pageShift - 3));
    this.indexMask = (1 << (pageShift - 3)) - 1;
    this.codeBits = t8110 ? T8110_BITS : T8020_BITS;
    this.tcr = new Uint32Array(streams);
    this.ttbr = new Uint32Array(streams * (t8110 ? 1 : 4));
    this.enable = new Uint32Array(8);
    this.modes = new Uint8Array(streams);
    this.armed = new Int8Array(streams).fill(-1);
    this.tlb = new Iotlb(entries);
    this.walkCache = cacheTables ? new Iotlb(entries) : null;
    this.cacheFaults = cacheFaults;
    this.strictSubpage = strict;
    this.errorStreamsHoldIrq = hold;
    this.latchBlocked = latchBlocked;
    this.latencyNs = latency;
    this.jitterNs = jitter;
    this.irqOut = this.addIrq(options.irq);
    this.port = this.addPort(name, DART_REGION_SIZE, {
      mmioRead: (offset, width) => this.#mmioRead(offset, width),
      mmioWrite: (offset, width, value) => this.#mmioWrite(offset, width, value),
    });
    soc.fabric.map(options.base, this.port, name);
  }

  /** Whether an error is latched (`ERROR.FLAG`). */
  get errorLatched(): boolean {
    return (this.error & DART_ERROR_FLAG) !== 0;
  }

  /** Whether a TLB command is running (BUSY). */
  get commandBusy(): boolean {
    return this.busy;
  }

  /** Whether TCR/TTBR writes are ignored (`CONFIG.LOCK` or `PROTECT_TTBR_TCR`). */
  get locked(): boolean {
    return this.t8110
      ? (this.protect & R110.PROTECT_TTBR_TCR) !== 0
      : (this.config & R20.CONFIG_LOCK) !== 0;
  }

  /** Routes `master`'s transfers through stream `sid` of this DART. */
  attach(master: DmaPort, sid: number): void {
    checkInstance("Dart.attach", "master", master, DmaPort);
    checkInteger("Dart.attach", "sid", sid, 0, this.numStreams - 1);
    master.attachIommu(this, sid);
  }

  /** The IOTLB's entries, most recent first. */
  iotlbEntries(): DartTlbEntry[] {
    return this.tlb.entries().map((e) => {
      const page = e.n;
      const neg = (e.flags & F_NEG) !== 0;
      return {
        sid: e.sid,
        dva: page * this.pageSize,
        pa: neg ? -1 : e.value,
        noRead: (e.flags & F_NO_READ) !== 0,
        noWrite: (e.flags & F_NO_WRITE) !== 0,
        fault: neg ? (CODE_NAMES[(e.flags >>> F_CODE_SHIFT) & 7] ?? "no-pte") : null,
      };
    });
  }

  // ---------------------------------------------------------------- translation

  /**
   * The physical address of `dva` on stream `sid` (walking and filling the IOTLB on a
   * miss), or `XLATE_FAULT` (latched and traced) or `XLATE_BLOCKED`: what a DMA master
   * behind this DART calls for every transfer.
   *
   * **Errors:** `EINVAL` for a `sid` or `dva` that is not a number, or a negative `dva`
   * (a stream number outside the DART is refused as the hardware does, not thrown).
   */
  translate(sid: number, dva: number, write: boolean): number {
    if (typeof sid !== "number" || typeof dva !== "number" || !(dva >= 0))
      this.#badTranslate(sid, dva);
    if (!(sid >= 0 && sid < this.numStreams) || this.gone) return this.#refuse(sid, dva);
    const mode = this.modes[sid]!;
    if (mode === M_BYPASS) return dva;
    if (mode === M_BLOCKED) return this.#refuse(sid, dva);
    const va = dva % (mode === M_TRANSLATE4 ? 0x400_0000_0000 : this.vaSpan);
    if (this.armed[sid] !== -1) return this.#fireArmed(sid, va);
    const page = Math.floor(va / this.pageSize);
    const tlb = this.tlb;
    const slot = tlb.lookup(sid, page);
    if (slot >= 0) {
      const f = tlb.flags[slot]!;
      const pa = tlb.values[slot]!;
      if ((f & (write ? F_NO_WRITE | F_NEG : F_NO_READ | F_NEG)) === 0 && !this.strictSubpage) {
        return pa + (va - page * this.pageSize);
      }
      return this.#check(sid, va, page, f, pa, write);
    }
    return this.#miss(sid, va, page, write, mode);
  }

  #miss(sid: number, va: number, page: number, write: boolean, mode: number): number {
    const pa = this.#walk(sid, va, mode);
    const tracer = this.soc.tracer;
    if (pa < 0) {
      if (this.cacheFaults) {
        const flags = F_NEG | (this.walkCode << F_CODE_SHIFT);
        this.tlb.insert(sid, page, -1, flags);
        if (tracer.enabled) tracer.iotlb(this.traceId, "fill", sid, page * this.pageSize, -1, 1);
      }
      return this.#fault(sid, va, this.walkCode, write);
    }
    this.tlb.insert(sid, page, pa, this.walkFlags);
    if (tracer.enabled) tracer.iotlb(this.traceId, "fill", sid, page * this.pageSize, pa, 1);
    return this.#check(sid, va, page, this.walkFlags, pa, write);
  }

  #check(sid: number, va: number, page: number, f: number, pa: number, write: boolean): number {
    if ((f & F_NEG) !== 0) return this.#fault(sid, va, (f >>> F_CODE_SHIFT) & 7, write);
    if ((f & (write ? F_NO_WRITE : F_NO_READ)) !== 0) {
      return this.#fault(sid, va, write ? C_WRITE : C_READ, write);
    }
    const off = va - page * this.pageSize;
    if (this.strictSubpage) {
      // 4096 subpage steps per page: 4 bytes on a 16 KiB page, 1 byte on a 4 KiB one.
      const idx = Math.floor(off / (this.pageSize / 4096));
      const start = (f >>> F_SP_START_SHIFT) & 0xfff;
      const end = (f >>> F_SP_END_SHIFT) & 0xfff;
      if (idx < start || idx > end) return this.#fault(sid, va, C_SUBPAGE, write);
    }
    return pa + off;
  }

  /**
   * Walks the tables for `va`: the physical page, or -1 with `walkCode` set. Sets
   * `walkFlags` for the leaf. Each table is one DART page of 64-bit LE entries.
   */
  #walk(sid: number, va: number, mode: number): number {
    const mem = this.soc.memory;
    const mask = this.indexMask;
    let table: number;
    if (this.t8110) {
      const reg = this.ttbr[sid]!;
      if ((reg & R110.TTBR_VALID) === 0) return this.#walkFail(C_NO_TTBR);
      table = ((reg >>> R110.TTBR_ADDR_SHIFT) & R110.TTBR_ADDR_MASK) * 2 ** R110.TTBR_SHIFT;
    } else {
      // The index above the top table selects one of four TTBRs (4 KiB pages, 32-bit DVA).
      const idx = Math.floor(va / this.l0Span) & 3;
      const reg = this.ttbr[sid * 4 + idx]!;
      if ((reg & R20.TTBR_VALID) === 0) return this.#walkFail(C_NO_TTBR);
      table = ((reg & R20.TTBR_ADDR_MASK) >>> 0) * 2 ** R20.TTBR_SHIFT;
    }
    if (mode === M_TRANSLATE4) {
      table = this.#tableStep(sid, 0, table, Math.floor(va / this.l0Span), mask, C_NO_PGD);
      if (table < 0) return -1;
    }
    table = this.#tableStep(sid, 1, table, Math.floor(va / this.l1Span), mask, C_NO_PMD);
    if (table < 0) return -1;
    const at = table + (Math.floor(va / this.pageSize) & mask) * 8;
    const lo = mem.read64Lo(at);
    if ((lo & DART_PTE.VALID) === 0) return this.#walkFail(C_NO_PTE);
    const hi = mem.read64Hi(at);
    let flags: number;
    if (this.dart2) {
      flags =
        ((lo & DART_PTE.DART2_NO_READ) !== 0 ? F_NO_READ : 0) |
        ((lo & DART_PTE.DART2_NO_WRITE) !== 0 ? F_NO_WRITE : 0);
    } else {
      flags =
        ((lo & DART_PTE.DART1_NO_READ) !== 0 ? F_NO_READ : 0) |
        ((lo & DART_PTE.DART1_NO_WRITE) !== 0 ? F_NO_WRITE : 0);
    }
    // SUBPAGE_END is bits 51:40, SUBPAGE_START bits 63:52 of the entry.
    flags |= (((hi >>> 20) & 0xfff) << F_SP_START_SHIFT) | (((hi >>> 8) & 0xfff) << F_SP_END_SHIFT);
    this.walkFlags = flags;
    return this.#decode(lo, hi);
  }

  /** Reads the table entry at `index & mask` of `table` (or the walk cache): the next table, or -1. */
  #tableStep(
    sid: number,
    level: number,
    table: number,
    prefix: number,
    mask: number,
    code: number,
  ): number {
    const cache = this.walkCache;
    const tag = sid + WALK_LEVEL_TAG * level;
    if (cache !== null) {
      const slot = cache.lookup(tag, prefix);
      if (slot >= 0) return cache.values[slot]!;
    }
    const at = table + (prefix & mask) * 8;
    const lo = this.soc.memory.read64Lo(at);
    if ((lo & DART_PTE.VALID) === 0) return this.#walkFail(code);
    const next = this.#decode(lo, this.soc.memory.read64Hi(at));
    cache?.insert(tag, prefix, next, 0);
    return next;
  }

  /** Output address of an entry: DART1 bits 35:12 in place; DART2 bits 37:10 shifted left 4. */
  #decode(lo: number, hi: number): number {
    if (this.dart2) return (((lo & 0xffff_fc00) >>> 0) + (hi & 0x3f) * 0x1_0000_0000) * 16;
    return ((lo & 0xffff_f000) >>> 0) + (hi & 0xf) * 0x1_0000_0000;
  }

  #walkFail(code: number): number {
    this.walkCode = code;
    return -1;
  }

  #badTranslate(sid: unknown, dva: unknown): never {
    if (typeof sid !== "number") {
      throw argumentError(`${this.name}.translate`, "sid", "a stream number", sid);
    }
    throw argumentError(`${this.name}.translate`, "dva", "a device address (a number ≥ 0)", dva);
  }

  #refuse(sid: number, dva: number): number {
    const tracer = this.soc.tracer;
    if (tracer.enabled) tracer.fault(this.traceId, "dart-blocked", sid, dva);
    if (this.latchBlocked && !this.gone && sid >= 0 && sid < this.numStreams) {
      this.#latch(sid, C_NO_TTBR, dva % this.vaSpan);
    }
    return XLATE_BLOCKED;
  }

  #fireArmed(sid: number, va: number): number {
    const code = this.armed[sid]!;
    this.armed[sid] = -1;
    return this.#fault(sid, va, code, false);
  }

  #fault(sid: number, va: number, code: number, write: boolean): number {
    // t8110 has no subpage code bit: report the access's own permission fault.
    if (code === C_SUBPAGE && this.t8110) code = write ? C_WRITE : C_READ;
    const tracer = this.soc.tracer;
    if (tracer.enabled) {
      tracer.fault(
        this.traceId,
        `dart-${code === C_SUBPAGE ? "subpage-fault" : CODE_NAMES[code]}`,
        sid,
        va,
      );
    }
    this.#latch(sid, code, va);
    return XLATE_FAULT;
  }

  /** Latches `FLAG | STREAM | one code bit` and the DVA, unless masked or already latched. */
  #latch(sid: number, code: number, va: number): void {
    const bit = this.codeBits[code]!;
    if (this.t8110 && (this.errorMask & bit) !== 0) return;
    if (this.t8110)
      this.errorStreams[sid >>> 5] = (this.errorStreams[sid >>> 5]! | (1 << (sid & 31))) >>> 0;
    if ((this.error & DART_ERROR_FLAG) !== 0) {
      if (this.t8110) this.error |= R110.ERROR_SECONDARY;
      return;
    }
    this.error = this.t8110
      ? (DART_ERROR_FLAG | ((sid & R110.ERROR_STREAM_MASK) << R110.ERROR_STREAM_SHIFT) | bit) >>> 0
      : (DART_ERROR_FLAG | ((sid & R20.ERROR_STREAM_MASK) << R20.ERROR_STREAM_SHIFT) | bit) >>> 0;
    this.errorAddr = va;
    this.irqOut.raise();
  }

  #updateMode(sid: number): void {
    const tcr = this.tcr[sid]!;
    const enabled = ((this.enable[sid >>> 5]! >>> (sid & 31)) & 1) === 1;
    let translate: boolean;
    let bypass: boolean;
    let four = false;
    if (this.t8110) {
      translate = (tcr & R110.TCR_TRANSLATE_ENABLE) !== 0;
      bypass = (tcr & R110.TCR_BYPASS_DART) !== 0;
      four = (tcr & R110.TCR_FOUR_LEVEL) !== 0;
    } else {
      translate = (tcr & R20.TCR_TRANSLATE_ENABLE) !== 0;
      bypass = (tcr & R20.TCR_BYPASS_DART) !== 0;
    }
    let mode = M_BLOCKED;
    if (enabled && translate && !bypass) mode = four ? M_TRANSLATE4 : M_TRANSLATE;
    else if (enabled && bypass && !translate) mode = M_BYPASS;
    this.modes[sid] = mode;
  }

  // ---------------------------------------------------------------- registers

  #mmioRead(offset: number, width: MmioWidth): number {
    const word = this.t8110 ? this.#read8110(offset & ~3) : this.#read8020(offset & ~3);
    if (width === 4) return word;
    const shift = (offset & 3) * 8;
    return (word >>> shift) & (width === 1 ? 0xff : 0xffff);
  }

  #mmioWrite(offset: number, width: MmioWidth, value: number): void {
    if (width !== 4) {
      // The kernel and m1n1 only use 32-bit accesses; a narrow write has no defined effect.
      this.soc.tracer.fault(this.traceId, "dart-narrow-write", offset, value);
      return;
    }
    if (this.t8110) this.#write8110(offset, value);
    else this.#write8020(offset, value);
  }

  #params1(): number {
    return (this.pageShift << DART_PARAMS1_PAGE_SHIFT) >>> 0;
  }

  #read8020(off: number): number {
    if (off >= R20.TCR && off < R20.TCR + 4 * this.numStreams)
      return this.tcr[(off - R20.TCR) >>> 2]!;
    if (off >= R20.TTBR && off < R20.TTBR + 16 * this.numStreams)
      return this.ttbr[(off - R20.TTBR) >>> 2]!;
    switch (off) {
      case DART_PARAMS1:
        return this.#params1();
      case DART_PARAMS2:
        return this.bypassSupported ? DART_PARAMS2_BYPASS_SUPPORT : 0;
      case R20.STREAM_COMMAND:
        return this.busy ? R20.STREAM_COMMAND_BUSY : 0;
      case R20.STREAM_SELECT:
      case R20.STREAM_SELECT + 4:
      case R20.STREAM_SELECT + 8:
        return this.select[(off - R20.STREAM_SELECT) >>> 2]!;
      case R20.ERROR:
        return this.error;
      case R20.ERROR_ADDR_LO:
        return this.errorAddr % 0x1_0000_0000;
      case R20.ERROR_ADDR_HI:
        return Math.floor(this.errorAddr / 0x1_0000_0000);
      case R20.CONFIG:
        return this.config;
      case R20.STREAMS_ENABLE:
        return this.enable[0]!;
      default:
        return 0;
    }
  }

  #write8020(off: number, value: number): void {
    if (off >= R20.TCR && off < R20.TCR + 4 * this.numStreams) {
      const sid = (off - R20.TCR) >>> 2;
      if (this.#lockedWrite(off, value)) return;
      const writable =
        R20.TCR_TRANSLATE_ENABLE |
        (this.bypassSupported ? R20.TCR_BYPASS_DART | R20.TCR_BYPASS_DAPF : 0);
      this.tcr[sid] = value & writable;
      this.#updateMode(sid);
      return;
    }
    if (off >= R20.TTBR && off < R20.TTBR + 16 * this.numStreams) {
      if (this.#lockedWrite(off, value)) return;
      this.ttbr[(off - R20.TTBR) >>> 2] = value;
      return;
    }
    switch (off) {
      case R20.STREAM_COMMAND:
        if ((value & R20.STREAM_COMMAND_INVALIDATE) !== 0) {
          this.#startCommand(false, this.select[0]! & 0xffff, -1);
        }
        return;
      case R20.STREAM_SELECT:
        this.select[0] = value & 0xffff;
        return;
      case R20.STREAM_SELECT + 4:
      case R20.STREAM_SELECT + 8:
        return; // no streams there with 16 streams
      case R20.ERROR:
        this.#clearError(value);
        return;
      case R20.CONFIG:
        // LOCK is sticky until reset: once set, writes cannot clear it.
        this.config = (value | (this.config & R20.CONFIG_LOCK)) >>> 0;
        return;
      case R20.STREAMS_ENABLE:
        this.enable[0] = value & 0xffff;
        for (let sid = 0; sid < this.numStreams; sid++) this.#updateMode(sid);
        return;
      default:
        return;
    }
  }

  #read8110(off: number): number {
    if (off >= R110.TCR && off < R110.TCR + 4 * this.numStreams)
      return this.tcr[(off - R110.TCR) >>> 2]!;
    if (off >= R110.TTBR && off < R110.TTBR + 4 * this.numStreams)
      return this.ttbr[(off - R110.TTBR) >>> 2]!;
    if (off >= R110.ENABLE_STREAMS && off < R110.ENABLE_STREAMS + 32) {
      return this.enable[(off - R110.ENABLE_STREAMS) >>> 2]!;
    }
    if (off >= R110.ERROR_STREAMS && off < R110.ERROR_STREAMS + 32) {
      return this.errorStreams[(off - R110.ERROR_STREAMS) >>> 2]!;
    }
    switch (off) {
      case DART_PARAMS1:
        return this.#params1();
      case DART_PARAMS2:
        return this.bypassSupported ? DART_PARAMS2_BYPASS_SUPPORT : 0;
      case R110.PARAMS3:
        return (
          ((this.paWidth << R110.PARAMS3_PA_WIDTH_SHIFT) |
            (this.vaWidth << R110.PARAMS3_VA_WIDTH_SHIFT) |
            0x0100) >>>
          0
        );
      case R110.PARAMS4:
        return ((1 << R110.PARAMS4_NUM_CLIENTS_SHIFT) | this.numStreams) >>> 0;
      case R110.TLB_CMD:
        return ((this.busy ? R110.TLB_CMD_BUSY : 0) | this.lastCmd) >>> 0;
      case R110.ERROR:
        return this.error;
      case R110.ERROR_MASK:
        return this.errorMask;
      case R110.ERROR_ADDR_LO:
        return this.errorAddr % 0x1_0000_0000;
      case R110.ERROR_ADDR_HI:
        return Math.floor(this.errorAddr / 0x1_0000_0000);
      case R110.PROTECT:
        return this.protect;
      case R110.PROTECT_LOCK:
        return this.protectLocked ? 1 : 0;
      default:
        return 0;
    }
  }

  #write8110(off: number, value: number): void {
    if (off >= R110.TCR && off < R110.TCR + 4 * this.numStreams) {
      const sid = (off - R110.TCR) >>> 2;
      if (this.#lockedWrite(off, value)) return;
      let writable: number = R110.TCR_TRANSLATE_ENABLE | R110.TCR_REMAP_EN | R110.TCR_REMAP_MASK;
      if (this.bypassSupported) writable |= R110.TCR_BYPASS_DART | R110.TCR_BYPASS_DAPF;
      if (this.fourLevelSupported) writable |= R110.TCR_FOUR_LEVEL;
      this.tcr[sid] = value & writable;
      this.#updateMode(sid);
      return;
    }
    if (off >= R110.TTBR && off < R110.TTBR + 4 * this.numStreams) {
      if (this.#lockedWrite(off, value)) return;
      this.ttbr[(off - R110.TTBR) >>> 2] =
        (value & (R110.TTBR_VALID | (R110.TTBR_ADDR_MASK << R110.TTBR_ADDR_SHIFT))) >>> 0;
      return;
    }
    if (off >= R110.ENABLE_STREAMS && off < R110.ENABLE_STREAMS + 32) {
      const w = (off - R110.ENABLE_STREAMS) >>> 2;
      this.enable[w] = (this.enable[w]! | value) & this.#wordMask(w);
      this.#updateModes(w);
      return;
    }
    if (off >= R110.ERROR_STREAMS && off < R110.ERROR_STREAMS + 32) {
      const w = (off - R110.ERROR_STREAMS) >>> 2;
      this.errorStreams[w] = (this.errorStreams[w]! & ~value) >>> 0;
      this.#updateIrq();
      return;
    }
    if (off >= R110.DISABLE_STREAMS && off < R110.DISABLE_STREAMS + 32) {
      const w = (off - R110.DISABLE_STREAMS) >>> 2;
      this.enable[w] = this.enable[w]! & ~value;
      this.#updateModes(w);
      return;
    }
    switch (off) {
      case R110.TLB_CMD: {
        const op = (value >>> R110.TLB_CMD_OP_SHIFT) & R110.TLB_CMD_OP_MASK;
        const sid = value & R110.TLB_CMD_STREAM_MASK;
        if (this.busy) {
          this.soc.tracer.fault(this.traceId, "dart-command-while-busy", value);
          return;
        }
        this.lastCmd = value & 0x7ff;
        if (op === R110.TLB_CMD_OP_FLUSH_ALL) this.#startCommand(true, 0, -1);
        else if (op === R110.TLB_CMD_OP_FLUSH_SID) this.#startCommand(false, 0, sid);
        else this.soc.tracer.fault(this.traceId, "dart-unsupported-tlb-op", op);
        return;
      }
      case R110.ERROR:
        this.#clearError(value);
        return;
      case R110.ERROR_MASK:
        this.errorMask = value & R110.ERROR_CODE_MASK;
        return;
      case R110.PROTECT:
        this.protect = (this.protect | value) >>> 0;
        return;
      case R110.UNPROTECT:
        if (this.protectLocked)
          this.soc.tracer.fault(this.traceId, "dart-locked-write", off, value);
        else this.protect = (this.protect & ~value) >>> 0;
        return;
      case R110.PROTECT_LOCK:
        if (value !== 0) this.protectLocked = true;
        return;
      default:
        return;
    }
  }

  #wordMask(w: number): number {
    const first = w * 32;
    if (first >= this.numStreams) return 0;
    const n = this.numStreams - first;
    return n >= 32 ? 0xffff_ffff : (1 << n) - 1;
  }

  #updateModes(w: number): void {
    const end = Math.min(this.numStreams, (w + 1) * 32);
    for (let sid = w * 32; sid < end; sid++) this.#updateMode(sid);
  }

  #lockedWrite(off: number, value: number): boolean {
    if (!this.locked) return false;
    this.soc.tracer.fault(this.traceId, "dart-locked-write", off, value);
    return true;
  }

  #clearError(value: number): void {
    this.error = (this.error & ~value) >>> 0;
    this.#updateIrq();
  }

  /** The line follows `ERROR.FLAG` (and, on t602x-like DARTs, the stream error bits). */
  #updateIrq(): void {
    let on = (this.error & DART_ERROR_FLAG) !== 0;
    if (!on && this.errorStreamsHoldIrq) on = this.errorStreams.some((w) => w !== 0);
    this.irqOut.set(on);
  }

  // ---------------------------------------------------------------- commands

  #startCommand(all: boolean, mask: number, sid: number): void {
    if (this.busy) {
      this.soc.tracer.fault(this.traceId, "dart-command-while-busy", mask, sid);
      return;
    }
    this.cmdAll = all;
    this.cmdMask = mask;
    this.cmdSid = sid;
    let delay = this.latencyNs + (this.jitterNs > 0 ? this.soc.random.below(this.jitterNs + 1) : 0);
    if (this.stuckNext !== -1) {
      delay = this.stuckNext;
      this.stuckNext = -1;
      this.soc.tracer.fault(
        this.traceId,
        "dart-command-stuck",
        delay === Number.POSITIVE_INFINITY ? -1 : delay,
      );
    }
    if (delay === 0) {
      this.#completeCommand();
      return;
    }
    this.busy = true;
    if (delay !== Number.POSITIVE_INFINITY)
      this.soc.events.after(delay, () => this.#completeCommand());
  }

  #completeCommand(): void {
    this.busy = false;
    if (this.gone) return;
    const tracer = this.soc.tracer;
    if (this.cmdAll) {
      const n = this.tlb.clear() + (this.walkCache?.clear() ?? 0);
      if (tracer.enabled) tracer.iotlb(this.traceId, "flush", -1, 0, 0, n);
      return;
    }
    for (let sid = 0; sid < this.numStreams; sid++) {
      const hit = this.cmdSid === -1 ? ((this.cmdMask >>> sid) & 1) === 1 : sid === this.cmdSid;
      if (!hit) continue;
      const n = this.tlb.flushSid(sid) + (this.walkCache?.flushSid(sid) ?? 0);
      if (tracer.enabled) tracer.iotlb(this.traceId, "flush", sid, 0, 0, n);
    }
  }

  // ---------------------------------------------------------------- faults

  override prepareFault(spec: FaultSpec): (() => void) | null {
    checkObject(`${this.name}.prepareFault`, "spec", spec);
    switch (spec.kind) {
      case "iommu-fault": {
        const where = "iommu-fault fault";
        const sid = checkInteger(where, "sid", spec.sid, 0, this.numStreams - 1);
        const allowed = this.t8110 ? CODE_NAMES : CODE_NAMES.filter((c) => c !== "no-pgd");
        const code = CODE_NAMES.indexOf(checkOneOf(where, "code", spec.code ?? "no-pte", allowed));
        const dva = checkInteger(where, "dva", spec.dva ?? 0, 0, Number.MAX_SAFE_INTEGER);
        const next = checkBoolean(where, "next", spec.next ?? false);
        return () => {
          if (next) this.armed[sid] = code;
          else this.#fault(sid, dva, code, false);
        };
      }
      case "stuck-command": {
        const d = spec.durationNs;
        const duration =
          d === undefined
            ? Number.POSITIVE_INFINITY
            : checkInteger("stuck-command fault", "durationNs", d, 1, Number.MAX_SAFE_INTEGER);
        return () => {
          this.stuckNext = duration;
        };
      }
      default:
        return super.prepareFault(spec);
    }
  }
}
