import {
  DevrefError,
  REFCOUNT_MAX,
  REFCOUNT_SATURATED,
  Refcount,
  type RefcountEvent,
  setRefcountReporter,
} from "@devref/raw-device";
import { afterEach, beforeEach, describe, expect, it } from "vitest";

let events: RefcountEvent[] = [];
let previous: ReturnType<typeof setRefcountReporter>;
beforeEach(() => {
  events = [];
  previous = setRefcountReporter((e) => events.push(e));
});
afterEach(() => {
  setRefcountReporter(previous);
});

describe("refcount_t semantics", () => {
  it("counts up and down and reports zero once", () => {
    const r = new Refcount(1);
    r.inc();
    r.add(3);
    expect(r.value).toBe(5);
    expect(r.subAndTest(4)).toBe(false);
    expect(r.decAndTest()).toBe(true);
    expect(r.value).toBe(0);
    expect(events).toEqual([]);
  });

  it("an increment from zero is a use-after-free and saturates", () => {
    const r = new Refcount(0, "obj");
    r.inc();
    expect(r.value).toBe(REFCOUNT_SATURATED);
    expect(events).toEqual([
      { type: "ADD_UAF", message: "refcount_t: addition on 0; use-after-free.", owner: "obj" },
    ]);
  });

  it("inc_not_zero refuses zero without a report", () => {
    const r = new Refcount(0);
    expect(r.incNotZero()).toBe(false);
    expect(r.value).toBe(0);
    expect(events).toEqual([]);
    r.set(2);
    expect(r.incNotZero()).toBe(true);
    expect(r.value).toBe(3);
  });

  it("saturates at overflow instead of wrapping", () => {
    const r = new Refcount(REFCOUNT_MAX);
    r.inc();
    expect(r.value).toBe(REFCOUNT_SATURATED);
    expect(events.map((e) => e.type)).toEqual(["ADD_OVF"]);
    const s = new Refcount(REFCOUNT_MAX - 1);
    expect(s.addNotZero(5)).toBe(true);
    expect(s.value).toBe(REFCOUNT_SATURATED);
    expect(events.map((e) => e.type)).toEqual(["ADD_OVF", "ADD_NOT_ZERO_OVF"]);
  });

  it("stays saturated: increments and decrements do not move it and never free", () => {
    const r = new Refcount(REFCOUNT_MAX);
    r.inc();
    r.inc();
    expect(r.value).toBe(REFCOUNT_SATURATED);
    expect(r.decAndTest()).toBe(false);
    expect(r.value).toBe(REFCOUNT_SATURATED);
    expect(r.saturated).toBe(true);
    expect(events.map((e) => e.type)).toEqual(["ADD_OVF", "ADD_OVF", "SUB_UAF"]);
  });

  it("an underflow is reported, saturates, and does not report zero twice", () => {
    const r = new Refcount(1);
    expect(r.decAndTest()).toBe(true);
    expect(r.decAndTest()).toBe(false);
    expect(r.value).toBe(REFCOUNT_SATURATED);
    expect(events.map((e) => e.message)).toEqual(["refcount_t: underflow; use-after-free."]);
    const s = new Refcount(2);
    expect(s.subAndTest(3)).toBe(false);
    expect(s.saturated).toBe(true);
  });

  it("a plain decrement that reaches zero is a leak", () => {
    const r = new Refcount(2);
    r.dec();
    expect(r.value).toBe(1);
    r.dec();
    expect(r.value).toBe(REFCOUNT_SATURATED);
    expect(events.map((e) => e.type)).toEqual(["DEC_LEAK"]);
  });

  it("rejects bad initial values", () => {
    expect(() => new Refcount(-1)).toThrowError(DevrefError);
    expect(() => new Refcount(1.5)).toThrowError(/whole number/);
    expect(() => new Refcount(REFCOUNT_MAX + 1)).toThrowError(/REFCOUNT_MAX/);
  });
});

describe("the default reporter", () => {
  it("throws EFAULT for use-after-free and EOVERFLOW for saturation, after saturating", () => {
    setRefcountReporter(previous);
    const r = new Refcount(0, "gpu");
    let error: unknown;
    try {
      r.inc();
    } catch (e) {
      error = e;
    }
    expect(DevrefError.is(error, "EFAULT")).toBe(true);
    expect(String(error)).toMatch(
      /gpu: refcount_t: addition on 0; use-after-free\. A reference was taken/,
    );
    expect(r.saturated).toBe(true);
    const big = new Refcount(REFCOUNT_MAX);
    expect(() => big.inc()).toThrowError(expect.objectContaining({ code: "EOVERFLOW" }));
    previous = setRefcountReporter((e) => events.push(e));
  });
});
