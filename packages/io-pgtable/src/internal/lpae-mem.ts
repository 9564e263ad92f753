//! The LPAE walks through the PhysicalMemory methods: every descriptor is read and written as
//! a little-endian 64-bit word at its physical address, for memories without page views.

import type { DevrefError, Iova, PhysicalMemory } from "@devref/raw-device";
import type { IommuIotlbGather } from "../types.js";
import { DescriptorScratch, err } from "./args.js";
import { hexAddr, TWO32 } from "./bits.js";
import { type LpaeGeo, SW_SYNC_HI } from "./lpae-geo.js";
import type { TableStore } from "./table-store.js";

/** Entries handled through one bulk copy rather than word by word. */
const BULK_MIN = 8;

/** The error for a leaf (or a block in the way) where a map wants to write. */
export function existsError(geo: LpaeGeo, hi: number, lo: number, i: number): DevrefError {
  return err(
    "EEXIST",
    `IOVA ${hexAddr(geo.cbIova(hi, lo))} (leaf ${i} of the run) is already mapped: unmap it first`,
    { mapped: 0 },
  );
}

/**
 * The operations of an LPAE table on its memory, after the table has checked the arguments.
 * Two implementations walk the same tables and write the same bytes: {@link LpaeMemEngine}
 * through the memory's methods, and the page-view engine through live page views.
 */
export interface LpaeEngine {
  /** One leaf of `pgsize` in the table the walk cache holds; -1 when this path cannot decide. */
  mapOne(iova: number, paddr: number, pgsize: number, prot: number): number;
  /** One leaf of `pgsize` with no gather; bytes unmapped, or -1 when this path cannot decide. */
  unmapOne(iova: number, pgsize: number): number;
  /**
   * {@link unmapOne} into a checked gather: `tlbAddPage` for the cleared leaf unless the
   * gather is queued, as the general path does; -1 when this path cannot decide.
   */
  unmapOneGathered(iova: number, pgsize: number, gather: IommuIotlbGather): number;
  /** The translation of a number IOVA from the walk cache; -1 when this path cannot decide. */
  physOne(iova: number): number;
  /** Writes `n` leaves at level `l` (checked: in range, aligned, within one table and 2^oas). */
  map(hi: number, lo: number, pHi: number, pLo: number, l: number, n: number, prot: number): void;
  /** Clears up to `n` slots at level `l`; returns how many were cleared. */
  unmap(hi: number, lo: number, l: number, n: number, gather: IommuIotlbGather | null): number;
  /** The output address for `hi:lo`, or 0 (no range check: high bits are ignored). */
  phys(hi: number, lo: number): number;
  /** Frees every table, root included. */
  freeAll(): void;
}

/**
 * The LPAE walks over {@link PhysicalMemory} methods, with a one-entry walk cache.
 *
 * **Invariants:** the walk cache only ever holds a table reached for an in-range address, and
 * is dropped whenever a table is freed.
 */
export class LpaeMemEngine implements LpaeEngine {
  private readonly geo: LpaeGeo;
  private readonly store: TableStore;
  private readonly mem: PhysicalMemory;
  private readonly root: number;
  private readonly scratch: DescriptorScratch;
  private cLevel = -1;
  private cKeyHi = 0;
  private cKeyLo = 0;
  private cTable = 0;

  constructor(geo: LpaeGeo, store: TableStore, root: number) {
    this.geo = geo;
    this.store = store;
    this.mem = store.mem;
    this.root = root;
    this.scratch = new DescriptorScratch(Math.max(geo.ept, 1));
  }

  /** Records the table at level `l` for `hi:lo`, for in-range addresses only (see the class). */
  private remember(l: number, hi: number, lo: number, table: number): void {
    const g = this.geo;
    if (l <= g.start || !g.inRange(hi, lo)) return;
    this.cLevel = l;
    this.cKeyHi = hi & g.keyHi[l]!;
    this.cKeyLo = lo & g.keyLo[l]!;
    this.cTable = table;
  }

  mapOne(iova: number, paddr: number, pgsize: number, prot: number): number {
    const g = this.geo;
    const l = this.cLevel;
    // With an empty cache l is -1 and fastSize[-1] is undefined, so the test fails.
    if (pgsize !== g.fastSize[l]) return -1;
    const hi = (iova / TWO32) >>> 0;
    const lo = iova >>> 0;
    const pHi = (paddr / TWO32) >>> 0;
    const pLo = paddr >>> 0;
    // Zero for a prot without READ or WRITE; prot is a number here, so the mask test bounds it.
    const attr = (prot & 63) === prot ? (l === 3 ? g.pageLo[prot]! : g.blockLo[prot]!) : 0;
    if (
      hi * TWO32 + lo === iova &&
      (hi & g.keyHi[l]!) === this.cKeyHi &&
      (lo & g.keyLo[l]!) === this.cKeyLo &&
      pHi * TWO32 + pLo === paddr &&
      paddr < g.paLimit &&
      ((lo | pLo) & g.offLo[l]!) === 0 &&
      ((hi | pHi) & g.offHi[l]!) === 0 &&
      attr !== 0
    ) {
      const s = g.shift[l]!;
      const slot = this.cTable + (((lo >>> s) | (hi << (32 - s))) & g.mask[l]!) * 8;
      const mem = this.mem;
      if (mem.read64Lo(slot) === 0) {
        mem.write64(
          slot,
          (attr | (pLo & 0xffff_f000) | (((pHi >>> 16) & 0xf) << 12)) >>> 0,
          (g.attrHi[prot]! | (pHi & 0xffff)) >>> 0,
        );
        return pgsize;
      }
    }
    return -1;
  }

  unmapOne(iova: number, pgsize: number): number {
    const g = this.geo;
    const l = this.cLevel;
    if (pgsize !== g.fastSize[l]) return -1;
    const hi = (iova / TWO32) >>> 0;
    const lo = iova >>> 0;
    if (
      hi * TWO32 + lo === iova &&
      (hi & g.keyHi[l]!) === this.cKeyHi &&
      (lo & g.keyLo[l]!) === this.cKeyLo &&
      (lo & g.offLo[l]!) === 0 &&
      (hi & g.offHi[l]!) === 0
    ) {
      const s = g.shift[l]!;
      const slot = this.cTable + (((lo >>> s) | (hi << (32 - s))) & g.mask[l]!) * 8;
      const mem = this.mem;
      if ((mem.read64Lo(slot) & 3) === (l === 3 ? 3 : 1)) {
        mem.write64(slot, 0, 0);
        return pgsize;
      }
    }
    return -1;
  }

  unmapOneGathered(iova: number, pgsize: number, gather: IommuIotlbGather): number {
    const r = this.unmapOne(iova, pgsize);
    if (r > 0 && !gather.queued) gatherOne(this.geo, this.store, gather, iova, r);
    return r;
  }

  physOne(iova: number): number {
    const g = this.geo;
    const c = this.cLevel;
    if (c < 0) return -1;
    const hi = (iova / TWO32) >>> 0;
    const lo = iova >>> 0;
    if (
      hi * TWO32 + lo === iova &&
      (hi & g.keyHi[c]!) === this.cKeyHi &&
      (lo & g.keyLo[c]!) === this.cKeyLo
    ) {
      const s = g.shift[c]!;
      const slot = this.cTable + (((lo >>> s) | (hi << (32 - s))) & g.mask[c]!) * 8;
      const mem = this.mem;
      const dlo = mem.read64Lo(slot);
      if ((dlo & 3) === (c === 3 ? 3 : 1)) {
        const pa = g.decode(mem.read64Hi(slot), dlo);
        return (
          ((((pa / TWO32) >>> 0) | (hi & g.offHi[c]!)) >>> 0) * TWO32 +
          (((pa >>> 0) | (lo & g.offLo[c]!)) >>> 0)
        );
      }
    }
    return -1;
  }

  /** Frees the table at `pa` (absolute level `l`) and every table below it. */
  private freeTable(pa: number, l: number, bytes: number): void {
    if (l < 3) {
      const mem = this.mem;
      const entries = bytes / 8;
      for (let i = 0; i < entries; i++) {
        const at = pa + i * 8;
        const dlo = mem.read64Lo(at);
        const dhi = mem.read64Hi(at);
        if ((dlo === 0 && dhi === 0) || (dlo & 3) === 1) continue;
        this.freeTable(this.geo.decode(dhi, dlo), l + 1, this.geo.granule);
      }
    }
    this.cLevel = -1;
    this.store.free(pa, bytes);
  }

  /** Clears the table descriptor at `slot` (level `l`) and frees its subtree, as an unmap at `l` does. */
  private dropTable(
    slot: number,
    l: number,
    dhi: number,
    dlo: number,
    ihi: number,
    ilo: number,
  ): void {
    const g = this.geo;
    this.store.tlb.walk(g.cbIova(ihi, ilo), g.block[l]!, g.granule);
    this.freeTable(g.decode(dhi, dlo), l + 1, g.granule);
    this.mem.write64(slot, 0, 0);
    if (!g.coherent) this.store.cleanRange(slot, 8);
  }

  /** Walks from the root to the table at level `target`, allocating empty slots on the way. */
  private walkAlloc(hi: number, lo: number, target: number): number {
    const g = this.geo;
    if (
      this.cLevel === target &&
      (hi & g.keyHi[target]!) === this.cKeyHi &&
      (lo & g.keyLo[target]!) === this.cKeyLo
    )
      return this.cTable;
    const mem = this.mem;
    let table = this.root;
    for (let l = g.start; l < target; l++) {
      const slot = table + g.idx(hi, lo, l) * 8;
      const dlo = mem.read64Lo(slot);
      const dhi = mem.read64Hi(slot);
      if (dlo === 0 && dhi === 0) {
        const next = this.store.allocTable(g.granule, `a level-${l + 1} table`);
        const descLo = g.tableLo(next);
        const descHi = g.tableHiWord(next);
        mem.write64(slot, descLo, descHi);
        if (!g.coherent) {
          this.store.cleanRange(slot, 8);
          mem.write64(slot, descLo, (descHi | SW_SYNC_HI) >>> 0);
        }
        table = next;
      } else if ((dlo & 3) === 1) {
        throw existsError(g, hi, lo, 0);
      } else {
        table = g.decode(dhi, dlo);
      }
    }
    this.remember(target, hi, lo, table);
    return table;
  }

  map(hi: number, lo: number, pHi: number, pLo: number, l: number, n: number, prot: number): void {
    const g = this.geo;
    const table = this.walkAlloc(hi, lo, l);
    const pgsize = g.block[l]!;
    const slot = table + g.idx(hi, lo, l) * 8;
    const attrLo = l === 3 ? g.pageLo[prot]! : g.blockLo[prot]!;
    const attrHi = g.attrHi[prot]!;
    const leafType = l === 3 ? 3 : 1;
    const mem = this.mem;
    if (n === 0) return;
    if (n < BULK_MIN) {
      for (let i = 0; i < n; i++) {
        const at = slot + i * 8;
        const dlo = mem.read64Lo(at);
        if (dlo !== 0) {
          const t = dlo & 3;
          if (t === leafType) throw existsError(g, hi, lo, i);
          if (t === 3) {
            const off = lo + i * pgsize;
            this.dropTable(
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
      const view = this.scratch.view(n);
      const w = this.scratch.words;
      mem.readBytes(slot, view);
      for (let i = 0; i < n; i++) {
        const dlo = w[2 * i]!;
        if (dlo !== 0) {
          const t = dlo & 3;
          if (t === leafType) throw existsError(g, hi, lo, i);
          if (t === 3) {
            const off = lo + i * pgsize;
            this.dropTable(
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
    if (!g.coherent) this.store.cleanRange(slot, n * 8);
  }

  unmap(hi: number, lo: number, l: number, n: number, gather: IommuIotlbGather | null): number {
    const g = this.geo;
    const mem = this.mem;
    const pgsize = g.block[l]!;
    let table: number;
    if (
      this.cLevel === l &&
      (hi & g.keyHi[l]!) === this.cKeyHi &&
      (lo & g.keyLo[l]!) === this.cKeyLo
    ) {
      table = this.cTable;
    } else {
      table = this.root;
      for (let k = g.start; k < l; k++) {
        const slot = table + g.idx(hi, lo, k) * 8;
        const dlo = mem.read64Lo(slot);
        const dhi = mem.read64Hi(slot);
        if (dlo === 0 && dhi === 0) return 0;
        if ((dlo & 3) === 1) return 0; // a larger block: no splitting in current kernels
        table = g.decode(dhi, dlo);
      }
      this.remember(l, hi, lo, table);
    }
    const slot = table + g.idx(hi, lo, l) * 8;
    let i = 0;
    if (n === 1) {
      const dlo = mem.read64Lo(slot);
      const dhi = dlo === 0 ? mem.read64Hi(slot) : 0;
      if (dlo === 0 && dhi === 0) return 0;
      if (l < 3 && (dlo & 3) !== 1) this.dropTable(slot, l, mem.read64Hi(slot), dlo, hi, lo);
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
          this.dropTable(at, l, dhi, dlo, (hi + Math.floor(off / TWO32)) >>> 0, off >>> 0);
        } else mem.write64(at, 0, 0);
      }
    } else {
      const view = this.scratch.view(n);
      const w = this.scratch.words;
      mem.readBytes(slot, view);
      for (; i < n; i++) {
        const dlo = w[2 * i]!;
        const dhi = w[2 * i + 1]!;
        if (dlo === 0 && dhi === 0) break;
        if (l < 3 && (dlo & 3) !== 1) {
          const off = lo + i * pgsize;
          this.dropTable(
            slot + i * 8,
            l,
            dhi,
            dlo,
            (hi + Math.floor(off / TWO32)) >>> 0,
            off >>> 0,
          );
        }
      }
      if (i > 0) mem.writeBytes(slot, this.scratch.zeroView(i));
    }
    if (i > 0 && !g.coherent) this.store.cleanRange(slot, i * 8);
    addPages(g, this.store, gather, hi, lo, pgsize, i);
    return i;
  }

  phys(hi: number, lo: number): number {
    const g = this.geo;
    const mem = this.mem;
    let l: number;
    let table: number;
    const c = this.cLevel;
    if (c >= 0 && (hi & g.keyHi[c]!) === this.cKeyHi && (lo & g.keyLo[c]!) === this.cKeyLo) {
      l = c;
      table = this.cTable;
    } else {
      l = g.start;
      table = this.root;
    }
    for (;;) {
      const slot = table + g.idx(hi, lo, l) * 8;
      const dlo = mem.read64Lo(slot);
      const dhi = mem.read64Hi(slot);
      const t = dlo & 3;
      if (l === 3 ? t === 3 : t === 1) return leafPa(g, l, dhi, dlo, hi, lo);
      if (l === 3 || t !== 3) return 0;
      table = g.decode(dhi, dlo);
      l++;
      this.remember(l, hi, lo, table);
    }
  }

  freeAll(): void {
    this.cLevel = -1;
    this.freeTable(this.root, this.geo.start, this.geo.rootBytes);
  }
}

/** The output address of the leaf `dhi:dlo` at level `l` for input `hi:lo`. */
export function leafPa(
  g: LpaeGeo,
  l: number,
  dhi: number,
  dlo: number,
  hi: number,
  lo: number,
): number {
  const pa = g.decode(dhi, dlo);
  // OR, not add: the kernel ORs the offset into whatever address bits the leaf holds.
  return (
    ((((pa / TWO32) >>> 0) | (hi & g.offHi[l]!)) >>> 0) * TWO32 +
    (((pa >>> 0) | (lo & g.offLo[l]!)) >>> 0)
  );
}

/**
 * `tlbAddPage` for the one leaf a one-leaf unmap cleared at the number `iova`, with the
 * address the general path would pass (a TTBR1 table's callbacks see the 64-bit bigint).
 */
export function gatherOne(
  g: LpaeGeo,
  store: TableStore,
  gather: IommuIotlbGather,
  iova: number,
  pgsize: number,
): void {
  // SAFETY: the table's own input address of a leaf it just cleared, a whole number < 2^53.
  const at = iova as Iova;
  store.tlb.page(gather, g.ttbr1 ? g.cbIova((iova / TWO32) >>> 0, iova >>> 0) : at, pgsize);
}

/** `tlbAddPage` for each of `count` cleared leaves, when the gather asks for it. */
export function addPages(
  g: LpaeGeo,
  store: TableStore,
  gather: IommuIotlbGather | null,
  hi: number,
  lo: number,
  pgsize: number,
  count: number,
): void {
  const tlb = store.tlb;
  if (gather === null || gather.queued || tlb.addPage === null) return;
  for (let j = 0; j < count; j++) {
    const off = lo + j * pgsize;
    tlb.page(gather, g.cbIova((hi + Math.floor(off / TWO32)) >>> 0, off >>> 0), pgsize);
  }
}
