// The reference SoC with the SMC described inline, the DMA layer, and the SMC driver bound.
import { PlatformBus } from "@devref/bus";
import type { LogRecord } from "@devref/device-core";
import { DmaSystem } from "@devref/dma-iommu";
import {
  type AppleSmcParts,
  type AppleSmcSetup,
  createReferenceSoc,
  describeSoc,
  type Soc,
  type SocFirmware,
} from "@devref/sim";
import {
  type AppleSmc,
  type AppleSmcDriver,
  type AppleSmcDriverOptions,
  createAppleSmcDriver,
} from "../src/index.js";

export interface Rig {
  readonly soc: Soc;
  readonly parts: AppleSmcParts;
  readonly dma: DmaSystem;
  readonly platform: PlatformBus;
  readonly driver: AppleSmcDriver;
  readonly fw: SocFirmware;
  readonly logs: LogRecord[];
  /** Log lines of a level, as text. */
  lines(level?: string): string[];
}

/** Firmware buffers the AP allocates (coherent DMA), as the scenario has them. */
export const AP_BUFFERS: Partial<AppleSmcSetup> = {
  firmware: { crashlog: { pages: 1 }, ioreport: { pages: 1 }, syslog: { pages: 1 } },
};

export interface RigOptions {
  readonly seed?: number;
  readonly smc?: Partial<AppleSmcSetup>;
  readonly driver?: Partial<AppleSmcDriverOptions>;
  /** Register the driver before describing the SoC (default true). */
  readonly register?: boolean;
}

export function makeRig(options: RigOptions = {}): Rig {
  const logs: LogRecord[] = [];
  const { soc, smc } = createReferenceSoc({
    seed: options.seed ?? 1,
    name: "t",
    logSink: (r) => logs.push(r),
    blk: false,
    smc: options.smc ?? AP_BUFFERS,
  });
  const dma = new DmaSystem({
    machine: soc.machine,
    memory: soc.memory,
    ram: soc.ram,
    swiotlb: { nslabs: 128 },
  });
  const platform = new PlatformBus({ machine: soc.machine });
  const driver = createAppleSmcDriver({ timers: soc.events, ...options.driver });
  if (options.register ?? true) platform.registerDriver(driver.driver);
  const fw = describeSoc(soc, { platform, mailbox: "inline" });
  return {
    soc,
    parts: smc!,
    dma,
    platform,
    driver,
    fw,
    logs,
    lines: (level?: string) =>
      logs.filter((r) => level === undefined || r.level === level).map((r) => r.message),
  };
}

/** A rig whose SMC is bound and running. */
export async function booted(options: RigOptions = {}): Promise<Rig & { smc: AppleSmc }> {
  const rig = makeRig(options);
  await rig.soc.settle();
  const smc = rig.driver.client("smc");
  if (smc === null) throw new Error(`SMC did not bind:\n${rig.lines().join("\n")}`);
  return { ...rig, smc };
}
