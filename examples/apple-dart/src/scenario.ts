//! The `apple-dart` scenario: the reference SoC's DART under its driver, a DMA engine behind
//! one of its streams, map / DMA / unmap traffic checked byte for byte, faults, teardown and
//! the audit — with a removal of the DART (or an injected fault) possible at any step.

import { PlatformBus, type PlatformDevice } from "@devref/bus";
import { auditDevices, IrqDomain } from "@devref/device-core";
import {
  DMA_BIDIRECTIONAL,
  DmaSystem,
  dmaLastError,
  dmaMappingError,
  dmaMapSingle,
  dmaUnmapSingle,
  iommuGetDomainForDev,
  iommuSetFaultHandler,
} from "@devref/dma-iommu";
import type { ARef, DmaAddr } from "@devref/raw-device";
import {
  createReferenceSoc,
  type DmaPort,
  describeException,
  describeSoc,
  describeUseAfterFree,
  type FaultSpec,
  type Scenario,
  type ScenarioException,
  ScenarioObserver,
  type ScenarioOptions,
  type ScenarioOutcome,
  type Soc,
  type SocFirmware,
} from "@devref/sim";
import { createAppleDartDriver } from "./driver.js";
import { createDmaEngineDriver, DMA_ENGINE_COMPATIBLE } from "./engine.js";

/** The DART stream of the scenario's DMA engine. */
export const SCENARIO_ENGINE_SID = 2;
/** Map / DMA / unmap rounds of the traffic phase. */
const ROUNDS = 3;
/** Each round's buffer: two 16 KiB DART pages. */
const BUF_SIZE = 0x8000;
/** An IOVA nothing is ever mapped at (the deliberate fault). */
const NEVER_MAPPED = 0x0100_0000;

/**
 * The faults an exploration of the scenario injects, by kind.
 *
 * @example
 * ```ts
 * await explore(appleDartScenario, { kinds: ["unplug"] }); // the DART pulled at every step
 * ```
 */
export const APPLE_DART_INJECTIONS: Readonly<Record<string, FaultSpec>> = Object.freeze({
  /** The DART disappears (surprise removal of the IOMMU itself). */
  unplug: { kind: "unplug", target: "dart0" },
  /** The DART latches a translation fault on the engine's stream. */
  "iommu-fault": { kind: "iommu-fault", target: "dart0", sid: SCENARIO_ENGINE_SID, dva: 0x4000 },
  /** The DART's next TLB command never completes (every later one is ignored too). */
  "stuck-command": { kind: "stuck-command", target: "dart0" },
});

/** One run's state. */
class Run {
  readonly exceptions: ScenarioException[] = [];
  readonly say: (line: string) => void;
  /** Faults the engine's domain handler received. */
  reported = 0;
  /** Whether the bus was told the DART is gone. */
  dartUnplugged = false;
  constructor(say: (line: string) => void) {
    this.say = say;
  }
  /** Records a failure that is a bug (not an errno): a wrong byte, a stale translation. */
  bug(message: string): void {
    this.exceptions.push({ devref: false, code: null, message });
    this.say(`BUG: ${message}`);
  }
}

/** Runs `fn`, recording what escapes it; returns whether it completed. */
async function phase(run: Run, what: string, fn: () => unknown): Promise<boolean> {
  try {
    await fn();
    return true;
  } catch (e) {
    const ex = describeException(e);
    run.exceptions.push(ex);
    run.say(`${what}: ${ex.code ?? "exception"}: ${ex.message}`);
    return false;
  }
}

/** The engine's hardware moves data as an event of its own, then the machine settles. */
async function engineDma(soc: Soc, fn: () => boolean): Promise<boolean> {
  let ok = false;
  soc.events.after(1000, () => {
    ok = fn();
  });
  await soc.settle();
  return ok;
}

async function runAppleDart(options: ScenarioOptions = {}): Promise<ScenarioOutcome> {
  const seed = options.seed ?? 1;
  const run = new Run(options.narrate ?? (() => {}));
  const say = run.say;
  const { soc, dart: model } = createReferenceSoc({
    seed,
    name: "apple-dart",
    trace: options.trace ?? "digest",
    blk: false,
    smc: false,
    logSink: (r) => say(`  log: ${r.text}`),
  });
  for (const f of options.faults ?? []) soc.faults.schedule(f.at, f.spec);
  const observer = new ScenarioObserver(soc, options);
  const system = new DmaSystem({
    machine: soc.machine,
    memory: soc.memory,
    ram: soc.ram,
    swiotlb: { nslabs: 512 },
  });
  const platform = new PlatformBus({ machine: soc.machine });
  const darts = createAppleDartDriver({ system });
  const engines = createDmaEngineDriver();
  const master: DmaPort = soc.dmaMaster("engine0");
  model.attach(master, SCENARIO_ENGINE_SID);
  let fw: SocFirmware | null = null;
  let engine: ARef<PlatformDevice> | null = null;

  // The board's part of a surprise removal: once the DART is gone, the bus is told.
  const board = (): void => {
    if (!model.gone || run.dartUnplugged) return;
    run.dartUnplugged = true;
    const ref = fw?.device("dart0", "board");
    if (ref === null || ref === undefined) return;
    try {
      if (ref.isRegistered && !ref.isDead) {
        say("dart0 is gone: the bus removes it");
        platform.unplug(ref);
      }
    } finally {
      ref.put();
    }
  };
  const settle = async (): Promise<void> => {
    await soc.settle();
    board();
    await soc.settle();
  };

  say(`boot: reference SoC (seed ${seed}), DART ${model.variant} at 0x${model.base.toString(16)}`);
  await phase(run, "probe", async () => {
    platform.registerDriver(darts.driver);
    platform.registerDriver(engines.driver);
    fw = describeSoc(soc, { platform });
    engine = platform.register({
      name: "engine0",
      compatible: [DMA_ENGINE_COMPATIBLE],
      iommus: [{ iommu: "dart0", ids: [SCENARIO_ENGINE_SID] }],
    });
    await settle();
  });
  const dart = darts.dart("dart0");
  if (dart !== null) {
    const p = dart.params;
    say(
      `probe: dart0 ${p.type}, ${p.pgsize / 1024} KiB pages, ${p.numStreams} streams, ias ${p.ias}, oas ${p.oas}`,
    );
  }
  say(`probe: engine0 ${engines.isBound("engine0") ? "bound behind dart0" : "not bound"}`);
  if (engine !== null) {
    const dom = iommuGetDomainForDev(engine);
    if (dom !== null) {
      iommuSetFaultHandler(dom, (_d, dev, at, flags) => {
        run.reported++;
        say(
          `fault handler: ${dev?.name ?? "?"} ${flags === 1 ? "write" : "read"} at 0x${at.toString(16)}`,
        );
        return 0;
      });
    }
  }

  for (let round = 0; round < ROUNDS; round++) {
    await phase(run, `round ${round}`, () => traffic(round));
  }
  await phase(run, "fault", async () => {
    say(`fault: engine0 reads IOVA 0x${NEVER_MAPPED.toString(16)}, which was never mapped`);
    const ok = await engineDma(soc, () => master.read32(NEVER_MAPPED) !== 0xffff_ffff);
    board();
    if (ok) run.bug("a read of a never-mapped IOVA succeeded");
  });
  observer.point();

  say("teardown: engine0, then the firmware description (dart0), then the drivers");
  await phase(run, "teardown", async () => {
    if (engine !== null) platform.unregister(engine);
    engine = null;
    await settle();
    fw?.remove();
    platform.unregisterDriver(engines.driver);
    platform.unregisterDriver(darts.driver);
    await soc.settle();
  });

  const leaks: string[] = [];
  for (const d of auditDevices(soc.machine)) {
    leaks.push(`device ${d.name}: ${d.refcount} refs (${d.holders.join(", ")})`);
  }
  const dmaAudit = system.audit();
  for (const p of dmaAudit.problems) leaks.push(`dma: ${p}`);
  if (dmaAudit.liveMappings > 0) leaks.push(`dma: ${dmaAudit.liveMappings} live mappings`);
  if (system.iommuPages.bytesInUse > 0) {
    leaks.push(`dma: ${system.iommuPages.bytesInUse} bytes of IOMMU page tables`);
  }
  for (const line of IrqDomain.find(soc.machine, "aic")?.interrupts() ?? []) {
    leaks.push(`irq aic ${line}`);
  }
  if (soc.ram.bytesInUse > dmaAudit.ramInUse) {
    leaks.push(`ram: ${soc.ram.bytesInUse - dmaAudit.ramInUse} bytes not accounted for`);
  }
  const useAfterFree = describeUseAfterFree(soc.dmaUseAfterFree());
  say(
    leaks.length === 0 && useAfterFree.length === 0
      ? "audit: nothing left behind"
      : `audit: ${leaks.length} leak(s), ${useAfterFree.length} use(s) after free`,
  );
  observer.finish();
  const expected = ROUNDS + 1;
  let result: string;
  if (model.gone) result = darts.bindings > 0 ? "DART removed" : "DART removed before probe";
  else if (darts.bindings === 0) result = "DART probe failed";
  else if ((dart?.stats.timeouts ?? 0) > 0) result = "completed, TLB command timed out";
  else if (run.reported > expected) result = "completed, extra fault reported";
  else if (run.reported < expected) result = "completed, a fault was not reported";
  else result = "completed";
  return {
    scenario: "apple-dart",
    seed,
    steps: soc.stepCount,
    timeNs: soc.nowNs,
    digest: soc.traceDigest(),
    result,
    exceptions: run.exceptions,
    leaks,
    useAfterFree,
  };

  /** One round: map a buffer, the engine writes and reads it back, unmap, the IOVA faults. */
  async function traffic(round: number): Promise<void> {
    board();
    if (!engines.isBound("engine0")) {
      say(`round ${round}: engine0 is not bound, no traffic`);
      return;
    }
    const buf = system.allocBuffer(BUF_SIZE);
    try {
      const addr = engines.run("engine0", (dev) =>
        dmaMapSingle(dev, buf, BUF_SIZE, DMA_BIDIRECTIONAL),
      );
      if (addr === undefined || dmaMappingError(engine!, addr)) {
        say(`round ${round}: map failed: ${dmaLastError(engine!)?.message ?? "engine unbound"}`);
        return;
      }
      say(`round ${round}: 0x${buf.toString(16)} mapped at IOVA 0x${addr.toString(16)}`);
      await roundDma(round, buf, addr);
      engines.run("engine0", (dev) => dmaUnmapSingle(dev, addr, BUF_SIZE, DMA_BIDIRECTIONAL));
      // Unmapped and synced: the DART must not translate it any more.
      const stale = await engineDma(soc, () => master.write32(addr, 0xbad));
      board();
      const timedOut = darts.dart("dart0")?.lastCommandError?.code === "ETIMEDOUT";
      if (!stale || model.gone)
        say(`round ${round}: IOVA 0x${addr.toString(16)} faults after unmap`);
      else if (timedOut) {
        // What the kernel leaves too: the invalidation never completed, the entry survives.
        say(
          `round ${round}: IOVA 0x${addr.toString(16)} still translated: the invalidation timed out`,
        );
      } else run.bug(`IOVA 0x${addr.toString(16)} still translated after unmap`);
    } finally {
      system.freeBuffer(buf, BUF_SIZE);
    }
  }

  /** The engine's writes and reads of one mapped buffer, checked against memory. */
  async function roundDma(round: number, buf: number, addr: DmaAddr): Promise<void> {
    const data = new Uint8Array(BUF_SIZE).map((_, i) => (i * 13 + round * 31 + 5) & 0xff);
    const wrote = await engineDma(soc, () => master.write(addr, data));
    board();
    if (!wrote) {
      if (!model.gone) run.bug(`engine0's write to mapped IOVA 0x${addr.toString(16)} failed`);
      else say(`round ${round}: the DART is gone, the engine's write went nowhere`);
      return;
    }
    const got = new Uint8Array(BUF_SIZE);
    soc.memory.readBytes(buf, got);
    if (got.some((b, i) => b !== data[i])) {
      run.bug(
        `round ${round}: the bytes did not land where the table maps IOVA 0x${addr.toString(16)}`,
      );
      return;
    }
    const back = new Uint8Array(BUF_SIZE);
    const read = await engineDma(soc, () => master.read(addr, back));
    board();
    if (read && back.some((b, i) => b !== data[i])) {
      run.bug(`round ${round}: engine0 read back other bytes than it wrote`);
      return;
    }
    say(`round ${round}: ${BUF_SIZE} bytes written and read back through the DART`);
  }
}

/**
 * The `apple-dart` scenario: the reference SoC's DART (`dart0`, t8110) bound by this
 * driver, a DMA engine on stream 2, three rounds of map / DMA / unmap with every byte
 * checked and the unmapped IOVA faulting, a deliberate fault, teardown and the audit.
 * Injections: `unplug` (the DART disappears) and `iommu-fault` (a fault latched on the
 * engine's stream).
 *
 * **Invariants:** deterministic (the same options give the same digest); `run` never
 * throws for what the drivers did.
 *
 * @example
 * ```ts
 * const outcome = await appleDartScenario.run({ seed: 1, narrate: console.log });
 * outcome.result; // "completed"
 * const report = await explore(appleDartScenario, { kinds: ["unplug"] });
 * report.failures; // []
 * ```
 */
export const appleDartScenario: Scenario = {
  name: "apple-dart",
  description:
    "the DART driver with a DMA engine behind it: probe, map/DMA/unmap traffic checked byte for byte, faults, teardown, audit",
  injections: APPLE_DART_INJECTIONS,
  run: runAppleDart,
};
