//! The virtio-blk scenario: boot the reference SoC, probe the disk, run a little I/O (an id,
//! writes, reads past the queue depth, a flush), tear everything down and audit what is
//! left. `explore` reruns it with a fault at every step.

import { PciBus, PlatformBus } from "@devref/bus";
import type { LogRecord } from "@devref/device-core";
import { DmaSystem } from "@devref/dma-iommu";
import { createAppleDartDriver } from "@devref/example-apple-dart";
import {
  createReferenceSoc,
  describeException,
  describeSoc,
  describeUseAfterFree,
  type Scenario,
  type ScenarioException,
  ScenarioObserver,
  type ScenarioOptions,
  type ScenarioOutcome,
} from "@devref/sim";
import { auditLeaks } from "./audit.js";
import type { VirtioBlkDisk } from "./disk.js";
import { VirtioBlkDriver } from "./driver.js";

/** The PCI function of the reference SoC's disk (slot 0). */
export const VIRTIO_BLK_FUNCTION = "0000:00:00.0";
/** Capacity of the scenario's disk in 512-byte sectors (512 KiB). */
const SECTORS = 1024;
const BLOCK = 512;

/** How {@link createVirtioBlkScenario} builds its scenario. */
export interface VirtioBlkScenarioOptions {
  /** Scenario name (default `virtio-blk`). */
  readonly name?: string;
  /**
   * Put the disk behind dart0 stream 1 with the Apple DART driver bound (default true);
   * false leaves the disk on dma-direct.
   */
  readonly iommu?: boolean;
  /** Requests in flight at most (default 4). */
  readonly queueDepth?: number;
}

/** A disk image with a pattern that depends on the seed, so reads of unwritten blocks check real data. */
function patternImage(seed: number): Uint8Array {
  const words = new Uint32Array((SECTORS * BLOCK) / 4);
  let x = (seed * 0x9e37_79b9 + 1) >>> 0;
  for (let i = 0; i < words.length; i++) {
    x = (Math.imul(x, 1_103_515_245) + 12_345) >>> 0;
    words[i] = x;
  }
  return new Uint8Array(words.buffer);
}

function fill(len: number, tag: number): Uint8Array {
  const a = new Uint8Array(len);
  for (let i = 0; i < len; i++) a[i] = (tag + i * 7) & 0xff;
  return a;
}

function equal(a: Uint8Array, b: Uint8Array): boolean {
  if (a.length !== b.length) return false;
  for (let i = 0; i < a.length; i++) if (a[i] !== b[i]) return false;
  return true;
}

/**
 * Makes the virtio-blk scenario. Its `run` builds a fresh reference SoC with the given seed
 * (the disk holds a seeded pattern), schedules the faults, registers the driver, describes
 * the SoC, and runs: GET_ID; a 4 KiB write and its read-back; a 16 KiB write beside six
 * reads (more than the queue depth); a flush; the 16 KiB read-back; then unregisters
 * everything and audits. Every completed write must be in the disk image, every completed
 * read must return the expected bytes, and a request may only fail with `ENODEV` (removed)
 * or `EIO` (device error, reset).
 *
 * **Errors:** `run` never throws; it reports in the outcome.
 *
 * @example
 * ```ts
 * const report = await explore(createVirtioBlkScenario(), { kinds: ["unplug"] });
 * report.failures; // []
 * ```
 */
export function createVirtioBlkScenario(options: VirtioBlkScenarioOptions = {}): Scenario {
  const name = options.name ?? "virtio-blk";
  const iommu = options.iommu ?? true;
  const depth = options.queueDepth ?? 4;
  return {
    name,
    description:
      "virtio-blk on the reference SoC's PCI slot: probe, GET_ID, writes, reads beyond the queue depth, flush, teardown",
    injections: iommu
      ? {
          unplug: { kind: "unplug", target: "vblk0" },
          "iommu-fault": { kind: "iommu-fault", target: "dart0", sid: 1, next: true },
          "dma-error": { kind: "dma-error", target: "vblk0", count: 1 },
        }
      : {
          unplug: { kind: "unplug", target: "vblk0" },
          "dma-error": { kind: "dma-error", target: "vblk0", count: 1 },
        },
    run: (runOptions: ScenarioOptions = {}) => runScenario(name, iommu, depth, runOptions),
  };
}

async function runScenario(
  name: string,
  iommu: boolean,
  depth: number,
  options: ScenarioOptions,
): Promise<ScenarioOutcome> {
  const seed = options.seed ?? 1;
  const say = options.narrate ?? (() => {});
  const exceptions: ScenarioException[] = [];
  const logs: LogRecord[] = [];
  const { soc, blk } = createReferenceSoc({
    seed,
    name,
    iommu,
    smc: false,
    trace: options.trace ?? "digest",
    // Service times vary with the seed, so requests complete out of order.
    blk: { image: patternImage(seed), jitterNs: 10_000 },
    logSink: (r) => {
      logs.push(r);
      say(`  log: ${r.text}`);
    },
  });
  for (const f of options.faults ?? []) soc.faults.schedule(f.at, f.spec);
  const observer = new ScenarioObserver(soc, options);
  const disk0 = blk!;
  const image = disk0.image;
  const expected = image.slice();
  const system = new DmaSystem({
    machine: soc.machine,
    memory: soc.memory,
    ram: soc.ram,
    // The disk has a 64-bit mask and never bounces: a small pool (1 MiB) is enough.
    swiotlb: { nslabs: 512 },
  });
  const ramBefore = soc.ram.bytesInUse;
  const platform = new PlatformBus({ machine: soc.machine });
  const pci = new PciBus({ machine: soc.machine });
  const vblk = new VirtioBlkDriver({ timers: soc.events, queueDepth: depth });
  const codes = new Set<string>();
  const settle = async (): Promise<void> => {
    try {
      await soc.settle();
    } catch (e) {
      exceptions.push(describeException(e));
    }
  };
  /** Runs one request to its end; null when it failed (recorded). */
  const io = async <T>(what: string, p: Promise<T>): Promise<T | null> => {
    let settledP = false;
    p.then(
      () => {
        settledP = true;
      },
      () => {
        settledP = true;
      },
    );
    await settle();
    for (let i = 0; i < 16 && !settledP; i++) await null;
    if (!settledP) {
      // The SoC is idle and the request still waits: the driver lost it.
      exceptions.push({ devref: false, code: null, message: `${what} never completed` });
      return null;
    }
    try {
      const v = await p;
      say(`${what}: done`);
      return v;
    } catch (e) {
      const x = describeException(e);
      if (x.code !== null) codes.add(x.code);
      say(`${what}: failed, ${x.message}`);
      if (!x.devref || (x.code !== "ENODEV" && x.code !== "EIO")) {
        exceptions.push({
          devref: false,
          code: x.code,
          message: `${what} failed unexpectedly: ${x.message}`,
        });
      }
      return null;
    }
  };
  const completedWrites: { lba: number; data: Uint8Array }[] = [];
  // A write that failed may have reached the medium or not, block by block.
  const maybe = new Map<number, Uint8Array>();
  const check = (what: string, lba: number, got: Uint8Array | null): void => {
    if (got === null) return;
    for (let b = 0; b < got.length / BLOCK; b++) {
      const at = (lba + b) * BLOCK;
      const block = got.subarray(b * BLOCK, (b + 1) * BLOCK);
      const alt = maybe.get(lba + b);
      if (
        !equal(block, expected.subarray(at, at + BLOCK)) &&
        (alt === undefined || !equal(block, alt))
      ) {
        exceptions.push({
          devref: false,
          code: null,
          message: `${what} returned wrong data at block ${lba + b}`,
        });
        return;
      }
    }
  };
  const wrote = (lba: number, data: Uint8Array, ok: boolean): void => {
    for (let b = 0; b < data.length / BLOCK; b++) {
      if (ok) maybe.delete(lba + b);
      else maybe.set(lba + b, data.subarray(b * BLOCK, (b + 1) * BLOCK));
    }
    if (!ok) return;
    completedWrites.push({ lba, data });
    expected.set(data, lba * BLOCK);
  };
  const write = async (
    what: string,
    disk: VirtioBlkDisk,
    lba: number,
    data: Uint8Array,
  ): Promise<void> => {
    wrote(lba, data, (await io(what, disk.write(lba, data))) !== null);
  };

  const darts = iommu ? createAppleDartDriver({ system }) : null;
  let dartRegistration: ReturnType<PlatformBus["registerDriver"]> | null = null;
  let registration: ReturnType<PciBus["registerDriver"]> | null = null;
  let fw: ReturnType<typeof describeSoc> | null = null;
  let probed = false;
  try {
    say(`boot: reference SoC, seed ${seed}${iommu ? ", disk behind dart0" : ", no IOMMU"}`);
    if (darts !== null) dartRegistration = platform.registerDriver(darts.driver);
    registration = pci.registerDriver(vblk.driver);
    fw = describeSoc(soc, { platform, pci });
    await settle();
    const names = vblk.diskNames();
    probed = names.includes(VIRTIO_BLK_FUNCTION);
    say(probed ? `probe: ${VIRTIO_BLK_FUNCTION} bound` : "probe: no disk bound");
    if (probed) {
      const disk = vblk.disk(VIRTIO_BLK_FUNCTION);
      say(`disk: ${disk.capacity} blocks, ${disk.irqMode}, depth ${disk.queueDepth}`);
      const id = await io("GET_ID", disk.getId());
      if (id !== null && id !== disk0.serial) {
        exceptions.push({ devref: false, code: null, message: `GET_ID returned '${id}'` });
      }
      await write("write 4 KiB at block 0", disk, 0, fill(4096, seed));
      check("read 4 KiB at block 0", 0, await io("read 4 KiB at block 0", disk.read(0, 8)));
      // A 16 KiB write (several pages: a scatterlist) beside six reads: more than the
      // queue depth, so some wait for a slot.
      const big = fill(16384, seed + 1);
      const burst: Promise<unknown>[] = [];
      const bigP = disk.write(64, big);
      burst.push(bigP);
      const reads = [200, 300, 400, 500, 600, 700].map((lba) => ({ lba, p: disk.read(lba, 8) }));
      for (const r of reads) burst.push(r.p);
      say(`burst: ${disk.inFlight} in flight, ${disk.queued} queued`);
      await settle();
      wrote(64, big, (await io("write 16 KiB at block 64", bigP)) !== null);
      for (const r of reads)
        check(`read at block ${r.lba}`, r.lba, await io(`read at block ${r.lba}`, r.p));
      await io("flush", disk.flush());
      check("read 16 KiB at block 64", 64, await io("read 16 KiB at block 64", disk.read(64, 32)));
      say(`stats: ${JSON.stringify(disk.stats)}`);
    }
    observer.point();
  } catch (e) {
    exceptions.push(describeException(e));
  }
  // Teardown: the driver first (remove() runs for a bound disk), then the SoC's devices.
  try {
    registration?.unregister();
    fw?.remove();
    dartRegistration?.unregister();
    await settle();
  } catch (e) {
    exceptions.push(describeException(e));
  }
  for (const w of completedWrites) {
    if (!equal(image.subarray(w.lba * BLOCK, w.lba * BLOCK + w.data.length), w.data)) {
      exceptions.push({
        devref: false,
        code: null,
        message: `completed write at block ${w.lba} is not in the disk image`,
      });
    }
  }
  const leaks = auditLeaks(soc.machine, system, soc.ram.bytesInUse - ramBefore);
  say(leaks.length === 0 ? "audit: nothing left" : `audit: ${leaks.join("; ")}`);
  observer.finish();
  const result = !probed
    ? "no disk"
    : codes.has("ENODEV")
      ? "device removed"
      : codes.has("EIO")
        ? "I/O error"
        : "completed";
  return {
    scenario: name,
    seed,
    steps: soc.stepCount,
    timeNs: soc.nowNs,
    digest: soc.traceDigest(),
    result,
    exceptions,
    leaks,
    useAfterFree: describeUseAfterFree(soc.dmaUseAfterFree()),
  };
}

/** The virtio-blk scenario with its defaults (see {@link createVirtioBlkScenario}). */
export const virtioBlkScenario: Scenario = createVirtioBlkScenario();
