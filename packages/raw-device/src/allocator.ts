//! C header: include/linux/gfp.h (alloc_pages / free_pages), in the shape of a buddy allocator.

import { formatAddr, type PhysAddr } from "./address.js";
import { DevrefError, describeValue } from "./errors.js";
import type { PhysicalMemory } from "./memory.js";

/**
 * Hands out zeroed, naturally aligned blocks of physical memory.
 *
 * Page tables, coherent DMA buffers and the simulator's RAM all allocate through this
 * interface, so a caller can plug in its own.
 *
 * **Invariants:** a returned block is zeroed and aligned to `max(align, size rounded up to
 * a power of two)`; it stays allocated until `free` is called with the same address and size.
 *
 * **Errors:** `ENOMEM` when no block fits; `EINVAL` for a bad size or a free of something
 * that was not allocated.
 */
export interface PhysAllocator {
  /** The memory the blocks live in. */
  readonly memory: PhysicalMemory;
  alloc(size: number, align?: number): PhysAddr;
  free(pa: PhysAddr, size: number): void;
  /** Bytes currently allocated (after rounding each request up to its block size). */
  readonly bytesInUse: number;
}

/**
 * Whether `n` is a power of two that a `number` holds exactly (1 … 2^52), with no error for
 * any other value: the one test of the packages (granules, page sizes, alignments).
 *
 * @example
 * ```ts
 * isPowerOfTwo(4096); // true
 * isPowerOfTwo(2 ** 53 - 1); // false (log2 of it rounds to 53)
 * ```
 */
export function isPowerOfTwo(n: number): boolean {
  return Number.isSafeInteger(n) && n > 0 && 2 ** Math.round(Math.log2(n)) === n;
}

/**
 * A binary buddy allocator over `[base, base + length)` of a {@link PhysicalMemory}.
 *
 * Requests are rounded up to a power of two no smaller than `minBlock`; freed blocks merge
 * with their buddies. Choice is deterministic: the lowest free address of the smallest
 * fitting order.
 *
 * @example
 * ```ts
 * const mem = new SparseMemory();
 * const pages = new BuddyAllocator(mem, 0x8000_0000, 1 << 30);
 * const table = pages.alloc(4096); // zeroed, 4 KiB aligned
 * pages.free(table, 4096);
 * ```
 */
export class BuddyAllocator implements PhysAllocator {
  readonly memory: PhysicalMemory;
  readonly base: number;
  readonly length: number;
  readonly minBlock: number;
  #bytesInUse = 0;
  /** Free block addresses per order; order k holds blocks of minBlock * 2^k bytes. */
  readonly #free: Set<number>[] = [];
  /** Order of every allocated block, by address. */
  readonly #allocated = new Map<number, number>();
  #generation = 0;

  constructor(memory: PhysicalMemory, base: number, length: number, minBlock = 64) {
    if (
      typeof memory !== "object" ||
      memory === null ||
      typeof memory.size !== "number" ||
      typeof memory.zero !== "function"
    ) {
      throw new DevrefError(
        "EINVAL",
        `new BuddyAllocator: memory must be a PhysicalMemory, not ${describeValue(memory)}`,
      );
    }
    if (!isPowerOfTwo(minBlock)) {
      throw new DevrefError("EINVAL", `minBlock ${describeValue(minBlock)} must be a power of two`);
    }
    if (
      !Number.isSafeInteger(base) ||
      !Number.isSafeInteger(length) ||
      base < 0 ||
      length < minBlock ||
      base % minBlock !== 0 ||
      length % minBlock !== 0 ||
      base + length > memory.size
    ) {
      throw new DevrefError(
        "EINVAL",
        `allocator region ${formatAddr(base)}+${describeValue(length)} must be whole, aligned to ` +
          `minBlock ${minBlock}, at least one block long and inside memory of size ${formatAddr(memory.size)}`,
      );
    }
    this.memory = memory;
    this.base = base;
    this.length = length;
    this.minBlock = minBlock;
    // Carve the region into the largest naturally aligned blocks that fit.
    let at = base;
    const end = base + length;
    while (at < end) {
      let size = minBlock;
      while (at % (size * 2) === 0 && at + size * 2 <= end) size *= 2;
      this.#freeList(this.#orderOf(size)).add(at);
      at += size;
    }
  }

  /**
   * Whether every byte of `[pa, pa + length)` lies in allocated blocks: what a device model
   * checks before DMA to catch a use after free (KASAN for DMA). Addresses outside the
   * region are not this allocator's and count as not allocated.
   *
   * **Errors:** `EINVAL` for a non-number address or a negative length.
   */
  isAllocated(pa: number, length = 1): boolean {
    if (typeof pa !== "number" || typeof length !== "number" || !(length >= 0)) {
      throw new DevrefError(
        "EINVAL",
        `isAllocated(${describeValue(pa)}, ${describeValue(length)}): give an address and a length ≥ 0`,
      );
    }
    let at = pa;
    const end = pa + Math.max(length, 1);
    while (at < end) {
      const block = this.#blockAt(at);
      if (block < 0) return false;
      const size = this.minBlock * 2 ** this.#allocated.get(block)!;
      at = block + size;
    }
    return true;
  }

  /**
   * The allocated block holding `pa`, as `{ start, size }`, or null when `pa` is free or
   * outside the region: lets a caller that checks many accesses to one buffer (a device
   * model's use-after-free watch) remember the whole block, not just the bytes it checked.
   *
   * **Errors:** `EINVAL` for a non-number address.
   *
   * @example
   * ```ts
   * const pa = ram.alloc(0x3000);
   * ram.blockAt(pa + 0x1800); // { start: pa, size: 0x4000 } (rounded up to a power of two)
   * ```
   */
  blockAt(pa: number): { readonly start: number; readonly size: number } | null {
    if (typeof pa !== "number") {
      throw new DevrefError("EINVAL", `blockAt(${describeValue(pa)}): give an address (a number)`);
    }
    const start = this.#blockAt(pa);
    if (start < 0) return null;
    return { start, size: this.minBlock * 2 ** this.#allocated.get(start)! };
  }

  /** The start of the allocated block holding `pa`, or −1. */
  #blockAt(pa: number): number {
    if (!(pa >= this.base && pa < this.base + this.length)) return -1;
    for (let size = this.minBlock; size <= this.length; size *= 2) {
      const start = pa - ((pa - this.base) % size);
      const order = this.#allocated.get(start);
      if (order !== undefined && this.minBlock * 2 ** order === size) return start;
    }
    return -1;
  }

  /**
   * Grows by one with every allocation and free: a caller that verified a range with
   * {@link isAllocated} may trust the answer while the generation is unchanged.
   */
  get generation(): number {
    return this.#generation;
  }

  get bytesInUse(): number {
    return this.#bytesInUse;
  }

  /** Bytes still free. */
  get bytesFree(): number {
    return this.length - this.#bytesInUse;
  }

  #orderOf(size: number): number {
    return Math.log2(size / this.minBlock);
  }

  #freeList(order: number): Set<number> {
    for (let k = this.#free.length; k <= order; k++) this.#free[k] = new Set();
    return this.#free[order]!;
  }

  /** Block size for a request, or throws EINVAL. */
  #blockSize(size: number, align: number): number {
    if (!Number.isSafeInteger(size) || size <= 0 || size > this.length) {
      throw new DevrefError(
        "EINVAL",
        `allocation size ${describeValue(size)} must be a positive whole number no larger than the region (${this.length})`,
      );
    }
    if (!isPowerOfTwo(align) || align > 2 ** 52) {
      throw new DevrefError("EINVAL", `alignment ${describeValue(align)} must be a power of two`);
    }
    let block = this.minBlock;
    while (block < size || block < align) block *= 2;
    return block;
  }

  alloc(size: number, align = 1): PhysAddr {
    const block = this.#blockSize(size, align);
    const want = this.#orderOf(block);
    let order = want;
    let found = -1;
    for (; order < this.#free.length; order++) {
      const list = this.#free[order]!;
      if (list.size > 0) {
        found = Number.POSITIVE_INFINITY;
        for (const at of list) if (at < found) found = at;
        list.delete(found);
        break;
      }
    }
    if (found < 0) {
      throw new DevrefError(
        "ENOMEM",
        `no free block of ${block} bytes in ${formatAddr(this.base)}+${this.length} ` +
          `(${this.#bytesInUse} bytes in use): free something or give the allocator a larger region`,
      );
    }
    // Split down to the wanted order, keeping the low half each time.
    while (order > want) {
      order--;
      this.#freeList(order).add(found + this.minBlock * 2 ** order);
    }
    this.#allocated.set(found, want);
    this.#generation++;
    this.#bytesInUse += block;
    this.memory.zero(found, block);
    // SAFETY: found lies inside the region, which was checked to lie inside memory.
    return found as PhysAddr;
  }

  free(pa: PhysAddr, size: number): void {
    const order = typeof pa === "number" ? this.#allocated.get(pa) : undefined;
    if (order === undefined) {
      throw new DevrefError(
        "EINVAL",
        `free of ${formatAddr(pa)}: no block starts there (double free, or an address this allocator never returned)`,
      );
    }
    const block = this.minBlock * 2 ** order;
    if (!(Number.isSafeInteger(size) && size > 0 && size <= block)) {
      throw new DevrefError(
        "EINVAL",
        `free of ${formatAddr(pa)} with size ${describeValue(size)}: the block there is ${block} bytes; pass the size it was allocated with`,
      );
    }
    this.#allocated.delete(pa);
    this.#generation++;
    this.#bytesInUse -= block;
    let at: number = pa;
    let k = order;
    for (;;) {
      const size = this.minBlock * 2 ** k;
      const buddy = at % (size * 2) === 0 ? at + size : at - size;
      const list = this.#freeList(k);
      if (!list.has(buddy)) break;
      list.delete(buddy);
      at = Math.min(at, buddy);
      k++;
    }
    this.#freeList(k).add(at);
  }
}
