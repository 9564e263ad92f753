// pnpm bench for @devref/example-virtio-blk: 4 KiB random reads per second through the
// driver on the simulated SoC (behind the DART, and on dma-direct), beside the same reads
// from a plain in-memory array. Prints figures; asserts nothing.
//
// Each measured read is the whole path: the block API call, the descriptor chain in the
// coherent ring, the streaming map of the data page (an IOVA through the DART's tables),
// the notification, the device model taking the chain and moving 4 KiB by DMA, the MSI,
// the interrupt handler, the unmap and the copy out. The SoC runs on virtual time, so the
// figure is host time per read, not the simulated disk's speed.

import { PciBus, PlatformBus } from "@devref/bus";
import { DmaSystem } from "@devref/dma-iommu";
import { createAppleDartDriver } from "@devref/example-apple-dart";
import { createReferenceSoc, describeSoc } from "@devref/sim";
import { type BenchResult, consume, measure, report } from "../../../scripts/bench.js";
import { type VirtioBlkDisk, VirtioBlkDriver } from "../src/index.js";

const SECTORS = 16384; // an 8 MiB disk: 2048 blocks of 4 KiB
const BLOCKS_4K = SECTORS / 8;
const N = 2000;

/** Seeded block numbers (no Math.random): the same random reads in every run. */
function randomBlocks(count: number, seed: number): Uint32Array {
  const out = new Uint32Array(count);
  let x = seed >>> 0;
  for (let i = 0; i < count; i++) {
    x = (Math.imul(x, 1_664_525) + 1_013_904_223) >>> 0;
    out[i] = x % BLOCKS_4K;
  }
  return out;
}

interface Disk {
  readonly disk: VirtioBlkDisk;
  readonly run: () => void;
  readonly image: Uint8Array;
}

async function boot(iommu: boolean, irq: "msix" | "intx" = "msix"): Promise<Disk> {
  const { soc, blk } = createReferenceSoc({
    seed: 1,
    iommu,
    smc: false,
    trace: "off",
    logSink: () => {},
    blk: { capacity: SECTORS },
  });
  const system = new DmaSystem({
    machine: soc.machine,
    memory: soc.memory,
    ram: soc.ram,
    swiotlb: { nslabs: 512 },
  });
  const platform = new PlatformBus({ machine: soc.machine });
  const pci = new PciBus({ machine: soc.machine });
  if (iommu) platform.registerDriver(createAppleDartDriver({ system }).driver);
  const vblk = new VirtioBlkDriver({ timers: soc.events, irq });
  pci.registerDriver(vblk.driver);
  describeSoc(soc, { platform, pci });
  await soc.settle();
  const image = blk!.image;
  for (let i = 0; i < image.length; i++) image[i] = (i * 13 + (i >>> 12)) & 0xff;
  return { disk: vblk.disk("0000:00:00.0"), run: () => soc.run(), image };
}

const lbas = randomBlocks(N, 42);

/**
 * `depth` reads at a time, the SoC run until they are done, their promises awaited (as a
 * caller would, so no buffer outlives its read): the median of `rounds` rounds of `n`
 * reads, per read. (The shared harness times synchronous bodies; these reads settle
 * promises, so this loop times them the same way by hand.)
 */
async function measureReads(
  name: string,
  d: Disk,
  depth: number,
  n = 2000,
  rounds = 9,
): Promise<BenchResult> {
  const batch: Promise<Uint8Array>[] = [];
  let s = 0;
  const round = async (): Promise<number> => {
    const t0 = process.hrtime.bigint();
    for (let i = 0; i < n; i += depth) {
      batch.length = 0;
      for (let k = 0; k < depth; k++) batch.push(d.disk.read(lbas[(i + k) % N]! * 8, 8));
      d.run();
      for (const b of await Promise.all(batch)) s += b[0]!;
    }
    return Number(process.hrtime.bigint() - t0) / n;
  };
  await round(); // warm-up
  const times: number[] = [];
  for (let r = 0; r < rounds; r++) times.push(await round());
  consume(s);
  times.sort((a, b) => a - b);
  const median = times[Math.floor(rounds / 2)]!;
  const mad = times.map((t) => Math.abs(t - median)).sort((a, b) => a - b)[Math.floor(rounds / 2)]!;
  return { name, nsPerOp: median, minNsPerOp: times[0]!, spread: mad / median, samples: rounds };
}

const plain = new Uint8Array(SECTORS * 512);
for (let i = 0; i < plain.length; i++) plain[i] = (i * 13 + (i >>> 12)) & 0xff;
const baseline = measure("4 KiB copy out of a Uint8Array", 1000, (n) => {
  let s = 0;
  for (let i = 0; i < n; i++) {
    const off = lbas[i % N]! * 4096;
    const buf = new Uint8Array(4096);
    buf.set(plain.subarray(off, off + 4096));
    s += buf[0]!;
  }
  consume(s);
});

const dart = await boot(true);
// Check once that the path returns the right bytes before timing it.
{
  const p = dart.disk.read(lbas[0]! * 8, 8);
  dart.run();
  const got = await p;
  const off = lbas[0]! * 4096;
  if (got.some((b, i) => b !== dart.image[off + i])) throw new Error("the bench read wrong data");
}
const viaDart = await measureReads("virtio-blk read, 4 KiB, DART, queue depth 1", dart, 1);
report("4 KiB random reads through the DART (queue depth 1)", viaDart, baseline);
const viaDart4 = await measureReads("virtio-blk read, 4 KiB, DART, queue depth 4", dart, 4);
report("4 KiB random reads through the DART (4 in flight)", viaDart4, baseline);

const direct = await boot(false);
const viaDirect = await measureReads("virtio-blk read, 4 KiB, dma-direct, depth 1", direct, 1);
report("4 KiB random reads on dma-direct (queue depth 1)", viaDirect, baseline);

const intx = await boot(true, "intx");
const viaIntx = await measureReads("virtio-blk read, 4 KiB, DART, INTx, depth 1", intx, 1);
report("4 KiB random reads through the DART with INTx (queue depth 1)", viaIntx, baseline);

const rate = (ns: number): string => `${Math.round(1e9 / ns).toLocaleString("en-US")} reads/s`;
console.log(
  `\nreads per second: DART ${rate(viaDart.nsPerOp)} (QD1), ${rate(viaDart4.nsPerOp)} (QD4); ` +
    `dma-direct ${rate(viaDirect.nsPerOp)}; in-memory array ${rate(baseline.nsPerOp)}`,
);
