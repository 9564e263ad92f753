// `devref pgtable decode|dump` on table images the test builds with io-pgtable: the
// command must list what the table's own decoder lists.
import { writeFileSync } from "node:fs";
import { join } from "node:path";
import {
  allocIoPgtable,
  decodeIoPgtable,
  formatProt,
  IO_PGTABLE_FORMATS,
  IOMMU_CACHE,
  IOMMU_READ,
  IOMMU_WRITE,
} from "@devref/io-pgtable";
import { BuddyAllocator, iova, physAddr, SparseMemory } from "@devref/raw-device";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { FORMATS } from "../src/internal/commands/pgtable.js";
import { devref, json, tempDir } from "./helpers.js";

const BASE = 0x8000_0000;
const SIZE = 0x10_0000;
const RW = IOMMU_READ | IOMMU_WRITE | IOMMU_CACHE;

interface Image {
  readonly file: string;
  readonly roots: number[];
  readonly memory: SparseMemory;
}

const tmp = tempDir();
let lpae: Image;
let dart2: Image;

/** The table memory as a raw little-endian image of [BASE, BASE + SIZE). */
function save(name: string, memory: SparseMemory): string {
  const bytes = new Uint8Array(SIZE);
  memory.readBytes(BASE, bytes);
  const file = join(tmp.dir, name);
  writeFileSync(file, bytes);
  return file;
}

beforeAll(() => {
  {
    const memory = new SparseMemory();
    const pages = new BuddyAllocator(memory, BASE, SIZE);
    const t = allocIoPgtable(
      "arm-64-lpae-s1",
      { pgsizeBitmap: 0x4020_1000, ias: 48, oas: 48 },
      pages,
    );
    t.mapPages(iova(0x1000), physAddr(0x9000_0000), 0x1000, 4, RW);
    t.mapPages(iova(0x4000_0000), physAddr(0xc000_0000), 0x20_0000, 1, IOMMU_READ);
    const cfg = t.cfg;
    if (cfg.format !== "arm-64-lpae-s1") throw new Error("not a stage-1 table");
    lpae = { file: save("lpae.bin", memory), roots: [cfg.armLpaeS1Cfg.ttbr], memory };
  }
  {
    const memory = new SparseMemory();
    const pages = new BuddyAllocator(memory, BASE, SIZE);
    const t = allocIoPgtable("apple-dart2", { pgsizeBitmap: 0x4000, ias: 32, oas: 42 }, pages);
    t.mapPages(iova(0x4000), physAddr(0x8_0010_0000), 0x4000, 3, RW);
    t.mapPages(iova(0x100_0000), physAddr(0x8_0200_0000), 0x4000, 1, IOMMU_WRITE);
    const cfg = t.cfg;
    if (cfg.format !== "apple-dart2") throw new Error("not a DART2 table");
    dart2 = { file: save("dart2.bin", memory), roots: [...cfg.appleDartCfg.ttbr], memory };
  }
});

afterAll(() => tmp.remove());

const hex = (n: number): string => `0x${n.toString(16)}`;

describe("devref pgtable", () => {
  it("--format takes exactly io-pgtable's formats", () => {
    expect(FORMATS).toEqual(IO_PGTABLE_FORMATS);
  });

  it("decode --json lists an LPAE table's mappings as io-pgtable decodes them", async () => {
    const r = await devref([
      "pgtable",
      "decode",
      lpae.file,
      "--format",
      "arm-64-lpae-s1",
      "--base",
      hex(BASE),
      "--ttbr",
      hex(lpae.roots[0]!),
      "--json",
    ]);
    expect(r.status).toBe(0);
    const out = json(r);
    const want = decodeIoPgtable(
      lpae.memory,
      "arm-64-lpae-s1",
      { pgsizeBitmap: 0x4020_1000, ias: 48, oas: 48 },
      lpae.roots[0]!,
    );
    expect(want).toHaveLength(5);
    expect(out.format).toBe("arm-64-lpae-s1");
    expect(out.mappings).toEqual(
      want.map((m) => ({
        iova: hex(Number(m.iova)),
        size: m.size,
        pa: hex(m.pa),
        level: m.level,
        prot: m.prot,
        perms: formatProt(m.prot),
        desc: expect.stringMatching(/^0x[0-9a-f]+$/),
      })),
    );
    expect(out.problems).toEqual([]);
  });

  it("decode prints one line per mapping", async () => {
    const r = await devref([
      "pgtable",
      "decode",
      lpae.file,
      "--format",
      "arm-64-lpae-s1",
      "--base",
      hex(BASE),
      "--ttbr",
      hex(lpae.roots[0]!),
    ]);
    expect(r.status).toBe(0);
    expect(r.stdout).toContain("5 mapping(s)");
    expect(r.stdout).toMatch(/0x1000\.\.0x1fff\s+4K\s+-> 0x90000000\s+RWX cache/);
    expect(r.stdout).toMatch(/0x40000000\.\.0x401fffff\s+2M\s+-> 0xc0000000\s+R-X/);
  });

  it("decodes a DART2 table from its TTBR list (16K pages by default)", async () => {
    const r = await devref([
      "pgtable",
      "decode",
      dart2.file,
      "--format",
      "apple-dart2",
      "--base",
      hex(BASE),
      "--ttbr",
      dart2.roots.map(hex).join(","),
      "--json",
    ]);
    expect(r.status).toBe(0);
    const out = json(r);
    const maps = out.mappings as { iova: string; pa: string; size: number }[]; // SAFETY: the JSON shape under test.
    expect(maps.map((m) => [m.iova, m.pa, m.size])).toEqual([
      ["0x4000", "0x800100000", 0x4000],
      ["0x8000", "0x800104000", 0x4000],
      ["0xc000", "0x800108000", 0x4000],
      ["0x1000000", "0x802000000", 0x4000],
    ]);
    expect(out.cfg).toEqual({ pgsizeBitmap: "0x4000", ias: 32, oas: 42 });
  });

  it("options may come before the image; --ttbr repeats", async () => {
    const r = await devref([
      "pgtable",
      "decode",
      "--format",
      "apple-dart2",
      "--ttbr",
      hex(dart2.roots[0]!),
      "--base",
      hex(BASE),
      dart2.file,
      "--json",
    ]);
    expect(r.status).toBe(0);
    expect(json(r).ttbr).toEqual([hex(dart2.roots[0]!)]);
    const two = await devref([
      "pgtable",
      "decode",
      "--format",
      "apple-dart2",
      "--ttbr",
      "0x1000",
      "--ttbr",
      "0x2000",
      dart2.file,
    ]);
    expect(two.status).toBe(2);
    expect(two.stderr).toMatch(/^devref: EINVAL: decodeIoPgtable: root must be an array of 1 TTBR/);
  });

  it("dump prints the tables level by level", async () => {
    const r = await devref([
      "pgtable",
      "dump",
      dart2.file,
      "--format",
      "apple-dart2",
      "--base",
      hex(BASE),
      "--ttbr",
      hex(dart2.roots[0]!),
    ]);
    expect(r.status).toBe(0);
    const lines = r.stdout.trimEnd().split("\n");
    expect(lines[0]).toMatch(/^apple-dart2 pgsize 0x4000 ias 32 oas 42 root /);
    expect(lines.filter((l) => l.includes(" table "))).not.toHaveLength(0);
    expect(lines.filter((l) => l.includes("-> 0x"))).toHaveLength(4);
    const j = json(
      await devref([
        "pgtable",
        "dump",
        dart2.file,
        "--format",
        "apple-dart2",
        "--base",
        hex(BASE),
        "--ttbr",
        hex(dart2.roots[0]!),
        "--json",
      ]),
    );
    expect(j.dump).toEqual(lines);
  });

  it("refuses a wrong table description with a DevrefError line", async () => {
    const cases = [
      // Two roots for LPAE.
      ["pgtable", "decode", lpae.file, "--format", "arm-64-lpae-s1", "--ttbr", "0x1000,0x2000"],
      // A DART with 4K pages and ias 32 has four TTBRs.
      ["pgtable", "decode", dart2.file, "--format", "apple-dart", "--ttbr", hex(BASE)],
      // An odd granule.
      [
        "pgtable",
        "decode",
        lpae.file,
        "--format",
        "arm-64-lpae-s1",
        "--ttbr",
        "0",
        "--granule",
        "8K",
      ],
      // A TTBR outside the image reads zeroes: no mappings, but no error either.
    ];
    for (const c of cases) {
      const r = await devref(c);
      expect(r.status, c.join(" ")).toBe(2);
      expect(r.stderr, c.join(" ")).toMatch(/^devref: EINVAL: \S.*\n$/);
    }
    const empty = join(tmp.dir, "empty.bin");
    writeFileSync(empty, new Uint8Array(0));
    const r = await devref(["pgtable", "decode", empty, "--format", "apple-dart2", "--ttbr", "0"]);
    expect(r.status).toBe(2);
    expect(r.stderr).toContain("is empty");
  });
});
