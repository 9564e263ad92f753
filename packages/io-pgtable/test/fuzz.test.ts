// Fuzzing with fixed seeds, bounded in runs (a few seconds per case):
// (a) random operation sequences, valid and invalid, on every format and granule, checked
//     after every step against the independent model and memory walk of test/model.ts;
// (b) decoding random and adversarial memory images, with the work counted from outside (bytes
//     read through a counting memory) and asserted below a bound set by the image itself.
import { DevrefError, type PhysicalMemory, SparseMemory } from "@devref/raw-device";
import fc from "fast-check";
import { describe, expect, it } from "vitest";
import {
  decodeIoPgtable,
  dumpIoPgtable,
  type IoPgtableFormat,
  type IoPgtableProblem,
  IotlbGather,
} from "../src/index.js";
import { I, P, SZ_1G, SZ_2M, SZ_4K, SZ_16K } from "./helpers.js";
import { ALL_SHAPES, type Cmd, command, ModelTable, type Shape } from "./model.js";

// ---- (a) operation sequences -------------------------------------------------------------

/** Wrong-typed values per parameter; every one must be refused with DevrefError naming it. */
const GARBAGE: Record<string, readonly unknown[]> = {
  iova: [
    -1,
    -4096,
    0.5,
    Number.NaN,
    Number.POSITIVE_INFINITY,
    2 ** 53,
    2 ** 64,
    "4096",
    null,
    undefined,
    {},
    [],
    true,
    2n ** 64n,
    -(2n ** 63n) - 1n,
    Symbol("iova"),
  ],
  paddr: [
    -4096,
    0.5,
    Number.NaN,
    Number.NEGATIVE_INFINITY,
    2 ** 53 + 2,
    4096n,
    "4096",
    null,
    undefined,
    {},
    false,
  ],
  pgsize: [0, -4096, 0.5, Number.NaN, "4096", 4096n, null, undefined, {}, 2 ** 53, 2 ** 60],
  pgcount: [-1, 0.5, Number.NaN, Number.POSITIVE_INFINITY, "1", 1n, null, undefined, {}, 2 ** 53],
  prot: [-1, 64, 1.5, Number.NaN, "3", 3n, null, undefined, {}, 0, 2 ** 31, 4, 0x10],
  gather: [{}, { queued: "yes" }, 5, "gather", true, [], { queued: 1 }],
};

type Bad =
  | { op: "garbage"; call: "map" | "unmap" | "phys"; param: string; pick: number; base: Cmd }
  | {
      op: "range";
      base: Cmd;
      kind: "iova" | "paddr" | "misalign-iova" | "misalign-pa" | "pgsize" | "alias";
      mapFirst?: boolean;
    };

function badCommand(sh: Shape): fc.Arbitrary<Bad> {
  const base = command(sh).filter((c) => c.op !== "phys");
  return fc.oneof(
    fc.tuple(base, fc.nat(), fc.nat()).map(([b, which, pick]): Bad => {
      const params =
        b.op === "map"
          ? ["iova", "paddr", "pgsize", "pgcount", "prot"]
          : ["iova", "pgsize", "pgcount", "gather"];
      return { op: "garbage", call: b.op, param: params[which % params.length]!, pick, base: b };
    }),
    fc.tuple(command(sh), fc.nat()).map(
      ([b, pick]): Bad => ({
        op: "garbage",
        call: "phys",
        param: "iova",
        pick,
        base: b,
      }),
    ),
    fc
      .tuple(
        command(sh),
        fc.constantFrom("iova", "iova", "paddr", "misalign-iova", "misalign-pa", "pgsize"),
      )
      .map(([b, kind]): Bad => ({ op: "range", base: b, kind })),
    // A lookup out of range, then a one-page map or unmap at the same address.
    fc.tuple(base, fc.boolean()).map(
      ([b, mapFirst]): Bad => ({
        op: "range",
        base: { ...b, count: 1 },
        kind: "alias",
        mapFirst,
      }),
    ),
  );
}

/** Runs a wrong-typed call: it must throw DevrefError naming the parameter and change nothing. */
function runGarbage(m: ModelTable, bad: Extract<Bad, { op: "garbage" }>): void {
  const sh = m.sh;
  const pool = GARBAGE[bad.param]!;
  const junk = pool[bad.pick % pool.length];
  const b = bad.base;
  const size = b.op === "phys" ? sh.granule : 2 ** sh.shift(b.level);
  const iova = b.iova - (b.iova % size);
  const args: Record<string, unknown> = {
    iova: m.arg(iova),
    paddr: b.op === "map" ? P(b.pa - (b.pa % size)) : P(0),
    pgsize: size,
    pgcount: b.op === "phys" ? 1 : b.count,
    prot: b.op === "map" ? b.prot : 1,
    gather: new IotlbGather(),
  };
  args[bad.param] = junk;
  let caught: unknown;
  try {
    if (bad.call === "map")
      m.t.mapPages(
        args.iova as never,
        args.paddr as never,
        args.pgsize as never,
        args.pgcount as never,
        args.prot as never,
      );
    else if (bad.call === "unmap")
      m.t.unmapPages(
        args.iova as never,
        args.pgsize as never,
        args.pgcount as never,
        args.gather as never,
      );
    else m.t.iovaToPhys(args.iova as never);
  } catch (e) {
    caught = e;
  }
  expect(caught, `${bad.call} with ${bad.param} = ${String(junk)}`).toBeInstanceOf(DevrefError);
  const e = caught as DevrefError;
  expect(["EINVAL", "ERANGE"]).toContain(e.code);
  expect(String(e.details.parameter)).toMatch(new RegExp(`^${bad.param}`));
}

/**
 * Runs a well-typed call that the range, alignment or page-size rules refuse or ignore: it
 * must fail (map) or do nothing (unmap) exactly as the rules say, and change nothing.
 */
function runRange(m: ModelTable, bad: Extract<Bad, { op: "range" }>): void {
  const sh = m.sh;
  const b = bad.base;
  const dart = sh.fmt.startsWith("apple");
  if (b.op === "phys") {
    // A lookup above 2^ias (or a number on a TTBR1 table) translates the alias, and must not
    // leave anything behind that lets a later map or unmap there skip the range check.
    if (dart || b.iova + 2 ** sh.ias > Number.MAX_SAFE_INTEGER) return;
    const arg = sh.ttbr1 ? I(b.iova) : I(b.iova + 2 ** sh.ias);
    expect(m.t.iovaToPhys(arg)).toBe(m.expectPhys(b.iova));
    return;
  }
  const size = 2 ** sh.shift(b.level);
  const iova = b.iova - (b.iova % size);
  if (bad.kind === "alias") {
    if (dart || iova + 2 ** sh.ias > Number.MAX_SAFE_INTEGER) return;
    const alias = sh.ttbr1 ? I(iova) : I(iova + 2 ** sh.ias);
    // Make the in-range twin exist (or not) so the lookup walks as deep as it can.
    if (bad.mapFirst === true) m.run(b);
    expect(m.t.iovaToPhys(alias)).toBe(m.expectPhys(iova));
    m.check();
    if (b.op === "map") {
      expect(() => m.t.mapPages(alias, P(b.pa - (b.pa % size)), size, 1, b.prot)).toThrow(
        expect.objectContaining({ code: "ERANGE" }),
      );
    } else expect(m.t.unmapPages(alias, size, 1)).toBe(0);
    return;
  }
  let argIova = m.arg(iova);
  let pa = b.op === "map" ? b.pa - (b.pa % size) : 0;
  let pgsize = size;
  let expectMap: string;
  let expectUnmap: number | string;
  switch (bad.kind) {
    case "iova":
      if (dart) return; // DART has no input range check (spec trap 15)
      if (sh.ttbr1) {
        argIova = I(iova); // a number is never an upper-half address
      } else {
        if (iova + 2 ** sh.ias > Number.MAX_SAFE_INTEGER) return;
        argIova = I(iova + 2 ** sh.ias);
      }
      expectMap = "ERANGE";
      expectUnmap = 0;
      break;
    case "paddr":
      if (b.op === "unmap" || pa + 2 ** sh.oas > Number.MAX_SAFE_INTEGER) return;
      pa += 2 ** sh.oas;
      expectMap = "ERANGE";
      expectUnmap = 0;
      break;
    case "misalign-iova":
      argIova = m.arg(iova + sh.granule / 2);
      expectMap = "EINVAL";
      // Unmap checks alignment only once there is something to unmap.
      expectUnmap = b.count === 0 ? 0 : "EINVAL";
      break;
    case "misalign-pa":
      if (b.op === "unmap") return;
      pa += sh.granule / 2;
      expectMap = "EINVAL";
      expectUnmap = 0;
      break;
    default:
      pgsize = size * 3;
      expectMap = "EINVAL";
      expectUnmap = 0;
  }
  let got: number | string;
  try {
    got =
      b.op === "map"
        ? m.t.mapPages(argIova, P(pa), pgsize, b.count, b.prot)
        : m.t.unmapPages(argIova, pgsize, b.count);
  } catch (e) {
    if (!DevrefError.is(e)) throw e;
    got = e.code;
  }
  expect(got).toBe(b.op === "map" ? expectMap : expectUnmap);
}

const FUZZ_RUNS = 25;
const FUZZ_LEN = 40;

describe("fuzz (a): valid and invalid operations on every format and granule, against the model", () => {
  it.each(ALL_SHAPES.map((sh): [string, Shape] => [sh.name, sh]))(
    "%s",
    (_name, sh) => {
      const step = fc.oneof(
        { weight: 3, arbitrary: command(sh).map((c) => ({ ok: true as const, c })) },
        { weight: 2, arbitrary: badCommand(sh).map((b) => ({ ok: false as const, b })) },
      );
      fc.assert(
        fc.property(fc.array(step, { minLength: 15, maxLength: FUZZ_LEN }), (steps) => {
          const m = new ModelTable(sh);
          for (const s of steps) {
            if (s.ok) m.run(s.c);
            else if (s.b.op === "garbage") runGarbage(m, s.b);
            else runRange(m, s.b);
            m.check();
          }
          m.dispose();
        }),
        { seed: 0x10_9a, numRuns: FUZZ_RUNS },
      );
    },
    60_000,
  );
});

// ---- (b) hostile images ------------------------------------------------------------------

/** A memory that counts the bytes read through it. */
class CountingMemory implements PhysicalMemory {
  bytesRead = 0;
  constructor(readonly inner: SparseMemory) {}
  get size(): number {
    return this.inner.size;
  }
  read8(pa: number): number {
    this.bytesRead += 1;
    return this.inner.read8(pa);
  }
  write8(pa: number, v: number): void {
    this.inner.write8(pa, v);
  }
  read32(pa: number): number {
    this.bytesRead += 4;
    return this.inner.read32(pa);
  }
  write32(pa: number, v: number): void {
    this.inner.write32(pa, v);
  }
  read64Lo(pa: number): number {
    this.bytesRead += 4;
    return this.inner.read64Lo(pa);
  }
  read64Hi(pa: number): number {
    this.bytesRead += 4;
    return this.inner.read64Hi(pa);
  }
  write64(pa: number, lo: number, hi: number): void {
    this.inner.write64(pa, lo, hi);
  }
  readBytes(pa: number, dest: Uint8Array): void {
    this.bytesRead += dest.length;
    this.inner.readBytes(pa, dest);
  }
  writeBytes(pa: number, src: Uint8Array): void {
    this.inner.writeBytes(pa, src);
  }
  zero(pa: number, length: number): void {
    this.inner.zero(pa, length);
  }
}

const IMAGE_BASE = 0x1_0000;
const IMAGE_PAGES = 16;

/** Format, configuration, table bytes, root bytes. */
const DECODE_FORMATS: [
  IoPgtableFormat,
  { pgsizeBitmap: number; ias: number; oas: number },
  number,
  number,
][] = [
  ["arm-64-lpae-s1", { pgsizeBitmap: SZ_4K + SZ_2M + SZ_1G, ias: 48, oas: 48 }, SZ_4K, SZ_4K],
  ["arm-64-lpae-s2", { pgsizeBitmap: 0x1_0000, ias: 52, oas: 52 }, 0x1_0000, 0x2000],
  ["arm-64-lpae-s2", { pgsizeBitmap: SZ_16K, ias: 40, oas: 40 }, SZ_16K, 0x4_0000],
  ["apple-dart", { pgsizeBitmap: SZ_4K, ias: 41, oas: 42 }, SZ_4K, SZ_4K],
  ["apple-dart2", { pgsizeBitmap: SZ_16K, ias: 42, oas: 42 }, SZ_16K, SZ_16K],
];

/** Table descriptors pointing into the image (self, cycles, chains), huge addresses, junk. */
function descriptorWord(format: IoPgtableFormat): fc.Arbitrary<[number, number]> {
  const dart2 = format === "apple-dart2";
  const into = fc.integer({ min: 0, max: IMAGE_PAGES - 1 }).map((k): [number, number] => {
    const pa = IMAGE_BASE + k * SZ_16K;
    return dart2 ? [((pa >>> 4) | 1) >>> 0, 0] : [(pa | 3) >>> 0, 0];
  });
  return fc.oneof(
    { weight: 4, arbitrary: into },
    { weight: 1, arbitrary: fc.constant<[number, number]>([0, 0]) },
    {
      weight: 1,
      arbitrary: fc.tuple(
        fc.integer({ min: 0, max: 0xffff_ffff }),
        fc.integer({ min: 0, max: 0xffff_ffff }),
      ),
    },
    // Leaves and tables with huge output addresses (above memory, up to bit 51).
    {
      weight: 1,
      arbitrary: fc.integer({ min: 0, max: 0xffff }).map((h): [number, number] => [0x743, h]),
    },
    {
      weight: 1,
      arbitrary: fc.integer({ min: 0, max: 0xffff }).map((h): [number, number] => [0x1003, h]),
    },
  );
}

/** The most bytes an honest walk may read: each distinct table once, at most one per descriptor. */
function readBound(nonZero: number, roots: number, tableBytes: number, rootBytes: number): number {
  return nonZero * tableBytes + roots * rootBytes;
}

describe("fuzz (b): decoding hostile images is bounded by the image", () => {
  it.each(DECODE_FORMATS)("%s %o", (format, cfg, tableBytes, rootBytes) => {
    const dart = format.startsWith("apple");
    fc.assert(
      fc.property(
        fc.array(
          fc.tuple(
            fc.integer({ min: 0, max: (IMAGE_PAGES * SZ_16K) / 8 - 1 }),
            descriptorWord(format),
          ),
          { maxLength: 400 },
        ),
        // Fill whole pages with one descriptor (self-pointing and shared tables).
        fc.array(fc.tuple(fc.integer({ min: 0, max: IMAGE_PAGES - 1 }), descriptorWord(format)), {
          maxLength: 3,
        }),
        fc.integer({ min: 0, max: IMAGE_PAGES - 1 }),
        (writes, fills, rootPage) => {
          const inner = new SparseMemory(2 ** 44);
          for (const [page, [lo, hi]] of fills)
            for (let i = 0; i < SZ_16K / 8; i++)
              inner.write64(IMAGE_BASE + page * SZ_16K + i * 8, lo, hi);
          for (const [slot, [lo, hi]] of writes) inner.write64(IMAGE_BASE + slot * 8, lo, hi);
          let nonZero = 0;
          for (let a = IMAGE_BASE; a < IMAGE_BASE + IMAGE_PAGES * SZ_16K; a += 8)
            if (inner.read64Lo(a) !== 0 || inner.read64Hi(a) !== 0) nonZero++;
          const root = IMAGE_BASE + rootPage * SZ_16K;
          const nRoots = format === "apple-dart" ? 4 : 1;
          const roots = dart ? Array.from({ length: nRoots }, () => root) : root;
          for (const f of [decodeIoPgtable, dumpIoPgtable] as const) {
            const mem = new CountingMemory(inner);
            const problems: IoPgtableProblem[] = [];
            let result: unknown;
            try {
              result = f(mem, format, cfg, roots, { onProblem: (p) => problems.push(p) });
            } catch (e) {
              if (!(e instanceof DevrefError)) throw e;
              expect(e.code).toBe("E2BIG");
            }
            expect(mem.bytesRead).toBeLessThanOrEqual(
              readBound(nonZero, nRoots, tableBytes, rootBytes),
            );
            // Output is bounded by the descriptors read: at most one mapping or problem each.
            const out = Array.isArray(result) ? result.length : 0;
            expect(out + problems.length).toBeLessThanOrEqual(mem.bytesRead / 8 + nRoots);
          }
        },
      ),
      { seed: 0x12, numRuns: 60 },
    );
  });

  it("deep chains of distinct tables stay within maxTables and maxEntries", () => {
    // 4096 distinct 4K tables, each pointing at the next through every slot.
    const inner = new SparseMemory(2 ** 40);
    const n = 4096;
    for (let k = 0; k < n; k++) {
      const pa = IMAGE_BASE + k * SZ_4K;
      const next = IMAGE_BASE + ((k + 1) % n) * SZ_4K;
      for (let i = 0; i < 512; i++) inner.write64(pa + i * 8, next | 3, 0);
    }
    const mem = new CountingMemory(inner);
    const cfg = { pgsizeBitmap: SZ_4K, ias: 48, oas: 48 };
    // Levels bound the depth (4), and each table is read once: 4 tables in all, the last one's
    // descriptors read as 512 pages.
    expect(decodeIoPgtable(mem, "arm-64-lpae-s1", cfg, IMAGE_BASE)).toHaveLength(512);
    expect(mem.bytesRead).toBe(4 * SZ_4K);
    expect(() => decodeIoPgtable(mem, "arm-64-lpae-s1", cfg, IMAGE_BASE, { maxTables: 2 })).toThrow(
      expect.objectContaining({ code: "E2BIG" }),
    );
  });
});
