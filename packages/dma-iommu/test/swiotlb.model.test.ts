// Model-based test of SwiotlbPool: random map / CPU write / device write / sync / unmap /
// bad unmap sequences against a byte model of what the CPU sees (the original buffers) and
// what the device sees (each mapping's bounce buffer), following the kernel's copy rules.
import {
  DMA_ATTR_SKIP_CPU_SYNC,
  DMA_BIDIRECTIONAL,
  DMA_FROM_DEVICE,
  DMA_TO_DEVICE,
  type DmaDirection,
  IO_TLB_SIZE,
  SwiotlbPool,
} from "@devref/dma-iommu";
import { DevrefError, type PhysAddr, physAddr, SparseMemory } from "@devref/raw-device";
import fc from "fast-check";
import { describe, expect, it } from "vitest";

const BASE = 0x4000_0000;
/** One segment: small enough that random maps fill it up. */
const NSLABS = 128;
/** Each buffer id owns a 64 KiB window of original memory above 4 GiB. */
const WINDOW = 0x1_0000;
const ORIG = 0x2_0000_0000;
const BUFFERS = 8;

interface Mapped {
  bounce: PhysAddr;
  orig: number;
  size: number;
  dir: DmaDirection;
  skip: boolean;
  minAlign: number;
  /** What the device sees in the bounce buffer. */
  dev: Uint8Array;
}

interface Model {
  /** What the CPU sees in each buffer's window. */
  cpu: Uint8Array[];
  mapped: (Mapped | undefined)[];
}

type Op =
  | {
      kind: "map";
      buf: number;
      offset: number;
      size: number;
      dir: DmaDirection;
      skip: boolean;
      nvme: boolean;
    }
  | { kind: "cpuWrite"; buf: number; at: number; len: number; seed: number }
  | { kind: "devWrite"; buf: number; at: number; len: number; seed: number }
  | { kind: "syncCpu"; buf: number; at: number; len: number }
  | { kind: "syncDev"; buf: number; at: number; len: number }
  | { kind: "unmap"; buf: number }
  | { kind: "badUnmap"; slot: number; delta: number };

const buf = fc.integer({ min: 0, max: BUFFERS - 1 });
const frac = fc.double({ min: 0, max: 1, noNaN: true, maxExcluded: true });
const dir = fc.constantFrom<DmaDirection>(DMA_TO_DEVICE, DMA_FROM_DEVICE, DMA_BIDIRECTIONAL);
const bytesSeed = fc.integer({ min: 0, max: 255 });

const opArb: fc.Arbitrary<Op> = fc.oneof(
  {
    weight: 4,
    arbitrary: fc.record({
      kind: fc.constant("map" as const),
      buf,
      offset: fc.integer({ min: 0, max: 0x1fff }),
      size: fc.oneof(
        fc.integer({ min: 1, max: 4096 }),
        fc.integer({ min: 1, max: 60_000 }),
        fc.integer({ min: 30_000, max: WINDOW }),
      ),
      dir,
      skip: fc.boolean(),
      nvme: fc.boolean(),
    }),
  },
  {
    weight: 3,
    arbitrary: fc.record({
      kind: fc.constant("cpuWrite" as const),
      buf,
      at: frac,
      len: frac,
      seed: bytesSeed,
    }),
  },
  {
    weight: 3,
    arbitrary: fc.record({
      kind: fc.constant("devWrite" as const),
      buf,
      at: frac,
      len: frac,
      seed: bytesSeed,
    }),
  },
  {
    weight: 2,
    arbitrary: fc.record({ kind: fc.constant("syncCpu" as const), buf, at: frac, len: frac }),
  },
  {
    weight: 2,
    arbitrary: fc.record({ kind: fc.constant("syncDev" as const), buf, at: frac, len: frac }),
  },
  { weight: 3, arbitrary: fc.record({ kind: fc.constant("unmap" as const), buf }) },
  {
    weight: 1,
    arbitrary: fc.record({
      kind: fc.constant("badUnmap" as const),
      slot: fc.integer({ min: 0, max: NSLABS - 1 }),
      delta: fc.integer({ min: 0, max: IO_TLB_SIZE - 1 }),
    }),
  },
);

function pattern(len: number, seed: number): Uint8Array {
  const out = new Uint8Array(len);
  for (let i = 0; i < len; i++) out[i] = (seed * 31 + i * 13 + (i >> 8)) & 0xff;
  return out;
}

function read(mem: SparseMemory, pa: number, n: number): Uint8Array {
  const out = new Uint8Array(n);
  mem.readBytes(pa, out);
  return out;
}

/** A sub-range [at, at + len) of `size` from two fractions; never empty. */
function span(size: number, atF: number, lenF: number): [number, number] {
  const at = Math.floor(atF * size);
  const len = 1 + Math.floor(lenF * (size - at));
  return [at, Math.min(len, size - at)];
}

/** Byte comparison that stays fast on 64 KiB windows (deep equality is slow there). */
function expectSame(actual: Uint8Array, expected: Uint8Array, what: string): void {
  expect(actual.length).toBe(expected.length);
  let i = 0;
  while (i < actual.length && actual[i] === expected[i]) i++;
  if (i < actual.length) {
    expect.fail(`${what}: byte ${i} is ${actual[i]}, the model says ${expected[i]}`);
  }
}

function verify(mem: SparseMemory, pool: SwiotlbPool, m: Model): void {
  for (let b = 0; b < BUFFERS; b++) {
    expectSame(read(mem, ORIG + b * WINDOW, WINDOW), m.cpu[b]!, `CPU view of buffer ${b}`);
  }
  const live = m.mapped.filter((x): x is Mapped => x !== undefined);
  for (const x of live) {
    expectSame(read(mem, x.bounce, x.size), x.dev, `device view at ${x.bounce.toString(16)}`);
    expect(pool.isBounceAddress(x.bounce)).toBe(true);
    if (x.minAlign !== 0) expect(x.bounce & x.minAlign).toBe(x.orig & x.minAlign);
  }
  // Bounce buffers never overlap.
  const spans = live.map((x) => [x.bounce, x.bounce + x.size] as const).sort((a, b) => a[0] - b[0]);
  for (let i = 1; i < spans.length; i++)
    expect(spans[i]![0]).toBeGreaterThanOrEqual(spans[i - 1]![1]);
  expect(pool.stats().mappings).toBe(live.length);
  expect(
    pool
      .mappings()
      .map((x) => x.bounce)
      .sort((a, b) => a - b),
  ).toEqual(live.map((x) => x.bounce).sort((a, b) => a - b));
}

/** Maps refused because the pool was full, over all runs: proof exhaustion is exercised. */
let fullSeen = 0;

function run(ops: Op[]): void {
  const mem = new SparseMemory();
  const pool = new SwiotlbPool(mem, { base: BASE, nslabs: NSLABS });
  const m: Model = { cpu: [], mapped: [] };
  for (let b = 0; b < BUFFERS; b++) {
    const init = pattern(WINDOW, b + 1);
    mem.writeBytes(ORIG + b * WINDOW, init);
    m.cpu.push(init);
    m.mapped.push(undefined);
  }
  for (const op of ops) {
    switch (op.kind) {
      case "map": {
        if (m.mapped[op.buf] !== undefined) break;
        const size = Math.min(op.size, WINDOW - op.offset);
        const orig = ORIG + op.buf * WINDOW + op.offset;
        const minAlign = op.nvme ? 0xfff : 0;
        const attrs = op.skip ? DMA_ATTR_SKIP_CPU_SYNC : 0;
        let bounce: PhysAddr;
        try {
          bounce = pool.map(physAddr(orig), size, op.dir, attrs, { minAlignMask: minAlign });
        } catch (e) {
          // A full pool is a mapping error, never a crash or a half-made mapping.
          expect(DevrefError.is(e, "ENOMEM")).toBe(true);
          fullSeen++;
          break;
        }
        // map copies original → bounce whatever the direction.
        const dev = m.cpu[op.buf]!.slice(op.offset, op.offset + size);
        m.mapped[op.buf] = { bounce, orig, size, dir: op.dir, skip: op.skip, minAlign, dev };
        break;
      }
      case "cpuWrite": {
        const [at, len] = span(WINDOW, op.at, op.len);
        const data = pattern(len, op.seed);
        mem.writeBytes(ORIG + op.buf * WINDOW + at, data);
        m.cpu[op.buf]!.set(data, at);
        break;
      }
      case "devWrite": {
        const x = m.mapped[op.buf];
        if (x === undefined) break;
        const [at, len] = span(x.size, op.at, op.len);
        const data = pattern(len, op.seed + 7);
        mem.writeBytes(x.bounce + at, data);
        x.dev.set(data, at);
        break;
      }
      case "syncCpu":
      case "syncDev": {
        const x = m.mapped[op.buf];
        if (x === undefined) break;
        const [at, len] = span(x.size, op.at, op.len);
        const origOff = x.orig - ORIG - op.buf * WINDOW + at;
        if (op.kind === "syncCpu") {
          pool.syncForCpu(physAddr(x.bounce + at), len, x.dir);
          if (x.dir !== DMA_TO_DEVICE) m.cpu[op.buf]!.set(x.dev.subarray(at, at + len), origOff);
        } else {
          pool.syncForDevice(physAddr(x.bounce + at), len, x.dir);
          if (x.dir !== DMA_FROM_DEVICE)
            x.dev.set(m.cpu[op.buf]!.subarray(origOff, origOff + len), at);
        }
        break;
      }
      case "unmap": {
        const x = m.mapped[op.buf];
        if (x === undefined) break;
        pool.unmap(x.bounce, x.size, x.dir, x.skip ? DMA_ATTR_SKIP_CPU_SYNC : 0);
        if (!x.skip && x.dir !== DMA_TO_DEVICE) {
          m.cpu[op.buf]!.set(x.dev, x.orig - ORIG - op.buf * WINDOW);
        }
        m.mapped[op.buf] = undefined;
        break;
      }
      case "badUnmap": {
        const addr = BASE + op.slot * IO_TLB_SIZE + op.delta;
        if (m.mapped.some((x) => x !== undefined && x.bounce === addr)) break;
        const before = pool.stats();
        expect(() => pool.unmap(physAddr(addr), 1, DMA_TO_DEVICE)).toThrow(DevrefError);
        expect(pool.stats()).toEqual(before);
        break;
      }
    }
    verify(mem, pool, m);
  }
  // Everything returned: after the last unmap the segment takes a full 256 KiB mapping.
  for (const x of m.mapped) if (x !== undefined) pool.unmap(x.bounce, x.size, x.dir);
  expect(pool.stats()).toMatchObject({ usedSlots: 0, mappings: 0 });
  expect(pool.map(physAddr(ORIG), 256 * 1024, DMA_TO_DEVICE)).toBe(BASE);
}

describe("SwiotlbPool model", () => {
  it("CPU and device see the bytes the kernel's copy rules give them", { timeout: 60_000 }, () => {
    fc.assert(fc.property(fc.array(opArb, { maxLength: 60, size: "max" }), run), {
      seed: 0x5107,
      numRuns: 80,
    });
    expect(fullSeen).toBeGreaterThan(0);
  });
});
