//! C header: include/linux/io-pgtable.h
//! C source: drivers/iommu/io-pgtable-arm.c (ARM_64_LPAE_S1, ARM_64_LPAE_S2)

import {
  checkInteger,
  checkOneOf,
  type PhysAddr,
  type PhysAllocator,
  type PhysicalMemory,
} from "@devref/raw-device";
import { IOMMU_PROT_MASK } from "./constants.js";
import { type DecodeOptions, decodeAs, dumpAs } from "./decode.js";
import {
  argumentError,
  checkAllocator,
  checkGather,
  checkIova,
  checkPaddr,
  checkPgcount,
  checkPgsize,
  checkProt,
  err,
  TlbCallbacks,
} from "./internal/args.js";
import { hexAddr, TWO32 } from "./internal/bits.js";
import { LPAE_MAIR, setupLpae } from "./internal/lpae-config.js";
import { LpaeGeo } from "./internal/lpae-geo.js";
import { type LpaeEngine, LpaeMemEngine } from "./internal/lpae-mem.js";
import { LpaeViewEngine } from "./internal/lpae-view.js";
import { TableStore } from "./internal/table-store.js";
import type {
  ArmLpaeCfgOf,
  ArmLpaeFormat,
  ArmLpaeS1Cfg,
  ArmLpaeS2Cfg,
  IommuIotlbGather,
  IoPgtableConfig,
  IoPgtableMapping,
  IovaArg,
} from "./types.js";

/** Which call the general path serves. */
const MAP = 0;
const UNMAP = 1;
const PHYS = 2;

/** The ops every table offers, mirroring `struct io_pgtable_ops`. See {@link ArmLpaeIoPgtable}. */
export interface IoPgtableOps extends Disposable {
  /** Maps `pgcount` leaves of `pgsize` bytes, at most one table's worth; returns bytes mapped. */
  mapPages(iova: IovaArg, paddr: PhysAddr, pgsize: number, pgcount: number, prot: number): number;
  /** Unmaps up to `pgcount` leaves of `pgsize` bytes within one table; returns bytes unmapped. */
  unmapPages(
    iova: IovaArg,
    pgsize: number,
    pgcount: number,
    gather?: IommuIotlbGather | null,
  ): number;
  /** The physical address `iova` translates to, or 0 when there is no translation. */
  iovaToPhys(iova: IovaArg): PhysAddr;
  /** Every mapping in the table, in input-address order. */
  mappings(options?: DecodeOptions): IoPgtableMapping[];
  /** A readable, indented listing of every table and leaf. */
  dump(options?: DecodeOptions): string;
  /** Bytes of table memory this table holds. */
  readonly tableBytes: number;
  /** Whether the table has been disposed. */
  readonly disposed: boolean;
}

/**
 * An ARM LPAE stage-1 or stage-2 I/O page table in caller-supplied memory, bit-exact with
 * Linux's `io-pgtable-arm.c` (the current mainline behaviour).
 *
 * Build one with `allocIoPgtable`. Descriptors are little-endian 64-bit words in the
 * allocator's {@link PhysicalMemory}; the root address is public in `cfg`. When the memory
 * offers page views (`pageWords`, as `SparseMemory` does), the table keeps each table's live
 * words and its child tables beside them and walks by reference; otherwise it reads and writes
 * every descriptor through the memory's methods. Both write the same bytes.
 *
 * **Invariants:** every table page it allocated is held until a table is replaced, unmapped
 * as a whole, or the table is disposed; disposing frees all of them and calls
 * `tlbFlushAll` once. A walk cache remembers the tables last reached, only ever for in-range
 * addresses, and is dropped whenever any table is freed, so it never names freed memory and
 * never lets a call skip a range check. The table owns its descriptors: a caller may read them
 * at any time but must not write them behind its back.
 *
 * **Errors:** `mapPages` throws `DevrefError` with the kernel's errno (`EINVAL`, `ERANGE`,
 * `EEXIST`, `ENOMEM`) and `details.mapped` (bytes mapped by the call before failing: always 0,
 * as the kernel updates `*mapped` only on success). Malformed arguments throw `EINVAL` naming
 * the parameter (`details.parameter`) and change nothing. Any use after dispose throws
 * `ESHUTDOWN`.
 *
 * @example
 * ```ts
 * const pages = new BuddyAllocator(new SparseMemory(), 0x8000_0000, 1 << 24);
 * using t = allocIoPgtable("arm-64-lpae-s1", { pgsizeBitmap: 0x40201000, ias: 48, oas: 48 }, pages);
 * t.mapPages(iova(0x1000), physAddr(0x9000_0000), 0x1000, 1, IOMMU_READ | IOMMU_WRITE);
 * t.iovaToPhys(iova(0x1234)); // 0x9000_0234
 * ```
 */
export class ArmLpaeIoPgtable<F extends ArmLpaeFormat = ArmLpaeFormat> implements IoPgtableOps {
  /**
   * The written-back configuration, as `alloc_io_pgtable_ops` leaves the caller's cfg; typed
   * by the format, so `cfg.armLpaeS1Cfg` needs no narrowing on a table made as stage 1.
   */
  readonly cfg: ArmLpaeCfgOf<F>;
  readonly #geo: LpaeGeo;
  readonly #store: TableStore;
  readonly #eng: LpaeEngine;
  readonly #mem: PhysicalMemory;
  readonly #root: number;
  readonly #split = new Uint32Array(2);
  #disposed = false;

  /**
   * Builds the table as `allocIoPgtable(format, cfg, allocator)` does (which is the usual way).
   *
   * **Errors:** `EINVAL` naming the argument for a malformed one, or with the reason wherever
   * the kernel's allocation returns null; `ENOMEM` when the root cannot be allocated.
   */
  constructor(format: F, cfgIn: IoPgtableConfig, allocator: PhysAllocator) {
    const where = "ArmLpaeIoPgtable";
    checkOneOf(where, "format", format, ["arm-64-lpae-s1", "arm-64-lpae-s2"] as const);
    checkAllocator(where, allocator);
    const setup = setupLpae(format === "arm-64-lpae-s1" ? 1 : 2, cfgIn, where);
    const g = setup.geometry;
    const geo = new LpaeGeo(setup);
    const store = new TableStore(
      allocator,
      new TlbCallbacks(cfgIn),
      setup.coherentWalk,
      cfgIn.cacheClean ?? null,
    );
    this.#geo = geo;
    this.#store = store;
    this.#mem = allocator.memory;
    this.#root = store.allocTable(g.rootBytes, "the root table");
    try {
      this.#eng =
        typeof allocator.memory.pageWords === "function"
          ? new LpaeViewEngine(geo, store, this.#root)
          : new LpaeMemEngine(geo, store, this.#root);
    } catch (e) {
      store.free(this.#root, g.rootBytes);
      throw e;
    }
    // SAFETY: the root was just returned by the allocator, which hands out physical addresses.
    const root = this.#root as PhysAddr;
    const base = {
      pgsizeBitmap: setup.pgsizeBitmap,
      ias: setup.ias,
      oas: setup.oas,
      quirks: setup.quirks,
      coherentWalk: setup.coherentWalk,
      geometry: g,
    };
    const stage: ArmLpaeFormat = format;
    const cfg: ArmLpaeS1Cfg | ArmLpaeS2Cfg =
      stage === "arm-64-lpae-s1"
        ? Object.freeze({
            format: stage,
            ...base,
            armLpaeS1Cfg: Object.freeze({
              ttbr: root,
              tcr: Object.freeze(setup.tcr!),
              mair: LPAE_MAIR,
            }),
          })
        : Object.freeze({
            format: stage,
            ...base,
            armLpaeS2Cfg: Object.freeze({ vttbr: root, vtcr: Object.freeze(setup.vtcr!) }),
          });
    // SAFETY: the branch above built the stage-1 cfg exactly when F is the stage-1 format
    // (checkOneOf made sure `format` is one of the two), which is what ArmLpaeCfgOf<F> says.
    this.cfg = cfg as ArmLpaeCfgOf<F>;
  }

  /** Bytes of table memory held, root included. */
  get tableBytes(): number {
    return this.#store.bytesHeld;
  }

  get disposed(): boolean {
    return this.#disposed;
  }

  #live(): void {
    if (this.#disposed) {
      throw err(
        "ESHUTDOWN",
        "this io-pgtable has been disposed and its tables freed: allocate a new one with allocIoPgtable",
      );
    }
  }

  // ---- map -------------------------------------------------------------------------------

  /**
   * Maps `pgcount` leaves of `pgsize` bytes from `iova` to `paddr`, stopping at the end of the
   * table that holds the first leaf; returns the bytes mapped (`map_pages` and its `*mapped`).
   *
   * **Errors:** `EINVAL` for a `pgsize` not in the narrowed bitmap or with no level, for a
   * prot without READ or WRITE, and (a package rule the kernel leaves to its caller) for an
   * `iova` or `paddr` not aligned to `pgsize`; `ERANGE` for an `iova` outside `ias` (or, with
   * TTBR1, outside the upper region), a `paddr` at or above `2^oas`, or a run whose end would
   * leave a small root or pass `2^oas` (checked before anything is written); `EEXIST` when a
   * leaf is already there; `ENOMEM` when a table cannot be allocated. Tables allocated on the
   * way down stay installed after a failure, as in the kernel.
   */
  mapPages(iova: IovaArg, paddr: PhysAddr, pgsize: number, pgcount: number, prot: number): number {
    // One leaf in a table the walk cache holds: the engine checks everything the general path
    // checks and answers -1 for every other case. Small, so that it inlines at the caller.
    if (
      pgcount === 1 &&
      typeof iova === "number" &&
      typeof paddr === "number" &&
      typeof prot === "number"
    ) {
      const r = this.#eng.mapOne(iova, paddr, pgsize, prot);
      if (r > 0) return r;
    }
    return this.#general(MAP, iova, paddr, pgsize, pgcount, prot);
  }

  // ---- unmap -----------------------------------------------------------------------------

  /**
   * Unmaps up to `pgcount` leaves of `pgsize` bytes from `iova`, within the table that holds
   * the first; returns the bytes unmapped (`unmap_pages`).
   *
   * A table descriptor at the `pgsize` level is removed with its whole subtree
   * (`tlbFlushWalk`, then the tables are freed). `tlbAddPage` runs for every cleared slot when
   * `gather` is given and not queued. Tables left empty by page unmaps stay installed.
   *
   * **Errors:** returns 0, as the kernel does, for a `pgsize` not in the bitmap, `pgcount`
   * 0, an `iova` out of range, an unmapped first slot, or a partial unmap of a block. Throws
   * `EINVAL` naming the parameter for malformed arguments (wrong types, or an `iova` not
   * aligned to `pgsize`).
   */
  unmapPages(
    iova: IovaArg,
    pgsize: number,
    pgcount: number,
    gather?: IommuIotlbGather | null,
  ): number {
    if (pgcount === 1 && typeof iova === "number") {
      if (gather == null) {
        const r = this.#eng.unmapOne(iova, pgsize);
        if (r >= 0) return r;
      } else if (typeof gather === "object" && typeof gather.queued === "boolean") {
        // The gather passes checkGather's test (an object whose queued is a boolean).
        const r = this.#eng.unmapOneGathered(iova, pgsize, gather);
        if (r >= 0) return r;
      }
    }
    return this.#general(UNMAP, iova, pgsize, pgcount, gather, undefined);
  }

  // ---- translate -------------------------------------------------------------------------

  /**
   * The output address for `iova`, or 0 when nothing maps it (so a mapping of PA 0 cannot be
   * told from none, as in the kernel). There is no range check: bits above `ias` are ignored.
   *
   * **Errors:** `EINVAL` naming `iova` when it is not a whole number (or bigint) below 2^64.
   */
  iovaToPhys(iova: IovaArg): PhysAddr {
    if (typeof iova === "number") {
      const r = this.#eng.physOne(iova);
      // SAFETY: an address the table decoded from one of its own leaves, or 0 for none.
      if (r >= 0) return r as PhysAddr;
    }
    // SAFETY: as above.
    return this.#general(PHYS, iova, undefined, undefined, undefined, undefined) as PhysAddr;
  }

  // ---- the general path ------------------------------------------------------------------

  /**
   * Every call the one-leaf paths did not take: the arguments checked with the shared
   * checkers (types first, then the kernel's checks in its order), then the engine's general
   * walk. `op` says which call: for MAP `a..d` are paddr, pgsize, pgcount, prot; for UNMAP
   * pgsize, pgcount, gather; PHYS takes only `iova`.
   *
   * One method for the three on purpose: V8 does not inline a method this large, so the public
   * methods, whose callers see only their one-leaf paths, stay small enough to inline at every
   * call site, whatever mix of calls the process makes.
   */
  #general(op: number, iova: unknown, a: unknown, b: unknown, c: unknown, d: unknown): number {
    this.#live();
    const g = this.#geo;
    if (op === PHYS) {
      checkIova("ArmLpaeIoPgtable.iovaToPhys", iova, this.#split);
      return this.#eng.phys(this.#split[0]!, this.#split[1]!);
    }
    if (op === UNMAP) {
      const where = "ArmLpaeIoPgtable.unmapPages";
      checkIova(where, iova, this.#split);
      const hi = this.#split[0]!;
      const lo = this.#split[1]!;
      const pgsize = checkPgsize(where, a);
      const pgcount = checkPgcount(where, b);
      // SAFETY: checkGather checks the shape of whatever it is given.
      const gat = checkGather(where, c as IommuIotlbGather | null | undefined);
      const l = g.levelFor(pgsize);
      if (l < 0 || pgcount === 0 || !g.inRange(hi, lo)) return 0;
      if ((lo & g.offLo[l]!) !== 0 || (hi & g.offHi[l]!) !== 0) {
        throw argumentError(where, "iova", `aligned to pgsize ${hexAddr(pgsize, 1)}`, iova);
      }
      const idx = g.idx(hi, lo, l);
      const n = Math.min(pgcount, g.ept - (idx & (g.ept - 1)));
      if (l === g.start && idx + n > g.rootEntries) return 0;
      return this.#eng.unmap(hi, lo, l, n, gat) * pgsize;
    }
    const where = "ArmLpaeIoPgtable.mapPages";
    checkIova(where, iova, this.#split);
    const hi = this.#split[0]!;
    const lo = this.#split[1]!;
    const paddr = checkInteger(where, "paddr", a, Number.MIN_SAFE_INTEGER, Number.MAX_SAFE_INTEGER);
    const pgsize = checkPgsize(where, b);
    const pgcount = checkPgcount(where, c);
    const prot = checkInteger(where, "prot", d, 0, IOMMU_PROT_MASK);
    const l = g.levelFor(pgsize);
    if (l < 0) {
      throw err(
        "EINVAL",
        `${where}: pgsize ${String(pgsize)} is not one of the sizes this table maps (narrowed pgsizeBitmap ` +
          `0x${this.cfg.pgsizeBitmap.toString(16)}, levels ${g.start}–3): pick one size from the bitmap`,
        { parameter: "pgsize", mapped: 0 },
      );
    }
    if (!g.inRange(hi, lo)) {
      throw err(
        "ERANGE",
        `${where}: iova ${hexAddr(g.cbIova(hi, lo))} is outside the ${g.ttbr1 ? "upper (TTBR1) " : ""}${g.ias}-bit input range`,
        { parameter: "iova", mapped: 0 },
      );
    }
    checkPaddr(where, paddr, g.paLimit);
    checkProt(where, prot);
    const pHi = (paddr / TWO32) >>> 0;
    const pLo = paddr >>> 0;
    if (
      (lo & g.offLo[l]!) !== 0 ||
      (hi & g.offHi[l]!) !== 0 ||
      (pLo & g.offLo[l]!) !== 0 ||
      (pHi & g.offHi[l]!) !== 0
    ) {
      throw err(
        "EINVAL",
        `${where}: iova ${hexAddr(g.cbIova(hi, lo))} and paddr ${hexAddr(paddr)} must both be aligned to pgsize ${hexAddr(pgsize, 1)}`,
        { mapped: 0 },
      );
    }
    // The whole run this call writes is checked before any table is touched: it must stay
    // inside a small root (2^ias) and below 2^oas, so no leaf wraps to physical address 0.
    const idx = g.idx(hi, lo, l);
    const n = Math.min(pgcount, g.ept - (idx & (g.ept - 1)));
    if (l === g.start && idx + n > g.rootEntries) {
      throw err(
        "ERANGE",
        `${where}: a run of ${n} leaves from index ${idx} passes the end of the ${g.rootEntries}-entry root (2^ias)`,
        { parameter: "pgcount", mapped: 0 },
      );
    }
    if (paddr + n * pgsize > g.paLimit) {
      throw err(
        "ERANGE",
        `${where}: a run of ${n} leaves of ${hexAddr(pgsize, 1)} from paddr ${hexAddr(paddr)} passes the end of the output range (2^${Math.log2(g.paLimit)}, oas)`,
        { parameter: "pgcount", mapped: 0 },
      );
    }
    this.#eng.map(hi, lo, pHi, pLo, l, n, prot);
    return n * pgsize;
  }

  // ---- inspection and teardown -----------------------------------------------------------

  /** Every mapping in the table, decoded from memory as {@link decodeIoPgtable} does. */
  mappings(options?: DecodeOptions): IoPgtableMapping[] {
    this.#live();
    return decodeAs(
      "ArmLpaeIoPgtable.mappings",
      this.#mem,
      this.cfg.format,
      this.cfg,
      this.#root,
      options,
    );
  }

  /** A readable listing of the table, as {@link dumpIoPgtable} prints it. */
  dump(options?: DecodeOptions): string {
    this.#live();
    return dumpAs(
      "ArmLpaeIoPgtable.dump",
      this.#mem,
      this.cfg.format,
      this.cfg,
      this.#root,
      options,
    );
  }

  /**
   * Calls `tlbFlushAll` and frees every table page (`free_io_pgtable_ops`). A second call
   * does nothing.
   */
  [Symbol.dispose](): void {
    if (this.#disposed) return;
    this.#disposed = true;
    this.#store.tlb.all();
    this.#eng.freeAll();
  }
}
