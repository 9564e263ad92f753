// Unit tests of SwiotlbPool against kernel/dma/swiotlb.c: slot placement, alignment and the
// copy rules, with exact addresses.
import {
  DMA_ATTR_MMIO,
  DMA_ATTR_NO_WARN,
  DMA_ATTR_SKIP_CPU_SYNC,
  DMA_BIDIRECTIONAL,
  DMA_FROM_DEVICE,
  DMA_NONE,
  DMA_TO_DEVICE,
  type DmaDirection,
  IO_TLB_SEGSIZE,
  IO_TLB_SIZE,
  SwiotlbPool,
} from "@devref/dma-iommu";
import { type PhysAddr, physAddr, SparseMemory } from "@devref/raw-device";
import { describe, expect, it } from "vitest";
import { expectCode } from "./expect-code.js";

const BASE = 0x8000_0000;
/** Original buffers live above 4 GiB, where a 32-bit device cannot reach them. */
const HIGH = 0x1_2345_6000;

function setup(nslabs = 256, warn?: (m: string) => void) {
  const mem = new SparseMemory();
  const pool = new SwiotlbPool(mem, { base: BASE, nslabs, ...(warn ? { warn } : {}) });
  return { mem, pool };
}

function fill(mem: SparseMemory, pa: number, n: number, seed: number): Uint8Array {
  const bytes = new Uint8Array(n);
  for (let i = 0; i < n; i++) bytes[i] = (seed + i * 7) & 0xff;
  mem.writeBytes(pa, bytes);
  return bytes;
}

function read(mem: SparseMemory, pa: number, n: number): Uint8Array {
  const out = new Uint8Array(n);
  mem.readBytes(pa, out);
  return out;
}

describe("SwiotlbPool construction", () => {
  it("rejects pools the kernel would not build", () => {
    const mem = new SparseMemory();
    expectCode(() => new SwiotlbPool(mem, { base: BASE + 2048, nslabs: 128 }), "EINVAL", /page/);
    expectCode(() => new SwiotlbPool(mem, { base: BASE, nslabs: 100 }), "EINVAL", /multiple/);
    expectCode(
      () => new SwiotlbPool(new SparseMemory(0x10_0000), { base: 0, nslabs: 1024 }),
      "EFAULT",
    );
  });

  it("zeroes the pool and starts with every slot free", () => {
    const mem = new SparseMemory();
    mem.write32(BASE + 100, 0xdeadbeef);
    const pool = new SwiotlbPool(mem, { base: BASE, nslabs: 128 });
    expect(mem.read32(BASE + 100)).toBe(0);
    expect(pool.stats()).toEqual({ totalSlots: 128, usedSlots: 0, highWater: 0, mappings: 0 });
  });
});

describe("slot placement", () => {
  it("hands out slots from a rotating cursor", () => {
    const { pool } = setup();
    const a = pool.map(physAddr(HIGH), 100, DMA_TO_DEVICE);
    const b = pool.map(physAddr(HIGH + 0x1000), 3000, DMA_TO_DEVICE);
    expect(a).toBe(BASE);
    expect(b).toBe(BASE + IO_TLB_SIZE);
    pool.unmap(a, 100, DMA_TO_DEVICE);
    // The cursor moved on: the freed slot 0 is not the next one used.
    expect(pool.map(physAddr(HIGH + 0x2000), 10, DMA_TO_DEVICE)).toBe(BASE + 3 * IO_TLB_SIZE);
    expect(pool.stats()).toMatchObject({ usedSlots: 3, mappings: 2, highWater: 3 });
  });

  it("keeps a mapping inside one 128-slot segment", () => {
    const { pool } = setup();
    pool.map(physAddr(HIGH), 100 * IO_TLB_SIZE, DMA_TO_DEVICE); // slots 0 … 99
    // 40 slots do not fit in the 28 left in segment 0: the run starts at segment 1.
    const b = pool.map(physAddr(HIGH + 0x40_0000), 40 * IO_TLB_SIZE, DMA_TO_DEVICE);
    expect(b).toBe(BASE + IO_TLB_SEGSIZE * IO_TLB_SIZE);
    // The search goes on from the cursor, not from the lowest free slot.
    const c = pool.map(physAddr(HIGH + 0x80_0000), 28 * IO_TLB_SIZE, DMA_TO_DEVICE);
    expect(c).toBe(BASE + 168 * IO_TLB_SIZE);
  });

  it("respects the device's segment boundary mask", () => {
    const { pool } = setup();
    pool.map(physAddr(HIGH), 30 * IO_TLB_SIZE, DMA_TO_DEVICE); // slots 0 … 29, cursor 30
    const boundary = { segmentBoundaryMask: 0xffff }; // 64 KiB = 32 slots
    const b = pool.map(physAddr(HIGH + 0x10_0000), 8192, DMA_TO_DEVICE, 0, boundary);
    expect(b).toBe(BASE + 32 * IO_TLB_SIZE); // slots 30 … 33 would cross 64 KiB
    const { pool: free } = setup();
    free.map(physAddr(HIGH), 30 * IO_TLB_SIZE, DMA_TO_DEVICE);
    expect(free.map(physAddr(HIGH + 0x10_0000), 8192, DMA_TO_DEVICE)).toBe(BASE + 30 * IO_TLB_SIZE);
  });

  it("page-aligns mappings of a page or more when no alignment is asked", () => {
    const { pool } = setup();
    pool.map(physAddr(HIGH), 10, DMA_TO_DEVICE); // slot 0, cursor 1
    expect(pool.map(physAddr(HIGH + 0x1000), 4096, DMA_TO_DEVICE)).toBe(BASE + 2 * IO_TLB_SIZE);
    expect(pool.map(physAddr(HIGH + 0x3000), 10, DMA_TO_DEVICE)).toBe(BASE + 4 * IO_TLB_SIZE);
    // Below a page, or with a min_align_mask, no page alignment is added.
    expect(pool.map(physAddr(HIGH + 0x5000), 4095, DMA_TO_DEVICE)).toBe(BASE + 5 * IO_TLB_SIZE);
    const withMin = pool.map(physAddr(HIGH + 0x7000), 4096, DMA_TO_DEVICE, 0, {
      minAlignMask: 0x7ff,
    });
    expect(withMin).toBe(BASE + 7 * IO_TLB_SIZE);
  });

  it("keeps the low bits under min_align_mask (NVMe: 4 KiB − 1)", () => {
    const { mem, pool } = setup();
    const orig = HIGH + 0xa80;
    const data = fill(mem, orig, 0x1000, 3);
    const b = pool.map(physAddr(orig), 0x1000, DMA_TO_DEVICE, 0, { minAlignMask: 0xfff });
    expect(b & 0xfff).toBe(orig & 0xfff);
    // Slot 0 has bit 11 clear; the original has it set, so the run starts at slot 1.
    expect(b).toBe(BASE + IO_TLB_SIZE + 0x280);
    expect(read(mem, b, 0x1000)).toEqual(data);
    // 0x280 bytes of offset and 0x1000 of data need 3 slots.
    expect(pool.stats().usedSlots).toBe(3);
    pool.unmap(b, 0x1000, DMA_TO_DEVICE);
    expect(pool.stats().usedSlots).toBe(0);
  });

  it("adds padding slots when the kept bits exceed a slot under an allocation alignment", () => {
    const { pool } = setup();
    const orig = HIGH + 0xa80;
    const b = pool.map(physAddr(orig), 0x100, DMA_TO_DEVICE, 0, {
      minAlignMask: 0xfff,
      allocAlignMask: 0xfff,
    });
    expect(b).toBe(BASE + 0xa80); // one padding slot, then 0x280 into slot 1
    expect(pool.stats().usedSlots).toBe(2);
    expect(pool.mappings()).toEqual([
      { bounce: b, orig, size: 0x100, dir: DMA_TO_DEVICE, slots: 2 },
    ]);
    pool.unmap(b, 0x100, DMA_TO_DEVICE);
    expect(pool.stats().usedSlots).toBe(0);
  });

  it("aligns the allocation to alloc_align_mask", () => {
    const { pool } = setup();
    pool.map(physAddr(HIGH), 10, DMA_TO_DEVICE);
    const b = pool.map(physAddr(HIGH + 0x1000), 100, DMA_TO_DEVICE, 0, { allocAlignMask: 0x3fff });
    expect(b).toBe(BASE + 0x4000);
    expect(pool.stats().usedSlots).toBe(1 + 8); // the size is rounded up to the alignment
  });

  it("computes swiotlb_max_mapping_size", () => {
    const { pool } = setup();
    expect(pool.maxMappingSize()).toBe(256 * 1024);
    expect(pool.maxMappingSize(0xfff)).toBe(256 * 1024 - 4096);
    expect(pool.maxMappingSize(0x3)).toBe(256 * 1024 - 2048);
  });
});

describe("copy rules", () => {
  const cases: [string, DmaDirection][] = [
    ["DMA_TO_DEVICE", DMA_TO_DEVICE],
    ["DMA_FROM_DEVICE", DMA_FROM_DEVICE],
    ["DMA_BIDIRECTIONAL", DMA_BIDIRECTIONAL],
  ];

  it.each(cases)("map copies original → bounce for %s", (_name, dir) => {
    const { mem, pool } = setup();
    const data = fill(mem, HIGH + 5, 5000, 11);
    const b = pool.map(physAddr(HIGH + 5), 5000, dir);
    expect(read(mem, b, 5000)).toEqual(data);
  });

  it.each(cases)("unmap copies back only for FROM_DEVICE and BIDIRECTIONAL (%s)", (_name, dir) => {
    const { mem, pool } = setup();
    const before = fill(mem, HIGH, 3000, 1);
    const b = pool.map(physAddr(HIGH), 3000, dir);
    const fromDevice = fill(mem, b, 3000, 99);
    pool.unmap(b, 3000, dir);
    const expected = dir === DMA_TO_DEVICE ? before : fromDevice;
    expect(read(mem, HIGH, 3000)).toEqual(expected);
  });

  it("unmap with DMA_ATTR_SKIP_CPU_SYNC does not copy back", () => {
    const { mem, pool } = setup();
    const before = fill(mem, HIGH, 3000, 1);
    const b = pool.map(physAddr(HIGH), 3000, DMA_FROM_DEVICE, DMA_ATTR_SKIP_CPU_SYNC);
    // The map copy is unconditional, even with SKIP_CPU_SYNC.
    expect(read(mem, b, 3000)).toEqual(before);
    fill(mem, b, 3000, 99);
    pool.unmap(b, 3000, DMA_FROM_DEVICE, DMA_ATTR_SKIP_CPU_SYNC);
    expect(read(mem, HIGH, 3000)).toEqual(before);
  });

  it.each(cases)(
    "sync_for_cpu copies bounce → original only when the device writes (%s)",
    (_n, dir) => {
      const { mem, pool } = setup();
      const before = fill(mem, HIGH, 3000, 1);
      const b = pool.map(physAddr(HIGH), 3000, dir);
      const fromDevice = fill(mem, b, 3000, 50);
      pool.syncForCpu(b, 3000, dir);
      expect(read(mem, HIGH, 3000)).toEqual(dir === DMA_TO_DEVICE ? before : fromDevice);
    },
  );

  it.each(cases)(
    "sync_for_device copies original → bounce only when the device reads (%s)",
    (_n, dir) => {
      const { mem, pool } = setup();
      fill(mem, HIGH, 3000, 1);
      const b = pool.map(physAddr(HIGH), 3000, dir);
      const devView = fill(mem, b, 3000, 60);
      const cpuData = fill(mem, HIGH, 3000, 70);
      pool.syncForDevice(b, 3000, dir);
      expect(read(mem, b, 3000)).toEqual(dir === DMA_FROM_DEVICE ? devView : cpuData);
    },
  );

  it("syncs a sub-range at the matching offset of the original", () => {
    const { mem, pool } = setup();
    fill(mem, HIGH, 6000, 1);
    const b = pool.map(physAddr(HIGH), 6000, DMA_BIDIRECTIONAL);
    const part = fill(mem, b + 2500, 1000, 200);
    pool.syncForCpu(physAddr(b + 2500), 1000, DMA_BIDIRECTIONAL);
    expect(read(mem, HIGH + 2500, 1000)).toEqual(part);
    expect(read(mem, HIGH + 2499, 1)[0]).toBe((1 + 2499 * 7) & 0xff);
    expectCode(
      () => pool.syncForCpu(physAddr(b + 5500), 1000, DMA_BIDIRECTIONAL),
      "EINVAL",
      /do not fit/,
    );
  });

  it("leaves the neighbours of a mapping alone", () => {
    const { mem, pool } = setup();
    fill(mem, HIGH, 0x3000, 1);
    const a = pool.map(physAddr(HIGH + 0x100), 100, DMA_FROM_DEVICE);
    const b = pool.map(physAddr(HIGH + 0x200), 100, DMA_FROM_DEVICE);
    fill(mem, a, 100, 7);
    const fromB = fill(mem, b, 100, 9);
    pool.unmap(b, 100, DMA_FROM_DEVICE);
    expect(read(mem, HIGH + 0x200, 100)).toEqual(fromB);
    expect(read(mem, HIGH + 0x100, 1)[0]).toBe((1 + 0x100 * 7) & 0xff);
  });
});

describe("errors", () => {
  it("reports a full pool with its state, the device and its mask", () => {
    const warnings: string[] = [];
    const { pool } = setup(128, (m) => warnings.push(m));
    const big = pool.map(physAddr(HIGH), 256 * 1024, DMA_TO_DEVICE);
    const err = expectCode(
      () =>
        pool.map(physAddr(HIGH + 0x10_0000), 100, DMA_TO_DEVICE, 0, {
          device: "0000:02:00.0",
          dmaMask: 0xffff_ffff,
        }),
      "ENOMEM",
      /0000:02:00\.0 \(DMA mask 0xffffffff\): swiotlb buffer is full.*128 slots, 128 used by 1 mapping/,
    );
    expect(err.details).toMatchObject({ size: 100, totalSlots: 128, usedSlots: 128 });
    expect(warnings).toEqual([
      "0000:02:00.0: swiotlb buffer is full (sz: 100 bytes), total 128 (slots), used 128 (slots)",
    ]);
    expectCode(() => pool.map(physAddr(HIGH), 100, DMA_TO_DEVICE, DMA_ATTR_NO_WARN), "ENOMEM");
    expect(warnings).toHaveLength(1);
    expect(pool.stats()).toMatchObject({ usedSlots: 128, mappings: 1 });
    pool.unmap(big, 256 * 1024, DMA_TO_DEVICE);
    expect(pool.map(physAddr(HIGH), 100, DMA_TO_DEVICE)).toBe(BASE);
  });

  it("rejects mappings larger than a segment", () => {
    const { pool } = setup();
    expectCode(() => pool.map(physAddr(HIGH), 256 * 1024 + 1, DMA_TO_DEVICE), "EINVAL", /split/);
    expectCode(
      () => pool.map(physAddr(HIGH + 1), 256 * 1024, DMA_TO_DEVICE, 0, { minAlignMask: 0xfff }),
      "EINVAL",
      /largest is 258048 bytes/,
    );
  });

  it("rejects bad directions, attributes and masks", () => {
    const { pool } = setup();
    expectCode(() => pool.map(physAddr(HIGH), 10, DMA_NONE), "EINVAL", /DMA_NONE/);
    expectCode(() => pool.map(physAddr(HIGH), 10, DMA_TO_DEVICE, DMA_ATTR_MMIO), "EINVAL", /MMIO/);
    expectCode(() => pool.map(physAddr(HIGH), 10, DMA_TO_DEVICE, 1 << 20), "EINVAL");
    expectCode(
      () => pool.map(physAddr(HIGH), 10, DMA_TO_DEVICE, 0, { minAlignMask: 0x1000 }),
      "EINVAL",
      /2\^k − 1/,
    );
    expectCode(() => pool.map(physAddr(HIGH), 0, DMA_TO_DEVICE), "EINVAL");
    expect(pool.stats().usedSlots).toBe(0);
  });

  it("rejects unmap and sync of unknown addresses, changing nothing", () => {
    const { mem, pool } = setup();
    fill(mem, HIGH, 200, 1);
    const b = pool.map(physAddr(HIGH), 200, DMA_FROM_DEVICE);
    const state = () => [pool.stats(), pool.mappings()];
    const before = state();
    const outside: PhysAddr = physAddr(0x1000);
    expectCode(() => pool.unmap(outside, 200, DMA_FROM_DEVICE), "EINVAL", /not a bounce address/);
    const freeSlot = physAddr(BASE + 10 * IO_TLB_SIZE);
    expectCode(() => pool.unmap(freeSlot, 200, DMA_FROM_DEVICE), "EINVAL", /no live mapping/);
    expectCode(() => pool.unmap(physAddr(b + 4), 196, DMA_FROM_DEVICE), "EINVAL", /not its start/);
    expectCode(() => pool.unmap(b, 100, DMA_FROM_DEVICE), "EINVAL", /has size 200/);
    expectCode(() => pool.unmap(b, 200, DMA_TO_DEVICE), "EINVAL", /was mapped DMA_FROM_DEVICE/);
    expectCode(() => pool.syncForCpu(freeSlot, 4, DMA_FROM_DEVICE), "EINVAL");
    expectCode(() => pool.syncForDevice(b, 200, DMA_BIDIRECTIONAL), "EINVAL", /was mapped/);
    expect(state()).toEqual(before);
    pool.unmap(b, 200, DMA_FROM_DEVICE);
    expectCode(() => pool.unmap(b, 200, DMA_FROM_DEVICE), "EINVAL", /already unmapped/);
    expect(pool.stats()).toMatchObject({ usedSlots: 0, mappings: 0 });
  });

  it("rejects buffers outside memory", () => {
    const mem = new SparseMemory(0x1_0000_0000);
    const pool = new SwiotlbPool(mem, { base: BASE, nslabs: 128 });
    expectCode(() => pool.map(physAddr(0xffff_ff00), 0x200, DMA_TO_DEVICE), "EFAULT");
  });
});

describe("audit", () => {
  it("lists outstanding mappings with their original addresses", () => {
    const { pool } = setup();
    const a = pool.map(physAddr(HIGH), 100, DMA_TO_DEVICE);
    const b = pool.map(physAddr(HIGH + 0x9000), 5000, DMA_BIDIRECTIONAL);
    expect(pool.isBounceAddress(a)).toBe(true);
    expect(pool.isBounceAddress(physAddr(HIGH))).toBe(false);
    expect(pool.mappings()).toEqual([
      { bounce: a, orig: HIGH, size: 100, dir: DMA_TO_DEVICE, slots: 1 },
      { bounce: b, orig: HIGH + 0x9000, size: 5000, dir: DMA_BIDIRECTIONAL, slots: 3 },
    ]);
  });
});
