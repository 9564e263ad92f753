// Shared by the engine tests: run `fn`, require a DevrefError with `code` (and `message`).
import { DevrefError } from "@devref/raw-device";
import { expect } from "vitest";

export function expectCode(fn: () => unknown, code: string, message?: RegExp): DevrefError {
  try {
    fn();
  } catch (e) {
    expect(e).toBeInstanceOf(DevrefError);
    const err = e as DevrefError;
    expect(err.code).toBe(code);
    if (message !== undefined) expect(err.message).toMatch(message);
    return err;
  }
  throw new Error(`expected a ${code} error`);
}
