//! Argument checks for public boundaries: one small set, used by every devref package.
//!
//! Each check throws `EINVAL` naming the function, the parameter, what was expected and
//! what came, before the caller changes any state. They are small enough to inline, build
//! no string unless they fail, and return the value narrowed.

import { PHYS_ADDR_LIMIT } from "./address.js";
import { DevrefError } from "./errors.js";

/** A short, safe description of any value for an error message (never throws). */
export function describeValue(value: unknown): string {
  switch (typeof value) {
    case "number":
      return Number.isNaN(value) ? "NaN" : String(value);
    case "bigint":
      return `${value}n`;
    case "string":
      return value.length > 40 ? `a string ('${value.slice(0, 37)}...')` : `'${value}'`;
    case "undefined":
      return "undefined";
    case "boolean":
      return String(value);
    case "symbol":
      return "a symbol";
    case "function":
      return "a function";
    default:
      if (value === null) return "null";
      if (Array.isArray(value)) return `an array of ${value.length}`;
      try {
        const name = Object.getPrototypeOf(value)?.constructor?.name;
        return typeof name === "string" && name !== "" && name !== "Object"
          ? `a ${name}`
          : "an object";
      } catch {
        return "an object";
      }
  }
}

/**
 * The error every check throws: `EINVAL`, `<where>: <param> must be <expected>, not <got>`.
 * Exported so packages can report a check of their own in the same words.
 */
export function argumentError(
  where: string,
  param: string,
  expected: string,
  got: unknown,
): DevrefError<"EINVAL"> {
  return new DevrefError(
    "EINVAL",
    `${where}: ${param} must be ${expected}, not ${describeValue(got)}`,
    { details: { parameter: param } },
  );
}

/**
 * A whole number in `[min, max]`.
 *
 * **Errors:** `EINVAL` for anything else (non-numbers, NaN, fractions, out of range).
 */
export function checkInteger(
  where: string,
  param: string,
  value: unknown,
  min: number,
  max: number,
): number {
  if (typeof value !== "number" || !(value >= min && value <= max) || Math.floor(value) !== value) {
    throw argumentError(where, param, `a whole number in [${min}, ${max}]`, value);
  }
  return value;
}

/**
 * An address: a whole number in `[0, limit)` (default 2^52, the physical address limit).
 *
 * **Errors:** `EINVAL` otherwise.
 */
export function checkAddress(
  where: string,
  param: string,
  value: unknown,
  limit: number = PHYS_ADDR_LIMIT,
): number {
  if (typeof value !== "number" || !(value >= 0 && value < limit) || Math.floor(value) !== value) {
    throw argumentError(
      where,
      param,
      `an address: a whole number in [0, 0x${limit.toString(16)})`,
      value,
    );
  }
  return value;
}

/**
 * A size in bytes: a whole number in `[min, max]` (default `[1, 2^52]`).
 *
 * **Errors:** `EINVAL` otherwise.
 */
export function checkSize(
  where: string,
  param: string,
  value: unknown,
  min = 1,
  max: number = PHYS_ADDR_LIMIT,
): number {
  if (typeof value !== "number" || !(value >= min && value <= max) || Math.floor(value) !== value) {
    throw argumentError(where, param, `a size in bytes, a whole number in [${min}, ${max}]`, value);
  }
  return value;
}

/**
 * A count: a whole number in `[min, max]` (default `[1, 2^31 - 1]`).
 *
 * **Errors:** `EINVAL` otherwise.
 */
export function checkCount(
  where: string,
  param: string,
  value: unknown,
  min = 1,
  max = 0x7fff_ffff,
): number {
  if (typeof value !== "number" || !(value >= min && value <= max) || Math.floor(value) !== value) {
    throw argumentError(where, param, `a count, a whole number in [${min}, ${max}]`, value);
  }
  return value;
}

/**
 * An address that may be given as a number (a safe integer) or a bigint, below `2^bits`
 * (default 64): what APIs that take a full 64-bit IOVA accept.
 *
 * **Errors:** `EINVAL` otherwise.
 */
export function checkBigintOrNumber(
  where: string,
  param: string,
  value: unknown,
  bits = 64,
): number | bigint {
  if (typeof value === "number") {
    if (value >= 0 && Number.isSafeInteger(value) && (bits >= 53 || value < 2 ** bits))
      return value;
  } else if (typeof value === "bigint") {
    if (value >= 0n && value < 1n << BigInt(bits)) return value;
  }
  throw argumentError(
    where,
    param,
    `a whole number (or bigint) in [0, 2^${bits}), a safe integer when given as a number`,
    value,
  );
}

/**
 * A function, checked where it is handed over rather than where it is first called.
 *
 * **Errors:** `EINVAL` otherwise.
 */
export function checkCallback<F extends (...args: never[]) => unknown>(
  where: string,
  param: string,
  value: F,
): F {
  if (typeof value !== "function") throw argumentError(where, param, "a function", value);
  return value;
}

/**
 * A string, optionally non-empty.
 *
 * **Errors:** `EINVAL` otherwise.
 */
export function checkString(
  where: string,
  param: string,
  value: unknown,
  nonEmpty = false,
): string {
  if (typeof value !== "string" || (nonEmpty && value.length === 0)) {
    throw argumentError(where, param, nonEmpty ? "a non-empty string" : "a string", value);
  }
  return value;
}

/**
 * A boolean.
 *
 * **Errors:** `EINVAL` otherwise.
 */
export function checkBoolean(where: string, param: string, value: unknown): boolean {
  if (typeof value !== "boolean") throw argumentError(where, param, "true or false", value);
  return value;
}

/**
 * One of a fixed set of values (compared with `===`).
 *
 * **Errors:** `EINVAL` otherwise, listing the allowed values.
 */
export function checkOneOf<T>(
  where: string,
  param: string,
  value: unknown,
  allowed: readonly T[],
): T {
  for (const a of allowed) if (a === value) return a;
  throw argumentError(
    where,
    param,
    `one of ${allowed.map((a) => describeValue(a)).join(", ")}`,
    value,
  );
}

/**
 * A non-null object (an options bag, a descriptor).
 *
 * **Errors:** `EINVAL` otherwise.
 */
export function checkObject<T extends object>(where: string, param: string, value: T): T {
  if (typeof value !== "object" || value === null)
    throw argumentError(where, param, "an object", value);
  return value;
}

/**
 * An instance of `Class` (a device handle, a table, a domain).
 *
 * **Errors:** `EINVAL` otherwise, naming the class.
 */
export function checkInstance<T>(
  where: string,
  param: string,
  value: unknown,
  // A class with any constructor, protected ones included.
  Class: Function & { readonly prototype: T },
): T {
  if (!(value instanceof Class)) throw argumentError(where, param, `a ${Class.name}`, value);
  // SAFETY: value is an instance of Class, whose instances are Ts.
  return value as T;
}
