import { explore } from "@devref/sim";
import { describe, expect, it } from "vitest";
import { virtioBlkScenario } from "../src/index.js";

describe("scenario", () => {
  it("clean", async () => {
    const lines: string[] = [];
    const o = await virtioBlkScenario.run({ narrate: (l) => lines.push(l) });
    console.log(lines.join("\n"), o);
  });
  it("explore", async () => {
    const t0 = performance.now();
    const r = await explore(virtioBlkScenario);
    console.log(r.steps, r.runs, r.outcomes, performance.now() - t0);
    for (const f of r.failures.slice(0, 5)) console.log(f.step, f.kind, f.outcome);
    expect(r.failures).toEqual([]);
  }, 300_000);
});
