// Model-based tests: random map/unmap/iovaToPhys sequences against a simple model, and after
// every step an independent walk of the raw memory (test/model.ts, sharing no code with the
// package) that must find exactly the model's state.
import fc from "fast-check";
import { describe, it } from "vitest";
import { commands, MODEL_SHAPES, ModelTable, type Shape } from "./model.js";

describe("model-based: tables hold exactly the model's mappings after every step", () => {
  it.each(MODEL_SHAPES.map((sh): [string, Shape] => [sh.name, sh]))(
    "%s",
    (_name, sh) => {
      fc.assert(
        fc.property(commands(sh), (cmds) => {
          const m = new ModelTable(sh);
          for (const c of cmds) {
            m.run(c);
            m.check();
          }
          m.dispose();
        }),
        { seed: 20250117, numRuns: 30 },
      );
    },
    30_000,
  );
});
