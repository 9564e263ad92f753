//! C header: include/linux/timer.h, include/linux/workqueue.h (what a scheduler seam stands for)
//!
//! Virtual time and the event queue. Time is an integer count of virtual nanoseconds; the
//! `Scheduler`-shaped methods (`now`, `setTimeout`) speak milliseconds like the DOM does.

import { checkCallback, checkInteger, checkObject, DevrefError } from "@devref/raw-device";

/** Proof that a timer handle is made by an event queue (the key is not exported). */
const QUEUE_KEY: unique symbol = Symbol("devref.sim.timer");

// module-state: a privileged-access slot, assigned once by EventQueue's static block.
let atInternalOf: (queue: EventQueue, timeNs: number, fn: () => void) => TimerHandle;

/**
 * @internal Schedules a bookkeeping event on `queue` that does not count as a step (fault
 * timers), so injecting a fault by time does not renumber the steps of the run.
 */
export function scheduleBookkeeping(
  queue: EventQueue,
  timeNs: number,
  fn: () => void,
): TimerHandle {
  return atInternalOf(queue, timeNs, fn);
}

/**
 * The scheduler seam the device core expects: a clock, a job queue and timers. The
 * simulator's {@link EventQueue} implements it on virtual time.
 */
export interface Scheduler {
  /** Current time in milliseconds. */
  now(): number;
  /** Runs `job` later, after the jobs already queued for the current time. */
  queue(job: () => void): void;
  /** Runs `fn` once `ms` milliseconds from now. */
  setTimeout(fn: () => void, ms: number): unknown;
  /** Cancels a timer returned by `setTimeout`; stale or foreign handles are ignored. */
  clearTimeout(handle: unknown): void;
}

/** Called by the queue around each event it runs (the SoC counts steps here). */
export interface EventHooks {
  /** Before an event that counts as a step runs. */
  onStep(): void;
}

/**
 * A scheduled event: what `at`, `after` and `setTimeout` return.
 *
 * **Invariants:** `timeNs` never changes; once run or cancelled, `pending` is false for good.
 */
export class TimerHandle {
  /** Virtual time the event runs at, in nanoseconds. */
  readonly timeNs: number;
  /** @internal Order among events of equal time. */
  readonly seq: number;
  /** @internal False for the simulator's own bookkeeping events (fault timers). */
  readonly countsAsStep: boolean;
  /** @internal The job, or null once run or cancelled. */
  fn: (() => void) | null;
  /** @internal The queue that made the handle: only it may cancel or run the event. */
  readonly owner: object;

  /**
   * Timer handles come from an {@link EventQueue} (`at`, `after`, `setTimeout`).
   *
   * **Errors:** `EPERM` when called by anything but an event queue.
   */
  constructor(
    key: typeof QUEUE_KEY,
    owner: object,
    timeNs: number,
    seq: number,
    fn: () => void,
    countsAsStep: boolean,
  ) {
    if (key !== QUEUE_KEY) {
      throw new DevrefError(
        "EPERM",
        "timer handles are made by an event queue: schedule with queue.at(), after() or setTimeout()",
      );
    }
    this.owner = owner;
    this.timeNs = timeNs;
    this.seq = seq;
    this.fn = fn;
    this.countsAsStep = countsAsStep;
  }

  /** Whether the event is still waiting to run. */
  get pending(): boolean {
    return this.fn !== null;
  }
}

const NS_PER_MS = 1_000_000;
const NO_HOOKS: EventHooks = { onStep() {} };

function before(x: TimerHandle, y: TimerHandle): boolean {
  return x.timeNs < y.timeNs || (x.timeNs === y.timeNs && x.seq < y.seq);
}

/**
 * A deterministic discrete-event queue on virtual nanoseconds.
 *
 * Events run in time order, and in the order they were scheduled among equal times (FIFO).
 * Nothing here reads wall time: the clock moves only when an event runs or a caller
 * advances it.
 *
 * **Invariants:** time never goes backwards; an event never runs twice; a cancelled event
 * never runs.
 *
 * **Errors:** `EINVAL` for a time in the past, a negative or non-integer delay in
 * nanoseconds, a job that is not a function, or constructor hooks without an `onStep`
 * function.
 *
 * @example
 * ```ts
 * const q = new EventQueue();
 * q.after(1000, () => console.log(q.nowNs)); // 1000
 * q.setTimeout(() => console.log(q.now()), 2); // 2 (ms)
 * while (q.runNext());
 * ```
 */
export class EventQueue implements Scheduler {
  private readonly heap: TimerHandle[] = [];
  private readonly hooks: EventHooks;
  private timeNs = 0;
  private nextSeq = 0;
  private live = 0;

  constructor(hooks: EventHooks = NO_HOOKS) {
    checkObject("new EventQueue", "hooks", hooks);
    checkCallback("new EventQueue", "hooks.onStep", hooks.onStep);
    this.hooks = hooks;
  }

  /** Current virtual time in nanoseconds. */
  get nowNs(): number {
    return this.timeNs;
  }

  /** Events waiting to run (cancelled ones excluded). */
  get pending(): number {
    return this.live;
  }

  /** Current virtual time in milliseconds (fractional between whole milliseconds). */
  now(): number {
    return this.timeNs / NS_PER_MS;
  }

  /** Schedules `fn` at absolute virtual time `timeNs`. */
  at(timeNs: number, fn: () => void): TimerHandle {
    checkInteger("EventQueue.at", "timeNs", timeNs, this.timeNs, Number.MAX_SAFE_INTEGER);
    checkCallback("EventQueue.at", "fn", fn);
    return this.#push(timeNs, fn, true);
  }

  /** Schedules `fn` `delayNs` nanoseconds from now (0 = after the jobs already due now). */
  after(delayNs: number, fn: () => void): TimerHandle {
    checkInteger("EventQueue.after", "delayNs", delayNs, 0, Number.MAX_SAFE_INTEGER - this.timeNs);
    checkCallback("EventQueue.after", "fn", fn);
    return this.#push(this.timeNs + delayNs, fn, true);
  }

  queue(job: () => void): void {
    checkCallback("EventQueue.queue", "job", job);
    this.#push(this.timeNs, job, true);
  }

  /** Like the DOM's: a negative, NaN or missing delay means 0; fractions round to the ns. */
  setTimeout(fn: () => void, ms: number): TimerHandle {
    checkCallback("EventQueue.setTimeout", "fn", fn);
    let ns = typeof ms === "number" && ms > 0 ? Math.round(ms * NS_PER_MS) : 0;
    if (!(ns <= Number.MAX_SAFE_INTEGER - this.timeNs)) ns = Number.MAX_SAFE_INTEGER - this.timeNs;
    return this.#push(this.timeNs + ns, fn, true);
  }

  clearTimeout(handle: unknown): void {
    if (handle instanceof TimerHandle) this.cancel(handle);
  }

  /** Cancels `handle`; returns whether it was still pending (false for another queue's handle). */
  cancel(handle: TimerHandle): boolean {
    // A handle of another queue is stale here, as the Scheduler contract says.
    if (!(handle instanceof TimerHandle) || handle.owner !== this || handle.fn === null) {
      return false;
    }
    handle.fn = null;
    this.live--;
    return true;
  }

  static {
    atInternalOf = (queue, timeNs, fn) => queue.#push(Math.max(timeNs, queue.timeNs), fn, false);
  }

  /** Time of the next pending event, or `Infinity` when there is none. */
  nextTimeNs(): number {
    this.#dropCancelled();
    const top = this.heap[0];
    return top === undefined ? Number.POSITIVE_INFINITY : top.timeNs;
  }

  /** Runs the next event (advancing the clock to it); false when the queue is empty. */
  runNext(): boolean {
    this.#dropCancelled();
    const ev = this.#pop();
    if (ev === undefined) return false;
    const fn = ev.fn!;
    ev.fn = null;
    this.live--;
    this.timeNs = ev.timeNs;
    if (ev.countsAsStep) this.hooks.onStep();
    fn();
    return true;
  }

  /**
   * Moves the clock forward to `timeNs` without running anything.
   *
   * **Errors:** `EINVAL` if `timeNs` is in the past or after a pending event (run those first).
   */
  advanceTo(timeNs: number): void {
    checkInteger(
      "EventQueue.advanceTo",
      "timeNs",
      timeNs,
      this.timeNs,
      Math.min(this.nextTimeNs(), Number.MAX_SAFE_INTEGER),
    );
    this.timeNs = timeNs;
  }

  #push(timeNs: number, fn: () => void, countsAsStep: boolean): TimerHandle {
    const ev = new TimerHandle(QUEUE_KEY, this, timeNs, this.nextSeq++, fn, countsAsStep);
    const heap = this.heap;
    let i = heap.length;
    heap.push(ev);
    while (i > 0) {
      const parent = (i - 1) >> 1;
      const p = heap[parent]!;
      if (!before(ev, p)) break;
      heap[i] = p;
      i = parent;
    }
    heap[i] = ev;
    this.live++;
    return ev;
  }

  #dropCancelled(): void {
    while (this.heap.length > 0 && this.heap[0]!.fn === null) this.#pop();
  }

  #pop(): TimerHandle | undefined {
    const heap = this.heap;
    const top = heap[0];
    if (top === undefined) return undefined;
    const last = heap.pop()!;
    if (heap.length > 0) {
      let i = 0;
      const n = heap.length;
      for (;;) {
        const l = 2 * i + 1;
        if (l >= n) break;
        const r = l + 1;
        const c = r < n && before(heap[r]!, heap[l]!) ? r : l;
        if (!before(heap[c]!, last)) break;
        heap[i] = heap[c]!;
        i = c;
      }
      heap[i] = last;
    }
    return top;
  }
}
