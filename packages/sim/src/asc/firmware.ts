//! C source: drivers/soc/apple/rtkit.c (the AP side this firmware answers)
//!
//! The IOP side of RTKit, written from rtkit.md: HELLO with a version range, EPMAP pages,
//! STARTEP, IOP and AP power states, the system endpoints' services (services.ts), crashes
//! with a §9.1 crashlog, and pluggable application endpoints. It can be told to crash, go
//! silent, answer wrongly or stall its mailbox, on command or through `soc.faults`.

import {
  argumentError,
  checkInteger,
  checkObject,
  checkOneOf,
  DevrefError,
} from "@devref/raw-device";
import type { TimerHandle } from "../clock.js";
import type { FaultSpec } from "../faults.js";
import type { Tracer } from "../trace.js";
import {
  BUFFER_REQUEST,
  EP_APP_START,
  EP_CRASHLOG,
  EP_IOREPORT,
  EP_MGMT,
  EP_OSLOG,
  EP_SYSLOG,
  IOREPORT_UNKNOWN1,
  IOREPORT_UNKNOWN2,
  MGMT_EPMAP,
  MGMT_HELLO,
  MGMT_HELLO_REPLY,
  MGMT_SET_AP_PWR,
  MGMT_SET_IOP_PWR,
  MGMT_SET_IOP_PWR_ACK,
  MGMT_STARTEP,
  PWR_IDLE,
  PWR_INIT,
  PWR_OFF,
  PWR_ON,
  PWR_QUIESCED,
  PWR_SLEEP,
} from "./constants.js";
import { buildCrashlog, type CrashlogCorruption } from "./crashlog.js";
import {
  CRASHLOG_CORRUPTIONS,
  firmwareFault,
  GARBAGE_MODES,
  type RtkitGarbageMode,
} from "./faults.js";
import { checkFirmwareOptions, type RtkitFirmwareOptions } from "./firmware-options.js";
import { FIRMWARE_STATES, type RtkitEndpoint, type RtkitFirmwareState } from "./firmware-types.js";
import type { AscCoprocessor, AscMailbox } from "./mailbox.js";
import { FirmwareOutbox } from "./outbox.js";
import { Services, SVC_CRASHLOG } from "./services.js";

const S_OFF = 0;
const S_BOOTING = 1;
const S_ASLEEP = 2;
const S_HELLO = 3;
const S_EPMAP = 4;
const S_STARTING = 5;
const S_RUNNING = 6;
const S_CRASHED = 7;
const S_HALTED = 8;

const NO_TIMER = null;

/**
 * An RTKit firmware running on an {@link AscMailbox}'s coprocessor: the IOP side of
 * rtkit.md §5–§11, on virtual time.
 *
 * **Handshake.** A CPU start (`CPU_CONTROL.RUN` 0→1) boots it and it sends HELLO after
 * `bootDelayNs`; a firmware already running (`running: true` on the ASC) sleeps until a
 * SET_IOP_PWR_STATE(ON or INIT), as `apple_rtkit_wake` sends. HELLO_REPLY must carry
 * MINVER = MAXVER inside the offered range; then EPMAP pages go out one per reply (the reply
 * must echo BASE with LAST on the last page and MORE otherwise); once every announced system
 * endpoint among 1, 2, 3, 4, 8 is started it acknowledges IOP power ON. Buffer requests go
 * out when their endpoint is started (or once the AP power state is ON, with
 * `buffersAfterApPowerOn`); firmware-owned buffers expect no reply.
 *
 * **Timing.** Each message in the A2I FIFO is handled `latencyNs` after the previous one
 * (each handling is one event, one step); replies are pushed at once, or queued in order
 * while I2A is full.
 *
 * **Refusals.** A message the protocol does not allow in the current state is dropped and
 * counted: `protocolErrors`, `lastProtocolError`, and a `rtkit-protocol-error` fault record
 * (`a` = endpoint × 2^32 + msg0 high word, `b` = msg0 low word). It never throws.
 *
 * **Invariants:** handling a message allocates nothing but the core's event; same inputs,
 * same trace.
 *
 * **Errors:** `EINVAL` for bad options or arguments; `EBUSY` when the ASC already runs a
 * firmware or an endpoint number is taken.
 *
 * @example
 * ```ts
 * const asc = new AscMailbox(soc, { name: "ans", base: 0x2_7700_0000, irq: 20 });
 * const fw = new RtkitFirmware(asc, { syslog: { pages: 2 } });
 * soc.fabric.write32(0x2_7700_0044, 0x10); // RUN: HELLO follows
 * soc.faults.schedule({ timeNs: 5_000_000 }, { kind: "rtkit-crash", target: "ans" });
 * ```
 */
export class RtkitFirmware implements AscCoprocessor {
  readonly asc: AscMailbox;
  /** Messages taken from the A2I FIFO. */
  received = 0;
  /** Messages sent (pushed or queued for I2A). */
  sent = 0;
  /** Messages swallowed: read while silent, or sent while silent, crashed or halted. */
  dropped = 0;
  /** Messages refused (see the class comment). */
  protocolErrors = 0;
  /** Why the last message was refused ("" before any). */
  lastProtocolError = "";
  /** The version HELLO_REPLY chose, 0 before one was accepted. */
  version = 0;
  /** The IOP power state last acknowledged. */
  iopPowerState: number;
  /** The AP power state last acknowledged. */
  apPowerState: number = PWR_OFF;
  private st: number;
  private readonly minVersion: number;
  private readonly maxVersion: number;
  private readonly latencyNs: number;
  private readonly bootDelayNs: number;
  private readonly firmwareVersion: string;
  private readonly announced = new Uint8Array(256);
  private readonly started = new Uint8Array(256);
  private readonly handlers: (RtkitEndpoint | null)[] = new Array<RtkitEndpoint | null>(256).fill(
    null,
  );
  private readonly required: readonly number[];
  private readonly pages: number[] = [];
  private readonly bitmaps = new Uint32Array(8);
  private pageIdx = 0;
  private readonly services: Services;
  private readonly tracer: Tracer;
  private readonly traceId: number;
  private readonly handleNextFn: () => void;
  private handleTimer: TimerHandle | null = NO_TIMER;
  private bootTimer: TimerHandle | null = NO_TIMER;
  private silenceTimer: TimerHandle | null = NO_TIMER;
  private stallTimer: TimerHandle | null = NO_TIMER;
  private silent = false;
  private stalled = false;
  private corruptMode = 0;
  private corruptLeft = 0;
  private readonly outbox: FirmwareOutbox;

  constructor(asc: AscMailbox, options: RtkitFirmwareOptions = {}) {
    if (typeof asc?.attach !== "function" || typeof asc.popInbox !== "function") {
      throw argumentError("new RtkitFirmware", "asc", "an AscMailbox", asc);
    }
    const cfg = checkFirmwareOptions(options);
    asc.attach(this);
    this.asc = asc;
    this.minVersion = cfg.minVersion;
    this.maxVersion = cfg.maxVersion;
    this.latencyNs = cfg.latencyNs;
    this.bootDelayNs = cfg.bootDelayNs;
    this.firmwareVersion = cfg.firmwareVersion;
    this.announced[EP_MGMT] = 1;
    for (const ep of cfg.systemEndpoints) this.announced[ep] = 1;
    this.required = cfg.systemEndpoints.filter((ep) => ep <= 4 || ep === EP_OSLOG);
    this.tracer = asc.soc.tracer;
    this.traceId = this.tracer.source(`${asc.name}.fw`);
    this.services = new Services(
      {
        asc,
        emit: (ep, hi, lo) => this.#emit(ep, hi, lo),
        protocolError: (ep, hi, lo, why) => this.#protocolError(ep, hi, lo, why),
        fault: (name, a, b) => this.tracer.fault(this.traceId, name, a, b),
      },
      cfg.services,
    );
    this.outbox = new FirmwareOutbox(asc);
    this.handleNextFn = () => this.#handleNext();
    this.st = asc.cpuRunning ? S_ASLEEP : S_OFF;
    this.iopPowerState = asc.cpuRunning ? PWR_SLEEP : PWR_OFF;
  }

  /** Where the firmware is (see {@link RtkitFirmwareState}). */
  get state(): RtkitFirmwareState {
    return FIRMWARE_STATES[this.st]!;
  }

  /** Whether the firmware swallows everything (see {@link RtkitFirmware.silence}). */
  get isSilent(): boolean {
    return this.silent;
  }

  /** Whether the firmware has stopped reading its mailbox (see {@link RtkitFirmware.stall}). */
  get isStalled(): boolean {
    return this.stalled;
  }

  /** Log lines lost (backlog full, or the ring's DMA failed). */
  get syslogDropped(): number {
    return this.services.syslogDropped;
  }

  /** IOReport messages the AP echoed. */
  get ioreportAcks(): number {
    return this.services.ioreportAcks;
  }

  /**
   * The address of a system buffer in this session, or -1 before the request was answered
   * (or when none is configured). `kind`: 1 crashlog, 2 syslog, 4 IOReport, 8 OSLog (the
   * endpoint numbers).
   */
  bufferAddress(ep: 1 | 2 | 4 | 8): number {
    const svc = typeof ep === "number" ? [-1, 0, 1, -1, 2, -1, -1, -1, 3][ep] : undefined;
    if (svc === undefined || svc < 0) {
      throw argumentError("RtkitFirmware.bufferAddress", "ep", "1, 2, 4 or 8", ep);
    }
    return this.services.address(svc);
  }

  /** Whether endpoint `ep` is started in this session. */
  isStarted(ep: number): boolean {
    checkInteger("RtkitFirmware.isStarted", "ep", ep, 0, 0xff);
    return ep === EP_MGMT || this.started[ep] === 1;
  }

  /**
   * The handler plugged in as application endpoint `ep`, or null.
   *
   * **Errors:** `EINVAL` for an endpoint outside [0, 0xff].
   */
  endpointHandler(ep: number): RtkitEndpoint | null {
    checkInteger("RtkitFirmware.endpointHandler", "ep", ep, 0, 0xff);
    return this.handlers[ep] ?? null;
  }

  /**
   * Plugs `handler` in as application endpoint `ep` (≥ 0x20); it is announced from the
   * next HELLO on.
   *
   * **Errors:** `EINVAL` for an endpoint outside [0x20, 0xff] or a handler without the
   * {@link RtkitEndpoint} methods; `EBUSY` when `ep` is taken.
   */
  addEndpoint(ep: number, handler: RtkitEndpoint): void {
    checkInteger("RtkitFirmware.addEndpoint", "ep", ep, EP_APP_START, 0xff);
    checkObject("RtkitFirmware.addEndpoint", "handler", handler);
    for (const m of ["start", "stop", "receive", "reset", "prepareFault"] as const) {
      if (typeof handler[m] !== "function") {
        throw argumentError(
          "RtkitFirmware.addEndpoint",
          `handler.${m}`,
          "a function (an RtkitEndpoint)",
          handler[m],
        );
      }
    }
    if (this.handlers[ep] !== null) {
      throw new DevrefError("EBUSY", `endpoint 0x${ep.toString(16)} already has a handler`);
    }
    this.handlers[ep] = handler;
    this.announced[ep] = 1;
  }

  /**
   * Sends `msg0` (as its high and low 32-bit halves) on endpoint `ep`, as the firmware
   * would: through silence, corruption and the I2A queue.
   *
   * **Errors:** `EINVAL` for an endpoint outside [0, 0xff] or halves that are not 32-bit.
   */
  send(ep: number, hi: number, lo: number): void {
    if (typeof ep !== "number" || !(ep >>> 0 === ep && ep <= 0xff))
      checkInteger("RtkitFirmware.send", "ep", ep, 0, 0xff);
    if (typeof hi !== "number" || !(hi >>> 0 === hi))
      checkInteger("RtkitFirmware.send", "hi", hi, 0, 0xffff_ffff);
    if (typeof lo !== "number" || !(lo >>> 0 === lo))
      checkInteger("RtkitFirmware.send", "lo", lo, 0, 0xffff_ffff);
    this.#emit(ep, hi, lo);
  }

  /**
   * Writes a syslog line into the shared ring (by DMA) and announces it; before the
   * syslog buffer and INIT exist, or while every entry waits for its acknowledgement, the
   * line waits in a backlog (256 lines; more are counted in `syslogDropped`).
   *
   * **Errors:** `EINVAL` when `context` or `text` is not a string.
   */
  log(context: string, text: string): void {
    if (typeof context !== "string")
      throw argumentError("RtkitFirmware.log", "context", "a string", context);
    if (typeof text !== "string")
      throw argumentError("RtkitFirmware.log", "text", "a string", text);
    if (this.silent || this.st >= S_CRASHED) return;
    this.services.log(context, text);
  }

  /**
   * Sends an IOReport message of type 0x8 or 0xc that the AP must echo; false when the
   * IOReport endpoint is not started or its buffer is not set up yet.
   *
   * **Errors:** `EINVAL` for another type or a payload that is not a 32-bit number.
   */
  ioreport(type: 0x8 | 0xc, payload = 0): boolean {
    checkOneOf("RtkitFirmware.ioreport", "type", type, [IOREPORT_UNKNOWN1, IOREPORT_UNKNOWN2]);
    checkInteger("RtkitFirmware.ioreport", "payload", payload, 0, 0xffff_ffff);
    if (this.started[EP_IOREPORT] !== 1 || (this.st !== S_RUNNING && this.st !== S_STARTING)) {
      return false;
    }
    return this.services.ioreport(type, 0, payload);
  }

  /**
   * Crashes: writes a crashlog (rtkit.md §9.1, damaged as `corrupt` says) into the crashlog
   * buffer and sends the crash message on endpoint 1 (type 1 with the buffer's size and
   * address). Without a crashlog buffer it just stops. Ends silence and stalls first, as a
   * panic handler would. Returns whether a crash message was sent.
   *
   * **Errors:** `EINVAL` for a reason that is not a string or an unknown corruption.
   */
  crash(reason = "panic", corrupt: CrashlogCorruption = "none"): boolean {
    if (typeof reason !== "string")
      throw argumentError("RtkitFirmware.crash", "reason", "a string", reason);
    checkOneOf("RtkitFirmware.crash", "corrupt", corrupt, CRASHLOG_CORRUPTIONS);
    if (this.st === S_CRASHED || this.st === S_HALTED || this.st === S_OFF) return false;
    this.#endSilence();
    this.#endStall();
    this.tracer.fault(this.traceId, "rtkit-crash");
    const addr = this.services.address(SVC_CRASHLOG);
    const running = this.st === S_STARTING || this.st === S_RUNNING;
    this.#cancelHandling();
    this.#cancelBoot();
    if (addr < 0 || !running) {
      this.#setState(S_CRASHED);
      return false;
    }
    const size = this.services.size(SVC_CRASHLOG);
    const bytes = buildCrashlog({
      reason,
      firmwareVersion: this.firmwareVersion,
      timeNs: this.asc.soc.nowNs,
      history: this.outbox.history(),
      historyCount: this.outbox.historyCount,
      historyIndex: this.outbox.historyNext,
      corrupt,
      capacity: size,
    });
    const dma = this.services.master(SVC_CRASHLOG);
    if (!dma.write(addr, bytes))
      this.tracer.fault(this.traceId, "rtkit-crashlog-dma-error", dma.status);
    const lo = addr % 0x1_0000_0000;
    this.#emit(
      EP_CRASHLOG,
      ((BUFFER_REQUEST << 20) | ((size / 0x1000) << 12) | ((addr - lo) / 0x1_0000_0000)) >>> 0,
      lo,
    );
    this.#setState(S_CRASHED);
    return true;
  }

  /**
   * Goes silent: every incoming message is read and ignored, nothing is sent (not even
   * acknowledgements or log lines), for `durationNs` or until {@link RtkitFirmware.resume}.
   *
   * **Errors:** `EINVAL` for a bad duration.
   */
  silence(durationNs?: number): void {
    const d =
      durationNs === undefined
        ? -1
        : checkInteger(
            "RtkitFirmware.silence",
            "durationNs",
            durationNs,
            1,
            Number.MAX_SAFE_INTEGER - this.asc.soc.nowNs,
          );
    this.#endSilence();
    this.silent = true;
    this.tracer.fault(this.traceId, "rtkit-silent", Math.max(d, 0));
    if (d > 0) this.silenceTimer = this.asc.soc.events.after(d, () => this.#endSilence());
  }

  /**
   * Stalls: the firmware stops reading its A2I FIFO (it fills and the AP's sends time out)
   * and holds what it would send, for `durationNs` or until {@link RtkitFirmware.resume}.
   *
   * **Errors:** `EINVAL` for a bad duration.
   */
  stall(durationNs?: number): void {
    const d =
      durationNs === undefined
        ? -1
        : checkInteger(
            "RtkitFirmware.stall",
            "durationNs",
            durationNs,
            1,
            Number.MAX_SAFE_INTEGER - this.asc.soc.nowNs,
          );
    this.#endStall();
    this.stalled = true;
    this.#cancelHandling();
    this.tracer.fault(this.traceId, "rtkit-stall", Math.max(d, 0));
    if (d > 0) this.stallTimer = this.asc.soc.events.after(d, () => this.#endStall());
  }

  /** Ends silence and stalls now. */
  resume(): void {
    this.#endSilence();
    this.#endStall();
  }

  /**
   * Damages the next `count` messages the firmware sends (see {@link RtkitGarbageMode}).
   *
   * **Errors:** `EINVAL` for an unknown mode or a bad count.
   */
  corrupt(mode: RtkitGarbageMode, count = 1): void {
    checkOneOf("RtkitFirmware.corrupt", "mode", mode, GARBAGE_MODES);
    checkInteger("RtkitFirmware.corrupt", "count", count, 0, 0x7fff_ffff);
    this.corruptMode = GARBAGE_MODES.indexOf(mode) + 1;
    this.corruptLeft = count;
  }

  // --- AscCoprocessor ---------------------------------------------------------------------

  /** @internal */
  cpuStart(): void {
    this.#cancelHandling();
    this.#cancelBoot();
    this.#endSilence();
    this.#endStall();
    this.corruptLeft = 0;
    this.outbox.clear();
    this.#resetSession();
    this.iopPowerState = PWR_OFF;
    this.#setState(S_BOOTING);
    this.bootTimer = this.asc.soc.events.after(this.bootDelayNs, () => {
      this.bootTimer = null;
      this.#beginHandshake();
      this.#scheduleHandling();
    });
  }

  /** @internal */
  inbox(): void {
    if (this.handleTimer === null) this.#scheduleHandling();
  }

  /** @internal */
  outboxSpace(): void {
    if (this.outbox.count > 0 && !this.stalled) this.outbox.flush();
  }

  /** @internal */
  gone(): void {
    this.#cancelHandling();
    this.#cancelBoot();
    this.#setState(S_HALTED);
  }

  /** @internal The fault kinds of the firmware and of its endpoints. */
  prepareFault(spec: FaultSpec): (() => void) | null {
    checkObject("RtkitFirmware.prepareFault", "spec", spec);
    const own = firmwareFault(this, spec);
    if (own !== null) return own;
    for (const h of this.handlers) {
      const action = h?.prepareFault(spec) ?? null;
      if (action !== null) return action;
    }
    return null;
  }

  // --- the protocol -----------------------------------------------------------------------

  #handleNext(): void {
    this.handleTimer = null;
    if (!this.#canProcess()) return;
    const asc = this.asc;
    if (asc.popInbox()) {
      const f = asc.a2i;
      const hi = f.hi;
      const lo = f.lo;
      const msg1 = f.msg1;
      this.received++;
      this.outbox.remember(hi, lo, msg1, 1, asc.soc.nowNs);
      if (this.silent) this.dropped++;
      else this.#handle(hi, lo, msg1 & 0xff);
    }
    this.#scheduleHandling();
  }

  #handle(hi: number, lo: number, ep: number): void {
    if (ep === EP_MGMT) {
      this.#mgmt(hi, lo);
      return;
    }
    const st = this.st;
    if ((st !== S_STARTING && st !== S_RUNNING) || this.started[ep] !== 1) {
      this.#protocolError(ep, hi, lo, "message to an endpoint that is not started");
    } else if (ep >= EP_APP_START) {
      this.handlers[ep]!.receive(hi, lo);
    } else if (ep === EP_CRASHLOG || ep === EP_SYSLOG || ep === EP_IOREPORT || ep === EP_OSLOG) {
      this.services.receive(ep, hi, lo);
    } else {
      this.#protocolError(ep, hi, lo, "message to a system endpoint that takes none");
    }
  }

  #mgmt(hi: number, lo: number): void {
    const type = (hi >>> 20) & 0xff;
    const st = this.st;
    switch (type) {
      case MGMT_HELLO_REPLY: {
        const min = lo & 0xffff;
        const max = lo >>> 16;
        if (st !== S_HELLO) this.#protocolError(0, hi, lo, "HELLO_REPLY without a HELLO");
        else if (min !== max || min < this.minVersion || min > this.maxVersion) {
          this.#protocolError(0, hi, lo, "HELLO_REPLY with a version the HELLO did not offer");
        } else {
          this.version = min;
          this.pageIdx = 0;
          this.#setState(S_EPMAP);
          this.#sendEpmapPage();
        }
        return;
      }
      case MGMT_EPMAP: {
        const base = hi & 7;
        const last = (hi >>> 19) & 1;
        const more = lo & 1;
        const isLast = this.pageIdx === this.pages.length - 1 ? 1 : 0;
        if (st !== S_EPMAP)
          this.#protocolError(0, hi, lo, "EPMAP reply outside the EPMAP exchange");
        else if (base !== this.pages[this.pageIdx] || last !== isLast || more === isLast) {
          this.#protocolError(0, hi, lo, "EPMAP reply with the wrong BASE or LAST/MORE");
        } else if (isLast === 1) {
          this.#setState(S_STARTING);
          this.#checkStarted();
        } else {
          this.pageIdx++;
          this.#sendEpmapPage();
        }
        return;
      }
      case MGMT_STARTEP: {
        const ep = hi & 0xff;
        const flag = lo & 3;
        if (st !== S_STARTING && st !== S_RUNNING) {
          this.#protocolError(0, hi, lo, "STARTEP before the EPMAP exchange ended");
        } else if (ep === EP_MGMT || this.announced[ep] !== 1) {
          this.#protocolError(0, hi, lo, "STARTEP of an endpoint the EPMAP did not announce");
        } else if (flag === 2) this.#start(ep);
        else if (flag === 1) this.#stop(ep);
        else this.#protocolError(0, hi, lo, "STARTEP without the start or stop flag");
        return;
      }
      case MGMT_SET_IOP_PWR:
        this.#iopPower(lo & 0xffff, hi, lo);
        return;
      case MGMT_SET_AP_PWR:
        this.#apPower(lo & 0xffff, hi, lo);
        return;
      default:
        this.#protocolError(0, hi, lo, "unknown management message type");
    }
  }

  #beginHandshake(): void {
    this.#resetSession();
    this.bitmaps.fill(0);
    for (let ep = 0; ep < 256; ep++) {
      if (this.announced[ep] === 1) this.bitmaps[ep >> 5]! |= 1 << (ep & 31);
    }
    this.pages.length = 0;
    for (let b = 0; b < 8; b++) if (this.bitmaps[b] !== 0) this.pages.push(b);
    this.#setState(S_HELLO);
    this.#emit(EP_MGMT, MGMT_HELLO << 20, ((this.maxVersion << 16) | this.minVersion) >>> 0);
  }

  #sendEpmapPage(): void {
    const base = this.pages[this.pageIdx]!;
    const last = this.pageIdx === this.pages.length - 1 ? 1 << 19 : 0;
    this.#emit(EP_MGMT, (MGMT_EPMAP << 20) | last | base, this.bitmaps[base]!);
  }

  #start(ep: number): void {
    if (this.started[ep] === 1) return;
    this.started[ep] = 1;
    if (ep >= EP_APP_START) this.handlers[ep]!.start();
    else this.services.onStart(ep);
    this.#checkStarted();
  }

  #stop(ep: number): void {
    if (this.started[ep] !== 1) return;
    this.started[ep] = 0;
    if (ep >= EP_APP_START) this.handlers[ep]!.stop();
  }

  #checkStarted(): void {
    if (this.st !== S_STARTING) return;
    for (const ep of this.required) if (this.started[ep] !== 1) return;
    this.iopPowerState = PWR_ON;
    this.#setState(S_RUNNING);
    this.#ackIop(PWR_ON);
  }

  #iopPower(s: number, hi: number, lo: number): void {
    switch (this.st) {
      case S_ASLEEP:
        if (s === PWR_ON || s === PWR_INIT) this.#beginHandshake();
        else if (s === PWR_SLEEP || s === PWR_QUIESCED || s === PWR_OFF) {
          this.iopPowerState = s;
          this.#ackIop(s);
          if (s === PWR_OFF) this.#setState(S_HALTED);
        } else this.#badPowerState(hi, lo);
        return;
      case S_RUNNING:
        if (s === PWR_ON || s === PWR_INIT || s === PWR_IDLE) {
          this.iopPowerState = s === PWR_IDLE ? PWR_IDLE : PWR_ON;
          this.#ackIop(this.iopPowerState);
        } else if (s === PWR_SLEEP || s === PWR_QUIESCED || s === PWR_OFF) {
          this.iopPowerState = s;
          this.#ackIop(s);
          this.#resetSession();
          this.#setState(s === PWR_OFF ? S_HALTED : S_ASLEEP);
        } else this.#badPowerState(hi, lo);
        return;
      default:
        // A handshake is under way (m1n1 asks for INIT while the firmware boots): no answer.
        this.tracer.note(this.traceId, "rtkit-iop-power-ignored", s);
    }
  }

  #badPowerState(hi: number, lo: number): void {
    this.#protocolError(0, hi, lo, "SET_IOP_PWR_STATE to an unknown state");
    this.#ackIop(this.iopPowerState);
  }

  #apPower(s: number, hi: number, lo: number): void {
    const st = this.st;
    if (st === S_HELLO || st === S_EPMAP) {
      this.#protocolError(0, hi, lo, "SET_AP_PWR_STATE during the handshake");
      return;
    }
    this.apPowerState = s;
    this.#emit(EP_MGMT, MGMT_SET_AP_PWR << 20, s);
    if ((s & 0xff) === PWR_ON && (st === S_STARTING || st === S_RUNNING)) {
      this.services.onApPowerOn();
    }
  }

  #ackIop(s: number): void {
    this.#emit(EP_MGMT, MGMT_SET_IOP_PWR_ACK << 20, s);
  }

  #resetSession(): void {
    this.started.fill(0);
    this.services.reset();
    this.version = 0;
    this.apPowerState = PWR_OFF;
    for (const h of this.handlers) h?.reset();
  }

  // --- sending, scheduling, faults ----------------------------------------------------------

  #emit(ep: number, hi: number, lo: number): void {
    // Silent, or not running any software that could send (off, booting, crashed, halted).
    if (this.silent || this.st <= S_BOOTING || this.st >= S_CRASHED) {
      this.dropped++;
      return;
    }
    if (this.asc.gone) return;
    if (this.corruptLeft > 0) {
      this.corruptLeft--;
      const mode = this.corruptMode;
      if (mode === 1) {
        hi = this.asc.soc.random.nextU32();
        lo = this.asc.soc.random.nextU32();
      } else if (mode === 2) {
        hi = (ep === EP_OSLOG ? hi ^ 0xf000_0000 : hi ^ 0x0f00_0000) >>> 0;
      } else if (mode === 3) {
        let e = (ep + 1) & 0xff;
        for (let n = 0; n < 255 && this.announced[e] === 1; n++) e = (e + 1) & 0xff;
        ep = e;
      } else {
        hi = ep === EP_OSLOG ? (hi | 0x00ff_ffff) >>> 0 : (hi | 0x000f_ffff) >>> 0;
        lo = 0xffff_ffff;
      }
      this.tracer.fault(this.traceId, "rtkit-corrupt-message", mode, ep);
    }
    this.outbox.remember(hi, lo, ep, 0, this.asc.soc.nowNs);
    this.sent++;
    this.outbox.send(hi, lo, ep, this.stalled);
  }

  #canProcess(): boolean {
    const st = this.st;
    return (
      st !== S_OFF &&
      st !== S_BOOTING &&
      st !== S_CRASHED &&
      st !== S_HALTED &&
      !this.stalled &&
      !this.asc.gone
    );
  }

  #scheduleHandling(): void {
    if (this.handleTimer !== null || this.asc.a2i.count === 0 || !this.#canProcess()) return;
    this.handleTimer = this.asc.soc.events.after(this.latencyNs, this.handleNextFn);
  }

  #cancelHandling(): void {
    if (this.handleTimer !== null) this.asc.soc.events.cancel(this.handleTimer);
    this.handleTimer = null;
  }

  #cancelBoot(): void {
    if (this.bootTimer !== null) this.asc.soc.events.cancel(this.bootTimer);
    this.bootTimer = null;
  }

  #endSilence(): void {
    if (this.silenceTimer !== null) this.asc.soc.events.cancel(this.silenceTimer);
    this.silenceTimer = null;
    this.silent = false;
  }

  #endStall(): void {
    if (this.stallTimer !== null) this.asc.soc.events.cancel(this.stallTimer);
    this.stallTimer = null;
    if (!this.stalled) return;
    this.stalled = false;
    this.outbox.flush();
    this.#scheduleHandling();
  }

  #setState(s: number): void {
    this.st = s;
    this.tracer.note(this.traceId, "rtkit-state", s);
  }

  #protocolError(ep: number, hi: number, lo: number, why: string): void {
    this.protocolErrors++;
    this.lastProtocolError = `${why} (endpoint 0x${ep.toString(16)}, msg0 0x${hex8(hi)}${hex8(lo)})`;
    this.tracer.fault(this.traceId, "rtkit-protocol-error", ep * 0x1_0000_0000 + hi, lo);
  }
}

function hex8(v: number): string {
  return (v >>> 0).toString(16).padStart(8, "0");
}
