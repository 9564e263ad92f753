//! C header: include/linux/irq.h, include/linux/interrupt.h (level and edge flow handlers)
//!
//! The interrupt controller: numbered lines that models drive, a consumer side that
//! connects one handler per line, masking, and delivery as events on virtual time.

import {
  argumentError,
  checkCallback,
  checkInstance,
  checkInteger,
  checkString,
  DevrefError,
} from "@devref/raw-device";
import { EventQueue } from "./clock.js";
import { type IrqAction, Tracer } from "./trace.js";

// module-state: privileged-access slots, assigned once by the classes' static blocks: the
// wire between a source and its controller stays off both public surfaces.
let changeLevelOf: (ctl: InterruptController, line: number, delta: 1 | -1, who: number) => void;
let edgeOf: (ctl: InterruptController, line: number, who: number) => void;
let reviveOf: (source: IrqSource) => void;

/** @internal Lets the source of a re-inserted device drive its line again. */
export function reviveIrqSource(source: IrqSource): void {
  reviveOf(source);
}

/** A consumer's interrupt handler; called with the line number. */
export type IrqHandler = (line: number) => void;

/**
 * One device's connection to a line: level (`raise`/`lower`) or edge (`pulse`). Several
 * sources on one line are OR-ed, as on a shared wire.
 *
 * **Invariants:** a source contributes at most one to its line's level; once `detach`ed it
 * is lowered and ignores everything.
 */
export class IrqSource {
  readonly line: number;
  readonly name: string;
  private asserted = false;
  private dead = false;
  private readonly ctl: InterruptController;
  private readonly traceId: number;

  /**
   * Made by {@link InterruptController.source}.
   *
   * **Errors:** `EINVAL` for a controller that is not one, a line outside it, a name that
   * is not a string or a trace id that is not a whole number.
   */
  constructor(ctl: InterruptController, line: number, name: string, traceId: number) {
    checkInstance("new IrqSource", "ctl", ctl, InterruptController);
    checkInteger("new IrqSource", "line", line, 0, ctl.lines - 1);
    checkString("new IrqSource", "name", name);
    checkInteger("new IrqSource", "traceId", traceId, 0, 0x7fff_ffff);
    this.ctl = ctl;
    this.line = line;
    this.name = name;
    this.traceId = traceId;
  }

  /** Whether this source currently asserts its line. */
  get level(): boolean {
    return this.asserted;
  }

  /** Asserts the line (level-triggered); a no-op if already asserted. */
  raise(): void {
    if (this.dead || this.asserted) return;
    this.asserted = true;
    changeLevelOf(this.ctl, this.line, 1, this.traceId);
  }

  /** De-asserts the line; a no-op if not asserted. */
  lower(): void {
    if (this.dead || !this.asserted) return;
    this.asserted = false;
    changeLevelOf(this.ctl, this.line, -1, this.traceId);
  }

  /** Drives the level to `level`. */
  set(level: boolean): void {
    if (level) this.raise();
    else this.lower();
  }

  /** Sends one edge (an MSI, an edge-triggered event). Edges before delivery coalesce. */
  pulse(): void {
    if (this.dead) return;
    edgeOf(this.ctl, this.line, this.traceId);
  }

  /** Lowers the line for good: what a removed device's wire does. */
  detach(): void {
    this.lower();
    this.dead = true;
  }

  #revive(): void {
    this.dead = false;
  }

  static {
    reviveOf = (source) => source.#revive();
  }
}

/**
 * The SoC's interrupt controller.
 *
 * Delivery is an event on the SoC's queue (a step), never a call from inside the model
 * that raised the line. A level line is delivered again after its handler returns as long
 * as it is still asserted; after `stormLimit` deliveries in a row without the line going
 * down it is masked and a `storm` record is traced (Linux's "nobody cared").
 *
 * **Invariants:** a masked line or one without a handler is never delivered; a handler
 * runs only from the event queue.
 *
 * **Errors:** `EINVAL` for a line outside `[0, lines)` or a handler that is not a
 * function, and from the constructor for an event queue or tracer that is not one or a
 * bad line count or storm limit; `EBUSY` for `connect` on a line that already has a handler.
 *
 * @example
 * ```ts
 * soc.irq.connect(5, (line) => console.log("irq", line));
 * const src = soc.irq.source(5, "dart0");
 * src.raise();
 * soc.run(); // delivers while asserted; the handler must clear the cause
 * ```
 */
export class InterruptController {
  readonly lines: number;
  private readonly level: Int32Array;
  private readonly edgePending: Uint8Array;
  private readonly masked: Uint8Array;
  private readonly scheduled: Uint8Array;
  private readonly storm: Int32Array;
  private readonly handlers: (IrqHandler | null)[];
  private readonly defaults: (IrqSource | null)[];
  private readonly events: EventQueue;
  private readonly tracer: Tracer;
  private readonly traceId: number;
  private readonly stormLimit: number;

  constructor(events: EventQueue, tracer: Tracer, lines = 256, stormLimit = 10_000) {
    checkInstance("new InterruptController", "events", events, EventQueue);
    checkInstance("new InterruptController", "tracer", tracer, Tracer);
    checkInteger("new InterruptController", "lines", lines, 1, 1 << 16);
    checkInteger("new InterruptController", "stormLimit", stormLimit, 1, 0x7fff_ffff);
    this.lines = lines;
    this.level = new Int32Array(lines);
    this.edgePending = new Uint8Array(lines);
    this.masked = new Uint8Array(lines);
    this.scheduled = new Uint8Array(lines);
    this.storm = new Int32Array(lines);
    this.handlers = new Array<IrqHandler | null>(lines).fill(null);
    this.defaults = new Array<IrqSource | null>(lines).fill(null);
    this.events = events;
    this.tracer = tracer;
    this.traceId = tracer.source("irq");
    this.stormLimit = stormLimit;
  }

  /** A new source on `line` for a device model named `name`. */
  source(line: number, name: string): IrqSource {
    this.#check("source", line);
    return new IrqSource(this, line, name, this.tracer.source(name));
  }

  /** Asserts `line` through its anonymous default source. */
  raise(line: number): void {
    this.#defaultSource("raise", line).raise();
  }

  /** De-asserts the anonymous default source of `line`. */
  lower(line: number): void {
    this.#defaultSource("lower", line).lower();
  }

  /** Sends one edge on `line`. */
  pulse(line: number): void {
    this.#check("pulse", line);
    this.#edge(line, this.traceId);
  }

  /** Connects the consumer's handler to `line`. */
  connect(line: number, handler: IrqHandler): void {
    this.#check("connect", line);
    checkCallback("InterruptController.connect", "handler", handler);
    if (this.handlers[line] !== null) {
      throw new DevrefError(
        "EBUSY",
        `interrupt line ${line} already has a handler: disconnect it first (shared lines are ` +
          "demultiplexed by the consumer)",
      );
    }
    this.handlers[line] = handler;
    this.#maybeSchedule(line);
  }

  /** Removes the handler of `line`; returns whether there was one. */
  disconnect(line: number): boolean {
    this.#check("disconnect", line);
    const had = this.handlers[line] !== null;
    this.handlers[line] = null;
    return had;
  }

  /** Whether `line` has a consumer's handler. */
  isConnected(line: number): boolean {
    this.#check("isConnected", line);
    return this.handlers[line] !== null;
  }

  /** Stops delivery of `line` (it stays pending). */
  mask(line: number): void {
    this.#check("mask", line);
    if (this.masked[line] === 1) return;
    this.masked[line] = 1;
    this.#traceIrq(line, "mask");
  }

  /** Resumes delivery of `line`, delivering at once if it is pending. */
  unmask(line: number): void {
    this.#check("unmask", line);
    if (this.masked[line] === 0) return;
    this.masked[line] = 0;
    this.storm[line] = 0;
    this.#traceIrq(line, "unmask");
    this.#maybeSchedule(line);
  }

  isMasked(line: number): boolean {
    this.#check("isMasked", line);
    return this.masked[line] === 1;
  }

  /** Whether any source asserts `line`. */
  isAsserted(line: number): boolean {
    this.#check("isAsserted", line);
    return this.level[line]! > 0;
  }

  /** Whether `line` would be delivered if unmasked and connected. */
  isPending(line: number): boolean {
    this.#check("isPending", line);
    return this.level[line]! > 0 || this.edgePending[line] === 1;
  }

  static {
    changeLevelOf = (ctl, line, delta, who) => ctl.#changeLevel(line, delta, who);
    edgeOf = (ctl, line, who) => ctl.#edge(line, who);
  }

  #changeLevel(line: number, delta: 1 | -1, who: number): void {
    const before = this.level[line]!;
    const after = before + delta;
    this.level[line] = after;
    if (before === 0 && after > 0) {
      this.#traceIrq(line, "raise", who);
      this.#maybeSchedule(line);
    } else if (before > 0 && after === 0) {
      this.#traceIrq(line, "lower", who);
      this.storm[line] = 0;
    }
  }

  #edge(line: number, who: number): void {
    this.edgePending[line] = 1;
    this.#traceIrq(line, "pulse", who);
    this.#maybeSchedule(line);
  }

  #maybeSchedule(line: number): void {
    if (
      this.scheduled[line] === 1 ||
      this.masked[line] === 1 ||
      this.handlers[line] === null ||
      (this.level[line] === 0 && this.edgePending[line] === 0)
    )
      return;
    this.scheduled[line] = 1;
    this.events.queue(() => this.#deliver(line));
  }

  #deliver(line: number): void {
    this.scheduled[line] = 0;
    const handler = this.handlers[line];
    if (handler === null || handler === undefined || this.masked[line] === 1) return;
    if (this.edgePending[line] === 1) this.edgePending[line] = 0;
    else if (this.level[line] === 0) return;
    this.#traceIrq(line, "deliver");
    try {
      handler(line);
    } finally {
      // Even if the handler threw, a line still pending is delivered again (never left hanging).
      this.#afterDelivery(line);
    }
  }

  #afterDelivery(line: number): void {
    if (this.level[line]! > 0 || this.edgePending[line] === 1) {
      if (this.level[line]! > 0 && ++this.storm[line]! >= this.stormLimit) {
        this.masked[line] = 1;
        this.#traceIrq(line, "storm");
        return;
      }
      this.#maybeSchedule(line);
    }
  }

  #defaultSource(what: string, line: number): IrqSource {
    this.#check(what, line);
    let s = this.defaults[line];
    if (s === null || s === undefined) {
      s = new IrqSource(this, line, "irq", this.traceId);
      this.defaults[line] = s;
    }
    return s;
  }

  #traceIrq(line: number, action: IrqAction, who: number = this.traceId): void {
    if (this.tracer.enabled) this.tracer.irq(who, line, action);
  }

  #check(what: string, line: number): void {
    if (!(Number.isInteger(line) && line >= 0 && line < this.lines)) {
      throw argumentError(
        `InterruptController.${what}`,
        "line",
        `an interrupt line in [0, ${this.lines - 1}]`,
        line,
      );
    }
  }
}
