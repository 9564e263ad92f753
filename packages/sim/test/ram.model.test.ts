// The SoC's RAM allocator (a BuddyAllocator over RAM) against a model: blocks are aligned,
// disjoint, inside RAM and zeroed; accounting matches; freeing everything merges it back.
import { DevrefError, physAddr } from "@devref/raw-device";
import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { Soc } from "../src/index.js";

type Cmd = { op: "alloc"; size: number; align: number } | { op: "free"; pick: number };

const cmd: fc.Arbitrary<Cmd> = fc.oneof(
  {
    weight: 3,
    arbitrary: fc
      .tuple(fc.integer({ min: 1, max: 40_000 }), fc.constantFrom(1, 64, 4096, 16384))
      .map(([size, align]) => ({ op: "alloc" as const, size, align })),
  },
  { weight: 2, arbitrary: fc.nat().map((pick) => ({ op: "free" as const, pick })) },
);

const block = (size: number, align: number): number => {
  let b = 64;
  while (b < size || b < align) b *= 2;
  return b;
};

describe("SoC RAM allocator", () => {
  it("hands out aligned, disjoint, zeroed blocks inside RAM and takes them all back", () => {
    fc.assert(
      fc.property(fc.array(cmd, { maxLength: 60 }), (cmds) => {
        const soc = new Soc({ ramSize: 1 << 20, trace: "off" });
        const live: { pa: number; size: number; block: number }[] = [];
        let inUse = 0;
        for (const c of cmds) {
          if (c.op === "alloc") {
            let pa: number;
            try {
              pa = soc.ram.alloc(c.size, c.align);
            } catch (e) {
              expect(DevrefError.is(e, "ENOMEM")).toBe(true);
              continue;
            }
            const b = block(c.size, c.align);
            expect(pa % b).toBe(0);
            expect(pa >= soc.ramBase && pa + b <= soc.ramBase + soc.ramSize).toBe(true);
            for (const o of live) expect(pa + b <= o.pa || o.pa + o.block <= pa).toBe(true);
            expect(soc.memory.read32(pa)).toBe(0);
            expect(soc.memory.read8(pa + c.size - 1)).toBe(0);
            soc.memory.write32(pa, 0xdead_beef); // dirty it: a later block here must be zeroed
            soc.memory.write8(pa + c.size - 1, 0x5a);
            live.push({ pa, size: c.size, block: b });
            inUse += b;
          } else if (live.length > 0) {
            const [o] = live.splice(c.pick % live.length, 1);
            soc.ram.free(physAddr(o!.pa), o!.size);
            inUse -= o!.block;
          }
          expect(soc.ram.bytesInUse).toBe(inUse);
        }
        for (const o of live) soc.ram.free(physAddr(o.pa), o.size);
        expect(soc.ram.bytesInUse).toBe(0);
        expect(soc.ram.alloc(1 << 20)).toBe(soc.ramBase); // everything merged back
      }),
      { seed: 42, numRuns: 150 },
    );
  });
});
