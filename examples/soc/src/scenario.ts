//! The `soc` scenario: the reference SoC with every example driver on it, driven the way a
//! boot, a workload and a shutdown would, with any step made to fail.

import { type DriverRegistration, PciBus, PlatformBus } from "@devref/bus";
import { DmaSystem } from "@devref/dma-iommu";
import { type AppleDart, createAppleDartDriver } from "@devref/example-apple-dart";
import { createAppleSmcDriver } from "@devref/example-apple-smc";
import { VirtioBlkDriver } from "@devref/example-virtio-blk";
import {
  createReferenceSoc,
  describeException,
  describeSoc,
  describeUseAfterFree,
  type FaultSpec,
  type Scenario,
  type ScenarioException,
  ScenarioObserver,
  type ScenarioOptions,
  type ScenarioOutcome,
  type SocFirmware,
} from "@devref/sim";
import { auditSoc } from "./audit.js";
import { DiskLedger, pattern } from "./disk.js";
import { formatSnapshot } from "./format.js";
import { SmcTraffic } from "./smc.js";

/** The PCI function of the reference SoC's disk (slot 0). */
export const SOC_DISK = "0000:00:00.0";
/**
 * The SMC's ASC DMA stream on dart0. Its firmware keeps its crashlog, syslog and IOReport
 * buffers in SRAM (the t8103 layout); the SMC is configured behind the DART all the same.
 */
export const SOC_SMC_SID = 3;

/** The faults an exploration of the `soc` scenario injects, by kind. */
export const SOC_INJECTIONS: Readonly<Record<string, FaultSpec>> = Object.freeze({
  /** The virtio-blk card is pulled from its slot (surprise removal). */
  unplug: { kind: "unplug", target: "vblk0" },
  /** The SMC's RTKit firmware crashes (crashlog, then the crash message). */
  "rtkit-crash": { kind: "rtkit-crash", target: "smc" },
  /** The disk's next translation on the DART faults (NO_PTE): its DMA fails. */
  "iommu-fault": { kind: "iommu-fault", target: "dart0", sid: 1, next: true },
});

/** A disk image with a pattern that depends on the seed. */
function diskImage(seed: number): Uint8Array {
  const img = new Uint8Array(2048 * 512);
  let x = (seed * 0x9e37_79b9 + 1) >>> 0;
  for (let i = 0; i < img.length; i++) {
    x = (Math.imul(x, 1_103_515_245) + 12_345) >>> 0;
    img[i] = x >>> 24;
  }
  return img;
}

async function runSoc(options: ScenarioOptions = {}): Promise<ScenarioOutcome> {
  const seed = options.seed ?? 1;
  const say = options.narrate ?? (() => {});
  const exceptions: ScenarioException[] = [];
  const {
    soc,
    blk,
    dart: dartModel,
    smc: smcParts,
  } = createReferenceSoc({
    seed,
    name: "soc",
    trace: options.trace ?? "digest",
    // Completion jitter from the seed: another seed is another interleaving.
    blk: { image: diskImage(seed), jitterNs: 2000 },
    // The drivers' dev_* lines at info and above (debug lines are RTKit's handshake chatter).
    logSink: (r) => {
      if (r.level !== "dbg") say(`  log: ${r.text}`);
    },
  });
  // The ASC's DMA goes through dart0 (its node gets `iommus`), as the disk's does.
  if (smcParts !== null) dartModel.attach(smcParts.asc.dma, SOC_SMC_SID);
  for (const f of options.faults ?? []) soc.faults.schedule(f.at, f.spec);
  const observer = new ScenarioObserver(soc, options);
  const system = new DmaSystem({
    machine: soc.machine,
    memory: soc.memory,
    ram: soc.ram,
    swiotlb: { nslabs: 512 },
  });
  const ramBefore = soc.ram.bytesInUse;
  const platform = new PlatformBus({ machine: soc.machine });
  const pci = new PciBus({ machine: soc.machine });
  const darts = createAppleDartDriver({ system });
  const vblk = new VirtioBlkDriver({ timers: soc.events, queueDepth: 4 });
  const smcDriver = createAppleSmcDriver({ timers: soc.events });
  const disk0 = blk!;
  const ledger = new DiskLedger(disk0.image, say, exceptions);
  const registrations: DriverRegistration[] = [];
  let fw: SocFirmware | null = null;
  /** The bound DART, kept for its counters after it is unbound (a holder: set in a phase). */
  const bound: { dart: AppleDart | null } = { dart: null };

  /** Runs the machine until it is idle; what escapes is recorded. */
  const settle = async (): Promise<void> => {
    try {
      await soc.settle();
    } catch (e) {
      exceptions.push(describeException(e));
    }
  };
  /** Runs one phase; what escapes it is recorded, and the run goes on to teardown. */
  const phase = async (what: string, fn: () => Promise<void>): Promise<void> => {
    try {
      await fn();
    } catch (e) {
      const x = describeException(e);
      exceptions.push(x);
      say(`${what}: ${x.code ?? "exception"}: ${x.message}`);
    }
  };

  say(
    `boot: the reference SoC, seed ${seed}: dart0 (t8110), the SMC on its ASC, vblk0 in PCI slot 0 behind dart0 stream 1`,
  );
  await phase("probe", async () => {
    say("probe: the DART driver first, then the devices are described");
    registrations.push(platform.registerDriver(darts.driver));
    fw = describeSoc(soc, { platform, pci, mailbox: "inline" });
    await settle();
    const dart = darts.dart("dart0");
    bound.dart = dart;
    say(
      dart === null
        ? "probe: dart0 is not bound"
        : `probe: dart0 bound: ${dart.params.numStreams} streams, ${dart.params.pgsize / 1024} KiB pages, ias ${dart.params.ias}, oas ${dart.params.oas}`,
    );
    say("probe: the SMC client and the virtio-blk driver, behind the DART");
    registrations.push(platform.registerDriver(smcDriver.driver));
    registrations.push(pci.registerDriver(vblk.driver));
    await settle();
  });

  const smc = smcDriver.client("smc");
  const smcTraffic = smc === null ? null : new SmcTraffic(soc, smc, say, exceptions);
  say(smc === null ? "probe: the SMC did not bind" : `probe: smc bound, ${smc.keyCount} keys`);

  const diskBound = vblk.diskNames().includes(SOC_DISK);
  say(diskBound ? `probe: ${SOC_DISK} bound` : "probe: no disk bound");
  if (diskBound) {
    await phase("disk traffic", async () => {
      const disk = vblk.disk(SOC_DISK);
      say(
        `traffic: disk ${SOC_DISK}: ${disk.capacity} blocks, ${disk.irqMode}, queue depth ${disk.queueDepth}`,
      );
      const id = ledger.request("GET_ID", disk.getId());
      const a = pattern(16384, seed);
      const w = ledger.write("write 16 KiB at block 8", disk, 8, a);
      await settle();
      const got = await id;
      if (got !== null && got !== disk0.serial) {
        exceptions.push({ devref: false, code: null, message: `GET_ID returned '${got}'` });
      }
      await w;
      const r = ledger.read("read 16 KiB at block 8", disk, 8, 32);
      const f = ledger.request("flush", disk.flush());
      await settle();
      await r;
      await f;
      const dart = bound.dart;
      if (dart !== null) {
        say(
          `traffic: dart0: ${dart.stats.invalidations} TLB invalidations, ${dart.stats.faults} faults`,
        );
      }
    });
  }

  if (smcTraffic !== null) await phase("SMC traffic", () => smcTraffic.run());

  say("tree: the machine with every driver bound");
  for (const line of formatSnapshot(observer.snapshot())) say(`  ${line}`);
  observer.point();

  if (diskBound && vblk.diskNames().includes(SOC_DISK)) {
    await phase("unplug", async () => {
      const disk = vblk.disk(SOC_DISK);
      say("unplug: vblk0 is pulled from slot 0 with a write and a read in flight");
      const b = pattern(8192, seed + 1);
      const w = ledger.write("write 8 KiB at block 100", disk, 100, b);
      const r = ledger.read("read 8 KiB at block 200", disk, 200, 16);
      ledger.planned = true;
      soc.faults.inject({ kind: "unplug", target: "vblk0" });
      await settle();
      await w;
      await r;
      say(`unplug: PCI functions now: ${pci.deviceNames().join(", ") || "none"}`);
    });
  }

  say("teardown: the SMC shut down, drivers unregistered, the description removed, the DART last");
  await phase("teardown", async () => {
    if (smcTraffic !== null) await smcTraffic.shutdown();
    for (const reg of registrations.slice(1).reverse()) reg.unregister();
    fw?.remove();
    registrations[0]?.unregister();
    await settle();
  });

  ledger.checkImage(disk0.image);
  const leaks = auditSoc(soc, system, ramBefore);
  const useAfterFree = describeUseAfterFree(soc.dmaUseAfterFree());
  say(
    leaks.length === 0 && useAfterFree.length === 0
      ? "audit: nothing left behind"
      : `audit: ${[...leaks, ...useAfterFree].join("; ")}`,
  );
  observer.finish();
  const parts: string[] = [];
  const smcResult = smcTraffic?.result() ?? "no SMC";
  if (smcResult !== "") parts.push(smcResult);
  if (!diskBound) parts.push("no disk");
  else if (ledger.codes.has("ENODEV")) parts.push("disk removed");
  else if (ledger.codes.has("EIO")) parts.push("disk I/O error");
  const dartFaults = bound.dart?.stats.faults ?? 0;
  if (dartFaults > 0) parts.push("DART fault reported");
  return {
    scenario: "soc",
    seed,
    steps: soc.stepCount,
    timeNs: soc.nowNs,
    digest: soc.traceDigest(),
    result: parts.length === 0 ? "completed" : parts.join(", "),
    exceptions,
    leaks,
    useAfterFree,
  };
}

/**
 * The reference SoC with every example driver: the DART first, then the SMC client and the
 * virtio-blk disk behind it; traffic on each, the device tree with holders, a surprise
 * removal of the disk in the middle of I/O, teardown and the audit.
 *
 * **Invariants:** deterministic (the same options give the same digest); `run` never
 * throws for what the drivers did; a completed write is on the disk image at the end.
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
