// Issue 8, item 18: every export of @devref/sim, called with wrong-typed and out-of-range
// arguments, succeeds or throws a DevrefError; the SoC stays usable.
import { DevrefError } from "@devref/raw-device";
import * as sim from "@devref/sim";
import { describe, expect, it } from "vitest";
import { sweepExports } from "../../../scripts/bad-args.js";

describe("item 18: wrong arguments to every export", () => {
  it("are a DevrefError or a success, never another exception", { timeout: 120_000 }, async () => {
    const { soc, dart, pcie, blk } = sim.createReferenceSoc({ seed: 5, smc: false });
    const bad = await sweepExports({
      module: sim,
      expected: DevrefError,
      instances: () => ({
        soc,
        events: soc.events,
        fabric: soc.fabric,
        irq: soc.irq,
        faults: soc.faults,
        dart,
        pcie,
        blk: blk!,
        dma: soc.dmaMaster("sweep"),
      }),
      check: () => {
        expect(Number.isInteger(soc.stepCount)).toBe(true);
      },
      runs: 600,
    });
    expect(bad).toEqual([]);
  });
});
