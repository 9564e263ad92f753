//! Numbers from the command line: decimal or 0x-hex, underscores allowed, checked for range.

import { DevrefError } from "@devref/raw-device";

const PATTERN = /^(0x[0-9a-f][0-9a-f_]*|[0-9][0-9_]*)$/i;

/**
 * Parses `text` (the value of `option`) as a whole number in [min, max]; `k`/`m`/`g`
 * suffixes (KiB, MiB, GiB) when `sizes` is set.
 *
 * **Errors:** `EINVAL` naming the option and what it takes.
 */
export function parseNumber(
  option: string,
  text: string,
  min = 0,
  max: number = Number.MAX_SAFE_INTEGER,
  sizes = false,
): number {
  let body = text.trim();
  let scale = 1;
  if (sizes) {
    const suffix = /([kmg])(i?b)?$/i.exec(body);
    if (suffix !== null) {
      scale = 1024 ** ("kmg".indexOf(suffix[1]!.toLowerCase()) + 1);
      body = body.slice(0, suffix.index);
    }
  }
  const value = PATTERN.test(body) ? Number(body.replaceAll("_", "")) * scale : Number.NaN;
  if (!Number.isSafeInteger(value) || value < min || value > max) {
    const range = max === Number.MAX_SAFE_INTEGER ? `at least ${min}` : `in [${min}, ${max}]`;
    throw new DevrefError(
      "EINVAL",
      `${option} takes a whole number ${range} (decimal or 0x-hex${sizes ? ", or with a K/M/G suffix" : ""}), not '${text}'`,
    );
  }
  return value;
}

/** `0x…` of a number. */
export function hex(n: number | bigint): string {
  return `0x${n.toString(16)}`;
}
