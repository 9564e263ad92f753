// Model-based tests: random map/unmap/iovaToPhys sequences against a simple model, and after
// every step an independent walk of the raw memory (written here, from the spec's bit
// layouts, sharing no code with the package) that must find exactly the model's state.
import { DevrefError, type SparseMemory } from "@devref/raw-device";
import fc from "fast-check";
import { describe, expect, it } from "vitest";
import {
  allocIoPgtable,
  IOMMU_CACHE,
  IOMMU_MMIO,
  IOMMU_NOEXEC,
  IOMMU_PRIV,
  IOMMU_READ,
  IOMMU_WRITE,
  type IoPgtableConfig,
} from "../src/index.js";
import { env, I, P } from "./helpers.js";

type Fmt = "arm-64-lpae-s1" | "arm-64-lpae-s2" | "apple-dart" | "apple-dart2";

interface Leaf {
  level: number;
  pa: number;
  prot: number;
}

interface Model {
  leaves: Map<number, Leaf>; // by first IOVA
  tables: Set<string>; // `${level}:${first IOVA}` for every non-root table
}

/** The shape, restated from the spec rather than read from the package. */
interface Shape {
  fmt: Fmt;
  cfg: IoPgtableConfig;
  granule: number;
  start: number; // LPAE absolute start level; DART: 1
  leafLevel: number; // 3 for LPAE, `levels` for DART
  rootEntries: number;
  shift: (level: number) => number;
  mapLevels: number[];
  /** Expected leaf descriptor, as a bigint. */
  leafDesc: (level: number, pa: number, prot: number) => bigint;
  tableDesc: (pa: number) => bigint;
  decodeTable: (d: bigint) => number;
  isLeaf: (level: number, d: bigint) => boolean;
  nTtbrs: number;
  ttbrShift: number;
  iovas: fc.Arbitrary<number>;
}

function lpaeShape(
  fmt: "arm-64-lpae-s1" | "arm-64-lpae-s2",
  granule: number,
  ias: number,
  oas: number,
  start: number,
  rootEntries: number,
): Shape {
  const bpl = Math.log2(granule) - 3;
  const stage = fmt === "arm-64-lpae-s1" ? 1 : 2;
  const sizes =
    granule === 0x1000
      ? [0x1000, 0x20_0000, 0x4000_0000]
      : granule === 0x4000
        ? [0x4000, 0x200_0000]
        : [0x1_0000, 0x2000_0000];
  const shift = (l: number) => (4 - l) * bpl + 3;
  const mapLevels = sizes.map((s) => 4 - (Math.log2(s) - 3) / bpl).filter((l) => l >= start);
  const attrs = (prot: number): bigint => {
    let d = 1n << 10n;
    if (stage === 1) {
      d |= 1n << 11n;
      if (prot & IOMMU_READ && !(prot & IOMMU_WRITE)) d |= 1n << 7n;
      if (!(prot & IOMMU_PRIV)) d |= 1n << 6n;
      d |= BigInt(prot & IOMMU_MMIO ? 2 : prot & IOMMU_CACHE ? 1 : 0) << 2n;
    } else {
      if (prot & IOMMU_READ) d |= 1n << 6n;
      if (prot & IOMMU_WRITE) d |= 1n << 7n;
      d |= BigInt(prot & IOMMU_MMIO ? 1 : prot & IOMMU_CACHE ? 0xf : 5) << 2n;
    }
    d |= (prot & IOMMU_CACHE ? 3n : 2n) << 8n;
    if (prot & IOMMU_NOEXEC) d |= 3n << 53n;
    return d;
  };
  const addr = (pa: number) => {
    const b = BigInt(pa);
    return (b | (b >> 36n)) & 0x0000_ffff_ffff_f000n;
  };
  const spanTop = 2 ** ias;
  return {
    fmt,
    cfg: { pgsizeBitmap: sizes.reduce((a, b) => a + b, 0), ias, oas },
    granule,
    start,
    leafLevel: 3,
    rootEntries,
    shift,
    mapLevels,
    leafDesc: (l, pa, prot) => attrs(prot) | addr(pa) | (l === 3 ? 3n : 1n),
    tableDesc: (pa) => addr(pa) | 3n,
    decodeTable: (d) => {
      const x = d & 0x0000_ffff_ffff_f000n;
      return Number(granule === 0x1_0000 ? (x | (x << 36n)) & 0x000f_ffff_ffff_0000n : x);
    },
    isLeaf: (l, d) => (l === 3 ? (d & 3n) === 3n : (d & 3n) === 1n),
    nTtbrs: 1,
    ttbrShift: 64,
    // A few regions so that runs collide, across the top of a concatenated root too.
    iovas: fc
      .tuple(
        fc.constantFrom(0, 1, spanTop / 2 ** shift(start) - 1),
        fc.integer({ min: 0, max: 3 }),
        // Near both ends of a leaf table, so runs get clamped at its end.
        fc.oneof(
          fc.integer({ min: 0, max: 600 }),
          fc.integer({ min: Math.max(0, granule / 8 - 600), max: granule / 8 - 1 }),
        ),
      )
      .map(([a, b, c]) => a * 2 ** shift(start) + b * 2 ** shift(start + 1) + c * granule),
  };
}

function dartShape(
  fmt: "apple-dart" | "apple-dart2",
  granule: number,
  ias: number,
  oas: number,
  levels: number,
  nTtbrs: number,
): Shape {
  const g = Math.log2(granule);
  const bpl = g - 3;
  const dart2 = fmt === "apple-dart2";
  const addr = (pa: number): bigint =>
    dart2 ? (BigInt(pa) >> 4n) & 0x3f_ffff_fc00n : BigInt(pa) & 0xf_ffff_f000n;
  const shift = (depth: number) => g + (levels - depth) * bpl;
  return {
    fmt,
    cfg: { pgsizeBitmap: granule, ias, oas },
    granule,
    start: 1,
    leafLevel: levels,
    rootEntries: granule / 8,
    shift,
    mapLevels: [levels],
    leafDesc: (_l, pa, prot) => {
      let d = 1n | (0xfffn << 40n) | addr(pa);
      if (dart2) {
        if (!(prot & IOMMU_CACHE)) d |= 2n;
        if (!(prot & IOMMU_WRITE)) d |= 4n;
        if (!(prot & IOMMU_READ)) d |= 8n;
      } else {
        d |= 2n;
        if (!(prot & IOMMU_WRITE)) d |= 1n << 7n;
        if (!(prot & IOMMU_READ)) d |= 1n << 8n;
      }
      return d;
    },
    tableDesc: (pa) => addr(pa) | 1n,
    decodeTable: (d) => Number(dart2 ? (d & 0x3f_ffff_fc00n) << 4n : d & 0xf_ffff_f000n),
    isLeaf: (l) => l === levels,
    nTtbrs,
    ttbrShift: g + levels * bpl,
    // Include IOVAs above ias (aliasing slots) and beyond the last TTBR (ENOMEM).
    iovas: fc
      .tuple(
        fc.integer({ min: 0, max: nTtbrs }),
        fc.constantFrom(0, 1, 2 ** bpl - 1),
        fc.integer({ min: 0, max: 3 }),
        fc.integer({ min: 0, max: 40 }),
      )
      .map(
        ([t, a, b, c]) =>
          t * 2 ** (g + levels * bpl) + a * 2 ** shift(1) + b * 2 ** shift(2) + c * granule,
      ),
  };
}

const key = (level: number, iova: number) => `${level}:${iova}`;
const alignDown = (x: number, a: number) => x - (x % a);

/** Walks raw memory from the roots (bytes, little-endian) and checks it holds exactly the model. */
function checkMemory(
  mem: SparseMemory,
  sh: Shape,
  roots: readonly number[],
  model: Model,
  expectBytes: number,
  bytes: number,
): void {
  const seenLeaves = new Map<number, bigint>();
  const seenTables = new Set<string>();
  const visit = (pa: number, level: number, entries: number, base: number) => {
    const bytes = new Uint8Array(entries * 8);
    mem.readBytes(pa, bytes);
    // raw-device refuses big-endian hosts, so host-order words are little-endian here.
    const words = new Uint32Array(bytes.buffer);
    for (let i = 0; i < entries; i++) {
      const lo = words[2 * i]!;
      const hi = words[2 * i + 1]!;
      if (lo === 0 && hi === 0) continue;
      const d = (BigInt(hi) << 32n) | BigInt(lo);
      const iova = base + i * 2 ** sh.shift(level);
      if (sh.isLeaf(level, d)) seenLeaves.set(iova, d);
      else if (level < sh.leafLevel && (sh.fmt.startsWith("apple") || (d & 3n) === 3n)) {
        seenTables.add(key(level + 1, iova));
        visit(sh.decodeTable(d), level + 1, sh.granule / 8, iova);
      } else throw new Error(`invalid descriptor ${d.toString(16)} at level ${level}`);
    }
  };
  for (const [t, r] of roots.entries()) visit(r, sh.start, sh.rootEntries, t * 2 ** sh.ttbrShift);
  expect([...seenTables].sort()).toEqual([...model.tables].sort());
  expect(seenLeaves.size).toBe(model.leaves.size);
  for (const [iova, leaf] of model.leaves) {
    expect(seenLeaves.get(iova)?.toString(16)).toBe(
      sh.leafDesc(leaf.level, leaf.pa, leaf.prot).toString(16),
    );
  }
  expect(bytes).toBe(expectBytes);
}

type Cmd =
  | { op: "map"; iova: number; level: number; count: number; pa: number; prot: number }
  | { op: "unmap"; iova: number; level: number; count: number }
  | { op: "phys"; iova: number };

function run(sh: Shape, cmds: Cmd[]): void {
  const { pages, mem } = env();
  const t = allocIoPgtable(sh.fmt, sh.cfg, pages);
  const rootBytes = Math.max(sh.rootEntries * 8, 64);
  const roots: number[] =
    t.cfg.format === "arm-64-lpae-s1"
      ? [t.cfg.armLpaeS1Cfg.ttbr]
      : t.cfg.format === "arm-64-lpae-s2"
        ? [t.cfg.armLpaeS2Cfg.vttbr]
        : [...t.cfg.appleDartCfg.ttbr];
  const dart = sh.fmt.startsWith("apple");
  const baseBytes = dart ? sh.nTtbrs * sh.granule : rootBytes;
  const model: Model = { leaves: new Map(), tables: new Set() };
  const ept = sh.granule / 8;
  const idxAt = (iova: number, l: number) =>
    Math.floor(iova / 2 ** sh.shift(l)) % (l === sh.start ? sh.rootEntries : ept);
  /** Drops the table at `level` covering [base, base + size) and everything below it. */
  const removeSubtree = (base: number, size: number, level: number) => {
    for (const k of model.leaves.keys()) if (k >= base && k < base + size) model.leaves.delete(k);
    for (const k of [...model.tables]) {
      const [lv, at] = k.split(":").map(Number) as [number, number];
      if (at >= base && at < base + size && lv >= level) model.tables.delete(k);
    }
  };
  const inTtbr = (iova: number) => !dart || Math.floor(iova / 2 ** sh.ttbrShift) % ept < sh.nTtbrs;

  for (const c of cmds) {
    if (c.op === "phys") {
      let expected = 0;
      for (let l = sh.start; l <= sh.leafLevel; l++) {
        const s = 2 ** sh.shift(l);
        const leaf = model.leaves.get(alignDown(c.iova, s));
        if (leaf !== undefined && leaf.level === l) {
          expected = leaf.pa + (c.iova % s);
          break;
        }
      }
      expect(t.iovaToPhys(I(c.iova))).toBe(expected);
    } else if (c.op === "map") {
      const size = 2 ** sh.shift(c.level);
      const iova = alignDown(c.iova, size);
      const pa = alignDown(c.pa, size);
      let expectedCode: string | null = null;
      let n = 0;
      if (!inTtbr(iova)) expectedCode = "ENOMEM";
      else {
        const idx = idxAt(iova, c.level);
        n = Math.min(c.count, ept - (idx % ept));
        if (!dart && c.level === sh.start && idx + n > sh.rootEntries) expectedCode = "ERANGE";
      }
      if (expectedCode === null) {
        for (let l = sh.start; l < c.level; l++) {
          const s = 2 ** sh.shift(l);
          const b = alignDown(iova, s);
          if (model.leaves.get(b)?.level === l) {
            expectedCode = "EEXIST";
            break;
          }
          model.tables.add(key(l + 1, b));
        }
      }
      if (expectedCode === null) {
        for (let i = 0; i < n; i++) {
          const a = iova + i * size;
          if (model.leaves.get(a)?.level === c.level) {
            expectedCode = "EEXIST";
            break;
          }
          // LPAE replaces a table slot by slot before it meets a leaf; DART never has tables here.
          if (!dart && c.level < 3 && model.tables.has(key(c.level + 1, a)))
            removeSubtree(a, size, c.level + 1);
        }
      }
      let got: number | string;
      try {
        got = t.mapPages(I(iova), P(pa), size, c.count, c.prot);
      } catch (e) {
        if (!DevrefError.is(e)) throw e;
        got = e.code;
      }
      if (expectedCode !== null) expect(got).toBe(expectedCode);
      else {
        expect(got).toBe(n * size);
        for (let i = 0; i < n; i++)
          model.leaves.set(iova + i * size, { level: c.level, pa: pa + i * size, prot: c.prot });
      }
    } else {
      const size = 2 ** sh.shift(c.level);
      const iova = alignDown(c.iova, size);
      let expected = 0;
      let ok = inTtbr(iova);
      for (let l = sh.start; ok && l < c.level; l++) {
        const b = alignDown(iova, 2 ** sh.shift(l));
        if (model.leaves.get(b)?.level === l || !model.tables.has(key(l + 1, b))) ok = false;
      }
      if (ok) {
        const idx = idxAt(iova, c.level);
        const n = Math.min(c.count, ept - (idx % ept));
        if (!(!dart && c.level === sh.start && idx + n > sh.rootEntries)) {
          let i = 0;
          for (; i < n; i++) {
            const a = iova + i * size;
            if (model.leaves.get(a)?.level === c.level) model.leaves.delete(a);
            else if (!dart && c.level < 3 && model.tables.has(key(c.level + 1, a)))
              removeSubtree(a, size, c.level + 1);
            else break;
          }
          expected = i * size;
        }
      }
      expect(t.unmapPages(I(iova), size, c.count)).toBe(expected);
    }
    checkMemory(mem, sh, roots, model, baseBytes + model.tables.size * sh.granule, t.tableBytes);
  }
  t[Symbol.dispose]();
  expect(pages.bytesInUse).toBe(0);
}

function commands(sh: Shape): fc.Arbitrary<Cmd[]> {
  const prot = fc.integer({ min: 1, max: 63 }).filter((p) => (p & 3) !== 0);
  const level = fc.constantFrom(...sh.mapLevels);
  const count = fc.oneof(
    fc.integer({ min: 0, max: 3 }),
    fc.integer({ min: 1, max: Math.min(sh.granule / 8 + 2, 700) }),
  );
  const pa = fc.integer({ min: 1, max: 2 ** 20 }).map((x) => x * 2 ** 16);
  return fc.array(
    fc.oneof(
      {
        weight: 3,
        arbitrary: fc.record({
          op: fc.constant("map" as const),
          iova: sh.iovas,
          level,
          count,
          pa,
          prot,
        }),
      },
      {
        weight: 2,
        arbitrary: fc.record({ op: fc.constant("unmap" as const), iova: sh.iovas, level, count }),
      },
      {
        weight: 2,
        arbitrary: fc.record({
          op: fc.constant("phys" as const),
          iova: sh.iovas.map((x) => x + 0x123),
        }),
      },
    ),
    { maxLength: 20 },
  );
}

const SHAPES: [string, Shape][] = [
  ["S1 4K ias 32 (4-entry root)", lpaeShape("arm-64-lpae-s1", 0x1000, 32, 48, 1, 4)],
  ["S1 4K ias 48", lpaeShape("arm-64-lpae-s1", 0x1000, 48, 48, 0, 512)],
  [
    "S2 16K ias 40 oas 40 (concatenated 32768-entry root)",
    lpaeShape("arm-64-lpae-s2", 0x4000, 40, 40, 2, 32768),
  ],
  [
    "S2 4K ias 40 oas 40 (concatenated 1024-entry root)",
    lpaeShape("arm-64-lpae-s2", 0x1000, 40, 40, 1, 1024),
  ],
  ["S1 64K ias 48", lpaeShape("arm-64-lpae-s1", 0x1_0000, 48, 48, 1, 64)],
  ["DART 4K ias 32, 4 TTBRs", dartShape("apple-dart", 0x1000, 32, 36, 2, 4)],
  ["DART 4K ias 40, 3 levels, 2 TTBRs", dartShape("apple-dart", 0x1000, 40, 42, 3, 2)],
  ["DART2 16K ias 32", dartShape("apple-dart2", 0x4000, 32, 42, 2, 1)],
  ["DART2 16K ias 42, 3 levels", dartShape("apple-dart2", 0x4000, 42, 42, 3, 1)],
];

describe("model-based: tables hold exactly the model's mappings after every step", () => {
  it.each(SHAPES)(
    "%s",
    (_name, sh) => {
      fc.assert(
        fc.property(commands(sh), (cmds) => run(sh, cmds)),
        { seed: 20250117, numRuns: 30 },
      );
    },
    30_000,
  );
});
