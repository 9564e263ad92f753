//! C header: include/linux/io-pgtable.h
//! C source: drivers/iommu/io-pgtable-dart.c (APPLE_DART, APPLE_DART2)

import {
  checkInteger,
  checkOneOf,
  DevrefError,
  describeValue,
  type Iova,
  type PhysAddr,
  type PhysAllocator,
  type PhysicalMemory,
} from "@devref/raw-device";
import { IOMMU_CACHE, IOMMU_PROT_MASK, IOMMU_READ, IOMMU_WRITE } from "./constants.js";
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
  DescriptorScratch,
  err,
  TlbCallbacks,
} from "./internal/args.js";
import { hexAddr, TWO32 } from "./internal/bits.js";
import { setupDart } from "./internal/dart-config.js";
import type { IoPgtableOps } from "./lpae.js";
import type {
  AppleDartCfg,
  IommuIotlbGather,
  IoPgtableConfig,
  IoPgtableMapping,
  IovaArg,
} from "./types.js";

const BULK_MIN = 8;
/** SUBPAGE_END = 0xFFF at bits 51:40, i.e. hi-word bits 19:8: the whole page is accessible. */
const SUBPAGE_HI = 0xfff << 8;

/** An address for a callback: a number when it is exact, else a bigint. */
function cbIova(hi: number, lo: number): IovaArg {
  // SAFETY: below 2^53 the number is the exact address.
  if (hi < 0x20_0000) return (hi * TWO32 + lo) as Iova;
  return (BigInt(hi) << 32n) | BigInt(lo);
}

/**
 * An Apple DART (T8020, "DART1") or DART2 (T6000/T8110) I/O page table in caller-supplied
 * memory, bit-exact with Linux's `io-pgtable-dart.c` (multi-level revision).
 *
 * Build one with `allocIoPgtable`. Each top-level table is one page, its address in
 * `cfg.appleDartCfg.ttbr`; the driver encodes the TTBR registers from them.
 *
 * **Invariants:** only page-sized leaves exist; unmapping never frees tables (only dispose
 * does). As in the kernel there is no IOVA range check: input bits from `ias` up to the TTBR
 * index are used as indices, and bits above it are dropped, so high addresses alias.
 *
 * **Errors:** `mapPages` throws `EINVAL` (wrong `pgsize`, no READ/WRITE, malformed or
 * misaligned arguments), `ERANGE` (`paddr` at or above `2^oas`), `ENOMEM` (TTBR index beyond
 * `nTtbrs`, or no memory for a table) or `EEXIST` (a target slot is VALID; nothing is written),
 * each with `details.mapped` = 0. Use after dispose throws `ESHUTDOWN`.
 *
 * @example
 * ```ts
 * const pages = new BuddyAllocator(new SparseMemory(), 0x8_0000_0000, 1 << 24);
 * using t = allocIoPgtable("apple-dart2", { pgsizeBitmap: 0x4000, ias: 32, oas: 42 }, pages);
 * t.mapPages(iova(0x4000), physAddr(0x8_0000_4000), 0x4000, 1, IOMMU_READ | IOMMU_WRITE | IOMMU_CACHE);
 * ```
 */
export class AppleDartIoPgtable implements IoPgtableOps {
  /** The written-back configuration: TTBR addresses, their count and the level count. */
  readonly cfg: AppleDartCfg;
  readonly #alloc: PhysAllocator;
  readonly #mem: PhysicalMemory;
  readonly #tlb: TlbCallbacks;
  readonly #dart2: boolean;
  readonly #pgsize: number;
  readonly #pgShift: number;
  readonly #bpl: number;
  readonly #levels: number;
  readonly #nTtbrs: number;
  readonly #ttbrShift: number;
  readonly #idxMask: number;
  readonly #paLimit: number;
  readonly #ttbr: number[];
  readonly #attrLo = new Int32Array(IOMMU_PROT_MASK + 1);
  readonly #scratch: DescriptorScratch;
  readonly #split = new Uint32Array(2);
  /** One-entry walk cache: the leaf table for the IOVA bits above the leaf level. */
  #cValid = false;
  #cKeyHi = 0;
  #cKeyLo = 0;
  #cTable = 0;
  #bytesHeld = 0;
  #disposed = false;

  /**
   * Builds the table as `allocIoPgtable(format, cfg, allocator)` does (which is the usual way).
   *
   * **Errors:** `EINVAL` naming the argument for a malformed one, or with the reason wherever
   * the kernel's allocation returns null; `ENOMEM` when a TTBR table cannot be allocated.
   */
  constructor(
    format: "apple-dart" | "apple-dart2",
    cfgIn: IoPgtableConfig,
    allocator: PhysAllocator,
  ) {
    const where = "AppleDartIoPgtable";
    checkOneOf(where, "format", format, ["apple-dart", "apple-dart2"] as const);
    checkAllocator(where, allocator);
    const setup = setupDart(format === "apple-dart2", cfgIn, where);
    const geo = setup.geometry;
    this.#alloc = allocator;
    this.#mem = allocator.memory;
    this.#tlb = new TlbCallbacks(cfgIn);
    this.#dart2 = setup.dart2;
    this.#pgsize = geo.pgsize;
    this.#pgShift = Math.log2(geo.pgsize);
    this.#bpl = geo.bitsPerLevel;
    this.#levels = geo.levels;
    this.#nTtbrs = setup.nTtbrs;
    this.#ttbrShift = this.#pgShift + geo.levels * geo.bitsPerLevel;
    this.#idxMask = 2 ** geo.bitsPerLevel - 1;
    this.#paLimit = 2 ** setup.oas;
    this.#ttbr = [];
    for (let prot = 0; prot <= IOMMU_PROT_MASK; prot++) {
      let lo = 1; // VALID
      if (setup.dart2) {
        if ((prot & IOMMU_CACHE) === 0) lo |= 1 << 1;
        if ((prot & IOMMU_WRITE) === 0) lo |= 1 << 2;
        if ((prot & IOMMU_READ) === 0) lo |= 1 << 3;
      } else {
        lo |= 1 << 1; // SP_DIS
        if ((prot & IOMMU_WRITE) === 0) lo |= 1 << 7;
        if ((prot & IOMMU_READ) === 0) lo |= 1 << 8;
      }
      this.#attrLo[prot] = lo;
    }
    const ept = geo.pgsize / 8;
    this.#scratch = new DescriptorScratch(ept);
    try {
      for (let i = 0; i < setup.nTtbrs; i++) this.#ttbr.push(this.#allocTable());
    } catch (e) {
      for (const pa of this.#ttbr) this.#freeTable(pa, 1);
      throw e;
    }
    this.cfg = Object.freeze({
      format: setup.dart2 ? "apple-dart2" : "apple-dart",
      pgsizeBitmap: setup.pgsizeBitmap,
      ias: setup.ias,
      oas: setup.oas,
      quirks: setup.quirks,
      coherentWalk: true,
      geometry: Object.freeze(geo),
      appleDartCfg: Object.freeze({
        // SAFETY: every entry was returned by the allocator.
        ttbr: Object.freeze(this.#ttbr.slice() as PhysAddr[]),
        nTtbrs: setup.nTtbrs,
        nLevels: setup.nLevels,
      }),
    });
  }

  get tableBytes(): number {
    return this.#bytesHeld;
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

  /** Index bits at `shift`, `bpl` wide. */
  #idx(hi: number, lo: number, shift: number): number {
    return shift >= 32
      ? (hi >>> (shift - 32)) & this.#idxMask
      : ((lo >>> shift) | (hi << (32 - shift))) & this.#idxMask;
  }

  #encode(pa: number): number {
    return this.#dart2 ? ((pa / 16) >>> 0) & 0xffff_fc00 : (pa >>> 0) & 0xffff_f000;
  }

  #encodeHi(pa: number): number {
    return this.#dart2 ? ((pa / 16 / TWO32) >>> 0) & 0x3f : ((pa / TWO32) >>> 0) & 0xf;
  }

  #decode(dhi: number, dlo: number): number {
    if (this.#dart2) return ((dhi & 0x3f) * TWO32 + ((dlo & 0xffff_fc00) >>> 0)) * 16;
    return (dhi & 0xf) * TWO32 + ((dlo & 0xffff_f000) >>> 0);
  }

  #allocTable(): number {
    const size = this.#pgsize;
    let pa: PhysAddr;
    try {
      pa = this.#alloc.alloc(size, size);
    } catch (e) {
      throw new DevrefError(
        "ENOMEM",
        `could not allocate a ${size}-byte DART table: give the allocator more memory`,
        {
          cause: e,
          details: { mapped: 0 },
        },
      );
    }
    if (
      typeof pa !== "number" ||
      !Number.isSafeInteger(pa) ||
      pa < 0 ||
      pa + size > this.#mem.size ||
      pa % size !== 0
    ) {
      if (typeof pa === "number") this.#alloc.free(pa, size);
      throw err(
        "EINVAL",
        `the allocator returned ${describeValue(pa)}, not an address inside memory aligned to the ${size}-byte DART page`,
        { mapped: 0 },
      );
    }
    this.#bytesHeld += size;
    return pa;
  }

  /** Frees the table at `pa` and, above the leaf level, every table it points to. */
  #freeTable(pa: number, depth: number): void {
    if (depth < this.#levels) {
      const ept = this.#pgsize / 8;
      for (let i = 0; i < ept; i++) {
        const dlo = this.#mem.read64Lo(pa + i * 8);
        const dhi = this.#mem.read64Hi(pa + i * 8);
        if (dlo !== 0 || dhi !== 0) this.#freeTable(this.#decode(dhi, dlo), depth + 1);
      }
    }
    this.#bytesHeld -= this.#pgsize;
    // SAFETY: pa came from this allocator when the table was created.
    this.#alloc.free(pa as PhysAddr, this.#pgsize);
  }

  /**
   * The leaf table for an IOVA, or -1 (bad TTBR index) / -2 (missing table, when not allocating).
   */
  #leafTable(hi: number, lo: number, allocate: boolean): number {
    // The leaf table spans 2^(pgShift + bpl) bytes, at most 2^25: the key is every bit above.
    const kh = hi;
    const keyLo = lo >>> (this.#pgShift + this.#bpl);
    if (this.#cValid && this.#cKeyHi === kh && this.#cKeyLo === keyLo) return this.#cTable;
    const t = this.#idx(hi, lo, this.#ttbrShift);
    if (t >= this.#nTtbrs) return -1;
    let table = this.#ttbr[t]!;
    const mem = this.#mem;
    for (let depth = 1; depth < this.#levels; depth++) {
      const shift = this.#pgShift + (this.#levels - depth) * this.#bpl;
      const slot = table + this.#idx(hi, lo, shift) * 8;
      const dlo = mem.read64Lo(slot);
      const dhi = mem.read64Hi(slot);
      if (dlo === 0 && dhi === 0) {
        if (!allocate) return -2;
        const next = this.#allocTable();
        mem.write64(slot, (this.#encode(next) | 1) >>> 0, this.#encodeHi(next));
        table = next;
      } else {
        table = this.#decode(dhi, dlo);
      }
    }
    this.#cValid = true;
    this.#cKeyHi = kh;
    this.#cKeyLo = keyLo;
    this.#cTable = table;
    return table;
  }

  /**
   * Maps `pgcount` pages from `iova` to `paddr`, up to the end of the leaf table; returns the
   * bytes mapped. All target slots are checked before any is written.
   *
   * **Errors:** see the class; nothing is written on failure, but tables allocated on the
   * way down stay installed, as in the kernel.
   */
  mapPages(iova: IovaArg, paddr: PhysAddr, pgsize: number, pgcount: number, prot: number): number {
    this.#live();
    const where = "AppleDartIoPgtable.mapPages";
    checkIova(where, iova, this.#split);
    const hi = this.#split[0]!;
    const lo = this.#split[1]!;
    checkInteger(where, "paddr", paddr, Number.MIN_SAFE_INTEGER, Number.MAX_SAFE_INTEGER);
    checkPgsize(where, pgsize);
    checkPgcount(where, pgcount);
    checkInteger(where, "prot", prot, 0, IOMMU_PROT_MASK);
    if (pgsize !== this.#pgsize) {
      throw err(
        "EINVAL",
        `${where}: pgsize ${String(pgsize)} must equal the DART page size ${this.#pgsize}`,
        { parameter: "pgsize", mapped: 0 },
      );
    }
    checkPaddr(where, paddr, this.#paLimit);
    checkProt(where, prot);
    const pLo = paddr >>> 0;
    const mask = pgsize - 1;
    if ((lo & mask) !== 0 || (pLo & mask) !== 0) {
      throw err(
        "EINVAL",
        `${where}: iova ${hexAddr(hi * TWO32 + lo)} and paddr ${hexAddr(paddr)} must be aligned to ${pgsize}`,
        { mapped: 0 },
      );
    }
    const t = this.#idx(hi, lo, this.#ttbrShift);
    if (t >= this.#nTtbrs) {
      throw err(
        "ENOMEM",
        `${where}: iova ${hexAddr(hi * TWO32 + lo)} selects TTBR ${t}, but this table has ${this.#nTtbrs}`,
        { mapped: 0 },
      );
    }
    // The whole run this call writes must stay below 2^oas, checked before any table is touched.
    const idx = this.#idx(hi, lo, this.#pgShift);
    const n = Math.min(pgcount, this.#idxMask + 1 - idx);
    if (paddr + n * pgsize > this.#paLimit) {
      throw err(
        "ERANGE",
        `${where}: a run of ${n} pages from paddr ${hexAddr(paddr)} passes the end of the output range (2^${Math.log2(this.#paLimit)}, oas)`,
        { parameter: "pgcount", mapped: 0 },
      );
    }
    const table = this.#leafTable(hi, lo, true);
    const slot = table + idx * 8;
    const mem = this.#mem;
    const attr = this.#attrLo[prot]!;
    if (n === 1) {
      if ((mem.read64Lo(slot) & 1) !== 0) throw this.#exists(hi, lo);
      mem.write64(
        slot,
        (attr | this.#encode(paddr)) >>> 0,
        (SUBPAGE_HI | this.#encodeHi(paddr)) >>> 0,
      );
      return pgsize;
    }
    if (n === 0) return 0;
    if (n < BULK_MIN) {
      for (let i = 0; i < n; i++)
        if ((mem.read64Lo(slot + i * 8) & 1) !== 0) throw this.#exists(hi, lo);
      for (let i = 0; i < n; i++) {
        const pa = paddr + i * pgsize;
        mem.write64(
          slot + i * 8,
          (attr | this.#encode(pa)) >>> 0,
          (SUBPAGE_HI | this.#encodeHi(pa)) >>> 0,
        );
      }
      return n * pgsize;
    }
    const view = this.#scratch.view(n);
    const w = this.#scratch.words;
    mem.readBytes(slot, view);
    for (let i = 0; i < n; i++) if ((w[2 * i]! & 1) !== 0) throw this.#exists(hi, lo);
    for (let i = 0; i < n; i++) {
      const pa = paddr + i * pgsize;
      w[2 * i] = attr | this.#encode(pa);
      w[2 * i + 1] = SUBPAGE_HI | this.#encodeHi(pa);
    }
    mem.writeBytes(slot, view);
    return n * pgsize;
  }

  /**
   * Unmaps up to `pgcount` pages from `iova` within one leaf table, stopping at the first
   * empty slot; returns the bytes unmapped. `tlbAddPage` runs per cleared page unless the
   * gather is queued (a missing gather counts as not queued, as in the kernel).
   *
   * **Errors:** returns 0 for a wrong `pgsize`, `pgcount` 0, a TTBR index beyond `nTtbrs`
   * or a missing leaf table; throws `EINVAL` only for malformed or misaligned arguments.
   */
  unmapPages(
    iova: IovaArg,
    pgsize: number,
    pgcount: number,
    gather?: IommuIotlbGather | null,
  ): number {
    this.#live();
    const where = "AppleDartIoPgtable.unmapPages";
    checkIova(where, iova, this.#split);
    const hi = this.#split[0]!;
    const lo = this.#split[1]!;
    checkPgsize(where, pgsize);
    checkPgcount(where, pgcount);
    checkGather(where, gather);
    if (pgsize !== this.#pgsize || pgcount === 0) return 0;
    if ((lo & (pgsize - 1)) !== 0)
      throw argumentError(where, "iova", `aligned to the DART page size ${pgsize}`, iova);
    const table = this.#leafTable(hi, lo, false);
    if (table < 0) return 0;
    const idx = this.#idx(hi, lo, this.#pgShift);
    const room = this.#idxMask + 1 - idx;
    const n = Math.min(pgcount, room);
    const slot = table + idx * 8;
    const mem = this.#mem;
    let i = 0;
    if (n < BULK_MIN) {
      for (; i < n; i++) {
        const at = slot + i * 8;
        if (mem.read64Lo(at) === 0 && mem.read64Hi(at) === 0) break;
        mem.write64(at, 0, 0);
      }
    } else {
      const w = this.#scratch.words;
      mem.readBytes(slot, this.#scratch.view(n));
      for (; i < n; i++) if (w[2 * i] === 0 && w[2 * i + 1] === 0) break;
      if (i > 0) mem.writeBytes(slot, this.#scratch.zeroView(i));
    }
    const tlb = this.#tlb;
    if (!(gather?.queued ?? false) && tlb.addPage !== null) {
      for (let j = 0; j < i; j++) {
        const off = lo + j * pgsize;
        tlb.page(gather ?? null, cbIova((hi + Math.floor(off / TWO32)) >>> 0, off >>> 0), pgsize);
      }
    }
    return i * pgsize;
  }

  /**
   * The output address for `iova`, or 0 when nothing maps it. Any non-zero leaf counts as a
   * translation, as in the kernel; high input bits alias (see the class).
   *
   * **Errors:** `EINVAL` when `iova` is not a whole number.
   */
  iovaToPhys(iova: IovaArg): PhysAddr {
    this.#live();
    checkIova("AppleDartIoPgtable.iovaToPhys", iova, this.#split);
    const hi = this.#split[0]!;
    const lo = this.#split[1]!;
    const table = this.#leafTable(hi, lo, false);
    // SAFETY: 0 is the kernel's "no translation".
    if (table < 0) return 0 as PhysAddr;
    const slot = table + this.#idx(hi, lo, this.#pgShift) * 8;
    const dlo = this.#mem.read64Lo(slot);
    const dhi = this.#mem.read64Hi(slot);
    // SAFETY: as above.
    if (dlo === 0 && dhi === 0) return 0 as PhysAddr;
    const pa = this.#decode(dhi, dlo);
    // SAFETY: a decoded DART address (below 2^42) ORed with an in-page offset, as the kernel does.
    return (((pa / TWO32) >>> 0) * TWO32 +
      (((pa >>> 0) | (lo & (this.#pgsize - 1))) >>> 0)) as PhysAddr;
  }

  mappings(options?: DecodeOptions): IoPgtableMapping[] {
    this.#live();
    return decodeAs(
      "AppleDartIoPgtable.mappings",
      this.#mem,
      this.cfg.format,
      this.cfg,
      this.#ttbr,
      options,
    );
  }

  dump(options?: DecodeOptions): string {
    this.#live();
    return dumpAs(
      "AppleDartIoPgtable.dump",
      this.#mem,
      this.cfg.format,
      this.cfg,
      this.#ttbr,
      options,
    );
  }

  /** Calls `tlbFlushAll` and frees every table page. A second call does nothing. */
  [Symbol.dispose](): void {
    if (this.#disposed) return;
    this.#disposed = true;
    this.#cValid = false;
    this.#tlb.all();
    for (const pa of this.#ttbr) this.#freeTable(pa, 1);
  }

  #exists(hi: number, lo: number): DevrefError {
    return err(
      "EEXIST",
      `a page in the run at IOVA ${hexAddr(hi * TWO32 + lo)} is already mapped: unmap it first`,
      { mapped: 0 },
    );
  }
}
