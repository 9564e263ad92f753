import { BuddyAllocator, DevrefError, PHYS_ADDR_LIMIT, SparseMemory } from "@devref/raw-device";
import fc from "fast-check";
import { describe, expect, it } from "vitest";

const TOP = PHYS_ADDR_LIMIT;

describe("SparseMemory", () => {
  it("reads zero from never-written memory without allocating", () => {
    const mem = new SparseMemory();
    expect(mem.read32(0x1234_5678_9000)).toBe(0);
    expect(mem.read64Hi(TOP - 8)).toBe(0);
    const buf = new Uint8Array(10_000).fill(0xaa);
    mem.readBytes(0x7000, buf);
    expect(buf.every((b) => b === 0)).toBe(true);
    expect(mem.pagesAllocated).toBe(0);
  });

  it("stores 32- and 64-bit little-endian values, unsigned", () => {
    const mem = new SparseMemory();
    mem.write32(0x1000, 0xdead_beef);
    expect(mem.read32(0x1000)).toBe(0xdead_beef);
    expect(mem.read8(0x1000)).toBe(0xef);
    expect(mem.read8(0x1003)).toBe(0xde);
    mem.write64(0x2008, 0x89ab_cdef, 0x0123_4567);
    expect(mem.read64Lo(0x2008)).toBe(0x89ab_cdef);
    expect(mem.read64Hi(0x2008)).toBe(0x0123_4567);
    expect(mem.read32(0x200c)).toBe(0x0123_4567);
    expect(mem.pagesAllocated).toBe(2);
  });

  it("handles accesses that cross a page boundary", () => {
    const mem = new SparseMemory();
    mem.write32(0x1ffe, 0x4433_2211);
    expect([mem.read8(0x1ffe), mem.read8(0x1fff), mem.read8(0x2000), mem.read8(0x2001)]).toEqual([
      0x11, 0x22, 0x33, 0x44,
    ]);
    expect(mem.read32(0x1ffe)).toBe(0x4433_2211);
    mem.write64(0x2ffc, 0xaaaa_aaaa, 0xbbbb_bbbb);
    expect(mem.read64Lo(0x2ffc)).toBe(0xaaaa_aaaa);
    expect(mem.read64Hi(0x2ffc)).toBe(0xbbbb_bbbb);
    const src = Uint8Array.from({ length: 9000 }, (_, i) => i & 0xff);
    mem.writeBytes(0x5f00, src);
    const back = new Uint8Array(9000);
    mem.readBytes(0x5f00, back);
    expect(back).toEqual(src);
  });

  it("a byte copy into a page first seen by a read is visible to later reads", () => {
    const mem = new SparseMemory();
    expect(mem.read32(0x3000)).toBe(0); // caches the shared zero page for 0x3000
    mem.writeBytes(0x3000, Uint8Array.of(1, 2, 3, 4));
    expect(mem.read32(0x3000)).toBe(0x0403_0201);
  });

  it("works at the top of the 52-bit space", () => {
    const mem = new SparseMemory();
    mem.write64(TOP - 8, 1, 2);
    expect(mem.read64Lo(TOP - 8)).toBe(1);
    expect(mem.read64Hi(TOP - 8)).toBe(2);
    mem.write8(TOP - 1, 0x7f);
    expect(mem.read8(TOP - 1)).toBe(0x7f);
    // Pages that share low address bits must not alias in the page cache.
    mem.write32(0x1000, 5);
    mem.write32(0x1000 + 2 ** 40, 6);
    expect(mem.read32(0x1000)).toBe(5);
    expect(mem.read32(0x1000 + 2 ** 40)).toBe(6);
  });

  it("rejects bad addresses with a clear error and changes nothing", () => {
    const mem = new SparseMemory();
    for (const bad of [-4, TOP, TOP - 2, 0.5, Number.NaN, 2 ** 60]) {
      expect(() => mem.write32(bad, 1)).toThrowError(DevrefError);
    }
    expect(() => mem.read64Hi(TOP - 4)).toThrowError(/outside physical memory/);
    expect(() => mem.writeBytes(TOP - 2, new Uint8Array(4))).toThrowError(/EFAULT/);
    expect(mem.pagesAllocated).toBe(0);
    const small = new SparseMemory(0x10000);
    expect(() => small.read32(0x10000)).toThrowError(/\[0, 0x000010000\)/);
    expect(() => new SparseMemory(100)).toThrowError(/multiple of 4096/);
  });

  it("zero gives whole pages back and clears partial ones", () => {
    const mem = new SparseMemory();
    mem.writeBytes(0x1000, new Uint8Array(0x3000).fill(9));
    expect(mem.pagesAllocated).toBe(3);
    mem.zero(0x1800, 0x2000);
    expect(mem.pagesAllocated).toBe(2);
    expect(mem.read8(0x17ff)).toBe(9);
    expect(mem.read8(0x1800)).toBe(0);
    expect(mem.read8(0x2abc)).toBe(0);
    expect(mem.read8(0x37ff)).toBe(0);
    // A write after the page was given back allocates a fresh zeroed page.
    mem.write8(0x2000, 1);
    expect(mem.read32(0x2000)).toBe(1);
  });

  it("behaves like a flat byte array (model-based)", () => {
    const WINDOW = 3 * 4096;
    const BASE = 2 ** 44 - 4096; // straddles a 32-bit boundary of the page number
    const op = fc.oneof(
      fc.record({ kind: fc.constant("w8" as const), at: fc.nat(WINDOW - 1), v: fc.nat(255) }),
      fc.record({
        kind: fc.constant("w32" as const),
        at: fc.nat(WINDOW - 4),
        v: fc.nat(0xffff_ffff),
      }),
      fc.record({
        kind: fc.constant("w64" as const),
        at: fc.nat(WINDOW - 8),
        v: fc.nat(0xffff_ffff),
        hi: fc.nat(0xffff_ffff),
      }),
      fc.record({ kind: fc.constant("zero" as const), at: fc.nat(WINDOW - 1), v: fc.nat(6000) }),
    );
    fc.assert(
      fc.property(fc.array(op, { maxLength: 40 }), (ops) => {
        const mem = new SparseMemory();
        const model = new Uint8Array(WINDOW);
        const view = new DataView(model.buffer);
        for (const o of ops) {
          if (o.kind === "w8") {
            mem.write8(BASE + o.at, o.v);
            model[o.at] = o.v;
          } else if (o.kind === "w32") {
            mem.write32(BASE + o.at, o.v);
            view.setUint32(o.at, o.v, true);
          } else if (o.kind === "w64") {
            mem.write64(BASE + o.at, o.v, "hi" in o ? o.hi : 0);
            view.setUint32(o.at, o.v, true);
            view.setUint32(o.at + 4, "hi" in o ? o.hi : 0, true);
          } else {
            const len = Math.min(o.v, WINDOW - o.at);
            mem.zero(BASE + o.at, len);
            model.fill(0, o.at, o.at + len);
          }
        }
        const out = new Uint8Array(WINDOW);
        mem.readBytes(BASE, out);
        const firstDifference = out.findIndex((b, i) => b !== model[i]);
        expect(firstDifference).toBe(-1);
        for (let at = 0; at + 4 <= WINDOW; at += 1021) {
          expect(mem.read32(BASE + at)).toBe(view.getUint32(at, true));
        }
      }),
      { seed: 0x5eed, numRuns: 200 },
    );
  });
});

describe("BuddyAllocator", () => {
  it("hands out zeroed, naturally aligned blocks and merges them back", () => {
    const mem = new SparseMemory();
    const alloc = new BuddyAllocator(mem, 0x8000_0000, 0x10_0000);
    const a = alloc.alloc(4096);
    mem.write32(a, 0xffff_ffff);
    alloc.free(a, 4096);
    const b = alloc.alloc(4096);
    expect(b).toBe(a);
    expect(mem.read32(b)).toBe(0);
    const c = alloc.alloc(100, 0x1_0000);
    expect(c % 0x1_0000).toBe(0);
    expect(alloc.bytesInUse).toBe(4096 + 0x1_0000);
    alloc.free(b, 4096);
    alloc.free(c, 100);
    expect(alloc.bytesInUse).toBe(0);
    // Everything merged: the whole region is one block again.
    expect(alloc.alloc(0x10_0000)).toBe(0x8000_0000);
  });

  it("reports exhaustion, double free and bad sizes clearly", () => {
    const mem = new SparseMemory();
    const alloc = new BuddyAllocator(mem, 0, 0x4000, 4096);
    const blocks = [alloc.alloc(4096), alloc.alloc(4096), alloc.alloc(4096), alloc.alloc(4096)];
    expect(() => alloc.alloc(1)).toThrowError(/ENOMEM: no free block of 4096 bytes/);
    alloc.free(blocks[0]!, 4096);
    expect(() => alloc.free(blocks[0]!, 4096)).toThrowError(/double free/);
    expect(() => alloc.free(blocks[1]!, 8192)).toThrowError(/the block there is 4096 bytes/);
    expect(() => alloc.alloc(0)).toThrowError(/positive whole number/);
    expect(() => alloc.alloc(16, 3)).toThrowError(/power of two/);
    expect(() => new BuddyAllocator(mem, 0x100, 0x4000, 4096)).toThrowError(/aligned/);
    expect(alloc.bytesInUse).toBe(3 * 4096);
  });

  it("never overlaps and returns everything (model-based)", () => {
    const op = fc.oneof(
      fc.record({
        alloc: fc.integer({ min: 1, max: 20_000 }),
        align: fc.constantFrom(1, 64, 4096, 16384),
      }),
      fc.record({ free: fc.nat() }),
    );
    fc.assert(
      fc.property(fc.array(op, { maxLength: 60 }), (ops) => {
        const mem = new SparseMemory();
        const alloc = new BuddyAllocator(mem, 0x4000_0000, 0x4_0000);
        const live: { at: number; size: number }[] = [];
        for (const o of ops) {
          if ("alloc" in o) {
            try {
              const at = alloc.alloc(o.alloc, o.align);
              expect(at % o.align).toBe(0);
              for (const l of live) expect(at + o.alloc <= l.at || l.at + l.size <= at).toBe(true);
              live.push({ at, size: o.alloc });
            } catch (e) {
              expect(DevrefError.is(e, "ENOMEM")).toBe(true);
            }
          } else if (live.length > 0) {
            const [l] = live.splice(o.free % live.length, 1);
            alloc.free(l!.at as never, l!.size);
          }
        }
        for (const l of live) alloc.free(l.at as never, l.size);
        expect(alloc.bytesInUse).toBe(0);
        expect(alloc.alloc(0x4_0000)).toBe(0x4000_0000);
      }),
      { seed: 0xb0d, numRuns: 200 },
    );
  });
});

describe("BuddyAllocator.isAllocated", () => {
  it("says whether a range lies in allocated blocks, across neighbouring blocks", () => {
    const mem = new SparseMemory(1 << 24);
    const a = new BuddyAllocator(mem, 0x10_0000, 0x10_0000, 4096);
    const x = a.alloc(4096);
    const y = a.alloc(8192);
    expect(a.isAllocated(x)).toBe(true);
    expect(a.isAllocated(x + 4095)).toBe(true);
    expect(a.isAllocated(y + 100, 8000)).toBe(true);
    expect(a.isAllocated(0)).toBe(false);
    a.free(x, 4096);
    expect(a.isAllocated(x)).toBe(false);
    expect(a.isAllocated(y, 8193)).toBe(false);
    // SAFETY: deliberately wrong-typed.
    expect(() => a.isAllocated(Number.NaN as never, -1)).toThrowError(/EINVAL/);
  });
});

describe("BuddyAllocator.blockAt", () => {
  it("names the whole allocated block holding an address, and nothing once it is freed", () => {
    const mem = new SparseMemory(1 << 24);
    const a = new BuddyAllocator(mem, 0x10_0000, 0x10_0000, 4096);
    const x = a.alloc(0x3000);
    expect(a.blockAt(x)).toEqual({ start: x, size: 0x4000 });
    expect(a.blockAt(x + 0x3fff)).toEqual({ start: x, size: 0x4000 });
    expect(a.blockAt(x + 0x4000)).toBeNull();
    expect(a.blockAt(0)).toBeNull();
    expect(a.blockAt(Number.NaN)).toBeNull();
    a.free(x, 0x3000);
    expect(a.blockAt(x)).toBeNull();
    // SAFETY: deliberately wrong-typed.
    expect(() => a.blockAt("0x100000" as never)).toThrowError(/EINVAL/);
  });
});
