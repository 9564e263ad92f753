// Surprise removal of the card at every step of the scenario behind the DART: no leak, no
// use after free, no unexpected error, no lost write, no wrong read, no hang.
import { explore } from "@devref/sim";
import { describe, expect, it } from "vitest";
import { virtioBlkScenario } from "../src/index.js";

describe("explore: unplug", () => {
  it("every step, seed 1, zero failures", async () => {
    const r = await explore(virtioBlkScenario, { kinds: ["unplug"] });
    expect(r.failures).toEqual([]);
    expect(r.explored).toBe(r.steps);
    expect(r.runs).toBe(r.steps);
    expect(r.baseline.result).toBe("completed");
    // Removed before the disk bound, in the middle of its I/O, and after its teardown.
    expect(r.outcomes["unplug: no disk"]).toBeGreaterThan(0);
    expect(r.outcomes["unplug: device removed"]).toBeGreaterThan(0);
    expect(r.outcomes["unplug: completed"]).toBeGreaterThan(0);
    // A removal fails requests with ENODEV only: never as a device error.
    expect(r.outcomes["unplug: I/O error"]).toBeUndefined();
    expect(r.outcomes.failed).toBeUndefined();
  }, 300_000);
});
