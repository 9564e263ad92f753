// Unit tests of IovaDomain against the rules of drivers/iommu/iova.c, with exact pfns.
import {
  dmaBitMask,
  IOVA_MAG_SIZE,
  IOVA_MAX_PFN,
  type IovaDevicePolicy,
  IovaDomain,
} from "@devref/dma-iommu";
import { describe, expect, it } from "vitest";
import { expectCode } from "./expect-code.js";

/** The pfn of the last page below 4 GiB with 4 KiB granules. */
const TOP32 = 0xfffff;

function domain(): IovaDomain {
  return new IovaDomain(4096, 1);
}

describe("IovaDomain construction", () => {
  it("derives the 32-bit pfn from the granule", () => {
    expect(new IovaDomain(4096, 1).dma32bitPfn).toBe(0x10_0000);
    expect(new IovaDomain(16384, 1, { pageSize: 16384 }).dma32bitPfn).toBe(0x4_0000);
    expect(new IovaDomain(4096, 1).shift).toBe(12);
  });

  it("rejects granules that are not powers of two or exceed the page size", () => {
    expectCode(() => new IovaDomain(3000, 1), "EINVAL", /power of two/);
    expectCode(() => new IovaDomain(16384, 1), "EINVAL", /no larger than the page size/);
    expectCode(() => new IovaDomain(4096, 1, { pageSize: 8192 }), "EINVAL", /page size/);
  });

  it("rejects start pfn 0, so that 0 always means failure", () => {
    expectCode(() => new IovaDomain(4096, 0), "EINVAL", /≥ 1/);
  });
});

describe("alloc_iova", () => {
  it("allocates top-down below an inclusive limit", () => {
    const d = domain();
    expect(d.allocIova(1, TOP32, true)).toBe(0xfffff);
    expect(d.allocIova(1, TOP32, true)).toBe(0xffffe);
    expect(d.allocIova(2, TOP32, true)).toBe(0xffffc);
    expect(d.allocIova(1, 0x1000, true)).toBe(0x1000);
  });

  it("aligns size-aligned ranges to the next power of two of their size", () => {
    const d = domain();
    d.allocIova(1, TOP32, true); // 0xfffff
    const p = d.allocIova(3, TOP32, true);
    expect(p % 4).toBe(0);
    expect(p).toBe(0xffffc);
    expect(d.findIova(p)).toEqual({
      pfnLo: 0xffffc,
      pfnHi: 0xffffe,
      reserved: false,
      cached: false,
    });
    expect(d.allocIova(8, TOP32, true)).toBe(0xffff0);
    // Without alignment the range ends right below the previous one.
    expect(d.allocIova(3, TOP32, false)).toBe(0xfffed);
  });

  it("never goes below start_pfn and returns 0 when nothing fits", () => {
    const d = new IovaDomain(4096, 0x10);
    expect(d.allocIova(0x10, 0x1f, false)).toBe(0x10);
    expect(d.allocIova(1, 0x1f, false)).toBe(0);
    expect(d.allocIova(1, 0x0f, false)).toBe(0);
  });

  it("works with pfns up to 2^52", () => {
    const d = domain();
    const top = 2 ** 52 - 1;
    expect(d.allocIova(1, top, true)).toBe(top);
    expect(d.allocIova(8, top, true)).toBe(2 ** 52 - 16);
    expect(d.allocIova(3, top, false)).toBe(2 ** 52 - 19);
    expect(d.findIova(2 ** 52 - 10)).toMatchObject({ pfnLo: 2 ** 52 - 16, pfnHi: 2 ** 52 - 9 });
    d.freeIova(2 ** 52 - 12);
    expect(d.findIova(2 ** 52 - 16)).toBeUndefined();
    // The hint moved above the hole, so it is reused first.
    expect(d.allocIova(4, IOVA_MAX_PFN, true)).toBe(2 ** 52 - 8);
    const fresh = domain();
    expect(fresh.allocIova(4, IOVA_MAX_PFN, true)).toBe(2 ** 53 - 8);
  });

  it("moves the search hint above a freed range, so the hole is reused first", () => {
    const d = domain();
    d.allocIova(1, TOP32, true); // 0xfffff
    d.allocIova(1, TOP32, true); // 0xffffe
    d.allocIova(1, TOP32, true); // 0xffffd: the 32-bit hint
    d.freeIova(0xffffe);
    expect(d.allocIova(1, TOP32, true)).toBe(0xffffe);
    expect(d.allocIova(1, TOP32, true)).toBe(0xffffc);
  });

  it("keeps separate hints below and above 4 GiB", () => {
    const d = domain();
    expect(d.allocIova(1, 0x1f_ffff, true)).toBe(0x1f_ffff);
    expect(d.allocIova(1, TOP32, true)).toBe(0xfffff);
    expect(d.allocIova(1, 0x1f_ffff, true)).toBe(0x1f_fffe);
    expect(d.allocIova(1, TOP32, true)).toBe(0xffffe);
  });

  it("retries between the hint and the limit when the walk below the hint fails", () => {
    const d = domain();
    // One range covers [1, 0xfff00] and becomes the 32-bit hint; only space above it is free.
    expect(d.allocIova(0xfff00, 0xfff00, false)).toBe(1);
    expect(d.allocIova(1, TOP32, true)).toBe(0xfffff);
    expect(d.allocIova(0x40, TOP32, true)).toBe(0xfff80);
    // 0x80 pfns aligned to 0x80 fit nowhere in the 254-pfn hole left.
    expect(d.allocIova(0x80, TOP32, true)).toBe(0);
    expect(d.stats().max32AllocSize).toBe(0x80);
  });

  it("fails fast below 4 GiB for sizes at least max32_alloc_size, until a free there", () => {
    const d = domain();
    // Leave a hole of exactly 2 pfns at [0xffffe, 0xfffff].
    expect(d.allocIova(0xffffd, 0xffffd, false)).toBe(1);
    expect(d.allocIova(4, TOP32, true)).toBe(0);
    expect(d.stats().max32AllocSize).toBe(4);
    expect(d.allocIova(8, TOP32, true)).toBe(0); // fast failure, no search
    expect(d.allocIova(2, TOP32, true)).toBe(0xffffe); // smaller sizes still search
    expect(d.allocIova(4, 0x1f_ffff, true)).toBe(0x1f_fffc); // above 4 GiB is unaffected
    d.freeIova(0x1f_fffc); // a free above 4 GiB does not reset it
    expect(d.stats().max32AllocSize).toBe(4);
    d.freeIova(0x10); // a free below 4 GiB does
    expect(d.stats().max32AllocSize).toBe(0x10_0000);
    expect(d.allocIova(4, TOP32, true)).toBe(0xffff8);
  });
});

describe("reserve_iova and find_iova", () => {
  it("covers overlapping reservations without overlap, widening ranges as the kernel does", () => {
    const d = domain();
    expect(d.reserveIova(0x100, 0x1ff)).toMatchObject({ pfnLo: 0x100, pfnHi: 0x1ff });
    // Overlaps the top of the first: the rest is added as a new range.
    expect(d.reserveIova(0x180, 0x27f)).toMatchObject({ pfnLo: 0x200, pfnHi: 0x27f });
    // Overlaps the bottom of the first: it is widened downwards.
    expect(d.reserveIova(0x50, 0x120)).toMatchObject({ pfnLo: 0x50, pfnHi: 0x1ff });
    // Inside an existing range: nothing new.
    expect(d.reserveIova(0x150, 0x160)).toMatchObject({ pfnLo: 0x50, pfnHi: 0x1ff });
    expect(d.ranges().map((r) => [r.pfnLo, r.pfnHi])).toEqual([
      [0x50, 0x1ff],
      [0x200, 0x27f],
    ]);
    expect(d.stats().pfns).toBe(0x27f - 0x50 + 1);
  });

  it("bridges several ranges, filling the gaps between them", () => {
    const d = domain();
    d.reserveIova(0x10, 0x1f);
    d.reserveIova(0x30, 0x3f);
    expect(d.reserveIova(0x18, 0x48)).toMatchObject({ pfnLo: 0x40, pfnHi: 0x48 });
    expect(d.ranges().map((r) => [r.pfnLo, r.pfnHi])).toEqual([
      [0x10, 0x1f],
      [0x20, 0x3f],
      [0x40, 0x48],
    ]);
  });

  it("never hands out reserved pfns; searches are first-fit from the hint", () => {
    const d = domain();
    d.reserveIova(0x50, 0x27f);
    expect(d.allocIova(1, 0x27f, true)).toBe(0x4f);
    // The walk starts at the last allocation (0x4f), not at the limit.
    expect(d.allocIova(0x10, 0x2ff, true)).toBe(0x30);
    // Below the hint nothing fits; the retry above it meets the reservation.
    expect(d.allocIova(0x100, 0x2ff, true)).toBe(0);
    expect(d.allocIova(0x80, 0x2ff, true)).toBe(0x280);
  });

  it("marks allocated ranges it overlaps as reserved", () => {
    const d = domain();
    const p = d.allocIova(4, 0x103, true);
    expect(p).toBe(0x100);
    d.reserveIova(0xf0, 0x101);
    expect(d.findIova(0x100)).toEqual({ pfnLo: 0xf0, pfnHi: 0x103, reserved: true, cached: false });
    expectCode(() => d.freeIova(p), "EINVAL", /reserved/);
  });

  it("rejects nonsensical ranges", () => {
    const d = domain();
    expectCode(() => d.reserveIova(5, 4), "EINVAL");
    expectCode(() => d.reserveIova(0, IOVA_MAX_PFN + 1), "EINVAL");
    expect(d.stats().ranges).toBe(0);
  });

  it("finds the range containing a pfn", () => {
    const d = domain();
    d.allocIova(8, 0xff, true);
    expect(d.findIova(0xf8)).toMatchObject({ pfnLo: 0xf8, pfnHi: 0xff });
    expect(d.findIova(0xfd)).toMatchObject({ pfnLo: 0xf8, pfnHi: 0xff });
    expect(d.findIova(0xf7)).toBeUndefined();
    expect(d.findIova(-1)).toBeUndefined();
  });
});

describe("free_iova errors", () => {
  it("rejects a pfn that was never allocated, changing nothing", () => {
    const d = domain();
    d.allocIova(4, TOP32, true);
    const before = d.ranges();
    expectCode(() => d.freeIova(0x1234), "EINVAL", /never allocated, or it was already freed/);
    expect(d.ranges()).toEqual(before);
  });

  it("rejects a double free, through either path", () => {
    const d = domain();
    const p = d.allocIova(4, TOP32, true);
    d.freeIova(p);
    expectCode(() => d.freeIova(p), "EINVAL");
    const q = d.allocIovaFast(4, TOP32, true);
    d.freeIovaFast(q, 4);
    expectCode(() => d.freeIovaFast(q, 4), "EINVAL", /already freed/);
    expectCode(() => d.freeIova(q), "EINVAL", /range cache/);
    expect(d.stats()).toMatchObject({ ranges: 1, cachedRanges: 1 });
  });

  it("frees the whole range given any pfn inside it (free_iova)", () => {
    const d = domain();
    const p = d.allocIova(8, TOP32, true);
    d.freeIova(p + 5);
    expect(d.stats().ranges).toBe(0);
  });

  it("requires the start pfn and a matching size on the fast path", () => {
    const d = domain();
    const p = d.allocIovaFast(3, TOP32, true); // rounded to 4
    expectCode(() => d.freeIovaFast(p + 1, 4), "EINVAL", /start pfn/);
    expectCode(() => d.freeIovaFast(p, 8), "EINVAL", /size/);
    d.freeIovaFast(p, 3); // the size asked for is fine
    expect(d.stats().cachedRanges).toBe(1);
  });
});

describe("range caches", () => {
  it("rounds cacheable sizes up to a power of two and reuses freed ranges", () => {
    const d = domain();
    const p = d.allocIovaFast(3, TOP32, true);
    expect(d.findIova(p)).toMatchObject({ pfnLo: p, pfnHi: p + 3 });
    d.freeIovaFast(p, 3);
    expect(d.findIova(p)).toMatchObject({ cached: true });
    expect(d.stats()).toMatchObject({ ranges: 1, cachedRanges: 1 });
    expect(d.allocIovaFast(4, TOP32, true)).toBe(p);
    expect(d.stats()).toMatchObject({ ranges: 1, cachedRanges: 0 });
  });

  it("does not round or cache sizes above 32 granules", () => {
    const d = domain();
    const p = d.allocIovaFast(33, TOP32, true);
    expect(d.findIova(p)).toMatchObject({ pfnLo: p, pfnHi: p + 32 });
    expect(p % 64).toBe(0); // still size-aligned
    d.freeIovaFast(p, 33);
    expect(d.stats()).toMatchObject({ ranges: 0, cachedRanges: 0 });
    const q = d.allocIovaFast(32, TOP32, true);
    d.freeIovaFast(q, 32);
    expect(d.stats().cachedRanges).toBe(1);
  });

  it("uses a cached range only if it ends at or below the limit", () => {
    const d = domain();
    const high = d.allocIovaFast(4, TOP32, true); // 0xffffc
    d.freeIovaFast(high, 4);
    const low = d.allocIovaFast(4, 0x7_ffff, true);
    expect(low).toBe(0x7_fffc);
    expect(d.findIova(high)).toMatchObject({ cached: true });
    // An exact fit at the limit is fine.
    expect(d.allocIovaFast(4, high + 3, true)).toBe(high);
  });

  it("pops the newest fitting entry (LIFO)", () => {
    const d = domain();
    const a = d.allocIovaFast(1, TOP32, true);
    const b = d.allocIovaFast(1, TOP32, true);
    const c = d.allocIovaFast(1, TOP32, true);
    d.freeIovaFast(a, 1);
    d.freeIovaFast(c, 1);
    d.freeIovaFast(b, 1);
    expect(d.allocIovaFast(1, TOP32, true)).toBe(b);
    expect(d.allocIovaFast(1, TOP32, true)).toBe(c);
    expect(d.allocIovaFast(1, TOP32, true)).toBe(a);
  });

  it("moves full magazines to the depot, and the depot back to the CPU", () => {
    const d = domain();
    const n = 2 * IOVA_MAG_SIZE + 1;
    const pfns: number[] = [];
    for (let i = 0; i < n; i++) pfns.push(d.allocIovaFast(1, TOP32, true));
    for (const p of pfns) d.freeIovaFast(p, 1);
    // loaded and prev hold 127 each; the first full magazine went to the depot.
    expect(d.stats()).toMatchObject({ cachedRanges: n, depotMagazines: 1 });
    for (let i = 0; i < n; i++) expect(d.allocIovaFast(1, TOP32, true)).not.toBe(0);
    expect(d.stats()).toMatchObject({ cachedRanges: 0, depotMagazines: 0, ranges: n });
  });

  it("trims the depot by one magazine per call while it holds more than one", () => {
    const d = domain();
    const n = 3 * IOVA_MAG_SIZE + 1; // loaded 1 + prev 127 full … two full ones in the depot
    const pfns: number[] = [];
    for (let i = 0; i < n; i++) pfns.push(d.allocIovaFast(1, TOP32, true));
    for (const p of pfns) d.freeIovaFast(p, 1);
    expect(d.stats().depotMagazines).toBe(2);
    expect(d.trimDepot()).toBe(1);
    expect(d.stats()).toMatchObject({
      depotMagazines: 1,
      cachedRanges: n - IOVA_MAG_SIZE,
      ranges: n - IOVA_MAG_SIZE,
    });
    expect(d.trimDepot()).toBe(0); // one magazine per CPU stays
  });

  it("flushes the caches and retries once when the tree is full (flush_rcache)", () => {
    const d = domain();
    // The space below 0x10 is pfns 1 … 16: fill it with single pages and cache them all.
    const pfns: number[] = [];
    for (let i = 0; i < 16; i++) pfns.push(d.allocIovaFast(1, 16, true));
    expect(pfns[15]).toBe(1);
    for (const p of pfns) d.freeIovaFast(p, 1);
    expect(d.allocIovaFast(8, 16, false)).toBe(0);
    expect(d.stats().cachedRanges).toBe(16);
    expect(d.allocIovaFast(8, 16, true)).toBe(8);
    expect(d.stats()).toMatchObject({ cachedRanges: 0, ranges: 1 });
  });

  it("flushRcaches returns every cached range to the tree", () => {
    const d = domain();
    for (let size = 1; size <= 32; size *= 2)
      d.freeIovaFast(d.allocIovaFast(size, TOP32, true), size);
    expect(d.stats().cachedRanges).toBe(6);
    expect(d.flushRcaches()).toBe(6);
    expect(d.stats()).toMatchObject({ cachedRanges: 0, ranges: 0, pfns: 0 });
  });
});

describe("allocForDevice (iommu_dma_alloc_iova)", () => {
  const mask36 = dmaBitMask(36);

  it("rounds the size to the granule and allocates top-down under the mask", () => {
    const d = domain();
    expect(d.allocForDevice(100, mask36)).toBe(0xf_ffff_f000);
    expect(d.allocForDevice(8192, mask36)).toBe(0xf_ffff_c000); // 2 granules, 2-aligned
    expect(d.allocForDevice(4096, dmaBitMask(32))).toBe(0xffff_f000);
  });

  it("platform devices never try 32 bits first", () => {
    const d = domain();
    const policy: IovaDevicePolicy = {};
    // A 64-bit mask saturates at 2^53 − 1: the top granule below it.
    expect(d.allocForDevice(4096, dmaBitMask(64), policy)).toBe(2 ** 53 - 4096);
  });

  it("PCI devices try below 4 GiB first and keep doing so while it works", () => {
    const log: string[] = [];
    const d = new IovaDomain(4096, 1, { log: (m) => log.push(m) });
    const pci: IovaDevicePolicy = { prefer32: true, device: "0000:01:00.0" };
    expect(d.allocForDevice(4096, mask36, pci)).toBe(0xffff_f000);
    expect(d.allocForDevice(4096, mask36, pci)).toBe(0xffff_e000);
    expect(pci.prefer32).toBe(true);
    expect(log).toEqual([]);
  });

  it("clears prefer32 and logs the width once the 32-bit space is full", () => {
    const log: string[] = [];
    const d = new IovaDomain(4096, 1, { log: (m) => log.push(m) });
    d.reserveIova(1, TOP32);
    const pci: IovaDevicePolicy = { prefer32: true, device: "0000:01:00.0" };
    expect(d.allocForDevice(4096, mask36, pci)).toBe(0xf_ffff_f000);
    expect(pci.prefer32).toBe(false);
    expect(log).toEqual(["0000:01:00.0: Using 36-bit DMA addresses"]);
    expect(d.allocForDevice(4096, mask36, pci)).toBe(0xf_ffff_e000);
    expect(log).toHaveLength(1);
  });

  it("does not try 32 bits first when the mask is 32 bits anyway", () => {
    const log: string[] = [];
    const d = new IovaDomain(4096, 1, { log: (m) => log.push(m) });
    const pci: IovaDevicePolicy = { prefer32: true };
    d.reserveIova(1, TOP32);
    expectCode(() => d.allocForDevice(4096, dmaBitMask(32), pci), "ENOMEM");
    expect(pci.prefer32).toBe(true);
    expect(log).toEqual([]);
  });

  it("applies the bus limit (min_not_zero) and the aperture", () => {
    const d = domain();
    expect(d.allocForDevice(4096, mask36, { busDmaLimit: 0x7fff_ffff })).toBe(0x7fff_f000);
    expect(d.allocForDevice(4096, mask36, { busDmaLimit: 0 })).toBe(0xf_ffff_f000);
    expect(d.allocForDevice(4096, mask36, { apertureEnd: 0x3fff_ffff })).toBe(0x3fff_f000);
  });

  it("reports exhaustion as ENOMEM naming the request and the domain", () => {
    const d = new IovaDomain(4096, 0x100);
    const err = expectCode(
      () => d.allocForDevice(0x20_0000, 0x2fe_fff, { device: "nvme0" }),
      "ENOMEM",
      /nvme0: no free IOVA range of 512 granule\(s\).*at or below 0x0002fefff/,
    );
    expect(err.details).toMatchObject({ granules: 512, startPfn: 0x100 });
    expect(d.tryAllocForDevice(0x20_0000, 0x2fe_fff)).toBe(0);
    // The failure lowered max32_alloc_size to 512: below 4 GiB, the same size now fails fast
    // even under a higher limit where it would fit — as in the kernel.
    expect(d.tryAllocForDevice(0x20_0000, 0x2ff_fff)).toBe(0);
    expect(new IovaDomain(4096, 0x100).allocForDevice(0x20_0000, 0x3ff_fff)).toBe(0x20_0000);
    expect(d.stats().ranges).toBe(0);
  });

  it("rejects malformed sizes and limits", () => {
    const d = domain();
    expectCode(() => d.allocForDevice(0, mask36), "EINVAL");
    expectCode(() => d.allocForDevice(1.5, mask36), "EINVAL");
    expectCode(() => d.allocForDevice(4096, 0), "EINVAL");
    expectCode(() => d.allocIova(1, -1, true), "EINVAL");
    expectCode(() => d.allocIovaFast(0, TOP32, true), "EINVAL");
  });
});
