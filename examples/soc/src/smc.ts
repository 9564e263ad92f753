//! The SMC's part of the soc scenario: key reads and a write over RTKit, retried once
//! after a firmware crash the driver recovers from, and an orderly shutdown.

import { type AppleSmc, settleUntil } from "@devref/example-apple-smc";
import { DevrefError } from "@devref/raw-device";
import { describeException, type ScenarioException, type Soc } from "@devref/sim";

/** Runs SMC commands on the SoC and keeps what they saw. */
export class SmcTraffic {
  /** Errno names of failed commands (`exception` for anything else). */
  readonly codes: Set<string> = new Set();
  private readonly soc: Soc;
  private readonly smc: AppleSmc;
  private readonly narrate: (line: string) => void;
  private readonly exceptions: ScenarioException[];
  /** The SMC's stage right after the orderly shutdown, or null before it. */
  private stoppedAs: string | null = null;

  constructor(
    soc: Soc,
    smc: AppleSmc,
    narrate: (line: string) => void,
    exceptions: ScenarioException[],
  ) {
    this.soc = soc;
    this.smc = smc;
    this.narrate = narrate;
    this.exceptions = exceptions;
  }

  /**
   * Runs one command to its end; after a crash the driver restarts the firmware, so the
   * command is tried once more when it is running again. Undefined when it failed.
   */
  async command<T>(what: string, fn: () => Promise<T>): Promise<T | undefined> {
    for (let attempt = 0; ; attempt++) {
      try {
        return await settleUntil(this.soc, fn());
      } catch (e) {
        const x = describeException(e);
        this.exceptions.push(x);
        this.codes.add(e instanceof DevrefError ? e.code : "exception");
        this.narrate(`  ${what}: failed, ${x.code ?? "exception"}`);
        const stage = this.smc.stage;
        const restarting = stage === "crashed" || stage === "recovering" || stage === "booting";
        if (attempt > 0 || !restarting) return undefined;
        try {
          await settleUntil(this.soc, this.smc.whenRunning());
          this.narrate(`  ${what}: the SMC runs again after a restart; once more`);
        } catch (w) {
          this.exceptions.push(describeException(w));
          return undefined;
        }
      }
    }
  }

  /** The traffic: the temperature, the charge, the fan target written and read back. */
  async run(): Promise<void> {
    const smc = this.smc;
    this.narrate(`traffic: SMC ${smc.deviceName}: ${smc.keyCount} keys, ${smc.stage}`);
    for (const key of ["TB0T", "BUIC"] as const) {
      const v = await this.command(`read ${key}`, () => smc.readKey(key));
      if (v !== undefined) this.narrate(`  read ${key}: ${format(v)}`);
    }
    const fan = await this.command("write F0Tg", async () => {
      await smc.writeKey("F0Tg", 2400);
      return smc.readKey("F0Tg");
    });
    if (fan !== undefined) this.narrate(`  write F0Tg (fan target) = ${format(fan)}, read back`);
  }

  /** The orderly stop before unbind: notifications off, the firmware quiesced. */
  async shutdown(): Promise<void> {
    await this.command("SMC shutdown", () => this.smc.shutdown());
    this.stoppedAs = this.smc.stage;
  }

  /** What the SMC saw, in a few words ("" when nothing happened to it). */
  result(): string {
    const smc = this.smc;
    if (smc.stage === "gone" || this.codes.has("ENODEV")) return "SMC removed";
    if (smc.crashes.length > 0) {
      // shutdown() waits for a restart under way and stops only a running SMC.
      return this.stoppedAs === "shutdown" ? "firmware crashed, recovered" : "firmware crashed";
    }
    if (this.codes.size > 0) return `SMC failed (${[...this.codes].join(", ")})`;
    return "";
  }
}

function format(v: unknown): string {
  if (typeof v === "number") return Number.isInteger(v) ? String(v) : v.toFixed(2);
  return String(v);
}
