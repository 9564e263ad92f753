//! The LPAE table shape as numbers the hot paths index by level: shifts, masks, block sizes,
//! walk-cache key masks, and the descriptor attribute bits for every prot value.

import type { Iova } from "@devref/raw-device";
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
} from "../constants.js";
import type { IovaArg } from "../types.js";
import { TWO32 } from "./bits.js";
import type { LpaeSetup } from "./lpae-config.js";

/** Bit 55, software: a non-coherent table descriptor that has been cleaned (hi-word bit 23). */
export const SW_SYNC_HI: number = 1 << 23;
/** Bit 63, NSTable (hi-word bit 31). */
const NSTABLE_HI = 0x8000_0000;

/**
 * Everything about an LPAE table that does not change after allocation, laid out for the hot
 * paths: per-level arrays indexed by absolute level 0–3.
 *
 * **Invariants:** immutable after construction; shared by the table and its walk engine.
 */
export class LpaeGeo {
  readonly start: number;
  readonly granule: number;
  /** Entries in a granule-sized table. */
  readonly ept: number;
  readonly rootEntries: number;
  readonly rootBytes: number;
  readonly ias: number;
  readonly paLimit: number;
  readonly ttbr1: boolean;
  readonly coherent: boolean;
  readonly big64K: boolean;
  /** Hi word of a table descriptor apart from the address (NSTable under ARM_NS). */
  readonly tableHi: number;
  /** Input range as bounds on each half (see `inRange`). */
  readonly hiMin: number;
  readonly hiEnd: number;
  readonly loMin: number;
  readonly loEnd: number;
  /** Per level: index shift, index mask, block size. */
  readonly shift: Int32Array = new Int32Array(4);
  readonly mask: Int32Array = new Int32Array(4);
  readonly block: Float64Array = new Float64Array(4);
  /** Per level: the in-block offset (= alignment) mask of the low and high halves. */
  readonly offLo: Int32Array = new Int32Array(4);
  readonly offHi: Int32Array = new Int32Array(4);
  /** Per level: walk-cache key masks for a table at that level (the bits above its span). */
  readonly keyLo: Int32Array = new Int32Array(4);
  readonly keyHi: Int32Array = new Int32Array(4);
  /** Per level: the leaf size the one-leaf fast paths accept; -1 for none or a non-coherent walk. */
  readonly fastSize: Float64Array = new Float64Array(4).fill(-1);
  /** Level whose block size is 2^k, or -1; indexed by k. */
  readonly levelOf: Int8Array = new Int8Array(64).fill(-1);
  /** Descriptor attribute bits per prot value, type bits included, for pages (L3) and blocks. */
  readonly pageLo: Int32Array = new Int32Array(IOMMU_PROT_MASK + 1);
  readonly blockLo: Int32Array = new Int32Array(IOMMU_PROT_MASK + 1);
  /** Hi-word attribute bits per prot value (XN, DBM). Zero lo attributes mean "maps nothing". */
  readonly attrHi: Int32Array = new Int32Array(IOMMU_PROT_MASK + 1);

  constructor(setup: LpaeSetup) {
    const g = setup.geometry;
    this.start = g.startLevel;
    this.granule = g.granule;
    this.ept = g.granule / 8;
    this.rootEntries = g.rootEntries;
    this.rootBytes = g.rootBytes;
    this.ias = setup.ias;
    this.paLimit = 2 ** setup.oas;
    this.ttbr1 = (setup.quirks & IO_PGTABLE_QUIRK_ARM_TTBR1) !== 0;
    this.coherent = setup.coherentWalk;
    this.big64K = g.granule === 0x1_0000;
    this.tableHi = (setup.quirks & IO_PGTABLE_QUIRK_ARM_NS) !== 0 ? NSTABLE_HI : 0;
    const ias = setup.ias;
    if (this.ttbr1) {
      // Every bit from ias up must be one.
      this.hiMin = ias >= 32 ? TWO32 - 2 ** (ias - 32) : 0xffff_ffff;
      this.hiEnd = TWO32;
      this.loMin = ias >= 32 ? 0 : TWO32 - 2 ** ias;
      this.loEnd = TWO32;
    } else {
      this.hiMin = 0;
      this.hiEnd = ias >= 32 ? 2 ** (ias - 32) : 1;
      this.loMin = 0;
      this.loEnd = ias >= 32 ? TWO32 : 2 ** ias;
    }
    const bpl = g.bitsPerLevel;
    for (let l = 0; l < 4; l++) {
      const s = (4 - l) * bpl + 3;
      const block = 2 ** s;
      this.shift[l] = s;
      this.mask[l] = l === g.startLevel ? 2 ** g.pgdBits - 1 : 2 ** bpl - 1;
      this.block[l] = block;
      this.offLo[l] = s >= 32 ? -1 : block - 1;
      this.offHi[l] = s >= 32 ? 2 ** (s - 32) - 1 : 0;
      const span = s + bpl;
      this.keyLo[l] = span >= 32 ? 0 : ~(2 ** span - 1);
      this.keyHi[l] = span >= 32 ? ~(2 ** (span - 32) - 1) : -1;
      if (l >= g.startLevel && l >= 1 && Math.floor(setup.pgsizeBitmap / block) % 2 === 1) {
        this.levelOf[s] = l;
        if (setup.coherentWalk) this.fastSize[l] = block;
      }
    }
    this.#fillAttrs(setup);
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
      // A prot without READ or WRITE maps nothing; 0 lets the fast paths reject it in one test.
      const usable = (prot & (IOMMU_READ | IOMMU_WRITE)) !== 0;
      this.pageLo[prot] = usable ? lo | 3 : 0;
      this.blockLo[prot] = usable ? lo | 1 : 0;
      this.attrHi[prot] = usable ? hi : 0;
    }
  }

  /** The index of `hi:lo` in a table at level `l`. */
  idx(hi: number, lo: number, l: number): number {
    const s = this.shift[l]!;
    return s >= 32
      ? (hi >>> (s - 32)) & this.mask[l]!
      : ((lo >>> s) | (hi << (32 - s))) & this.mask[l]!;
  }

  /** `(s64)iova >> ias` is 0, or all ones for TTBR1: one comparison on each half. */
  inRange(hi: number, lo: number): boolean {
    return hi >= this.hiMin && hi < this.hiEnd && lo >= this.loMin && lo < this.loEnd;
  }

  /** The level whose leaves are `pgsize` bytes, or -1 when the narrowed bitmap has none. */
  levelFor(pgsize: number): number {
    const lg = pgsize <= 0x8000_0000 ? 31 - Math.clz32(pgsize) : 63 - Math.clz32(pgsize / TWO32);
    const l = lg >= 0 ? this.levelOf[lg]! : -1;
    return l >= 0 && this.block[l] === pgsize ? l : -1;
  }

  /** The output address held in a descriptor (table or leaf), as a number. */
  decode(dhi: number, dlo: number): number {
    const xlo = (dlo & 0xffff_f000) >>> 0;
    const xhi = dhi & 0xffff;
    if (!this.big64K) return xhi * TWO32 + xlo;
    return (xhi | (((xlo >>> 12) & 0xf) << 16)) * TWO32 + ((xlo & 0xffff_0000) >>> 0);
  }

  /** The lo word of a table descriptor for a table at `pa` (type bits included). */
  tableLo(pa: number): number {
    const phi = (pa / TWO32) >>> 0;
    return ((pa & 0xffff_f000) | (((phi >>> 16) & 0xf) << 12) | 3) >>> 0;
  }

  /** The hi word of a table descriptor for a table at `pa` (NSTable included). */
  tableHiWord(pa: number): number {
    return ((((pa / TWO32) >>> 0) & 0xffff) | this.tableHi) >>> 0;
  }

  /** An address for a TLB callback or a message: a number, or a bigint for TTBR1. */
  cbIova(hi: number, lo: number): IovaArg {
    // SAFETY: below 2^53 unless TTBR1, where the full 64-bit value is passed as a bigint.
    if (!this.ttbr1) return (hi * TWO32 + lo) as Iova;
    return (BigInt(hi) << 32n) | BigInt(lo);
  }
}
