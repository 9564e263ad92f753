//! The LPAE walks through page views: every table keeps the live words of its pages and its
//! child tables beside its descriptors (what the kernel's __va() of a table address gives it),
//! so a walk is pointer chasing and a leaf write is a store into a Uint32Array. The descriptors
//! in memory are exactly those the memory-method engine writes.

import type { PhysicalMemory } from "@devref/raw-device";
import type { IommuIotlbGather } from "../types.js";
import { err } from "./args.js";
import { hex64, hexAddr, TWO32 } from "./bits.js";
import { type LpaeGeo, SW_SYNC_HI } from "./lpae-geo.js";
import { addPages, existsError, gatherOne, type LpaeEngine, leafPa } from "./lpae-mem.js";
import type { TableStore } from "./table-store.js";

const PAGE = 0x1000;
/** The page view of an empty cache slot (never read: the node beside it is null). */
const EMPTY = new Uint32Array(0);

/** Key masks (hi, lo) for the input bits above `span`. */
function keyMasks(span: number): [number, number] {
  return span >= 32 ? [~(2 ** (span - 32) - 1), 0] : [-1, ~(2 ** span - 1)];
}

/**
 * One table: the live words of the 4 KiB pages holding it, its child tables by index, and how
 * many of its slots are in use.
 *
 * **Invariants:** `kids[i]` is the node of the table slot `i` points to, and null exactly when
 * the slot holds no table descriptor; `kids` is null for level-3 tables, which hold none.
 * `used` is the number of slots whose descriptor is not zero (either word).
 */
export class TableNode {
  readonly pa: number;
  /** One view per 4 KiB page of the table; entry `i` is in `views[i >>> 9]`. */
  readonly views: Uint32Array[];
  /** `views[0]`, one load closer: all of a table with a 4K granule. */
  readonly w0: Uint32Array;
  /** Word offset of entry 0 in `views[0]`: non-zero only for a root smaller than a page. */
  readonly base: number;
  readonly kids: (TableNode | null)[] | null;
  /** Slots in the table. */
  readonly entries: number;
  used = 0;

  constructor(
    pa: number,
    views: Uint32Array[],
    base: number,
    kids: (TableNode | null)[] | null,
    entries: number,
  ) {
    this.pa = pa;
    this.views = views;
    this.w0 = views[0]!;
    this.base = base;
    this.kids = kids;
    this.entries = entries;
  }
}

/**
 * The LPAE walks over page views, with a walk cache of one table per level.
 *
 * **Invariants:** the walk cache only ever holds tables reached for in-range addresses (so a
 * key match implies the address is in range), and is emptied whenever a table is freed. Its
 * keys cover one 4 KiB page of a table (the whole table with a 4K granule), and at levels 2
 * and 3 it also holds that page's view, so a cached one-leaf operation is a key test and one
 * typed-array access.
 */
export class LpaeViewEngine implements LpaeEngine {
  private readonly geo: LpaeGeo;
  private readonly store: TableStore;
  private readonly mem: PhysicalMemory;
  private readonly root: TableNode;
  // Walk cache: the table at levels 1, 2 and 3 for the last in-range address, with its key
  // and (levels 2 and 3) the view of the page the key covers.
  private c1: TableNode | null = null;
  private c1h = 0;
  private c1l = 0;
  private c2: TableNode | null = null;
  private c2h = 0;
  private c2l = 0;
  private c2w: Uint32Array = EMPTY;
  private c3: TableNode | null = null;
  private c3h = 0;
  private c3l = 0;
  private c3w: Uint32Array = EMPTY;
  // The one-leaf paths at levels 3 and 2, specialised on constants of this geometry.
  private readonly size3: number;
  private readonly size2: number;
  private readonly s3: number;
  private readonly s2: number;
  private readonly k3h: number;
  private readonly k3l: number;
  private readonly k2h: number;
  private readonly k2l: number;
  private readonly k1h: number;
  private readonly k1l: number;
  /** Index masks of whole tables at levels 3 and 2. */
  private readonly m3: number;
  private readonly m2: number;
  private readonly o3: number;
  private readonly o2: number;
  private readonly paLimit: number;
  /** PA bits 51:48 live in descriptor bits 15:12 with a 64K granule only. */
  private readonly pa51: number;
  private readonly addrLo: number;
  private readonly pageLo: Int32Array;
  private readonly blockLo: Int32Array;
  private readonly attrHi: Int32Array;
  // The output address of the next leaf a run writes.
  private aHi = 0;
  private aLo = 0;

  constructor(geo: LpaeGeo, store: TableStore, rootPa: number) {
    this.geo = geo;
    this.store = store;
    this.mem = store.mem;
    this.size3 = geo.fastSize[3]!;
    this.size2 = geo.fastSize[2]!;
    this.s3 = geo.shift[3]!;
    this.s2 = geo.shift[2]!;
    this.m3 = geo.mask[3]!;
    this.m2 = geo.mask[2]!;
    // A cached key covers the 512 entries of one page (or the whole table, when smaller).
    const page = Math.min(geo.granule / 8, 512);
    [this.k3h, this.k3l] = keyMasks(this.s3 + Math.log2(page));
    [this.k2h, this.k2l] = keyMasks(this.s2 + Math.log2(page));
    [this.k1h, this.k1l] = keyMasks(geo.shift[1]! + Math.log2(page));
    this.o3 = geo.offLo[3]!;
    this.o2 = geo.offLo[2]!;
    this.paLimit = geo.paLimit;
    this.pa51 = geo.big64K ? 0xf : 0;
    this.addrLo = geo.big64K ? 0xffff_0000 | 0 : 0xffff_f000 | 0;
    this.pageLo = geo.pageLo;
    this.blockLo = geo.blockLo;
    this.attrHi = geo.attrHi;
    const views: Uint32Array[] = [];
    for (let k = 0; k < Math.max(geo.rootBytes, PAGE); k += PAGE) views.push(this.view(rootPa + k));
    const base = geo.rootBytes < PAGE ? (rootPa & (PAGE - 1)) >>> 2 : 0;
    const kids = geo.start < 3 ? new Array<TableNode | null>(geo.rootEntries).fill(null) : null;
    this.root = new TableNode(rootPa, views, base, kids, geo.rootEntries);
  }

  /** The live words of the page at `pa`, checked: a memory's own `pageWords` may be wrong. */
  private view(pa: number): Uint32Array {
    // SAFETY: the table chose this engine because pageWords is a function.
    const w = (this.mem.pageWords as (pa: number) => Uint32Array).call(this.mem, pa);
    if (!(w instanceof Uint32Array) || w.length < PAGE / 4) {
      throw err(
        "EINVAL",
        `memory.pageWords(${hexAddr(pa)}) did not return the 1024 words of the page: fix the memory's pageWords or leave it out`,
        { mapped: 0 },
      );
    }
    return w;
  }

  // ---- walk cache ------------------------------------------------------------------------

  private cached(l: number, hi: number, lo: number): TableNode | null {
    if (l === 3) {
      return this.c3 !== null && (hi & this.k3h) === this.c3h && (lo & this.k3l) === this.c3l
        ? this.c3
        : null;
    }
    if (l === 2) {
      return this.c2 !== null && (hi & this.k2h) === this.c2h && (lo & this.k2l) === this.c2l
        ? this.c2
        : null;
    }
    return l === 1 &&
      this.c1 !== null &&
      (hi & this.k1h) === this.c1h &&
      (lo & this.k1l) === this.c1l
      ? this.c1
      : null;
  }

  /** Records `node` as the table at level `l` for `hi:lo`, for in-range addresses only. */
  private remember(l: number, hi: number, lo: number, node: TableNode): void {
    const g = this.geo;
    if (l <= g.start || !g.inRange(hi, lo)) return;
    if (l === 3) {
      this.c3 = node;
      this.c3h = hi & this.k3h;
      this.c3l = lo & this.k3l;
      this.c3w = node.views[g.idx(hi, lo, 3) >>> 9]!;
    } else if (l === 2) {
      this.c2 = node;
      this.c2h = hi & this.k2h;
      this.c2l = lo & this.k2l;
      this.c2w = node.views[g.idx(hi, lo, 2) >>> 9]!;
    } else {
      this.c1 = node;
      this.c1h = hi & this.k1h;
      this.c1l = lo & this.k1l;
    }
  }

  private invalidate(): void {
    this.c1 = null;
    this.c2 = null;
    this.c3 = null;
    this.c2w = EMPTY;
    this.c3w = EMPTY;
  }

  // ---- one leaf, from the walk cache ----------------------------------------------------
  // These paths inline at the caller, so they spell 2^32 (4294967296) and 2^-32
  // (2.3283064365386963e-10, by which multiplying is exact and cheaper than dividing) as
  // literals: a module constant is reloaded and type-checked at every use in optimised code.

  /**
   * One page (level 3) or block (level 2) in the cached table: every check of the general
   * path, or -1. The checks both levels share come first, once, so that the per-level bodies
   * stay small: together they must fit a caller's inlining budget.
   */
  mapOne(iova: number, paddr: number, pgsize: number, prot: number): number {
    const hi = (iova * 2.3283064365386963e-10) >>> 0;
    const lo = iova >>> 0;
    const pHi = (paddr * 2.3283064365386963e-10) >>> 0;
    const pLo = paddr >>> 0;
    if (
      hi * 4294967296 + lo !== iova ||
      pHi * 4294967296 + pLo !== paddr ||
      paddr >= this.paLimit ||
      (prot & 63) !== prot
    )
      return -1;
    if (pgsize === this.size3) return this.map3(hi, lo, pHi, pLo, prot);
    if (pgsize === this.size2) return this.map2(hi, lo, pHi, pLo, prot);
    return -1;
  }

  private map3(hi: number, lo: number, pHi: number, pLo: number, prot: number): number {
    const n = this.c3;
    if (
      n === null ||
      (hi & this.k3h) !== this.c3h ||
      (lo & this.k3l) !== this.c3l ||
      ((lo | pLo) & this.o3) !== 0
    )
      return -1;
    const attr = this.pageLo[prot]!;
    const w = this.c3w;
    // The key fixes the page, so the slot is the index bits within it (never above bit 31).
    const o = ((lo >>> this.s3) & 511) << 1;
    if (attr === 0 || (w[o]! | w[o + 1]!) !== 0) return -1;
    w[o] = attr | (pLo & this.addrLo) | (((pHi >>> 16) & this.pa51) << 12);
    w[o + 1] = this.attrHi[prot]! | (pHi & 0xffff);
    n.used++;
    return this.size3;
  }

  private map2(hi: number, lo: number, pHi: number, pLo: number, prot: number): number {
    const n = this.c2;
    if (
      n === null ||
      (hi & this.k2h) !== this.c2h ||
      (lo & this.k2l) !== this.c2l ||
      ((lo | pLo) & this.o2) !== 0
    )
      return -1;
    const attr = this.blockLo[prot]!;
    const w = this.c2w;
    const o = (((lo >>> this.s2) | (hi << (32 - this.s2))) & 511) << 1;
    if (attr === 0 || (w[o]! | w[o + 1]!) !== 0) return -1;
    w[o] = attr | (pLo & this.addrLo) | (((pHi >>> 16) & this.pa51) << 12);
    w[o + 1] = this.attrHi[prot]! | (pHi & 0xffff);
    n.used++;
    return this.size2;
  }

  unmapOne(iova: number, pgsize: number): number {
    const hi = (iova * 2.3283064365386963e-10) >>> 0;
    const lo = iova >>> 0;
    if (hi * 4294967296 + lo !== iova) return -1;
    if (pgsize === this.size3) return this.unmap3(hi, lo);
    if (pgsize === this.size2) return this.unmap2(hi, lo);
    return -1;
  }

  private unmap3(hi: number, lo: number): number {
    const n = this.c3;
    if (
      n === null ||
      (hi & this.k3h) !== this.c3h ||
      (lo & this.k3l) !== this.c3l ||
      (lo & this.o3) !== 0
    )
      return -1;
    const w = this.c3w;
    const o = ((lo >>> this.s3) & 511) << 1;
    if ((w[o]! | w[o + 1]!) === 0) return 0;
    w[o] = 0;
    w[o + 1] = 0;
    n.used--;
    return this.size3;
  }

  private unmap2(hi: number, lo: number): number {
    const n = this.c2;
    if (
      n === null ||
      (hi & this.k2h) !== this.c2h ||
      (lo & this.k2l) !== this.c2l ||
      (lo & this.o2) !== 0
    )
      return -1;
    const w = this.c2w;
    const o = (((lo >>> this.s2) | (hi << (32 - this.s2))) & 511) << 1;
    const dlo = w[o]!;
    if ((dlo | w[o + 1]!) === 0) return 0;
    // A table here is unmapped with its subtree, on the general path.
    if ((dlo & 3) !== 1) return -1;
    w[o] = 0;
    w[o + 1] = 0;
    n.used--;
    return this.size2;
  }

  unmapOneGathered(iova: number, pgsize: number, gather: IommuIotlbGather): number {
    const r = this.unmapOne(iova, pgsize);
    if (r > 0 && !gather.queued) gatherOne(this.geo, this.store, gather, iova, r);
    return r;
  }

  physOne(iova: number): number {
    const hi = (iova * 2.3283064365386963e-10) >>> 0;
    const lo = iova >>> 0;
    if (hi * 4294967296 + lo !== iova) return -1;
    let w = this.c3w;
    if (this.c3 === null || (hi & this.k3h) !== this.c3h || (lo & this.k3l) !== this.c3l) {
      // One step down from the cached level-2 table, which covers 1 GiB with a 4K granule.
      const n2 = this.c2;
      if (n2 === null || (hi & this.k2h) !== this.c2h || (lo & this.k2l) !== this.c2l) return -1;
      const n = n2.kids![((lo >>> this.s2) | (hi << (32 - this.s2))) & this.m2]!;
      if (n === null) return -1;
      w =
        this.m3 < 512
          ? n.w0
          : n.views[(((lo >>> this.s3) | (hi << (32 - this.s3))) & this.m3) >>> 9]!;
      this.c3 = n;
      this.c3h = hi & this.k3h;
      this.c3l = lo & this.k3l;
      this.c3w = w;
    }
    const o = ((lo >>> this.s3) & 511) << 1;
    const dlo = w[o]!;
    // Anything but a page at level 3 is no translation.
    if ((dlo & 3) !== 3) return 0;
    const dhi = w[o + 1]!;
    return (
      ((dhi & 0xffff) | (((dlo >>> 12) & this.pa51) << 16)) * 4294967296 +
      (((dlo & this.addrLo) | (lo & this.o3)) >>> 0)
    );
  }

  // ---- general paths -------------------------------------------------------------------

  /** The error for a descriptor this engine did not write (memory changed behind its back). */
  private corrupt(pa: number, dhi: number, dlo: number): Error {
    return err(
      "EIO",
      `the descriptor ${hex64(dhi, dlo)} at ${hexAddr(pa)} is not one this table wrote: its memory was changed behind its back`,
      { mapped: 0 },
    );
  }

  /** A new, zeroed table for level `l`. */
  private newTable(l: number): TableNode {
    const g = this.geo;
    const pa = this.store.allocTable(g.granule, `a level-${l} table`);
    try {
      const views: Uint32Array[] = [];
      for (let k = 0; k < g.granule; k += PAGE) views.push(this.view(pa + k));
      const kids = l < 3 ? new Array<TableNode | null>(g.ept).fill(null) : null;
      return new TableNode(pa, views, 0, kids, g.ept);
    } catch (e) {
      this.store.free(pa, g.granule);
      throw e;
    }
  }

  /**
   * The table at level `target` for `hi:lo`, from the deepest cached table on; allocates what
   * is missing when `allocate`, else returns null for a hole or a block in the way.
   */
  private walk(hi: number, lo: number, target: number, allocate: boolean): TableNode | null {
    const g = this.geo;
    let l = target;
    let found: TableNode | null = null;
    for (; l > g.start; l--) {
      found = this.cached(l, hi, lo);
      if (found !== null) break;
    }
    let node: TableNode = this.root;
    if (found === null) l = g.start;
    else node = found;
    for (; l < target; l++) {
      const idx = g.idx(hi, lo, l);
      const kids = node.kids!;
      let kid: TableNode | null = kids[idx]!;
      if (kid === null) {
        const w = node.views[idx >>> 9]!;
        const o = node.base + ((idx & 511) << 1);
        const dlo = w[o]!;
        const dhi = w[o + 1]!;
        if ((dlo | dhi) === 0) {
          if (!allocate) return null;
          kid = this.newTable(l + 1);
          const descHi = g.tableHiWord(kid.pa);
          w[o] = g.tableLo(kid.pa);
          w[o + 1] = descHi;
          if (!g.coherent) {
            this.store.cleanRange(node.pa + idx * 8, 8);
            w[o + 1] = descHi | SW_SYNC_HI;
          }
          kids[idx] = kid;
          node.used++;
        } else if ((dlo & 3) === 1) {
          if (allocate) throw existsError(g, hi, lo, 0);
          return null;
        } else throw this.corrupt(node.pa + idx * 8, dhi, dlo);
      }
      node = kid;
      this.remember(l + 1, hi, lo, node);
    }
    return node;
  }

  /** Frees `node` (level `l`, `bytes` long) and every table below it, children first. */
  private freeNode(node: TableNode, l: number, bytes: number): void {
    const kids = node.kids;
    if (kids !== null) {
      const granule = this.geo.granule;
      for (let i = 0; i < kids.length; i++) {
        const k = kids[i]!;
        if (k !== null) this.freeNode(k, l + 1, granule);
      }
    }
    this.invalidate();
    this.store.free(node.pa, bytes);
  }

  /** Unmaps the table in slot `j` of `node` (level `l`) with its subtree, as the kernel does. */
  private dropTable(node: TableNode, j: number, l: number, ihi: number, ilo: number): void {
    const g = this.geo;
    const w = node.views[j >>> 9]!;
    const o = node.base + ((j & 511) << 1);
    const kid = node.kids?.[j] ?? null;
    if (kid === null) throw this.corrupt(node.pa + j * 8, w[o + 1]!, w[o]!);
    this.store.tlb.walk(g.cbIova(ihi, ilo), g.block[l]!, g.granule);
    this.freeNode(kid, l + 1, g.granule);
    w[o] = 0;
    w[o + 1] = 0;
    node.kids![j] = null;
    node.used--;
    if (!g.coherent) this.store.cleanRange(node.pa + j * 8, 8);
  }

  /**
   * Writes `m` leaves from word `o` of `w`, for output addresses from `aHi:aLo` on. Within a
   * stretch that does not cross a 4 GiB boundary the high word is constant, and the low word
   * is the attribute bits ORed with an address that advances in int32 arithmetic: the
   * attributes sit below the page size, so adding it never disturbs them. The carry into the
   * high word is taken once per stretch.
   */
  private fill(
    w: Uint32Array,
    o: number,
    m: number,
    attrLo: number,
    attrHi: number,
    pgsize: number,
  ): void {
    let aHi = this.aHi;
    let aLo = this.aLo;
    if (pgsize < TWO32) {
      // Below 2^32 a page size is exact as an int32 step (2 GiB would wrap to -2^31, harmlessly).
      const step = pgsize | 0;
      let k = 0;
      while (k < m) {
        const cnt = Math.min(m - k, (TWO32 - aLo) / pgsize);
        const hiWord = attrHi | (aHi & 0xffff);
        let q = attrLo | (((aHi >>> 16) & this.pa51) << 12) | (aLo & this.addrLo);
        const end = o + 2 * cnt;
        // Two leaves per turn, then the odd one.
        const pairs = o + 4 * (cnt >>> 1);
        for (; o < pairs; o += 4) {
          w[o] = q;
          w[o + 1] = hiWord;
          q = (q + step) | 0;
          w[o + 2] = q;
          w[o + 3] = hiWord;
          q = (q + step) | 0;
        }
        if (o < end) {
          w[o] = q;
          w[o + 1] = hiWord;
          o += 2;
        }
        k += cnt;
        aLo += cnt * pgsize;
        if (aLo === TWO32) {
          aLo = 0;
          aHi += 1;
        }
      }
    } else {
      const step = pgsize / TWO32;
      for (let k = 0; k < m; k++, o += 2) {
        w[o] = attrLo | (aLo & this.addrLo) | (((aHi >>> 16) & this.pa51) << 12);
        w[o + 1] = attrHi | (aHi & 0xffff);
        aHi += step;
      }
    }
    this.aHi = aHi;
    this.aLo = aLo;
  }

  map(hi: number, lo: number, pHi: number, pLo: number, l: number, n: number, prot: number): void {
    const g = this.geo;
    const node = this.walk(hi, lo, l, true)!;
    if (n === 0) return;
    const idx = g.idx(hi, lo, l);
    const pgsize = g.block[l]!;
    const leafType = l === 3 ? 3 : 1;
    // Check every slot first, in order: a leaf stops the call, a table is unmapped. A table
    // with no slot in use needs no look.
    let filled = 0;
    for (let i = 0; i < n && node.used !== 0; ) {
      const j = idx + i;
      const w = node.views[j >>> 9]!;
      const o = node.base + ((j & 511) << 1);
      const m = Math.min(n - i, 512 - (j & 511));
      let any = 0;
      const end = o + 2 * m;
      let k = o;
      for (; k + 2 < end; k += 4) any |= w[k]! | w[k + 1]! | w[k + 2]! | w[k + 3]!;
      if (k < end) any |= w[k]! | w[k + 1]!;
      if (any !== 0) {
        for (let k = 0; k < m; k++) {
          const dlo = w[o + 2 * k]!;
          if (dlo === 0) {
            // Free, as on the memory path, even if the high word is not.
            if (w[o + 2 * k + 1]! !== 0) filled++;
            continue;
          }
          const t = dlo & 3;
          if (t === leafType) throw existsError(g, hi, lo, i + k);
          if (t === 3) {
            const off = lo + (i + k) * pgsize;
            this.dropTable(node, j + k, l, (hi + Math.floor(off / TWO32)) >>> 0, off >>> 0);
          } else filled++; // overwritten, as on the memory path
        }
      }
      i += m;
    }
    const attrLo = l === 3 ? this.pageLo[prot]! : this.blockLo[prot]!;
    const attrHi = this.attrHi[prot]!;
    this.aHi = pHi;
    this.aLo = pLo;
    for (let i = 0; i < n; ) {
      const j = idx + i;
      const m = Math.min(n - i, 512 - (j & 511));
      this.fill(node.views[j >>> 9]!, node.base + ((j & 511) << 1), m, attrLo, attrHi, pgsize);
      i += m;
    }
    node.used += n - filled;
    if (!g.coherent) this.store.cleanRange(node.pa + idx * 8, n * 8);
  }

  unmap(hi: number, lo: number, l: number, n: number, gather: IommuIotlbGather | null): number {
    const g = this.geo;
    const node = this.walk(hi, lo, l, false);
    if (node === null) return 0;
    const idx = g.idx(hi, lo, l);
    const pgsize = g.block[l]!;
    // With every slot of the table in use, the run has no hole: no need to look for one.
    const full = l === 3 && node.used === node.entries;
    let i = 0;
    while (i < n) {
      const j = idx + i;
      const w = node.views[j >>> 9]!;
      const o = node.base + ((j & 511) << 1);
      const m = Math.min(n - i, 512 - (j & 511));
      let k = 0;
      if (l === 3) {
        if (full) k = m;
        else while (k < m && (w[o + 2 * k]! | w[o + 2 * k + 1]!) !== 0) k++;
        w.fill(0, o, o + 2 * k);
        node.used -= k;
      } else {
        for (; k < m; k++) {
          const dlo = w[o + 2 * k]!;
          if ((dlo | w[o + 2 * k + 1]!) === 0) break;
          if ((dlo & 3) !== 1) {
            const off = lo + (i + k) * pgsize;
            this.dropTable(node, j + k, l, (hi + Math.floor(off / TWO32)) >>> 0, off >>> 0);
          } else {
            w[o + 2 * k] = 0;
            w[o + 2 * k + 1] = 0;
            node.used--;
          }
        }
      }
      i += k;
      if (k < m) break;
    }
    if (i > 0 && !g.coherent) this.store.cleanRange(node.pa + idx * 8, i * 8);
    addPages(g, this.store, gather, hi, lo, pgsize, i);
    return i;
  }

  phys(hi: number, lo: number): number {
    const g = this.geo;
    let l = 3;
    let found: TableNode | null = null;
    for (; l > g.start; l--) {
      found = this.cached(l, hi, lo);
      if (found !== null) break;
    }
    let node: TableNode = this.root;
    if (found === null) l = g.start;
    else node = found;
    for (;;) {
      const idx = g.idx(hi, lo, l);
      if (l < 3) {
        const kid: TableNode | null = node.kids![idx]!;
        if (kid !== null) {
          node = kid;
          l++;
          this.remember(l, hi, lo, node);
          continue;
        }
      }
      const w = node.views[idx >>> 9]!;
      const o = node.base + ((idx & 511) << 1);
      const dlo = w[o]!;
      const t = dlo & 3;
      if (l === 3 ? t === 3 : t === 1) return leafPa(g, l, w[o + 1]!, dlo, hi, lo);
      return 0;
    }
  }

  freeAll(): void {
    this.invalidate();
    this.freeNode(this.root, this.geo.start, this.geo.rootBytes);
  }
}
