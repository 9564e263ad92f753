//! Turning whatever a callback threw into the one error class.

import { DevrefError } from "@devref/raw-device";

/** Any thrown value as a DevrefError: itself, or `code` with it as the cause. */
export function asDevrefError(
  e: unknown,
  code: "EIO" | "EINVAL" | "ENOMEM",
  what: string,
): DevrefError {
  if (e instanceof DevrefError) return e;
  return new DevrefError(code, `${what} threw ${e instanceof Error ? e.message : String(e)}`, {
    cause: e,
  });
}
