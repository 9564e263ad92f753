//! A 64-bit msg0 as two 32-bit halves: how the receive path reads fields without bigint
//! arithmetic, and the one place that checks a msg0 given as bigint.

import { argumentError } from "@devref/raw-device";

/** 2^32. */
export const TWO32 = 0x1_0000_0000;
/** The largest msg0, 2^64 - 1. */
export const U64_MAX = 0xffff_ffff_ffff_ffffn;
const LO_MASK = 0xffff_ffffn;

/**
 * `msg0` if it is a bigint in [0, 2^64).
 *
 * **Errors:** `EINVAL` naming `where` and `param` otherwise. (Written here rather than with
 * `checkBigintOrNumber`, which accepts numbers and builds a bigint bound on every call: this
 * runs once per received message.)
 */
export function checkMsg0(where: string, param: string, msg0: unknown): bigint {
  if (typeof msg0 !== "bigint" || msg0 < 0n || msg0 > U64_MAX) {
    throw argumentError(where, param, "a 64-bit message as a bigint in [0, 2^64)", msg0);
  }
  return msg0;
}

/** Bits 63:32 of a valid msg0, as an unsigned number. */
export function hiOf(msg0: bigint): number {
  return Number(msg0 >> 32n);
}

/** Bits 31:0 of a valid msg0, as an unsigned number. */
export function loOf(msg0: bigint): number {
  return Number(msg0 & LO_MASK);
}

/** The msg0 with halves `hi` and `lo` (each taken as unsigned 32 bits). */
export function join(hi: number, lo: number): bigint {
  return (BigInt(hi >>> 0) << 32n) | BigInt(lo >>> 0);
}

/** The type field 59:52 used by the management, crashlog, syslog and IOReport endpoints. */
export function type52(hi: number): number {
  return (hi >>> 20) & 0xff;
}

/** The OSLog type field 63:56. */
export function type56(hi: number): number {
  return hi >>> 24;
}

/** A 44-bit field 43:0 (the buffer request IOVA) as a number. */
export function field44(hi: number, lo: number): number {
  return (hi & 0xfff) * TWO32 + lo;
}

/** A 36-bit field 35:0 (the OSLog IOVA in 4 KiB units) as a number. */
export function field36(hi: number, lo: number): number {
  return (hi & 0xf) * TWO32 + lo;
}

/** GENMASK_ULL(hi, lo) as a bigint. */
export function genmask(hi: number, lo: number): bigint {
  return ((1n << BigInt(hi - lo + 1)) - 1n) << BigInt(lo);
}

/** Formats a number as lowercase hex without padding, as `%x` does. */
export function hex(value: number | bigint): string {
  return value.toString(16);
}

/** Formats a number as at least `digits` lowercase hex digits, as `%0Nx` does. */
export function hexPad(value: number | bigint, digits: number): string {
  return value.toString(16).padStart(digits, "0");
}
