// pnpm bench for @devref/dma-iommu: the IOVA allocator (range cache and tree paths) and the
// swiotlb pool, each beside a baseline from the same run. Prints figures; asserts nothing.
import { DMA_BIDIRECTIONAL, DMA_TO_DEVICE, IovaDomain, SwiotlbPool } from "@devref/dma-iommu";
import { type PhysicalMemory, physAddr, SparseMemory } from "@devref/raw-device";
import { consume, measure, report } from "../../../scripts/bench.js";

const N = 2_000_000;
const TOP32 = 0xfffff;

// IOVA alloc + free served from the range cache, with 256 other ranges live in the tree.
const cached = new IovaDomain(4096, 1);
for (let i = 0; i < 256; i++) cached.allocIovaFast(4, TOP32, true);
cached.freeIovaFast(cached.allocIovaFast(1, TOP32, true), 1);
const viaCache = measure("allocIovaFast + freeIovaFast (cache hit)", N, (n) => {
  let s = 0;
  for (let i = 0; i < n; i++) {
    const pfn = cached.allocIovaFast(1, TOP32, true);
    cached.freeIovaFast(pfn, 1);
    s += pfn;
  }
  consume(s);
});
const stack = new Int32Array(1024);
let top = 0;
stack[top++] = 42;
const freeList = measure("Int32Array free-list pop + push", N, (n) => {
  let s = 0;
  for (let i = 0; i < n; i++) {
    const v = stack[--top]!;
    stack[top++] = v;
    s += v;
  }
  consume(s);
});
report("IOVA alloc + free via the range cache", viaCache, freeList, { atMost: 50 });

// IOVA alloc + free through the tree (alloc_iova / free_iova), 1024 other ranges live.
const tree = new IovaDomain(4096, 1);
for (let i = 0; i < 1024; i++) tree.allocIova(2, TOP32, true);
const viaTree = measure("allocIova + freeIova (skip list)", N / 4, (n) => {
  let s = 0;
  for (let i = 0; i < n; i++) {
    const pfn = tree.allocIova(1, TOP32, true);
    tree.freeIova(pfn);
    s += pfn;
  }
  consume(s);
});
const map = new Map<number, number>();
for (let i = 0; i < 1024; i++) map.set(i * 2, i);
const mapBaseline = measure("Map.set + Map.delete (1024 keys)", N / 4, (n) => {
  let s = 0;
  for (let i = 0; i < n; i++) {
    const key = 5000 + (i & 255);
    map.set(key, i);
    map.delete(key);
    s += key;
  }
  consume(s);
});
report("IOVA alloc + free via the tree", viaTree, mapBaseline);
console.log(`  tree ranges live: ${tree.stats().ranges}`);

// swiotlb: a 2 KiB streaming map + unmap; BIDIRECTIONAL copies in and back out.
const mem = new SparseMemory();
const pool = new SwiotlbPool(mem, { base: 0x8000_0000, nslabs: 32_768 });
const orig = physAddr(0x2_0000_0000);
mem.writeBytes(orig, new Uint8Array(2048).fill(7));
const bidi = measure("SwiotlbPool map + unmap, 2 KiB, BIDIRECTIONAL", N / 4, (n) => {
  let s = 0;
  for (let i = 0; i < n; i++) {
    const b = pool.map(orig, 2048, DMA_BIDIRECTIONAL);
    pool.unmap(b, 2048, DMA_BIDIRECTIONAL);
    s += b;
  }
  consume(s);
});
const toDev = measure("SwiotlbPool map + unmap, 2 KiB, TO_DEVICE", N / 4, (n) => {
  let s = 0;
  for (let i = 0; i < n; i++) {
    const b = pool.map(orig, 2048, DMA_TO_DEVICE);
    pool.unmap(b, 2048, DMA_TO_DEVICE);
    s += b;
  }
  consume(s);
});
// The same through the sparse memory's own copy path, and through a flat memory whose
// readBytes/writeBytes are one typed-array copy each: the difference is the memory's cost,
// not the pool's.
const memCopy = measure("SparseMemory readBytes + writeBytes, 2 KiB", N / 4, (n) => {
  const buf = new Uint8Array(2048);
  for (let i = 0; i < n; i++) {
    mem.readBytes(orig, buf);
    mem.writeBytes(0x8000_0000 + (i & 1023) * 2048, buf);
  }
  consume(buf[0]!);
});

/** Bench-only flat memory: one ArrayBuffer at `base`, copies with one `set` each. */
class FlatMemory implements PhysicalMemory {
  readonly size: number;
  private readonly bytes: Uint8Array;
  private readonly view: DataView;
  constructor(
    private readonly base: number,
    length: number,
  ) {
    this.size = base + length;
    this.bytes = new Uint8Array(length);
    this.view = new DataView(this.bytes.buffer);
  }
  read8(pa: number): number {
    return this.bytes[pa - this.base]!;
  }
  write8(pa: number, value: number): void {
    this.bytes[pa - this.base] = value;
  }
  read32(pa: number): number {
    return this.view.getUint32(pa - this.base, true);
  }
  write32(pa: number, value: number): void {
    this.view.setUint32(pa - this.base, value, true);
  }
  read64Lo(pa: number): number {
    return this.read32(pa);
  }
  read64Hi(pa: number): number {
    return this.read32(pa + 4);
  }
  write64(pa: number, lo: number, hi: number): void {
    this.write32(pa, lo);
    this.write32(pa + 4, hi);
  }
  readBytes(pa: number, dest: Uint8Array): void {
    const at = pa - this.base;
    dest.set(this.bytes.subarray(at, at + dest.length));
  }
  writeBytes(pa: number, src: Uint8Array): void {
    this.bytes.set(src, pa - this.base);
  }
  zero(pa: number, length: number): void {
    this.bytes.fill(0, pa - this.base, pa - this.base + length);
  }
}
const flat = new FlatMemory(0x8000_0000, 0x800_0000);
const flatPool = new SwiotlbPool(flat, { base: 0x8000_0000, nslabs: 32_768 });
const flatOrig = physAddr(0x8000_0000 + 0x400_0000);
const bidiFlat = measure("SwiotlbPool map + unmap, 2 KiB, BIDI, flat memory", N / 4, (n) => {
  let s = 0;
  for (let i = 0; i < n; i++) {
    const b = flatPool.map(flatOrig, 2048, DMA_BIDIRECTIONAL);
    flatPool.unmap(b, 2048, DMA_BIDIRECTIONAL);
    s += b;
  }
  consume(s);
});

const src = new Uint8Array(2048).fill(3);
const dst = new Uint8Array(2048);
const copy = measure("Uint8Array.set, 2 KiB", N / 4, (n) => {
  let s = 0;
  for (let i = 0; i < n; i++) {
    src[0] = i;
    dst.set(src);
    s += dst[0]!;
  }
  consume(s);
});
report("swiotlb 2 KiB map + unmap (copies both ways)", bidi, copy, { atMost: 500 });
report("swiotlb 2 KiB map + unmap (copy in only)", toDev, copy, { atMost: 500 });
report("  … of which the memory's copy path (one copy)", memCopy, copy);
report("swiotlb 2 KiB map + unmap over a flat memory", bidiFlat, copy, { atMost: 500 });
console.log(`  pool slots used after the run: ${pool.stats().usedSlots}`);
