//! Table memory for one page table: allocation with the checks the allocator's answers need,
//! freeing, the bytes held, cache maintenance for non-coherent walks, and the TLB callbacks.

import {
  DevrefError,
  type PhysAddr,
  type PhysAllocator,
  type PhysicalMemory,
} from "@devref/raw-device";
import { err, type TlbCallbacks } from "./args.js";

/**
 * Where a table's pages come from and go back to.
 *
 * **Invariants:** `bytesHeld` is the sum of the sizes of the blocks allocated and not yet
 * freed; every block handed out is inside memory and aligned to its size.
 */
export class TableStore {
  bytesHeld = 0;
  readonly alloc: PhysAllocator;
  readonly mem: PhysicalMemory;
  readonly tlb: TlbCallbacks;
  readonly coherent: boolean;
  private readonly clean: ((pa: PhysAddr, bytes: number) => void) | null;

  constructor(
    alloc: PhysAllocator,
    tlb: TlbCallbacks,
    coherent: boolean,
    clean: ((pa: PhysAddr, bytes: number) => void) | null,
  ) {
    this.alloc = alloc;
    this.mem = alloc.memory;
    this.tlb = tlb;
    this.coherent = coherent;
    this.clean = clean;
  }

  /**
   * A zeroed, naturally aligned block of `bytes` for `what`.
   *
   * **Errors:** `ENOMEM` when the allocator fails; `EINVAL` when it returns something that is
   * not an address inside memory aligned to the size (the block is given back first).
   */
  allocTable(bytes: number, what: string): number {
    let pa: PhysAddr;
    try {
      pa = this.alloc.alloc(bytes, bytes);
    } catch (e) {
      throw new DevrefError(
        "ENOMEM",
        `could not allocate ${bytes} bytes for ${what}: give the allocator more memory`,
        { cause: e, details: { mapped: 0 } },
      );
    }
    if (
      typeof pa !== "number" ||
      !Number.isSafeInteger(pa) ||
      pa < 0 ||
      pa + bytes > this.mem.size ||
      pa % bytes !== 0
    ) {
      if (typeof pa === "number") this.alloc.free(pa, bytes);
      throw err(
        "EINVAL",
        `the allocator returned ${String(pa)} for ${bytes} bytes, not an address inside memory aligned to its size: table memory must be naturally aligned`,
        { mapped: 0 },
      );
    }
    this.bytesHeld += bytes;
    if (!this.coherent) this.cleanRange(pa, bytes);
    return pa;
  }

  /** Gives a table's block back. */
  free(pa: number, bytes: number): void {
    this.bytesHeld -= bytes;
    // SAFETY: pa came from this allocator when the table was created.
    this.alloc.free(pa as PhysAddr, bytes);
  }

  /** The cache clean a non-coherent walk needs after a table write. */
  cleanRange(pa: number, bytes: number): void {
    // SAFETY: pa is a table address this table allocated or a slot inside one.
    if (this.clean !== null) this.clean(pa as PhysAddr, bytes);
  }
}
