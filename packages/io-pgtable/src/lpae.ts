//! C header: include/linux/io-pgtable.h
//! C source: drivers/iommu/io-pgtable-arm.c (ARM_64_LPAE_S1, ARM_64_LPAE_S2)

import {
  checkInteger,
  checkOneOf,
  DevrefError,
  type Iova,
  type PhysAddr,
  type PhysAllocator,
  type PhysicalMemory,
} from "@devref/raw-device";
import {
  IO_PGTABLE_QUIRK_ARM_HD,
  IO_PGTABLE_QUIRK_ARM_NS,
  IO_PGTABLE_QUIRK_ARM_S2FWB,
  IO_PGTABLE_QUIRK_ARM_TTBR1,
  IOMMU_CACHE,
  IOMMU_MMIO,
  IOMMU_NOEXEC,
  IOMMU_PRIV,
  IOMMU_PROT_MASK,
  IOMMU_READ,
  IOMMU_WRITE,
} from "./constants.js";
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
import { LPAE_MAIR, type LpaeSetup, setupLpae } from "./internal/lpae-config.js";
import type {
  ArmLpaeS1Cfg,
  ArmLpaeS2Cfg,
  IommuIotlbGather,
  IoPgtableConfig,
  IoPgtableMapping,
  IovaArg,
} from "./types.js";

/** Entries handled through one bulk copy rather than word by word. */
const BULK_MIN = 8;
/** Bit 55, software: a non-coherent table descriptor that has been cleaned (hi-word bit 23). */
const SW_SYNC_HI = 1 << 23;
/** Bit 63, NSTable (hi-word bit 31). */
const NSTABLE_HI = 0x8000_0000;

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
 * Build one with `allocIoPgtable`. Descriptors are little-endian 64-bit words written
 * through the allocator's {@link PhysicalMemory}; the root address is public in `cfg`.
 *
 * **Invariants:** every table page it allocated is held until a table is replaced, unmapped
 * as a whole, or the table is disposed; disposing frees all of them and calls
 * `tlbFlushAll` once. A one-entry walk cache remembers the last table reached and is dropped
 * whenever any table is freed, so it never names freed memory. The table owns its descriptors:
 * a caller may read them at any time but must not write them behind its back.
 *
 * **Errors:** `mapPages` throws `DevrefError` with the kernel's errno (`EINVAL`, `ERANGE`,
 * `EEXIST`, `ENOMEM`) and `details.mapped` (bytes mapped by the call before failing: always 0,
 * as the kernel updates `*mapped` only on success). Malformed arguments (not whole numbers,
 * misaligned addresses, unknown prot bits) throw `EINVAL` and change nothing. Any use after
 * dispose throws `ESHUTDOWN`.
 *
 * @example
 * ```ts
 * const pages = new BuddyAllocator(new SparseMemory(), 0x8000_0000, 1 << 24);
 * using t = allocIoPgtable("arm-64-lpae-s1", { pgsizeBitmap: 0x40201000, ias: 48, oas: 48 }, pages);
 * t.mapPages(iova(0x1000), physAddr(0x9000_0000), 0x1000, 1, IOMMU_READ | IOMMU_WRITE);
 * t.iovaToPhys(iova(0x1234)); // 0x9000_0234
 * ```
 */
export class ArmLpaeIoPgtable implements IoPgtableOps {
  /** The written-back configuration, as `alloc_io_pgtable_ops` leaves the caller's cfg. */
  readonly cfg: ArmLpaeS1Cfg | ArmLpaeS2Cfg;
  readonly #alloc: PhysAllocator;
  readonly #mem: PhysicalMemory;
  readonly #tlb: TlbCallbacks;
  readonly #clean: ((pa: PhysAddr, bytes: number) => void) | null;
  readonly #coherent: boolean;
  readonly #ttbr1: boolean;
  readonly #root: number;
  readonly #rootBytes: number;
  readonly #rootEntries: number;
  readonly #start: number;
  readonly #granule: number;
  readonly #ept: number;
  readonly #ias: number;
  readonly #paLimit: number;
  readonly #big64K: boolean;
  readonly #tableHi: number;
  /** Input range as bounds on each half (see #inRange). */
  readonly #hiMin: number;
  readonly #hiEnd: number;
  readonly #loMin: number;
  readonly #loEnd: number;
  /** Per level: the in-block offset mask of the low and high halves. */
  readonly #offLo = new Int32Array(4);
  readonly #offHi = new Int32Array(4);
  /** Per level: 1 when the narrowed bitmap maps leaves there. */
  readonly #mapOk = new Uint8Array(4);
  /** Per level: the leaf size the one-leaf fast paths accept there; -1 for none or a non-coherent walk. */
  readonly #fastSize = new Float64Array(4).fill(-1);
  /** Per absolute level 0–3: index shift, index mask, block size, whether pgsize maps there. */
  readonly #shift = new Int32Array(4);
  readonly #mask = new Int32Array(4);
  readonly #block = new Float64Array(4);
  readonly #alignLo = new Int32Array(4);
  readonly #alignHi = new Int32Array(4);
  /** Walk-cache key masks for a table at each level (the bits above what it spans). */
  readonly #keyLo = new Int32Array(4);
  readonly #keyHi = new Int32Array(4);
  /** Level whose block size is 2^k, or -1; indexed by k. */
  readonly #levelOf = new Int8Array(64).fill(-1);
  /** Descriptor attribute bits for each prot value (type and address not included). */
  readonly #attrLo = new Int32Array(IOMMU_PROT_MASK + 1);
  readonly #attrHi = new Int32Array(IOMMU_PROT_MASK + 1);
  readonly #scratch: DescriptorScratch;
  readonly #split = new Uint32Array(2);
  #cLevel = -1;
  #cKeyHi = 0;
  #cKeyLo = 0;
  #cTable = 0;
  #bytesHeld = 0;
  #disposed = false;

  /**
   * Builds the table as `allocIoPgtable(format, cfg, allocator)` does (which is the usual way).
   *
   * **Errors:** `EINVAL` naming the argument for a malformed one, or with the reason wherever
   * the kernel's allocation returns null; `ENOMEM` when the root cannot be allocated.
   */
  constructor(
    format: "arm-64-lpae-s1" | "arm-64-lpae-s2",
    cfgIn: IoPgtableConfig,
    allocator: PhysAllocator,
  ) {
    const where = "ArmLpaeIoPgtable";
    checkOneOf(where, "format", format, ["arm-64-lpae-s1", "arm-64-lpae-s2"] as const);
    checkAllocator(where, allocator);
    const setup = setupLpae(format === "arm-64-lpae-s1" ? 1 : 2, cfgIn, where);
    const g = setup.geometry;
    this.#alloc = allocator;
    this.#mem = allocator.memory;
    this.#tlb = new TlbCallbacks(cfgIn);
    this.#clean = cfgIn.cacheClean ?? null;
    this.#coherent = setup.coherentWalk;
    this.#ttbr1 = (setup.quirks & IO_PGTABLE_QUIRK_ARM_TTBR1) !== 0;
    this.#rootBytes = g.rootBytes;
    this.#rootEntries = g.rootEntries;
    this.#start = g.startLevel;
    this.#granule = g.granule;
    this.#ept = g.granule / 8;
    this.#ias = setup.ias;
    this.#paLimit = 2 ** setup.oas;
    this.#big64K = g.granule === 0x1_0000;
    this.#tableHi = (setup.quirks & IO_PGTABLE_QUIRK_ARM_NS) !== 0 ? NSTABLE_HI : 0;
    const ias = setup.ias;
    if (this.#ttbr1) {
      // Every bit from ias up must be one.
      this.#hiMin = ias >= 32 ? TWO32 - 2 ** (ias - 32) : 0xffff_ffff;
      this.#hiEnd = TWO32;
      this.#loMin = ias >= 32 ? 0 : TWO32 - 2 ** ias;
      this.#loEnd = TWO32;
    } else {
      this.#hiMin = 0;
      this.#hiEnd = ias >= 32 ? 2 ** (ias - 32) : 1;
      this.#loMin = 0;
      this.#loEnd = ias >= 32 ? TWO32 : 2 ** ias;
    }

    const bpl = g.bitsPerLevel;
    for (let l = 0; l < 4; l++) {
      const s = (4 - l) * bpl + 3;
      const block = 2 ** s;
      this.#shift[l] = s;
      this.#mask[l] = l === g.startLevel ? 2 ** g.pgdBits - 1 : 2 ** bpl - 1;
      this.#block[l] = block;
      this.#alignLo[l] = s >= 32 ? -1 : block - 1;
      this.#alignHi[l] = s >= 32 ? 2 ** (s - 32) - 1 : 0;
      this.#offLo[l] = s >= 32 ? -1 : block - 1;
      this.#offHi[l] = s >= 32 ? 2 ** (s - 32) - 1 : 0;
      const span = s + bpl;
      this.#keyLo[l] = span >= 32 ? 0 : ~(2 ** span - 1);
      this.#keyHi[l] = span >= 32 ? ~(2 ** (span - 32) - 1) : -1;
      if (l >= g.startLevel && l >= 1 && Math.floor(setup.pgsizeBitmap / block) % 2 === 1) {
        this.#levelOf[s] = l;
        this.#mapOk[l] = 1;
        if (setup.coherentWalk) this.#fastSize[l] = block;
      }
    }
    this.#fillAttrs(setup);

    const maxRun = Math.max(this.#ept, 1);
    this.#scratch = new DescriptorScratch(maxRun);

    this.#root = this.#allocTable(g.rootBytes, "the root table");
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
    this.cfg =
      format === "arm-64-lpae-s1"
        ? Object.freeze({
            format,
            ...base,
            armLpaeS1Cfg: Object.freeze({
              ttbr: root,
              tcr: Object.freeze(setup.tcr!),
              mair: LPAE_MAIR,
            }),
          })
        : Object.freeze({
            format,
            ...base,
            armLpaeS2Cfg: Object.freeze({ vttbr: root, vtcr: Object.freeze(setup.vtcr!) }),
          });
  }

  #fillAttrs(setup: LpaeSetup): void {
    const q = setup.quirks;
    for (let prot = 0; prot <= IOMMU_PROT_MASK; prot++) {
      let lo = 1 << 10; // AF
      let hi = 0;
      if (setup.stage === 1) {
        lo |= 1 << 11; // nG
        const rdonly = (prot & IOMMU_READ) !== 0 && (prot & IOMMU_WRITE) === 0;
        if (rdonly) lo |= 1 << 7;
        else if ((q & IO_PGTABLE_QUIRK_ARM_HD) !== 0) hi |= 1 << 19; // DBM
        if ((prot & IOMMU_PRIV) === 0) lo |= 1 << 6;
        if ((prot & IOMMU_MMIO) !== 0) lo |= 2 << 2;
        else if ((prot & IOMMU_CACHE) !== 0) lo |= 1 << 2;
        if ((q & IO_PGTABLE_QUIRK_ARM_NS) !== 0) lo |= 1 << 5;
      } else {
        if ((prot & IOMMU_READ) !== 0) lo |= 1 << 6;
        if ((prot & IOMMU_WRITE) !== 0) lo |= 1 << 7;
        if ((prot & IOMMU_MMIO) !== 0) lo |= 0x1 << 2;
        else if ((prot & IOMMU_CACHE) !== 0)
          lo |= ((q & IO_PGTABLE_QUIRK_ARM_S2FWB) !== 0 ? 0x6 : 0xf) << 2;
        else lo |= 0x5 << 2;
      }
      lo |= ((prot & IOMMU_CACHE) !== 0 ? 3 : 2) << 8; // SH follows CACHE even for MMIO
      if ((prot & IOMMU_NOEXEC) !== 0) hi |= 3 << 21;
      // A prot without READ or WRITE maps nothing; 0 lets the fast path reject it in one test.
      const usable = (prot & (IOMMU_READ | IOMMU_WRITE)) !== 0;
      this.#attrLo[prot] = usable ? lo : 0;
      this.#attrHi[prot] = usable ? hi : 0;
    }
  }

  /** Bytes of table memory held, root included. */
  get tableBytes(): number {
    return this.#bytesHeld;
  }

  get disposed(): boolean {
    return this.#disposed;
  }

  // ---- addresses -------------------------------------------------------------------------

  #idx(hi: number, lo: number, l: number): number {
    const s = this.#shift[l]!;
    return s >= 32
      ? (hi >>> (s - 32)) & this.#mask[l]!
      : ((lo >>> s) | (hi << (32 - s))) & this.#mask[l]!;
  }

  /** `(s64)iova >> ias` is 0, or all ones for TTBR1: one comparison on each half. */
  #inRange(hi: number, lo: number): boolean {
    return hi >= this.#hiMin && hi < this.#hiEnd && lo >= this.#loMin && lo < this.#loEnd;
  }

  /**
   * Records the table at level `l` reached for `hi:lo` in the walk cache. Only in-range
   * addresses are recorded: the key covers every bit above the table's span, so a later key
   * match implies the later address is in range too, and no fast path can skip the range check.
   */
  #remember(l: number, hi: number, lo: number, table: number): void {
    if (l <= this.#start || !this.#inRange(hi, lo)) return;
    this.#cLevel = l;
    this.#cKeyHi = hi & this.#keyHi[l]!;
    this.#cKeyLo = lo & this.#keyLo[l]!;
    this.#cTable = table;
  }

  /** The level whose leaves are `pgsize` bytes, or -1 when the narrowed bitmap has none. */
  #levelFor(pgsize: number): number {
    const lg = pgsize <= 0x8000_0000 ? 31 - Math.clz32(pgsize) : 63 - Math.clz32(pgsize / TWO32);
    const l = lg >= 0 ? this.#levelOf[lg]! : -1;
    return l >= 0 && this.#block[l] === pgsize ? l : -1;
  }

  /** The output address held in a descriptor (table or leaf), as a number. */
  #decode(dhi: number, dlo: number): number {
    const xlo = (dlo & 0xffff_f000) >>> 0;
    const xhi = dhi & 0xffff;
    if (!this.#big64K) return xhi * TWO32 + xlo;
    return (xhi | (((xlo >>> 12) & 0xf) << 16)) * TWO32 + ((xlo & 0xffff_0000) >>> 0);
  }

  #cbIova(hi: number, lo: number): IovaArg {
    // SAFETY: below 2^53 unless TTBR1, where the full 64-bit value is passed as a bigint.
    if (!this.#ttbr1) return (hi * TWO32 + lo) as Iova;
    return (BigInt(hi) << 32n) | BigInt(lo);
  }

  #live(): void {
    if (this.#disposed) {
      throw err(
        "ESHUTDOWN",
        "this io-pgtable has been disposed and its tables freed: allocate a new one with allocIoPgtable",
      );
    }
  }

  // ---- table memory ----------------------------------------------------------------------

  #allocTable(bytes: number, what: string): number {
    let pa: PhysAddr;
    try {
      pa = this.#alloc.alloc(bytes, bytes);
    } catch (e) {
      throw new DevrefError(
        "ENOMEM",
        `could not allocate ${bytes} bytes for ${what}: give the allocator more memory`,
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
      pa + bytes > this.#mem.size ||
      pa % bytes !== 0
    ) {
      if (typeof pa === "number") this.#alloc.free(pa, bytes);
      throw err(
        "EINVAL",
        `the allocator returned ${String(pa)} for ${bytes} bytes, not an address inside memory aligned to its size: table memory must be naturally aligned`,
        { mapped: 0 },
      );
    }
    this.#bytesHeld += bytes;
    if (!this.#coherent) this.#cleanRange(pa, bytes);
    return pa;
  }

  #cleanRange(pa: number, bytes: number): void {
    // SAFETY: pa is a table address this table allocated or a slot inside one.
    if (this.#clean !== null) this.#clean(pa as PhysAddr, bytes);
  }

  /** Frees the table at `pa` (absolute level `l`) and every table below it. */
  #freeTable(pa: number, l: number, bytes: number): void {
    if (l < 3) {
      const mem = this.#mem;
      const entries = bytes / 8;
      for (let i = 0; i < entries; i++) {
        const at = pa + i * 8;
        const dlo = mem.read64Lo(at);
        const dhi = mem.read64Hi(at);
        if ((dlo === 0 && dhi === 0) || (dlo & 3) === 1) continue;
        this.#freeTable(this.#decode(dhi, dlo), l + 1, this.#granule);
      }
    }
    this.#cLevel = -1;
    this.#bytesHeld -= bytes;
    // SAFETY: pa came from this allocator when the table was created.
    this.#alloc.free(pa as PhysAddr, bytes);
  }

  /** Clears the table descriptor at `slot` (level `l`) and frees its subtree, as an unmap at `l` does. */
  #dropTable(slot: number, l: number, dhi: number, dlo: number, ihi: number, ilo: number): void {
    this.#tlb.walk(this.#cbIova(ihi, ilo), this.#block[l]!, this.#granule);
    this.#freeTable(this.#decode(dhi, dlo), l + 1, this.#granule);
    this.#mem.write64(slot, 0, 0);
    if (!this.#coherent) this.#cleanRange(slot, 8);
  }

  // ---- map -------------------------------------------------------------------------------

  /**
   * Maps `pgcount` leaves of `pgsize` bytes from `iova` to `paddr`, stopping at the end of the
   * table that holds the first leaf; returns the bytes mapped (`map_pages` and its `*mapped`).
   *
   * **Errors:** `EINVAL` for a `pgsize` not in the narrowed bitmap or with no level, for a
   * prot without READ or WRITE, and (a package rule the kernel leaves to its caller) for an
   * `iova` or `paddr` not aligned to `pgsize`; `ERANGE` for an `iova` outside `ias` (or, with
   * TTBR1, outside the upper region), a `paddr` at or above `2^oas`, or a run that would leave a
   * small root; `EEXIST` when a leaf is already there; `ENOMEM` when a table cannot be allocated.
   * Tables allocated on the way down stay installed after a failure, as in the kernel.
   */
  mapPages(iova: IovaArg, paddr: PhysAddr, pgsize: number, pgcount: number, prot: number): number {
    // Fast path, kept small so it can be inlined at the caller: one leaf in the table the walk
    // cache holds. It checks everything the general path checks and leaves every other case to it.
    const l = this.#cLevel;
    // With an empty cache l is -1 and fastSize[-1] is undefined, so the test fails.
    if (
      pgcount === 1 &&
      typeof iova === "number" &&
      typeof paddr === "number" &&
      typeof prot === "number" &&
      pgsize === this.#fastSize[l]
    ) {
      const hi = (iova / TWO32) >>> 0;
      const lo = iova >>> 0;
      const pHi = (paddr / TWO32) >>> 0;
      const pLo = paddr >>> 0;
      // Zero for a prot without READ or WRITE, undefined for anything but an integer in 0..63.
      const attr = this.#attrLo[prot]!;
      if (
        hi * TWO32 + lo === iova &&
        (hi & this.#keyHi[l]!) === this.#cKeyHi &&
        (lo & this.#keyLo[l]!) === this.#cKeyLo &&
        pHi * TWO32 + pLo === paddr &&
        paddr < this.#paLimit &&
        ((lo | pLo) & this.#alignLo[l]!) === 0 &&
        ((hi | pHi) & this.#alignHi[l]!) === 0 &&
        attr > 0
      ) {
        const s = this.#shift[l]!;
        const slot = this.#cTable + (((lo >>> s) | (hi << (32 - s))) & this.#mask[l]!) * 8;
        const mem = this.#mem;
        if (mem.read64Lo(slot) === 0) {
          mem.write64(
            slot,
            (attr | (l === 3 ? 3 : 1) | (pLo & 0xffff_f000) | (((pHi >>> 16) & 0xf) << 12)) >>> 0,
            (this.#attrHi[prot]! | (pHi & 0xffff)) >>> 0,
          );
          return pgsize;
        }
      }
    }
    return this.#mapSlow(iova, paddr, pgsize, pgcount, prot);
  }

  #mapSlow(iova: IovaArg, paddr: PhysAddr, pgsize: number, pgcount: number, prot: number): number {
    this.#live();
    const where = "ArmLpaeIoPgtable.mapPages";
    // Every argument's type first, then the kernel's checks in its order.
    checkIova(where, iova, this.#split);
    const hi = this.#split[0]!;
    const lo = this.#split[1]!;
    checkInteger(where, "paddr", paddr, Number.MIN_SAFE_INTEGER, Number.MAX_SAFE_INTEGER);
    checkPgsize(where, pgsize);
    checkPgcount(where, pgcount);
    checkInteger(where, "prot", prot, 0, IOMMU_PROT_MASK);
    const l = this.#levelFor(pgsize);
    if (l < 0) throw this.#badPgsize(pgsize);
    if (!this.#inRange(hi, lo)) {
      throw err(
        "ERANGE",
        `${where}: iova ${hexAddr(this.#cbIova(hi, lo))} is outside the ${this.#ttbr1 ? "upper (TTBR1) " : ""}${this.#ias}-bit input range`,
        { parameter: "iova", mapped: 0 },
      );
    }
    checkPaddr(where, paddr, this.#paLimit);
    checkProt(where, prot);
    const pHi = (paddr / TWO32) >>> 0;
    const pLo = paddr >>> 0;
    if (
      (lo & this.#alignLo[l]!) !== 0 ||
      (hi & this.#alignHi[l]!) !== 0 ||
      (pLo & this.#alignLo[l]!) !== 0 ||
      (pHi & this.#alignHi[l]!) !== 0
    ) {
      throw err(
        "EINVAL",
        `${where}: iova ${hexAddr(this.#cbIova(hi, lo))} and paddr ${hexAddr(paddr)} must both be aligned to pgsize ${hexAddr(pgsize, 1)}`,
        { mapped: 0 },
      );
    }

    // The whole run this call writes is checked before any table is touched: it must stay
    // inside a small root (2^ias) and below 2^oas, so no leaf wraps to physical address 0.
    const idx = this.#idx(hi, lo, l);
    const ept = this.#ept;
    const room = ept - (idx & (ept - 1));
    const n = Math.min(pgcount, room);
    if (l === this.#start && idx + n > this.#rootEntries) {
      throw err(
        "ERANGE",
        `${where}: a run of ${n} leaves from index ${idx} passes the end of the ${this.#rootEntries}-entry root (2^ias)`,
        { parameter: "pgcount", mapped: 0 },
      );
    }
    if (paddr + n * pgsize > this.#paLimit) {
      throw err(
        "ERANGE",
        `${where}: a run of ${n} leaves of ${hexAddr(pgsize, 1)} from paddr ${hexAddr(paddr)} passes the end of the output range (2^${Math.log2(this.#paLimit)}, oas)`,
        { parameter: "pgcount", mapped: 0 },
      );
    }

    // Walk to the table at level l, allocating what is missing.
    let table: number;
    if (
      this.#cLevel === l &&
      (hi & this.#keyHi[l]!) === this.#cKeyHi &&
      (lo & this.#keyLo[l]!) === this.#cKeyLo
    ) {
      table = this.#cTable;
    } else {
      table = this.#walkAlloc(hi, lo, l);
    }
    const slot = table + idx * 8;
    const attrLo = this.#attrLo[prot]! | (l === 3 ? 3 : 1);
    const attrHi = this.#attrHi[prot]!;
    const leafType = l === 3 ? 3 : 1;
    const mem = this.#mem;
    if (n === 1) {
      const dlo = mem.read64Lo(slot);
      if (dlo !== 0) {
        const t = dlo & 3;
        if (t === leafType) throw this.#exists(hi, lo, 0);
        if (t === 3) this.#dropTable(slot, l, mem.read64Hi(slot), dlo, hi, lo);
      }
      mem.write64(
        slot,
        (attrLo | (pLo & 0xffff_f000) | (((pHi >>> 16) & 0xf) << 12)) >>> 0,
        (attrHi | (pHi & 0xffff)) >>> 0,
      );
      if (!this.#coherent) this.#cleanRange(slot, 8);
      return pgsize;
    }
    if (n === 0) return 0;
    if (n < BULK_MIN) {
      for (let i = 0; i < n; i++) {
        const at = slot + i * 8;
        const dlo = mem.read64Lo(at);
        if (dlo !== 0) {
          const t = dlo & 3;
          if (t === leafType) throw this.#exists(hi, lo, i);
          if (t === 3) {
            const off = lo + i * pgsize;
            this.#dropTable(
              at,
              l,
              mem.read64Hi(at),
              dlo,
              (hi + Math.floor(off / TWO32)) >>> 0,
              off >>> 0,
            );
          }
        }
      }
      let aHi = pHi;
      let aLo = pLo;
      const addHi = (pgsize / TWO32) >>> 0;
      const addLo = pgsize >>> 0;
      for (let i = 0; i < n; i++) {
        mem.write64(
          slot + i * 8,
          (attrLo | (aLo & 0xffff_f000) | (((aHi >>> 16) & 0xf) << 12)) >>> 0,
          (attrHi | (aHi & 0xffff)) >>> 0,
        );
        aLo += addLo;
        aHi += addHi;
        if (aLo >= TWO32) {
          aLo -= TWO32;
          aHi += 1;
        }
      }
    } else {
      const view = this.#scratch.view(n);
      const w = this.#scratch.words;
      mem.readBytes(slot, view);
      for (let i = 0; i < n; i++) {
        const dlo = w[2 * i]!;
        if (dlo !== 0) {
          const t = dlo & 3;
          if (t === leafType) throw this.#exists(hi, lo, i);
          if (t === 3) {
            const off = lo + i * pgsize;
            this.#dropTable(
              slot + i * 8,
              l,
              w[2 * i + 1]!,
              dlo,
              (hi + Math.floor(off / TWO32)) >>> 0,
              off >>> 0,
            );
          }
        }
      }
      let aHi = pHi;
      let aLo = pLo;
      const addHi = (pgsize / TWO32) >>> 0;
      const addLo = pgsize >>> 0;
      for (let i = 0; i < n; i++) {
        w[2 * i] = attrLo | (aLo & 0xffff_f000) | (((aHi >>> 16) & 0xf) << 12);
        w[2 * i + 1] = attrHi | (aHi & 0xffff);
        aLo += addLo;
        aHi += addHi;
        if (aLo >= TWO32) {
          aLo -= TWO32;
          aHi += 1;
        }
      }
      mem.writeBytes(slot, view);
    }
    if (!this.#coherent) this.#cleanRange(slot, n * 8);
    return n * pgsize;
  }

  /** Walks from the root to the table at level `target`, allocating empty slots on the way. */
  #walkAlloc(hi: number, lo: number, target: number): number {
    const mem = this.#mem;
    let table = this.#root;
    for (let l = this.#start; l < target; l++) {
      const slot = table + this.#idx(hi, lo, l) * 8;
      const dlo = mem.read64Lo(slot);
      const dhi = mem.read64Hi(slot);
      if (dlo === 0 && dhi === 0) {
        const next = this.#allocTable(this.#granule, `a level-${l + 1} table`);
        const phi = (next / TWO32) >>> 0;
        const plo = next >>> 0;
        const descLo = ((plo & 0xffff_f000) | (((phi >>> 16) & 0xf) << 12) | 3) >>> 0;
        const descHi = (phi & 0xffff) | this.#tableHi;
        mem.write64(slot, descLo, descHi >>> 0);
        if (!this.#coherent) {
          this.#cleanRange(slot, 8);
          mem.write64(slot, descLo, (descHi | SW_SYNC_HI) >>> 0);
        }
        table = next;
      } else if ((dlo & 3) === 1) {
        throw this.#exists(hi, lo, 0);
      } else {
        table = this.#decode(dhi, dlo);
      }
    }
    this.#remember(target, hi, lo, table);
    return table;
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
   * `EINVAL` only for malformed arguments (not whole numbers, or an `iova` not aligned to `pgsize`).
   */
  unmapPages(
    iova: IovaArg,
    pgsize: number,
    pgcount: number,
    gather?: IommuIotlbGather | null,
  ): number {
    // Fast path: one leaf, no gather, in the table the walk cache holds.
    const l = this.#cLevel;
    if (
      pgcount === 1 &&
      gather == null &&
      typeof iova === "number" &&
      l >= 0 &&
      pgsize === this.#fastSize[l]
    ) {
      const hi = (iova / TWO32) >>> 0;
      const lo = iova >>> 0;
      if (
        hi * TWO32 + lo === iova &&
        (hi & this.#keyHi[l]!) === this.#cKeyHi &&
        (lo & this.#keyLo[l]!) === this.#cKeyLo &&
        (lo & this.#alignLo[l]!) === 0 &&
        (hi & this.#alignHi[l]!) === 0
      ) {
        const s = this.#shift[l]!;
        const slot = this.#cTable + (((lo >>> s) | (hi << (32 - s))) & this.#mask[l]!) * 8;
        const mem = this.#mem;
        if ((mem.read64Lo(slot) & 3) === (l === 3 ? 3 : 1)) {
          mem.write64(slot, 0, 0);
          return pgsize;
        }
      }
    }
    return this.#unmapSlow(iova, pgsize, pgcount, gather);
  }

  #unmapSlow(
    iova: IovaArg,
    pgsize: number,
    pgcount: number,
    gather?: IommuIotlbGather | null,
  ): number {
    this.#live();
    const where = "ArmLpaeIoPgtable.unmapPages";
    checkIova(where, iova, this.#split);
    const hi = this.#split[0]!;
    const lo = this.#split[1]!;
    checkPgsize(where, pgsize);
    checkPgcount(where, pgcount);
    checkGather(where, gather);
    const l = this.#levelFor(pgsize);
    if (l < 0 || pgcount === 0 || !this.#inRange(hi, lo)) return 0;
    if ((lo & this.#alignLo[l]!) !== 0 || (hi & this.#alignHi[l]!) !== 0) {
      throw argumentError(where, "iova", `aligned to pgsize ${hexAddr(pgsize, 1)}`, iova);
    }
    const mem = this.#mem;
    let table: number;
    if (
      this.#cLevel === l &&
      (hi & this.#keyHi[l]!) === this.#cKeyHi &&
      (lo & this.#keyLo[l]!) === this.#cKeyLo
    ) {
      table = this.#cTable;
    } else {
      table = this.#root;
      for (let k = this.#start; k < l; k++) {
        const slot = table + this.#idx(hi, lo, k) * 8;
        const dlo = mem.read64Lo(slot);
        const dhi = mem.read64Hi(slot);
        if (dlo === 0 && dhi === 0) return 0;
        if ((dlo & 3) === 1) return 0; // a larger block: no splitting in current kernels
        table = this.#decode(dhi, dlo);
      }
      this.#remember(l, hi, lo, table);
    }
    const idx = this.#idx(hi, lo, l);
    const ept = this.#ept;
    const room = ept - (idx & (ept - 1));
    const n = Math.min(pgcount, room);
    if (l === this.#start && idx + n > this.#rootEntries) return 0;
    const slot = table + idx * 8;
    let i = 0;
    if (n === 1) {
      const dlo = mem.read64Lo(slot);
      const dhi = dlo === 0 ? mem.read64Hi(slot) : 0;
      if (dlo === 0 && dhi === 0) return 0;
      if (l < 3 && (dlo & 3) !== 1) this.#dropTable(slot, l, mem.read64Hi(slot), dlo, hi, lo);
      else mem.write64(slot, 0, 0);
      i = 1;
    } else if (n < BULK_MIN) {
      for (; i < n; i++) {
        const at = slot + i * 8;
        const dlo = mem.read64Lo(at);
        const dhi = mem.read64Hi(at);
        if (dlo === 0 && dhi === 0) break;
        if (l < 3 && (dlo & 3) !== 1) {
          const off = lo + i * pgsize;
          this.#dropTable(at, l, dhi, dlo, (hi + Math.floor(off / TWO32)) >>> 0, off >>> 0);
        } else mem.write64(at, 0, 0);
      }
    } else {
      const view = this.#scratch.view(n);
      const w = this.#scratch.words;
      mem.readBytes(slot, view);
      for (; i < n; i++) {
        const dlo = w[2 * i]!;
        const dhi = w[2 * i + 1]!;
        if (dlo === 0 && dhi === 0) break;
        if (l < 3 && (dlo & 3) !== 1) {
          const off = lo + i * pgsize;
          this.#dropTable(
            slot + i * 8,
            l,
            dhi,
            dlo,
            (hi + Math.floor(off / TWO32)) >>> 0,
            off >>> 0,
          );
        }
      }
      if (i > 0) mem.writeBytes(slot, this.#scratch.zeroView(i));
    }
    if (i > 0 && !this.#coherent) this.#cleanRange(slot, i * 8);
    const tlb = this.#tlb;
    if (gather != null && !gather.queued && tlb.addPage !== null) {
      for (let j = 0; j < i; j++) {
        const off = lo + j * pgsize;
        tlb.page(gather, this.#cbIova((hi + Math.floor(off / TWO32)) >>> 0, off >>> 0), pgsize);
      }
    }
    return i * pgsize;
  }

  // ---- translate -------------------------------------------------------------------------

  /**
   * The output address for `iova`, or 0 when nothing maps it (so a mapping of PA 0 cannot be
   * told from none, as in the kernel). There is no range check: bits above `ias` are ignored.
   *
   * **Errors:** `EINVAL` when `iova` is not a whole number.
   */
  iovaToPhys(iova: IovaArg): PhysAddr {
    // Fast path: a leaf in the table the walk cache holds.
    const c = this.#cLevel;
    if (typeof iova === "number" && c >= 0) {
      const hi = (iova / TWO32) >>> 0;
      const lo = iova >>> 0;
      if (
        hi * TWO32 + lo === iova &&
        (hi & this.#keyHi[c]!) === this.#cKeyHi &&
        (lo & this.#keyLo[c]!) === this.#cKeyLo
      ) {
        const s = this.#shift[c]!;
        const slot = this.#cTable + (((lo >>> s) | (hi << (32 - s))) & this.#mask[c]!) * 8;
        const mem = this.#mem;
        const dlo = mem.read64Lo(slot);
        if ((dlo & 3) === (c === 3 ? 3 : 1)) {
          const pa = this.#decode(mem.read64Hi(slot), dlo);
          // SAFETY: a decoded LPAE address ORed with an in-block offset stays below 2^53.
          return (((((pa / TWO32) >>> 0) | (hi & this.#offHi[c]!)) >>> 0) * TWO32 +
            (((pa >>> 0) | (lo & this.#offLo[c]!)) >>> 0)) as PhysAddr;
        }
      }
    }
    return this.#physSlow(iova);
  }

  #physSlow(iova: IovaArg): PhysAddr {
    this.#live();
    checkIova("ArmLpaeIoPgtable.iovaToPhys", iova, this.#split);
    const hi = this.#split[0]!;
    const lo = this.#split[1]!;
    const mem = this.#mem;
    let l: number;
    let table: number;
    const c = this.#cLevel;
    if (
      c >= 0 &&
      (hi & this.#keyHi[c]!) === this.#cKeyHi &&
      (lo & this.#keyLo[c]!) === this.#cKeyLo
    ) {
      l = c;
      table = this.#cTable;
    } else {
      l = this.#start;
      table = this.#root;
    }
    for (;;) {
      const slot = table + this.#idx(hi, lo, l) * 8;
      const dlo = mem.read64Lo(slot);
      const dhi = mem.read64Hi(slot);
      const t = dlo & 3;
      if (l === 3 ? t === 3 : t === 1) {
        const pa = this.#decode(dhi, dlo);
        // OR, not add: the kernel ORs the offset into whatever address bits the leaf holds.
        const offLo = lo & this.#offLo[l]!;
        const offHi = hi & this.#offHi[l]!;
        // SAFETY: a decoded LPAE address plus an in-block offset stays below 2^53.
        return (((((pa / TWO32) >>> 0) | offHi) >>> 0) * TWO32 +
          (((pa >>> 0) | offLo) >>> 0)) as PhysAddr;
      }
      // SAFETY: 0 is the kernel's "no translation".
      if (l === 3 || t !== 3) return 0 as PhysAddr;
      table = this.#decode(dhi, dlo);
      l++;
      this.#remember(l, hi, lo, table);
    }
  }

  // ---- inspection and teardown -----------------------------------------------------------

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
    this.#cLevel = -1;
    this.#tlb.all();
    this.#freeTable(this.#root, this.#start, this.#rootBytes);
  }

  // ---- errors ----------------------------------------------------------------------------

  #badPgsize(pgsize: number): DevrefError {
    return err(
      "EINVAL",
      `ArmLpaeIoPgtable.mapPages: pgsize ${String(pgsize)} is not one of the sizes this table maps (narrowed pgsizeBitmap ` +
        `0x${this.cfg.pgsizeBitmap.toString(16)}, levels ${this.#start}–3): pick one size from the bitmap`,
      { parameter: "pgsize", mapped: 0 },
    );
  }

  #exists(hi: number, lo: number, i: number): DevrefError {
    return err(
      "EEXIST",
      `IOVA ${hexAddr(this.#cbIova(hi, lo))} (leaf ${i} of the run) is already mapped: unmap it first`,
      { mapped: 0 },
    );
  }
}
