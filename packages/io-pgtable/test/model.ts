// The independent model used by the model, fuzz and argument tests: what a table must hold
// after each operation, restated from the spec, and a walk of the raw memory (written here from
// the spec's bit layouts, sharing no code with the package) that must find exactly that.
import { BuddyAllocator, DevrefError, type PhysicalMemory } from "@devref/raw-device";
import fc from "fast-check";
import { expect } from "vitest";
import {
  type AppleDartIoPgtable,
  type ArmLpaeIoPgtable,
  allocIoPgtable,
  IO_PGTABLE_QUIRK_ARM_NS,
  IO_PGTABLE_QUIRK_ARM_TTBR1,
  IOMMU_CACHE,
  IOMMU_MMIO,
  IOMMU_NOEXEC,
  IOMMU_PRIV,
  IOMMU_READ,
  IOMMU_WRITE,
  type IoPgtableConfig,
  type IovaArg,
} from "../src/index.js";
import { env, I, P } from "./helpers.js";

export type Fmt = "arm-64-lpae-s1" | "arm-64-lpae-s2" | "apple-dart" | "apple-dart2";

interface Leaf {
  level: number;
  pa: number;
  prot: number;
}

interface Model {
  leaves: Map<number, Leaf>; // by first IOVA (an offset into the 2^ias region for TTBR1)
  tables: Set<string>; // `${level}:${first IOVA}` for every non-root table
}

/** The shape, restated from the spec rather than read from the package. */
export interface Shape {
  name: string;
  fmt: Fmt;
  cfg: IoPgtableConfig;
  granule: number;
  start: number; // LPAE absolute start level; DART: 1
  leafLevel: number; // 3 for LPAE, `levels` for DART
  rootEntries: number;
  ias: number;
  oas: number;
  ttbr1: boolean;
  shift: (level: number) => number;
  mapLevels: number[];
  /** Expected leaf descriptor, as a bigint. */
  leafDesc: (level: number, pa: number, prot: number) => bigint;
  decodeTable: (d: bigint) => number;
  isLeaf: (level: number, d: bigint) => boolean;
  nTtbrs: number;
  ttbrShift: number;
  /** Input addresses (offsets for TTBR1) biased towards collisions and table ends. */
  iovas: fc.Arbitrary<number>;
  /** Output addresses, biased towards the top of the output range. */
  pas: fc.Arbitrary<number>;
}

export interface LpaeOptions {
  ttbr1?: boolean;
  ns?: boolean;
  coherentWalk?: boolean;
}

export function lpaeShape(
  fmt: "arm-64-lpae-s1" | "arm-64-lpae-s2",
  granule: number,
  ias: number,
  oas: number,
  start: number,
  rootEntries: number,
  opts: LpaeOptions = {},
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
      if (opts.ns) d |= 1n << 5n;
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
  const quirks =
    (opts.ttbr1 ? IO_PGTABLE_QUIRK_ARM_TTBR1 : 0) | (opts.ns ? IO_PGTABLE_QUIRK_ARM_NS : 0);
  const cfg: IoPgtableConfig = {
    pgsizeBitmap: sizes.reduce((a, b) => a + b, 0),
    ias,
    oas,
    ...(quirks !== 0 ? { quirks } : {}),
    ...(opts.coherentWalk === false ? { coherentWalk: false } : {}),
  };
  return {
    name: "",
    fmt,
    cfg,
    granule,
    start,
    leafLevel: 3,
    rootEntries,
    ias,
    oas,
    ttbr1: opts.ttbr1 ?? false,
    shift,
    mapLevels,
    leafDesc: (l, pa, prot) => attrs(prot) | addr(pa) | (l === 3 ? 3n : 1n),
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
    pas: fc.oneof(
      fc.integer({ min: 1, max: 2 ** 20 }).map((x) => x * 2 ** 16),
      fc.integer({ min: 1, max: 64 }).map((x) => 2 ** oas - x * 2 ** 16),
    ),
  };
}

export function dartShape(
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
    name: "",
    fmt,
    cfg: { pgsizeBitmap: granule, ias, oas },
    granule,
    start: 1,
    leafLevel: levels,
    rootEntries: granule / 8,
    ias,
    oas,
    ttbr1: false,
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
    pas: fc.oneof(
      fc.integer({ min: 1, max: 2 ** 20 }).map((x) => x * 2 ** 16),
      fc.integer({ min: 1, max: 64 }).map((x) => 2 ** oas - x * granule),
    ),
  };
}

const key = (level: number, iova: number) => `${level}:${iova}`;
const alignDown = (x: number, a: number) => x - (x % a);

/** Walks raw memory from the roots (bytes, little-endian) and checks it holds exactly the model. */
function checkMemory(
  mem: PhysicalMemory,
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

export type Cmd =
  | { op: "map"; iova: number; level: number; count: number; pa: number; prot: number }
  | { op: "unmap"; iova: number; level: number; count: number }
  | { op: "phys"; iova: number };

/** The outcome of one call: bytes (or a physical address), or an error code. */
export type Outcome = number | string;

/**
 * One table and its model. `expectMap`/`expectUnmap`/`expectPhys` say what a valid-typed call
 * must do and update the model; `check` walks memory against the model.
 */
export class ModelTable {
  readonly sh: Shape;
  readonly mem: PhysicalMemory;
  readonly pages: BuddyAllocator;
  readonly t: ArmLpaeIoPgtable | AppleDartIoPgtable;
  readonly roots: number[];
  readonly model: Model = { leaves: new Map(), tables: new Set() };
  private readonly dart: boolean;
  private readonly baseBytes: number;
  private readonly ept: number;

  /** `memory` defaults to a fresh SparseMemory (the page-view path). */
  constructor(sh: Shape, memory?: PhysicalMemory) {
    this.sh = sh;
    if (memory === undefined) {
      const e = env();
      this.mem = e.mem;
      this.pages = e.pages;
    } else {
      this.mem = memory;
      this.pages = new BuddyAllocator(memory, 0x8_0000_0000, 2 ** 30);
    }
    this.t = allocIoPgtable(sh.fmt, sh.cfg, this.pages);
    const c = this.t.cfg;
    this.roots =
      c.format === "arm-64-lpae-s1"
        ? [c.armLpaeS1Cfg.ttbr]
        : c.format === "arm-64-lpae-s2"
          ? [c.armLpaeS2Cfg.vttbr]
          : [...c.appleDartCfg.ttbr];
    this.dart = sh.fmt.startsWith("apple");
    this.baseBytes = this.dart ? sh.nTtbrs * sh.granule : Math.max(sh.rootEntries * 8, 64);
    this.ept = sh.granule / 8;
  }

  /** The argument for a model address: a bigint in the upper half for TTBR1, else a number. */
  arg(iova: number): IovaArg {
    if (this.sh.ttbr1 && iova < 2 ** this.sh.ias)
      return 2n ** 64n - 2n ** BigInt(this.sh.ias) + BigInt(iova);
    return I(iova);
  }

  private idxAt(iova: number, l: number): number {
    const sh = this.sh;
    return Math.floor(iova / 2 ** sh.shift(l)) % (l === sh.start ? sh.rootEntries : this.ept);
  }

  private inTtbr(iova: number): boolean {
    return !this.dart || Math.floor(iova / 2 ** this.sh.ttbrShift) % this.ept < this.sh.nTtbrs;
  }

  /** In the input range, as map and unmap see it (DART has no range check). */
  private inRange(iova: number): boolean {
    return this.dart || iova < 2 ** this.sh.ias;
  }

  /** Drops the table at `level` covering [base, base + size) and everything below it. */
  private removeSubtree(base: number, size: number, level: number): void {
    const m = this.model;
    for (const k of m.leaves.keys()) if (k >= base && k < base + size) m.leaves.delete(k);
    for (const k of [...m.tables]) {
      const [lv, at] = k.split(":").map(Number) as [number, number];
      if (at >= base && at < base + size && lv >= level) m.tables.delete(k);
    }
  }

  expectPhys(iova: number): number {
    const sh = this.sh;
    // LPAE ignores input bits from ias up (TTBR1 numbers are lower-half aliases, too).
    const a = this.dart ? iova : iova % 2 ** sh.ias;
    for (let l = sh.start; l <= sh.leafLevel; l++) {
      const s = 2 ** sh.shift(l);
      const leaf = this.model.leaves.get(alignDown(a, s));
      if (leaf !== undefined && leaf.level === l) return leaf.pa + (a % s);
    }
    return 0;
  }

  /** The outcome of a map with valid types, aligned iova/pa; updates the model on success. */
  expectMap(iova: number, level: number, count: number, pa: number, prot: number): Outcome {
    const sh = this.sh;
    const m = this.model;
    const size = 2 ** sh.shift(level);
    if (!this.inRange(iova) || (sh.ttbr1 && iova >= 2 ** sh.ias)) return "ERANGE";
    if (pa >= 2 ** sh.oas) return "ERANGE";
    if ((prot & (IOMMU_READ | IOMMU_WRITE)) === 0) return "EINVAL";
    if (!this.inTtbr(iova)) return "ENOMEM";
    const idx = this.idxAt(iova, level);
    const n = Math.min(count, this.ept - (idx % this.ept));
    if (!this.dart && level === sh.start && idx + n > sh.rootEntries) return "ERANGE";
    if (pa + n * size > 2 ** sh.oas) return "ERANGE";
    for (let l = sh.start; l < level; l++) {
      const b = alignDown(iova, 2 ** sh.shift(l));
      if (m.leaves.get(b)?.level === l) return "EEXIST";
      m.tables.add(key(l + 1, b));
    }
    for (let i = 0; i < n; i++) {
      const a = iova + i * size;
      if (m.leaves.get(a)?.level === level) return "EEXIST";
      // LPAE replaces a table slot by slot before it meets a leaf; DART never has tables here.
      if (!this.dart && level < 3 && m.tables.has(key(level + 1, a)))
        this.removeSubtree(a, size, level + 1);
    }
    for (let i = 0; i < n; i++) m.leaves.set(iova + i * size, { level, pa: pa + i * size, prot });
    return n * size;
  }

  /** The outcome of an unmap with valid types and an aligned iova; updates the model. */
  expectUnmap(iova: number, level: number, count: number): Outcome {
    const sh = this.sh;
    const m = this.model;
    const size = 2 ** sh.shift(level);
    if (count === 0 || !this.inRange(iova) || (sh.ttbr1 && iova >= 2 ** sh.ias)) return 0;
    if (!this.inTtbr(iova)) return 0;
    for (let l = sh.start; l < level; l++) {
      const b = alignDown(iova, 2 ** sh.shift(l));
      if (m.leaves.get(b)?.level === l || !m.tables.has(key(l + 1, b))) return 0;
    }
    const idx = this.idxAt(iova, level);
    const n = Math.min(count, this.ept - (idx % this.ept));
    if (!this.dart && level === sh.start && idx + n > sh.rootEntries) return 0;
    let i = 0;
    for (; i < n; i++) {
      const a = iova + i * size;
      if (m.leaves.get(a)?.level === level) m.leaves.delete(a);
      else if (!this.dart && level < 3 && m.tables.has(key(level + 1, a)))
        this.removeSubtree(a, size, level + 1);
      else break;
    }
    return i * size;
  }

  /** Runs one valid-typed command and checks its outcome against the model. */
  run(c: Cmd): void {
    const sh = this.sh;
    if (c.op === "phys") {
      const expected = this.expectPhys(c.iova);
      expect(this.t.iovaToPhys(this.arg(c.iova))).toBe(expected);
      return;
    }
    const size = 2 ** sh.shift(c.level);
    const iova = alignDown(c.iova, size);
    if (c.op === "map") {
      const pa = alignDown(c.pa, size);
      const expected = this.expectMap(iova, c.level, c.count, pa, c.prot);
      let got: Outcome;
      try {
        got = this.t.mapPages(this.arg(iova), P(pa), size, c.count, c.prot);
      } catch (e) {
        if (!DevrefError.is(e)) throw e;
        got = e.code;
      }
      expect(got).toBe(expected);
    } else {
      const expected = this.expectUnmap(iova, c.level, c.count);
      expect(this.t.unmapPages(this.arg(iova), size, c.count)).toBe(expected);
    }
  }

  /** Walks memory and checks it against the model, and the table's byte count. */
  check(): void {
    checkMemory(
      this.mem,
      this.sh,
      this.roots,
      this.model,
      this.baseBytes + this.model.tables.size * this.sh.granule,
      this.t.tableBytes,
    );
  }

  /** Disposes the table and checks that every table page went back. */
  dispose(): void {
    this.t[Symbol.dispose]();
    expect(this.pages.bytesInUse).toBe(0);
  }
}

/** Random valid-typed commands for a shape. */
export function commands(sh: Shape, maxLength = 20): fc.Arbitrary<Cmd[]> {
  return fc.array(command(sh), { maxLength });
}

export function command(sh: Shape): fc.Arbitrary<Cmd> {
  const prot = fc.integer({ min: 1, max: 63 }).filter((p) => (p & 3) !== 0);
  const level = fc.constantFrom(...sh.mapLevels);
  const count = fc.oneof(
    fc.integer({ min: 0, max: 3 }),
    fc.integer({ min: 1, max: Math.min(sh.granule / 8 + 2, 700) }),
    // Whole 4 KiB pages of a table (whole tables with a 4K granule), so that full and emptied
    // tables come up often.
    fc.constant(Math.min(sh.granule / 8, 512)),
  );
  return fc.oneof(
    {
      weight: 3,
      arbitrary: fc.record({
        op: fc.constant("map" as const),
        iova: sh.iovas,
        level,
        count,
        pa: sh.pas,
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
  );
}

function named(name: string, sh: Shape): Shape {
  return { ...sh, name };
}

/** The shapes of the original model test. */
export const MODEL_SHAPES: Shape[] = [
  named("S1 4K ias 32 (4-entry root)", lpaeShape("arm-64-lpae-s1", 0x1000, 32, 48, 1, 4)),
  named("S1 4K ias 48", lpaeShape("arm-64-lpae-s1", 0x1000, 48, 48, 0, 512)),
  named(
    "S2 16K ias 40 oas 40 (concatenated 32768-entry root)",
    lpaeShape("arm-64-lpae-s2", 0x4000, 40, 40, 2, 32768),
  ),
  named(
    "S2 4K ias 40 oas 40 (concatenated 1024-entry root)",
    lpaeShape("arm-64-lpae-s2", 0x1000, 40, 40, 1, 1024),
  ),
  named("S1 64K ias 48", lpaeShape("arm-64-lpae-s1", 0x1_0000, 48, 48, 1, 64)),
  named("DART 4K ias 32, 4 TTBRs", dartShape("apple-dart", 0x1000, 32, 36, 2, 4)),
  named("DART 4K ias 40, 3 levels, 2 TTBRs", dartShape("apple-dart", 0x1000, 40, 42, 3, 2)),
  named("DART2 16K ias 32", dartShape("apple-dart2", 0x4000, 32, 42, 2, 1)),
  named("DART2 16K ias 42, 3 levels", dartShape("apple-dart2", 0x4000, 42, 42, 3, 1)),
];

/** Every format and granule the package supports, with the quirks that change the bytes. */
export const ALL_SHAPES: Shape[] = [
  ...MODEL_SHAPES,
  named("S2 4K ias 48", lpaeShape("arm-64-lpae-s2", 0x1000, 48, 48, 0, 512)),
  named("S1 16K ias 48 (2-entry root)", lpaeShape("arm-64-lpae-s1", 0x4000, 48, 48, 0, 2)),
  named("S2 64K ias 52 oas 52", lpaeShape("arm-64-lpae-s2", 0x1_0000, 52, 52, 1, 1024)),
  named("S1 4K ias 39 TTBR1", lpaeShape("arm-64-lpae-s1", 0x1000, 39, 48, 1, 512, { ttbr1: true })),
  named("S1 4K ias 36 oas 40 NS", lpaeShape("arm-64-lpae-s1", 0x1000, 36, 40, 1, 64, { ns: true })),
  named(
    "S2 4K ias 44 non-coherent",
    lpaeShape("arm-64-lpae-s2", 0x1000, 44, 44, 0, 32, { coherentWalk: false }),
  ),
  named("DART 16K ias 36", dartShape("apple-dart", 0x4000, 36, 36, 2, 1)),
];
