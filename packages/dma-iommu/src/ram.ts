//! C source: mm/page_alloc.c as the DMA layer uses it (alloc_pages with a zone retry),
//! drivers/iommu/iommu-pages.h (iommu_alloc_pages and their accounting)
//!
//! The RAM a DMA system hands out, over the caller's allocators: every block it holds is
//! recorded with what it is for, so the audit can check each kind against the bookkeeping
//! that will give it back, and a device model can ask whether an address is still in use.

import {
  BuddyAllocator,
  checkAddress,
  checkSize,
  DevrefError,
  formatAddr,
  type PhysAddr,
  type PhysAllocator,
  type PhysicalMemory,
} from "@devref/raw-device";

/** What a block of the DMA system's RAM is used for. */
export type DmaRamUse = "buffer" | "coherent" | "swiotlb" | "iommu-pages";

/** The uses, in the order the audit lists them. */
export const RAM_USES: readonly DmaRamUse[] = ["buffer", "coherent", "swiotlb", "iommu-pages"];

/** The smallest block the DMA system asks for: a page, as `alloc_pages` hands out. */
export const RAM_BLOCK = 4096;

/** One block the system holds. */
interface RamBlock {
  readonly size: number;
  readonly use: DmaRamUse;
  readonly from: PhysAllocator;
}

/** The allocator block behind a request of `size` bytes: a power of two of at least a page. */
export function ramBlockOf(size: number): number {
  let block = RAM_BLOCK;
  while (block < size) block *= 2;
  return block;
}

/**
 * @internal The DMA system's RAM: the caller's allocators, tried in order, and the blocks
 * the system holds from them. Not exported from the package: the system's methods are the
 * way in.
 *
 * **Invariants:** every block recorded was returned by its allocator and not yet freed;
 * `bytes(use)` is the sum of the recorded blocks of that use.
 */
export class DmaRam {
  readonly memory: PhysicalMemory;
  readonly allocators: readonly PhysAllocator[];
  readonly #blocks: Map<number, RamBlock> = new Map();
  readonly #bytes: Map<DmaRamUse, number> = new Map();

  constructor(memory: PhysicalMemory, allocators: readonly PhysAllocator[]) {
    this.memory = memory;
    this.allocators = allocators;
  }

  /**
   * A zeroed block of `size` bytes (a power of two ≥ 4 KiB) aligned to `align`, lying in
   * `[min, limit]`, from the first allocator that has one there; null when none has. A block
   * outside the range goes straight back (the kernel's retry in a lower zone).
   */
  alloc(size: number, align: number, min: number, limit: number, use: DmaRamUse): PhysAddr | null {
    for (const a of this.allocators) {
      // A block larger than a whole bank cannot come from it (the allocator calls it EINVAL).
      if (a instanceof BuddyAllocator && size > a.length) continue;
      let pa: PhysAddr;
      try {
        pa = a.alloc(size, align);
      } catch (e) {
        if (DevrefError.is(e, "ENOMEM")) continue;
        throw e;
      }
      if (pa < min || pa + size - 1 > limit) {
        a.free(pa, size);
        continue;
      }
      this.#blocks.set(pa, { size, use, from: a });
      this.#bytes.set(use, (this.#bytes.get(use) ?? 0) + size);
      return pa;
    }
    return null;
  }

  /** The size of the block of `use` starting at `pa`, or undefined. */
  sizeAt(pa: number, use: DmaRamUse): number | undefined {
    const b = this.#blocks.get(pa);
    return b !== undefined && b.use === use ? b.size : undefined;
  }

  /** Gives a recorded block back to its allocator. Does nothing for an unrecorded address. */
  free(pa: number): void {
    const b = this.#blocks.get(pa);
    if (b === undefined) return;
    this.#blocks.delete(pa);
    this.#bytes.set(b.use, (this.#bytes.get(b.use) ?? 0) - b.size);
    // SAFETY: recorded from the address the allocator returned.
    b.from.free(pa as PhysAddr, b.size);
  }

  /** Bytes held for `use`. */
  bytes(use: DmaRamUse): number {
    return this.#bytes.get(use) ?? 0;
  }

  /** Bytes held for every use. */
  get total(): number {
    let n = 0;
    for (const v of this.#bytes.values()) n += v;
    return n;
  }

  /** What the block holding all of `[pa, pa + size)` is used for, or null. */
  useOf(pa: number, size: number): DmaRamUse | null {
    for (const [start, b] of this.#blocks) {
      if (pa >= start && pa + size <= start + b.size) return b.use;
    }
    return null;
  }
}

/**
 * Memory for IOMMU page tables (the kernel's `iommu_alloc_pages`), drawn from the DMA
 * system's RAM and counted in its audit: hand it to io-pgtable as the table allocator.
 *
 * **Invariants:** every page it hands out is RAM of the system, zeroed, aligned to its
 * size; `bytesInUse` is what is out.
 *
 * **Errors:** `ENOMEM` when no RAM is left; `EINVAL` for a bad size or alignment, or a free
 * of something it did not hand out (or with another size).
 *
 * @example
 * ```ts
 * const table = allocIoPgtable("arm-64-lpae-s1", cfg, system.iommuPages);
 * ```
 */
export class IommuPages implements PhysAllocator {
  readonly memory: PhysicalMemory;
  readonly #ram: DmaRam;

  /** @internal Made by the DMA system. */
  constructor(ram: DmaRam) {
    this.memory = ram.memory;
    this.#ram = ram;
  }

  /** Table pages out, in bytes. */
  get bytesInUse(): number {
    return this.#ram.bytes("iommu-pages");
  }

  alloc(size: number, align = 1): PhysAddr {
    const where = "IommuPages.alloc";
    checkSize(where, "size", size, 1, 2 ** 40);
    checkSize(where, "align", align, 1, 2 ** 40);
    const block = ramBlockOf(Math.max(size, align));
    const pa = this.#ram.alloc(block, block, 0, Number.MAX_SAFE_INTEGER, "iommu-pages");
    if (pa === null) {
      throw new DevrefError(
        "ENOMEM",
        `no RAM left for an IOMMU page table of ${size} bytes: free DMA memory or give the system more RAM`,
      );
    }
    return pa;
  }

  free(pa: PhysAddr, size: number): void {
    const where = "IommuPages.free";
    checkAddress(where, "pa", pa);
    checkSize(where, "size", size, 1, 2 ** 40);
    const held = this.#ram.sizeAt(pa, "iommu-pages");
    if (held === undefined || held < size) {
      throw new DevrefError(
        "EINVAL",
        `IommuPages.free(${formatAddr(pa, 1)}, ${size}): no table page of that size starts there (never allocated, or freed already)`,
      );
    }
    this.#ram.free(pa);
  }
}
