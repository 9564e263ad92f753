// SparseMemory.pageWords: live views of a page's storage, pinned for the life of the memory.
import { BuddyAllocator, DevrefError, PHYS_ADDR_LIMIT, SparseMemory } from "@devref/raw-device";
import fc from "fast-check";
import { describe, expect, it } from "vitest";

describe("SparseMemory.pageWords", () => {
  it("returns the live words of the page: writes either way are seen the other way", () => {
    const mem = new SparseMemory();
    const w = mem.pageWords(0x8000_1234);
    expect(w).toBeInstanceOf(Uint32Array);
    expect(w.length).toBe(1024);
    expect(mem.pagesAllocated).toBe(1);
    mem.write64(0x8000_1008, 0x89ab_cdef, 0x0123_4567);
    expect([w[2], w[3]]).toEqual([0x89ab_cdef, 0x0123_4567]);
    w[4] = 0xdead_beef;
    w[5] = 7;
    expect(mem.read64Lo(0x8000_1010)).toBe(0xdead_beef);
    expect(mem.read64Hi(0x8000_1010)).toBe(7);
    expect(mem.read8(0x8000_1013)).toBe(0xde);
    const bytes = new Uint8Array(8);
    mem.readBytes(0x8000_1010, bytes);
    expect([...bytes]).toEqual([0xef, 0xbe, 0xad, 0xde, 7, 0, 0, 0]);
    mem.writeBytes(0x8000_1ff8, Uint8Array.of(1, 2, 3, 4, 5, 6, 7, 8));
    expect(w[1022]).toBe(0x0403_0201);
    // The same page, from any address in it, is the same array.
    expect(mem.pageWords(0x8000_1fff)).toBe(w);
    expect(mem.pageWords(0x8000_2000)).not.toBe(w);
  });

  it("a page first cached as the zero page by a read becomes visible through the view", () => {
    const mem = new SparseMemory();
    expect(mem.read32(0x5000)).toBe(0); // caches the shared zero page for this address
    const w = mem.pageWords(0x5000);
    w[0] = 42;
    expect(mem.read32(0x5000)).toBe(42);
  });

  it("pinned pages are cleared in place by zero(), never dropped: the view stays live", () => {
    const mem = new SparseMemory();
    const w = mem.pageWords(0x3000);
    w.fill(0xffff_ffff);
    mem.zero(0x3000, 0x1000); // a whole page
    expect(w.every((x) => x === 0)).toBe(true);
    expect(mem.pagesAllocated).toBe(1);
    mem.write32(0x3010, 5);
    expect(w[4]).toBe(5);
    // Zeroing across pinned and unpinned pages: the unpinned one is given back.
    mem.write32(0x4000, 1);
    expect(mem.pagesAllocated).toBe(2);
    mem.zero(0x3000, 0x2000);
    expect(mem.pagesAllocated).toBe(1);
    expect(w[4]).toBe(0);
    // Partial zeroing of a pinned page.
    w.fill(0x0101_0101);
    mem.zero(0x3001, 6);
    expect([w[0], w[1], w[2]]).toEqual([0x0000_0001, 0x0100_0000, 0x0101_0101]);
  });

  it("an allocator's zeroing of a reused block keeps page-table views live", () => {
    const mem = new SparseMemory();
    const pages = new BuddyAllocator(mem, 0x8000_0000, 1 << 20);
    const pa = pages.alloc(0x1000, 0x1000);
    const w = mem.pageWords(pa);
    w[0] = 3;
    pages.free(pa, 0x1000);
    const again = pages.alloc(0x1000, 0x1000); // the same block, zeroed by the allocator
    expect(again).toBe(pa);
    expect(w[0]).toBe(0);
    mem.write32(again, 9);
    expect(w[0]).toBe(9);
  });

  it("rejects addresses outside memory with EFAULT", () => {
    const mem = new SparseMemory(0x10000);
    for (const bad of [-1, 0x10000, 0.5, Number.NaN, PHYS_ADDR_LIMIT]) {
      expect(() => mem.pageWords(bad)).toThrow(DevrefError);
      expect(() => mem.pageWords(bad)).toThrow(/EFAULT/);
    }
    expect(mem.pagesAllocated).toBe(0);
  });

  it("views agree with the byte interface under random mixed writes", () => {
    fc.assert(
      fc.property(
        fc.array(
          fc.tuple(
            fc.constantFrom("view", "write64", "writeBytes", "zero"),
            fc.integer({ min: 0, max: 3 * 512 - 1 }),
            fc.integer({ min: 0, max: 0xffff_ffff }),
          ),
          { maxLength: 60 },
        ),
        (ops) => {
          const mem = new SparseMemory();
          const ref = new Uint32Array(3 * 1024);
          const views = [0, 1, 2].map((k) => mem.pageWords(0x10_0000 + k * 0x1000));
          for (const [op, slot, v] of ops) {
            const pa = 0x10_0000 + slot * 8;
            if (op === "view") {
              views[slot >> 9]![(slot & 511) * 2] = v;
              ref[slot * 2] = v;
            } else if (op === "write64") {
              mem.write64(pa, v, ~v >>> 0);
              ref[slot * 2] = v;
              ref[slot * 2 + 1] = ~v >>> 0;
            } else if (op === "writeBytes") {
              mem.writeBytes(pa + 4, new Uint8Array(new Uint32Array([v]).buffer));
              ref[slot * 2 + 1] = v;
            } else {
              const len = (v % 3) * 0x800 + 8;
              mem.zero(pa, Math.min(len, 0x10_3000 - pa));
              ref.fill(0, slot * 2, slot * 2 + Math.min(len, 0x10_3000 - pa) / 4);
            }
          }
          const all = new Uint8Array(3 * 0x1000);
          mem.readBytes(0x10_0000, all);
          const read = new Uint32Array(all.buffer);
          // First word where memory, views and reference disagree, or -1.
          let bad = -1;
          for (let i = 0; i < ref.length && bad < 0; i++)
            if (read[i] !== ref[i] || views[i >> 10]![i & 1023] !== ref[i]) bad = i;
          expect(bad).toBe(-1);
        },
      ),
      { seed: 4096, numRuns: 200 },
    );
  });
});
