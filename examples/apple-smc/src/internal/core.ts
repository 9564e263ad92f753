//! C source: drivers/mfd/macsmc.c (struct apple_smc, apple_smc_cmd_locked, the RTKit ops,
//! apple_smc_probe), drivers/platform/apple/smc_rtkit.c (the older Asahi backend)
//!
//! One bound SMC: its boot stage, the command engine (one command at a time, a 4-bit
//! sequence number, the 500 ms reply timeout), the RTKit callbacks, crash handling and
//! recovery. It reaches hardware only through devres-managed regions (revoked at unbind);
//! timers and RTKit's callbacks reach it through the binding's devm callbacks.

import type { BoundCallback, Devres, MmioRegion } from "@devref/device-core";
import { DevrefError } from "@devref/raw-device";
import type { Crashlog, Rtkit, RtkitTimers } from "@devref/rtkit";
import type { SmcEvent } from "../events.js";
import type { AscMailboxChannel } from "../mailbox.js";
import {
  decodeSmcReply,
  encodeSmcCommand,
  hex64,
  SMC_ENDPOINT,
  SMC_MSG_INITIALIZE,
  SMC_SHMEM_SIZE,
  SMC_TIMEOUT_MS,
  type SmcReply,
  shmemAddressOf,
  smcResultName,
} from "../protocol.js";
import type { SramWindow } from "../shmem.js";
import type { SmcKeyInfo } from "../values.js";

/**
 * Where a bound SMC is (the kernel's boot stages, plus what this driver adds):
 * `booting` until INITIALIZE is answered; `initialized` while the driver finishes bringing
 * it up (`#KEY`, notifications); `running`; `no-shmem` when the answer was no usable
 * address; `crashed` after the firmware crashed; `recovering` while it is restarted;
 * `failed` when that did not work; `gone` when the hardware reads all-ones; `shutdown` after
 * `shutdown()`; `unbound` once the driver let go.
 */
export type SmcStage =
  | "booting"
  | "initialized"
  | "running"
  | "no-shmem"
  | "crashed"
  | "recovering"
  | "failed"
  | "gone"
  | "shutdown"
  | "unbound";

/** A firmware crash as the driver saw it. */
export interface SmcCrash {
  /** The crashlog, parsed (`parseCrashlog`), or null when there was no copy to parse. */
  readonly crashlog: Crashlog | null;
  /** The lines of its `Cstr` sections (the panic messages). */
  readonly messages: readonly string[];
  /** The firmware version from its `Cver` section, or null. */
  readonly version: string | null;
  /** Why the crashlog could not be parsed (or why the walk stopped early), or null. */
  readonly problem: string | null;
}

/** What the core needs from probe. */
export interface SmcCoreInit {
  readonly name: string;
  readonly log: (level: "err" | "warn" | "info" | "dbg", text: string) => void;
  readonly timers: RtkitTimers;
  readonly sram: SramWindow;
  /** The ASC's CPU-control window (`smc` resource): restarts the coprocessor. */
  readonly cpu: Devres<MmioRegion>;
  readonly recover: boolean;
  readonly maxRecoveries: number;
}

/** ASC CPU_CONTROL and its RUN bit (m1n1 hw/asc.py). */
const ASC_CPU_CONTROL = 0x44;
const ASC_CPU_RUN = 0x10;

type Pending = {
  readonly id: number;
  readonly msg0: bigint;
  readonly resolve: (r: SmcReply) => void;
  readonly reject: (e: DevrefError) => void;
  timer: unknown;
};

type InitWait = {
  readonly resolve: (msg0: bigint) => void;
  readonly reject: (e: DevrefError) => void;
  timer: unknown;
};

type StageWaiter = { resolve: () => void; reject: (e: DevrefError) => void };

const noop = (): void => {};

/** @internal The state of one bound SMC. Made in probe; reached through bound callbacks. */
export class SmcCore {
  readonly name: string;
  readonly log: SmcCoreInit["log"];
  readonly timers: RtkitTimers;
  readonly sram: SramWindow;
  private readonly cpu: Devres<MmioRegion>;
  readonly recoverEnabled: boolean;
  readonly maxRecoveries: number;
  // Set in probe right after construction (they need the core's callbacks first).
  mailbox!: AscMailboxChannel;
  rtk!: Rtkit;
  /** Runs `recover` with a borrow while bound. */
  recoverBound: BoundCallback<[], Promise<void>> | null = null;
  /** Fires a command's or INITIALIZE's timeout while bound. */
  timeoutBound: BoundCallback<[number], void> | null = null;

  stage: SmcStage = "booting";
  /** Offset of the command buffer in the SRAM window, or -1 before INITIALIZE. */
  shmemOffset = -1;
  keyCount = 0;
  /** True while probe brings the SMC up: a crash then fails the probe's step instead. */
  probing = true;
  /** A restart after a crash is under way (one at a time). */
  recovering = false;
  /** `shutdown()` has begun: no restart starts any more. */
  stopping = false;
  /** Restarts tried after crashes, and CPU restarts of any cause. */
  recoveryAttempts = 0;
  cpuRestarts = 0;
  /** Whether notifications are wanted (NTAP written 1), so recovery turns them back on. */
  notifications = false;
  recoveries = 0;
  readonly crashes: SmcCrash[] = [];
  /** Key infos learned this session (cleared when the firmware restarts). */
  readonly infoCache: Map<string, SmcKeyInfo> = new Map();
  readonly eventHandlers: Set<(e: SmcEvent) => void> = new Set();
  readonly stageHandlers: Set<(s: SmcStage) => void> = new Set();
  /** Notifications delivered, replies that matched nothing, sequence mismatches. */
  events = 0;
  strayReplies = 0;
  sequenceMismatches = 0;
  private msgId = 0;
  private pending: Pending | null = null;
  private initWait: InitWait | null = null;
  private stageWaiters: StageWaiter[] = [];
  private tail: Promise<void> = Promise.resolve();

  constructor(init: SmcCoreInit) {
    this.name = init.name;
    this.log = init.log;
    this.timers = init.timers;
    this.sram = init.sram;
    this.cpu = init.cpu;
    this.recoverEnabled = init.recover;
    this.maxRecoveries = init.maxRecoveries;
  }

  // --- stage ------------------------------------------------------------------------------

  setStage(s: SmcStage): void {
    const was = this.stage;
    // Removal and unbinding are final; nothing that was under way may undo them.
    if (was === s || was === "unbound" || (was === "gone" && s !== "unbound")) return;
    this.stage = s;
    for (const h of [...this.stageHandlers]) {
      try {
        h(s);
      } catch (e) {
        this.log("err", `a stage handler threw: ${String(e)}`);
      }
    }
    if (s === "running") {
      const w = this.stageWaiters;
      this.stageWaiters = [];
      for (const x of w) x.resolve();
    } else if (!this.mayRun()) {
      this.failStageWaiters();
    }
  }

  /** Whether the hardware is gone or the driver let go: nothing will run again. */
  get isDead(): boolean {
    return this.stage === "gone" || this.stage === "unbound";
  }

  /** Whether a crashed SMC will be restarted (recovery on, attempts left, or one running). */
  get willRecover(): boolean {
    return (
      this.recovering ||
      (this.recoverEnabled &&
        !this.probing &&
        !this.stopping &&
        this.recoveryAttempts < this.maxRecoveries)
    );
  }

  /** Whether the current stage can still turn into `running` without a rebind. */
  private mayRun(): boolean {
    const s = this.stage;
    return (
      s === "booting" ||
      s === "initialized" ||
      s === "recovering" ||
      (s === "crashed" && this.willRecover)
    );
  }

  /** Resolves when the SMC is running; rejects once it cannot be any more. */
  whenRunning(): Promise<void> {
    if (this.stage === "running") return Promise.resolve();
    if (!this.mayRun()) return Promise.reject(this.stageError());
    return new Promise((resolve, reject) => this.stageWaiters.push({ resolve, reject }));
  }

  private failStageWaiters(): void {
    const w = this.stageWaiters;
    this.stageWaiters = [];
    const e = this.stageError();
    for (const x of w) x.reject(e);
  }

  /** The error a command gets in the current stage (the kernel's -EIO when not initialized). */
  stageError(): DevrefError {
    switch (this.stage) {
      case "gone":
        return new DevrefError(
          "ENODEV",
          `${this.name}: the SMC is gone (its registers read all-ones); nothing can be asked of it`,
        );
      case "unbound":
        return new DevrefError(
          "ENODEV",
          `${this.name}: the SMC driver is no longer bound; get the new client after a rebind`,
        );
      case "crashed":
      case "recovering":
        return new DevrefError(
          "EIO",
          `${this.name}: the SMC firmware crashed${this.stage === "recovering" ? " and is being restarted" : ""}; wait for whenRunning() and retry`,
        );
      default:
        return new DevrefError(
          "EIO",
          `${this.name}: the SMC is not running (stage ${this.stage}); commands need a running SMC`,
        );
    }
  }

  // --- commands (apple_smc_cmd_locked) ------------------------------------------------------

  /** Runs `body` holding the command lock (the kernel's smc->mutex). */
  async locked<T>(body: () => Promise<T>): Promise<T> {
    let release = noop;
    const mine = new Promise<void>((r) => {
      release = r;
    });
    const before = this.tail;
    this.tail = before.then(() => mine);
    await before;
    try {
      return await body();
    } finally {
      release();
    }
  }

  /**
   * Sends one command and waits for its reply (lock held by the caller): `EIO` unless
   * running, the send's error, `ETIMEDOUT` after 500 ms, `EIO` for a non-zero result.
   */
  async command(
    what: string,
    msg: number,
    data: number,
    size: number,
    wsize: number,
  ): Promise<SmcReply> {
    if (!this.canCommand()) throw this.stageError();
    await this.mailbox.waitForRoom();
    if (!this.canCommand()) throw this.stageError();
    this.msgId = (this.msgId + 1) & 0xf;
    const id = this.msgId;
    const msg0 = encodeSmcCommand({ msg, data, size, wsize, id });
    const reply = new Promise<SmcReply>((resolve, reject) => {
      this.pending = { id, msg0, resolve, reject, timer: null };
    });
    reply.catch(noop);
    const p = this.pending!;
    p.timer = this.timers.setTimeout(() => this.timeoutBound?.(id), SMC_TIMEOUT_MS);
    try {
      await this.rtk.sendMessage(SMC_ENDPOINT, msg0);
    } catch (e) {
      this.dropPending(p);
      this.log("err", `Failed to send command ${what}`);
      throw e;
    }
    const r = await reply;
    if (r.result !== 0) {
      const name = smcResultName(r.result);
      throw new DevrefError(
        "EIO",
        `${this.name}: SMC ${what} failed: ${name} (0x${r.result.toString(16).padStart(2, "0")})`,
        { details: { result: r.result, resultName: name } },
      );
    }
    return r;
  }

  /** Whether commands may be sent: INITIALIZE is done (bring-up) or the SMC runs. */
  canCommand(): boolean {
    return this.stage === "running" || this.stage === "initialized";
  }

  /** A command's or INITIALIZE's 500 ms ran out (bound timer). */
  timeout(id: number): void {
    // A silent device may be a removed one: then every waiter gets ENODEV at once.
    if (this.mailbox.checkGone()) return;
    const p = this.pending;
    if (p !== null && p.id === id && p.timer !== null) {
      p.timer = null;
      this.pending = null;
      this.log("err", `Command timed out (${hex64(p.msg0)})`);
      p.reject(
        new DevrefError(
          "ETIMEDOUT",
          `${this.name}: the SMC did not answer command 0x${hex64(p.msg0)} within ${SMC_TIMEOUT_MS} ms`,
        ),
      );
      return;
    }
    const w = this.initWait;
    if (id === -1 && w !== null) {
      this.initWait = null;
      this.log("err", "Timed out initializing SMC");
      w.reject(
        new DevrefError(
          "ETIMEDOUT",
          `${this.name}: the SMC did not answer INITIALIZE within ${SMC_TIMEOUT_MS} ms`,
        ),
      );
    }
  }

  private dropPending(p: Pending): void {
    if (this.pending === p) this.pending = null;
    if (p.timer !== null) this.timers.clearTimeout(p.timer);
    p.timer = null;
  }

  /** Fails the command in flight and INITIALIZE's wait with `e`. */
  failInFlight(e: DevrefError): void {
    const p = this.pending;
    if (p !== null) {
      this.dropPending(p);
      p.reject(e);
    }
    const w = this.initWait;
    if (w !== null) {
      this.initWait = null;
      if (w.timer !== null) this.timers.clearTimeout(w.timer);
      w.reject(e);
    }
  }

  // --- boot -----------------------------------------------------------------------------------

  /** Forgets the RTKit session, pulses CPU_CONTROL.RUN and boots again. */
  async restart(): Promise<void> {
    await this.rtk.reinit();
    const cpu = this.cpu.tryAccess();
    if (cpu === undefined) throw this.stageError();
    if (cpu.read32(ASC_CPU_CONTROL) === 0xffff_ffff) {
      this.mailbox.transport.poll?.(); // notices the all-ones and marks the SMC gone
      throw this.stageError();
    }
    this.cpuRestarts++;
    cpu.write32(ASC_CPU_CONTROL, 0);
    cpu.write32(ASC_CPU_CONTROL, ASC_CPU_RUN);
    await this.rtk.boot();
  }

  /** INITIALIZE, and the shared buffer it names checked against the SRAM. */
  async initialize(): Promise<void> {
    if (this.isDead) throw this.stageError();
    this.setStage("booting");
    this.shmemOffset = -1;
    this.infoCache.clear();
    await this.mailbox.waitForRoom();
    const answer = new Promise<bigint>((resolve, reject) => {
      this.initWait = { resolve, reject, timer: null };
    });
    answer.catch(noop);
    const w = this.initWait!;
    w.timer = this.timers.setTimeout(() => this.timeoutBound?.(-1), SMC_TIMEOUT_MS);
    try {
      await this.rtk.sendMessage(SMC_ENDPOINT, BigInt(SMC_MSG_INITIALIZE));
    } catch (e) {
      if (this.initWait === w) this.initWait = null;
      if (w.timer !== null) this.timers.clearTimeout(w.timer);
      this.log("err", "Failed to send init message");
      throw e;
    }
    const msg0 = await answer;
    const addr = shmemAddressOf(msg0);
    if (!this.sram.contains(addr, SMC_SHMEM_SIZE)) {
      this.setStage("no-shmem");
      this.log(
        "err",
        `Failed to initialize shared memory (-EFAULT): 0x${hex64(msg0)} is not a 0x${SMC_SHMEM_SIZE.toString(16)}-byte buffer inside SRAM [0x${this.sram.start.toString(16)}, 0x${(this.sram.start + this.sram.size).toString(16)})`,
      );
      throw new DevrefError(
        "EIO",
        `${this.name}: SMC failed to boot successfully (boot stage no-shmem): its INITIALIZE answer 0x${hex64(msg0)} is outside the SRAM`,
      );
    }
    this.shmemOffset = addr - this.sram.start;
    this.setStage("initialized");
  }

  // --- what RTKit's callbacks deliver (rtkit-ops.ts) -------------------------------------------

  /** INITIALIZE's answer, if one is awaited in the booting stage: true when taken. */
  takeInitAnswer(msg0: bigint): boolean {
    const w = this.initWait;
    if (this.stage !== "booting" || w === null) return false;
    this.initWait = null;
    if (w.timer !== null) this.timers.clearTimeout(w.timer);
    w.resolve(msg0);
    return true;
  }

  /**
   * A reply: completes the command waiting for it. One with no command waiting, or with
   * another sequence ID, is logged and dropped (Asahi's backend keeps waiting on a
   * mismatch; mainline fails the command with -EIO).
   */
  takeReply(msg0: bigint): void {
    const p = this.pending;
    if (p === null) {
      this.strayReplies++;
      this.log("warn", `reply 0x${hex64(msg0)} with no command waiting; dropped`);
      return;
    }
    const r = decodeSmcReply(msg0);
    if (r.id !== p.id) {
      this.sequenceMismatches++;
      this.log(
        "err",
        `Command sequence mismatch (expected ${p.id}, got ${r.id}); still waiting for the reply`,
      );
      return;
    }
    this.dropPending(p);
    p.resolve(r);
  }

  /** After a crash: a restart is scheduled, or the reason why not is logged. */
  afterCrash(): void {
    // During probe the failed bring-up step restarts it; a running restart loops by itself.
    if (this.probing || this.recovering) return;
    if (this.willRecover) {
      // Not from inside RTKit's handler: reinit waits for the work queue this runs on.
      this.timers.setTimeout(() => {
        this.recoverBound?.()?.catch(noop);
      }, 0);
      return;
    }
    this.log(
      "err",
      this.stopping
        ? "the SMC crashed while shutting down; it stays down"
        : this.recoverEnabled
          ? `not restarting the SMC again (${this.recoveryAttempts} restarts this binding); every command fails with EIO until a rebind`
          : "every command fails with EIO until a rebind (recover: false)",
    );
  }

  /** The hardware reads all-ones: fail everything at once instead of timing out. */
  gone(): void {
    if (this.stage === "unbound") return;
    this.setStage("gone");
    this.failInFlight(this.stageError());
  }

  /** The binding ended: nothing in flight may wait for a reply that nobody will deliver. */
  unbound(): void {
    this.setStage("unbound");
    this.failInFlight(this.stageError());
    this.failStageWaiters();
  }
}
