//! What both table formats check and keep the same way: argument validation, the errors it
//! raises, and the scratch buffers used for batched descriptor runs.

import { DevrefError } from "@devref/raw-device";
import { IOMMU_PROT_MASK, IOMMU_READ, IOMMU_WRITE } from "../constants.js";
import { TWO32 } from "./bits.js";

/** The errno codes a page table raises. */
export type TableErrno = "EINVAL" | "ERANGE" | "EEXIST" | "ENOMEM" | "ESHUTDOWN";

/** A {@link DevrefError} with the table's structured details (e.g. `{ mapped: 0 }`). */
export function err(
  code: TableErrno,
  message: string,
  details?: Record<string, unknown>,
): DevrefError {
  return new DevrefError(code, message, details === undefined ? {} : { details });
}

/**
 * Splits an address given as a number (below 2^53) or a bigint (taken modulo 2^64) into its
 * high and low 32-bit halves in `out`.
 *
 * **Errors:** `EINVAL` for a number that is not a whole number below 2^53, or a bigint
 * outside [-2^63, 2^64).
 */
export function splitIova(iova: number | bigint, out: Uint32Array): void {
  if (typeof iova === "number") {
    const hi = (iova / TWO32) >>> 0;
    const lo = iova >>> 0;
    if (hi * TWO32 + lo !== iova) {
      throw err(
        "EINVAL",
        `IOVA ${String(iova)} is not a whole number in [0, 2^64): pass an Iova, or a bigint for addresses above 2^53`,
        { mapped: 0 },
      );
    }
    out[0] = hi;
    out[1] = lo;
    return;
  }
  if (iova < -(2n ** 63n) || iova >= 2n ** 64n) {
    throw err(
      "EINVAL",
      `IOVA ${iova.toString(16)} does not fit 64 bits: pass a value in [-2^63, 2^64)`,
      {
        mapped: 0,
      },
    );
  }
  const u = BigInt.asUintN(64, iova);
  out[0] = Number(u >> 32n);
  out[1] = Number(u & 0xffff_ffffn);
}

/**
 * Checks a map call's output address and protection: `paddr` a whole number below
 * `paLimit` (2^oas), `prot` only `IOMMU_*` bits and at least READ or WRITE.
 *
 * **Errors:** `ERANGE` for the address, `EINVAL` for the protection.
 */
export function checkPaddrAndProt(paddr: number, paLimit: number, prot: number): void {
  const pHi = (paddr / TWO32) >>> 0;
  if (!(pHi * TWO32 + (paddr >>> 0) === paddr && paddr < paLimit)) {
    throw err(
      "ERANGE",
      `physical address ${String(paddr)} is not a whole number below 2^${Math.log2(paLimit)} (oas)`,
      { mapped: 0 },
    );
  }
  if (prot !== (prot | 0) || (prot & ~IOMMU_PROT_MASK) !== 0) {
    throw err(
      "EINVAL",
      `prot ${String(prot)} has bits outside the IOMMU_* flags (0x${IOMMU_PROT_MASK.toString(16)})`,
      { mapped: 0 },
    );
  }
  if ((prot & (IOMMU_READ | IOMMU_WRITE)) === 0) {
    throw err(
      "EINVAL",
      `prot 0x${prot.toString(16)} grants neither IOMMU_READ nor IOMMU_WRITE: a mapping needs at least one`,
      { mapped: 0 },
    );
  }
}

/** **Errors:** `EINVAL` unless `pgcount` is a whole number ≥ 0. */
export function checkPgcount(pgcount: number): void {
  if (!(pgcount >= 0 && Number.isSafeInteger(pgcount))) {
    throw err("EINVAL", `pgcount ${String(pgcount)} must be a whole number`, { mapped: 0 });
  }
}

/**
 * Scratch space for runs of up to `maxRun` descriptors, read or written with one
 * `readBytes`/`writeBytes` call: a byte view and a word view of one buffer, plus zeros. The
 * prefix views are made once per length, so a batched call allocates nothing.
 */
export class DescriptorScratch {
  readonly bytes: Uint8Array;
  readonly words: Uint32Array;
  private readonly zeros: Uint8Array;
  private readonly views: (Uint8Array | undefined)[];
  private readonly zeroViews: (Uint8Array | undefined)[];

  constructor(maxRun: number) {
    this.bytes = new Uint8Array(maxRun * 8);
    this.words = new Uint32Array(this.bytes.buffer);
    this.zeros = new Uint8Array(maxRun * 8);
    this.views = new Array<Uint8Array | undefined>(maxRun + 1).fill(undefined);
    this.zeroViews = new Array<Uint8Array | undefined>(maxRun + 1).fill(undefined);
  }

  /** The first `n` descriptors of the scratch buffer, as bytes. */
  view(n: number): Uint8Array {
    let v = this.views[n];
    if (v === undefined) {
      v = this.bytes.subarray(0, n * 8);
      this.views[n] = v;
    }
    return v;
  }

  /** `n` zero descriptors, as bytes. */
  zeroView(n: number): Uint8Array {
    let v = this.zeroViews[n];
    if (v === undefined) {
      v = this.zeros.subarray(0, n * 8);
      this.zeroViews[n] = v;
    }
    return v;
  }
}
