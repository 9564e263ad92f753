// Regression tests, one per reported defect, each named after its item.
import { DevrefError, type PhysicalMemory, SparseMemory } from "@devref/raw-device";
import { describe, expect, it } from "vitest";
import {
  allocIoPgtable,
  decodeIoPgtable,
  dumpIoPgtable,
  IO_PGTABLE_QUIRK_ARM_TTBR1,
  IOMMU_READ,
  IOMMU_WRITE,
  type IoPgtableProblem,
} from "../src/index.js";
import { env, I, P, SZ_1G, SZ_2M, SZ_4K, SZ_16K, word } from "./helpers.js";

const RW = IOMMU_READ | IOMMU_WRITE;
const BITMAP_4K = SZ_4K + SZ_2M + SZ_1G;

/** A memory that counts the bytes read through it, to bound a decoder's work from outside. */
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

describe("item 10: an out-of-range lookup never lets a later map or unmap skip the range check", () => {
  it("iovaToPhys above 2^ias, then a single-page map there, is ERANGE and maps nothing", () => {
    const { pages, mem } = env();
    const t = allocIoPgtable(
      "arm-64-lpae-s1",
      { pgsizeBitmap: BITMAP_4K, ias: 40, oas: 48 },
      pages,
    );
    t.mapPages(I(0x1000), P(0x9000_1000), SZ_4K, 1, RW);
    // Aliases onto IOVA 0x1000 (no range check in iova_to_phys, as in the kernel).
    expect(t.iovaToPhys(I(2 ** 40 + 0x1000))).toBe(0x9000_1000);
    const before = t.dump();
    expect(() => t.mapPages(I(2 ** 40 + 0x2000), P(0x9000_2000), SZ_4K, 1, RW)).toThrow(
      expect.objectContaining({ code: "ERANGE" }),
    );
    expect(t.iovaToPhys(I(0x2000))).toBe(0);
    expect(t.dump()).toBe(before);
    expect(mem.pagesAllocated).toBeGreaterThan(0);
  });

  it("iovaToPhys above 2^ias, then a single-page unmap there, returns 0 and unmaps nothing", () => {
    const { pages } = env();
    const t = allocIoPgtable(
      "arm-64-lpae-s1",
      { pgsizeBitmap: BITMAP_4K, ias: 40, oas: 48 },
      pages,
    );
    t.mapPages(I(0x1000), P(0x9000_1000), SZ_4K, 1, RW);
    expect(t.iovaToPhys(I(2 ** 40 + 0x1000))).toBe(0x9000_1000);
    expect(t.unmapPages(I(2 ** 40 + 0x1000), SZ_4K, 1)).toBe(0);
    expect(t.iovaToPhys(I(0x1000))).toBe(0x9000_1000);
  });

  it("a 2M block map above 2^ias after a lookup there is ERANGE too", () => {
    const { pages } = env();
    const t = allocIoPgtable(
      "arm-64-lpae-s2",
      { pgsizeBitmap: BITMAP_4K, ias: 40, oas: 44 },
      pages,
    );
    t.mapPages(I(0), P(0x4000_0000), SZ_2M, 1, RW);
    expect(t.iovaToPhys(I(2 ** 40 + 0x10))).toBe(0x4000_0010);
    expect(() => t.mapPages(I(2 ** 40 + SZ_2M), P(0x4020_0000), SZ_2M, 1, RW)).toThrow(
      expect.objectContaining({ code: "ERANGE" }),
    );
    expect(t.unmapPages(I(2 ** 40), SZ_2M, 1)).toBe(0);
    expect(t.iovaToPhys(I(0x10))).toBe(0x4000_0010);
    expect(t.iovaToPhys(I(SZ_2M))).toBe(0);
  });

  it("TTBR1: a number IOVA stays out of range after a number lookup", () => {
    const { pages } = env();
    const t = allocIoPgtable(
      "arm-64-lpae-s1",
      { pgsizeBitmap: BITMAP_4K, ias: 39, oas: 48, quirks: IO_PGTABLE_QUIRK_ARM_TTBR1 },
      pages,
    );
    t.mapPages(-0x2000n, P(0x9000_0000), SZ_4K, 1, RW);
    // The low alias of the upper region translates (index bits only) ...
    expect(t.iovaToPhys(I(2 ** 39 - 0x2000))).toBe(0x9000_0000);
    // ... but a number is never an upper-half address for map or unmap.
    expect(() => t.mapPages(I(2 ** 39 - 0x1000), P(0x9000_1000), SZ_4K, 1, RW)).toThrow(
      expect.objectContaining({ code: "ERANGE" }),
    );
    expect(t.unmapPages(I(2 ** 39 - 0x2000), SZ_4K, 1)).toBe(0);
    expect(t.iovaToPhys(-0x1000n)).toBe(0);
    expect(t.iovaToPhys(-0x2000n)).toBe(0x9000_0000);
  });
});

describe("item 11: a run is checked as a whole before anything is written", () => {
  it("LPAE: a run whose last page passes 2^oas is ERANGE, and writes nothing", () => {
    const { pages, mem } = env();
    const t = allocIoPgtable(
      "arm-64-lpae-s1",
      { pgsizeBitmap: BITMAP_4K, ias: 48, oas: 40 },
      pages,
    );
    t.mapPages(I(0), P(0x9000_0000), SZ_4K, 1, RW); // the leaf table exists
    const before = t.dump();
    expect(() => t.mapPages(I(0x1000), P(2 ** 40 - 0x2000), SZ_4K, 3, RW)).toThrow(
      expect.objectContaining({ code: "ERANGE" }),
    );
    expect(t.dump()).toBe(before);
    expect(t.iovaToPhys(I(0x3000))).toBe(0);
    // Exactly up to 2^oas is fine.
    expect(t.mapPages(I(0x1000), P(2 ** 40 - 0x2000), SZ_4K, 2, RW)).toBe(2 * SZ_4K);
    expect(t.iovaToPhys(I(0x2fff))).toBe(2 ** 40 - 1);
    // Blocks too.
    expect(() => t.mapPages(I(SZ_1G), P(2 ** 40 - SZ_2M), SZ_2M, 2, RW)).toThrow(
      expect.objectContaining({ code: "ERANGE" }),
    );
    expect(t.iovaToPhys(I(SZ_1G))).toBe(0);
    expect(mem.pagesAllocated).toBeGreaterThan(0);
  });

  it("DART: a run whose last page passes 2^oas is ERANGE, and writes nothing", () => {
    const { pages } = env();
    const t = allocIoPgtable("apple-dart2", { pgsizeBitmap: SZ_16K, ias: 32, oas: 42 }, pages);
    const before = t.dump();
    expect(() => t.mapPages(I(0), P(2 ** 42 - SZ_16K), SZ_16K, 2, RW)).toThrow(
      expect.objectContaining({ code: "ERANGE" }),
    );
    expect(t.iovaToPhys(I(SZ_16K))).toBe(0);
    expect(t.mapPages(I(0), P(2 ** 42 - SZ_16K), SZ_16K, 1, RW)).toBe(SZ_16K);
    expect(t.dump()).not.toBe(before);
  });

  it("LPAE: a run whose end passes 2^ias is ERANGE (root and TTBR1 upper end)", () => {
    const { pages } = env();
    const t = allocIoPgtable(
      "arm-64-lpae-s1",
      { pgsizeBitmap: BITMAP_4K, ias: 32, oas: 48 },
      pages,
    );
    expect(() => t.mapPages(I(3 * SZ_1G), P(SZ_1G), SZ_1G, 2, RW)).toThrow(
      expect.objectContaining({ code: "ERANGE" }),
    );
    const up = allocIoPgtable(
      "arm-64-lpae-s1",
      { pgsizeBitmap: BITMAP_4K, ias: 39, oas: 48, quirks: IO_PGTABLE_QUIRK_ARM_TTBR1 },
      pages,
    );
    // The last slot of the upper region is also the last of its table: the run is clamped there.
    expect(up.mapPages(-BigInt(SZ_1G), P(SZ_1G), SZ_1G, 2, RW)).toBe(SZ_1G);
    expect(up.iovaToPhys(-1n)).toBe(2 * SZ_1G - 1);
  });
});

describe("item 12: decoding a hostile image is bounded by the image, not by the limits", () => {
  const cfg = { pgsizeBitmap: BITMAP_4K, ias: 48, oas: 48 };
  /** One 4 KiB page whose every descriptor is a table descriptor pointing at the page itself. */
  function selfPointing(): SparseMemory {
    const mem = new SparseMemory(2 ** 40);
    for (let i = 0; i < 512; i++) mem.write64(0x1_0000 + i * 8, 0x1_0000 | 3, 0);
    return mem;
  }

  it("decodeIoPgtable reads the page once and reports 512 revisits", () => {
    const mem = new CountingMemory(selfPointing());
    const problems: IoPgtableProblem[] = [];
    const maps = decodeIoPgtable(mem, "arm-64-lpae-s1", cfg, 0x1_0000, {
      onProblem: (p) => problems.push(p),
    });
    expect(maps).toEqual([]);
    expect(mem.bytesRead).toBeLessThanOrEqual(SZ_4K);
    expect(problems).toHaveLength(512);
    expect(problems[0]).toMatchObject({ kind: "revisit", level: 0, index: 0, table: 0x1_0000 });
  });

  it("dumpIoPgtable reads the page once and prints one line per revisit", () => {
    const mem = new CountingMemory(selfPointing());
    const text = dumpIoPgtable(mem, "arm-64-lpae-s1", cfg, 0x1_0000);
    expect(mem.bytesRead).toBeLessThanOrEqual(SZ_4K);
    const lines = text.split("\n");
    expect(lines.length).toBe(1 + 512);
    expect(lines[1]).toContain("table 0x0000_0001_0000 already visited (cycle or shared table)");
  });

  it("a table shared by several parents is walked once and reported at the others", () => {
    // Root → 512 × A; A → 512 × B; B → 512 × C; C holds 512 pages: 512 mappings, 4 pages read.
    const inner = new SparseMemory(2 ** 40);
    const [root, a, b, c] = [0x1_0000, 0x2_0000, 0x3_0000, 0x4_0000];
    for (let i = 0; i < 512; i++) {
      inner.write64(root + i * 8, a | 3, 0);
      inner.write64(a + i * 8, b | 3, 0);
      inner.write64(b + i * 8, c | 3, 0);
      inner.write64(c + i * 8, (0x9000_0000 + i * SZ_4K) | 0x743, 0);
    }
    const mem = new CountingMemory(inner);
    const problems: IoPgtableProblem[] = [];
    const maps = decodeIoPgtable(mem, "arm-64-lpae-s1", cfg, root, {
      onProblem: (p) => problems.push(p),
    });
    expect(maps).toHaveLength(512);
    expect(mem.bytesRead).toBeLessThanOrEqual(4 * SZ_4K);
    expect(problems.filter((p) => p.kind === "revisit")).toHaveLength(3 * 511);
  });

  it("the limits on entries examined and on output raise E2BIG", () => {
    const mem = selfPointing();
    expect(() =>
      decodeIoPgtable(mem, "arm-64-lpae-s1", cfg, 0x1_0000, { maxEntries: 100 }),
    ).toThrow(expect.objectContaining({ code: "E2BIG" }));
    expect(() => dumpIoPgtable(mem, "arm-64-lpae-s1", cfg, 0x1_0000, { maxChars: 1000 })).toThrow(
      expect.objectContaining({ code: "E2BIG" }),
    );
    try {
      decodeIoPgtable(mem, "arm-64-lpae-s1", cfg, 0x1_0000, { maxEntries: 100 });
    } catch (e) {
      expect(DevrefError.is(e, "E2BIG") && e.details).toMatchObject({ limit: "maxEntries" });
    }
  });

  it("DART images: a leaf table shared by every slot is read once", () => {
    const inner = new SparseMemory(2 ** 40);
    const [top, leaf] = [0x1_0000, 0x2_0000];
    for (let i = 0; i < 2048; i++) {
      inner.write64(top + i * 8, ((leaf >>> 4) | 1) >>> 0, 0);
      inner.write64(leaf + i * 8, (0x8000_0000 >>> 4) | 1, 0xfff00);
    }
    const mem = new CountingMemory(inner);
    const maps = decodeIoPgtable(mem, "apple-dart2", { pgsizeBitmap: SZ_16K, ias: 36, oas: 42 }, [
      top,
    ]);
    expect(maps).toHaveLength(2048);
    expect(mem.bytesRead).toBeLessThanOrEqual(2 * SZ_16K);
    expect(word(inner, leaf)).toBeGreaterThan(0n);
  });
});
