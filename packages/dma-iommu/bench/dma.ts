// pnpm bench (second entry) for @devref/dma-iommu: map + unmap of one buffer through the
// device-facing DMA API, in the manner of the kernel's dma_map_benchmark — dma-direct,
// swiotlb, and an IOMMU domain (strict and lazy) — each beside a baseline from the same
// run. The driver runs the loops from an interrupt handler, where it holds a Bound borrow.
// Like dma_map_benchmark, which tests one device per run, each path runs in its own process
// (the argument names it): the engine's feedback from one path's shapes, or from a
// baseline's bare objects, would otherwise colour the next path's figure by tens of ns.
// Prints figures; asserts nothing.
import { definePlatformDriver, PlatformBus } from "@devref/bus";
import { type Device, Machine } from "@devref/device-core";
import {
  DMA_BIDIRECTIONAL,
  DMA_TO_DEVICE,
  DmaSystem,
  type DmaSystemOptions,
  dmaConfigure,
  dmaMapSingle,
  dmaSetMaskAndCoherent,
  dmaUnmapSingle,
  type IommuDomain,
  type IommuOps,
  IovaDomain,
  iommuDeviceRegister,
  iommuIotlbGatherAddPage,
  SwiotlbPool,
} from "@devref/dma-iommu";
import { allocIoPgtable, IotlbGather } from "@devref/io-pgtable";
import {
  type Bound,
  BuddyAllocator,
  type Iova,
  iova,
  type PhysAddr,
  physAddr,
  SparseMemory,
} from "@devref/raw-device";
import { type BenchResult, consume, measure, report } from "../../../scripts/bench.js";

const N = 1_000_000;
let uniq = 0;

/** A minimal IOMMU driver over an ARM LPAE table, like the tests' driver. */
function benchIommuOps(system: DmaSystem): IommuOps {
  const pages = new BuddyAllocator(system.memory, 0x1000_0000, 0x200_0000, 4096);
  return {
    pgsizeBitmap: 0x4020_1000,
    probeDevice: () => {},
    domainAllocPaging: () => {
      let core: IommuDomain | null = null;
      const table = allocIoPgtable(
        "arm-64-lpae-s1",
        {
          pgsizeBitmap: 0x4020_1000,
          ias: 48,
          oas: 48,
          tlb: {
            tlbAddPage: (g, at, granule) =>
              // SAFETY: the table reports the IOVA it was given.
              iommuIotlbGatherAddPage(core!, g, Number(at) as Iova, granule),
          },
        },
        pages,
      );
      return {
        apertureEnd: iova(2 ** 48 - 1),
        forceAperture: true,
        bindDomain: (d: IommuDomain) => {
          core = d;
        },
        attachDev: () => {},
        mapPages: (at: Iova, pa: PhysAddr, pgsize: number, count: number, prot: number) =>
          table.mapPages(at, pa, pgsize, count, prot),
        unmapPages: (at: Iova, pgsize: number, count: number, g: IotlbGather) =>
          table.unmapPages(at, pgsize, count, g),
        iotlbSync: () => {},
        flushIotlbAll: () => {},
        iovaToPhys: (at: Iova) => table.iovaToPhys(at),
        free: () => table[Symbol.dispose](),
      };
    },
  };
}

/** Boots a system with one device and runs `fn` with a Bound borrow of it. */
function withDevice<R>(
  options: DmaSystemOptions,
  maskBits: number,
  behindIommu: boolean,
  fn: (dev: Device<Bound>, system: DmaSystem) => R,
): R {
  uniq++;
  const machine = new Machine({ name: `bench${uniq}` });
  const system = new DmaSystem({ ...options, machine });
  const bus = new PlatformBus({ name: `bench${uniq}`, machine });
  if (behindIommu) {
    const ops = benchIommuOps(system);
    bus.registerDriver(
      definePlatformDriver({
        name: `mmu-drv${uniq}`,
        ofMatchTable: [{ compatible: "bench,mmu" }],
        probe: (dev) => {
          iommuDeviceRegister(system, dev, ops);
          return {};
        },
      }),
    );
    bus.register({ name: "mmu", compatible: ["bench,mmu"] });
  }
  let out: R | undefined;
  let run: (() => void) | null = null;
  bus.registerDriver(
    definePlatformDriver({
      name: `nic-drv${uniq}`,
      ofMatchTable: [{ compatible: "bench,nic" }],
      probe: (dev) => {
        dmaConfigure(system, dev);
        dmaSetMaskAndCoherent(dev, maskBits);
        // What an interrupt handler gets: a Bound borrow while the driver is bound.
        run = dev.devmCallback((d) => {
          out = fn(d, system);
        }, "bench");
        return {};
      },
    }),
  );
  bus.register({
    name: "nic",
    compatible: ["bench,nic"],
    ...(behindIommu ? { iommus: [{ iommu: "mmu", ids: [1] }] } : {}),
  });
  run!();
  return out!;
}

function mapUnmapLoop(label: string, size: number, dir: 0 | 1, where: "low" | "high") {
  return (dev: Device<Bound>, system: DmaSystem): BenchResult => {
    const buf = system.allocBuffer(65536, where);
    return measure(label, N, (n) => {
      let s = 0;
      for (let i = 0; i < n; i++) {
        const a = dmaMapSingle(dev, buf, size, dir);
        dmaUnmapSingle(dev, a, size, dir);
        s += a;
      }
      consume(s);
    });
  };
}

/** One device-level path: its figure, then its same-run baselines, then the report. */
function directPath(): void {
  const direct = withDevice(
    {},
    64,
    false,
    mapUnmapLoop("dmaMapSingle + unmap, 4K, dma-direct", 4096, DMA_TO_DEVICE, "high"),
  );
  // What per-mapping tracking costs at minimum: a Map set + delete on the address.
  const track = new Map<number, number>();
  const mapBaseline = measure("Map.set + Map.delete (address key)", N, (n) => {
    let s = 0;
    for (let i = 0; i < n; i++) {
      const key = 0x8_0000_0000 + (i & 7) * 4096;
      track.set(key, i);
      track.delete(key);
      s += key;
    }
    consume(s);
  });
  report("dma-direct: 4K map + unmap (64-bit device, high buffer)", direct, mapBaseline, {
    atMost: 30,
  });
}

/** A 32-bit device and a buffer above 4 GiB bounce; baseline: the pool alone. */
function swiotlbPath(): void {
  const toDevice = withDevice(
    {},
    32,
    false,
    mapUnmapLoop("dmaMapSingle + unmap, 2K, swiotlb", 2048, DMA_TO_DEVICE, "high"),
  );
  const bidi = withDevice(
    {},
    32,
    false,
    mapUnmapLoop("dmaMapSingle + unmap, 2K, swiotlb, BIDI", 2048, DMA_BIDIRECTIONAL, "high"),
  );
  const mem = new SparseMemory();
  const pool = new SwiotlbPool(mem, { base: 0x4000_0000, nslabs: 32_768 });
  const orig = physAddr(0x8_0000_0000);
  mem.writeBytes(orig, new Uint8Array(2048).fill(7));
  const poolOnly = measure("SwiotlbPool map + unmap, 2 KiB, TO_DEVICE", N / 2, (n) => {
    let s = 0;
    for (let i = 0; i < n; i++) {
      const b = pool.map(orig, 2048, DMA_TO_DEVICE);
      pool.unmap(b, 2048, DMA_TO_DEVICE);
      s += b;
    }
    consume(s);
  });
  report("swiotlb: 2 KiB map + unmap, TO_DEVICE (32-bit device, high buffer)", toDevice, poolOnly, {
    atMost: 500,
  });
  report("swiotlb: 2 KiB map + unmap, BIDIRECTIONAL (copy in and out)", bidi, poolOnly, {
    atMost: 500,
  });
}

/**
 * An IOMMU domain (strict or lazy); baseline: the page table alone, one 4K page mapped and
 * unmapped, then where the path's time goes: the table with a TLB gather (what a strict
 * unmap needs, one tlbAddPage per page) and the IOVA allocator, each measured alone.
 */
function iommuPath(mode: "strict" | "lazy"): void {
  const subject = withDevice(
    { iommuDefaultDomain: mode },
    64,
    true,
    mapUnmapLoop(`dmaMapSingle + unmap, 4K, IOMMU ${mode}`, 4096, DMA_TO_DEVICE, "high"),
  );
  const tmem = new SparseMemory();
  const tpages = new BuddyAllocator(tmem, 0x1000_0000, 0x100_0000, 4096);
  const table = allocIoPgtable(
    "arm-64-lpae-s1",
    { pgsizeBitmap: 0x4020_1000, ias: 48, oas: 48 },
    tpages,
  );
  const tableOnly = measure("io-pgtable mapPages + unmapPages, one 4K page", N, (n) => {
    let s = 0;
    for (let i = 0; i < n; i++) {
      const at = iova(0xf_fff0_0000 + (i & 7) * 4096);
      s += table.mapPages(at, physAddr(0x8_0000_0000), 4096, 1, 3);
      table.unmapPages(at, 4096, 1);
    }
    consume(s);
  });
  const gathered = new IotlbGather(false);
  const gtable = allocIoPgtable(
    "arm-64-lpae-s1",
    {
      pgsizeBitmap: 0x4020_1000,
      ias: 48,
      oas: 48,
      tlb: { tlbAddPage: (_g, at, granule) => gathered.addRange(Number(at), granule) },
    },
    tpages,
  );
  const tableGather = measure("io-pgtable map + unmap, 4K, with a gather", N, (n) => {
    let s = 0;
    for (let i = 0; i < n; i++) {
      const at = iova(0xf_fff0_0000 + (i & 7) * 4096);
      s += gtable.mapPages(at, physAddr(0x8_0000_0000), 4096, 1, 3);
      gtable.unmapPages(at, 4096, 1, gathered);
      gathered.reset();
    }
    consume(s);
  });
  const iovad = new IovaDomain(4096, 1);
  const policy = { device: "bench", prefer32: false, busDmaLimit: 0, apertureEnd: 2 ** 48 - 1 };
  const iovaOnly = measure("IOVA alloc + free (tryAllocForDevice, cached)", N, (n) => {
    let s = 0;
    for (let i = 0; i < n; i++) {
      const a = iovad.tryAllocForDevice(4096, 2 ** 48 - 1, policy);
      iovad.freeIovaFast(a / 4096, 1);
      s += a;
    }
    consume(s);
  });
  const title =
    mode === "strict"
      ? "IOMMU domain, strict: 4K map + unmap"
      : "IOMMU domain, lazy (flush queue of 256): 4K map + unmap";
  report(title, subject, tableOnly, { atMost: 150 });
  console.log(
    `  of which, measured alone: ${tableGather.name} ${tableGather.nsPerOp.toFixed(2)} ns,`,
  );
  console.log(`    ${iovaOnly.name} ${iovaOnly.nsPerOp.toFixed(2)} ns`);
}

const PATHS: Readonly<Record<string, () => void>> = {
  direct: directPath,
  swiotlb: swiotlbPath,
  strict: () => iommuPath("strict"),
  lazy: () => iommuPath("lazy"),
};
const which = process.argv[2] ?? "";
const path = PATHS[which];
if (path === undefined) {
  console.error(`bench/dma.ts: name a path: ${Object.keys(PATHS).join(", ")}`);
  process.exitCode = 2;
} else {
  path();
}
