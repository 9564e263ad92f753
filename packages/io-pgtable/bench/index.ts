// pnpm bench: ns per page for the io-pgtable hot paths (ARM LPAE S1, 4K granule, ias = oas = 48,
// coherent walk, tables resident), on the page-view path (SparseMemory) beside a same-run
// baseline: the same operations on the memory-method path (the SparseMemory behind an object
// without pageWords, the path every caller-supplied memory takes). Each row also shows the
// kernel's figure (io-pgtable-arm.c, gcc -O2) as the reference, and the target the project
// set against it (0.8× the C for single pages, 1.5× for batches, at most the C for random
// lookups). Prints figures, asserts nothing.
import {
  BuddyAllocator,
  type Iova,
  type PhysAddr,
  type PhysicalMemory,
  SparseMemory,
} from "@devref/raw-device";
import { type BenchResult, consume, measure, report } from "../../../scripts/bench.js";
import { allocIoPgtable, IOMMU_CACHE, IOMMU_READ, IOMMU_WRITE } from "../src/index.js";

const SZ_4K = 0x1000;
const SZ_2M = 0x20_0000;
const SZ_1G = 0x4000_0000;
const PAGES = SZ_1G / SZ_4K; // 262144
const BLOCKS = (64 * SZ_1G) / SZ_2M; // 32768
const PROT = IOMMU_READ | IOMMU_WRITE | IOMMU_CACHE;
const PA_BASE = 0x10_0000_0000;
const CFG = { pgsizeBitmap: SZ_4K + SZ_2M + SZ_1G, ias: 48, oas: 48 };
// SAFETY: bench addresses are whole numbers well inside ias/oas.
const I = (x: number): Iova => x as Iova;
const P = (x: number): PhysAddr => x as PhysAddr;

/** The same SparseMemory seen through an object without pageWords: the memory-method path. */
class PlainMemory implements PhysicalMemory {
  constructor(readonly inner: SparseMemory) {}
  get size(): number {
    return this.inner.size;
  }
  read8(pa: number): number {
    return this.inner.read8(pa);
  }
  write8(pa: number, v: number): void {
    this.inner.write8(pa, v);
  }
  read32(pa: number): number {
    return this.inner.read32(pa);
  }
  write32(pa: number, v: number): void {
    this.inner.write32(pa, v);
  }
  read64Lo(pa: number): number {
    return this.inner.read64Lo(pa);
  }
  read64Hi(pa: number): number {
    return this.inner.read64Hi(pa);
  }
  write64(pa: number, lo: number, hi: number): void {
    this.inner.write64(pa, lo, hi);
  }
  readBytes(pa: number, dest: Uint8Array): void {
    this.inner.readBytes(pa, dest);
  }
  writeBytes(pa: number, src: Uint8Array): void {
    this.inner.writeBytes(pa, src);
  }
  zero(pa: number, length: number): void {
    this.inner.zero(pa, length);
  }
}

/** A full collection before each run (untimed), so no run pays for an earlier run's garbage. */
const collect = (): void => globalThis.gc?.();

/** Random page offsets in 1 GiB from a fixed-seed xorshift: the same every run. */
const RANDOM = new Float64Array(PAGES);
{
  let x = 0x2545_f491;
  for (let i = 0; i < PAGES; i++) {
    x ^= x << 13;
    x ^= x >>> 17;
    x ^= x << 5;
    RANDOM[i] = ((x >>> 0) % PAGES) * SZ_4K + 8;
  }
}

/** Every hot-path measurement, in ns per page, on one kind of memory. */
interface Figures {
  readonly map1: BenchResult;
  readonly unmap1: BenchResult;
  readonly map512: BenchResult;
  readonly unmap512: BenchResult;
  readonly physRandom: BenchResult;
  readonly physSeq: BenchResult;
  readonly block2M: BenchResult;
  /** Bytes of table memory after mapping 1 GiB of 4K pages. */
  readonly tableBytes: number;
}

/** Every measurement on one kind of memory; `label` names the path in the printed rows. */
function measureAll(label: string, memory: (mem: SparseMemory) => PhysicalMemory): Figures {
  const mem = new SparseMemory();
  const pages = new BuddyAllocator(memory(mem), 0x8000_0000, 1 << 26);
  const t = allocIoPgtable("arm-64-lpae-s1", CFG, pages);
  // Each body maps or unmaps `n` pages of the 1 GiB (n = PAGES: one run is the whole GiB).
  const mapOne = (n: number): void => {
    for (let i = 0; i < n; i++) t.mapPages(I(i * SZ_4K), P(PA_BASE + i * SZ_4K), SZ_4K, 1, PROT);
  };
  const unmapOne = (n: number): void => {
    for (let i = 0; i < n; i++) t.unmapPages(I(i * SZ_4K), SZ_4K, 1);
  };
  const mapBatch = (n: number): void => {
    for (let i = 0; i < n; i += 512)
      t.mapPages(I(i * SZ_4K), P(PA_BASE + i * SZ_4K), SZ_4K, 512, PROT);
  };
  const unmapBatch = (n: number): void => {
    for (let i = 0; i < n; i += 512) t.unmapPages(I(i * SZ_4K), SZ_4K, 512);
  };
  // Whether the 1 GiB is mapped, so each run can start from the state it needs (untimed).
  let mapped = false;
  const mappedBefore = {
    before: (): void => {
      if (!mapped) mapBatch(PAGES);
      mapped = true;
      collect();
    },
  };
  const unmappedBefore = {
    before: (): void => {
      if (mapped) unmapBatch(PAGES);
      mapped = false;
      collect();
    },
  };
  // Populate the tables once; page unmaps leave them installed.
  mapOne(PAGES);
  mapped = true;
  const tableBytes = pages.bytesInUse;
  const map1 = measure(
    label,
    PAGES,
    (n) => {
      mapOne(n);
      mapped = true;
    },
    unmappedBefore,
  );
  const unmap1 = measure(
    label,
    PAGES,
    (n) => {
      unmapOne(n);
      mapped = false;
    },
    mappedBefore,
  );
  const map512 = measure(
    label,
    PAGES,
    (n) => {
      mapBatch(n);
      mapped = true;
    },
    unmappedBefore,
  );
  const unmap512 = measure(
    label,
    PAGES,
    (n) => {
      unmapBatch(n);
      mapped = false;
    },
    mappedBefore,
  );
  const physRandom = measure(
    label,
    PAGES,
    (n) => {
      let s = 0;
      for (let i = 0; i < n; i++) s = (s + (t.iovaToPhys(I(RANDOM[i]!)) >>> 12)) | 0;
      consume(s);
    },
    mappedBefore,
  );
  const physSeq = measure(
    label,
    PAGES,
    (n) => {
      let s = 0;
      for (let i = 0; i < n; i++) s = (s + (t.iovaToPhys(I(i * SZ_4K + 8)) >>> 12)) | 0;
      consume(s);
    },
    mappedBefore,
  );
  t[Symbol.dispose]();

  // 2 MiB blocks over 64 GiB, one per call; every run starts from empty tables.
  const t2 = allocIoPgtable("arm-64-lpae-s1", CFG, pages);
  const block2M = measure(
    label,
    BLOCKS,
    (n) => {
      for (let i = 0; i < n; i++) t2.mapPages(I(i * SZ_2M), P(PA_BASE + i * SZ_2M), SZ_2M, 1, PROT);
    },
    {
      before: (): void => {
        for (let i = 0; i < BLOCKS; i += 512) t2.unmapPages(I(i * SZ_2M), SZ_2M, 512);
        collect();
      },
    },
  );
  t2[Symbol.dispose]();
  return { map1, unmap1, map512, unmap512, physRandom, physSeq, block2M, tableBytes };
}

// The page-view path first, so its code is measured as a SparseMemory-only program runs it.
const view = measureAll("page views (SparseMemory)", (mem) => mem);
const plain = measureAll("memory methods (PlainMemory)", (mem) => new PlainMemory(mem));

// Machine-speed figures from the same run: the cheapest possible write per page.
const f64 = new Float64Array(PAGES);
const fillF64 = measure("Float64Array write", PAGES, (n) => {
  for (let i = 0; i < n; i++) f64[i] = i * SZ_4K;
});
const u32 = new Uint32Array(PAGES * 2);
const fillPairs = measure("Uint32Array descriptor pair write", PAGES, (n) => {
  for (let i = 0; i < n; i++) {
    u32[2 * i] = (i * SZ_4K) | 0xf47;
    u32[2 * i + 1] = 0;
  }
});

/**
 * Each row: title, figure, the kernel's ns per page (io-pgtable-arm.c, gcc -O2, tables
 * resident) and the target in ns per page.
 */
const ROWS: readonly (readonly [string, Exclude<keyof Figures, "tableBytes">, number, number])[] = [
  ["map, 4K, 1 page per call", "map1", 12.8, 10],
  ["unmap, 4K, 1 page per call", "unmap1", 11.2, 9],
  ["map, 4K, 512 pages per call", "map512", 1.05, 1.6],
  ["unmap, 4K, 512 pages per call", "unmap512", 0.69, 1.0],
  ["iovaToPhys, random page of 1 GiB", "physRandom", 26, 26],
  ["iovaToPhys, every page in order", "physSeq", 20.8, 17],
  ["map 2M blocks, 1 per call, 64 GiB", "block2M", 11.5, 14],
];

console.log(
  `@devref/io-pgtable bench (node ${process.version}; ARM LPAE S1 4K, ias = oas = 48, tables resident; ns per page, ns per block for 2M)`,
);
console.log(
  "  baseline: the memory-method path over the same memory, same run; reference: the kernel's C",
);
for (const [title, key, kernel, target] of ROWS) {
  report(
    title,
    view[key],
    plain[key],
    { atMost: target },
    {
      label: "kernel io-pgtable-arm.c, gcc -O2",
      nsPerOp: kernel,
    },
  );
}
const TABLE_BYTES = 2_109_440;
console.log("table memory, 1 GiB of 4K pages (bytes)");
console.log(
  `  page views ${view.tableBytes}, memory methods ${plain.tableBytes}; target = ${TABLE_BYTES}: ${view.tableBytes === TABLE_BYTES && plain.tableBytes === TABLE_BYTES ? "met" : "NOT MET"}`,
);
console.log(
  `machine figures: ${fillF64.name} ${fillF64.nsPerOp.toFixed(2)} ns, ${fillPairs.name} ${fillPairs.nsPerOp.toFixed(2)} ns per page`,
);
