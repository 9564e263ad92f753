//! C header: include/linux/refcount.h (refcount_t), lib/refcount.c

import { checkInteger } from "./args.js";
import { DevrefError, describeValue } from "./errors.js";

/** The largest legal count, `INT_MAX`. */
export const REFCOUNT_MAX = 0x7fff_ffff;
/** The sticky value of a broken counter, `INT_MIN / 2`: far from zero and from the positive range. */
export const REFCOUNT_SATURATED = -0x4000_0000;

/** Why a counter saturated (the kernel's `enum refcount_saturation_type`). */
export type RefcountSaturation =
  | "ADD_NOT_ZERO_OVF"
  | "ADD_OVF"
  | "ADD_UAF"
  | "SUB_UAF"
  | "DEC_LEAK";

/** The kernel's message for each saturation type. */
export const REFCOUNT_MESSAGES: Readonly<Record<RefcountSaturation, string>> = {
  ADD_NOT_ZERO_OVF: "saturated; leaking memory",
  ADD_OVF: "saturated; leaking memory",
  ADD_UAF: "addition on 0; use-after-free",
  SUB_UAF: "underflow; use-after-free",
  DEC_LEAK: "decrement hit 0; leaking memory",
};

/** One saturation event, as passed to a {@link RefcountReporter}. */
export interface RefcountEvent {
  readonly type: RefcountSaturation;
  /** `"refcount_t: <message>."`, as the kernel prints it. */
  readonly message: string;
  /** The name of the object the counter belongs to, when it has one. */
  readonly owner: string | undefined;
}

/**
 * Receives every saturation event. It runs after the counter has been saturated, so the
 * counter is safe whatever the reporter does; a reporter that throws aborts the caller's
 * operation.
 */
export type RefcountReporter = (event: RefcountEvent) => void;

/**
 * The default reporter: throws a {@link DevrefError} (`EFAULT` for use-after-free and
 * underflow, `EOVERFLOW` for saturation and leaks). A counting bug in a model is a bug in
 * the driver under test, so it stops the test where it happened instead of scrolling by
 * as the kernel's one-time warning does.
 */
export const throwingRefcountReporter: RefcountReporter = (event) => {
  const uaf = event.type === "ADD_UAF" || event.type === "SUB_UAF";
  throw new DevrefError(
    uaf ? "EFAULT" : "EOVERFLOW",
    `${event.owner === undefined ? "" : `${event.owner}: `}${event.message} ` +
      (uaf
        ? "A reference was taken or dropped after the count reached zero: take references only from a live owned reference, and drop each exactly once."
        : "The counter is saturated and the object will never be freed: look for a get without a matching put."),
    { details: { type: event.type } },
  );
};

// module-state: the process-wide default reporter. Counters of a machine's objects use the
// machine's own reporter when it set one (RefcountSettings); this is the fallback.
let reporter: RefcountReporter = throwingRefcountReporter;

/** Where a counter looks for its reporter first (a machine's ownership settings). */
export interface RefcountSettings {
  /** The reporter for these counters; null falls back to the process-wide one. */
  readonly refcountReporter: RefcountReporter | null;
}

/**
 * Replaces the process-wide reporter and returns the previous one, so a test can
 * collect events and put the old reporter back.
 */
export function setRefcountReporter(next: RefcountReporter): RefcountReporter {
  if (typeof next !== "function") {
    throw new DevrefError(
      "EINVAL",
      `setRefcountReporter: next must be a function, not ${describeValue(next)}`,
    );
  }
  const previous = reporter;
  reporter = next;
  return previous;
}

function checkAmount(where: string, i: unknown): void {
  checkInteger(where, "i", i, 1, REFCOUNT_MAX);
}

/**
 * A saturating reference counter with `refcount_t` semantics on a signed 32-bit value.
 *
 * **Invariants:** once saturated the value stays {@link REFCOUNT_SATURATED}; an increment
 * from zero, an overflow, an underflow and a plain decrement to zero are never silently
 * accepted: each saturates the counter and is reported.
 *
 * **Errors:** whatever the current {@link RefcountReporter} throws (by default a
 * {@link DevrefError}, see {@link throwingRefcountReporter}).
 *
 * @example
 * ```ts
 * const r = new Refcount(1);
 * r.inc();           // 2
 * r.decAndTest();    // false, 1
 * r.decAndTest();    // true: the caller frees the object
 * ```
 */
export class Refcount {
  // A plain property: see RawDevice on #private fields and construction speed.
  private count: number;
  /** Name used in reports. */
  owner: string | undefined;
  private readonly settings: RefcountSettings | undefined;

  constructor(initial = 1, owner?: string, settings?: RefcountSettings) {
    if (owner !== undefined && typeof owner !== "string") {
      throw new DevrefError(
        "EINVAL",
        `Refcount: owner must be a string, not ${describeValue(owner)}`,
      );
    }
    if (
      typeof initial !== "number" ||
      !Number.isInteger(initial) ||
      initial < 0 ||
      initial > REFCOUNT_MAX
    ) {
      throw new DevrefError(
        "EINVAL",
        `initial count ${describeValue(initial)} must be a whole number in [0, REFCOUNT_MAX]`,
      );
    }
    this.count = initial;
    this.owner = owner;
    this.settings = settings;
  }

  /** The current value (`refcount_read`). */
  get value(): number {
    return this.count;
  }

  /** Whether the counter has saturated and the object is leaked for good. */
  get saturated(): boolean {
    return this.count === REFCOUNT_SATURATED;
  }

  /** `refcount_set`: for initialisation only. */
  set(value: number): void {
    if (
      typeof value !== "number" ||
      !Number.isInteger(value) ||
      value < 0 ||
      value > REFCOUNT_MAX
    ) {
      throw new DevrefError(
        "EINVAL",
        `count ${describeValue(value)} must be a whole number in [0, REFCOUNT_MAX]`,
      );
    }
    this.count = value;
  }

  #saturate(type: RefcountSaturation): void {
    this.count = REFCOUNT_SATURATED;
    const report = this.settings?.refcountReporter ?? reporter;
    report({ type, message: `refcount_t: ${REFCOUNT_MESSAGES[type]}.`, owner: this.owner });
  }

  /** `refcount_inc`. */
  inc(): void {
    const old = this.count;
    if (old > 0 && old < REFCOUNT_MAX) {
      this.count = old + 1;
      return;
    }
    this.#addSlow(old, 1);
  }

  /**
   * `refcount_add`: adds `i`.
   *
   * **Errors:** `EINVAL` unless `i` is a whole number in [1, REFCOUNT_MAX] (the count is
   * unchanged then).
   */
  add(i: number): void {
    checkAmount("refcount_add", i);
    this.#addSlow(this.count, i);
  }

  #addSlow(old: number, i: number): void {
    const next = (old + i) | 0;
    this.count = next;
    if (old === 0) this.#saturate("ADD_UAF");
    else if (old < 0 || next < 0) this.#saturate("ADD_OVF");
  }

  /** `refcount_inc_not_zero`: increments unless the count is zero; returns whether it did. */
  incNotZero(): boolean {
    return this.addNotZero(1);
  }

  /** `refcount_add_not_zero`. Errors as {@link add}. */
  addNotZero(i: number): boolean {
    if (i !== 1) checkAmount("refcount_add_not_zero", i);
    const old = this.count;
    if (old === 0) return false;
    const next = (old + i) | 0;
    this.count = next;
    if (old < 0 || next < 0) this.#saturate("ADD_NOT_ZERO_OVF");
    return true;
  }

  /** `refcount_dec_and_test`: decrements; returns true exactly when the count reached zero. */
  decAndTest(): boolean {
    const old = this.count;
    if (old > 1) {
      this.count = old - 1;
      return false;
    }
    return this.subAndTest(1);
  }

  /** `refcount_sub_and_test`. Errors as {@link add}. */
  subAndTest(i: number): boolean {
    if (i !== 1) checkAmount("refcount_sub_and_test", i);
    const old = this.count;
    const next = (old - i) | 0;
    this.count = next;
    if (old === i) return true;
    if (old <= 0 || next < 0) this.#saturate("SUB_UAF");
    return false;
  }

  /** `refcount_dec`: a decrement that must not reach zero (the caller is not the last holder). */
  dec(): void {
    const old = this.count;
    this.count = (old - 1) | 0;
    if (old <= 1) this.#saturate("DEC_LEAK");
  }
}
