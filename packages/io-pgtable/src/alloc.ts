//! C source: drivers/iommu/io-pgtable.c (alloc_io_pgtable_ops, free_io_pgtable_ops)

import { checkOneOf, type PhysAllocator } from "@devref/raw-device";
import { IO_PGTABLE_FORMATS, type IoPgtableFormat } from "./constants.js";
import { AppleDartIoPgtable } from "./dart.js";
import { ArmLpaeIoPgtable } from "./lpae.js";
import type { ArmLpaeFormat, IoPgtableConfig } from "./types.js";

/**
 * Allocates an I/O page table of `format` in memory from `allocator`
 * (`alloc_io_pgtable_ops`). The returned table's `cfg` is what the kernel writes back into
 * the caller's cfg: narrowed `pgsizeBitmap`, clamped `ias`/`oas`, the register fields, and the
 * root address(es).
 *
 * The allocator supplies zeroed, naturally aligned table memory, and its `memory` is where
 * every descriptor lives, so a caller can plug in its own and read the tables itself.
 *
 * **Invariants:** the caller's `cfg` object is never modified; the table is `Disposable` and
 * disposing it frees every table page.
 *
 * **Errors:** `EINVAL` with the reason wherever the kernel's allocation returns null (unknown
 * quirks, no usable granule, an unsupported `oas`, a stage-2 root that would need more than 16
 * concatenated tables, a DART configuration outside 4K/16K pages or oas 36/42, …), and
 * `EINVAL` naming the argument (`details.parameter`) for malformed input: an unknown format,
 * a `cfg` field of the wrong type (e.g. `cfg.tlb.tlbAddPage` not a function), an allocator
 * or memory missing methods. Nothing is allocated when it fails. `ENOMEM` when the root cannot
 * be allocated.
 *
 * //! C header: include/linux/io-pgtable.h
 *
 * @example
 * ```ts
 * const pages = new BuddyAllocator(new SparseMemory(), 0x8000_0000, 1 << 26);
 * using t = allocIoPgtable("arm-64-lpae-s2", { pgsizeBitmap: 0x40201000, ias: 40, oas: 40 }, pages);
 * t.cfg.armLpaeS2Cfg.vtcr.sl; // 1: a concatenated root starting at level 1
 * ```
 */
export function allocIoPgtable<F extends ArmLpaeFormat>(
  format: F,
  cfg: IoPgtableConfig,
  allocator: PhysAllocator,
): ArmLpaeIoPgtable<F>;
export function allocIoPgtable(
  format: "apple-dart" | "apple-dart2",
  cfg: IoPgtableConfig,
  allocator: PhysAllocator,
): AppleDartIoPgtable;
export function allocIoPgtable(
  format: IoPgtableFormat,
  cfg: IoPgtableConfig,
  allocator: PhysAllocator,
): ArmLpaeIoPgtable | AppleDartIoPgtable;
export function allocIoPgtable(
  format: IoPgtableFormat,
  cfg: IoPgtableConfig,
  allocator: PhysAllocator,
): ArmLpaeIoPgtable | AppleDartIoPgtable {
  const f = checkOneOf("allocIoPgtable", "format", format, IO_PGTABLE_FORMATS);
  switch (f) {
    case "arm-64-lpae-s1":
    case "arm-64-lpae-s2":
      return new ArmLpaeIoPgtable(f, cfg, allocator);
    case "apple-dart":
    case "apple-dart2":
      return new AppleDartIoPgtable(f, cfg, allocator);
  }
}
