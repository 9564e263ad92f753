// Test fixtures: a SoC with one DART (of any variant and parameters), the DMA system as
// the machine's DMA layer over the SoC's RAM, the DART driver and a DMA engine client
// whose transfers the test makes through a simulator DMA master on a DART stream.
import { PlatformBus, type PlatformDevice } from "@devref/bus";
import { auditDevices, type LogRecord } from "@devref/device-core";
import { DmaSystem } from "@devref/dma-iommu";
import type { ARef } from "@devref/raw-device";
import {
  Dart,
  type DartOptions,
  type DmaPort,
  describeSoc,
  Soc,
  type SocFirmware,
} from "@devref/sim";
import {
  type AppleDart,
  type AppleDartDriver,
  type AppleDartDriverOptions,
  createAppleDartDriver,
  createDmaEngineDriver,
  DMA_ENGINE_COMPATIBLE,
  type DmaEngineDriver,
} from "../src/index.js";

export const DART_BASE = 0x2_8000_0000;
export const DART_IRQ = 10;
export const RAM_BASE = 0x8_0000_0000;
/** The engine's DART stream in these tests. */
export const ENGINE_SID = 2;

export interface Rig {
  readonly soc: Soc;
  readonly model: Dart;
  readonly platform: PlatformBus;
  readonly system: DmaSystem;
  readonly darts: AppleDartDriver;
  readonly engines: DmaEngineDriver;
  readonly fw: SocFirmware;
  /** The engine's DMA master (its bus addresses are IOVAs on stream ENGINE_SID). */
  readonly master: DmaPort;
  /** The engine's platform device (the creator's reference), or null when not added. */
  engine: ARef<PlatformDevice> | null;
  readonly logs: LogRecord[];
  /** The bound DART, or throws. */
  dart(): AppleDart;
  /** Errors and warnings logged so far, as text. */
  errors(): string[];
  /** Unregisters everything and returns what the audits found left. */
  teardown(): string[];
}

export interface RigOptions {
  readonly seed?: number;
  readonly dart?: Partial<DartOptions>;
  readonly driver?: Partial<Omit<AppleDartDriverOptions, "system">>;
  /** Add the engine device (default true). */
  readonly engine?: boolean;
  /** The engine's `iommus` stream IDs (default [ENGINE_SID]). */
  readonly engineSids?: readonly number[];
  readonly iommuDefaultDomain?: "strict" | "lazy";
  readonly iommuPassthrough?: boolean;
  /** Runs on the hardware before the drivers see it (a bootloader's leftovers). */
  readonly before?: (soc: Soc, model: Dart) => void;
}

/** A SoC with a DART, the drivers registered, described, and the machine settled. */
export async function rig(options: RigOptions = {}): Promise<Rig> {
  const logs: LogRecord[] = [];
  const soc = new Soc({
    seed: options.seed ?? 1,
    name: "dart-test",
    logSink: (r) => logs.push(r),
    ramBase: RAM_BASE,
    ramSize: 256 * 2 ** 20,
    trace: "off",
  });
  const model = new Dart(soc, {
    name: "dart0",
    variant: "t8110",
    base: DART_BASE,
    irq: DART_IRQ,
    ...options.dart,
  });
  const system = new DmaSystem({
    machine: soc.machine,
    memory: soc.memory,
    ram: soc.ram,
    swiotlb: { nslabs: 512 },
    ...(options.iommuDefaultDomain === undefined
      ? {}
      : { iommuDefaultDomain: options.iommuDefaultDomain }),
    ...(options.iommuPassthrough === undefined
      ? {}
      : { iommuPassthrough: options.iommuPassthrough }),
  });
  options.before?.(soc, model);
  const platform = new PlatformBus({ machine: soc.machine });
  const darts = createAppleDartDriver({ system, ...options.driver });
  const engines = createDmaEngineDriver();
  platform.registerDriver(darts.driver);
  platform.registerDriver(engines.driver);
  const fw = describeSoc(soc, { platform });
  const master = soc.dmaMaster("engine0");
  const sids = options.engineSids ?? [ENGINE_SID];
  if (sids.length > 0 && sids[0]! < model.numStreams) model.attach(master, sids[0]!);
  const r: Rig = {
    soc,
    model,
    platform,
    system,
    darts,
    engines,
    fw,
    master,
    engine: null,
    logs,
    dart() {
      const d = darts.dart("dart0");
      if (d === null) throw new Error("dart0 is not bound");
      return d;
    },
    errors() {
      return logs.filter((l) => l.level === "err" || l.level === "warn").map((l) => l.text);
    },
    teardown() {
      if (r.engine !== null) {
        platform.unregister(r.engine);
        r.engine = null;
      }
      fw.remove();
      const left = auditDevices(soc.machine).map(
        (d) => `${d.name}: ${d.refcount} refs (${d.holders.join(", ")})`,
      );
      const a = system.audit();
      if (!a.ok) left.push(...a.problems);
      if (system.iommuPages.bytesInUse !== 0)
        left.push(`${system.iommuPages.bytesInUse} bytes of table pages`);
      for (const u of soc.dmaUseAfterFree()) left.push(`use after free at ${u.pa.toString(16)}`);
      return left;
    },
  };
  if (options.engine !== false) {
    r.engine = platform.register({
      name: "engine0",
      compatible: [DMA_ENGINE_COMPATIBLE],
      iommus: [{ iommu: "dart0", ids: sids }],
    });
  }
  await soc.settle();
  return r;
}
