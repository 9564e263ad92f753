//! C source: drivers/iommu/apple-dart.c (apple_dart_t8020_irq, apple_dart_t8110_irq)
//!
//! Decoding a latched DART error: the flag, the stream, the code and the faulting address,
//! with the kernel's names (specs/sim-hardware.md §1.6).

import { checkInteger, checkObject } from "@devref/raw-device";
import { DART_ERROR_FLAG, type DartErrorCode, type DartHw } from "./hw.js";

/**
 * A decoded `ERROR` / `ERROR_ADDR` pair.
 *
 * **Invariants:** `name` is `"unknown"` exactly when `kind` is null (no single known code
 * bit, as the kernel's `==` comparisons decide); `write` is true only for a write fault.
 */
export interface DartFault {
  /** The raw `ERROR` value. */
  readonly status: number;
  readonly stream: number;
  /** `ERROR.CODE`, masked as the kernel masks it. */
  readonly code: number;
  /** The kernel's name of the code, or `"unknown"`. */
  readonly name: string;
  readonly kind: DartErrorCode["kind"] | null;
  /** The faulting device address (`ERROR_ADDR_HI:LO`). */
  readonly address: number;
  /** Whether the access was a write, as far as the code tells (only `WRITE FAULT` does). */
  readonly write: boolean;
}

/**
 * Decodes `error` (and the address halves) for variant `hw`, or null when `ERROR.FLAG` is
 * clear (the interrupt is not this DART's).
 *
 * **Invariants:** pure; any 32-bit inputs are accepted.
 *
 * **Errors:** `EINVAL` for a `hw` that is not an object or a value that is not 32 bits.
 *
 * @example
 * ```ts
 * decodeDartError(DART_HW_T8110, 0x8030_0008, 0x4000, 0)?.name; // "NO PTE FOR IOVA", stream 3
 * ```
 */
export function decodeDartError(
  hw: DartHw,
  error: number,
  addrLo: number,
  addrHi: number,
): DartFault | null {
  const where = "decodeDartError";
  checkObject(where, "hw", hw);
  checkInteger(where, "error", error, 0, 0xffff_ffff);
  checkInteger(where, "addrLo", addrLo, 0, 0xffff_ffff);
  checkInteger(where, "addrHi", addrHi, 0, 0xffff_ffff);
  if ((error & DART_ERROR_FLAG) >>> 0 === 0) return null;
  const code = error & hw.errorCodeMask;
  // One bit is expected; anything else is "unknown", as the kernel's == tests make it.
  let found: DartErrorCode | null = null;
  for (const c of hw.errorCodes) {
    if (code === c.bit) {
      found = c;
      break;
    }
  }
  return {
    status: error >>> 0,
    stream: (error >>> hw.errorStreamShift) & hw.errorStreamMask,
    code,
    name: found?.name ?? "unknown",
    kind: found?.kind ?? null,
    address: (addrHi >>> 0) * 2 ** 32 + (addrLo >>> 0),
    write: found?.kind === "write-fault",
  };
}
