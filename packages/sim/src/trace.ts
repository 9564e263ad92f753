//! C header: include/linux/tracepoint.h (what a trace record stands for)
//!
//! Structured trace of a simulated run, with a running FNV-1a 64 digest over a canonical
//! encoding of every record, so two runs can be compared by one string.

import { argumentError, checkCount, checkOneOf, checkString } from "@devref/raw-device";
import { Fnv64 } from "./internal/fnv.js";

/** What the tracer does: nothing, fold records into the digest only, or also keep them. */
export type TraceMode = "off" | "digest" | "full";

/** Every record's common fields. */
export interface TraceBase {
  /** Step counter when the record was made (the step it belongs to; 0 before the first). */
  readonly step: number;
  /** Virtual time in nanoseconds. */
  readonly timeNs: number;
  /** The model, port or master that made it. */
  readonly source: string;
}

/** One MMIO access (offset relative to the region). */
export interface MmioTraceRecord extends TraceBase {
  readonly kind: "mmio";
  readonly write: boolean;
  readonly offset: number;
  readonly width: 1 | 2 | 4;
  readonly value: number;
}

/** What happened on an interrupt line. */
export type IrqAction = "raise" | "lower" | "pulse" | "deliver" | "mask" | "unmask" | "storm";

/** An interrupt line changing state or being delivered. */
export interface IrqTraceRecord extends TraceBase {
  readonly kind: "irq";
  readonly line: number;
  readonly action: IrqAction;
}

/** One DMA transfer by a master (`status` 0 = done, else a `DMA_STATUS` value). */
export interface DmaTraceRecord extends TraceBase {
  readonly kind: "dma";
  readonly write: boolean;
  /** The bus address the master used (an IOVA behind a translating DART). */
  readonly addr: number;
  readonly length: number;
  readonly status: number;
}

/** An IOTLB entry filled, or entries flushed. */
export interface IotlbTraceRecord extends TraceBase {
  readonly kind: "iotlb";
  readonly action: "fill" | "flush";
  /** Stream; -1 for a flush of every stream. */
  readonly sid: number;
  /** Fill: the DVA page; flush: 0. */
  readonly dva: number;
  /** Fill: the physical page, or -1 for a cached fault; flush: 0. */
  readonly pa: number;
  /** Fill: 1; flush: entries dropped. */
  readonly count: number;
}

/** A fault: detected by a model (DART error, DMA error, protocol violation) or injected. */
export interface FaultTraceRecord extends TraceBase {
  readonly kind: "fault";
  /** Short kebab-case name, e.g. `dart-no-pte`, `dma-bus-error`, `inject-unplug`. */
  readonly fault: string;
  readonly a: number;
  readonly b: number;
}

/** Anything else a model wants on the record (a reset, a request completed). */
export interface NoteTraceRecord extends TraceBase {
  readonly kind: "note";
  readonly text: string;
  readonly a: number;
  readonly b: number;
}

/**
 * One mailbox message entering a FIFO: `a2i` from the AP to the coprocessor, `i2a` back.
 * `msg0` is given as its two 32-bit halves; `msg1` is the 32-bit word (the RTKit endpoint
 * in its low byte).
 */
export interface MboxTraceRecord extends TraceBase {
  readonly kind: "mbox";
  readonly direction: "a2i" | "i2a";
  readonly msg0Hi: number;
  readonly msg0Lo: number;
  readonly msg1: number;
}

/** One record of the trace. */
export type TraceRecord =
  | MmioTraceRecord
  | IrqTraceRecord
  | DmaTraceRecord
  | IotlbTraceRecord
  | FaultTraceRecord
  | NoteTraceRecord
  | MboxTraceRecord;

const K_SOURCE = 0;
const K_MMIO = 1;
const K_IRQ = 2;
const K_DMA = 3;
const K_IOTLB = 4;
const K_FAULT = 5;
const K_NOTE = 6;
const K_MODE = 7;
const K_MBOX = 8;

const IRQ_ACTIONS: readonly IrqAction[] = [
  "raise",
  "lower",
  "pulse",
  "deliver",
  "mask",
  "unmask",
  "storm",
];

/** Where a record's step and time come from (the SoC). */
export interface TraceClock {
  readonly stepCount: number;
  readonly nowNs: number;
}

/**
 * The recorder behind `soc.trace()` and `soc.traceDigest()`.
 *
 * Models register a source name once (its id is folded into the digest with its name) and
 * then emit records by id; the hot paths test {@link Tracer.enabled} before calling.
 *
 * Canonical encoding (what the digest covers), each field a little-endian 32-bit word and
 * numbers that may exceed 32 bits as two words (low first): kind code, step, time, source
 * id, then the record's own fields in declaration order; strings as their length and
 * UTF-16 code units. Source registrations and mode switches are encoded too.
 *
 * **Invariants:** the digest depends only on the records emitted (and sources registered)
 * while the mode was not `off`, in order; `full` keeps the last `limit` records.
 *
 * **Errors:** `EINVAL` for an unknown mode or a bad source name, and (while tracing) for a
 * record whose fields are not numbers, or whose fault or note text is not a string.
 */
export class Tracer {
  /** True unless the mode is `off`: hot paths test this before building a record. */
  enabled: boolean;
  private keep: boolean;
  private modeName: TraceMode;
  private readonly clock: TraceClock;
  private readonly hash = new Fnv64();
  private readonly names: string[] = [];
  private readonly ring: TraceRecord[] = [];
  private readonly limit: number;
  private head = 0;
  private total = 0;
  private overwritten = 0;

  constructor(clock: TraceClock, mode: TraceMode = "full", limit = 100_000) {
    this.clock = clock;
    this.modeName = checkOneOf("Tracer", "mode", mode, ["off", "digest", "full"] as const);
    this.enabled = mode !== "off";
    this.keep = mode === "full";
    this.limit = checkCount("Tracer", "limit", limit);
  }

  /** The current mode. */
  get mode(): TraceMode {
    return this.modeName;
  }

  /** Switches mode; the switch itself is folded into the digest. */
  setMode(mode: TraceMode): void {
    checkOneOf("Tracer.setMode", "mode", mode, ["off", "digest", "full"] as const);
    this.modeName = mode;
    this.enabled = mode !== "off";
    this.keep = mode === "full";
    this.#header(K_MODE, 0);
    this.hash.u32(mode === "off" ? 0 : mode === "digest" ? 1 : 2);
  }

  /** Records emitted since the start (kept or not, while enabled). */
  get count(): number {
    return this.total;
  }

  /** Records no longer kept because the buffer was full. */
  get dropped(): number {
    return this.overwritten;
  }

  /** Registers a source name and returns its id (names may repeat; ids do not). */
  source(name: string): number {
    checkString("Tracer.source", "name", name, true);
    const id = this.names.length;
    this.names.push(name);
    this.hash.u32(K_SOURCE);
    this.hash.u32(id);
    this.hash.str(name);
    return id;
  }

  /** The name registered under `id`. */
  sourceName(id: number): string {
    if (typeof id !== "number") throw argumentError("Tracer.sourceName", "id", "a source id", id);
    return this.names[id] ?? `#${id}`;
  }

  /** The kept records, oldest first. */
  records(): TraceRecord[] {
    const n = this.ring.length;
    if (n < this.limit) return this.ring.slice();
    return [...this.ring.slice(this.head), ...this.ring.slice(0, this.head)];
  }

  /** The digest so far: 16 hex digits of FNV-1a 64. */
  digest(): string {
    return this.hash.hex();
  }

  mmio(src: number, write: boolean, offset: number, width: 1 | 2 | 4, value: number): void {
    if (!this.enabled) return;
    if (
      typeof src !== "number" ||
      typeof offset !== "number" ||
      typeof width !== "number" ||
      typeof value !== "number"
    ) {
      badNumbers("Tracer.mmio", ["src", "offset", "width", "value"], [src, offset, width, value]);
    }
    const step = this.#header(K_MMIO, src);
    this.total++;
    const h = this.hash;
    h.u32(write ? 1 : 0);
    h.u32(offset);
    h.u32(width);
    h.u32(value);
    if (this.keep) {
      this.#store({
        kind: "mmio",
        step,
        timeNs: this.clock.nowNs,
        source: this.sourceName(src),
        write,
        offset,
        width,
        value,
      });
    }
  }

  irq(src: number, line: number, action: IrqAction): void {
    if (!this.enabled) return;
    if (typeof src !== "number" || typeof line !== "number") {
      badNumbers("Tracer.irq", ["src", "line"], [src, line]);
    }
    const step = this.#header(K_IRQ, src);
    this.total++;
    this.hash.u32(line);
    this.hash.u32(IRQ_ACTIONS.indexOf(action));
    if (this.keep) {
      this.#store({
        kind: "irq",
        step,
        timeNs: this.clock.nowNs,
        source: this.sourceName(src),
        line,
        action,
      });
    }
  }

  dma(src: number, write: boolean, addr: number, length: number, status: number): void {
    if (!this.enabled) return;
    if (
      typeof src !== "number" ||
      typeof addr !== "number" ||
      typeof length !== "number" ||
      typeof status !== "number"
    ) {
      badNumbers("Tracer.dma", ["src", "addr", "length", "status"], [src, addr, length, status]);
    }
    const step = this.#header(K_DMA, src);
    this.total++;
    const h = this.hash;
    h.u32(write ? 1 : 0);
    h.num(addr);
    h.u32(length);
    h.u32(status);
    if (this.keep) {
      this.#store({
        kind: "dma",
        step,
        timeNs: this.clock.nowNs,
        source: this.sourceName(src),
        write,
        addr,
        length,
        status,
      });
    }
  }

  iotlb(
    src: number,
    action: "fill" | "flush",
    sid: number,
    dva: number,
    pa: number,
    count: number,
  ): void {
    if (!this.enabled) return;
    if (
      typeof src !== "number" ||
      typeof sid !== "number" ||
      typeof dva !== "number" ||
      typeof pa !== "number" ||
      typeof count !== "number"
    ) {
      badNumbers("Tracer.iotlb", ["src", "sid", "dva", "pa", "count"], [src, sid, dva, pa, count]);
    }
    const step = this.#header(K_IOTLB, src);
    this.total++;
    const h = this.hash;
    h.u32(action === "fill" ? 0 : 1);
    h.u32(sid);
    h.num(dva);
    h.num(pa);
    h.u32(count);
    if (this.keep) {
      this.#store({
        kind: "iotlb",
        step,
        timeNs: this.clock.nowNs,
        source: this.sourceName(src),
        action,
        sid,
        dva,
        pa,
        count,
      });
    }
  }

  fault(src: number, fault: string, a = 0, b = 0): void {
    if (!this.enabled) return;
    if (
      typeof src !== "number" ||
      typeof fault !== "string" ||
      typeof a !== "number" ||
      typeof b !== "number"
    ) {
      if (typeof fault !== "string")
        throw argumentError("Tracer.fault", "fault", "a string", fault);
      badNumbers("Tracer.fault", ["src", "a", "b"], [src, a, b]);
    }
    const step = this.#header(K_FAULT, src);
    this.total++;
    const h = this.hash;
    h.str(fault);
    h.num(a);
    h.num(b);
    if (this.keep) {
      this.#store({
        kind: "fault",
        step,
        timeNs: this.clock.nowNs,
        source: this.sourceName(src),
        fault,
        a,
        b,
      });
    }
  }

  note(src: number, text: string, a = 0, b = 0): void {
    if (!this.enabled) return;
    if (
      typeof src !== "number" ||
      typeof text !== "string" ||
      typeof a !== "number" ||
      typeof b !== "number"
    ) {
      if (typeof text !== "string") throw argumentError("Tracer.note", "text", "a string", text);
      badNumbers("Tracer.note", ["src", "a", "b"], [src, a, b]);
    }
    const step = this.#header(K_NOTE, src);
    this.total++;
    const h = this.hash;
    h.str(text);
    h.num(a);
    h.num(b);
    if (this.keep) {
      this.#store({
        kind: "note",
        step,
        timeNs: this.clock.nowNs,
        source: this.sourceName(src),
        text,
        a,
        b,
      });
    }
  }

  /** A mailbox message pushed into the A2I (`toIop`) or I2A FIFO. */
  mbox(src: number, toIop: boolean, msg0Hi: number, msg0Lo: number, msg1: number): void {
    if (!this.enabled) return;
    if (
      typeof src !== "number" ||
      typeof msg0Hi !== "number" ||
      typeof msg0Lo !== "number" ||
      typeof msg1 !== "number"
    ) {
      badNumbers("Tracer.mbox", ["src", "msg0Hi", "msg0Lo", "msg1"], [src, msg0Hi, msg0Lo, msg1]);
    }
    const step = this.#header(K_MBOX, src);
    this.total++;
    const h = this.hash;
    h.u32(toIop ? 1 : 0);
    h.u32(msg0Hi);
    h.u32(msg0Lo);
    h.u32(msg1);
    if (this.keep) {
      this.#store({
        kind: "mbox",
        step,
        timeNs: this.clock.nowNs,
        source: this.sourceName(src),
        direction: toIop ? "a2i" : "i2a",
        msg0Hi: msg0Hi >>> 0,
        msg0Lo: msg0Lo >>> 0,
        msg1: msg1 >>> 0,
      });
    }
  }

  #header(kind: number, src: number): number {
    const step = this.clock.stepCount;
    const h = this.hash;
    h.u32(kind);
    h.num(step);
    h.num(this.clock.nowNs);
    h.u32(src);
    return step;
  }

  #store(r: TraceRecord): void {
    if (this.ring.length < this.limit) {
      this.ring.push(r);
      return;
    }
    this.ring[this.head] = r;
    this.head = (this.head + 1) % this.limit;
    this.overwritten++;
  }
}

/** Throws `EINVAL` for the first of `values` that is not a number (a record's fields). */
function badNumbers(where: string, names: readonly string[], values: readonly unknown[]): void {
  for (let i = 0; i < names.length; i++) {
    if (typeof values[i] !== "number") throw argumentError(where, names[i]!, "a number", values[i]);
  }
}
