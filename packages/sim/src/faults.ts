//! C header: include/linux/fault-inject.h (the idea: make a chosen step fail on purpose)
//!
//! One API to schedule a fault at a step number or a virtual time. Models declare which
//! kinds they accept; other kinds can be defined on the injector (extension point).

import {
  argumentError,
  checkCallback,
  checkInstance,
  checkInteger,
  checkObject,
  checkString,
  DevrefError,
} from "@devref/raw-device";
import type { CrashlogCorruption } from "./asc/crashlog.js";
import type { RtkitGarbageMode, SmcFaultMode } from "./asc/faults.js";
import { EventQueue, scheduleBookkeeping } from "./clock.js";
import type { DeviceModel } from "./model.js";
import { StepCounter } from "./steps.js";
import { Tracer } from "./trace.js";

/** Names of the DART error codes a fault can carry (`ERROR.CODE`, one bit each). */
export type DartFaultCode =
  | "no-ttbr"
  | "no-pgd"
  | "no-pmd"
  | "no-pte"
  | "write-fault"
  | "read-fault";

/**
 * The fault kinds and their parameters. Other parts of the simulator add kinds by
 * augmenting this interface (`declare module`) and defining them with
 * {@link FaultInjector.define} or in a model's `prepareFault`.
 */
export interface FaultKinds {
  /**
   * The target is gone: MMIO all-ones, writes dropped, DMA fails, interrupts stop. For a
   * PCI function this is a surprise removal of its slot (every function of the card).
   */
  unplug: { readonly target: string };
  /** The target's next `count` (default 1) DMA transfers fail with `BUS_ERROR`. */
  "dma-error": { readonly target: string; readonly count?: number };
  /**
   * A DART fault on stream `sid`: latched at once at `dva` (default 0), or with `next`,
   * the stream's next translation faults with that code instead of walking.
   * Default code `no-pte`.
   */
  "iommu-fault": {
    readonly target: string;
    readonly sid: number;
    readonly code?: DartFaultCode;
    readonly dva?: number;
    readonly next?: boolean;
  };
  /**
   * A DART's next TLB command sticks busy: for `durationNs`, or forever (until the DART
   * is reset by the simulator) when omitted.
   */
  "stuck-command": { readonly target: string; readonly durationNs?: number };
  /** The RTKit firmware on the target ASC crashes (crashlog, then the crash message). */
  "rtkit-crash": {
    readonly target: string;
    readonly reason?: string;
    readonly corrupt?: CrashlogCorruption;
  };
  /** The firmware reads and ignores everything and sends nothing (for `durationNs`, or for good). */
  "rtkit-silence": { readonly target: string; readonly durationNs?: number };
  /** The firmware stops reading its mailbox (for `durationNs`, or for good). */
  "rtkit-stall": { readonly target: string; readonly durationNs?: number };
  /** The firmware's next `count` (default 1) messages are damaged (default `random`). */
  "rtkit-garbage": {
    readonly target: string;
    readonly mode?: RtkitGarbageMode;
    readonly count?: number;
  };
  /** The SMC endpoint on the target ASC misbehaves for its next `count` (default 1) commands. */
  "smc-fault": {
    readonly target: string;
    readonly mode: SmcFaultMode;
    readonly result?: number;
    readonly count?: number;
  };
}

/** A fault kind name. */
export type FaultKind = keyof FaultKinds;

/** A fault: its kind and that kind's parameters. */
export type FaultSpec = { [K in FaultKind]: { readonly kind: K } & FaultKinds[K] }[FaultKind];

/** When a fault fires: just before step `step` runs, or at virtual time `timeNs`. */
export type FaultWhen = { readonly step: number } | { readonly timeNs: number };

/** A fault waiting to fire (what {@link FaultInjector.schedule} returns). */
export interface ScheduledFault {
  readonly when: FaultWhen;
  readonly spec: FaultSpec;
  /** Whether it has fired. */
  readonly fired: boolean;
  /** Whether it was cancelled. */
  readonly cancelled: boolean;
}

interface Entry {
  readonly when: FaultWhen;
  readonly spec: FaultSpec;
  readonly action: () => void;
  readonly seq: number;
  fired: boolean;
  cancelled: boolean;
}

/** How a defined kind is prepared: validate the spec, return the action to run. */
export type FaultPreparer<K extends FaultKind> = (
  spec: { readonly kind: K } & FaultKinds[K],
) => () => void;

/**
 * Schedules faults by step or by time, and runs them.
 *
 * A fault "at step N" runs when the step counter reaches N, before step N does anything:
 * the N-th MMIO access (or event) already sees the fault. A fault at a time runs in a
 * bookkeeping event that does not count as a step, in FIFO order with the events of that
 * time. Every fault is traced as `inject-<kind>` when it fires.
 *
 * **Invariants:** a spec is validated completely when scheduled (nothing is scheduled if it
 * is invalid); faults due at the same step fire in scheduling order.
 *
 * **Errors:** `EINVAL` for an unknown kind, an unknown or unsuitable target, a bad field, or
 * a step/time already past (checked before the spec); `EEXIST` from `define` for a kind
 * already defined. The constructor throws `EINVAL` for a step counter, event queue or
 * tracer that is not one, or a lookup that is not a function.
 *
 * @example
 * ```ts
 * soc.faults.schedule({ step: 120 }, { kind: "unplug", target: "virtio-blk0" });
 * soc.faults.schedule({ timeNs: 50_000 }, { kind: "stuck-command", target: "dart0" });
 * ```
 */
export class FaultInjector {
  private readonly byStep: Entry[] = [];
  private readonly defined = new Map<string, (spec: FaultSpec) => () => void>();
  private readonly steps: StepCounter;
  private readonly events: EventQueue;
  private readonly tracer: Tracer;
  private readonly traceId: number;
  private readonly lookup: (name: string) => DeviceModel | undefined;
  private readonly mine = new WeakSet<object>();
  private seq = 0;

  constructor(
    steps: StepCounter,
    events: EventQueue,
    tracer: Tracer,
    lookup: (name: string) => DeviceModel | undefined,
  ) {
    checkInstance("new FaultInjector", "steps", steps, StepCounter);
    checkInstance("new FaultInjector", "events", events, EventQueue);
    checkInstance("new FaultInjector", "tracer", tracer, Tracer);
    checkCallback("new FaultInjector", "lookup", lookup);
    this.steps = steps;
    this.events = events;
    this.tracer = tracer;
    this.traceId = tracer.source("faults");
    this.lookup = lookup;
    steps.onTrigger = (step) => this.#fireSteps(step);
  }

  /**
   * Defines a fault kind that no model's `prepareFault` handles (a firmware model, a
   * whole-SoC event). `prepare` validates a spec and returns the action.
   */
  define<K extends FaultKind>(kind: K, prepare: FaultPreparer<K>): void {
    checkString("FaultInjector.define", "kind", kind, true);
    checkCallback("FaultInjector.define", "prepare", prepare);
    if (this.defined.has(kind)) {
      throw new DevrefError("EEXIST", `fault kind '${kind}' is already defined`);
    }
    // SAFETY: the map is only read with specs whose kind is this key.
    this.defined.set(kind, prepare as unknown as (spec: FaultSpec) => () => void);
  }

  /** Schedules `spec` to fire at `when`. */
  schedule(when: FaultWhen, spec: FaultSpec): ScheduledFault {
    checkObject("FaultInjector.schedule", "when", when);
    if ("step" in when) {
      checkInteger(
        "FaultInjector.schedule",
        "when.step",
        when.step,
        this.steps.count + 1,
        Number.MAX_SAFE_INTEGER,
      );
    } else if ("timeNs" in when) {
      checkInteger(
        "FaultInjector.schedule",
        "when.timeNs",
        when.timeNs,
        this.events.nowNs,
        Number.MAX_SAFE_INTEGER,
      );
    } else {
      throw argumentError("FaultInjector.schedule", "when", "{ step } or { timeNs }", when);
    }
    const action = this.#prepare(spec);
    const entry: Entry = { when, spec, action, seq: this.seq++, fired: false, cancelled: false };
    this.mine.add(entry);
    if ("step" in when) {
      this.byStep.push(entry);
      this.byStep.sort((a, b) => stepOf(a) - stepOf(b) || a.seq - b.seq);
      this.steps.trigger = stepOf(this.byStep[0]!);
    } else {
      scheduleBookkeeping(this.events, when.timeNs, () => this.#fire(entry));
    }
    return entry;
  }

  /** Fires `spec` now. */
  inject(spec: FaultSpec): void {
    const action = this.#prepare(spec);
    this.#fire({
      when: { timeNs: this.events.nowNs },
      spec,
      action,
      seq: this.seq++,
      fired: false,
      cancelled: false,
    });
  }

  /** Cancels a scheduled fault; returns whether it had not fired yet. */
  cancel(fault: ScheduledFault): boolean {
    if (typeof fault !== "object" || fault === null || !this.mine.has(fault)) return false;
    // SAFETY: only Entry objects are added to `mine`.
    const e = fault as Entry;
    if (e.fired || e.cancelled) return false;
    e.cancelled = true;
    return true;
  }

  /** Faults scheduled by step that have not fired, in firing order. */
  pendingBySteps(): ScheduledFault[] {
    return this.byStep.filter((e) => !e.cancelled && !e.fired);
  }

  #prepare(spec: FaultSpec): () => void {
    checkObject("FaultInjector", "spec", spec);
    const kind = checkString("FaultInjector", "spec.kind", spec.kind, true);
    const defined = this.defined.get(kind);
    if (defined !== undefined) {
      // Checked here, not when the fault fires in the middle of someone else's step.
      return checkCallback("FaultInjector", `the action prepared for '${kind}'`, defined(spec));
    }
    const target = checkString("FaultInjector", `spec.target (${kind})`, spec.target, true);
    const model = this.lookup(target);
    if (model === undefined) {
      throw argumentError(
        "FaultInjector",
        "spec.target",
        "the name of a device model on this SoC",
        target,
      );
    }
    const action = model.prepareFault(spec);
    if (action === null) {
      throw argumentError(
        "FaultInjector",
        "spec.kind",
        `a fault kind that ${model.kind} '${model.name}' supports`,
        kind,
      );
    }
    return checkCallback("FaultInjector", `the action ${model.name}.prepareFault returned`, action);
  }

  #fire(e: Entry): void {
    if (e.cancelled || e.fired) return;
    e.fired = true;
    const target = "target" in e.spec && typeof e.spec.target === "string" ? e.spec.target : "";
    this.tracer.fault(this.traceId, `inject-${e.spec.kind}${target === "" ? "" : `:${target}`}`);
    e.action();
  }

  #fireSteps(step: number): void {
    const list = this.byStep;
    while (list.length > 0 && stepOf(list[0]!) <= step) {
      const e = list.shift()!;
      this.#fire(e);
    }
    this.steps.trigger = list.length > 0 ? stepOf(list[0]!) : Number.POSITIVE_INFINITY;
  }
}

function stepOf(e: Entry): number {
  // SAFETY: only entries scheduled by step are in the step list.
  return (e.when as { readonly step: number }).step;
}
