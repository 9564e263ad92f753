// Model-based tests: random map/unmap/iovaToPhys sequences against a simple model, and after
// every step an independent walk of the raw memory (test/model.ts, sharing no code with the
// package) that must find exactly the model's state.
import fc from "fast-check";
import { describe, it } from "vitest";
import { type Cmd, commands, MODEL_SHAPES, ModelTable, type Shape } from "./model.js";

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

describe("model-based, dense: one or two leaf tables filled, holed and emptied", () => {
  const dense = (sh: Shape): fc.Arbitrary<Cmd[]> => {
    const ept = sh.granule / 8;
    // Table starts often, so that whole tables are filled and emptied.
    const iova = fc
      .oneof(fc.constantFrom(0, ept), fc.integer({ min: 0, max: 2 * ept - 1 }))
      .map((i) => i * sh.granule);
    const count = fc.oneof(fc.constant(1), fc.constant(ept), fc.integer({ min: 1, max: ept }));
    const cmd: fc.Arbitrary<Cmd> = fc.oneof(
      fc.record({
        op: fc.constant("map" as const),
        iova,
        level: fc.constant(sh.leafLevel),
        count,
        pa: fc.constant(2 ** 32),
        prot: fc.constant(3),
      }),
      fc.record({
        op: fc.constant("unmap" as const),
        iova,
        level: fc.constant(sh.leafLevel),
        count,
      }),
      fc.record({ op: fc.constant("phys" as const), iova }),
    );
    return fc.array(cmd, { minLength: 10, maxLength: 40 });
  };
  it.each(
    MODEL_SHAPES.filter((sh) => /S1 4K ias 48|16K ias 40|DART2 16K ias 32/.test(sh.name)).map(
      (sh): [string, Shape] => [sh.name, sh],
    ),
  )(
    "%s",
    (_name, sh) => {
      fc.assert(
        fc.property(dense(sh), (cmds) => {
          const m = new ModelTable(sh);
          // Results after every step; memory at the end (full tables make each check long).
          for (const c of cmds) m.run(c);
          m.check();
          m.dispose();
        }),
        { seed: 512, numRuns: 60 },
      );
    },
    30_000,
  );
});
