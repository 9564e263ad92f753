//! Argument checks for public boundaries: one small set, used by every devref package.
//!
//! Each check throws `EINVAL` naming the function, the parameter, what was expected and
//! what came, before the caller changes any state. They are small enough to inline, build
//! no string unless they fail, and return the value narrowed.

import { PHYS_ADDR_LIMIT } from "./address.js";
import { DevrefError, describeValue } from "./errors.js";

export { describeValue };

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
  const name = text(param);
  return new DevrefError(
    "EINVAL",
    `${text(where)}: ${name} must be ${text(expected)}, not ${describeValue(got)}`,
    { details: { parameter: name } },
  );
}

/** The bounds a caller gave a check must be numbers (comparisons with others can throw). */
function checkBounds(where: string, min: unknown, max: unknown): void {
  if (typeof min !== "number" || typeof max !== "number") {
    throw argumentError(where, "min and max", "numbers", typeof min !== "number" ? min : max);
  }
}

/** A string as is, anything else described: message parts never throw. */
function text(x: unknown): string {
  return typeof x === "string" ? x : describeValue(x);
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
  checkBounds("checkInteger", min, max);
  if (typeof value !== "number" || !(value >= min && value <= max) || Math.floor(value) !== value) {
    throw argumentError(where, param, `a whole number in [${text(min)}, ${text(max)}]`, value);
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
  checkBounds("checkAddress", 0, limit);
  if (typeof value !== "number" || !(value >= 0 && value < limit) || Math.floor(value) !== value) {
    throw argumentError(
      where,
      param,
      `an address: a whole number in [0, ${typeof limit === "number" ? `0x${limit.toString(16)}` : text(limit)})`,
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
  checkBounds("checkSize", min, max);
  if (typeof value !== "number" || !(value >= min && value <= max) || Math.floor(value) !== value) {
    throw argumentError(
      where,
      param,
      `a size in bytes, a whole number in [${text(min)}, ${text(max)}]`,
      value,
    );
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
  checkBounds("checkCount", min, max);
  if (typeof value !== "number" || !(value >= min && value <= max) || Math.floor(value) !== value) {
    throw argumentError(
      where,
      param,
      `a count, a whole number in [${text(min)}, ${text(max)}]`,
      value,
    );
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
  if (typeof bits !== "number" || !Number.isInteger(bits) || bits < 1 || bits > 64) {
    throw argumentError("checkBigintOrNumber", "bits", "a whole number in [1, 64]", bits);
  }
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
  if (!Array.isArray(allowed)) throw argumentError("checkOneOf", "allowed", "an array", allowed);
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
 * An array (its elements are the caller's to check).
 *
 * **Errors:** `EINVAL` otherwise.
 *
 * @example
 * ```ts
 * const ids = checkArray("register", "spec.ids", spec.ids);
 * ```
 */
export function checkArray<T>(where: string, param: string, value: readonly T[]): readonly T[] {
  if (!Array.isArray(value)) throw argumentError(where, param, "an array", value);
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
  if (
    typeof Class !== "function" ||
    typeof Class.prototype !== "object" ||
    Class.prototype === null
  ) {
    throw argumentError("checkInstance", "Class", "a class", Class);
  }
  if (!(value instanceof Class)) throw argumentError(where, param, `a ${text(Class.name)}`, value);
  // SAFETY: value is an instance of Class, whose instances are Ts.
  return value as T;
}
