// One test per worked example and trap of specs/io-pgtable.md.
import { DevrefError } from "@devref/raw-device";
import { describe, expect, it } from "vitest";
import {
  allocIoPgtable,
  IO_PGTABLE_QUIRK_ARM_HD,
  IO_PGTABLE_QUIRK_ARM_NS,
  IO_PGTABLE_QUIRK_ARM_OUTER_WBWA,
  IO_PGTABLE_QUIRK_ARM_S2FWB,
  IO_PGTABLE_QUIRK_ARM_TTBR1,
  IO_PGTABLE_QUIRK_NO_PERMS,
  IOMMU_CACHE,
  IOMMU_MMIO,
  IOMMU_NOEXEC,
  IOMMU_PRIV,
  IOMMU_READ,
  IOMMU_WRITE,
  type IoPgtableConfig,
  IotlbGather,
  type IovaArg,
} from "../src/index.js";
import {
  env,
  I,
  P,
  SZ_1G,
  SZ_2M,
  SZ_4K,
  SZ_16K,
  SZ_32M,
  SZ_64K,
  SZ_512M,
  word,
} from "./helpers.js";

const R = IOMMU_READ;
const W = IOMMU_WRITE;
const C = IOMMU_CACHE;
const X = IOMMU_NOEXEC;
const M = IOMMU_MMIO;
const PRIV = IOMMU_PRIV;
const BITMAP_4K = SZ_4K + SZ_2M + SZ_1G;

function lpae(fmt: "arm-64-lpae-s1" | "arm-64-lpae-s2", cfg: Partial<IoPgtableConfig> = {}) {
  const e = env();
  const t = allocIoPgtable(fmt, { pgsizeBitmap: BITMAP_4K, ias: 48, oas: 48, ...cfg }, e.pages);
  return { ...e, t };
}

/** The descriptor a single mapping left in memory, found by walking with the table's own geometry. */
function leafWord(
  t: ReturnType<typeof lpae>["t"],
  mem: ReturnType<typeof lpae>["mem"],
  iova: number,
  level: number,
): bigint {
  const g = t.cfg.geometry;
  let table =
    t.cfg.format === "arm-64-lpae-s1" ? t.cfg.armLpaeS1Cfg.ttbr : t.cfg.armLpaeS2Cfg.vttbr;
  for (let l = g.startLevel; ; l++) {
    const shift = (4 - l) * g.bitsPerLevel + 3;
    const entries = l === g.startLevel ? g.rootEntries : g.granule / 8;
    const d = word(mem, table + (Math.floor(iova / 2 ** shift) % entries) * 8);
    if (l === level) return d;
    table = Number(d & 0x0000_ffff_ffff_f000n) as typeof table;
  }
}

describe("§2.7 worked examples: prot to descriptor (4K, PA 0x8000_0000, ias = oas = 48)", () => {
  const rows: [
    fmt: "arm-64-lpae-s1" | "arm-64-lpae-s2",
    prot: number,
    quirks: number,
    page: bigint,
    block: bigint,
  ][] = [
    ["arm-64-lpae-s1", R | W | C, 0, 0x0000_0000_8000_0f47n, 0x0000_0000_8000_0f45n],
    ["arm-64-lpae-s1", R | W | C | X, 0, 0x0060_0000_8000_0f47n, 0x0060_0000_8000_0f45n],
    ["arm-64-lpae-s1", R, 0, 0x0000_0000_8000_0ec3n, 0x0000_0000_8000_0ec1n],
    ["arm-64-lpae-s1", W, 0, 0x0000_0000_8000_0e43n, 0x0000_0000_8000_0e41n],
    ["arm-64-lpae-s1", R | W | PRIV, 0, 0x0000_0000_8000_0e03n, 0x0000_0000_8000_0e01n],
    ["arm-64-lpae-s1", R | W | M, 0, 0x0000_0000_8000_0e4bn, 0x0000_0000_8000_0e49n],
    ["arm-64-lpae-s1", R | W | M | C, 0, 0x0000_0000_8000_0f4bn, 0x0000_0000_8000_0f49n],
    ["arm-64-lpae-s2", R | W | C, 0, 0x0000_0000_8000_07ffn, 0x0000_0000_8000_07fdn],
    ["arm-64-lpae-s2", R | W, 0, 0x0000_0000_8000_06d7n, 0x0000_0000_8000_06d5n],
    ["arm-64-lpae-s2", R, 0, 0x0000_0000_8000_0657n, 0x0000_0000_8000_0655n],
    ["arm-64-lpae-s2", W | M, 0, 0x0000_0000_8000_0687n, 0x0000_0000_8000_0685n],
    [
      "arm-64-lpae-s2",
      R | W | C,
      IO_PGTABLE_QUIRK_ARM_S2FWB,
      0x0000_0000_8000_07dbn,
      0x0000_0000_8000_07d9n,
    ],
    [
      "arm-64-lpae-s1",
      R | W | C,
      IO_PGTABLE_QUIRK_ARM_NS,
      0x0000_0000_8000_0f67n,
      0x0000_0000_8000_0f65n,
    ],
    [
      "arm-64-lpae-s1",
      R | W | C,
      IO_PGTABLE_QUIRK_ARM_HD,
      0x0008_0000_8000_0f47n,
      0x0008_0000_8000_0f45n,
    ],
    ["arm-64-lpae-s1", R, IO_PGTABLE_QUIRK_ARM_HD, 0x0000_0000_8000_0ec3n, 0x0000_0000_8000_0ec1n],
    ["arm-64-lpae-s2", W, 0, 0x0000_0000_8000_0697n, 0x0000_0000_8000_0695n],
    ["arm-64-lpae-s2", R | W | M | C, 0, 0x0000_0000_8000_07c7n, 0x0000_0000_8000_07c5n],
  ];
  it.each(rows)("%s prot %i quirks %i", (fmt, prot, quirks, page, block) => {
    const { t, mem } = lpae(fmt, { quirks });
    t.mapPages(I(0x1000), P(0x8000_0000), SZ_4K, 1, prot);
    t.mapPages(I(SZ_1G), P(0x8000_0000), SZ_2M, 1, prot);
    expect(leafWord(t, mem, 0x1000, 3)).toBe(page);
    expect(leafWord(t, mem, SZ_1G, 2)).toBe(block);
  });

  it("table descriptors: plain, ARM_NS (NSTable) and non-coherent (SW_SYNC)", () => {
    for (const [cfg, expectHi] of [
      [{}, 0n],
      [{ quirks: IO_PGTABLE_QUIRK_ARM_NS }, 0x8000_0000_0000_0000n],
      [{ coherentWalk: false }, 0x0080_0000_0000_0000n],
    ] as const) {
      const { t, mem } = lpae("arm-64-lpae-s1", cfg);
      t.mapPages(I(0), P(0x8000_0000), SZ_4K, 1, R);
      const root = t.cfg.format === "arm-64-lpae-s1" ? t.cfg.armLpaeS1Cfg.ttbr : 0;
      const l0 = word(mem, root);
      expect(l0 & 0xffff_ffff_ffff_f000n & ~expectHi).toBe(BigInt(root + SZ_4K));
      expect(l0 & 0xfff0_0000_0000_0fffn).toBe(expectHi | 3n);
    }
  });
});

describe("§2.5 register values", () => {
  it("MAIR keeps the sign extension of the kernel's int arithmetic", () => {
    const { t } = lpae("arm-64-lpae-s1");
    if (t.cfg.format !== "arm-64-lpae-s1") throw new Error("format");
    const { lo, hi } = t.cfg.armLpaeS1Cfg.mair;
    expect((BigInt(hi) << 32n) | BigInt(lo)).toBe(0xffff_ffff_f404_ff44n);
  });

  it("TCR fields: coherent, non-coherent, OUTER_WBWA, TG0/TG1, IPS and TSZ", () => {
    const s1 = (cfg: Partial<IoPgtableConfig>) => {
      const { t } = lpae("arm-64-lpae-s1", cfg);
      if (t.cfg.format !== "arm-64-lpae-s1") throw new Error("format");
      return t.cfg.armLpaeS1Cfg.tcr;
    };
    expect(s1({})).toEqual({ ips: 5, tg: 0, sh: 3, orgn: 1, irgn: 1, tsz: 16 });
    expect(s1({ coherentWalk: false })).toEqual({
      ips: 5,
      tg: 0,
      sh: 2,
      orgn: 0,
      irgn: 0,
      tsz: 16,
    });
    expect(s1({ coherentWalk: false, quirks: IO_PGTABLE_QUIRK_ARM_OUTER_WBWA })).toMatchObject({
      sh: 2,
      orgn: 1,
      irgn: 0,
    });
    expect(s1({ quirks: IO_PGTABLE_QUIRK_ARM_TTBR1 }).tg).toBe(2);
    expect(s1({ pgsizeBitmap: SZ_16K | SZ_32M, quirks: IO_PGTABLE_QUIRK_ARM_TTBR1 }).tg).toBe(1);
    expect(s1({ pgsizeBitmap: SZ_64K | SZ_512M, quirks: IO_PGTABLE_QUIRK_ARM_TTBR1 }).tg).toBe(3);
    expect(s1({ pgsizeBitmap: SZ_16K | SZ_32M }).tg).toBe(2);
    expect(s1({ pgsizeBitmap: SZ_64K | SZ_512M }).tg).toBe(1);
    for (const [oas, ips] of [
      [32, 0],
      [36, 1],
      [40, 2],
      [42, 3],
      [44, 4],
      [48, 5],
    ] as const) {
      expect(s1({ ias: 32, oas }).ips).toBe(ips);
    }
    expect(s1({ pgsizeBitmap: SZ_64K, ias: 52, oas: 52 })).toMatchObject({ ips: 6, tsz: 12 });
    expect(s1({ ias: 39 }).tsz).toBe(25);
  });

  it("clamps ias/oas and narrows the bitmap, written back", () => {
    const { t } = lpae("arm-64-lpae-s1", { pgsizeBitmap: 0xffff_ffff_f000, ias: 56, oas: 52 });
    expect(t.cfg).toMatchObject({ ias: 48, oas: 48, pgsizeBitmap: BITMAP_4K });
    const big = lpae("arm-64-lpae-s1", {
      pgsizeBitmap: SZ_64K + SZ_512M + 2 ** 42 + SZ_4K * 2,
      ias: 52,
      oas: 52,
      hostPageSize: SZ_64K,
    });
    expect(big.t.cfg.pgsizeBitmap).toBe(SZ_64K + SZ_512M + 2 ** 42);
    // Host page size 16K with a mixed bitmap picks 16K; 4K host picks 4K.
    expect(
      lpae("arm-64-lpae-s1", { pgsizeBitmap: BITMAP_4K + SZ_16K + SZ_32M, hostPageSize: SZ_16K }).t
        .cfg.pgsizeBitmap,
    ).toBe(SZ_16K + SZ_32M);
    expect(
      lpae("arm-64-lpae-s1", { pgsizeBitmap: SZ_16K + SZ_64K, hostPageSize: SZ_4K }).t.cfg
        .pgsizeBitmap,
    ).toBe(SZ_16K);
  });

  it("rejects configurations the kernel rejects, allocating nothing", () => {
    const { pages } = env();
    const cases: [fmt: "arm-64-lpae-s1" | "arm-64-lpae-s2", cfg: IoPgtableConfig][] = [
      ["arm-64-lpae-s1", { pgsizeBitmap: BITMAP_4K, ias: 48, oas: 46 }],
      ["arm-64-lpae-s1", { pgsizeBitmap: SZ_2M, ias: 48, oas: 48 }],
      [
        "arm-64-lpae-s1",
        { pgsizeBitmap: BITMAP_4K, ias: 48, oas: 48, quirks: IO_PGTABLE_QUIRK_NO_PERMS },
      ],
      [
        "arm-64-lpae-s1",
        { pgsizeBitmap: BITMAP_4K, ias: 48, oas: 48, quirks: IO_PGTABLE_QUIRK_ARM_OUTER_WBWA },
      ],
      [
        "arm-64-lpae-s2",
        { pgsizeBitmap: BITMAP_4K, ias: 48, oas: 48, quirks: IO_PGTABLE_QUIRK_ARM_TTBR1 },
      ],
      [
        "arm-64-lpae-s1",
        { pgsizeBitmap: BITMAP_4K, ias: 48, oas: 48, quirks: IO_PGTABLE_QUIRK_ARM_S2FWB },
      ],
      ["arm-64-lpae-s2", { pgsizeBitmap: BITMAP_4K, ias: 44, oas: 40 }],
      ["arm-64-lpae-s1", { pgsizeBitmap: 1.5, ias: 48, oas: 48 }],
    ];
    for (const [fmt, cfg] of cases) {
      expect(() => allocIoPgtable(fmt, cfg, pages)).toThrow(
        expect.objectContaining({ code: "EINVAL" }),
      );
    }
    expect(pages.bytesInUse).toBe(0);
  });
});

describe("§2.4 concatenated stage-2 roots (current rule)", () => {
  const rows: [pg: number, ias: number, oas: number, start: number, entries: number, sl: number][] =
    [
      [BITMAP_4K, 40, 40, 1, 1024, 1],
      [BITMAP_4K, 40, 44, 0, 2, 2],
      [BITMAP_4K, 42, 42, 1, 4096, 1],
      [BITMAP_4K, 42, 48, 0, 8, 2],
      [SZ_16K + SZ_32M, 48, 48, 1, 4096, 2],
      [SZ_16K + SZ_32M, 40, 40, 2, 32768, 1],
      [SZ_16K + SZ_32M, 40, 44, 1, 16, 2],
      [SZ_64K + SZ_512M, 48, 48, 1, 64, 2],
      [BITMAP_4K, 32, 48, 1, 4, 1],
      [BITMAP_4K, 48, 48, 0, 512, 2],
    ];
  it.each(rows)(
    "bitmap 0x%s ias %i oas %i → start %i, %i entries, SL %i",
    (pg, ias, oas, start, entries, sl) => {
      const { t, pages } = lpae("arm-64-lpae-s2", { pgsizeBitmap: pg, ias, oas });
      if (t.cfg.format !== "arm-64-lpae-s2") throw new Error("format");
      expect(t.cfg.geometry.startLevel).toBe(start);
      expect(t.cfg.geometry.rootEntries).toBe(entries);
      expect(t.cfg.armLpaeS2Cfg.vtcr.sl).toBe(sl);
      expect(t.cfg.armLpaeS2Cfg.vttbr % Math.max(entries * 8, 64)).toBe(0);
      expect(pages.bytesInUse).toBe(Math.max(entries * 8, 64));
      // The highest index of the root is reachable: map and unmap the last granule-page run.
      const last =
        2 ** ias -
        SZ_1G * (pg === BITMAP_4K ? 1 : 0) -
        (pg === BITMAP_4K ? 0 : pg === SZ_16K + SZ_32M ? SZ_32M : SZ_512M);
      const size = pg === BITMAP_4K ? SZ_1G : pg === SZ_16K + SZ_32M ? SZ_32M : SZ_512M;
      expect(t.mapPages(I(last), P(0x1_0000_0000), size, 1, R)).toBe(size);
      expect(t.iovaToPhys(I(last + 5))).toBe(0x1_0000_0005);
      expect(t.unmapPages(I(last), size, 1)).toBe(size);
    },
  );
});

describe("traps", () => {
  it("ARM_TTBR1: bigint upper-half addresses; plain numbers are out of range", () => {
    const { t, mem } = lpae("arm-64-lpae-s1", { quirks: IO_PGTABLE_QUIRK_ARM_TTBR1, ias: 39 });
    const top = 0xffff_ffff_ffff_f000n; // the last page
    expect(t.mapPages(top, P(0x9000_0000), SZ_4K, 1, R | W)).toBe(SZ_4K);
    expect(t.iovaToPhys(-0x1000n + 0x10n)).toBe(0x9000_0010);
    expect(t.iovaToPhys(0xffff_ffff_ffff_f123n)).toBe(0x9000_0123);
    // Index bits only: the upper bits are ignored by the walk, so the low alias translates too.
    expect(t.iovaToPhys(I(2 ** 39 - 0x1000))).toBe(0x9000_0000);
    expect(() => t.mapPages(I(0x1000), P(0x9000_0000), SZ_4K, 1, R)).toThrow(
      expect.objectContaining({ code: "ERANGE" }),
    );
    expect(() => t.mapPages(0xffff_ff00_0000_0000n, P(0x9000_0000), SZ_4K, 1, R)).toThrow(
      expect.objectContaining({ code: "ERANGE" }),
    );
    const seen: IovaArg[] = [];
    const g = new IotlbGather();
    const t2 = allocIoPgtable(
      "arm-64-lpae-s1",
      {
        pgsizeBitmap: BITMAP_4K,
        ias: 39,
        oas: 48,
        quirks: IO_PGTABLE_QUIRK_ARM_TTBR1,
        tlb: { tlbAddPage: (_g, a) => seen.push(a) },
      },
      env().pages,
    );
    t2.mapPages(-0x2000n, P(0x9000_0000), SZ_4K, 2, R);
    expect(t2.unmapPages(-0x2000n, SZ_4K, 2, g)).toBe(2 * SZ_4K);
    expect(seen).toEqual([0xffff_ffff_ffff_e000n, 0xffff_ffff_ffff_f000n]);
    expect(mem.size).toBeGreaterThan(0);
  });

  it("52-bit PA with a 64K granule lands PA[51:48] in descriptor bits 15:12", () => {
    const { t, mem } = lpae("arm-64-lpae-s1", {
      pgsizeBitmap: SZ_64K + SZ_512M + 2 ** 42,
      ias: 52,
      oas: 52,
    });
    const pa = 0x000f_1234_5678_0000;
    t.mapPages(I(0x1_0000), P(pa), SZ_64K, 1, R | W | C);
    const d = leafWord(t, mem, 0x1_0000, 3);
    expect(d & 0x0000_ffff_ffff_f000n).toBe(0x0000_1234_5678_f000n);
    expect(t.iovaToPhys(I(0x1_0042))).toBe(pa + 0x42);
    expect(t.cfg.pgsizeBitmap).toBe(SZ_64K + SZ_512M + 2 ** 42);
    // A 4T block at level 1.
    expect(t.mapPages(I(2 ** 43), P(2 ** 50), 2 ** 42, 1, R)).toBe(2 ** 42);
    expect(t.iovaToPhys(I(2 ** 43 + 2 ** 40 + 7))).toBe(2 ** 50 + 2 ** 40 + 7);
  });

  it("no splitting: a partial unmap of a block changes nothing and returns 0", () => {
    const { t, mem } = lpae("arm-64-lpae-s1");
    t.mapPages(I(SZ_1G), P(SZ_1G), SZ_1G, 1, R | W);
    const before = leafWord(t, mem, SZ_1G, 1);
    expect(t.unmapPages(I(SZ_1G + SZ_4K), SZ_4K, 1)).toBe(0);
    expect(t.unmapPages(I(SZ_1G), SZ_2M, 1)).toBe(0);
    expect(leafWord(t, mem, SZ_1G, 1)).toBe(before);
    expect(t.iovaToPhys(I(SZ_1G + SZ_4K))).toBe(SZ_1G + SZ_4K);
    // A page inside a block cannot be mapped either.
    expect(() => t.mapPages(I(SZ_1G + SZ_4K), P(0), SZ_4K, 1, R)).toThrow(
      expect.objectContaining({ code: "EEXIST" }),
    );
  });

  it("unmapping an unmapped range returns 0 in both formats", () => {
    const { t } = lpae("arm-64-lpae-s1");
    expect(t.unmapPages(I(0x5000), SZ_4K, 3)).toBe(0);
    t.mapPages(I(0), P(0x9000_0000), SZ_4K, 1, R);
    expect(t.unmapPages(I(0x5000), SZ_4K, 3)).toBe(0);
    const d = allocIoPgtable(
      "apple-dart2",
      { pgsizeBitmap: SZ_16K, ias: 32, oas: 42 },
      env().pages,
    );
    expect(d.unmapPages(I(0x4000), SZ_16K, 1)).toBe(0);
  });

  it("unmap stops at a hole and reports the bytes before it", () => {
    const { t } = lpae("arm-64-lpae-s1");
    t.mapPages(I(0), P(0x9000_0000), SZ_4K, 4, R);
    t.mapPages(I(0x5000), P(0x9000_5000), SZ_4K, 20, R);
    expect(t.unmapPages(I(0), SZ_4K, 30)).toBe(4 * SZ_4K);
    expect(t.unmapPages(I(0x5000), SZ_4K, 30)).toBe(20 * SZ_4K);
  });

  it("EEXIST over an existing mapping, with the bytes mapped in details, and nothing written", () => {
    const { t, mem } = lpae("arm-64-lpae-s1");
    t.mapPages(I(0x3000), P(0x9000_3000), SZ_4K, 1, R);
    const before = leafWord(t, mem, 0x2000, 3);
    let caught: unknown;
    try {
      t.mapPages(I(0), P(0xa000_0000), SZ_4K, 16, R | W);
    } catch (e) {
      caught = e;
    }
    expect(DevrefError.is(caught, "EEXIST")).toBe(true);
    expect((caught as DevrefError).details).toMatchObject({ mapped: 0 });
    expect(leafWord(t, mem, 0x2000, 3)).toBe(before);
    expect(t.iovaToPhys(I(0x3000))).toBe(0x9000_3000);
  });

  it("a block mapped over a table replaces it (flush walk, tables freed)", () => {
    const walks: [IovaArg, number, number][] = [];
    const { pages } = env();
    const t = allocIoPgtable(
      "arm-64-lpae-s1",
      {
        pgsizeBitmap: BITMAP_4K,
        ias: 48,
        oas: 48,
        tlb: { tlbFlushWalk: (a, s, g) => walks.push([a, s, g]) },
      },
      pages,
    );
    t.mapPages(I(SZ_2M), P(0x9000_0000), SZ_4K, 3, R);
    const held = pages.bytesInUse;
    expect(t.mapPages(I(SZ_2M), P(0xa000_0000), SZ_2M, 1, R | W)).toBe(SZ_2M);
    expect(walks).toEqual([[SZ_2M, SZ_2M, SZ_4K]]);
    expect(pages.bytesInUse).toBe(held - SZ_4K);
    expect(t.iovaToPhys(I(SZ_2M + 0x1000))).toBe(0xa000_1000);
    // Unmapping a 2M range that holds a table removes the whole subtree in one step.
    t.mapPages(I(2 * SZ_2M), P(0x9000_0000), SZ_4K, 5, R);
    const g = new IotlbGather();
    expect(t.unmapPages(I(2 * SZ_2M), SZ_2M, 1, g)).toBe(SZ_2M);
    expect(walks).toHaveLength(2);
    expect(t.iovaToPhys(I(2 * SZ_2M))).toBe(0);
  });

  it("TLB callbacks: addPage only with a non-queued gather; flushAll on dispose", () => {
    const log: string[] = [];
    const { pages } = env();
    const t = allocIoPgtable(
      "arm-64-lpae-s2",
      {
        pgsizeBitmap: BITMAP_4K,
        ias: 40,
        oas: 44,
        tlb: {
          tlbFlushAll: () => log.push("all"),
          tlbFlushWalk: (a) => log.push(`walk ${String(a)}`),
          tlbAddPage: (_g, a, s) => log.push(`add ${String(a)} ${s}`),
        },
      },
      pages,
    );
    t.mapPages(I(0), P(0x9000_0000), SZ_4K, 4, R);
    expect(log).toEqual([]);
    t.unmapPages(I(0), SZ_4K, 1);
    t.unmapPages(I(0x1000), SZ_4K, 1, new IotlbGather(true));
    t.unmapPages(I(0x2000), SZ_4K, 2, new IotlbGather());
    expect(log).toEqual(["add 8192 4096", "add 12288 4096"]);
    t[Symbol.dispose]();
    t[Symbol.dispose]();
    expect(log.at(-1)).toBe("all");
    expect(log.filter((x) => x === "all")).toHaveLength(1);
    expect(pages.bytesInUse).toBe(0);
    expect(() => t.iovaToPhys(I(0))).toThrow(expect.objectContaining({ code: "ESHUTDOWN" }));
    expect(() => t.mapPages(I(0), P(0), SZ_4K, 1, R)).toThrow(
      expect.objectContaining({ code: "ESHUTDOWN" }),
    );
  });

  it("runs are clamped to one table, pgcount 0 maps nothing, and small roots are not overrun", () => {
    const { t, pages } = lpae("arm-64-lpae-s1", { ias: 32 });
    expect(t.mapPages(I(SZ_2M - 2 * SZ_4K), P(0x9000_0000), SZ_4K, 10, R)).toBe(2 * SZ_4K);
    const held = pages.bytesInUse;
    expect(t.mapPages(I(0x4000_0000), P(0x9000_0000), SZ_4K, 0, R)).toBe(0);
    expect(pages.bytesInUse).toBe(held + 2 * SZ_4K); // intermediate tables, as in the kernel
    // Trap 17: 4-entry root; 6 × 1G from 3G would pass 2^32.
    expect(() => t.mapPages(I(3 * SZ_1G), P(0), SZ_1G, 6, R)).toThrow(
      expect.objectContaining({ code: "ERANGE" }),
    );
    expect(t.mapPages(I(3 * SZ_1G), P(0), SZ_1G, 1, R)).toBe(SZ_1G);
    expect(t.unmapPages(I(3 * SZ_1G), SZ_1G, 6)).toBe(0);
  });

  it("bad input is rejected with EINVAL/ERANGE and corrupts nothing", () => {
    const { t, mem, pages } = lpae("arm-64-lpae-s1", { ias: 40, oas: 40 });
    t.mapPages(I(0), P(0x9000_0000), SZ_4K, 1, R);
    const held = pages.bytesInUse;
    const snapshot = t.dump();
    const bad: [() => unknown, string][] = [
      [() => t.mapPages(I(0x1000), P(0x9000_0000), 0x3000, 1, R), "EINVAL"],
      [() => t.mapPages(I(0x1000), P(0x9000_0000), 2 ** 39, 1, R), "EINVAL"],
      [() => t.mapPages(I(0x1000), P(0x9000_0000), SZ_4K, 1, 0), "EINVAL"],
      [() => t.mapPages(I(0x1000), P(0x9000_0000), SZ_4K, 1, 0x40 | R), "EINVAL"],
      [() => t.mapPages(I(0x1800), P(0x9000_0000), SZ_4K, 1, R), "EINVAL"],
      [() => t.mapPages(I(0x1000), P(0x9000_0800), SZ_4K, 1, R), "EINVAL"],
      [() => t.mapPages(I(0x1000), P(0x9000_0000), SZ_4K, -1, R), "EINVAL"],
      [() => t.mapPages(I(0.5), P(0x9000_0000), SZ_4K, 1, R), "EINVAL"],
      [() => t.mapPages(I(2 ** 40), P(0x9000_0000), SZ_4K, 1, R), "ERANGE"],
      [() => t.mapPages(I(0x1000), P(2 ** 40), SZ_4K, 1, R), "ERANGE"],
      [() => t.mapPages(I(0x1000), P(-4096), SZ_4K, 1, R), "ERANGE"],
      [() => t.unmapPages(I(0x1800), SZ_4K, 1), "EINVAL"],
    ];
    for (const [f, code] of bad) expect(f).toThrow(expect.objectContaining({ code }));
    expect(t.unmapPages(I(0), 0x3000, 1)).toBe(0);
    expect(t.unmapPages(I(0), SZ_4K, 0)).toBe(0);
    expect(t.unmapPages(I(2 ** 40), SZ_4K, 1)).toBe(0);
    expect(pages.bytesInUse).toBe(held);
    expect(t.dump()).toBe(snapshot);
    expect(mem.pagesAllocated).toBeGreaterThan(0);
  });

  it("non-coherent walks clean every write and mark table descriptors SW_SYNC", () => {
    const cleans: [number, number][] = [];
    const { pages, mem } = env();
    const t = allocIoPgtable(
      "arm-64-lpae-s2",
      {
        pgsizeBitmap: BITMAP_4K,
        ias: 48,
        oas: 48,
        coherentWalk: false,
        cacheClean: (pa, n) => cleans.push([pa, n]),
      },
      pages,
    );
    if (t.cfg.format !== "arm-64-lpae-s2") throw new Error("format");
    expect(t.cfg.armLpaeS2Cfg.vtcr).toMatchObject({ sh: 2, irgn: 0, orgn: 0 });
    t.mapPages(I(0), P(0x9000_0000), SZ_4K, 16, R);
    const root = t.cfg.armLpaeS2Cfg.vttbr;
    expect((word(mem, root) >> 55n) & 1n).toBe(1n);
    expect(cleans.some(([pa, n]) => n === 16 * 8 && pa % SZ_4K === 0)).toBe(true);
    expect(cleans.length).toBeGreaterThanOrEqual(1 + 3 * 2 + 1);
  });
});

describe("§3.4 DART worked examples (16K page at PA 0x8_0000_4000)", () => {
  const rows: [fmt: "apple-dart" | "apple-dart2", prot: number, desc: bigint][] = [
    ["apple-dart2", R | W | C, 0x000f_ff00_8000_0401n],
    ["apple-dart2", R | W, 0x000f_ff00_8000_0403n],
    ["apple-dart2", R, 0x000f_ff00_8000_0407n],
    ["apple-dart2", W, 0x000f_ff00_8000_040bn],
    ["apple-dart2", R | W | X | M | PRIV, 0x000f_ff00_8000_0403n],
    ["apple-dart", R | W, 0x000f_ff08_0000_4003n],
    ["apple-dart", R, 0x000f_ff08_0000_4083n],
    ["apple-dart", W, 0x000f_ff08_0000_4103n],
  ];
  it.each(rows)("%s prot %i", (fmt, prot, desc) => {
    const { pages, mem } = env(0x8_0001_0000 - 0x1_0000, 2 ** 24);
    const t = allocIoPgtable(
      fmt,
      { pgsizeBitmap: SZ_16K, ias: 32, oas: fmt === "apple-dart" ? 36 : 42 },
      pages,
    );
    t.mapPages(I(0x4000), P(0x8_0000_4000), SZ_16K, 1, prot);
    const top = t.cfg.appleDartCfg.ttbr[0]!;
    const l1 = word(mem, top);
    const leafTable =
      fmt === "apple-dart2" ? Number((l1 & 0x3f_ffff_fc00n) << 4n) : Number(l1 & 0xf_ffff_f000n);
    expect(word(mem, leafTable + 8)).toBe(desc);
    expect(t.iovaToPhys(I(0x4123))).toBe(0x8_0000_4123);
  });

  it("table entries: DART2 0x8000_1001 and DART1 0x8_0001_0001 for a table at 0x8_0001_0000", () => {
    for (const [fmt, expected] of [
      ["apple-dart2", 0x0000_0000_8000_1001n],
      ["apple-dart", 0x0000_0008_0001_0001n],
    ] as const) {
      // The top table takes 0x8_0000_c000; the first leaf table then lands on 0x8_0001_0000.
      const { pages, mem } = env(0x8_0000_c000, 0x8000);
      const t = allocIoPgtable(
        fmt,
        { pgsizeBitmap: SZ_16K, ias: 32, oas: fmt === "apple-dart" ? 36 : 42 },
        pages,
      );
      expect(t.cfg.appleDartCfg.ttbr[0]).toBe(0x8_0000_c000);
      t.mapPages(I(0), P(0x8_0000_4000), SZ_16K, 1, R);
      expect(word(mem, t.cfg.appleDartCfg.ttbr[0]!)).toBe(expected);
    }
  });

  it("DART aliasing: IOVAs above ias index unused slots; bits above the TTBR field are dropped", () => {
    const { pages } = env();
    const t = allocIoPgtable("apple-dart2", { pgsizeBitmap: SZ_16K, ias: 32, oas: 42 }, pages);
    // [2^32, 2^36) reaches level-1 slots 128–2047 that no in-range IOVA reaches.
    expect(t.mapPages(I(2 ** 35), P(0x9_0000_0000), SZ_16K, 1, R)).toBe(SZ_16K);
    expect(t.iovaToPhys(I(2 ** 35 + 5))).toBe(0x9_0000_0005);
    expect(t.iovaToPhys(I(5))).toBe(0);
    // 2^36 selects TTBR 1, which does not exist: ENOMEM, and 0 for unmap / translate.
    expect(() => t.mapPages(I(2 ** 36), P(0x9_0000_0000), SZ_16K, 1, R)).toThrow(
      expect.objectContaining({ code: "ENOMEM" }),
    );
    // Bits above the 11-bit TTBR field (bit 47 up) are dropped: 2^63 aliases IOVA 0.
    t.mapPages(I(0), P(0xa_0000_0000), SZ_16K, 1, R);
    expect(t.iovaToPhys(2n ** 63n + 0x10n)).toBe(0xa_0000_0010);
    expect(t.unmapPages(2n ** 63n, SZ_16K, 1)).toBe(SZ_16K);
    expect(t.iovaToPhys(I(0x10))).toBe(0);
  });

  it("DART EEXIST writes nothing; unmap stops at the first empty slot; tables are kept", () => {
    const { pages } = env();
    const t = allocIoPgtable("apple-dart", { pgsizeBitmap: SZ_4K, ias: 32, oas: 36 }, pages);
    t.mapPages(I(0x5000), P(0x9000_5000), SZ_4K, 1, R);
    const before = t.dump();
    expect(() => t.mapPages(I(0), P(0x1_0000_0000), SZ_4K, 16, R)).toThrow(
      expect.objectContaining({ code: "EEXIST" }),
    );
    expect(t.dump()).toBe(before);
    t.mapPages(I(0), P(0x1_0000_0000), SZ_4K, 5, R);
    expect(t.unmapPages(I(0), SZ_4K, 16)).toBe(6 * SZ_4K);
    const held = pages.bytesInUse;
    expect(t.mapPages(I(0), P(0x1_0000_0000), SZ_4K, 1, R)).toBe(SZ_4K);
    expect(pages.bytesInUse).toBe(held);
  });
});

describe("§2.2 root geometry (stage 1, no concatenation)", () => {
  const rows: [granule: number, ias: number, levels: number, start: number, entries: number][] = [
    [SZ_4K, 32, 3, 1, 4],
    [SZ_4K, 36, 3, 1, 64],
    [SZ_4K, 39, 3, 1, 512],
    [SZ_4K, 40, 4, 0, 2],
    [SZ_4K, 42, 4, 0, 8],
    [SZ_4K, 44, 4, 0, 32],
    [SZ_4K, 48, 4, 0, 512],
    [SZ_16K, 32, 2, 2, 128],
    [SZ_16K, 36, 2, 2, 2048],
    [SZ_16K, 40, 3, 1, 16],
    [SZ_16K, 42, 3, 1, 64],
    [SZ_16K, 44, 3, 1, 256],
    [SZ_16K, 47, 3, 1, 2048],
    [SZ_16K, 48, 4, 0, 2],
    [SZ_64K, 32, 2, 2, 8],
    [SZ_64K, 36, 2, 2, 128],
    [SZ_64K, 40, 2, 2, 2048],
    [SZ_64K, 42, 2, 2, 8192],
    [SZ_64K, 44, 3, 1, 4],
    [SZ_64K, 48, 3, 1, 64],
    [SZ_64K, 52, 3, 1, 1024],
  ];
  it.each(rows)(
    "granule 0x%s ias %i: %i levels from %i, %i root entries",
    (granule, ias, levels, start, entries) => {
      const { t, pages } = lpae("arm-64-lpae-s1", {
        pgsizeBitmap: granule,
        ias,
        oas: ias > 48 ? 52 : 48,
      });
      expect(t.cfg.geometry).toMatchObject({
        levels,
        startLevel: start,
        rootEntries: entries,
        rootBytes: Math.max(entries * 8, 64),
      });
      expect(pages.bytesInUse).toBe(Math.max(entries * 8, 64));
    },
  );

  it("stage-2 SL wraps for a level-3 start (4K, ias 21)", () => {
    const { t } = lpae("arm-64-lpae-s2", { pgsizeBitmap: SZ_4K, ias: 21, oas: 32 });
    if (t.cfg.format !== "arm-64-lpae-s2") throw new Error("format");
    expect(t.cfg.geometry.startLevel).toBe(3);
    expect(t.cfg.armLpaeS2Cfg.vtcr.sl).toBe(3);
  });
});
