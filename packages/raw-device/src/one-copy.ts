//! One copy of the core per process: handles, brands and `instanceof` only work when every
//! devref package shares one @devref/raw-device. Two copies (a version skew, a nested
//! install) are reported at load with both paths, instead of failing later with a
//! puzzling "device handles are made by device packages only".

import { DevrefError } from "./errors.js";

const KEY = Symbol.for("@devref/raw-device");

/**
 * Registers this copy of @devref/raw-device in the process; throws if another copy did.
 *
 * **Errors:** `EEXIST` naming both copies' locations.
 */
export function claimOneCopy(where: string): void {
  // SAFETY: one property under a registered symbol; its type is checked where it is read.
  const g = globalThis as { [KEY]?: unknown };
  const first = g[KEY];
  if (typeof first === "string" && first !== where) {
    throw new DevrefError(
      "EEXIST",
      `two copies of @devref/raw-device are loaded: ${first} and ${where}. devref device handles ` +
        "only work with one: make every @devref package use the same @devref/raw-device " +
        "(align their versions; @devref packages declare it as a peer dependency), then reinstall",
    );
  }
  g[KEY] = where;
}
