// The kernel's LPAE self-test (io-pgtable-arm-selftests.c, v6.14+ matrix) and a DART equivalent.
import { DevrefError } from "@devref/raw-device";
import { describe, expect, it } from "vitest";
import {
  allocIoPgtable,
  IO_PGTABLE_QUIRK_NO_WARN,
  IOMMU_CACHE,
  IOMMU_NOEXEC,
  IOMMU_READ,
  IOMMU_WRITE,
  type IommuFlushOps,
  type IovaArg,
} from "../src/index.js";
import {
  env,
  I,
  P,
  SZ_1G,
  SZ_2G,
  SZ_2M,
  SZ_4K,
  SZ_16K,
  SZ_32M,
  SZ_64K,
  SZ_512M,
} from "./helpers.js";

const PGSIZES = [SZ_4K + SZ_2M + SZ_1G, SZ_16K + SZ_32M, SZ_64K + SZ_512M];
const ADDRESS_SIZES = [32, 36, 40, 42, 44, 48];

function setBits(bitmap: number): number[] {
  const out: number[] = [];
  for (let s = 1; s <= bitmap; s *= 2) if (Math.floor(bitmap / s) % 2 === 1) out.push(s);
  return out;
}

/** Dummy TLB callbacks that check what the kernel's dummies check, and count calls. */
function dummyTlb(cookie: object, bitmap: () => number) {
  const calls = { all: 0, walk: 0, add: 0, bad: [] as string[] };
  const checkSize = (size: number) => {
    if (!setBits(bitmap()).includes(size)) calls.bad.push(`size ${size} not in bitmap`);
  };
  const ops: IommuFlushOps = {
    tlbFlushAll(c) {
      calls.all++;
      if (c !== cookie) calls.bad.push("flushAll cookie");
    },
    tlbFlushWalk(_iova: IovaArg, size, _granule, c) {
      calls.walk++;
      if (c !== cookie) calls.bad.push("flushWalk cookie");
      checkSize(size);
    },
    tlbAddPage(_g, _iova, granule, c) {
      calls.add++;
      if (c !== cookie) calls.bad.push("addPage cookie");
      checkSize(granule);
    },
  };
  return { ops, calls };
}

const RWNC = IOMMU_READ | IOMMU_WRITE | IOMMU_NOEXEC | IOMMU_CACHE;

describe("kernel LPAE self-test (arm_lpae_do_selftests)", () => {
  const runs: [number, number, number][] = [];
  for (const pg of PGSIZES)
    for (let j = 0; j < ADDRESS_SIZES.length; j++)
      for (let k = 0; k <= j; k++) runs.push([pg, ADDRESS_SIZES[k]!, ADDRESS_SIZES[j]!]);

  it("covers 3 × 21 configurations", () => expect(runs.length).toBe(63));

  it.each(runs)("pgsize 0x%s ias %i oas %i passes for S1 and S2", (pgsize, ias, oas) => {
    for (const fmt of ["arm-64-lpae-s1", "arm-64-lpae-s2"] as const) {
      const { pages } = env();
      const cookie = { name: "cfg" };
      let narrowed = pgsize;
      const { ops: tlb, calls } = dummyTlb(cookie, () => narrowed);
      const t = allocIoPgtable(
        fmt,
        { pgsizeBitmap: pgsize, ias, oas, quirks: IO_PGTABLE_QUIRK_NO_WARN, tlb, cookie },
        pages,
      );
      narrowed = t.cfg.pgsizeBitmap;

      expect(t.iovaToPhys(I(42))).toBe(0);
      expect(t.iovaToPhys(I(SZ_1G + 42))).toBe(0);
      expect(t.iovaToPhys(I(SZ_2G + 42))).toBe(0);

      let iova = 0;
      for (const size of setBits(t.cfg.pgsizeBitmap)) {
        expect(t.mapPages(I(iova), P(iova), size, 1, RWNC)).toBe(size);
        expect(() =>
          t.mapPages(I(iova), P(iova + size), size, 1, IOMMU_READ | IOMMU_NOEXEC),
        ).toThrow(expect.objectContaining({ code: "EEXIST" }));
        expect(t.iovaToPhys(I(iova + 42))).toBe(iova + 42);
        iova += SZ_1G;
      }

      iova = 0;
      for (const size of setBits(t.cfg.pgsizeBitmap)) {
        expect(t.unmapPages(I(iova), size, 1, null)).toBe(size);
        expect(t.iovaToPhys(I(iova + 42))).toBe(0);
        expect(t.mapPages(I(iova), P(iova), size, 1, IOMMU_WRITE)).toBe(size);
        expect(t.iovaToPhys(I(iova + 42))).toBe(iova + 42);
        iova += SZ_1G;
      }

      const sizes = setBits(t.cfg.pgsizeBitmap);
      const size = sizes[sizes.length - 1]!;
      const last = 2 ** t.cfg.ias - size;
      expect(t.mapPages(I(last), P(last), size, 1, RWNC)).toBe(size);
      expect(t.unmapPages(I(last), size, 1, null)).toBe(size);

      t[Symbol.dispose]();
      expect(calls.all).toBe(1);
      expect(calls.bad).toEqual([]);
      expect(pages.bytesInUse).toBe(0);
    }
  });
});

describe("DART self-test (same steps, every §3.2 shape)", () => {
  const shapes: [
    fmt: "apple-dart" | "apple-dart2",
    pg: number,
    ias: number,
    oas: number,
    levels: number,
    ttbrs: number,
  ][] = [
    ["apple-dart2", SZ_16K, 32, 42, 3, 1],
    ["apple-dart2", SZ_16K, 36, 42, 3, 1],
    ["apple-dart2", SZ_16K, 37, 42, 4, 1],
    ["apple-dart2", SZ_16K, 42, 42, 4, 1],
    ["apple-dart", SZ_16K, 32, 36, 3, 1],
    ["apple-dart", SZ_16K, 36, 36, 3, 1],
    ["apple-dart", SZ_4K, 32, 36, 3, 4],
    ["apple-dart", SZ_4K, 33, 36, 4, 1],
    ["apple-dart", SZ_4K, 36, 36, 4, 1],
    ["apple-dart", SZ_4K, 39, 42, 4, 1],
    ["apple-dart", SZ_4K, 40, 42, 4, 2],
    ["apple-dart", SZ_4K, 41, 42, 4, 4],
  ];
  it.each(shapes)(
    "%s pgsize 0x%s ias %i oas %i: n_levels %i, %i TTBRs",
    (fmt, pg, ias, oas, nLevels, nTtbrs) => {
      const { pages } = env();
      const cookie = {};
      const { ops: tlb, calls } = dummyTlb(cookie, () => pg);
      const t = allocIoPgtable(fmt, { pgsizeBitmap: pg, ias, oas, tlb, cookie }, pages);
      expect(t.cfg.appleDartCfg.nLevels).toBe(nLevels);
      expect(t.cfg.appleDartCfg.nTtbrs).toBe(nTtbrs);
      expect(t.cfg.appleDartCfg.ttbr).toHaveLength(nTtbrs);
      for (const a of [42, SZ_1G + 42, SZ_2G + 42]) expect(t.iovaToPhys(I(a))).toBe(0);
      for (const iova of [0, SZ_1G, SZ_2G]) {
        expect(t.mapPages(I(iova), P(0x1_0000_0000 + iova), pg, 1, RWNC)).toBe(pg);
        expect(() => t.mapPages(I(iova), P(0x1_0000_0000 + iova + pg), pg, 1, IOMMU_READ)).toThrow(
          expect.objectContaining({ code: "EEXIST" }),
        );
        expect(t.iovaToPhys(I(iova + 42))).toBe(0x1_0000_0000 + iova + 42);
      }
      for (const iova of [0, SZ_1G, SZ_2G]) {
        expect(t.unmapPages(I(iova), pg, 1, null)).toBe(pg);
        expect(t.iovaToPhys(I(iova + 42))).toBe(0);
        expect(t.mapPages(I(iova), P(0x1_0000_0000 + iova), pg, 1, IOMMU_WRITE)).toBe(pg);
      }
      // The last page of the input space, and the first beyond the last TTBR.
      const last = 2 ** ias - pg;
      expect(t.mapPages(I(last), P(0x2000_0000), pg, 1, RWNC)).toBe(pg);
      expect(t.unmapPages(I(last), pg, 1, null)).toBe(pg);
      const ttbrShift = Math.log2(pg) + (nLevels - 1) * (Math.log2(pg) - 3);
      if (nTtbrs < 2 ** (Math.log2(pg) - 3)) {
        const beyond = nTtbrs * 2 ** ttbrShift;
        expect(() => t.mapPages(I(beyond), P(0x2000_0000), pg, 1, RWNC)).toThrow(
          expect.objectContaining({ code: "ENOMEM" }),
        );
        expect(t.unmapPages(I(beyond), pg, 1)).toBe(0);
        expect(t.iovaToPhys(I(beyond))).toBe(0);
      }
      t[Symbol.dispose]();
      expect(calls.all).toBe(1);
      expect(calls.bad).toEqual([]);
      expect(pages.bytesInUse).toBe(0);
    },
  );

  it("rejects shapes the kernel rejects", () => {
    const { pages } = env();
    const bad = [
      ["apple-dart", { pgsizeBitmap: SZ_4K, ias: 42, oas: 42 }],
      ["apple-dart2", { pgsizeBitmap: SZ_16K, ias: 43, oas: 42 }],
      ["apple-dart2", { pgsizeBitmap: SZ_16K, ias: 32, oas: 40 }],
      ["apple-dart2", { pgsizeBitmap: SZ_16K | SZ_4K, ias: 32, oas: 42 }],
      ["apple-dart", { pgsizeBitmap: SZ_16K, ias: 32, oas: 36, coherentWalk: false }],
      ["apple-dart2", { pgsizeBitmap: SZ_4K, ias: 32, oas: 42 }],
    ] as const;
    for (const [fmt, cfg] of bad) {
      expect(() => allocIoPgtable(fmt, cfg, pages)).toThrow(DevrefError);
      expect(() => allocIoPgtable(fmt, cfg, pages)).toThrow(
        expect.objectContaining({ code: "EINVAL" }),
      );
    }
    expect(pages.bytesInUse).toBe(0);
  });
});
