// Issue 14, item 6: a second copy of @devref/raw-device is reported at load, naming both.
import { DevrefError } from "@devref/raw-device";
import { describe, expect, it } from "vitest";

describe("one copy of the core", () => {
  it("the loaded copy is registered; another copy's registration fails with both paths", async () => {
    const { claimOneCopy } = await import("../src/one-copy.js");
    const key = Symbol.for("@devref/raw-device");
    const here = (globalThis as Record<symbol, unknown>)[key];
    expect(typeof here).toBe("string");
    // The same copy registering again is fine (a module evaluated once more).
    expect(() => claimOneCopy(here as string)).not.toThrow();
    expect(() =>
      claimOneCopy("file:///elsewhere/node_modules/@devref/raw-device/dist/index.js"),
    ).toThrowError(DevrefError);
    expect(() => claimOneCopy("file:///elsewhere/x.js")).toThrowError(
      /two copies .* and file:\/\/\/elsewhere\/x\.js/,
    );
  });

  it("errors name DevrefError, whatever a bundler calls the class", () => {
    const e = new DevrefError("EINVAL", "x");
    expect(DevrefError.name).toBe("DevrefError");
    expect(String(e.stack).startsWith("DevrefError: EINVAL: x")).toBe(true);
  });
});
