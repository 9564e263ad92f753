// The IOTLB's LRU against a plain array model, over random command sequences.
import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { Iotlb, SID_KEY } from "../src/dart/iotlb.js";
import { expectCode } from "./helpers.js";

type Cmd =
  | { op: "lookup"; key: number }
  | { op: "insert"; key: number; value: number }
  | { op: "remove"; key: number }
  | { op: "flushSid"; sid: number }
  | { op: "clear" };

const key = fc
  .tuple(fc.integer({ min: 0, max: 3 }), fc.integer({ min: 0, max: 7 }))
  .map(([sid, page]) => sid * SID_KEY + page);
const cmd: fc.Arbitrary<Cmd> = fc.oneof(
  { weight: 4, arbitrary: key.map((k) => ({ op: "lookup" as const, key: k })) },
  {
    weight: 4,
    arbitrary: fc
      .tuple(key, fc.nat(1000))
      .map(([k, v]) => ({ op: "insert" as const, key: k, value: v })),
  },
  { weight: 1, arbitrary: key.map((k) => ({ op: "remove" as const, key: k })) },
  {
    weight: 1,
    arbitrary: fc.integer({ min: 0, max: 3 }).map((sid) => ({ op: "flushSid" as const, sid })),
  },
  { weight: 1, arbitrary: fc.constant({ op: "clear" as const }) },
);

describe("Iotlb", () => {
  it("behaves like an array-backed LRU (most recent first)", () => {
    fc.assert(
      fc.property(fc.integer({ min: 1, max: 6 }), fc.array(cmd, { maxLength: 80 }), (cap, cmds) => {
        const tlb = new Iotlb(cap);
        let model: { key: number; value: number }[] = [];
        for (const c of cmds) {
          switch (c.op) {
            case "lookup": {
              const slot = tlb.lookup(c.key);
              const i = model.findIndex((e) => e.key === c.key);
              expect(slot >= 0).toBe(i >= 0);
              if (i >= 0) {
                const [e] = model.splice(i, 1);
                model.unshift(e!);
                expect(tlb.values[slot]).toBe(e!.value);
              }
              break;
            }
            case "insert": {
              const evicted = tlb.insert(c.key, c.value, 0);
              const i = model.findIndex((e) => e.key === c.key);
              let expected = -1;
              if (i >= 0) model.splice(i, 1);
              else if (model.length === cap) expected = model.pop()!.key;
              model.unshift({ key: c.key, value: c.value });
              expect(evicted).toBe(expected);
              break;
            }
            case "remove": {
              const i = model.findIndex((e) => e.key === c.key);
              expect(tlb.remove(c.key)).toBe(i >= 0);
              if (i >= 0) model.splice(i, 1);
              break;
            }
            case "flushSid": {
              const before = model.length;
              model = model.filter((e) => Math.floor(e.key / SID_KEY) !== c.sid);
              expect(tlb.flushSid(c.sid)).toBe(before - model.length);
              break;
            }
            case "clear":
              expect(tlb.clear()).toBe(model.length);
              model = [];
              break;
          }
          expect(tlb.entries().map((e) => [e.key, e.value])).toEqual(
            model.map((e) => [e.key, e.value]),
          );
          expect(tlb.size).toBe(model.length);
        }
      }),
      { seed: 42, numRuns: 300 },
    );
  });

  it("refuses a capacity outside [1, 2^20]", () => {
    expectCode(() => new Iotlb(0), "EINVAL");
    expectCode(() => new Iotlb(2 ** 21), "EINVAL");
  });
});
