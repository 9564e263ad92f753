// The page-view path (SparseMemory, which has pageWords) and the fallback path (a memory
// without pageWords) run the same random operation sequences, and must agree on everything:
// every result or error, every TLB callback and cache clean, and every word of every block of
// table memory ever allocated, after every step.
import {
  BuddyAllocator,
  DevrefError,
  type PhysAddr,
  type PhysAllocator,
  type PhysicalMemory,
  SparseMemory,
} from "@devref/raw-device";
import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { allocIoPgtable, type IoPgtableConfig, IotlbGather } from "../src/index.js";
import { I, P, PlainMemory } from "./helpers.js";
import { ALL_SHAPES, type Cmd, command, ModelTable, type Shape } from "./model.js";

/** An allocator that remembers every block it ever handed out. */
class RecordingAllocator implements PhysAllocator {
  readonly blocks = new Map<number, number>();
  private readonly inner: BuddyAllocator;
  constructor(readonly memory: PhysicalMemory) {
    this.inner = new BuddyAllocator(memory, 0x8_0000_0000, 2 ** 30);
  }
  get bytesInUse(): number {
    return this.inner.bytesInUse;
  }
  alloc(size: number, align?: number): PhysAddr {
    const pa = this.inner.alloc(size, align);
    this.blocks.set(pa, Math.max(size, this.blocks.get(pa) ?? 0));
    return pa;
  }
  free(pa: PhysAddr, size: number): void {
    this.inner.free(pa, size);
  }
}

interface Side {
  readonly mem: PhysicalMemory;
  readonly pages: RecordingAllocator;
  readonly log: string[];
  readonly t: ReturnType<typeof allocIoPgtable>;
}

function side(sh: Shape, mem: PhysicalMemory): Side {
  const pages = new RecordingAllocator(mem);
  const log: string[] = [];
  const cfg: IoPgtableConfig = {
    ...sh.cfg,
    tlb: {
      tlbFlushAll: () => log.push("all"),
      tlbFlushWalk: (a, s, g) => log.push(`walk ${String(a)} ${s} ${g}`),
      tlbAddPage: (_g, a, s) => log.push(`add ${String(a)} ${s}`),
    },
    cacheClean: (pa, n) => log.push(`clean ${pa} ${n}`),
  };
  return { mem, pages, log, t: allocIoPgtable(sh.fmt, cfg, pages) };
}

/** The first word where the two memories differ in any block either side ever allocated. */
function firstDifference(a: Side, b: Side): string | null {
  expect([...a.pages.blocks.entries()].sort()).toEqual([...b.pages.blocks.entries()].sort());
  for (const [pa, size] of a.pages.blocks) {
    const x = new Uint8Array(size);
    const y = new Uint8Array(size);
    a.mem.readBytes(pa, x);
    b.mem.readBytes(pa, y);
    const wx = new Uint32Array(x.buffer);
    const wy = new Uint32Array(y.buffer);
    for (let i = 0; i < wx.length; i++)
      if (wx[i] !== wy[i]) return `word at 0x${(pa + 4 * i).toString(16)}: ${wx[i]} vs ${wy[i]}`;
  }
  return null;
}

type Step = { kind: "cmd"; c: Cmd; gather: boolean } | { kind: "alias"; iova: number };

function apply(s: Side, sh: Shape, m: ModelTable, step: Step): string {
  try {
    if (step.kind === "alias") {
      const a = sh.ttbr1 ? I(step.iova) : I(step.iova + 2 ** sh.ias);
      return `phys ${s.t.iovaToPhys(a)}`;
    }
    const c = step.c;
    if (c.op === "phys") return `phys ${s.t.iovaToPhys(m.arg(c.iova))}`;
    const size = 2 ** sh.shift(c.level);
    const iova = m.arg(c.iova - (c.iova % size));
    if (c.op === "map")
      return `map ${s.t.mapPages(iova, P(c.pa - (c.pa % size)), size, c.count, c.prot)}`;
    return `unmap ${s.t.unmapPages(iova, size, c.count, step.gather ? new IotlbGather() : null)}`;
  } catch (e) {
    if (!DevrefError.is(e)) throw e;
    return `${e.code} ${e.message}`;
  }
}

describe("page views and the memory-method path write the same bytes", () => {
  it.each(ALL_SHAPES.map((sh): [string, Shape] => [sh.name, sh]))(
    "%s",
    (_name, sh) => {
      const step: fc.Arbitrary<Step> = fc.oneof(
        {
          weight: 6,
          arbitrary: fc.record({
            kind: fc.constant("cmd" as const),
            c: command(sh),
            gather: fc.boolean(),
          }),
        },
        {
          weight: 1,
          arbitrary: fc.record({ kind: fc.constant("alias" as const), iova: sh.iovas }),
        },
      );
      fc.assert(
        fc.property(fc.array(step, { minLength: 10, maxLength: 40 }), (steps) => {
          const view = side(sh, new SparseMemory());
          const plain = side(sh, new PlainMemory());
          // Only for `arg`: the model's own table is not used.
          const m = new ModelTable(sh);
          for (const st of steps) {
            expect(apply(plain, sh, m, st)).toBe(apply(view, sh, m, st));
            expect(view.log).toEqual(plain.log);
            expect(view.t.tableBytes).toBe(plain.t.tableBytes);
            expect(firstDifference(view, plain)).toBeNull();
          }
          expect(view.t.dump()).toBe(plain.t.dump());
          view.t[Symbol.dispose]();
          plain.t[Symbol.dispose]();
          expect(view.log).toEqual(plain.log);
          expect(view.pages.bytesInUse).toBe(0);
          expect(plain.pages.bytesInUse).toBe(0);
        }),
        { seed: 13, numRuns: 15 },
      );
    },
    60_000,
  );

  it("full and empty tables: the run shortcuts stop at holes and see leaves, on both paths", () => {
    for (const mem of [new SparseMemory(), new PlainMemory()]) {
      const pages = new BuddyAllocator(mem, 0x8_0000_0000, 2 ** 30);
      const t = allocIoPgtable(
        "arm-64-lpae-s1",
        { pgsizeBitmap: 0x4020_1000, ias: 48, oas: 48 },
        pages,
      );
      const K = 0x1000;
      const map = (at: number, n: number) =>
        t.mapPages(I(at * K), P(0x9000_0000 + at * K), K, n, 3);
      expect(map(0, 512)).toBe(512 * K); // a full leaf table
      expect(t.unmapPages(I(0), K, 512)).toBe(512 * K);
      expect(map(0, 512)).toBe(512 * K);
      expect(t.unmapPages(I(300 * K), K, 1)).toBe(K); // one hole
      expect(t.unmapPages(I(0), K, 512)).toBe(300 * K); // stops there
      expect(t.unmapPages(I(301 * K), K, 512)).toBe(211 * K);
      expect(map(7, 1)).toBe(K);
      expect(() => map(0, 512)).toThrow(expect.objectContaining({ code: "EEXIST" }));
      expect(t.unmapPages(I(7 * K), K, 1)).toBe(K);
      expect(map(0, 512)).toBe(512 * K); // empty again, so no leaf is in the way
      // A 2M unmap over the full table frees it; a block then maps where it was.
      expect(t.unmapPages(I(0), 0x20_0000, 1)).toBe(0x20_0000);
      expect(t.mapPages(I(0), P(0x4000_0000), 0x20_0000, 1, 3)).toBe(0x20_0000);
      expect(t.unmapPages(I(0), 0x20_0000, 1)).toBe(0x20_0000);
      expect(map(0, 512)).toBe(512 * K);
      expect(t.iovaToPhys(I(511 * K + 5))).toBe(0x9000_0000 + 511 * K + 5);
      t[Symbol.dispose]();
      expect(pages.bytesInUse).toBe(0);
    }
  });

  it("a one-leaf unmap into a gather reports the page as the general path does", () => {
    // The number form takes the one-leaf path once the walk cache holds the table; a bigint
    // of the same address always takes the general path. Both must clear the same slots and
    // make the same tlbAddPage calls (none into a queued gather), on both memories.
    for (const sh of ALL_SHAPES.filter((x) => x.fmt.startsWith("arm-") && !x.ttbr1)) {
      const size = sh.granule;
      const logs: string[][] = [];
      for (const general of [false, true]) {
        for (const mem of [new SparseMemory(), new PlainMemory()]) {
          const s = side(sh, mem);
          const at = (k: number) => (general ? BigInt(k * size) : I(k * size));
          for (let k = 0; k < 4; k++)
            s.t.mapPages(I(k * size), P(0x9000_0000 + k * size), size, 1, 3);
          const g = new IotlbGather();
          const q = new IotlbGather(true);
          const out = [
            s.t.unmapPages(at(1), size, 1, g),
            s.t.unmapPages(at(2), size, 1, q),
            s.t.unmapPages(at(1), size, 1, g), // already clear: nothing reported
            s.t.unmapPages(at(3), size, 1, g),
          ];
          s.log.push(
            `results ${out.join(",")}`,
            `phys ${s.t.iovaToPhys(I(0))} ${s.t.iovaToPhys(I(3 * size))}`,
          );
          logs.push(s.log);
          s.t[Symbol.dispose]();
        }
      }
      expect(logs[0]).toContain(`add ${size} ${size}`);
      expect(logs[0]).not.toContain(`add ${2 * size} ${size}`);
      for (const l of logs) expect(l).toEqual(logs[0]);
    }
  });

  it("the fallback path also holds exactly the model after every step", () => {
    for (const sh of ALL_SHAPES) {
      fc.assert(
        fc.property(fc.array(command(sh), { minLength: 5, maxLength: 30 }), (cmds) => {
          const m = new ModelTable(sh, new PlainMemory());
          for (const c of cmds) {
            m.run(c);
            m.check();
          }
          m.dispose();
        }),
        { seed: 14, numRuns: 8 },
      );
    }
  }, 60_000);
});
