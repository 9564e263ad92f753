// The IOTLB's LRU against a plain array model, over random command sequences.
import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { Iotlb } from "../src/dart/iotlb.js";
import { expectCode } from "./helpers.js";

interface Key {
  tag: number;
  n: number;
}
type Cmd =
  | { op: "lookup"; k: Key }
  | { op: "insert"; k: Key; value: number }
  | { op: "remove"; k: Key }
  | { op: "flushSid"; sid: number }
  | { op: "clear" };

// Tags mix streams 0..3 with a walk-cache level above bit 8, so flushSid must match the low byte.
const key: fc.Arbitrary<Key> = fc
  .tuple(
    fc.integer({ min: 0, max: 3 }),
    fc.integer({ min: 0, max: 1 }),
    fc.integer({ min: 0, max: 7 }),
  )
  .map(([sid, level, n]) => ({ tag: sid + 0x100 * level, n: n * 0x1_0001 }));
const cmd: fc.Arbitrary<Cmd> = fc.oneof(
  { weight: 4, arbitrary: key.map((k) => ({ op: "lookup" as const, k })) },
  {
    weight: 4,
    arbitrary: fc
      .tuple(key, fc.nat(1000))
      .map(([k, value]) => ({ op: "insert" as const, k, value })),
  },
  { weight: 1, arbitrary: key.map((k) => ({ op: "remove" as const, k })) },
  {
    weight: 1,
    arbitrary: fc.integer({ min: 0, max: 3 }).map((sid) => ({ op: "flushSid" as const, sid })),
  },
  { weight: 1, arbitrary: fc.constant({ op: "clear" as const }) },
);

const same = (a: Key, b: Key): boolean => a.tag === b.tag && a.n === b.n;

describe("Iotlb", () => {
  it("behaves like an array-backed LRU (most recent first)", () => {
    fc.assert(
      fc.property(fc.integer({ min: 1, max: 6 }), fc.array(cmd, { maxLength: 80 }), (cap, cmds) => {
        const tlb = new Iotlb(cap);
        let model: { k: Key; value: number }[] = [];
        for (const c of cmds) {
          switch (c.op) {
            case "lookup": {
              const slot = tlb.lookup(c.k.tag, c.k.n);
              const i = model.findIndex((e) => same(e.k, c.k));
              expect(slot >= 0).toBe(i >= 0);
              if (i >= 0) {
                const [e] = model.splice(i, 1);
                model.unshift(e!);
                expect(tlb.values[slot]).toBe(e!.value);
              }
              break;
            }
            case "insert": {
              const full = model.length === cap;
              const i = model.findIndex((e) => same(e.k, c.k));
              const evicted = tlb.insert(c.k.tag, c.k.n, c.value, 0);
              if (i >= 0) model.splice(i, 1);
              else if (full) model.pop();
              model.unshift({ k: c.k, value: c.value });
              expect(evicted >= 0).toBe(i < 0 && full);
              break;
            }
            case "remove": {
              const i = model.findIndex((e) => same(e.k, c.k));
              expect(tlb.remove(c.k.tag, c.k.n)).toBe(i >= 0);
              if (i >= 0) model.splice(i, 1);
              break;
            }
            case "flushSid": {
              const before = model.length;
              model = model.filter((e) => (e.k.tag & 0xff) !== c.sid);
              expect(tlb.flushSid(c.sid)).toBe(before - model.length);
              break;
            }
            case "clear":
              expect(tlb.clear()).toBe(model.length);
              model = [];
              break;
          }
          expect(tlb.entries().map((e) => [e.tag, e.n, e.value])).toEqual(
            model.map((e) => [e.k.tag, e.k.n, e.value]),
          );
          expect(tlb.size).toBe(model.length);
          for (const e of model) expect(tlb.peek(e.k.tag, e.k.n)).toBeGreaterThanOrEqual(0);
        }
      }),
      { seed: 42, numRuns: 400 },
    );
  });

  it("keeps every key findable through many evictions with colliding buckets", () => {
    // A long run on a small table exercises backward-shift deletion across wrapped runs.
    const tlb = new Iotlb(7);
    const live: number[] = [];
    for (let i = 0; i < 5000; i++) {
      const n = (i * 2654435761) % 97;
      if (tlb.peek(1, n) >= 0) continue;
      tlb.insert(1, n, n * 3, 0);
      live.unshift(n);
      if (live.length > 7) live.pop();
      for (const k of live) expect(tlb.values[tlb.peek(1, k)]).toBe(k * 3);
    }
  });

  it("refuses a capacity outside [1, 2^20]", () => {
    expectCode(() => new Iotlb(0), "EINVAL");
    expectCode(() => new Iotlb(2 ** 21), "EINVAL");
  });
});
