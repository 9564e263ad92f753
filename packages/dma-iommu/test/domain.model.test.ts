// Model-based tests of map/unmap through an IOMMU domain, checked against a page-table walk
// written here from the ARM LPAE descriptor format (stage 1, 4K granule, 48-bit input),
// reading the table memory directly — not through io-pgtable.

import { IOMMU_READ, IOMMU_WRITE } from "@devref/io-pgtable";
import {
  type DmaAddr,
  iova as ioAddr,
  type PhysAddr,
  type PhysicalMemory,
  physAddr,
} from "@devref/raw-device";
import fc from "fast-check";
import { describe, expect, it } from "vitest";
import {
  DMA_BIDIRECTIONAL,
  DMA_MAPPING_ERROR,
  dmaDeviceAudit,
  dmaMapSingle,
  dmaUnmapSingle,
  type IommuDomain,
  iommuAttachDevice,
  iommuDetachDevice,
  iommuDomainFree,
  iommuGetDomainForDev,
  iommuMap,
  iommuPagingDomainAlloc,
  iommuUnmap,
} from "../src/index.js";
import { addDevice, addTestIommu, makeEnv, type TestDomain } from "./dma-helpers.js";

const P32 = 2 ** 32;
let blockHits = 0;

/** Walks an LPAE s1 4K table: the output address of `iova`, or -1 when unmapped. */
function walk(mem: PhysicalMemory, root: number, iova: number): number {
  let table = root;
  for (let level = 0; level <= 3; level++) {
    const shift = 39 - 9 * level;
    const idx = Math.floor(iova / 2 ** shift) % 512;
    const at = table + idx * 8;
    const lo = mem.read64Lo(at);
    const hi = mem.read64Hi(at);
    if ((lo & 1) === 0) return -1;
    // Output address bits 47:12 of the descriptor.
    const outAddr = (hi & 0xffff) * P32 + ((lo & 0xffff_f000) >>> 0);
    const isTable = (lo & 2) !== 0;
    if (level === 3) {
      if (!isTable) return -1; // reserved encoding at level 3
      return outAddr + (iova % 4096);
    }
    if (!isTable) {
      if (level === 0) return -1; // no level-0 blocks with a 4K granule
      blockHits++;
      const size = 2 ** shift;
      return outAddr - (outAddr % size) + (iova % size);
    }
    table = outAddr;
  }
  return -1;
}

function rootOf(d: TestDomain): number {
  const cfg = d.table.cfg;
  if (cfg.format !== "arm-64-lpae-s1") throw new Error("the test IOMMU builds stage-1 tables");
  return cfg.armLpaeS1Cfg.ttbr;
}

describe("map/unmap through a DMA domain against an independent table walk", () => {
  for (const lazy of [false, true]) {
    it(`${lazy ? "lazy" : "strict"}: every live mapping translates, every unmapped page faults`, {
      timeout: 30_000,
    }, () => {
      const env = makeEnv({ iommuDefaultDomain: lazy ? "lazy" : "strict" });
      const mmu = addTestIommu(env, { name: "mmu" });
      const dev = addDevice(env, { name: "m", maskBits: 36, iommus: [{ iommu: "mmu", ids: [1] }] });
      const dom = iommuGetDomainForDev(dev.ref)!;
      const table = mmu.domains[0]!;
      const mem = env.system.memory;
      const base = env.system.allocBuffer(1 << 22, "high");
      type Op =
        | { kind: "map"; off: number; size: number }
        | { kind: "unmap"; pick: number }
        | { kind: "tick" };
      const op: fc.Arbitrary<Op> = fc.oneof(
        {
          weight: 5,
          arbitrary: fc.record({
            kind: fc.constant("map" as const),
            off: fc.integer({ min: 0, max: (1 << 22) - 0x40000 }),
            size: fc.integer({ min: 1, max: 0x30000 }),
          }),
        },
        {
          weight: 4,
          arbitrary: fc.record({ kind: fc.constant("unmap" as const), pick: fc.nat() }),
        },
        { weight: 1, arbitrary: fc.record({ kind: fc.constant("tick" as const) }) },
      );
      fc.assert(
        fc.property(fc.array(op, { maxLength: 40 }), (ops) => {
          const live: { addr: DmaAddr; pa: number; size: number }[] = [];
          const gone: { addr: number; size: number }[] = [];
          dev.run((d) => {
            for (const o of ops) {
              if (o.kind === "map") {
                const pa = base + o.off;
                // SAFETY (test): inside the buffer.
                const addr = dmaMapSingle(d, pa as PhysAddr, o.size, DMA_BIDIRECTIONAL);
                expect(addr).not.toBe(DMA_MAPPING_ERROR);
                expect(addr + o.size - 1).toBeLessThanOrEqual(2 ** 36 - 1);
                expect(addr % 4096).toBe(pa % 4096);
                live.push({ addr, pa, size: o.size });
              } else if (o.kind === "unmap") {
                if (live.length === 0) continue;
                const [m] = live.splice(o.pick % live.length, 1);
                dmaUnmapSingle(d, m!.addr, m!.size, DMA_BIDIRECTIONAL);
                gone.push(m!);
              } else {
                dom.cookie!.fq?.tick();
              }
              // Check the whole state against the walker after every step.
              for (const m of live) {
                for (let off = 0; off < m.size; off += 4096) {
                  expect(walk(mem, rootOf(table), m.addr + off)).toBe(m.pa + off);
                }
                expect(walk(mem, rootOf(table), m.addr + m.size - 1)).toBe(m.pa + m.size - 1);
              }
              const liveIovas = live.map(
                (m) => [m.addr - (m.addr % 4096), m.addr + m.size] as const,
              );
              for (const g of gone) {
                const page = g.addr - (g.addr % 4096);
                // A gone page faults unless a live mapping reuses it.
                if (!liveIovas.some(([s, e]) => page >= s && page < e)) {
                  expect(walk(mem, rootOf(table), page)).toBe(-1);
                }
              }
              // Live IOVA ranges never overlap.
              const sorted = [...liveIovas].sort((a, b) => a[0] - b[0]);
              for (let i = 1; i < sorted.length; i++)
                expect(sorted[i]![0]).toBeGreaterThanOrEqual(sorted[i - 1]![1]);
            }
            for (const m of live.splice(0)) dmaUnmapSingle(d, m.addr, m.size, DMA_BIDIRECTIONAL);
            dom.cookie!.fq?.flush();
          });
          expect(dmaDeviceAudit(dev.ref).entries).toEqual([]);
          // Everything returned: the IOVA space holds only cached ranges, none in use.
          const s = dom.cookie!.iovad.stats();
          expect(s.ranges).toBe(s.cachedRanges);
        }),
        { seed: 0x5eed_d0, numRuns: 60 },
      );
    });
  }

  // A few seconds of fixed-seed runs: the time limit is for a loaded machine, not a target.
  it("unmanaged domain: iommuMap/iommuUnmap with mixed page sizes match a page-level model", {
    timeout: 30_000,
  }, () => {
    const env = makeEnv();
    const mmu = addTestIommu(env, { name: "mmu", pgsizeBitmap: 0x1000 | 0x20_0000 });
    const dev = addDevice(env, { name: "u", iommus: [{ iommu: "mmu", ids: [1] }] });
    const mem = env.system.memory;
    const MB2 = 0x20_0000;
    // Slots of 4 MiB in IOVA space; each op maps or unmaps a whole slot-relative run.
    const op = fc.record({
      slot: fc.integer({ min: 1, max: 24 }),
      pages: fc.integer({ min: 1, max: 1024 }),
      start: fc.integer({ min: 0, max: 1023 }),
      pa2m: fc.boolean(),
      map: fc.boolean(),
    });
    fc.assert(
      fc.property(fc.array(op, { maxLength: 25 }), (ops) => {
        const un: IommuDomain = dev.run((d) => iommuPagingDomainAlloc(d));
        dev.run((d) => iommuAttachDevice(un, d));
        const table = mmu.domains.at(-1)!;
        const model = new Map<number, number>(); // iova page → pa page
        const runs: { iova: number; size: number }[] = [];
        for (const o of ops) {
          const start = Math.min(o.start, 1024 - o.pages);
          const iova = o.slot * 2 * MB2 + start * 4096;
          const size = o.pages * 4096;
          const pa =
            0x1_0000_0000 + o.slot * 2 * MB2 + (o.pa2m ? start * 4096 : (start + 1) * 4096);
          if (o.map) {
            let free = true;
            for (let p = 0; p < o.pages; p++) if (model.has(iova + p * 4096)) free = false;
            if (!free) continue;
            iommuMap(un, ioAddr(iova), physAddr(pa), size, IOMMU_READ | IOMMU_WRITE);
            for (let p = 0; p < o.pages; p++) model.set(iova + p * 4096, pa + p * 4096);
            runs.push({ iova, size });
          } else if (runs.length > 0) {
            const r = runs.splice(o.slot % runs.length, 1)[0]!;
            expect(iommuUnmap(un, ioAddr(r.iova), r.size)).toBe(r.size);
            for (let p = 0; p < r.size; p += 4096) model.delete(r.iova + p);
          }
          for (let slot = 1; slot <= 24; slot++) {
            for (let p = 0; p < 1024; p += 37) {
              const at = slot * 2 * MB2 + p * 4096;
              expect(walk(mem, rootOf(table), at)).toBe(model.get(at) ?? -1);
            }
          }
          for (const [at, want] of model)
            expect(walk(mem, rootOf(table), at + 123)).toBe(want + 123);
        }
        dev.run((d) => iommuDetachDevice(un, d));
        iommuDomainFree(un);
      }),
      { seed: 0x0dd_ba11, numRuns: 40 },
    );
    // The runs did exercise block mappings, not only 4K pages.
    expect(blockHits).toBeGreaterThan(0);
  });
});
