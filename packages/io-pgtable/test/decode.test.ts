// The decoder and dump: round trips against live tables, and fuzzing with garbage images.
import { DevrefError, SparseMemory } from "@devref/raw-device";
import fc from "fast-check";
import { describe, expect, it } from "vitest";
import {
  allocIoPgtable,
  decodeIoPgtable,
  dumpIoPgtable,
  IO_PGTABLE_QUIRK_ARM_TTBR1,
  IOMMU_CACHE,
  IOMMU_MMIO,
  IOMMU_NOEXEC,
  IOMMU_PRIV,
  IOMMU_READ,
  IOMMU_WRITE,
  type IoPgtableFormat,
} from "../src/index.js";
import { env, I, P, SZ_1G, SZ_2M, SZ_4K, SZ_16K } from "./helpers.js";

describe("decoder", () => {
  it("lists what was mapped, with decoded prot, from the memory image alone", () => {
    const { pages, mem } = env();
    const cfg = { pgsizeBitmap: SZ_4K + SZ_2M + SZ_1G, ias: 48, oas: 48 };
    const t = allocIoPgtable("arm-64-lpae-s1", cfg, pages);
    t.mapPages(I(0x1000), P(0x9000_0000), SZ_4K, 2, IOMMU_READ | IOMMU_WRITE | IOMMU_CACHE);
    t.mapPages(I(SZ_1G), P(0x4000_0000), SZ_2M, 1, IOMMU_READ | IOMMU_NOEXEC);
    t.mapPages(
      I(2 * SZ_1G),
      P(0x8000_0000),
      SZ_1G,
      1,
      IOMMU_READ | IOMMU_WRITE | IOMMU_MMIO | IOMMU_PRIV,
    );
    if (t.cfg.format !== "arm-64-lpae-s1") throw new Error("format");
    const maps = decodeIoPgtable(mem, "arm-64-lpae-s1", cfg, t.cfg.armLpaeS1Cfg.ttbr);
    expect(maps.map((m) => [m.iova, m.size, m.pa, m.level, m.prot])).toEqual([
      [0x1000, SZ_4K, 0x9000_0000, 3, IOMMU_READ | IOMMU_WRITE | IOMMU_CACHE],
      [0x2000, SZ_4K, 0x9000_1000, 3, IOMMU_READ | IOMMU_WRITE | IOMMU_CACHE],
      [SZ_1G, SZ_2M, 0x4000_0000, 2, IOMMU_READ | IOMMU_NOEXEC],
      [2 * SZ_1G, SZ_1G, 0x8000_0000, 1, IOMMU_READ | IOMMU_WRITE | IOMMU_MMIO | IOMMU_PRIV],
    ]);
    expect(t.mappings()).toEqual(maps);
    const text = t.dump();
    expect(text).toContain(
      "L3[1] 0x0000_0000_1000..0x0000_0000_1fff 4K -> 0x0000_9000_0000 RWX cache",
    );
    expect(text).toContain(
      "L1[2] 0x0000_8000_0000..0x0000_bfff_ffff 1G -> 0x0000_8000_0000 RWX mmio priv",
    );
    expect(text).toContain("R-- desc 0x00600000_40000ec1");
  });

  it("reports TTBR1 addresses as bigints in the upper half", () => {
    const { pages, mem } = env();
    const cfg = { pgsizeBitmap: SZ_4K, ias: 39, oas: 48, quirks: IO_PGTABLE_QUIRK_ARM_TTBR1 };
    const t = allocIoPgtable("arm-64-lpae-s1", cfg, pages);
    t.mapPages(-0x1000n, P(0x9000_0000), SZ_4K, 1, IOMMU_READ);
    if (t.cfg.format !== "arm-64-lpae-s1") throw new Error("format");
    const maps = decodeIoPgtable(mem, "arm-64-lpae-s1", cfg, t.cfg.armLpaeS1Cfg.ttbr);
    expect(maps).toHaveLength(1);
    expect(maps[0]!.iova).toBe(0xffff_ffff_ffff_f000n);
    expect(t.dump()).toContain("0xffff_ffff_ffff_f000..0xffff_ffff_ffff_ffff");
  });

  it("decodes DART tables from their TTBR addresses", () => {
    const { pages, mem } = env();
    const cfg = { pgsizeBitmap: SZ_16K, ias: 32, oas: 42 };
    const t = allocIoPgtable("apple-dart2", cfg, pages);
    t.mapPages(I(2 ** 35), P(0x9_0000_0000), SZ_16K, 3, IOMMU_READ | IOMMU_CACHE);
    const maps = decodeIoPgtable(mem, "apple-dart2", cfg, t.cfg.appleDartCfg.ttbr);
    expect(maps.map((m) => [m.iova, m.pa, m.prot])).toEqual([
      [2 ** 35, 0x9_0000_0000, IOMMU_READ | IOMMU_CACHE],
      [2 ** 35 + SZ_16K, 0x9_0000_4000, IOMMU_READ | IOMMU_CACHE],
      [2 ** 35 + 2 * SZ_16K, 0x9_0000_8000, IOMMU_READ | IOMMU_CACHE],
    ]);
    expect(() => decodeIoPgtable(mem, "apple-dart2", cfg, [])).toThrow(
      expect.objectContaining({ code: "EINVAL" }),
    );
  });

  it("enforces its limits with E2BIG", () => {
    const { pages, mem } = env();
    const cfg = { pgsizeBitmap: SZ_4K, ias: 48, oas: 48 };
    const t = allocIoPgtable("arm-64-lpae-s2", cfg, pages);
    t.mapPages(I(0), P(0x9000_0000), SZ_4K, 10, IOMMU_READ);
    if (t.cfg.format !== "arm-64-lpae-s2") throw new Error("format");
    const vttbr = t.cfg.armLpaeS2Cfg.vttbr;
    expect(() => decodeIoPgtable(mem, "arm-64-lpae-s2", cfg, vttbr, { maxMappings: 5 })).toThrow(
      expect.objectContaining({ code: "E2BIG" }),
    );
    expect(() => decodeIoPgtable(mem, "arm-64-lpae-s2", cfg, vttbr, { maxTables: 2 })).toThrow(
      expect.objectContaining({ code: "E2BIG" }),
    );
  });
});

describe("decoder fuzz: garbage images only ever produce DevrefError, and always end", () => {
  const formats: [IoPgtableFormat, { pgsizeBitmap: number; ias: number; oas: number }][] = [
    ["arm-64-lpae-s1", { pgsizeBitmap: SZ_4K + SZ_2M + SZ_1G, ias: 48, oas: 48 }],
    ["arm-64-lpae-s2", { pgsizeBitmap: 0x1_0000, ias: 52, oas: 52 }],
    ["arm-64-lpae-s2", { pgsizeBitmap: SZ_16K, ias: 40, oas: 40 }],
    ["apple-dart", { pgsizeBitmap: SZ_4K, ias: 32, oas: 36 }],
    ["apple-dart2", { pgsizeBitmap: SZ_16K, ias: 42, oas: 42 }],
  ];
  it.each(formats)("%s", (format, cfg) => {
    // Words biased towards valid-looking descriptors that point back into the image.
    const word = fc.oneof(
      fc.constant(0),
      fc.integer({ min: 0, max: 0xffff_ffff }),
      fc.integer({ min: 0, max: 15 }).map((k) => (0x1_0000 + k * 0x1000) | 3),
      fc.integer({ min: 0, max: 15 }).map((k) => (((0x1_0000 + k * 0x4000) >>> 4) | 1) >>> 0),
    );
    fc.assert(
      fc.property(
        fc.array(fc.tuple(fc.integer({ min: 0, max: 0x4_0000 / 8 - 1 }), word, word), {
          maxLength: 200,
        }),
        fc.constantFrom(0x1_0000, 0x1_4000, 0x0, 0x1_0008),
        (writes, root) => {
          const mem = new SparseMemory(2 ** 40);
          for (const [slot, lo, hi] of writes) mem.write64(0x1_0000 + slot * 8, lo, hi);
          const roots = format.startsWith("apple")
            ? [root, root, root, root].slice(0, format === "apple-dart" ? 4 : 1)
            : root;
          for (const f of [decodeIoPgtable, dumpIoPgtable]) {
            try {
              f(mem, format, cfg, roots, { maxTables: 64, maxMappings: 4096 });
            } catch (e) {
              if (!(e instanceof DevrefError)) throw e;
            }
          }
        },
      ),
      { seed: 4242, numRuns: 150 },
    );
  });
});
