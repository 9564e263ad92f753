//! Physical memory as the CPU and devices see it (the kernel's view through phys_to_virt).

import { formatAddr, PHYS_ADDR_LIMIT } from "./address.js";
import { DevrefError, describeValue } from "./errors.js";

/**
 * Byte-addressed little-endian physical memory.
 *
 * 64-bit values travel as two 32-bit halves (`lo`, `hi`), never as `bigint`: every value a
 * caller stores is then exact, and the hot paths of page tables stay on small integers.
 * All 32-bit results are unsigned.
 *
 * **Invariants:** memory never written reads as zero; addresses are whole numbers below
 * {@link PhysicalMemory.size}.
 *
 * **Errors:** every method throws `EFAULT` for an address outside the memory.
 */
export interface PhysicalMemory {
  /** One past the highest address. */
  readonly size: number;
  read8(pa: number): number;
  write8(pa: number, value: number): void;
  read32(pa: number): number;
  write32(pa: number, value: number): void;
  /** The low 32 bits of the little-endian 64-bit word at `pa`. */
  read64Lo(pa: number): number;
  /** The high 32 bits of the little-endian 64-bit word at `pa`. */
  read64Hi(pa: number): number;
  write64(pa: number, lo: number, hi: number): void;
  /** Copies `dest.length` bytes starting at `pa` into `dest`. */
  readBytes(pa: number, dest: Uint8Array): void;
  /** Copies `src` into memory starting at `pa`. */
  writeBytes(pa: number, src: Uint8Array): void;
  /** Sets `length` bytes starting at `pa` to zero. */
  zero(pa: number, length: number): void;
  /**
   * Optional: the live 32-bit words (1024, little-endian 64-bit values as lo/hi pairs) of the
   * 4 KiB page holding `pa`, allocating the page if needed. Writes through the view are writes
   * to memory and every later write to the page shows in it, for as long as the memory lives:
   * an implementation must never replace or drop the storage of a page it has handed out
   * (zeroing clears it in place). Page-table code walks and edits tables through these views
   * instead of calling the methods above; memories without it are used through the methods.
   */
  pageWords?(pa: number): Uint32Array;
}

const PAGE_SHIFT = 12;
const PAGE_SIZE = 1 << PAGE_SHIFT;
const PAGE_MASK = PAGE_SIZE - 1;
const CACHE_SLOTS = 256;
const CACHE_MASK = CACHE_SLOTS - 1;

if (new Uint8Array(new Uint32Array([1]).buffer)[0] !== 1) {
  // The page store reads words through Uint32Array views, which follow the host's order.
  throw new Error("@devref/raw-device needs a little-endian host");
}

/** A page that stands for every never-written page on the read path; never written itself. */
// module-state: a constant (all zeros, never written), shared by every memory.
const ZERO_PAGE = new Uint32Array(PAGE_SIZE / 4);

/** A page of {@link SparseMemory}: words for the fast paths, bytes for copies. */
interface Page {
  readonly words: Uint32Array;
  readonly bytes: Uint8Array;
  /** Handed out by `pageWords`: zeroed in place, never dropped. */
  pinned: boolean;
}

/**
 * Sparse physical memory: a 52-bit address space in which a 4 KiB page is allocated the
 * first time it is written, and never-written memory reads as zero without allocating.
 *
 * A small direct-mapped cache of recently used pages keeps repeated accesses to a few
 * pages (a page-table walk, a descriptor ring) off the page map. {@link SparseMemory.pageWords}
 * hands out a page's storage itself, for code that keeps its own references (page tables).
 *
 * **Invariants:** `pagesAllocated * 4096` bytes are held; zeroing a whole page gives it back,
 * unless the page was handed out by `pageWords` (pinned): then it is cleared in place, so
 * every view stays the page's live storage for the life of the memory.
 *
 * **Errors:** `EFAULT` for addresses that are not whole numbers in `[0, size)`.
 *
 * @example
 * ```ts
 * const mem = new SparseMemory();
 * mem.write64(0x8_0000_0000, 0x1234, 0x5678);
 * mem.read64Hi(0x8_0000_0000); // 0x5678
 * ```
 */
export class SparseMemory implements PhysicalMemory {
  readonly size: number;
  readonly #pages = new Map<number, Page>();
  /** Page-aligned base address held in each cache slot, or -1. */
  readonly #tags = new Float64Array(CACHE_SLOTS).fill(-1);
  readonly #slots: Uint32Array[] = new Array<Uint32Array>(CACHE_SLOTS).fill(ZERO_PAGE);

  /** @param size one past the highest address; defaults to 2^52. */
  constructor(size: number = PHYS_ADDR_LIMIT) {
    if (!Number.isSafeInteger(size) || size <= 0 || size > PHYS_ADDR_LIMIT || size % PAGE_SIZE) {
      throw new DevrefError(
        "EINVAL",
        `memory size ${describeValue(size)} must be a positive multiple of 4096 no larger than 2^52`,
      );
    }
    this.size = size;
  }

  /** Pages currently backed by storage. */
  get pagesAllocated(): number {
    return this.#pages.size;
  }

  /** Bytes currently backed by storage. */
  get bytesAllocated(): number {
    return this.#pages.size * PAGE_SIZE;
  }

  #fault(pa: number, width: number): never {
    throw new DevrefError(
      "EFAULT",
      `access of ${width} byte(s) at ${typeof pa === "number" ? formatAddr(pa) : describeValue(pa)} ` +
        `is outside physical memory [0, ${formatAddr(this.size)}): pass a whole-number address ` +
        "inside the memory",
    );
  }

  /** Words of the page holding `pa` for reading; the shared zero page if never written. */
  #readPage(pa: number): Uint32Array {
    const base = pa - (pa & PAGE_MASK);
    const slot = (pa >>> PAGE_SHIFT) & CACHE_MASK;
    if (this.#tags[slot] === base) return this.#slots[slot]!;
    const page = this.#pages.get(base);
    const words = page === undefined ? ZERO_PAGE : page.words;
    this.#tags[slot] = base;
    this.#slots[slot] = words;
    return words;
  }

  /** Words of the page holding `pa` for writing, allocating it on first use. */
  #writePage(pa: number): Uint32Array {
    const base = pa - (pa & PAGE_MASK);
    const slot = (pa >>> PAGE_SHIFT) & CACHE_MASK;
    if (this.#tags[slot] === base) {
      const words = this.#slots[slot]!;
      if (words !== ZERO_PAGE) return words;
    }
    const page = this.#pageForWrite(base);
    this.#tags[slot] = base;
    this.#slots[slot] = page.words;
    return page.words;
  }

  /** The page at page-aligned `base`, allocated if it was never written. */
  #pageForWrite(base: number): Page {
    let page = this.#pages.get(base);
    if (page === undefined) {
      const words = new Uint32Array(PAGE_SIZE / 4);
      page = { words, bytes: new Uint8Array(words.buffer), pinned: false };
      this.#pages.set(base, page);
      // A read may have cached the zero page for this address: point the slot at the new page.
      const slot = (base >>> PAGE_SHIFT) & CACHE_MASK;
      if (this.#tags[slot] === base) this.#slots[slot] = words;
    }
    return page;
  }

  #check(pa: number, width: number): void {
    // One comparison chain covers NaN, negatives, fractions and the top of memory.
    if (typeof pa !== "number" || !(pa >= 0 && pa <= this.size - width && Math.floor(pa) === pa)) {
      this.#fault(pa, width);
    }
  }

  #checkValue(value: number): void {
    if (typeof value !== "number") {
      throw new DevrefError(
        "EINVAL",
        `memory write of ${describeValue(value)}: the value must be a number`,
      );
    }
  }

  #checkBytes(bytes: Uint8Array, what: string): void {
    if (!(bytes instanceof Uint8Array)) {
      throw new DevrefError("EINVAL", `${what} must be a Uint8Array, not ${describeValue(bytes)}`);
    }
  }

  read8(pa: number): number {
    this.#check(pa, 1);
    const word = this.#readPage(pa)[(pa & PAGE_MASK) >>> 2]!;
    return (word >>> ((pa & 3) * 8)) & 0xff;
  }

  write8(pa: number, value: number): void {
    this.#check(pa, 1);
    this.#checkValue(value);
    const words = this.#writePage(pa);
    const index = (pa & PAGE_MASK) >>> 2;
    const shift = (pa & 3) * 8;
    words[index] = (words[index]! & ~(0xff << shift)) | ((value & 0xff) << shift);
  }

  read32(pa: number): number {
    this.#check(pa, 4);
    if ((pa & 3) !== 0) return this.#readUnaligned32(pa);
    return this.#readPage(pa)[(pa & PAGE_MASK) >>> 2]!;
  }

  write32(pa: number, value: number): void {
    this.#check(pa, 4);
    this.#checkValue(value);
    if ((pa & 3) !== 0) {
      this.#writeUnaligned32(pa, value);
      return;
    }
    this.#writePage(pa)[(pa & PAGE_MASK) >>> 2] = value;
  }

  read64Lo(pa: number): number {
    this.#check(pa, 8);
    if ((pa & 7) !== 0) return this.read32(pa);
    return this.#readPage(pa)[(pa & PAGE_MASK) >>> 2]!;
  }

  read64Hi(pa: number): number {
    this.#check(pa, 8);
    if ((pa & 7) !== 0) return this.read32(pa + 4);
    return this.#readPage(pa)[((pa & PAGE_MASK) >>> 2) + 1]!;
  }

  write64(pa: number, lo: number, hi: number): void {
    this.#check(pa, 8);
    this.#checkValue(lo);
    this.#checkValue(hi);
    if ((pa & 7) === 0) {
      // An aligned 64-bit word never crosses a page.
      const words = this.#writePage(pa);
      const index = (pa & PAGE_MASK) >>> 2;
      words[index] = lo;
      words[index + 1] = hi;
      return;
    }
    this.write32(pa, lo);
    this.write32(pa + 4, hi);
  }

  #readUnaligned32(pa: number): number {
    return (
      (this.read8(pa) |
        (this.read8(pa + 1) << 8) |
        (this.read8(pa + 2) << 16) |
        (this.read8(pa + 3) << 24)) >>>
      0
    );
  }

  #writeUnaligned32(pa: number, value: number): void {
    for (let i = 0; i < 4; i++) this.write8(pa + i, value >>> (i * 8));
  }

  readBytes(pa: number, dest: Uint8Array): void {
    this.#checkBytes(dest, "readBytes: dest");
    this.#check(pa, dest.length);
    let done = 0;
    while (done < dest.length) {
      const at = pa + done;
      const offset = at & PAGE_MASK;
      const n = Math.min(PAGE_SIZE - offset, dest.length - done);
      const page = this.#pages.get(at - offset);
      if (page === undefined) dest.fill(0, done, done + n);
      else dest.set(page.bytes.subarray(offset, offset + n), done);
      done += n;
    }
  }

  writeBytes(pa: number, src: Uint8Array): void {
    this.#checkBytes(src, "writeBytes: src");
    this.#check(pa, src.length);
    let done = 0;
    while (done < src.length) {
      const at = pa + done;
      const offset = at & PAGE_MASK;
      const n = Math.min(PAGE_SIZE - offset, src.length - done);
      this.#pageForWrite(at - offset).bytes.set(src.subarray(done, done + n), offset);
      done += n;
    }
  }

  /**
   * The live words of the 4 KiB page holding `pa` (see {@link PhysicalMemory.pageWords}),
   * allocating it if it was never written. The page is pinned: it stays allocated and keeps
   * this storage, and zeroing it clears the words in place.
   *
   * **Errors:** `EFAULT` for an address outside the memory.
   *
   * @example
   * ```ts
   * const w = mem.pageWords(0x8000_1000);
   * w[2] = 0x1234; // the same as mem.write32(0x8000_1008, 0x1234)
   * ```
   */
  pageWords(pa: number): Uint32Array {
    this.#check(pa, 1);
    const base = pa - (pa & PAGE_MASK);
    const page = this.#pageForWrite(base);
    page.pinned = true;
    return page.words;
  }

  /** Zeroes `length` bytes; whole pages are given back rather than cleared, unless pinned. */
  zero(pa: number, length: number): void {
    if (typeof length !== "number" || !Number.isSafeInteger(length) || length < 0) {
      throw new DevrefError(
        "EINVAL",
        `zero length ${describeValue(length)} must be a whole number ≥ 0`,
      );
    }
    this.#check(pa, length);
    let done = 0;
    while (done < length) {
      const at = pa + done;
      const offset = at & PAGE_MASK;
      const n = Math.min(PAGE_SIZE - offset, length - done);
      const base = at - offset;
      const page = this.#pages.get(base);
      if (page !== undefined) {
        if (n === PAGE_SIZE && !page.pinned) {
          this.#pages.delete(base);
          const slot = (at >>> PAGE_SHIFT) & CACHE_MASK;
          if (this.#tags[slot] === base) this.#slots[slot] = ZERO_PAGE;
        } else {
          page.bytes.fill(0, offset, offset + n);
        }
      }
      done += n;
    }
  }
}
