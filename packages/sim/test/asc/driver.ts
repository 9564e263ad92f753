// A minimal AP side for the ASC tests, written from rtkit.md and sim-hardware.md §2 on its
// own (it shares nothing with the models, nor with @devref/rtkit): register-level mailbox
// access like drivers/soc/apple/mailbox.c, and just enough RTKit to boot a firmware.
import type { Soc } from "../../src/index.js";

// Mailbox registers (ASC v4), relative to the mailbox window at ASC base + 0x8000.
export const A2I_CONTROL = 0x110;
export const I2A_CONTROL = 0x114;
export const A2I_SEND0 = 0x800;
export const A2I_SEND1 = 0x808;
export const I2A_RECV0 = 0x830;
export const I2A_RECV1 = 0x838;
export const FULL: number = 1 << 16;
export const EMPTY: number = 1 << 17;

export const PWR = { OFF: 0, SLEEP: 1, QUIESCED: 0x10, ON: 0x20, IDLE: 0x201, INIT: 0x220 };

/** One message as the AP sees it. */
export interface Msg {
  readonly ep: number;
  readonly msg0: bigint;
}

/** Bits `hi:lo` of `v`. */
export function bits(v: bigint, hi: number, lo: number): number {
  return Number((v >> BigInt(lo)) & ((1n << BigInt(hi - lo + 1)) - 1n));
}

/** A message with an 8-bit type in 59:52 and `rest` below. */
export function typed(type: number, rest: bigint | number = 0n): bigint {
  return (BigInt(type) << 52n) | BigInt(rest);
}

/** The mailbox as the kernel drives it: 64-bit registers as low word, then high word. */
export class ApMailbox {
  readonly soc: Soc;
  readonly mbox: number;
  /** Messages the recv-not-empty handler drained, oldest first. */
  readonly inbox: Msg[] = [];
  /** Times the recv-not-empty handler ran. */
  irqs = 0;

  constructor(soc: Soc, ascBase: number) {
    this.soc = soc;
    this.mbox = ascBase + 0x8000;
  }

  /** Connects recv-not-empty (drains into `inbox`) and masks send-empty, like apple_mbox_start. */
  useIrq(irqBase: number): void {
    this.soc.irq.mask(irqBase); // send-empty: enabled only while waiting for space
    this.soc.irq.connect(irqBase + 3, () => {
      this.irqs++;
      this.inbox.push(...this.drain());
    });
  }

  a2iControl(): number {
    return this.soc.fabric.read32(this.mbox + A2I_CONTROL);
  }

  i2aControl(): number {
    return this.soc.fabric.read32(this.mbox + I2A_CONTROL);
  }

  /** apple_mbox_send without the wait: false when A2I is FULL. */
  send(ep: number, msg0: bigint): boolean {
    if (this.a2iControl() & FULL) return false;
    this.write64(A2I_SEND0, msg0);
    this.write64(A2I_SEND1, BigInt(ep));
    return true;
  }

  /** One message from I2A, or null when EMPTY. */
  recv(): Msg | null {
    if (this.i2aControl() & EMPTY) return null;
    const msg0 = this.read64(I2A_RECV0);
    const msg1 = this.read64(I2A_RECV1);
    return { ep: Number(msg1 & 0xffn), msg0 };
  }

  /** apple_mbox_poll: everything I2A holds now. */
  drain(): Msg[] {
    const out: Msg[] = [];
    for (let m = this.recv(); m !== null; m = this.recv()) out.push(m);
    return out;
  }

  /** Runs the SoC until `inbox` has a message (or nothing is left to run); takes it. */
  next(timeoutNs = 10_000_000): Msg | undefined {
    this.soc.runUntil(() => this.inbox.length > 0, { timeoutNs });
    return this.inbox.shift();
  }

  write64(off: number, v: bigint): void {
    this.soc.fabric.write32(this.mbox + off, Number(v & 0xffff_ffffn));
    this.soc.fabric.write32(this.mbox + off + 4, Number(v >> 32n));
  }

  read64(off: number): bigint {
    const lo = this.soc.fabric.read32(this.mbox + off);
    const hi = this.soc.fabric.read32(this.mbox + off + 4);
    return (BigInt(hi) << 32n) | BigInt(lo);
  }
}

/** What the test AP learned while booting a firmware. */
export interface BootLog {
  version: number;
  endpoints: Set<number>;
  buffers: Map<number, { addr: number; size: number }>;
  syslogEntries: number;
  syslogMsgSize: number;
  iopPower: number;
  apPower: number;
  /** Every message received, in order. */
  seen: Msg[];
}

/**
 * A tiny RTKit AP: answers HELLO (11..12), EPMAP, starts the system endpoints the kernel
 * starts, serves buffer requests from RAM (`alloc`), acks syslog and IOReport, and raises
 * the AP power state once the IOP acknowledges ON.
 */
export class ApRtkit {
  readonly mb: ApMailbox;
  readonly log: BootLog = {
    version: 0,
    endpoints: new Set(),
    buffers: new Map(),
    syslogEntries: 0,
    syslogMsgSize: 0,
    iopPower: 0,
    apPower: 0,
    seen: [],
  };
  /** Messages on application endpoints. */
  readonly app: Msg[] = [];
  crashed = false;
  private nextAlloc: number;

  constructor(mb: ApMailbox, allocBase = 0x8_0100_0000) {
    this.mb = mb;
    this.nextAlloc = allocBase;
  }

  /** Handles every message in the inbox; runs the SoC until `until()` or it goes idle. */
  pump(until: () => boolean = () => false, timeoutNs = 50_000_000): boolean {
    return this.mb.soc.runUntil(
      () => {
        while (this.mb.inbox.length > 0) this.handle(this.mb.inbox.shift()!);
        return until();
      },
      { timeoutNs },
    );
  }

  /** Boots a firmware through to AP power ON; returns whether it got there. */
  boot(): boolean {
    return this.pump(() => this.log.apPower === PWR.ON);
  }

  send(ep: number, msg0: bigint): void {
    if (!this.mb.send(ep, msg0)) throw new Error(`A2I full sending ${msg0.toString(16)} to ${ep}`);
  }

  handle(m: Msg): void {
    this.log.seen.push(m);
    const type = bits(m.msg0, 59, 52);
    if (m.ep >= 0x20) {
      this.app.push(m);
      return;
    }
    switch (m.ep) {
      case 0:
        this.mgmt(type, m.msg0);
        return;
      case 1:
        if (!this.log.buffers.has(1)) this.buffer(1, m.msg0);
        else this.crashed = true;
        return;
      case 2:
        if (type === 1) this.buffer(2, m.msg0);
        else if (type === 8) {
          this.log.syslogEntries = bits(m.msg0, 7, 0);
          this.log.syslogMsgSize = bits(m.msg0, 31, 24);
        } else if (type === 5) this.send(2, m.msg0);
        return;
      case 4:
        if (type === 1) this.buffer(4, m.msg0);
        else if (type === 8 || type === 0xc) this.send(4, m.msg0);
        return;
      case 8:
        if (bits(m.msg0, 63, 56) === 1) this.oslog(m.msg0);
        return;
    }
  }

  private mgmt(type: number, msg0: bigint): void {
    if (type === 1) {
      const min = bits(msg0, 15, 0);
      const max = bits(msg0, 31, 16);
      const want = Math.min(12, max);
      if (min > 12 || max < 11) return; // the kernel aborts the boot: no reply
      this.log.version = want;
      this.send(0, typed(2, (BigInt(want) << 16n) | BigInt(want)));
    } else if (type === 8) {
      const base = bits(msg0, 34, 32);
      const bitmap = bits(msg0, 31, 0);
      for (let i = 0; i < 32; i++) if (bitmap & (1 << i)) this.log.endpoints.add(base * 32 + i);
      const last = bits(msg0, 51, 51) === 1;
      this.send(0, typed(8, (BigInt(base) << 32n) | (last ? 1n << 51n : 1n)));
      if (last) {
        for (const ep of [1, 2, 3, 4, 8]) {
          if (this.log.endpoints.has(ep)) this.send(0, typed(5, (BigInt(ep) << 32n) | 2n));
        }
      }
    } else if (type === 7) {
      this.log.iopPower = bits(msg0, 15, 0);
      if ((this.log.iopPower & 0xff) === PWR.ON && this.log.apPower !== PWR.ON) {
        this.send(0, typed(0xb, PWR.ON));
      }
    } else if (type === 0xb) {
      this.log.apPower = bits(msg0, 15, 0);
    }
  }

  private buffer(ep: number, msg0: bigint): void {
    const size = bits(msg0, 51, 44) * 0x1000;
    let addr = Number(msg0 & ((1n << 44n) - 1n));
    if (addr === 0) {
      addr = this.nextAlloc;
      this.nextAlloc += Math.max(size, 0x4000);
      this.send(ep, typed(1, (BigInt(size / 0x1000) << 44n) | BigInt(addr)));
    }
    this.log.buffers.set(ep, { addr, size });
  }

  private oslog(msg0: bigint): void {
    const size = bits(msg0, 55, 36);
    let pfn = Number(msg0 & ((1n << 36n) - 1n));
    if (pfn === 0) {
      pfn = this.nextAlloc / 0x1000;
      this.nextAlloc += 0x4000;
      this.send(8, (1n << 56n) | (BigInt(size) << 36n) | BigInt(pfn));
    }
    this.log.buffers.set(8, { addr: pfn * 0x1000, size });
  }
}
