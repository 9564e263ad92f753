//! C source: drivers/soc/apple/rtkit.c (struct apple_rtkit, apple_rtkit_rx, the rx work,
//! apple_rtkit_send_message, the completion waits, apple_rtkit_free)
//!
//! The instance: its state, the receive path, the ordered work queue, sends, waits, and
//! the bookkeeping behind settled(). Message handlers live in endpoints.ts and buffers.ts,
//! the power sequences in power.ts.

import {
  type ARef,
  checkBoolean,
  checkInteger,
  checkObject,
  DevrefError,
  type RawDevice,
} from "@devref/raw-device";
import * as C from "../constants.js";
import type { Rtkit, RtkitLogLevel, RtkitSendOptions } from "../types.js";
import { checkMsg0, hex, hexPad, hiOf, join, loOf, U64_MAX } from "./bits.js";
import { freeBuffer, ShmemSlot } from "./buffers.js";
import { Completion, Waiter } from "./completion.js";
import { dispatchSystem } from "./endpoints.js";
import { asDevrefError } from "./errors.js";
import type { Config } from "./options.js";
import * as power from "./power.js";
import { MessageQueue } from "./queue.js";

/** Messages the work queue holds before it drops new ones (the kernel's GFP_ATOMIC failure). */
export const QUEUE_LIMIT: number = 1 << 16;
/** Microtask turns settled() waits after things go quiet, so callers' then-callbacks run. */
const SETTLE_HOPS = 8;
const RESOLVED: Promise<DevrefError | null> = Promise.resolve(null);

/**
 * @internal The state and machinery of one RTKit instance (struct apple_rtkit). Only this
 * package's modules hold it: callers get an RtkitInstance, which forwards the {@link Rtkit}
 * calls, so the members the handlers share here are out of their reach.
 */
export class RtkitClient implements Rtkit {
  readonly cfg: Config;
  readonly deviceName: string;
  private readonly dev: ARef<RawDevice>;

  // State the kernel keeps in struct apple_rtkit.
  version = 0;
  bootResult: DevrefError | null = null;
  iopPowerState: number = C.PWR_STATE_OFF;
  apPowerState: number = C.PWR_STATE_OFF;
  crashed = false;
  readonly endpoints: Uint8Array = new Uint8Array(C.MAX_ENDPOINTS);
  readonly ioreport: ShmemSlot = new ShmemSlot("ioreport");
  readonly crashlog: ShmemSlot = new ShmemSlot("crashlog");
  readonly oslog: ShmemSlot = new ShmemSlot("oslog");
  readonly syslog: ShmemSlot = new ShmemSlot("syslog");
  /** SYSLOG_INIT arrived (the kernel's syslog_msg_buffer exists). */
  syslogReady = false;
  syslogEntries = 0;
  syslogMsgSize = 0;
  /** Where an entry of an iomem syslog ring is copied to (the kernel's syslog_msg_buffer). */
  private syslogCopy: Uint8Array | null = null;
  readonly epmapDone: Completion = new Completion("the HELLO/EPMAP handshake");
  readonly iopAck: Completion = new Completion("the IOP power state acknowledgement");
  readonly apAck: Completion = new Completion("the AP power state acknowledgement");

  // The receive path and the ordered work queue.
  private readonly queue: MessageQueue = new MessageQueue();
  private readonly held: MessageQueue = new MessageQueue(16);
  private drainScheduled = false;
  private draining = false;
  /** The mailbox is stopped (reinit, free): received messages wait in `held`. */
  private stopped = false;
  freed = false;
  private freeing = false;
  private readonly runDrain: () => void;
  private drainWaiters: (() => void)[] = [];

  // What settled() waits for: calls in flight, and how many of them are blocked.
  private active = 0;
  private blocked = 0;
  private settleWaiters: (() => void)[] = [];
  private settleCheckPending = false;

  constructor(dev: ARef<RawDevice>, cfg: Config) {
    this.dev = dev;
    this.cfg = cfg;
    this.deviceName = dev.name;
    this.endpoints[C.EP_MGMT] = 1;
    this.runDrain = () => this.drain();
  }

  // --- state queries -----------------------------------------------------------------

  get isRunning(): boolean {
    return (
      !this.freed &&
      !this.crashed &&
      (this.iopPowerState & 0xff) === C.PWR_STATE_ON &&
      (this.apPowerState & 0xff) === C.PWR_STATE_ON
    );
  }
  get isCrashed(): boolean {
    return this.crashed;
  }
  get isFreed(): boolean {
    return this.freed;
  }
  hasEndpoint(ep: number): boolean {
    checkInteger("Rtkit.hasEndpoint", "ep", ep, 0, 0xff);
    return this.endpoints[ep] === 1;
  }

  /** A scratch view of `n` bytes (at most 0x11f: an entry's header and 255 text bytes). */
  syslogScratch(n: number): Uint8Array {
    let b = this.syslogCopy;
    if (b === null) {
      b = new Uint8Array(0x20 + 0xff);
      this.syslogCopy = b;
    }
    return b.subarray(0, n);
  }

  // --- logging -------------------------------------------------------------------------

  log(level: RtkitLogLevel, text: string): void {
    const sink = this.cfg.log;
    if (sink !== null) {
      try {
        sink(level, text);
      } catch {
        // A log sink that throws must not take the message path down with it.
      }
      return;
    }
    if (level === "dbg") return;
    const line = `${level} ${this.deviceName}: ${text}`;
    if (level === "info") console.log(line);
    else console.error(line);
  }

  /** Logs a driver callback that threw; the kernel's callbacks cannot fail this way. */
  callbackError(name: string, e: unknown): void {
    const what = e instanceof Error ? e.message : String(e);
    this.log("err", `RTKit: ops.${name} threw: ${what}`);
  }

  // --- receive path and work queue -------------------------------------------------------

  receive(ep: number, msg0: bigint): void {
    if (typeof ep !== "number" || !(ep >= 0 && ep <= 0xff) || (ep | 0) !== ep) {
      checkInteger("Rtkit.receive", "ep", ep, 0, 0xff);
    }
    if (typeof msg0 !== "bigint" || msg0 < 0n || msg0 > U64_MAX) {
      checkMsg0("Rtkit.receive", "msg0", msg0);
    }
    if (this.freed) {
      this.log("dbg", `RTKit: message to ep 0x${hexPad(ep, 2)} after free dropped`);
      return;
    }
    if (this.stopped) {
      this.held.push(ep, msg0);
      return;
    }
    this.deliver(ep, msg0);
  }

  private deliver(ep: number, msg0: bigint): void {
    if (this.endpoints[ep] === 0) {
      this.log("warn", `RTKit: Message to undiscovered endpoint 0x${hexPad(ep, 2)}`);
    }
    if (ep >= C.APP_ENDPOINT_START) {
      const early = this.cfg.recvMessageEarly;
      if (early !== null) {
        try {
          if (early(ep, msg0) === true) return;
        } catch (e) {
          this.callbackError("recvMessageEarly", e);
        }
      }
    }
    if (this.queue.length >= QUEUE_LIMIT) {
      this.log(
        "err",
        `RTKit: work queue full (${QUEUE_LIMIT} messages); message to ep 0x${hexPad(ep, 2)} dropped`,
      );
      return;
    }
    this.queue.push(ep, msg0);
    if (!this.drainScheduled && !this.draining) {
      this.drainScheduled = true;
      try {
        this.cfg.schedule(this.runDrain);
      } catch (e) {
        this.log("err", `RTKit: options.schedule threw (${String(e)}); running the queue later`);
        queueMicrotask(this.runDrain);
      }
    }
  }

  /** Runs the work queue until it is empty (the rx worker, one message at a time). */
  drain(): void {
    this.drainScheduled = false;
    if (this.draining || this.freed) return;
    this.draining = true;
    const q = this.queue;
    try {
      while (q.length > 0 && !this.freed) {
        const ep = q.peekEp();
        const msg = q.shiftMsg();
        try {
          this.dispatch(ep, msg);
        } catch (e) {
          this.log(
            "err",
            `RTKit: handling a message to ep 0x${hexPad(ep, 2)} failed: ${String(e)}`,
          );
        }
      }
    } finally {
      this.draining = false;
    }
    const waiters = this.drainWaiters;
    if (waiters.length > 0) {
      this.drainWaiters = [];
      for (const w of waiters) w();
    }
    this.scheduleSettleCheck();
  }

  /** Resolves once the running drain has finished (flush_workqueue from inside it). */
  untilDrained(): Promise<void> {
    return new Promise((resolve) => this.drainWaiters.push(resolve));
  }

  private dispatch(ep: number, msg: bigint): void {
    if (ep >= C.APP_ENDPOINT_START) {
      const recv = this.cfg.recvMessage;
      if (recv === null) {
        this.log(
          "warn",
          `Received unexpected message to EP${String(ep).padStart(2, "0")}: ${hex(msg)}`,
        );
        return;
      }
      try {
        recv(ep, msg);
      } catch (e) {
        this.callbackError("recvMessage", e);
      }
      return;
    }
    dispatchSystem(this, ep, hiOf(msg), loOf(msg), msg);
  }

  /** Stops the receive path and flushes the queue: the start of reinit and free. */
  async stopAndFlush(): Promise<void> {
    this.stopped = true;
    if (this.draining) await this.untilDrained();
    else this.drain();
  }

  /** Restarts the receive path; what arrived while stopped is delivered in order. */
  restart(): void {
    this.stopped = false;
    const held = this.held;
    while (held.length > 0 && !this.stopped && !this.freed) {
      const ep = held.peekEp();
      this.deliver(ep, held.shiftMsg());
    }
  }

  // --- sending -------------------------------------------------------------------------

  /** apple_rtkit_send_message: null when sent, else the error the kernel returns. */
  sendRaw(ep: number, msg0: bigint, atomic: boolean): DevrefError | null {
    if (this.freed) return this.shutdownError("send a message");
    if (this.crashed) {
      this.log("warn", "RTKit: Device is crashed, cannot send message");
      return new DevrefError(
        "EINVAL",
        `${this.deviceName}: the coprocessor has crashed; nothing can be sent until reinit()`,
      );
    }
    if (ep >= C.APP_ENDPOINT_START && !this.isRunning) {
      this.log("warn", `RTKit: Endpoint 0x${hexPad(ep, 2)} is not running, cannot send message`);
      return new DevrefError(
        "EINVAL",
        `${this.deviceName}: endpoint 0x${hexPad(ep, 2)} is an application endpoint and RTKit is not running; boot() first`,
      );
    }
    try {
      this.cfg.send(ep, msg0, atomic);
      return null;
    } catch (e) {
      return asDevrefError(e, "EIO", "transport.send");
    }
  }

  /** apple_rtkit_management_send: the type goes in bits 59:52 of `hi`. */
  mgmtSend(type: number, hi: number, lo: number): DevrefError | null {
    const err = this.sendRaw(C.EP_MGMT, join((hi & ~0x0ff0_0000) | (type << 20), lo), false);
    if (err !== null) {
      this.log("err", `RTKit: Failed to send management message: -${err.errno}`);
    }
    return err;
  }

  /** A send whose result the kernel ignores: a failure is only worth a debug line. */
  sendIgnoringResult(ep: number, msg0: bigint): void {
    const err = this.sendRaw(ep, msg0, false);
    if (err !== null) this.log("dbg", `RTKit: send to ep 0x${hexPad(ep, 2)} failed: ${err.code}`);
  }

  // --- completions ---------------------------------------------------------------------

  /** wait_for_completion_interruptible_timeout(c, 1000 ms): null, ETIME, or ESHUTDOWN. */
  waitFor(c: Completion): Promise<DevrefError | null> {
    if (this.freed) return Promise.resolve(this.shutdownError(`wait for ${c.what}`));
    if (c.done) return RESOLVED;
    return new Promise((resolve) => {
      const w = new Waiter(resolve);
      c.waiters.push(w);
      this.blocked++;
      try {
        w.handle = this.cfg.timers.setTimeout(() => this.expire(c, w), C.COMPLETION_TIMEOUT_MS);
      } catch (e) {
        this.release(c, w, asDevrefError(e, "EINVAL", "options.timers.setTimeout"));
        return;
      }
      this.scheduleSettleCheck();
    });
  }

  private expire(c: Completion, w: Waiter): void {
    if (w.done) return;
    const err = new DevrefError(
      "ETIME",
      `${this.deviceName}: timed out after ${C.COMPLETION_TIMEOUT_MS} ms waiting for ${c.what}`,
    );
    this.release(c, w, err);
  }

  private release(c: Completion, w: Waiter, result: DevrefError | null): void {
    if (w.done) return;
    w.done = true;
    const i = c.waiters.indexOf(w);
    if (i >= 0) c.waiters.splice(i, 1);
    this.blocked--;
    w.resolve(result);
  }

  /** complete_all: every waiter wakes; the completion stays done until reinitCompletion. */
  completeAll(c: Completion): void {
    c.done = true;
    const waiters = c.waiters;
    if (waiters.length === 0) return;
    c.waiters = [];
    for (const w of waiters) {
      if (w.done) continue;
      w.done = true;
      this.blocked--;
      try {
        this.cfg.timers.clearTimeout(w.handle);
      } catch {
        // The waiter is done either way; a late timer finds it done.
      }
      w.resolve(null);
    }
  }

  /** reinit_completion: later waits block again; current waiters keep waiting. */
  reinitCompletion(c: Completion): void {
    c.done = false;
  }

  private failWaiters(c: Completion): void {
    for (const w of [...c.waiters]) {
      try {
        this.cfg.timers.clearTimeout(w.handle);
      } catch {
        // As in completeAll.
      }
      this.release(c, w, this.shutdownError(`wait for ${c.what}`));
    }
  }

  shutdownError(what: string): DevrefError {
    return new DevrefError(
      "ESHUTDOWN",
      `${this.deviceName}: cannot ${what}: this RTKit instance was freed; create a new one`,
    );
  }

  // --- calls and settled() ---------------------------------------------------------------

  /** Runs an API call: counted for settled(), its error (if any) becomes the rejection. */
  private run(what: string, body: () => Promise<DevrefError | null>): Promise<void> {
    if (this.freed) return Promise.reject(this.shutdownError(what));
    this.active++;
    return body().then(
      (err) => {
        this.active--;
        this.scheduleSettleCheck();
        if (err !== null) throw err;
      },
      (e: unknown) => {
        this.active--;
        this.scheduleSettleCheck();
        throw asDevrefError(e, "EINVAL", what);
      },
    );
  }

  private isQuiet(): boolean {
    return (
      this.queue.length === 0 &&
      !this.draining &&
      (!this.drainScheduled || this.freed) &&
      this.active === this.blocked
    );
  }

  private scheduleSettleCheck(): void {
    if (this.settleCheckPending || this.settleWaiters.length === 0 || !this.isQuiet()) return;
    this.settleCheckPending = true;
    queueMicrotask(() => this.settleHop(SETTLE_HOPS));
  }

  private settleHop(n: number): void {
    if (!this.isQuiet()) {
      this.settleCheckPending = false;
      return;
    }
    if (n > 0) {
      queueMicrotask(() => this.settleHop(n - 1));
      return;
    }
    this.settleCheckPending = false;
    const waiters = this.settleWaiters;
    this.settleWaiters = [];
    for (const w of waiters) w();
  }

  settled(): Promise<void> {
    return new Promise((resolve) => {
      this.settleWaiters.push(resolve);
      this.scheduleSettleCheck();
    });
  }

  // --- the public API --------------------------------------------------------------------

  boot(): Promise<void> {
    return this.run("boot", () => power.boot(this));
  }
  wake(): Promise<void> {
    return this.run("wake", () => power.wake(this));
  }
  quiesce(): Promise<void> {
    return this.run("quiesce", () => power.quiesce(this));
  }
  idle(): Promise<void> {
    return this.run("idle", () => power.idle(this));
  }
  shutdown(): Promise<void> {
    return this.run("shutdown", () => power.shutdown(this));
  }
  poweroff(): Promise<void> {
    return this.run("poweroff", () => power.poweroff(this));
  }
  reinit(): Promise<void> {
    return this.run("reinit", () => power.reinit(this));
  }

  poll(): Promise<void> {
    return this.run("poll", async () => {
      const poll = this.cfg.poll;
      if (poll === null) return null;
      try {
        poll();
        return null;
      } catch (e) {
        return asDevrefError(e, "EIO", "transport.poll");
      }
    });
  }

  startEp(ep: number): Promise<void> {
    return this.run("startEp", async () => {
      checkInteger("Rtkit.startEp", "ep", ep, 0, 0xff);
      return power.startEp(this, ep);
    });
  }

  sendMessage(ep: number, msg0: bigint, options?: RtkitSendOptions): Promise<void> {
    return this.run("sendMessage", async () => {
      const where = "Rtkit.sendMessage";
      checkInteger(where, "ep", ep, 0, 0xff);
      checkMsg0(where, "msg0", msg0);
      let atomic = false;
      if (options !== undefined) {
        checkObject(where, "options", options);
        if (options.atomic !== undefined)
          atomic = checkBoolean(where, "options.atomic", options.atomic);
      }
      return this.sendRaw(ep, msg0, atomic);
    });
  }

  free(): void {
    if (this.freed || this.freeing) return;
    this.freeing = true;
    // destroy_workqueue runs what is queued; from inside a handler the rest is dropped.
    this.stopped = true;
    if (!this.draining) this.drain();
    this.freed = true;
    this.queue.clear();
    this.held.clear();
    for (const slot of [this.ioreport, this.crashlog, this.oslog, this.syslog]) {
      freeBuffer(this, slot);
    }
    this.syslogReady = false;
    for (const c of [this.epmapDone, this.iopAck, this.apAck]) this.failWaiters(c);
    this.dev.put();
    this.scheduleSettleCheck();
  }

  [Symbol.dispose](): void {
    this.free();
  }
}
