// Model-based test of IovaDomain: random allocations (tree and cache paths), frees, flushes,
// depot trims and bad frees against a plain list of what is allocated. Checked after every
// step: no overlap, limits, alignment, the tree holds exactly the live ranges plus cached
// ones; at the end everything comes back and a full-range allocation succeeds.
import { IovaDomain, type IovaRange } from "@devref/dma-iommu";
import { DevrefError } from "@devref/raw-device";
import fc from "fast-check";
import { describe, expect, it } from "vitest";

interface Live {
  pfn: number;
  /** What was asked (the fast path frees with this). */
  asked: number;
  /** The range's real size. */
  size: number;
  fast: boolean;
}

type Op =
  | { kind: "alloc"; size: number; limit: number; aligned: boolean }
  | { kind: "allocFast"; size: number; limit: number; flush: boolean }
  | { kind: "free"; pick: number }
  | { kind: "freeFast"; pick: number }
  | { kind: "badFree"; pfn: number }
  | { kind: "flush" }
  | { kind: "trim" }
  | { kind: "burst"; count: number; size: number; limit: number }
  | { kind: "freeAllFast" };

function roundupPow2(n: number): number {
  return 2 ** Math.ceil(Math.log2(n));
}

function opArb(limits: readonly number[]): fc.Arbitrary<Op> {
  const limit = fc.constantFrom(...limits);
  const size = fc.oneof(fc.integer({ min: 1, max: 8 }), fc.integer({ min: 1, max: 70 }));
  return fc.oneof(
    {
      weight: 4,
      arbitrary: fc.record({
        kind: fc.constant("alloc" as const),
        size,
        limit,
        aligned: fc.boolean(),
      }),
    },
    {
      weight: 6,
      arbitrary: fc.record({
        kind: fc.constant("allocFast" as const),
        size,
        limit,
        flush: fc.boolean(),
      }),
    },
    { weight: 3, arbitrary: fc.record({ kind: fc.constant("free" as const), pick: fc.nat() }) },
    { weight: 5, arbitrary: fc.record({ kind: fc.constant("freeFast" as const), pick: fc.nat() }) },
    {
      weight: 1,
      arbitrary: fc.record({ kind: fc.constant("badFree" as const), pfn: fc.nat({ max: 0x3000 }) }),
    },
    { weight: 1, arbitrary: fc.constant({ kind: "flush" as const }) },
    { weight: 1, arbitrary: fc.constant({ kind: "trim" as const }) },
  );
}

/** Bursts of small fast allocations and mass frees, to fill magazines and depots. */
function longOpArb(limits: readonly number[]): fc.Arbitrary<Op> {
  const big = limits.filter((l) => l >= 0xfffff);
  return fc.oneof(
    { weight: 6, arbitrary: opArb(limits) },
    {
      weight: 1,
      arbitrary: fc.record({
        kind: fc.constant("burst" as const),
        count: fc.integer({ min: 50, max: 400 }),
        size: fc.constantFrom(1, 2, 3),
        limit: fc.constantFrom(...big),
      }),
    },
    { weight: 1, arbitrary: fc.constant({ kind: "freeAllFast" as const }) },
  );
}

function check(d: IovaDomain, live: Live[], start: number): void {
  const ranges: IovaRange[] = d.ranges();
  for (let i = 1; i < ranges.length; i++) {
    expect(ranges[i]!.pfnLo).toBeGreaterThan(ranges[i - 1]!.pfnHi);
  }
  const byLo = new Map(ranges.map((r) => [r.pfnLo, r]));
  for (const a of live) {
    expect(a.pfn).toBeGreaterThanOrEqual(start);
    expect(byLo.get(a.pfn)).toEqual({
      pfnLo: a.pfn,
      pfnHi: a.pfn + a.size - 1,
      reserved: false,
      cached: false,
    });
  }
  const cached = ranges.filter((r) => r.cached);
  expect(cached.length + live.length).toBe(ranges.length);
  expect(d.stats().cachedRanges).toBe(cached.length);
  for (const r of cached) {
    const size = r.pfnHi - r.pfnLo + 1;
    expect(size & (size - 1)).toBe(0);
    expect(size).toBeLessThanOrEqual(32);
  }
  expect(d.stats().pfns).toBe(ranges.reduce((s, r) => s + r.pfnHi - r.pfnLo + 1, 0));
}

/** The most depot magazines any run reached: proof the long run gets that far. */
let depotPeak = 0;

function run(ops: Op[], start: number, limits: readonly number[], checkEvery = 1): void {
  const d = new IovaDomain(4096, start);
  const live: Live[] = [];
  let step = 0;
  for (const op of ops) {
    switch (op.kind) {
      case "alloc": {
        const pfn = d.allocIova(op.size, op.limit, op.aligned);
        if (pfn !== 0) {
          expect(pfn + op.size - 1).toBeLessThanOrEqual(op.limit);
          if (op.aligned) expect(pfn % roundupPow2(op.size)).toBe(0);
          live.push({ pfn, asked: op.size, size: op.size, fast: false });
        }
        break;
      }
      case "allocFast": {
        const pfn = d.allocIovaFast(op.size, op.limit, op.flush);
        if (pfn !== 0) {
          const size = op.size < 32 ? roundupPow2(op.size) : op.size;
          expect(pfn + size - 1).toBeLessThanOrEqual(op.limit);
          expect(pfn % roundupPow2(size)).toBe(0);
          live.push({ pfn, asked: op.size, size, fast: true });
        }
        break;
      }
      case "free":
      case "freeFast": {
        if (live.length === 0) break;
        const [a] = live.splice(op.pick % live.length, 1);
        // Like dma-iommu, only fast allocations go back through the fast path: the caches
        // trust that a range of a power-of-two size is aligned to it.
        if (op.kind === "free" || !a!.fast) d.freeIova(a!.pfn);
        else d.freeIovaFast(a!.pfn, a!.asked);
        break;
      }
      case "badFree": {
        const pfn = start + op.pfn;
        if (live.some((a) => pfn >= a.pfn && pfn < a.pfn + a.size)) break;
        const before = d.ranges();
        expect(() => d.freeIova(pfn)).toThrow(DevrefError);
        expect(() => d.freeIovaFast(pfn, 1)).toThrow(DevrefError);
        expect(d.ranges()).toEqual(before);
        break;
      }
      case "flush":
        d.flushRcaches();
        break;
      case "trim":
        d.trimDepot();
        break;
      case "burst":
        for (let i = 0; i < op.count; i++) {
          const pfn = d.allocIovaFast(op.size, op.limit, true);
          if (pfn === 0) break;
          live.push({ pfn, asked: op.size, size: roundupPow2(op.size), fast: true });
        }
        break;
      case "freeAllFast":
        for (const a of live.splice(0)) {
          if (a.fast) d.freeIovaFast(a.pfn, a.asked);
          else d.freeIova(a.pfn);
        }
        break;
    }
    depotPeak = Math.max(depotPeak, d.stats().depotMagazines);
    if (++step % checkEvery === 0) check(d, live, start);
  }
  check(d, live, start);
  // Everything returned: free what is live, flush the caches, and take the whole space.
  for (const a of live) {
    if (a.fast) d.freeIovaFast(a.pfn, a.asked);
    else d.freeIova(a.pfn);
  }
  d.flushRcaches();
  expect(d.stats()).toMatchObject({ ranges: 0, pfns: 0, cachedRanges: 0, depotMagazines: 0 });
  const top = Math.max(...limits);
  expect(d.allocIova(top - start + 1, top, false)).toBe(start);
}

describe("IovaDomain model", () => {
  // Small limits make exhaustion, the 32-bit fast failure and cache flushes common; the
  // 4 GiB and 8 GiB limits exercise both search hints.
  const low = [0x3f, 0xff, 0x7ff, 0xfffff, 0x1fffff] as const;
  it("keeps ranges disjoint, within limits and aligned, and gives everything back", {
    timeout: 30_000,
  }, () => {
    fc.assert(
      fc.property(fc.array(opArb(low), { maxLength: 150, size: "max" }), (ops) => run(ops, 1, low)),
      { seed: 0x10ba, numRuns: 100 },
    );
  });

  // The same near 2^52, where pfns are far above 32 bits.
  const base = 2 ** 52 - 0x4000;
  const high = [base + 0x3f, base + 0xff, base + 0x7ff, base + 0x3fff] as const;
  it("works the same with pfns near 2^52", { timeout: 30_000 }, () => {
    fc.assert(
      fc.property(fc.array(opArb(high), { maxLength: 200, size: "max" }), (ops) =>
        run(ops, base, high),
      ),
      { seed: 0x52, numRuns: 40 },
    );
  });

  it("a long run through many magazines stays consistent", { timeout: 30_000 }, () => {
    fc.assert(
      fc.property(
        fc.array(longOpArb(low), { minLength: 1500, maxLength: 2000, size: "max" }),
        (ops) => run(ops, 1, low, 50),
      ),
      // Sequences this long take minutes to shrink; the short properties above shrink well.
      { seed: 0x3a9, numRuns: 3, endOnFailure: true },
    );
    expect(depotPeak).toBeGreaterThan(0);
  });
});
