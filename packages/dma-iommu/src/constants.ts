//! C header: include/linux/dma-direction.h, include/linux/dma-mapping.h,
//! include/linux/swiotlb.h, include/linux/iova.h

import { checkInteger, type DmaAddr, describeValue } from "@devref/raw-device";
import { maskOf } from "./internal/mask.js";

/**
 * `DMA_MAPPING_ERROR`: what a failed map returns. The kernel uses all ones (`~0`), which a
 * `number` cannot hold; -1 is its two's-complement reading and is never a valid address.
 */
// SAFETY: a sentinel outside the range of every real DmaAddr (which are ≥ 0).
export const DMA_MAPPING_ERROR: DmaAddr = -1 as DmaAddr;

/** `enum dma_data_direction`: the transfer goes both ways. */
export const DMA_BIDIRECTIONAL = 0;
/** `enum dma_data_direction`: the device reads memory. */
export const DMA_TO_DEVICE = 1;
/** `enum dma_data_direction`: the device writes memory. */
export const DMA_FROM_DEVICE = 2;
/** `enum dma_data_direction`: for debugging only; mapping with it is a bug. */
export const DMA_NONE = 3;

/** One of the four `enum dma_data_direction` values. */
export type DmaDirection =
  | typeof DMA_BIDIRECTIONAL
  | typeof DMA_TO_DEVICE
  | typeof DMA_FROM_DEVICE
  | typeof DMA_NONE;

/** Allow relaxed ordering. */
export const DMA_ATTR_WEAK_ORDERING: number = 1 << 1;
/** Write-combined mapping (allocations). */
export const DMA_ATTR_WRITE_COMBINE: number = 1 << 2;
/** No CPU mapping for an allocation; an opaque cookie comes back instead. */
export const DMA_ATTR_NO_KERNEL_MAPPING: number = 1 << 4;
/** Map and unmap skip CPU cache maintenance and the copy back on unmap. */
export const DMA_ATTR_SKIP_CPU_SYNC: number = 1 << 5;
/** Physically contiguous allocation (IOMMU path). */
export const DMA_ATTR_FORCE_CONTIGUOUS: number = 1 << 6;
/** Hint: build the allocation from single pages. */
export const DMA_ATTR_ALLOC_SINGLE_PAGES: number = 1 << 7;
/** Do not warn on failure (for example a full swiotlb pool). */
export const DMA_ATTR_NO_WARN: number = 1 << 8;
/** Privileged-only mapping (`IOMMU_PRIV`). */
export const DMA_ATTR_PRIVILEGED: number = 1 << 9;
/** The physical address is MMIO (peer to peer): never synced, never bounced. */
export const DMA_ATTR_MMIO: number = 1 << 10;

/** Every `DMA_ATTR_*` bit this package knows; others are rejected as `EINVAL`. */
export const DMA_ATTR_KNOWN: number =
  DMA_ATTR_WEAK_ORDERING |
  DMA_ATTR_WRITE_COMBINE |
  DMA_ATTR_NO_KERNEL_MAPPING |
  DMA_ATTR_SKIP_CPU_SYNC |
  DMA_ATTR_FORCE_CONTIGUOUS |
  DMA_ATTR_ALLOC_SINGLE_PAGES |
  DMA_ATTR_NO_WARN |
  DMA_ATTR_PRIVILEGED |
  DMA_ATTR_MMIO;

/** `dma_get_max_seg_size` without `dma_parms`: 64 KiB. */
export const DMA_DEFAULT_MAX_SEG_SIZE = 65536;

/** log2 of the swiotlb slot size. */
export const IO_TLB_SHIFT = 11;
/** Bytes in one swiotlb slot (2 KiB). */
export const IO_TLB_SIZE = 2048;
/** Slots in one swiotlb segment; one mapping never crosses a segment (256 KiB at most). */
export const IO_TLB_SEGSIZE = 128;
/** The kernel's default pool size, 64 MiB. */
export const IO_TLB_DEFAULT_SIZE: number = 64 * 1024 * 1024;

/** Cached IOVA sizes are 2^0 … 2^(this − 1) granules, i.e. 1 to 32. */
export const IOVA_RANGE_CACHE_MAX_SIZE = 6;
/** Pfns per range-cache magazine (chosen in the kernel so a magazine is 1 KiB). */
export const IOVA_MAG_SIZE = 127;
/** The kernel trims each depot by one magazine per this many milliseconds. */
export const IOVA_DEPOT_DELAY_MS = 100;

/**
 * `DMA_BIT_MASK(n)`: the inclusive limit of an `n`-bit DMA address.
 *
 * Masks wider than 53 bits cannot be held in a `number`; they saturate at 2^53 − 1, which
 * is above every address devref models (52 bits), so they still mean "no limit".
 *
 * **Errors:** `EINVAL` unless `n` is a whole number in 0 … 64.
 *
 * @example
 * ```ts
 * dmaBitMask(32); // 0xffff_ffff
 * ```
 */
export function dmaBitMask(n: number): number {
  checkInteger("DMA_BIT_MASK", "n", n, 0, 64);
  return maskOf(n);
}

/**
 * Whether `dir` is one of the three directions a mapping may use (`valid_dma_direction`).
 * Any value may be asked about; only those three answer true.
 */
export function isValidDmaDirection(dir: number): dir is DmaDirection {
  return dir === DMA_BIDIRECTIONAL || dir === DMA_TO_DEVICE || dir === DMA_FROM_DEVICE;
}

/** The kernel's name of a direction, for messages. Any value is accepted. */
export function dmaDirectionName(dir: number): string {
  switch (dir) {
    case DMA_BIDIRECTIONAL:
      return "DMA_BIDIRECTIONAL";
    case DMA_TO_DEVICE:
      return "DMA_TO_DEVICE";
    case DMA_FROM_DEVICE:
      return "DMA_FROM_DEVICE";
    case DMA_NONE:
      return "DMA_NONE";
    default:
      return `invalid direction ${describeValue(dir)}`;
  }
}

/** A sink for the warnings and notices the kernel would print (`dev_warn`, `dev_notice`). */
export type DmaLogSink = (message: string) => void;
