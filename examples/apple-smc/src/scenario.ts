//! The SMC driver's scenario on the reference SoC: probe (wake, INITIALIZE, #KEY, NTAP),
//! enumerate every key with its info, read sensors as virtual time passes, write a key, a
//! notification and a syslog line from the firmware, then shutdown, teardown and audits.

import { PlatformBus } from "@devref/bus";
import { auditDevices, type LogRecord } from "@devref/device-core";
import { DmaSystem } from "@devref/dma-iommu";
import { DevrefError } from "@devref/raw-device";
import {
  type AppleSmcSetup,
  createReferenceSoc,
  describeException,
  describeSoc,
  describeUseAfterFree,
  REFERENCE_MAP,
  type Scenario,
  type ScenarioException,
  ScenarioObserver,
  type ScenarioOptions,
  type ScenarioOutcome,
  type Soc,
} from "@devref/sim";
import { createAppleSmcDriver } from "./driver.js";
import { settleFor, settleUntil } from "./settle.js";
import type { AppleSmc } from "./smc.js";

/** How {@link makeAppleSmcScenario} builds its runs. */
export interface AppleSmcScenarioOptions {
  /**
   * Where the firmware keeps its crashlog, syslog and IOReport buffers: `"dma"` (default)
   * asks the AP to allocate them (coherent DMA through the driver's adapter), `"sram"`
   * keeps them in the SMC's SRAM as on a t8103.
   */
  readonly buffers?: "dma" | "sram";
  /** Restart the firmware after a crash (default true). */
  readonly recover?: boolean;
}

const NAME = "apple-smc";
/** The SMC's model name on the reference SoC: the target of every injection. */
const TARGET = "smc";
/** Lid closed (sim-hardware.md §2.8). */
const LID_CLOSED = 0x7203_0100;
const SENSORS = ["TB0T", "TCHP", "PSTR", "F0Ac", "BUIC"] as const;

type Narrate = (line: string) => void;

function fmt(v: unknown): string {
  if (typeof v === "number") return Number.isInteger(v) ? String(v) : v.toFixed(2);
  if (v instanceof Uint8Array)
    return `[${[...v].map((b) => b.toString(16).padStart(2, "0")).join(" ")}]`;
  return String(v);
}

/** One scenario step: its errors are recorded and narrated, never thrown. */
class Steps {
  readonly exceptions: ScenarioException[] = [];
  readonly codes = new Set<string>();
  constructor(
    private readonly soc: Soc,
    private readonly narrate: Narrate,
  ) {}

  async run<T>(what: string, smc: AppleSmc, fn: () => Promise<T>): Promise<T | undefined> {
    for (let attempt = 0; ; attempt++) {
      try {
        return await settleUntil(this.soc, fn());
      } catch (e) {
        this.exceptions.push(describeException(e));
        const code = e instanceof DevrefError ? e.code : "non-DevrefError";
        this.codes.add(code);
        this.narrate(`${what}: failed (${code}): ${e instanceof Error ? e.message : String(e)}`);
        // A crash is followed by a restart: wait for it and try the step once more.
        const s = smc.stage;
        if (attempt > 0 || (s !== "crashed" && s !== "recovering" && s !== "booting")) {
          return undefined;
        }
        try {
          await settleUntil(this.soc, smc.whenRunning());
          this.narrate(`${what}: the SMC is running again; retrying`);
        } catch (w) {
          this.exceptions.push(describeException(w));
          return undefined;
        }
      }
    }
  }
}

/**
 * Makes the SMC scenario (see {@link appleSmcScenario}) with other choices.
 *
 * @example
 * ```ts
 * const outcome = await makeAppleSmcScenario({ buffers: "sram" }).run({ seed: 2 });
 * ```
 */
export function makeAppleSmcScenario(options: AppleSmcScenarioOptions = {}): Scenario {
  const buffers = options.buffers ?? "dma";
  const recover = options.recover ?? true;
  const smcSetup: Partial<AppleSmcSetup> =
    buffers === "dma"
      ? { firmware: { crashlog: { pages: 1 }, ioreport: { pages: 1 }, syslog: { pages: 1 } } }
      : {};
  return {
    name: NAME,
    description:
      "Apple SMC over RTKit on the ASC mailbox: probe, #KEY enumeration, sensors over virtual time, a key write, a notification, a syslog line, shutdown and teardown",
    injections: {
      unplug: { kind: "unplug", target: TARGET },
      "rtkit-crash": { kind: "rtkit-crash", target: TARGET, reason: "injected panic" },
      "rtkit-silence": { kind: "rtkit-silence", target: TARGET },
      "rtkit-garbage": { kind: "rtkit-garbage", target: TARGET, mode: "random", count: 3 },
    },
    run: (o: ScenarioOptions = {}) => runScenario(o, smcSetup, recover),
  };
}

async function runScenario(
  o: ScenarioOptions,
  smcSetup: Partial<AppleSmcSetup>,
  recover: boolean,
): Promise<ScenarioOutcome> {
  const seed = o.seed ?? 1;
  const narrate: Narrate = o.narrate ?? (() => {});
  const { soc, smc: parts } = createReferenceSoc({
    seed,
    name: NAME,
    trace: o.trace ?? "digest",
    blk: false,
    smc: smcSetup,
    logSink: (r: LogRecord) => {
      if (r.level === "err" || r.level === "warn") narrate(`  ${r.level} ${r.text}`);
    },
  });
  for (const f of o.faults ?? []) soc.faults.schedule(f.at, f.spec);
  const observer = new ScenarioObserver(soc, o);
  const dma = new DmaSystem({
    machine: soc.machine,
    memory: soc.memory,
    ram: soc.ram,
    swiotlb: { nslabs: 128 },
  });
  const ramBaseline = soc.ram.bytesInUse;
  const platform = new PlatformBus({ machine: soc.machine });
  const driver = createAppleSmcDriver({ timers: soc.events, recover });
  const steps = new Steps(soc, narrate);
  let result = "completed";

  const registration = platform.registerDriver(driver.driver);
  const fw = describeSoc(soc, { platform, mailbox: "inline" });
  narrate(`probe: ${fw.nodes.map((n) => n.name).join(", ")} described; waking the SMC`);
  try {
    await soc.settle();
  } catch (e) {
    steps.exceptions.push(describeException(e));
  }
  const smc = driver.client("smc");
  if (smc === null) {
    const err = auditDevices(soc.machine).find((d) => d.name === "smc")?.probeError ?? null;
    result = `probe failed${err === null ? "" : ` (${err})`}`;
    narrate(`probe: the SMC did not bind${err === null ? "" : ` (${err})`}`);
  } else {
    await traffic(soc, smc, parts?.smc ?? null, parts?.firmware ?? null, steps, narrate);
    observer.point();
    narrate("teardown: shutdown (NTAP = 0, quiesce)");
    await steps.run("shutdown", smc, () => smc.shutdown());
    result = classify(smc, steps);
  }
  registration.unregister();
  fw.remove();
  try {
    await soc.settle();
  } catch (e) {
    steps.exceptions.push(describeException(e));
  }
  const leaks = audit(soc, dma, ramBaseline);
  narrate(`teardown: ${leaks.length === 0 ? "nothing left behind" : `${leaks.length} leaks`}`);
  observer.finish();
  return {
    scenario: NAME,
    seed,
    steps: soc.stepCount,
    timeNs: soc.nowNs,
    digest: soc.traceDigest(),
    result,
    exceptions: steps.exceptions,
    leaks,
    useAfterFree: describeUseAfterFree(soc.dmaUseAfterFree()),
  };
}

async function traffic(
  soc: Soc,
  smc: AppleSmc,
  model: { notify(event: number): boolean } | null,
  firmware: { log(context: string, text: string): void } | null,
  steps: Steps,
  narrate: Narrate,
): Promise<void> {
  narrate(`probe: SMC running, ${smc.keyCount} keys, notifications on`);
  const keys = await steps.run("#KEY enumeration", smc, () => smc.listKeys());
  if (keys !== undefined) {
    const sample = keys.slice(0, 4).map((k) => `${k.key} ${k.type.trim()}/${k.size}`);
    narrate(`keys: ${keys.length} listed (${sample.join(", ")}, …)`);
  }
  for (const round of [0, 1]) {
    if (round === 1) {
      soc.runFor(5_000_000_000); // five seconds of virtual time: the sensors move
      narrate("time: +5 s");
    }
    for (const k of SENSORS) {
      const v = await steps.run(`read ${k}`, smc, () => smc.readKey(k));
      if (v !== undefined) narrate(`sensor: ${k} = ${fmt(v)}`);
    }
  }
  const wrote = await steps.run("write F0Tg", smc, async () => {
    await smc.writeKey("F0Tg", 2400);
    return smc.readKey("F0Tg");
  });
  if (wrote !== undefined) narrate(`write: F0Tg (fan target) = ${fmt(wrote)} RPM`);
  const seen: string[] = [];
  const off = smc.onEvent((e) => seen.push(e.description));
  const sent = model?.notify(LID_CLOSED) ?? false;
  firmware?.log("smc", "lid state changed");
  await settleFor(soc, 1_000_000); // a millisecond: the event and the log line arrive
  off();
  narrate(
    `event: ${sent ? (seen.length > 0 ? seen.join(", ") : "sent, not delivered") : "the SMC sent none (notifications off)"}`,
  );
}

function classify(smc: AppleSmc, steps: Steps): string {
  if (steps.codes.has("non-DevrefError")) return "driver bug";
  if (smc.stage === "gone" || steps.codes.has("ENODEV")) return "device removed";
  const st = smc.stats();
  if (smc.crashes.length > 0) {
    // shutdown() waits for a restart under way and moves only a running SMC to "shutdown".
    return smc.stage === "shutdown" ? "firmware crashed, recovered" : "firmware crashed";
  }
  if (st.cpuRestarts > 0) return "firmware restarted at probe";
  if (steps.codes.has("ETIMEDOUT") || steps.codes.has("ETIME")) return "commands timed out";
  if (steps.codes.size > 0) return `failed (${[...steps.codes].join(", ")})`;
  return "completed";
}

function audit(soc: Soc, dma: DmaSystem, ramBaseline: number): string[] {
  const leaks: string[] = [];
  for (const d of auditDevices(soc.machine)) {
    leaks.push(
      `device ${d.name} (${d.lifecycle}): ${d.refcount} references (${d.holders.join(", ")})`,
    );
  }
  const a = dma.audit();
  for (const p of a.problems) leaks.push(`dma: ${p}`);
  if (a.coherentBytes > 0) leaks.push(`dma: ${a.coherentBytes} coherent bytes still allocated`);
  if (a.liveMappings > 0) leaks.push(`dma: ${a.liveMappings} live mappings`);
  for (const line of soc.aic.interrupts()) leaks.push(`irq still requested: ${line}`);
  const M = REFERENCE_MAP;
  for (let l = M.SMC_IRQ; l < M.SMC_IRQ + 4; l++) {
    if (soc.irq.isConnected(l)) leaks.push(`irq line ${l} still connected`);
  }
  const ram = soc.ram.bytesInUse - ramBaseline;
  if (ram !== 0) leaks.push(`ram: ${ram} bytes beyond the scenario's own`);
  return leaks;
}

/**
 * The SMC driver's scenario (`devref run apple-smc`): the reference SoC with the SMC
 * described inline and its firmware asking the AP for its buffers; probe, enumerate every
 * key with its info, read five sensors twice five virtual seconds apart, write the fan
 * target and read it back, a lid notification and a firmware syslog line, then
 * `shutdown()`, unbind and the audits (devices and holders, DMA, interrupts, RAM). Its
 * injections: `unplug` (the ASC is gone), `rtkit-crash` (a panic with a crashlog; the
 * driver restarts the firmware), `rtkit-silence` (the firmware stops answering),
 * `rtkit-garbage` (its next three messages are random bits).
 */
export const appleSmcScenario: Scenario = makeAppleSmcScenario();
