// Issue 8, item 18: every export of @devref/raw-device, called with wrong-typed and
// out-of-range arguments, succeeds or throws a DevrefError, and leaves its object sound.
import * as rawDevice from "@devref/raw-device";
import {
  BuddyAllocator,
  DevrefError,
  DisposeStack,
  Refcount,
  refcountOf,
  SparseMemory,
} from "@devref/raw-device";
import { describe, expect, it } from "vitest";
import { sweepExports } from "../../../scripts/bad-args.js";
import { makeDevice } from "./fixture.js";

describe("item 18: wrong arguments to every export", () => {
  it("are a DevrefError or a success, never another exception, and corrupt nothing", async () => {
    const made = makeDevice("swept0");
    const counters: Refcount[] = [];
    const bad = await sweepExports({
      module: rawDevice,
      expected: DevrefError,
      skip: [
        // Replacing the process-wide reporter with a non-function is refused; a function
        // replaces it for good, which would change what later tests see.
        "setRefcountReporter",
        // Throws on purpose: the default reporter of a saturated counter.
        "throwingRefcountReporter",
      ],
      instances: () => {
        const counter = new Refcount(2);
        counters.push(counter);
        const memory = new SparseMemory(1 << 20);
        return {
          device: made.dev,
          counter,
          memory,
          allocator: new BuddyAllocator(memory, 0x1000, 0x10000, 0x1000),
          stack: new DisposeStack(),
        };
      },
      // put ends the sample device; get and clone make references the sweep would drop.
      skipMembers: ["device.put", "device.clone", "device.get", "counter.set"],
      check: () => {
        for (const c of counters) {
          const v = c.value;
          expect(Number.isInteger(v) && (v >= 0 || c.saturated)).toBe(true);
        }
        expect(refcountOf(made.dev)).toBeGreaterThanOrEqual(1);
      },
      runs: 600,
    });
    expect(bad).toEqual([]);
    expect(made.dev.isLive).toBe(true);
    made.dev.put();
    expect(made.releases()).toBe(1);
  });
});
