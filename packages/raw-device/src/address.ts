//! C header: include/linux/types.h (phys_addr_t, dma_addr_t)

import { DevrefError, describeValue } from "./errors.js";

declare const physBrand: unique symbol;
declare const dmaBrand: unique symbol;
declare const iovaBrand: unique symbol;

/** A CPU physical address (phys_addr_t). At most 52 bits, the ARM architectural limit. */
export type PhysAddr = number & { readonly [physBrand]: true };
/** An address as a device sees it on its bus (dma_addr_t). */
export type DmaAddr = number & { readonly [dmaBrand]: true };
/** An I/O virtual address: the input side of an IOMMU's page table. */
export type Iova = number & { readonly [iovaBrand]: true };

/** Bits in a physical address: 52, the largest ARM output address size. */
export const PHYS_ADDR_BITS = 52;
/** One past the largest physical address, 2^52. */
export const PHYS_ADDR_LIMIT: number = 2 ** PHYS_ADDR_BITS;

function checkAddress(kind: string, value: number, limit: number): void {
  if (!Number.isSafeInteger(value) || value < 0 || value >= limit) {
    throw new DevrefError(
      "EINVAL",
      `${kind} ${describeValue(value)} is not an integer in [0, 0x${limit.toString(16)}): ` +
        "addresses are non-negative whole numbers; for values wider than 2^53 use the bigint APIs of the package that needs them",
    );
  }
}

/**
 * Makes a {@link PhysAddr} after checking that `value` is a whole number below 2^52.
 *
 * **Errors:** `EINVAL` when it is not.
 */
export function physAddr(value: number): PhysAddr {
  checkAddress("physical address", value, PHYS_ADDR_LIMIT);
  // SAFETY: checked above to be an integer address in range.
  return value as PhysAddr;
}

/**
 * Makes a {@link DmaAddr} after checking that `value` is a whole number that is a safe
 * JavaScript integer (below 2^53).
 *
 * **Errors:** `EINVAL` when it is not.
 */
export function dmaAddr(value: number): DmaAddr {
  checkAddress("DMA address", value, Number.MAX_SAFE_INTEGER + 1);
  // SAFETY: checked above to be an integer address in range.
  return value as DmaAddr;
}

/**
 * Makes an {@link Iova} after checking that `value` is a whole number below 2^53.
 *
 * **Errors:** `EINVAL` when it is not.
 */
export function iova(value: number): Iova {
  checkAddress("IOVA", value, Number.MAX_SAFE_INTEGER + 1);
  // SAFETY: checked above to be an integer address in range.
  return value as Iova;
}

/** Formats an address as `0x` and at least `digits` hex digits (default 9, enough for 36 bits). */
export function formatAddr(value: number, digits = 9): string {
  if (typeof value !== "number" || !Number.isFinite(value)) return describeValue(value);
  const width = typeof digits === "number" && digits >= 0 && digits <= 16 ? digits : 9;
  return `${value < 0 ? "-" : ""}0x${Math.abs(value).toString(16).padStart(width, "0")}`;
}
