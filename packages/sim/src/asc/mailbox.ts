//! C source: drivers/soc/apple/mailbox.c (the ≥v6.8 ASC mailbox the kernel drives)
//!
//! An Apple ASC: the coprocessor's CPU-control window and its mailbox — two bounded FIFOs
//! (A2I towards the coprocessor, I2A back), their control registers and four level
//! interrupts — as a device model on the SoC's fabric. The coprocessor's software (an RTKit
//! firmware model) plugs in on the other side through {@link AscCoprocessor}.

import {
  argumentError,
  checkAddress,
  checkInteger,
  checkObject,
  checkOneOf,
  checkString,
  DevrefError,
} from "@devref/raw-device";
import type { DmaPort } from "../dma.js";
import type { MmioPort, MmioWidth } from "../fabric.js";
import type { FaultSpec } from "../faults.js";
import type { IrqSource } from "../irq.js";
import { DeviceModel } from "../model.js";
import type { Soc } from "../soc.js";
import {
  ASC_CPU_CONTROL,
  ASC_CPU_RUN,
  ASC_CPU_STATUS,
  ASC_MBOX_OFFSET,
  ASC_WINDOW_SIZE,
  MBOX_A2I_CONTROL,
  MBOX_A2I_RECV0,
  MBOX_A2I_RECV1,
  MBOX_A2I_SEND0,
  MBOX_A2I_SEND1,
  MBOX_CONTROL_EMPTY,
  MBOX_CONTROL_ENABLE,
  MBOX_CONTROL_FULL,
  MBOX_I2A_CONTROL,
  MBOX_I2A_RECV0,
  MBOX_I2A_RECV1,
  MBOX_I2A_SEND0,
  MBOX_I2A_SEND1,
  MBOX_T8015_A2I_CONTROL,
  MBOX_T8015_I2A_CONTROL,
} from "./constants.js";
import { MboxFifo } from "./fifo.js";

/** Register layout: `asc-v4` (`apple,asc-mailbox-v4`) or `t8015` (control registers moved). */
export type AscVariant = "asc-v4" | "t8015";

/** What an {@link AscMailbox} is built with. */
export interface AscMailboxOptions {
  /** Model name (unique on the SoC), e.g. `smc`. */
  readonly name: string;
  /**
   * Physical base of the ASC region: the CPU-control window is at `base`, the mailbox
   * window at `base + 0x8000`; each is 0x4000 bytes.
   */
  readonly base: number;
  /**
   * First of four consecutive interrupt lines, in the device tree's order: `irq` send-empty,
   * `irq + 1` send-not-empty, `irq + 2` recv-empty, `irq + 3` recv-not-empty. All level.
   */
  readonly irq: number;
  /** Messages each FIFO holds (default 16, at most 256). */
  readonly fifoDepth?: number;
  /** Register layout (default `asc-v4`). */
  readonly variant?: AscVariant;
  /**
   * Whether the coprocessor CPU is already running when the SoC starts, as a bootloader
   * leaves the SMC (default false: held until `CPU_CONTROL.RUN` is written).
   */
  readonly running?: boolean;
  /**
   * Also drive send-not-empty (`irq + 1`) and recv-empty (`irq + 2`), which Linux never
   * requests (default false: those two lines stay low, and each message costs four fewer
   * trace records).
   */
  readonly allInterrupts?: boolean;
}

/** The interrupt lines of an ASC mailbox (device-tree names). */
export interface AscIrqLines {
  readonly sendEmpty: number;
  readonly sendNotEmpty: number;
  readonly recvEmpty: number;
  readonly recvNotEmpty: number;
}

/**
 * The coprocessor's side of an ASC: what the mailbox tells the software running on it.
 * All calls come from the AP's MMIO accesses or the model itself, never re-entrantly from
 * the coprocessor's own calls.
 */
export interface AscCoprocessor {
  /** `CPU_CONTROL.RUN` went from 0 to 1: the CPU leaves reset and boots. */
  cpuStart(): void;
  /** A message entered the A2I FIFO. */
  inbox(): void;
  /** A message left the I2A FIFO (there is room again). */
  outboxSpace(): void;
  /** The device is gone: stop for good. */
  gone(): void;
  /** Fault kinds the software accepts (the ASC's `prepareFault` asks it first). */
  prepareFault(spec: FaultSpec): (() => void) | null;
}

const MAX_DEPTH = 256;

/**
 * An Apple ASC coprocessor block with its mailbox, as Linux's `apple-mailbox` driver sees
 * it (rtkit.md §2).
 *
 * **Registers** (mailbox window, `base + 0x8000`; all 32-bit, 64-bit registers as two
 * words, low word first like `lo_hi_readq`/`lo_hi_writeq`): `0x110`/`0x114` A2I/I2A
 * control (bit 16 FULL, bit 17 EMPTY, bit 1 ENABLE kept as written; t8015: `0x108`/`0x10c`),
 * `0x800` A2I SEND0, `0x808` A2I SEND1, `0x830` I2A RECV0, `0x838` I2A RECV1, and the
 * coprocessor's own `0x810`/`0x818` (A2I RECV) and `0x820`/`0x828` (I2A SEND). The write of
 * a SEND1 **high** word (`0x80c`) pushes the latched SEND0 and SEND1 low word; the read of a
 * RECV1 high word (`0x83c`) pops, returning the FIFO bookkeeping (INCNT 51:48 = messages in
 * this FIFO before the pop, OUTCNT 56:52 = messages in the other one, INPTR 43:40 = read
 * index, OUTPTR 47:44 = the other FIFO's write index). RECV0 and the RECV1 low word peek at
 * the oldest message. CPU window: `0x44` CPU_CONTROL (a 0→1 edge of bit 4 RUN boots the
 * coprocessor), `0x48` CPU_STATUS (bit 4 mirrors RUN).
 *
 * **Interrupts:** level lines, asserted while their condition holds: send-empty (`irq`)
 * while A2I is empty — so a consumer masks it until it waits for space, as the kernel does —
 * and recv-not-empty (`irq + 3`) while I2A holds a message; with `allInterrupts`, also
 * send-not-empty (`irq + 1`) and recv-empty (`irq + 2`).
 *
 * **Trace:** every message entering either FIFO is an `mbox` record; an overflow (push to a
 * full FIFO: the message is lost) and an underflow (pop of an empty one) are `fault` records.
 *
 * **Invariants:** MMIO never allocates; FIFOs keep order; the lines always match the FIFO
 * levels; once gone, nothing reaches the coprocessor.
 *
 * **Errors:** `EINVAL` for bad options; `EBUSY` for an address range already mapped or a
 * second coprocessor; `EEXIST` for a taken name.
 *
 * @example
 * ```ts
 * const asc = new AscMailbox(soc, { name: "smc", base: 0x2_3e40_0000, irq: 40 });
 * soc.fabric.write32(0x2_3e40_0044, 0x10); // CPU_CONTROL.RUN: the firmware boots
 * ```
 */
export class AscMailbox extends DeviceModel {
  /** The CPU-control window (at `base`). */
  readonly cpuPort: MmioPort;
  /** The mailbox window (at `base + 0x8000`). */
  readonly mboxPort: MmioPort;
  /** The coprocessor's bus master for buffers the AP allocates (may sit behind a DART). */
  readonly dma: DmaPort;
  /** The coprocessor's path to memory it owns (its SRAM): never translated. */
  readonly localDma: DmaPort;
  readonly base: number;
  readonly irqLines: AscIrqLines;
  readonly variant: AscVariant;
  /** A2I: AP to coprocessor. */
  readonly a2i: MboxFifo;
  /** I2A: coprocessor to AP. */
  readonly i2a: MboxFifo;
  private readonly sendEmpty: IrqSource;
  private readonly sendNotEmpty: IrqSource | null;
  private readonly recvEmpty: IrqSource | null;
  private readonly recvNotEmpty: IrqSource;
  private readonly a2iControlOffset: number;
  private readonly i2aControlOffset: number;
  private cop: AscCoprocessor | null = null;
  private cpuControl: number;
  private a2iEnable = 0;
  private i2aEnable = 0;
  // SEND latches: [A2I send0 lo, send0 hi, send1 lo, I2A send0 lo, send0 hi, send1 lo].
  private readonly latch = new Uint32Array(6);

  constructor(soc: Soc, options: AscMailboxOptions) {
    const { name, base, irq, depth, variant, running, allInterrupts } = checkAscOptions(
      soc,
      options,
    );
    super(soc, name, "asc");
    this.base = base;
    this.variant = variant;
    this.a2iControlOffset = variant === "asc-v4" ? MBOX_A2I_CONTROL : MBOX_T8015_A2I_CONTROL;
    this.i2aControlOffset = variant === "asc-v4" ? MBOX_I2A_CONTROL : MBOX_T8015_I2A_CONTROL;
    this.cpuControl = running ? ASC_CPU_RUN : 0;
    this.a2i = new MboxFifo(depth);
    this.i2a = new MboxFifo(depth);
    this.cpuPort = this.addPort(name, ASC_WINDOW_SIZE, {
      mmioRead: (offset, width) => this.#cpuRead(offset, width),
      mmioWrite: (offset, width, value) => this.#cpuWrite(offset, width, value),
    });
    this.mboxPort = this.addPort(`${name}.mbox`, ASC_WINDOW_SIZE, {
      mmioRead: (offset, width) => this.#mboxRead(offset, width),
      mmioWrite: (offset, width, value) => this.#mboxWrite(offset, width, value),
    });
    soc.fabric.map(base, this.cpuPort, name);
    soc.fabric.map(base + ASC_MBOX_OFFSET, this.mboxPort, name);
    this.dma = this.addDmaMaster(name);
    this.localDma = this.addDmaMaster(`${name}.local`);
    this.irqLines = {
      sendEmpty: irq,
      sendNotEmpty: irq + 1,
      recvEmpty: irq + 2,
      recvNotEmpty: irq + 3,
    };
    this.sendEmpty = this.addIrq(irq);
    this.sendNotEmpty = allInterrupts ? this.addIrq(irq + 1) : null;
    this.recvEmpty = allInterrupts ? this.addIrq(irq + 2) : null;
    this.recvNotEmpty = this.addIrq(irq + 3);
    this.#updateLines();
  }

  /** The coprocessor's software attached with {@link AscMailbox.attach}, or null. */
  get coprocessor(): AscCoprocessor | null {
    return this.cop;
  }

  /** Whether `CPU_CONTROL.RUN` is set. */
  get cpuRunning(): boolean {
    return (this.cpuControl & ASC_CPU_RUN) !== 0;
  }

  /**
   * Connects the coprocessor's software. One per ASC.
   *
   * **Errors:** `EBUSY` when one is already attached.
   */
  attach(cop: AscCoprocessor): void {
    checkObject("AscMailbox.attach", "cop", cop);
    if (this.cop !== null) {
      throw new DevrefError(
        "EBUSY",
        `ASC '${this.name}' already runs a coprocessor model: make one ASC per firmware`,
      );
    }
    this.cop = cop;
  }

  /** Coprocessor side: takes the oldest A2I message into `a2i.hi/lo/msg1`; false when empty. */
  popInbox(): boolean {
    if (!this.a2i.pop()) return false;
    this.#updateLines();
    return true;
  }

  /**
   * Coprocessor side: pushes a message to the AP; false (nothing sent) when I2A is full.
   *
   * **Errors:** `EINVAL` for a message word that is not a number.
   */
  pushOutbox(hi: number, lo: number, msg1: number): boolean {
    if (typeof hi !== "number" || typeof lo !== "number" || typeof msg1 !== "number") {
      const [param, bad] =
        typeof hi !== "number" ? ["hi", hi] : typeof lo !== "number" ? ["lo", lo] : ["msg1", msg1];
      throw argumentError(
        `${this.name}.pushOutbox`,
        param,
        "a 32-bit message word (a number)",
        bad,
      );
    }
    if (this.gone || !this.i2a.push(hi >>> 0, lo >>> 0, msg1 >>> 0)) return false;
    const tracer = this.soc.tracer;
    if (tracer.enabled) tracer.mbox(this.traceId, false, hi, lo, msg1);
    this.#updateLines();
    return true;
  }

  /** Coprocessor side: room left in I2A. */
  get outboxFree(): number {
    return this.i2a.depth - this.i2a.count;
  }

  override prepareFault(spec: FaultSpec): (() => void) | null {
    checkObject(`${this.name}.prepareFault`, "spec", spec);
    return this.cop?.prepareFault(spec) ?? super.prepareFault(spec);
  }

  protected override onGone(): void {
    this.cop?.gone();
  }

  #updateLines(): void {
    const a = this.a2i.count;
    const i = this.i2a.count;
    this.sendEmpty.set(a === 0);
    if (this.sendNotEmpty !== null) {
      this.sendNotEmpty.set(a !== 0);
      this.recvEmpty!.set(i === 0);
    }
    this.recvNotEmpty.set(i !== 0);
  }

  #cpuRead(offset: number, width: MmioWidth): number {
    let v = 0;
    const word = offset & ~3;
    if (word === ASC_CPU_CONTROL) v = this.cpuControl;
    else if (word === ASC_CPU_STATUS) v = this.cpuControl & ASC_CPU_RUN;
    return narrow(v, offset, width);
  }

  #cpuWrite(offset: number, width: MmioWidth, value: number): void {
    if (offset !== ASC_CPU_CONTROL || width !== 4) return;
    const was = this.cpuControl & ASC_CPU_RUN;
    this.cpuControl = value >>> 0;
    if (was === 0 && (value & ASC_CPU_RUN) !== 0) this.cop?.cpuStart();
  }

  #control(fifo: MboxFifo, enable: number): number {
    return (
      (fifo.count === 0 ? MBOX_CONTROL_EMPTY : 0) |
      (fifo.count === fifo.depth ? MBOX_CONTROL_FULL : 0) |
      enable
    );
  }

  /** RECV1 high word: the bookkeeping fields (bits 56:40 of the 64-bit register). */
  #bookkeeping(fifo: MboxFifo, other: MboxFifo): number {
    return (
      (((other.count & 0x1f) << 20) |
        ((fifo.count & 0xf) << 16) |
        ((other.tail & 0xf) << 12) |
        ((fifo.head & 0xf) << 8)) >>>
      0
    );
  }

  #mboxRead(offset: number, width: MmioWidth): number {
    const word = offset & ~3;
    let v: number;
    if (word === this.a2iControlOffset) v = this.#control(this.a2i, this.a2iEnable);
    else if (word === this.i2aControlOffset) v = this.#control(this.i2a, this.i2aEnable);
    else if (word === MBOX_I2A_RECV0) v = this.i2a.peek(0);
    else if (word === MBOX_I2A_RECV0 + 4) v = this.i2a.peek(1);
    else if (word === MBOX_I2A_RECV1) v = this.i2a.peek(2);
    else if (word === MBOX_I2A_RECV1 + 4) {
      v = this.#bookkeeping(this.i2a, this.a2i);
      if (width === 4) this.#popI2a();
    } else if (word === MBOX_A2I_RECV0) v = this.a2i.peek(0);
    else if (word === MBOX_A2I_RECV0 + 4) v = this.a2i.peek(1);
    else if (word === MBOX_A2I_RECV1) v = this.a2i.peek(2);
    else if (word === MBOX_A2I_RECV1 + 4) {
      v = this.#bookkeeping(this.a2i, this.i2a);
      // The AP reading the coprocessor's inbox takes the message away from it.
      if (width === 4 && this.a2i.pop()) {
        this.soc.tracer.fault(this.traceId, "mbox-a2i-read-by-ap");
        this.#updateLines();
      }
    } else if (word >= MBOX_A2I_SEND0 && word < MBOX_A2I_SEND0 + 12) {
      v = this.latch[(word - MBOX_A2I_SEND0) >> 2]!;
    } else if (word >= MBOX_I2A_SEND0 && word < MBOX_I2A_SEND0 + 12) {
      v = this.latch[3 + ((word - MBOX_I2A_SEND0) >> 2)]!;
    } else v = 0;
    return narrow(v, offset, width);
  }

  #popI2a(): void {
    if (!this.i2a.pop()) {
      this.soc.tracer.fault(this.traceId, "mbox-i2a-underflow");
      return;
    }
    this.#updateLines();
    this.cop?.outboxSpace();
  }

  #mboxWrite(offset: number, width: MmioWidth, value: number): void {
    if (width !== 4) {
      this.soc.tracer.fault(this.traceId, "mbox-narrow-write", offset, width);
      return;
    }
    if (offset === this.a2iControlOffset) this.a2iEnable = value & MBOX_CONTROL_ENABLE;
    else if (offset === this.i2aControlOffset) this.i2aEnable = value & MBOX_CONTROL_ENABLE;
    else if (offset >= MBOX_A2I_SEND0 && offset < MBOX_A2I_SEND1 + 4) {
      this.latch[(offset - MBOX_A2I_SEND0) >> 2] = value;
    } else if (offset === MBOX_A2I_SEND1 + 4) {
      this.#pushA2i();
    } else if (offset >= MBOX_I2A_SEND0 && offset < MBOX_I2A_SEND1 + 4) {
      this.latch[3 + ((offset - MBOX_I2A_SEND0) >> 2)] = value;
    } else if (offset === MBOX_I2A_SEND1 + 4) {
      // The AP may fill its own inbox through the coprocessor's send registers, as hardware allows.
      const l = this.latch;
      if (this.pushOutbox(l[4]!, l[3]!, l[5]!)) return;
      this.soc.tracer.fault(this.traceId, "mbox-i2a-overflow");
    }
  }

  #pushA2i(): void {
    const l = this.latch;
    const hi = l[1]!;
    const lo = l[0]!;
    const msg1 = l[2]!;
    if (!this.a2i.push(hi, lo, msg1)) {
      this.soc.tracer.fault(this.traceId, "mbox-a2i-overflow", msg1);
      return;
    }
    const tracer = this.soc.tracer;
    if (tracer.enabled) tracer.mbox(this.traceId, true, hi, lo, msg1);
    this.#updateLines();
    this.cop?.inbox();
  }
}

/** @internal Validated {@link AscMailboxOptions}. */
export interface AscConfig {
  readonly name: string;
  readonly base: number;
  readonly irq: number;
  readonly depth: number;
  readonly variant: AscVariant;
  readonly running: boolean;
  readonly allInterrupts: boolean;
}

/**
 * @internal Checks ASC options against `soc` (free name, free address ranges, lines that
 * exist) without changing anything.
 */
export function checkAscOptions(soc: Soc, options: AscMailboxOptions): AscConfig {
  const W = "new AscMailbox";
  checkObject(W, "options", options);
  const name = checkString(W, "options.name", options.name, true);
  const base = checkAddress(W, "options.base", options.base, 2 ** 52 - 2 * ASC_MBOX_OFFSET);
  if (base % ASC_WINDOW_SIZE !== 0) {
    throw argumentError(W, "options.base", "a multiple of 0x4000", base);
  }
  const irq = checkInteger(W, "options.irq", options.irq, 0, soc.irq.lines - 4);
  const depth = checkInteger(W, "options.fifoDepth", options.fifoDepth ?? 16, 1, MAX_DEPTH);
  const variant = checkOneOf(W, "options.variant", options.variant ?? "asc-v4", [
    "asc-v4",
    "t8015",
  ] as const);
  const running = options.running ?? false;
  if (typeof running !== "boolean") {
    throw argumentError(W, "options.running", "true or false", running);
  }
  if (soc.device(name) !== undefined) {
    throw new DevrefError(
      "EEXIST",
      `a device model named '${name}' already exists on this SoC: give each model a unique name`,
    );
  }
  for (const at of [base, base + ASC_MBOX_OFFSET]) {
    const clash = soc
      .memoryMap()
      .find((r) => r.base < at + ASC_WINDOW_SIZE && at < r.base + r.size);
    if (clash !== undefined) {
      throw new DevrefError(
        "EBUSY",
        `ASC '${name}' at 0x${at.toString(16)} overlaps '${clash.name}': pick a free base ` +
          "(see soc.memoryMap())",
      );
    }
  }
  const allInterrupts = options.allInterrupts ?? false;
  if (typeof allInterrupts !== "boolean") {
    throw argumentError(W, "options.allInterrupts", "true or false", allInterrupts);
  }
  return { name, base, irq, depth, variant, running, allInterrupts };
}

/** The `width`-byte part of a 32-bit register value at byte `offset`. */
function narrow(v: number, offset: number, width: MmioWidth): number {
  if (width === 4) return v >>> 0;
  const shift = (offset & 3) * 8;
  return (v >>> shift) & (width === 1 ? 0xff : 0xffff);
}
