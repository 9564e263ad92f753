// pnpm bench for @devref/sim: simulated MMIO accesses and DART translations per second, each
// beside a same-run baseline. Prints figures; asserts nothing.

import { definePlatformDriver, PlatformBus } from "@devref/bus";
import type { Devres, MmioRegion } from "@devref/device-core";
import { consume, measure, report } from "../../../scripts/bench.js";
import {
  Dart,
  DeviceModel,
  type MmioHandler,
  type MmioPort,
  type MmioWidth,
  Soc,
  type TraceMode,
} from "../src/index.js";

const N = 5_000_000;
const BASE = 0x2_0000_0000;

/** A register file: the cheapest device a port can front. */
class Regs extends DeviceModel implements MmioHandler {
  readonly words = new Uint32Array(1024);
  readonly port: MmioPort;
  constructor(soc: Soc) {
    super(soc, "regs", "bench");
    this.port = this.addPort("regs", 0x1000, this);
    soc.fabric.map(BASE, this.port, "regs");
  }
  mmioRead(offset: number, _width: MmioWidth): number {
    return this.words[offset >>> 2]!;
  }
  mmioWrite(offset: number, _width: MmioWidth, value: number): void {
    this.words[offset >>> 2] = value;
  }
}

function mmioSoc(trace: TraceMode): { soc: Soc; regs: Regs } {
  const soc = new Soc({ trace, traceLimit: 1024 });
  return { soc, regs: new Regs(soc) };
}

const plain = new Uint32Array(1024);
const baseline = measure("Uint32Array read (same offsets)", N, (n) => {
  let s = 0;
  for (let i = 0; i < n; i++) s = (s + plain[(i & 255) << 0]!) | 0;
  consume(s);
});

for (const mode of ["off", "digest"] as const) {
  const { soc, regs } = mmioSoc(mode);
  const port = regs.port;
  const viaPort = measure(`MmioPort.read32 (trace ${mode})`, N, (n) => {
    let s = 0;
    for (let i = 0; i < n; i++) s = (s + port.read32((i & 255) << 2)) | 0;
    consume(s);
  });
  report(
    `MMIO read through a port, trace ${mode}`,
    viaPort,
    baseline,
    mode === "off" ? { perSecondAtLeast: 20_000_000 } : undefined,
  );
  console.log(
    `  = ${(1000 / viaPort.nsPerOp).toFixed(1)} M accesses/s (steps counted: ${soc.stepCount})`,
  );
  const viaFabric = measure(`MmioFabric.read32 by PA (trace ${mode})`, N, (n) => {
    let s = 0;
    for (let i = 0; i < n; i++) s = (s + soc.fabric.read32(BASE + ((i & 255) << 2))) | 0;
    consume(s);
  });
  report(
    `MMIO read by physical address through the fabric, trace ${mode}`,
    viaFabric,
    baseline,
    mode === "off" ? { perSecondAtLeast: 20_000_000 } : undefined,
  );
  console.log(`  = ${(1000 / viaFabric.nsPerOp).toFixed(1)} M accesses/s`);
  const writes = measure(`MmioPort.write32 (trace ${mode})`, N, (n) => {
    for (let i = 0; i < n; i++) port.write32((i & 255) << 2, i);
  });
  report(`MMIO write through a port, trace ${mode}`, writes, baseline);
  console.log(`  = ${(1000 / writes.nsPerOp).toFixed(1)} M accesses/s`);
}

// DART: stream 1 translating 4096 16 KiB pages through a two-level DART2 table.
const PAGES = 4096;
const PG = 0x4000;
function dartWith(entries: number): Dart {
  const s = new Soc({ trace: "off" });
  const dart = new Dart(s, {
    name: "dart0",
    variant: "t8110",
    base: 0x2_8000_0000,
    irq: 1,
    iotlbEntries: entries,
  });
  const mem = s.memory;
  const top = s.ram.alloc(PG, PG);
  const leaf = s.ram.alloc(PG, PG);
  const enc = (pa: number): [number, number] => {
    const v = pa / 16;
    return [((v % 2 ** 32) & 0xffff_fc00) >>> 0, Math.floor(v / 2 ** 32) & 0x3f];
  };
  const [tlo, thi] = enc(leaf);
  mem.write64(top, (tlo | 1) >>> 0, thi);
  const data = s.ram.alloc(PAGES * PG, PG);
  for (let i = 0; i < PAGES; i++) {
    const [lo, hi] = enc(data + i * PG);
    mem.write64(leaf + 8 * i, (lo | 1) >>> 0, (hi | (0xfff << 8)) >>> 0);
  }
  dart.port.write32(0xc00, 0xffff_ffff);
  dart.port.write32(0x1400 + 4, (1 | ((top / PG) << 2)) >>> 0);
  dart.port.write32(0x1000 + 4, 1);
  return dart;
}

const hot = dartWith(64);
for (let i = 0; i < 16; i++) hot.translate(1, i * PG, false);
const hit = measure("Dart.translate, IOTLB hit (16 pages)", N, (n) => {
  let s = 0;
  for (let i = 0; i < n; i++) s = (s + hot.translate(1, (i & 15) * PG + 64, false)) | 0;
  consume(s);
});
const map = new Map<number, number>();
for (let i = 0; i < 16; i++) map.set(0x1_0000_0000 + i, i * PG);
const mapGet = measure("Map.get (16 keys above 2^32)", N, (n) => {
  let s = 0;
  for (let i = 0; i < n; i++) s = (s + (map.get(0x1_0000_0000 + (i & 15)) ?? 0)) | 0;
  consume(s);
});
report("DART translation, IOTLB hit", hit, mapGet, { perSecondAtLeast: 10_000_000 });
console.log(`  = ${(1000 / hit.nsPerOp).toFixed(1)} M translations/s`);

const cold = dartWith(64);
const miss = measure("Dart.translate, IOTLB miss (walk + fill)", N / 5, (n) => {
  let s = 0;
  // 4096 pages cycled through a 64-entry LRU: every lookup misses and walks.
  for (let i = 0; i < n; i++) s = (s + cold.translate(1, (i & (PAGES - 1)) * PG, false)) | 0;
  consume(s);
});
report("DART translation, IOTLB miss", miss, mapGet);
console.log(`  = ${(1000 / miss.nsPerOp).toFixed(1)} M translations/s`);

// A DMA master reading 32-bit words through the DART (IOTLB hit) versus directly.
const dmaSoc = new Soc({ trace: "off" });
const direct = dmaSoc.dmaMaster("direct");
const ram = dmaSoc.ram.alloc(PG, PG);
const viaDirect = measure("DmaPort.read32, no IOMMU", N, (n) => {
  let s = 0;
  for (let i = 0; i < n; i++) s = (s + direct.read32(ram + ((i & 255) << 2))) | 0;
  consume(s);
});
const memRead = measure("SparseMemory.read32", N, (n) => {
  let s = 0;
  for (let i = 0; i < n; i++) s = (s + dmaSoc.memory.read32(ram + ((i & 255) << 2))) | 0;
  consume(s);
});
report("DMA read32 without an IOMMU", viaDirect, memRead);

// The driver's path: a platform driver's mapped region (device-core MmioRegion) over a
// model's port, versus the port itself.
{
  const { soc, regs } = mmioSoc("off");
  const platform = new PlatformBus({ machine: soc.machine });
  let mapped: Devres<MmioRegion> | null = null;
  platform.registerDriver(
    definePlatformDriver({
      name: "bench-regs",
      probe: (dev) => {
        mapped = dev.ioremapResource(0);
        return null;
      },
    }),
  );
  const dev = platform.register({
    name: "bench-regs",
    mem: [{ start: BASE, size: 0x1000, backend: regs.port }],
  });
  // SAFETY: widens back what the probe callback assigned (flow analysis sees only null).
  const region = (mapped as Devres<MmioRegion> | null)?.tryAccess();
  if (region === undefined) throw new Error("the bench driver did not bind");
  const port = regs.port;
  const viaRegion = measure("MmioRegion.read32 over a port (trace off)", N, (n) => {
    let s = 0;
    for (let i = 0; i < n; i++) s = (s + region.read32((i & 255) << 2)) | 0;
    consume(s);
  });
  const viaPort = measure("MmioPort.read32 (trace off)", N, (n) => {
    let s = 0;
    for (let i = 0; i < n; i++) s = (s + port.read32((i & 255) << 2)) | 0;
    consume(s);
  });
  report("MMIO read from a driver's mapped region", viaRegion, viaPort);
  console.log(`  = ${(1000 / viaRegion.nsPerOp).toFixed(1)} M accesses/s`);
  platform.unregister(dev);
}
