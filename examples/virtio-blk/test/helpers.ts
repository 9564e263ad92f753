// The simulated SoC with the virtio-blk driver registered: what every test starts from.
import { PciBus, PlatformBus } from "@devref/bus";
import type { LogRecord } from "@devref/device-core";
import { DmaSystem } from "@devref/dma-iommu";
import { createReferenceSoc, describeSoc, type ReferenceSocOptions } from "@devref/sim";
import { VirtioBlkDriver, type VirtioBlkDriverOptions } from "../src/index.js";

export const FN = "0000:00:00.0";

export interface Rig {
  readonly ref: ReturnType<typeof createReferenceSoc>;
  readonly soc: ReturnType<typeof createReferenceSoc>["soc"];
  readonly system: DmaSystem;
  readonly platform: PlatformBus;
  readonly pci: PciBus;
  readonly vblk: VirtioBlkDriver;
  readonly logs: LogRecord[];
  readonly fw: ReturnType<typeof describeSoc>;
}

/** Builds the reference SoC (no IOMMU unless asked), its DMA layer and buses, registers the driver and describes the SoC. */
export function rig(
  soc: ReferenceSocOptions = {},
  driver: Partial<VirtioBlkDriverOptions> = {},
): Rig {
  const logs: LogRecord[] = [];
  const ref = createReferenceSoc({
    seed: 1,
    iommu: false,
    smc: false,
    logSink: (r) => logs.push(r),
    ...soc,
  });
  const system = new DmaSystem({
    machine: ref.soc.machine,
    memory: ref.soc.memory,
    ram: ref.soc.ram,
  });
  const platform = new PlatformBus({ machine: ref.soc.machine });
  const pci = new PciBus({ machine: ref.soc.machine });
  const vblk = new VirtioBlkDriver({ timers: ref.soc.events, ...driver });
  pci.registerDriver(vblk.driver);
  const fw = describeSoc(ref.soc, { platform, pci });
  return { ref, soc: ref.soc, system, platform, pci, vblk, logs, fw };
}

/** Settles the SoC, then the promise. */
export async function done<T>(r: Rig, p: Promise<T>): Promise<T> {
  await r.soc.settle();
  return p;
}
