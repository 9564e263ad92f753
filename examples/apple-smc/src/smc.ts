//! C header: include/linux/mfd/macsmc.h (apple_smc_read, apple_smc_write, apple_smc_rw,
//! apple_smc_get_key_info, apple_smc_get_key_by_index, the event notifier)
//!
//! What users of the driver get (the kernel's MFD children call these on their parent's
//! `struct apple_smc`): typed key reads and writes, key info, enumeration and events.

import { argumentError, checkCallback, checkString, DevrefError } from "@devref/raw-device";
import type { SmcEvent } from "./events.js";
import type { SmcCore, SmcCrash, SmcStage } from "./internal/core.js";
import * as K from "./internal/keys.js";
import { smcKeyName } from "./protocol.js";
import type { SmcKeyInfo, SmcValueOf } from "./values.js";

/** Counters of one bound SMC, for figures and tests. */
export interface AppleSmcStats {
  /** Notifications delivered to the event handlers. */
  readonly events: number;
  /** Replies that arrived with no command waiting (dropped). */
  readonly strayReplies: number;
  /** Replies whose sequence ID was not the command's (logged, ignored). */
  readonly sequenceMismatches: number;
  /** Messages through the mailbox. */
  readonly sent: number;
  readonly received: number;
  /** Times a send found the mailbox's A2I FIFO full. */
  readonly mailboxFull: number;
  /** Firmware restarts after crashes that brought the SMC back. */
  readonly recoveries: number;
  /** CPU restarts of any cause (a crash, or a firmware that did not come up at probe). */
  readonly cpuRestarts: number;
}

function checkKey(where: string, key: unknown): string {
  const k = checkString(where, "key", key);
  if (!/^[\x20-\x7e]{4}$/.test(k)) {
    throw argumentError(where, "key", "four printable ASCII characters, e.g. 'TB0T'", key);
  }
  return k;
}

/**
 * The SMC of one bound device, for its users (the kernel's `struct apple_smc` as its MFD
 * children use it). Every call is one or more SMC commands, one at a time.
 *
 * **Invariants:** calls are serialised (one command in flight); after the driver unbinds
 * every call rejects with `ENODEV` and no handler is called again; arguments are checked
 * before anything is sent.
 *
 * **Errors:** calls reject with `EINVAL` for bad arguments (a key that is not four
 * characters, a size over 255); `EIO` when the SMC is not running (crashed, restarting,
 * shut down) or answers with a non-zero result (`details.result`, `details.resultName`:
 * `kSMCKeyNotFound`, `kSMCKeyNotWritable`, …); `ETIMEDOUT` when it does not answer within
 * 500 ms; `ENODEV` when the hardware is gone or the driver unbound.
 *
 * @example
 * ```ts
 * const smc = smcDriver.client("smc")!;
 * const t = await smc.readKey("TB0T"); // number, °C
 * await smc.writeKey("F0Tg", 2000); // fan target, RPM
 * const off = smc.onEvent((e) => console.log(e.description)); // "lid closed"
 * ```
 */
export class AppleSmc {
  /** The bound device's name. */
  readonly deviceName: string;
  private readonly core: SmcCore;

  /** @internal Made by the driver's probe. */
  constructor(core: SmcCore) {
    this.core = core;
    this.deviceName = core.name;
  }

  /** Where the SMC is (see {@link SmcStage}). */
  get stage(): SmcStage {
    return this.core.stage;
  }

  /** Whether the driver is still bound. */
  get isBound(): boolean {
    return this.core.stage !== "unbound";
  }

  /** Keys in the SMC's table (`#KEY`, read at probe and after each restart). */
  get keyCount(): number {
    return this.core.keyCount;
  }

  /** Firmware crashes seen by this binding, oldest first, with their parsed crashlogs. */
  get crashes(): readonly SmcCrash[] {
    return this.core.crashes;
  }

  /** The counters. */
  stats(): AppleSmcStats {
    const c = this.core;
    return {
      events: c.events,
      strayReplies: c.strayReplies,
      sequenceMismatches: c.sequenceMismatches,
      sent: c.mailbox.sent,
      received: c.mailbox.received,
      mailboxFull: c.mailbox.fullEvents,
      recoveries: c.recoveries,
      cpuRestarts: c.cpuRestarts,
    };
  }

  /**
   * Reads `key` and decodes it by the type the SMC reports for it (key info is asked once
   * per firmware session): numbers for integer, `flt ` and `ioft` keys (64-bit integers as
   * bigint), booleans for `flag`, strings for `ch8*`, bytes otherwise. Keys the kernel's
   * drivers know ({@link SmcKnownKeys}) are typed; `#KEY` and `B0RM` are big-endian.
   *
   * **Errors:** as the class; `EIO` also when the SMC describes a known key with another
   * kind of value.
   */
  async readKey<K extends string>(key: K): Promise<SmcValueOf<K>> {
    const k = checkKey("readKey", key);
    this.checkRunning();
    const v = await K.readValue(this.core, k);
    // SAFETY: decodeSmcValue checked that a known key decoded to the kind its table entry
    // names; other keys are typed as any SmcValue.
    return v as SmcValueOf<K>;
  }

  /** apple_smc_read: `size` raw bytes of `key` (fewer when the key is shorter). */
  async readKeyRaw(key: string, size: number): Promise<Uint8Array> {
    const k = checkKey("readKeyRaw", key);
    this.checkRunning();
    return K.readRaw(this.core, k, size);
  }

  /**
   * Encodes `value` by the key's type and writes it (WRITE_KEY through the shared buffer).
   * A `Uint8Array` is written as the raw bytes whatever the type.
   *
   * **Errors:** as the class; `EINVAL` for a value of the wrong kind or range.
   */
  async writeKey<K extends string>(key: K, value: SmcValueOf<K>): Promise<void> {
    const k = checkKey("writeKey", key);
    this.checkRunning();
    await K.writeValue(this.core, k, value);
  }

  /** apple_smc_write: raw bytes (1–255) to `key`. */
  async writeKeyRaw(key: string, bytes: Uint8Array): Promise<void> {
    const k = checkKey("writeKeyRaw", key);
    this.checkRunning();
    await K.writeRaw(this.core, k, bytes);
  }

  /** apple_smc_rw: calls function key `key` with `arg`, reading `size` bytes back (RW_KEY). */
  async rwKey(key: string, arg: Uint8Array, size: number): Promise<Uint8Array> {
    const k = checkKey("rwKey", key);
    this.checkRunning();
    return K.rwRaw(this.core, k, arg, size);
  }

  /** apple_smc_get_key_info: size, type code and flags of `key`. */
  async keyInfo(key: string): Promise<SmcKeyInfo> {
    const k = checkKey("keyInfo", key);
    this.checkRunning();
    return K.keyInfo(this.core, k);
  }

  /** apple_smc_get_key_by_index: the key at `index` of the SMC's sorted table. */
  async keyByIndex(index: number): Promise<string> {
    this.checkRunning();
    return smcKeyName(await K.keyByIndex(this.core, index));
  }

  /** Every key with its info, in table order (`#KEY` enumeration). */
  async listKeys(): Promise<SmcKeyInfo[]> {
    this.checkRunning();
    return K.listKeys(this.core);
  }

  /**
   * Calls `handler` for every notification (the kernel's event notifier chain); returns the
   * function that unsubscribes. Handlers run from RTKit's work queue, in arrival order; one
   * that throws is logged and the others still run.
   *
   * **Errors:** `EINVAL` for a handler that is not a function.
   */
  onEvent(handler: (event: SmcEvent) => void): () => void {
    checkCallback("onEvent", "handler", handler);
    const h = (e: SmcEvent): void => handler(e);
    this.core.eventHandlers.add(h);
    return () => {
      this.core.eventHandlers.delete(h);
    };
  }

  /** Calls `handler` with each new stage (crashed, recovering, running, gone, …). */
  onStageChange(handler: (stage: SmcStage) => void): () => void {
    checkCallback("onStageChange", "handler", handler);
    const h = (s: SmcStage): void => handler(s);
    this.core.stageHandlers.add(h);
    return () => {
      this.core.stageHandlers.delete(h);
    };
  }

  /**
   * Resolves when the SMC is running — at once, or after a restart that follows a crash.
   *
   * **Errors:** rejects with the stage's error once it cannot run any more (restart failed,
   * gone, shut down, unbound).
   */
  whenRunning(): Promise<void> {
    return this.core.whenRunning();
  }

  /**
   * Stops the SMC before the driver is unbound, as the kernel's devres actions do: writes
   * `NTAP = 0`, then quiesces the RTKit firmware (if it runs), which forgets the session and
   * the shared buffers so the next probe can wake it. Later commands fail with `EIO`.
   *
   * **Errors:** the quiesce's error (`ETIME` when the firmware does not acknowledge,
   * `ENODEV` when the hardware is gone); the NTAP write's failure is only logged.
   */
  async shutdown(): Promise<void> {
    this.checkBound();
    const core = this.core;
    // A restart under way finishes first, so the firmware it starts is the one quiesced.
    if (core.stage !== "running" && core.willRecover) {
      try {
        await core.whenRunning();
      } catch {
        // Whatever stage it ended in, shut that down.
      }
    }
    core.stopping = true;
    if (core.stage === "running") {
      try {
        await K.setNotifications(core, false);
      } catch (e) {
        core.log("warn", `could not disable notifications (NTAP): ${String(e)}`);
      }
    }
    await core.locked(async () => {
      if (core.stage === "running") core.setStage("shutdown");
    });
    if (core.stage === "gone") throw core.stageError();
    if (core.rtk.isFreed || !core.rtk.isRunning) return;
    try {
      await core.rtk.quiesce();
    } catch (e) {
      // No acknowledgement may mean no device: say so rather than "timed out".
      if (core.mailbox.checkGone()) throw core.stageError();
      throw e;
    }
  }

  /** Commands need a running SMC: the stage's error otherwise (`EIO`, or `ENODEV`). */
  private checkRunning(): void {
    if (this.core.stage !== "running") throw this.core.stageError();
  }

  private checkBound(): void {
    if (this.core.stage === "unbound") {
      throw new DevrefError(
        "ENODEV",
        `${this.deviceName}: the SMC driver is no longer bound; get the new client after a rebind`,
      );
    }
  }
}
