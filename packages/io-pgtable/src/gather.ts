//! C header: include/linux/iommu.h (struct iommu_iotlb_gather and its helpers)

import { checkAddress, checkBoolean, checkSize } from "@devref/raw-device";
import { isWhole } from "./internal/bits.js";
import type { IommuIotlbGather } from "./types.js";

const LIMIT = Number.MAX_SAFE_INTEGER;

/** Whether `iova` is a whole number in `[0, LIMIT)` and `size` one in `[1, LIMIT]`. */
function isRange(iova: unknown, size: unknown): boolean {
  return isWhole(iova) && iova < LIMIT && isWhole(size) && size >= 1;
}

/**
 * A driver-side TLB gather: the range and page size of invalidations queued by `tlbAddPage`,
 * and whether the domain defers them to a flush queue.
 *
 * **Invariants:** an empty gather has `start = +∞`, `end = 0`, `pgsize = 0`; `end` is inclusive.
 *
 * **Errors:** `EINVAL` naming the argument for a `queued` that is not a boolean, or an `iova`
 * or `size` that is not a whole number (below 2^53; a TTBR1 driver passes offsets, not the
 * bigint addresses).
 *
 * @example
 * ```ts
 * const g = new IotlbGather();
 * table.unmapPages(iova(0), 0x1000, 16, g); // the driver's tlbAddPage calls g.addRange
 * ```
 */
export class IotlbGather implements IommuIotlbGather {
  start: number = Number.POSITIVE_INFINITY;
  end = 0;
  pgsize = 0;
  queued: boolean;

  constructor(queued = false) {
    this.queued = checkBoolean("IotlbGather", "queued", queued);
  }

  /** Widens the range to cover `[iova, iova + size)` (`iommu_iotlb_gather_add_range`). */
  addRange(iova: number, size: number): void {
    // The checkers' own test, written out: the shared checkers run only to throw.
    if (!isRange(iova, size)) {
      checkAddress("IotlbGather.addRange", "iova", iova, LIMIT);
      checkSize("IotlbGather.addRange", "size", size, 1, LIMIT);
    }
    const last = iova + size - 1;
    if (iova < this.start) this.start = iova;
    if (last > this.end) this.end = last;
  }

  /** Whether `[iova, iova + size)` neither overlaps nor touches the range (`..._is_disjoint`). */
  isDisjoint(iova: number, size: number): boolean {
    if (!isRange(iova, size)) {
      checkAddress("IotlbGather.isDisjoint", "iova", iova, LIMIT);
      checkSize("IotlbGather.isDisjoint", "size", size, 1, LIMIT);
    }
    const last = iova + size - 1;
    return this.end !== 0 && (last + 1 < this.start || iova > this.end + 1);
  }

  /** Empties the gather, as the driver's sync does. */
  reset(): void {
    this.start = Number.POSITIVE_INFINITY;
    this.end = 0;
    this.pgsize = 0;
  }
}
