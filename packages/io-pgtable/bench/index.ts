// pnpm bench: ns per page for the io-pgtable hot paths, with in-run baselines. Prints figures,
// asserts nothing. Tables are resident (populated once, then reused), as in the kernel figures.
import { BuddyAllocator, type Iova, type PhysAddr, SparseMemory } from "@devref/raw-device";
import { allocIoPgtable, IOMMU_CACHE, IOMMU_READ, IOMMU_WRITE } from "../src/index.js";

const SZ_4K = 0x1000;
const SZ_2M = 0x20_0000;
const SZ_1G = 0x4000_0000;
const PAGES = SZ_1G / SZ_4K; // 262144
const PROT = IOMMU_READ | IOMMU_WRITE | IOMMU_CACHE;
const REPS = 9;
const PA_BASE = 0x10_0000_0000;

function time(fn: () => void): number {
  const t0 = process.hrtime.bigint();
  fn();
  return Number(process.hrtime.bigint() - t0);
}

/** Median ns per item over REPS runs of `fn` (after one warm-up run). */
function perItem(items: number, fn: () => void, before?: () => void): number {
  const runs: number[] = [];
  before?.();
  fn();
  for (let r = 0; r < REPS; r++) {
    before?.();
    runs.push(time(fn) / items);
  }
  runs.sort((a, b) => a - b);
  return runs[REPS >> 1]!;
}

const results: [string, number, string][] = [];
const report = (name: string, ns: number, note = ""): void => {
  results.push([name, ns, note]);
};

const mem = new SparseMemory();
const pages = new BuddyAllocator(mem, 0x8000_0000, 1 << 26);
const t = allocIoPgtable(
  "arm-64-lpae-s1",
  { pgsizeBitmap: SZ_4K + SZ_2M + SZ_1G, ias: 48, oas: 48 },
  pages,
);
// SAFETY: bench addresses are whole numbers well inside ias/oas.
const I = (x: number): Iova => x as Iova;
const P = (x: number): PhysAddr => x as PhysAddr;

const mapOne = (): void => {
  for (let i = 0; i < PAGES; i++) t.mapPages(I(i * SZ_4K), P(PA_BASE + i * SZ_4K), SZ_4K, 1, PROT);
};
const unmapOne = (): void => {
  for (let i = 0; i < PAGES; i++) t.unmapPages(I(i * SZ_4K), SZ_4K, 1);
};
const mapBatch = (): void => {
  for (let i = 0; i < PAGES; i += 512)
    t.mapPages(I(i * SZ_4K), P(PA_BASE + i * SZ_4K), SZ_4K, 512, PROT);
};
const unmapBatch = (): void => {
  for (let i = 0; i < PAGES; i += 512) t.unmapPages(I(i * SZ_4K), SZ_4K, 512);
};
let sink = 0;
const toPhys = (): void => {
  let s = 0;
  for (let i = 0; i < PAGES; i++) s = (s + (t.iovaToPhys(I(i * SZ_4K + 8)) >>> 12)) | 0;
  sink += s;
};

// Whether the 1 GiB is mapped, so each measurement can start from the state it needs.
let mapped = false;
const ensureMapped = (): void => {
  if (!mapped) mapBatch();
  mapped = true;
};
const ensureUnmapped = (): void => {
  if (mapped) unmapBatch();
  mapped = false;
};
const thenMapped = (fn: () => void) => (): void => {
  fn();
  mapped = true;
};
const thenUnmapped = (fn: () => void) => (): void => {
  fn();
  mapped = false;
};

// Populate the tables once; page unmaps leave them installed.
const firstMap = time(mapOne) / PAGES;
mapped = true;
const tableBytes = pages.bytesInUse;
report("first map, 4K, 1 page/call (allocating tables)", firstMap);
report(
  "map 4K, 1 page per call, 1 GiB",
  perItem(PAGES, thenMapped(mapOne), ensureUnmapped),
  "kernel 15.4",
);
report(
  "unmap 4K, 1 page per call, 1 GiB",
  perItem(PAGES, thenUnmapped(unmapOne), ensureMapped),
  "kernel 13.3",
);
report(
  "map 4K, pgcount 512, 1 GiB",
  perItem(PAGES, thenMapped(mapBatch), ensureUnmapped),
  "kernel 1.32",
);
report(
  "unmap 4K, pgcount 512, 1 GiB",
  perItem(PAGES, thenUnmapped(unmapBatch), ensureMapped),
  "kernel 0.85",
);
report("iovaToPhys, every page of 1 GiB", perItem(PAGES, toPhys, ensureMapped), "kernel 20.7");
const heldBytes = t.tableBytes;
t[Symbol.dispose]();

// 2 MiB blocks over 64 GiB.
const blocks = (64 * SZ_1G) / SZ_2M;
const t2 = allocIoPgtable(
  "arm-64-lpae-s1",
  { pgsizeBitmap: SZ_4K + SZ_2M + SZ_1G, ias: 48, oas: 48 },
  pages,
);
const mapBlocks = (): void => {
  for (let i = 0; i < blocks; i++)
    t2.mapPages(I(i * SZ_2M), P(PA_BASE + i * SZ_2M), SZ_2M, 1, PROT);
};
const unmapBlocks = (): void => {
  for (let i = 0; i < blocks; i += 512) t2.unmapPages(I(i * SZ_2M), SZ_2M, 512);
};
report("map 2M blocks, 1 per call, 64 GiB", perItem(blocks, mapBlocks, unmapBlocks), "kernel 11.9");
t2[Symbol.dispose]();

// Baselines from the same run.
const f64 = new Float64Array(PAGES);
report(
  "baseline: Float64Array write, one per page",
  perItem(PAGES, () => {
    for (let i = 0; i < PAGES; i++) f64[i] = i * SZ_4K;
  }),
);
const u32 = new Uint32Array(PAGES * 2);
report(
  "baseline: Uint32Array descriptor pair write, one per page",
  perItem(PAGES, () => {
    for (let i = 0; i < PAGES; i++) {
      u32[2 * i] = (i * SZ_4K) | 0xf47;
      u32[2 * i + 1] = 0;
    }
  }),
);
const bm = new SparseMemory();
report(
  "baseline: SparseMemory.write64, one per page (4 MiB of words)",
  perItem(PAGES, () => {
    for (let i = 0; i < PAGES; i++) bm.write64(0x1000_0000 + i * 8, (i * SZ_4K) | 0xf47, 0);
  }),
);
report(
  "baseline: SparseMemory.read64Lo + read64Hi, one pair per page",
  perItem(PAGES, () => {
    let s = 0;
    for (let i = 0; i < PAGES; i++)
      s += bm.read64Lo(0x1000_0000 + i * 8) + bm.read64Hi(0x1000_0000 + i * 8);
    sink += s;
  }),
);

console.log(`@devref/io-pgtable bench (node ${process.version}, median of ${REPS} runs)`);
for (const [name, ns, note] of results) {
  console.log(
    `  ${name.padEnd(62)} ${ns.toFixed(2).padStart(8)} ns/page${note ? `   (${note})` : ""}`,
  );
}
console.log(
  `  table bytes for 1 GiB of 4K pages: ${tableBytes} (allocator), ${heldBytes} (table)   (kernel 2109440)`,
);
if (sink === -1) console.log("");
