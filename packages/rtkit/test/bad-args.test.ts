// Issue 8, item 18: every export of @devref/rtkit, called with wrong-typed and out-of-range
// arguments, succeeds or throws a DevrefError; a live client stays consistent.
import { DevrefError } from "@devref/raw-device";
import * as rtkit from "@devref/rtkit";
import { describe, expect, it } from "vitest";
import { sweepExports } from "../../../scripts/bad-args.js";
import { makeDevice } from "./device.js";
import { ManualTimers } from "./timers.js";

describe("item 18: wrong arguments to every export", () => {
  it("are a DevrefError or a success, never another exception", { timeout: 60_000 }, async () => {
    const made = makeDevice("swept-rtkit");
    const timers = new ManualTimers();
    const client = rtkit.createRtkit(made.dev, {
      transport: { send: () => {} },
      timers,
      log: () => {},
    });
    const bad = await sweepExports({
      module: rtkit,
      expected: DevrefError,
      instances: () => ({ client }),
      // free() ends the sample client; the sweep's other calls need it alive.
      skipMembers: ["client.free"],
      check: () => {
        expect(typeof client.isRunning).toBe("boolean");
        expect(typeof client.isCrashed).toBe("boolean");
      },
      runs: 800,
    });
    expect(bad).toEqual([]);
    client.free();
    made.dev.put();
  });
});
