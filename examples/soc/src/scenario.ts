//! The `soc` scenario: the reference SoC with every example driver on it, driven the way
//! a boot, a workload and a shutdown would, with any step made to fail.

import { PciBus, PlatformBus } from "@devref/bus";
import { auditDevices, IrqDomain, type LogRecord } from "@devref/device-core";
import { DmaSystem } from "@devref/dma-iommu";
import {
  createReferenceSoc,
  describeException,
  describeSoc,
  type FaultSpec,
  type Scenario,
  type ScenarioException,
  ScenarioObserver,
  type ScenarioOptions,
  type ScenarioOutcome,
  type SocFirmware,
} from "@devref/sim";
import { formatSnapshot } from "./format.js";

/** The faults an exploration of the `soc` scenario injects, by kind. */
export const SOC_INJECTIONS: Readonly<Record<string, FaultSpec>> = Object.freeze({
  /** The virtio-blk card is pulled from its slot (surprise removal). */
  unplug: { kind: "unplug", target: "vblk0" },
  /** The SMC's RTKit firmware crashes (crashlog, then the crash message). */
  "rtkit-crash": { kind: "rtkit-crash", target: "smc" },
  /** The DART latches a translation fault on the disk's stream. */
  "iommu-fault": { kind: "iommu-fault", target: "dart0", sid: 1 },
});

/** One run's shared state, handed to each phase. */
interface Run {
  readonly options: ScenarioOptions;
  readonly narrate: (line: string) => void;
  readonly exceptions: ScenarioException[];
}

/** Runs `phase`, recording what escapes it; returns whether it completed. */
async function phase(run: Run, what: string, fn: () => unknown): Promise<boolean> {
  try {
    await fn();
    return true;
  } catch (e) {
    const ex = describeException(e);
    run.exceptions.push(ex);
    run.narrate(`${what}: ${ex.code ?? "exception"}: ${ex.message}`);
    return false;
  }
}

async function runSoc(options: ScenarioOptions = {}): Promise<ScenarioOutcome> {
  const seed = options.seed ?? 1;
  const narrate = options.narrate ?? (() => {});
  const run: Run = { options, narrate, exceptions: [] };
  const log: LogRecord[] = [];
  const { soc } = createReferenceSoc({
    seed,
    name: "soc",
    trace: options.trace ?? "digest",
    logSink: (r) => log.push(r),
  });
  for (const f of options.faults ?? []) soc.faults.schedule(f.at, f.spec);
  const observer = new ScenarioObserver(soc, options);
  const dma = new DmaSystem({ machine: soc.machine, memory: soc.memory, ram: soc.ram });
  const platform = new PlatformBus({ machine: soc.machine });
  const pci = new PciBus({ machine: soc.machine });
  let fw: SocFirmware | null = null;

  narrate("boot: describing the reference SoC (device tree, PCI enumeration)");
  await phase(run, "describe", async () => {
    fw = describeSoc(soc, { platform, pci });
    await soc.settle();
  });
  narrate(
    `described: ${platform.deviceNames().join(", ")}; PCI ${pci.deviceNames().join(", ") || "(none)"}`,
  );

  const snap = observer.snapshot();
  narrate("device tree:");
  for (const line of formatSnapshot(snap)) narrate(`  ${line}`);
  observer.point();

  narrate("teardown: the description is removed");
  await phase(run, "teardown", async () => {
    fw?.remove();
    await soc.settle();
  });

  const leaks: string[] = [];
  for (const d of auditDevices(soc.machine)) {
    leaks.push(`device ${d.name}: ${d.refcount} refs (${d.holders.join(", ")})`);
  }
  const dmaAudit = dma.audit();
  for (const p of dmaAudit.problems) leaks.push(`dma: ${p}`);
  if (dmaAudit.liveMappings > 0) leaks.push(`dma: ${dmaAudit.liveMappings} live mappings`);
  for (const name of ["aic", "msi"]) {
    const domain = IrqDomain.find(soc.machine, name);
    for (const line of domain?.interrupts() ?? []) leaks.push(`irq ${name} ${line}`);
  }
  if (soc.ram.bytesInUse > dmaAudit.ramInUse) {
    leaks.push(`ram: ${soc.ram.bytesInUse - dmaAudit.ramInUse} bytes not accounted for`);
  }
  const useAfterFree = soc
    .dmaUseAfterFree()
    .map(
      (u) =>
        `${u.master} ${u.write ? "wrote" : "read"} ${u.length} bytes at 0x${u.pa.toString(16)} (step ${u.step})`,
    );
  narrate(
    leaks.length === 0 && useAfterFree.length === 0
      ? "audit: nothing left behind"
      : `audit: ${leaks.length} leak(s), ${useAfterFree.length} use(s) after free`,
  );
  observer.finish();
  return {
    scenario: "soc",
    seed,
    steps: soc.stepCount,
    timeNs: soc.nowNs,
    digest: soc.traceDigest(),
    result: "completed",
    exceptions: run.exceptions,
    leaks,
    useAfterFree,
  };
}

/**
 * The reference SoC with every example driver: the DART first, then the SMC client and the
 * virtio-blk disk behind it; traffic on each, the device tree with holders, an unplug of
 * the disk, teardown and the audit.
 *
 * **Invariants:** deterministic (the same options give the same digest); `run` never
 * throws for what the drivers did.
 *
 * @example
 * ```ts
 * const outcome = await socScenario.run({ seed: 1, narrate: console.log });
 * outcome.leaks; // []
 * ```
 */
export const socScenario: Scenario = {
  name: "soc",
  description:
    "the reference SoC with the DART, SMC and virtio-blk drivers: probe, traffic, tree, unplug, teardown, audit",
  injections: SOC_INJECTIONS,
  run: runSoc,
};
