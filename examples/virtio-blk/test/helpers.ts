// The simulated reference SoC with its DMA layer, the buses, the virtio-blk driver (and,
// behind the DART, the Apple DART driver) registered and the SoC described: what every
// test starts from, plus the teardown that audits what is left.
import { PciBus, PlatformBus } from "@devref/bus";
import type { LogRecord } from "@devref/device-core";
import { DmaSystem } from "@devref/dma-iommu";
import { createAppleDartDriver } from "@devref/example-apple-dart";
import type { DevrefError } from "@devref/raw-device";
import {
  createReferenceSoc,
  describeSoc,
  REFERENCE_MAP,
  type ReferenceSoc,
  type ReferenceSocOptions,
  type Soc,
  type SocFirmware,
  type VirtioBlk,
} from "@devref/sim";
import { auditLeaks, VirtioBlkDriver, type VirtioBlkDriverOptions } from "../src/index.js";

export const FN = "0000:00:00.0";

export interface Rig {
  readonly ref: ReferenceSoc;
  readonly soc: Soc;
  /** The disk model (its image is what a completed write changes). */
  readonly blk: VirtioBlk;
  readonly system: DmaSystem;
  readonly platform: PlatformBus;
  readonly pci: PciBus;
  readonly vblk: VirtioBlkDriver;
  readonly logs: LogRecord[];
  readonly fw: SocFirmware;
  /** Errors and warnings logged so far. */
  problems(): string[];
  /** Unregisters the virtio-blk driver and registers it again (a new probe starts). */
  reregister(): void;
  /** {@link reregister}, then settles. */
  rebind(): Promise<void>;
  /** Unregisters the drivers, removes the devices, settles, and returns what is left. */
  teardown(): Promise<string[]>;
}

export interface RigOptions {
  /** Behind dart0 with the DART driver bound (default false: dma-direct). */
  readonly iommu?: boolean;
  /** SoC options (the disk's under `blk`). */
  readonly soc?: Omit<ReferenceSocOptions, "iommu">;
  readonly driver?: Partial<VirtioBlkDriverOptions>;
  /** Create the DMA layer (default true). */
  readonly dma?: boolean;
}

/** Builds and settles the rig. */
export async function rig(options: RigOptions = {}): Promise<Rig> {
  const logs: LogRecord[] = [];
  const iommu = options.iommu ?? false;
  const ref = createReferenceSoc({
    seed: 1,
    smc: false,
    trace: "full",
    traceLimit: 100_000,
    logSink: (r) => logs.push(r),
    ...options.soc,
    iommu,
  });
  const soc = ref.soc;
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
  const darts = iommu ? createAppleDartDriver({ system }) : null;
  const dartReg = darts === null ? null : platform.registerDriver(darts.driver);
  const vblk = new VirtioBlkDriver({ timers: soc.events, ...options.driver });
  let reg = pci.registerDriver(vblk.driver);
  const fw = describeSoc(soc, { platform, pci });
  await soc.settle();
  return {
    ref,
    soc,
    blk: ref.blk!,
    system,
    platform,
    pci,
    vblk,
    logs,
    fw,
    problems: () => logs.filter((r) => r.level === "err" || r.level === "warn").map((r) => r.text),
    reregister: () => {
      reg.unregister();
      reg = pci.registerDriver(vblk.driver);
    },
    rebind: async () => {
      reg.unregister();
      reg = pci.registerDriver(vblk.driver);
      await soc.settle();
    },
    teardown: async () => {
      reg.unregister();
      fw.remove();
      dartReg?.unregister();
      await soc.settle();
      return auditLeaks(soc.machine, system, soc.ram.bytesInUse - ramBefore);
    },
  };
}

/** Settles the SoC, then returns the promise's value. */
export async function done<T>(r: Rig, p: Promise<T>): Promise<T> {
  await r.soc.settle();
  return p;
}

/** Settles the SoC and returns the error the promise was rejected with. */
export async function failure(r: Rig, p: Promise<unknown>): Promise<DevrefError> {
  await r.soc.settle();
  try {
    await p;
  } catch (e) {
    return e as DevrefError;
  }
  throw new Error("the promise did not fail");
}

/** A promise's outcome once settled: its value, or the errno of its rejection. */
export function outcome<T>(p: Promise<T>): { value?: T; code?: string; settled: boolean } {
  const o: { value?: T; code?: string; settled: boolean } = { settled: false };
  p.then(
    (v) => {
      o.value = v;
      o.settled = true;
    },
    (e: DevrefError) => {
      o.code = e.code;
      o.settled = true;
    },
  );
  return o;
}

/** `len` bytes of a pattern that depends on `tag`. */
export function pattern(len: number, tag: number): Uint8Array {
  const a = new Uint8Array(len);
  for (let i = 0; i < len; i++) a[i] = (tag * 31 + i * 7 + (i >> 9)) & 0xff;
  return a;
}

/** The disk image's bytes of 512-byte sectors [sector, sector + count). */
export function sectors(r: Rig, sector: number, count: number): Uint8Array {
  return r.blk.image.slice(sector * 512, (sector + count) * 512);
}

/** Runs microtask turns so promise callbacks settle. */
export async function flushMicrotasks(): Promise<void> {
  for (let i = 0; i < 20; i++) await null;
}

/**
 * Leaves `device_status` at ACKNOWLEDGE through the BAR, as firmware that touched the disk
 * before the OS would: the next reset then has something to reset. (A model that takes
 * time to reset reads its old status meanwhile; from status 0 that looks finished.)
 */
export function leaveStatus(r: Rig, status: number): void {
  r.soc.fabric.write8(REFERENCE_MAP.WINDOW_BASE + 20, status);
}
