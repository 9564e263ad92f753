//! C source: drivers/iommu/apple-dart.c (struct apple_dart; apple_dart_hw_* register
//! sequences, the TLB command with its busy wait, apple_dart_hw_reset, the fault handlers)
//!
//! One bound DART: what probe read from PARAMS, the mapped registers, which domain each
//! stream translates through, and the register sequences of §1.8 of
//! specs/sim-hardware.md. IOMMU-core callbacks reach the registers through the binding's
//! `Devres` (`tryAccess`): after unbind they find nothing and touch no hardware.

import { type Device, Devres, Machine, MmioRegion } from "@devref/device-core";
import {
  IOMMU_FAULT_READ,
  IOMMU_FAULT_WRITE,
  type IommuDevice,
  reportIommuFault,
} from "@devref/dma-iommu";
import {
  type ARef,
  argumentError,
  checkCallback,
  checkInstance,
  checkInteger,
  checkObject,
  checkString,
  DevrefError,
  formatAddr,
  iova,
} from "@devref/raw-device";
import type { DartDomain } from "./domain.js";
import { type DartFault, decodeDartError } from "./fault.js";
import {
  DART_MAX_STREAMS,
  DART_PARAMS1,
  DART_PARAMS1_PAGE_SHIFT_MASK,
  DART_PARAMS1_PAGE_SHIFT_SHIFT,
  DART_PARAMS2,
  DART_PARAMS2_BYPASS_SUPPORT,
  DART_STREAM_COMMAND_BUSY_TIMEOUT,
  DART_T8020_STREAM_COMMAND,
  DART_T8020_STREAM_COMMAND_BUSY,
  DART_T8020_STREAM_COMMAND_INVALIDATE,
  DART_T8020_STREAM_SELECT,
  DART_T8110_ERROR_MASK,
  DART_T8110_ERROR_STREAMS,
  DART_T8110_PARAMS3,
  DART_T8110_PARAMS4,
  DART_T8110_TLB_CMD,
  DART_T8110_TLB_CMD_BUSY,
  DART_T8110_TLB_CMD_OP_FLUSH_SID,
  type DartHw,
  type DartType,
  dartTtbrValue,
} from "./hw.js";

/** What an all-ones read means: the registers are gone (the DART was pulled). */
const ALL_ONES = 0xffff_ffff;
/** Stream bitmaps are this many 32-bit words (256 streams). */
export const STREAM_WORDS: number = DART_MAX_STREAMS / 32;
/** How many decoded faults a DART keeps for inspection. */
const FAULT_HISTORY = 64;

/**
 * What probe read from the DART (PARAMS1..4) and derived from it.
 *
 * **Invariants:** `pgsize` is 4 KiB or 16 KiB; `numStreams ≤ 256`; `forceBypass` exactly when
 * the DART page is larger than the CPU page; `fourLevel` only on T8110 with `ias > 36`.
 *
 * @example
 * ```ts
 * darts.dart("dart0")?.params; // { type: "t8110", pgsize: 16384, numStreams: 16, ias: 36, oas: 42, ... }
 * ```
 */
export interface DartParams {
  readonly type: DartType;
  readonly pgsize: number;
  readonly numStreams: number;
  readonly ias: number;
  readonly oas: number;
  readonly supportsBypass: boolean;
  readonly forceBypass: boolean;
  readonly fourLevel: boolean;
}

/**
 * Counters a test or a tool reads to see what the driver did.
 *
 * **Invariants:** they only grow; `faultsHandled ≤ faults`.
 *
 * @example
 * ```ts
 * dart.stats.timeouts; // TLB commands given up on after their 100 polls
 * ```
 */
export interface DartStats {
  /** TLB invalidations started (one per domain flush, whatever the variant). */
  invalidations: number;
  /** Of those, how many were `flush_iotlb_all` (a flush queue's flush). */
  flushAll: number;
  /** TLB commands whose busy bit did not clear in time. */
  timeouts: number;
  /** Faults taken by the interrupt handler. */
  faults: number;
  /** Of those, how many reached a domain's fault handler (`reportIommuFault` returned 0). */
  faultsHandled: number;
}

/**
 * Reads PARAMS the way `apple_dart_probe` does, for variant `hw`.
 *
 * **Errors:** `ENODEV` if the registers read all-ones (no DART there); `EINVAL` for a page
 * size other than 4 KiB or 16 KiB, or more than 256 streams ("Too many streams").
 *
 * @example
 * ```ts
 * readDartParams(DART_HW_T8110, (off) => regs.read32(off), 16384).numStreams; // 16
 * ```
 */
export function readDartParams(
  hw: DartHw,
  read32: (offset: number) => number,
  hostPageSize: number,
): DartParams {
  const where = "readDartParams";
  checkObject(where, "hw", hw);
  checkCallback(where, "read32", read32);
  checkInteger(where, "hostPageSize", hostPageSize, 1, 2 ** 30);
  const p1 = read32(DART_PARAMS1);
  const p2 = read32(DART_PARAMS2);
  if (p1 === ALL_ONES && p2 === ALL_ONES) {
    throw new DevrefError("ENODEV", "DART registers read all-ones: the DART is not there");
  }
  const shift = (p1 >>> DART_PARAMS1_PAGE_SHIFT_SHIFT) & DART_PARAMS1_PAGE_SHIFT_MASK;
  if (shift !== 12 && shift !== 14) {
    throw new DevrefError(
      "EINVAL",
      `PARAMS1 gives a page size of 2^${shift} bytes; DART page tables exist for 4 KiB and 16 KiB pages only`,
    );
  }
  let ias = hw.ias;
  let oas = hw.oas;
  let numStreams = hw.maxSidCount;
  if (hw.type === "t8110") {
    const p3 = read32(DART_T8110_PARAMS3);
    const p4 = read32(DART_T8110_PARAMS4);
    ias = (p3 >>> 16) & 0x3f;
    oas = (p3 >>> 24) & 0x3f;
    numStreams = p4 & 0x1ff;
  }
  if (numStreams > DART_MAX_STREAMS) {
    throw new DevrefError("EINVAL", `Too many streams (${numStreams} > ${DART_MAX_STREAMS})`);
  }
  const pgsize = 2 ** shift;
  return {
    type: hw.type,
    pgsize,
    numStreams,
    ias,
    oas,
    supportsBypass: (p2 & DART_PARAMS2_BYPASS_SUPPORT) !== 0,
    forceBypass: pgsize > hostPageSize,
    fourLevel: hw.type === "t8110" && ias > 36,
  };
}

/** What one stream is set to. */
const MODE_DISABLED = 0;
const MODE_BYPASS = 1;
const MODE_TRANSLATE = 2;

/**
 * A bound DART (`struct apple_dart`): its parameters, registers, stream ownership and the
 * hardware sequences every other part of the driver uses.
 *
 * **Invariants:** each stream belongs to at most one paging domain (`owner`), and a domain's
 * stream bitmap lists exactly the streams it owns; no register is touched once the binding
 * is gone (`regs.tryAccess()` is undefined).
 *
 * **Errors:** the command paths never throw: a stuck command is logged and counted, and the
 * error is kept in {@link AppleDart.lastCommandError}, as the kernel's callers ignore it.
 * {@link AppleDart.reset} throws (`EINVAL` locked, `ENODEV` gone, `ETIMEDOUT`).
 *
 * @example
 * ```ts
 * const dart = darts.dart("dart0")!;
 * dart.streamMode(2); // "translate": a DMA domain is attached to the engine's stream
 * dart.domainOf(2)?.streams(); // [2]
 * dart.faults.at(-1)?.name; // "NO PTE FOR IOVA"
 * ```
 */
export class AppleDart {
  /** The DART's device name (`dart0`): the name masters give in `iommus`. */
  readonly name: string;
  readonly hw: DartHw;
  readonly params: DartParams;
  /** What the driver did so far (read-only for everyone but the driver). */
  readonly stats: Readonly<DartStats>;
  /** @internal The IOMMU registered for this DART (set by probe once registered). */
  iommu: IommuDevice | null = null;
  private readonly counters: DartStats = {
    invalidations: 0,
    flushAll: 0,
    timeouts: 0,
    faults: 0,
    faultsHandled: 0,
  };
  private readonly history: DartFault[] = [];
  private commandError: DevrefError | null = null;
  private readonly machine: Machine;
  private readonly regs: Devres<MmioRegion>;
  private readonly owner: (DartDomain | null)[];
  private readonly mode: Uint8Array;
  /** Which client last claimed each stream (for the device a fault is reported against). */
  private readonly client: (string | null)[];
  private readonly scratch = new Uint32Array(STREAM_WORDS);

  /** @internal Made by the driver's probe. */
  constructor(
    name: string,
    machine: Machine,
    hw: DartHw,
    params: DartParams,
    regs: Devres<MmioRegion>,
  ) {
    const where = "new AppleDart";
    checkString(where, "name", name, true);
    checkInstance(where, "machine", machine, Machine);
    checkObject(where, "hw", hw);
    checkObject(where, "params", params);
    checkInteger(where, "params.numStreams", params.numStreams, 0, DART_MAX_STREAMS);
    checkInstance(where, "regs", regs, Devres);
    this.name = name;
    this.machine = machine;
    this.hw = hw;
    this.params = params;
    this.regs = regs;
    this.owner = new Array<DartDomain | null>(params.numStreams).fill(null);
    this.mode = new Uint8Array(params.numStreams);
    this.client = new Array<string | null>(params.numStreams).fill(null);
    this.stats = this.counters;
  }

  /** The last faults decoded, oldest first (at most 64). */
  get faults(): readonly DartFault[] {
    return this.history;
  }

  /** The error of the last TLB command that failed (`ETIMEDOUT`, `ENODEV`), or null. */
  get lastCommandError(): DevrefError | null {
    return this.commandError;
  }

  /**
   * The paging domain stream `sid` translates through, or null.
   *
   * **Errors:** `EINVAL` for a stream the DART does not have.
   */
  domainOf(sid: number): DartDomain | null {
    this.checkSids("AppleDart.domainOf", [sid]);
    return this.owner[sid] ?? null;
  }

  /**
   * What stream `sid` is set to: `disabled`, `bypass` or `translate`.
   *
   * **Errors:** `EINVAL` for a stream the DART does not have.
   */
  streamMode(sid: number): "disabled" | "bypass" | "translate" {
    this.checkSids("AppleDart.streamMode", [sid]);
    const m = this.mode[sid];
    return m === MODE_BYPASS ? "bypass" : m === MODE_TRANSLATE ? "translate" : "disabled";
  }

  /**
   * @internal Checks that every one of `sids` is a stream of this DART, before anything
   * changes.
   */
  checkSids(where: string, sids: readonly number[]): void {
    if (!Array.isArray(sids)) throw argumentError(where, "sids", "an array of stream IDs", sids);
    for (const sid of sids) checkInteger(where, "sid", sid, 0, this.params.numStreams - 1);
  }

  /** @internal Records the device that claims `sids` (probe_device). */
  claim(device: string, sids: readonly number[]): void {
    for (const sid of sids) this.client[sid] = device;
  }

  /** @internal Forgets the device that claimed `sids` (release_device). */
  unclaim(device: string, sids: readonly number[]): void {
    for (const sid of sids) if (this.client[sid] === device) this.client[sid] = null;
  }

  /** @internal The mapped registers while the binding lasts, else null (for remove). */
  regsOrNull(): MmioRegion | null {
    return this.regs.tryAccess() ?? null;
  }

  /** @internal Counts a `flush_iotlb_all` (the invalidation itself follows). */
  countFlushAll(): void {
    this.counters.flushAll++;
  }

  /** Logs as the driver does (`apple-dart dart0: …`). */
  log(level: "err" | "warn" | "info", message: string): void {
    this.machine.log(level, this.name, "apple-dart", message);
  }

  // ------------------------------------------------------------------ stream programming

  /**
   * @internal `apple_dart_setup_translation`: for every stream in `sids`, the domain's TTBRs (the
   * unused ones cleared), then TCR = translate (with `FOUR_LEVEL` for a four-level table),
   * then a TLB invalidation of those streams. The streams leave any other domain.
   */
  setupTranslation(domain: DartDomain, sids: readonly number[], ttbrs: readonly number[]): void {
    this.checkSids("AppleDart.setupTranslation", sids);
    const hw = this.hw;
    for (const sid of sids) this.take(sid, domain, MODE_TRANSLATE);
    const r = this.regs.tryAccess();
    if (r !== undefined) {
      for (const sid of sids) {
        const base = hw.ttbrBase + hw.ttbrStride * sid;
        for (let i = 0; i < hw.ttbrCount; i++) {
          const pa = ttbrs[i];
          r.write32(base + 4 * i, pa === undefined ? 0 : dartTtbrValue(hw, pa));
        }
      }
      const tcr = hw.tcrEnabled | (domain.fourLevel ? hw.tcrFourLevel : 0);
      for (const sid of sids) r.write32(hw.tcrBase + 4 * sid, tcr);
    }
    this.invalidate(this.bitmapOf(sids));
  }

  /** `apple_dart_hw_enable_bypass`: TCR = bypass for `sids` (no invalidation, as the kernel). */
  enableBypass(sids: readonly number[]): void {
    this.checkSids("AppleDart.enableBypass", sids);
    for (const sid of sids) this.take(sid, null, MODE_BYPASS);
    const r = this.regs.tryAccess();
    if (r === undefined) return;
    for (const sid of sids) r.write32(this.hw.tcrBase + 4 * sid, this.hw.tcrBypass);
  }

  /** `apple_dart_hw_disable_dma`: TCR = 0 for `sids`, so their DMA is blocked. */
  disableDma(sids: readonly number[]): void {
    this.checkSids("AppleDart.disableDma", sids);
    for (const sid of sids) this.take(sid, null, MODE_DISABLED);
    const r = this.regs.tryAccess();
    if (r === undefined) return;
    for (const sid of sids) r.write32(this.hw.tcrBase + 4 * sid, this.hw.tcrDisabled);
  }

  /**
   * @internal Blocks every stream still translating through `domain` (TCR = 0, TTBRs cleared) and
   * invalidates them: done before a domain's tables are freed, so the DART never walks
   * freed memory.
   */
  releaseDomain(domain: DartDomain): void {
    const sids = domain.streams();
    if (sids.length === 0) return;
    this.disableDma(sids);
    const r = this.regs.tryAccess();
    if (r !== undefined) {
      for (const sid of sids) {
        const base = this.hw.ttbrBase + this.hw.ttbrStride * sid;
        for (let i = 0; i < this.hw.ttbrCount; i++) r.write32(base + 4 * i, 0);
      }
    }
    this.invalidate(this.bitmapOf(sids));
  }

  /** Moves `sid` to `domain` (or to no domain) in the bookkeeping. */
  private take(sid: number, domain: DartDomain | null, mode: number): void {
    const old = this.owner[sid] ?? null;
    if (old !== null && old !== domain) old.dropStream(sid);
    this.owner[sid] = domain;
    this.mode[sid] = mode;
    domain?.addStream(sid);
  }

  private bitmapOf(sids: readonly number[]): Uint32Array {
    const map = this.scratch;
    map.fill(0);
    for (const sid of sids) map[sid >>> 5] = (map[sid >>> 5]! | (1 << (sid & 31))) >>> 0;
    return map;
  }

  // ------------------------------------------------------------------ TLB commands

  /**
   * Invalidates the TLB for the streams in `map` (`hw->invalidate_tlb`): T8020/T6000 select
   * the streams and send one `INVALIDATE`; T8110 sends `FLUSH_SID` stream by stream. Each
   * command is polled until its busy bit clears, at most 100 polls (the kernel's 1 µs poll
   * for 100 µs). Returns the error, or null; a failure is logged and kept in
   * {@link AppleDart.lastCommandError}, never thrown.
   *
   * **Errors:** `EINVAL` only for a `map` that is not a 256-stream bitmap.
   */
  invalidate(map: Uint32Array): DevrefError | null {
    if (!(map instanceof Uint32Array) || map.length < STREAM_WORDS) {
      throw argumentError(
        "AppleDart.invalidate",
        "map",
        `a Uint32Array of ${STREAM_WORDS} words`,
        map,
      );
    }
    let any = false;
    for (let w = 0; w < STREAM_WORDS; w++) if (map[w] !== 0) any = true;
    if (!any) return null;
    const r = this.regs.tryAccess();
    if (r === undefined) return null;
    this.counters.invalidations++;
    let err: DevrefError | null = null;
    if (this.hw.type === "t8110") {
      for (let sid = 0; sid < this.params.numStreams; sid++) {
        if (((map[sid >>> 5]! >>> (sid & 31)) & 1) === 0) continue;
        const cmd = (DART_T8110_TLB_CMD_OP_FLUSH_SID << 8) | sid;
        r.write32(DART_T8110_TLB_CMD, cmd);
        err = this.pollIdle(
          r,
          DART_T8110_TLB_CMD,
          DART_T8110_TLB_CMD_BUSY,
          () =>
            `busy bit did not clear after command ${DART_T8110_TLB_CMD_OP_FLUSH_SID.toString(16)} for stream ${sid}`,
        );
        if (err !== null) break;
      }
    } else {
      const words = Math.ceil(this.params.numStreams / 32);
      for (let w = 0; w < words; w++) r.write32(DART_T8020_STREAM_SELECT + 4 * w, map[w]!);
      r.write32(DART_T8020_STREAM_COMMAND, DART_T8020_STREAM_COMMAND_INVALIDATE);
      err = this.pollIdle(
        r,
        DART_T8020_STREAM_COMMAND,
        DART_T8020_STREAM_COMMAND_BUSY,
        () =>
          `busy bit did not clear after command ${DART_T8020_STREAM_COMMAND_INVALIDATE.toString(16)} for streams ${map[0]!.toString(16)}`,
      );
    }
    if (err !== null) this.commandError = err;
    return err;
  }

  /**
   * `readl_poll_timeout_atomic(reg, v, !(v & busy), 1, 100)`. The CPU's spin is counted in
   * polls: MMIO takes no virtual time and the simulated CPU is not clocked, so the 100 µs
   * budget is 100 polls of 1 µs each, deterministic and independent of wall time.
   */
  private pollIdle(
    r: MmioRegion,
    offset: number,
    busy: number,
    what: () => string,
  ): DevrefError | null {
    for (let us = 0; ; us++) {
      const v = r.read32(offset);
      if (v === ALL_ONES) {
        this.log("err", "TLB command register reads all-ones: the DART is gone");
        return new DevrefError(
          "ENODEV",
          `DART '${this.name}' is gone (its registers read all-ones)`,
        );
      }
      if ((v & busy) === 0) return null;
      if (us >= DART_STREAM_COMMAND_BUSY_TIMEOUT) break;
    }
    this.counters.timeouts++;
    const message = what();
    this.log("err", message);
    return new DevrefError(
      "ETIMEDOUT",
      `DART '${this.name}': ${message} (${DART_STREAM_COMMAND_BUSY_TIMEOUT} µs)`,
    );
  }

  // ------------------------------------------------------------------ reset

  /**
   * `apple_dart_hw_reset`: refuse a locked DART, disable every stream and clear its TTBRs,
   * enable every stream globally (isolation is by TCR alone), clear a stale error, unmask
   * every error (T8110), and invalidate every stream.
   *
   * **Errors:** `EINVAL` if the DART is locked ("DART is locked down until reboot") or `r`
   * is not an MMIO region; `ENODEV` if the registers read all-ones; the invalidation's
   * `ETIMEDOUT`.
   */
  reset(r: MmioRegion): void {
    checkInstance("AppleDart.reset", "r", r, MmioRegion);
    const hw = this.hw;
    const n = this.params.numStreams;
    const lock = r.read32(hw.lock);
    if (lock === ALL_ONES) {
      throw new DevrefError("ENODEV", `DART '${this.name}' is gone (its registers read all-ones)`);
    }
    if ((lock & hw.lockBit) !== 0) {
      const message = `DART is locked down until reboot: ${lock.toString(16).padStart(8, "0")}`;
      this.log("err", message);
      throw new DevrefError("EINVAL", `${message}; a locked DART cannot be programmed`);
    }
    for (let sid = 0; sid < n; sid++) {
      this.take(sid, null, MODE_DISABLED);
      r.write32(hw.tcrBase + 4 * sid, hw.tcrDisabled);
    }
    for (let sid = 0; sid < n; sid++) {
      for (let i = 0; i < hw.ttbrCount; i++)
        r.write32(hw.ttbrBase + hw.ttbrStride * sid + 4 * i, 0);
    }
    for (let w = 0; w < Math.ceil(n / 32); w++) r.write32(hw.enableStreams + 4 * w, ALL_ONES);
    r.write32(hw.error, r.read32(hw.error));
    if (hw.type === "t8110") r.write32(DART_T8110_ERROR_MASK, 0);
    const all = this.scratch;
    all.fill(0);
    for (let sid = 0; sid < n; sid++) all[sid >>> 5] = (all[sid >>> 5]! | (1 << (sid & 31))) >>> 0;
    const err = this.invalidate(all);
    if (err !== null) throw err;
  }

  // ------------------------------------------------------------------ faults

  /**
   * The fault interrupt (`apple_dart_t8020_irq` / `apple_dart_t8110_irq`): reads ERROR and
   * ERROR_ADDR, returns false if no error is latched (not this DART's interrupt), logs the
   * decoded fault, reports it through `reportIommuFault` to the domain of the faulting
   * stream, and clears the error by writing the value back (T8110 also clears the
   * per-stream error bits).
   */
  handleFault(r: MmioRegion): boolean {
    checkInstance("AppleDart.handleFault", "r", r, MmioRegion);
    const hw = this.hw;
    const error = r.read32(hw.error);
    const lo = r.read32(hw.errorAddrLo);
    const hi = r.read32(hw.errorAddrHi);
    if (error === ALL_ONES) return false; // gone: nothing is latched in hardware that is not there
    const f = decodeDartError(hw, error, lo, hi);
    if (f === null) return false;
    this.counters.faults++;
    if (this.history.length >= FAULT_HISTORY) this.history.shift();
    this.history.push(f);
    this.log(
      "err",
      `translation fault: status:0x${f.status.toString(16)} stream:${f.stream} code:0x${f.code.toString(16)} (${f.name}) at 0x${f.address.toString(16)}`,
    );
    this.report(f);
    r.write32(hw.error, error);
    if (hw.type === "t8110") {
      for (let w = 0; w < Math.ceil(this.params.numStreams / 32); w++) {
        r.write32(DART_T8110_ERROR_STREAMS + 4 * w, ALL_ONES);
      }
    }
    return true;
  }

  /** Hands a fault to the IOMMU core's fault path of the stream's domain, if it has one. */
  private report(f: DartFault): void {
    const domain = this.owner[f.stream]?.domain ?? null;
    if (domain === null || this.iommu === null || f.address > Number.MAX_SAFE_INTEGER) return;
    const name = this.client[f.stream] ?? null;
    const refs: ARef<Device>[] =
      name === null ? [] : this.iommu.getClientRefs("apple-dart fault report");
    try {
      const dev = refs.find((d) => d.name === name) ?? null;
      const flags = f.write ? IOMMU_FAULT_WRITE : IOMMU_FAULT_READ;
      if (reportIommuFault(domain, dev, iova(f.address), flags) === 0)
        this.counters.faultsHandled++;
    } catch (e) {
      // A fault handler is someone else's code: its failure must not leave the error latched.
      this.log(
        "err",
        `fault handler failed for ${formatAddr(f.address, 1)}: ${e instanceof Error ? e.message : String(e)}`,
      );
    } finally {
      for (const d of refs) d.put();
    }
  }
}
