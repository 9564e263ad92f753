//! C source: drivers/soc/apple/mailbox.c (apple_mbox_send, the recv-not-empty handler,
//! apple_mbox_poll)
//!
//! The ASC mailbox as the SMC driver drives it itself (the SMC node carries the mailbox
//! window and its four interrupts): an RTKit transport over two 64-bit FIFOs. Receive runs
//! from the recv-not-empty interrupt; send writes SEND0 then SEND1 and, when A2I is FULL,
//! waits for the send-empty interrupt — requested only while a sender waits, since the line
//! stays asserted whenever A2I is empty — for at most 500 ms of the machine's time.

import type { PlatformDevice } from "@devref/bus";
import type { BoundCallback, Devres, IrqLine, MmioRegion } from "@devref/device-core";
import { type Bound, checkInteger, DevrefError } from "@devref/raw-device";
import type { RtkitTimers, RtkitTransport } from "@devref/rtkit";

/** Control-register bit (A2I and I2A control): the FIFO is full. */
export const MBOX_CONTROL_FULL: number = 1 << 16;
/** Control-register bit: the FIFO is empty. */
export const MBOX_CONTROL_EMPTY: number = 1 << 17;
/** The longest a send waits for room (APPLE_MBOX_TX_TIMEOUT). */
export const MBOX_TX_TIMEOUT_MS = 500;

/** Register offsets of one layout (rtkit.md §2.2). */
export interface AscMailboxLayout {
  readonly a2iControl: number;
  readonly i2aControl: number;
  readonly a2iSend0: number;
  readonly a2iSend1: number;
  readonly i2aRecv0: number;
  readonly i2aRecv1: number;
}

/** `apple,asc-mailbox-v4` (t8103 and most ASCs). */
export const ASC_V4_LAYOUT: AscMailboxLayout = {
  a2iControl: 0x110,
  i2aControl: 0x114,
  a2iSend0: 0x800,
  a2iSend1: 0x808,
  i2aRecv0: 0x830,
  i2aRecv1: 0x838,
};

/** `apple,t8015-asc-mailbox`: only the two control registers move. */
export const T8015_LAYOUT: AscMailboxLayout = {
  ...ASC_V4_LAYOUT,
  a2iControl: 0x108,
  i2aControl: 0x10c,
};

/** What an {@link AscMailboxChannel} is made from (in probe, with a Bound borrow). */
export interface AscMailboxChannelOptions {
  /** The mailbox register window, from `ioremapResource`. */
  readonly regs: Devres<MmioRegion>;
  /** Index of the send-empty interrupt in the device's `interrupts`. */
  readonly sendEmptyIrq: number;
  /** Index of the recv-not-empty interrupt. */
  readonly recvNotEmptyIrq: number;
  /** The machine's timers (virtual milliseconds on the simulator). */
  readonly timers: RtkitTimers;
  /** Where each received message goes: the RTKit client's `receive`. */
  readonly receive: (ep: number, msg0: bigint) => void;
  /** Where log lines go. */
  readonly log: (level: "err" | "warn" | "info" | "dbg", text: string) => void;
  /** Told once when the registers read all-ones: the coprocessor is gone. */
  readonly onGone?: () => void;
  /** Register layout (default {@link ASC_V4_LAYOUT}). */
  readonly layout?: AscMailboxLayout;
  /** Messages kept while A2I is full (default 32); beyond them a send fails with `EBUSY`. */
  readonly backlog?: number;
}

const ALL_ONES = 0xffff_ffff;
/** Messages drained per interrupt before letting the level line come back (a runaway FIFO). */
const DRAIN_LIMIT = 256;

type Waiter = { resolve: () => void; reject: (e: DevrefError) => void };

/**
 * The ASC mailbox of one bound device (drivers/soc/apple/mailbox.c, inside the client
 * driver): an {@link RtkitTransport} whose `send` pushes a message, or keeps it in order in
 * a small backlog while A2I is FULL, and whose receive path drains I2A from the
 * recv-not-empty interrupt into `options.receive`.
 *
 * A full A2I makes the channel request the send-empty interrupt (enable_irq) and start a
 * 500 ms timer; each interrupt pushes what fits, and once the backlog is empty the
 * interrupt is released again (disable_irq). If the timer expires first, the backlog is
 * dropped with an error line and {@link waitForRoom} callers get `ETIMEDOUT` — the
 * kernel's sleeping send returns that error to its caller; RTKit's own sends ignore it.
 *
 * **Invariants:** messages leave in the order they were sent; the send-empty interrupt is
 * held only while something waits for room; after the binding ends nothing touches the
 * registers, and every waiter has been failed.
 *
 * **Errors:** `send` throws `ENODEV` once the registers read all-ones (surprise removal) or
 * the binding ended, `EBUSY` when the backlog is full; {@link waitForRoom} rejects with
 * `ETIMEDOUT` after 500 ms without room and `ENODEV` as for send.
 *
 * @example
 * ```ts
 * probe(dev) {
 *   const mbox = new AscMailboxChannel(dev, {
 *     regs: dev.ioremapResource(2), sendEmptyIrq: 0, recvNotEmptyIrq: 3,
 *     timers, receive: (ep, msg0) => rtk.receive(ep, msg0), log,
 *   });
 *   const rtk = devmRtkit(dev, { transport: mbox.transport, timers });
 * }
 * ```
 */
export class AscMailboxChannel {
  /** The RTKit transport over this mailbox. */
  readonly transport: RtkitTransport;
  private readonly regs: Devres<MmioRegion>;
  private readonly layout: AscMailboxLayout;
  private readonly timers: RtkitTimers;
  private readonly receiveFn: (ep: number, msg0: bigint) => void;
  private readonly log: AscMailboxChannelOptions["log"];
  private readonly onGone: (() => void) | null;
  private readonly sendEmptyIrq: number;
  private readonly backlogMax: number;
  private readonly backlogEp: number[] = [];
  private readonly backlogMsg: bigint[] = [];
  private waiters: Waiter[] = [];
  private sendEmpty: Devres<IrqLine> | null = null;
  private timer: unknown = null;
  private gone = false;
  private ended = false;
  private readonly sendBound: BoundCallback<[number, bigint], void>;
  private readonly drainBound: BoundCallback<[], void>;
  private readonly timeoutBound: BoundCallback<[], void>;
  private readonly armBound: BoundCallback<[], void>;
  /** Messages sent and received, for figures and tests. */
  sent = 0;
  received = 0;
  /** Times a send found A2I full. */
  fullEvents = 0;

  constructor(dev: PlatformDevice<Bound>, options: AscMailboxChannelOptions) {
    const W = "new AscMailboxChannel";
    this.regs = options.regs;
    this.layout = options.layout ?? ASC_V4_LAYOUT;
    this.timers = options.timers;
    this.receiveFn = options.receive;
    this.log = options.log;
    this.onGone = options.onGone ?? null;
    this.sendEmptyIrq = checkInteger(W, "options.sendEmptyIrq", options.sendEmptyIrq, 0, 31);
    this.backlogMax = checkInteger(W, "options.backlog", options.backlog ?? 32, 0, 4096);
    this.sendBound = dev.devmCallback((d, ep: number, msg0: bigint) => this.sendNow(d, ep, msg0));
    this.drainBound = dev.devmCallback((d) => {
      this.drain(d);
    });
    this.timeoutBound = dev.devmCallback(() => this.expire());
    this.armBound = dev.devmCallback((d) => this.arm(d));
    // The binding's end fails whoever waits, before the registers are unmapped.
    dev.devmAddAction(() => this.end(), "mailbox waiters");
    dev.requestIrq(
      checkInteger(W, "options.recvNotEmptyIrq", options.recvNotEmptyIrq, 0, 31),
      (d) => (this.drain(d) > 0 ? "handled" : "none"),
      "recv-not-empty",
    );
    this.transport = {
      send: (ep, msg0) => this.send(ep, msg0),
      poll: () => this.poll(),
    };
  }

  /** Whether the registers read all-ones: the coprocessor is gone. */
  get isGone(): boolean {
    return this.gone;
  }

  /**
   * Reads the A2I control register to see whether the coprocessor is still there (a
   * timeout's first question); marks the channel gone on all-ones. True when gone.
   */
  checkGone(): boolean {
    if (this.gone) return true;
    if (this.ended) return false;
    if (this.control(true) === ALL_ONES) this.markGone();
    return this.gone;
  }

  /** Messages waiting for room in A2I. */
  get backlog(): number {
    return this.backlogEp.length;
  }

  /** Whether the send-empty interrupt is requested now (someone waits for room). */
  get waitingForRoom(): boolean {
    return this.sendEmpty !== null;
  }

  /**
   * Sends `msg0` to endpoint `ep` (RtkitTransport.send): pushed at once, or kept in order
   * until A2I has room.
   *
   * **Errors:** `ENODEV` when the coprocessor is gone or the binding ended; `EBUSY` when
   * the backlog is full.
   */
  send(ep: number, msg0: bigint): void {
    if (!this.sendBound.isActive) throw this.unboundError();
    this.sendBound(ep, msg0);
  }

  /** Drains I2A now (apple_mbox_poll); nothing once the binding ended. */
  poll(): void {
    this.drainBound();
  }

  /**
   * Resolves once A2I has room and nothing waits before the caller — what a sleeping send
   * waits for before it writes.
   *
   * **Errors:** rejects with `ETIMEDOUT` after 500 ms without room, `ENODEV` when the
   * coprocessor is gone or the binding ends first.
   */
  waitForRoom(): Promise<void> {
    if (this.ended) return Promise.reject(this.unboundError());
    if (this.gone) return Promise.reject(this.goneError());
    if (this.backlogEp.length === 0) {
      const ctl = this.control(true);
      if (ctl === ALL_ONES) {
        this.markGone();
        return Promise.reject(this.goneError());
      }
      if ((ctl & MBOX_CONTROL_FULL) === 0) return Promise.resolve();
    }
    return new Promise<void>((resolve, reject) => {
      this.waiters.push({ resolve, reject });
      this.fullEvents++;
      this.armBound();
    });
  }

  // --- with the binding's borrow ----------------------------------------------------------

  private sendNow(d: PlatformDevice<Bound>, ep: number, msg0: bigint): void {
    if (this.gone) throw this.goneError();
    if (this.backlogEp.length === 0) {
      const ctl = this.regs.access(d).read32(this.layout.a2iControl);
      if (ctl === ALL_ONES) {
        this.markGone();
        throw this.goneError();
      }
      if ((ctl & MBOX_CONTROL_FULL) === 0) {
        this.push(d, ep, msg0);
        return;
      }
      this.fullEvents++;
    }
    if (this.backlogEp.length >= this.backlogMax) {
      throw new DevrefError(
        "EBUSY",
        `mailbox: A2I is full and ${this.backlogEp.length} messages already wait for room; the coprocessor is not reading its mailbox`,
      );
    }
    this.backlogEp.push(ep);
    this.backlogMsg.push(msg0);
    this.arm(d);
  }

  private push(d: PlatformDevice<Bound>, ep: number, msg0: bigint): void {
    const r = this.regs.access(d);
    const L = this.layout;
    r.write64(L.a2iSend0, Number(msg0 & 0xffff_ffffn), Number(msg0 >> 32n));
    // The SEND1 write (its high word) is what pushes the message into the FIFO.
    r.write64(L.a2iSend1, ep & 0xff, 0);
    this.sent++;
  }

  /** Requests the send-empty interrupt and starts the timer, if not yet. */
  private arm(d: PlatformDevice<Bound>): void {
    if (this.timer === null) {
      this.timer = this.timers.setTimeout(() => this.timeoutBound(), MBOX_TX_TIMEOUT_MS);
    }
    if (this.sendEmpty === null) {
      this.sendEmpty = d.requestIrq(
        this.sendEmptyIrq,
        (dd) => {
          this.roomInterrupt(dd);
          return "handled";
        },
        "send-empty",
      );
    }
  }

  /** send-empty: push what fits; once the backlog is empty, wake the waiters and let go. */
  private roomInterrupt(d: PlatformDevice<Bound>): void {
    const r = this.regs.access(d);
    let pushed = 0;
    let ctl = r.read32(this.layout.a2iControl);
    while (this.backlogEp.length > 0 && ctl !== ALL_ONES && (ctl & MBOX_CONTROL_FULL) === 0) {
      this.push(d, this.backlogEp.shift()!, this.backlogMsg.shift()!);
      pushed++;
      ctl = r.read32(this.layout.a2iControl);
    }
    if (ctl === ALL_ONES) {
      this.markGone();
      return;
    }
    if (this.backlogEp.length > 0) {
      // Progress restarts the clock: the kernel's timeout is per send.
      if (pushed > 0) this.restartTimer();
      return;
    }
    if ((ctl & MBOX_CONTROL_FULL) !== 0) return;
    this.disarm();
    const waiters = this.waiters;
    this.waiters = [];
    for (const w of waiters) w.resolve();
  }

  /** recv-not-empty: hand every message in I2A to the client; returns how many. */
  private drain(d: PlatformDevice<Bound>): number {
    if (this.gone) return 0;
    const r = this.regs.access(d);
    const L = this.layout;
    let n = 0;
    for (; n < DRAIN_LIMIT; n++) {
      const ctl = r.read32(L.i2aControl);
      if (ctl === ALL_ONES) {
        this.markGone();
        break;
      }
      if ((ctl & MBOX_CONTROL_EMPTY) !== 0) break;
      const m = r.read64(L.i2aRecv0);
      const ep = r.read32(L.i2aRecv1) & 0xff;
      r.read32(L.i2aRecv1 + 4); // the high word pops the message
      this.received++;
      this.receiveFn(ep, (BigInt(m.hi) << 32n) | BigInt(m.lo));
    }
    return n;
  }

  // --- without a borrow ---------------------------------------------------------------------

  private control(a2i: boolean): number {
    const r = this.regs.tryAccess();
    if (r === undefined) return ALL_ONES;
    return r.read32(a2i ? this.layout.a2iControl : this.layout.i2aControl);
  }

  private restartTimer(): void {
    if (this.timer !== null) this.timers.clearTimeout(this.timer);
    this.timer = this.timers.setTimeout(() => this.timeoutBound(), MBOX_TX_TIMEOUT_MS);
  }

  private disarm(): void {
    if (this.timer !== null) this.timers.clearTimeout(this.timer);
    this.timer = null;
    const irq = this.sendEmpty;
    this.sendEmpty = null;
    irq?.revoke();
  }

  private expire(): void {
    this.timer = null;
    const dropped = this.backlogEp.length;
    this.backlogEp.length = 0;
    this.backlogMsg.length = 0;
    this.disarm();
    this.log(
      "err",
      `mailbox: no room in A2I for ${MBOX_TX_TIMEOUT_MS} ms; ${dropped} waiting message${dropped === 1 ? "" : "s"} dropped (-ETIMEDOUT)`,
    );
    this.failWaiters(
      new DevrefError(
        "ETIMEDOUT",
        `mailbox: A2I stayed full for ${MBOX_TX_TIMEOUT_MS} ms: the coprocessor is not reading its mailbox`,
      ),
    );
  }

  private markGone(): void {
    if (this.gone) return;
    this.gone = true;
    this.log("err", "mailbox: registers read all-ones: the coprocessor is gone");
    this.backlogEp.length = 0;
    this.backlogMsg.length = 0;
    this.disarm();
    this.failWaiters(this.goneError());
    this.onGone?.();
  }

  private end(): void {
    this.ended = true;
    this.backlogEp.length = 0;
    this.backlogMsg.length = 0;
    if (this.timer !== null) this.timers.clearTimeout(this.timer);
    this.timer = null;
    this.sendEmpty = null; // released with the binding's other devres
    this.failWaiters(this.unboundError());
  }

  private failWaiters(e: DevrefError): void {
    const waiters = this.waiters;
    this.waiters = [];
    for (const w of waiters) w.reject(e);
  }

  private goneError(): DevrefError {
    return new DevrefError(
      "ENODEV",
      "mailbox: the coprocessor is gone (its registers read all-ones); nothing can be sent",
    );
  }

  private unboundError(): DevrefError {
    return new DevrefError(
      "ENODEV",
      "mailbox: the driver is no longer bound to the device; nothing can be sent",
    );
  }
}
