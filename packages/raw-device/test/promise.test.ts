// Regression tests for the ownership promise (issue 8, items 1–6, 9 and 16): each reproduces
// a way a borrow could be kept, forged or outlive its device, and shows it no longer works.
import {
  type ARef,
  DevrefError,
  holders,
  Refcount,
  refcountOf,
  withBorrow,
} from "@devref/raw-device";
import { CONTEXT_BOUND, requireContext } from "@devref/raw-device/unsafe";
import { describe, expect, it } from "vitest";
import { inCoreCallback, makeDevice, TestDevice } from "./fixture.js";

function codeOf(fn: () => unknown): string {
  try {
    fn();
  } catch (e) {
    if (e instanceof DevrefError) return e.code;
    return `not a DevrefError: ${String(e)}`;
  }
  return "no error";
}

describe("issue 8: ownership", () => {
  it("item 1: a borrow of an owned reference is not itself owned at run time", () => {
    const { dev } = makeDevice();
    withBorrow(dev, (d) => {
      expect(d.isOwned).toBe(false);
      // SAFETY: bypasses the compile-time rule (see promise.test-d.ts) to show the run-time one.
      expect(codeOf(() => (d as unknown as ARef<TestDevice>).put())).toBe("EINVAL");
    });
    expect(refcountOf(dev)).toBe(1);
    dev.put();
  });

  it("item 2: a borrow re-lent through an async withBorrow ends with the scope it came from", async () => {
    const { dev } = makeDevice();
    let release!: () => void;
    const gate = new Promise<void>((r) => {
      release = r;
    });
    let inner: Promise<string> | undefined;
    inCoreCallback(dev, (core) => {
      inner = withBorrow(core, async (d) => {
        await gate;
        return d.name; // the Core scope has closed by now
      });
    });
    release();
    await expect(inner).rejects.toMatchObject({ code: "ENODEV" });
    dev.put();
  });

  it("item 2: a nested scope that ends first leaves its parent working", () => {
    const { dev } = makeDevice("nest0");
    inCoreCallback(dev, (core) => {
      withBorrow(core, (d) => expect(d.name).toBe("nest0"));
      expect(core.name).toBe("nest0");
      withBorrow(core, (d) => expect(d.name).toBe("nest0"));
    });
    expect(refcountOf(dev)).toBe(1);
    dev.put();
  });

  it("item 3: a borrow keeps its device alive when the lender puts its reference", () => {
    const { dev, releases } = makeDevice("pinned0");
    const lender = dev.get("lender");
    dev.put();
    withBorrow(lender, (d) => {
      lender.put();
      expect(releases()).toBe(0);
      expect(d.name).toBe("pinned0");
      d.value = 3;
    });
    expect(releases()).toBe(1);
  });

  it("item 4: a copy of a borrow is revoked with it", () => {
    const { dev } = makeDevice();
    let copy: TestDevice | undefined;
    withBorrow(dev, (d) => {
      copy = Object.assign(Object.create(Object.getPrototypeOf(d)), d);
      expect(copy?.name).toBe("dev0");
    });
    expect(codeOf(() => copy?.name)).toBe("ENODEV");
    dev.put();
  });

  it("item 4: a frozen borrow is still revoked, and a frozen owned reference can be put", () => {
    const { dev, releases } = makeDevice();
    let frozen: TestDevice | undefined;
    withBorrow(dev, (d) => {
      Object.freeze(d);
      frozen = d;
    });
    expect(codeOf(() => frozen?.name)).toBe("ENODEV");
    const owned = Object.freeze(dev.get("frozen"));
    owned.put();
    expect(codeOf(() => owned.name)).toBe("ENODEV");
    dev.put();
    expect(releases()).toBe(1);
  });

  it("item 4: an object made from the prototype alone is not a handle", () => {
    const fake = Object.create(TestDevice.prototype) as TestDevice;
    expect(codeOf(() => fake.name)).toBe("EINVAL");
    expect(codeOf(() => fake.get("x"))).toBe("EINVAL");
    expect(fake.isLive).toBe(false);
  });

  it("item 5: get() makes handles of the device's own class, whatever the prototype says", () => {
    const { dev } = makeDevice();
    let leakedKey: unknown;
    class Thief {
      constructor(key: unknown) {
        leakedKey = key;
      }
    }
    withBorrow(dev, (d) => {
      Object.setPrototypeOf(
        d,
        Object.create(TestDevice.prototype, { constructor: { value: Thief } }),
      );
      const owned = d.get("after-swap");
      expect(owned).toBeInstanceOf(TestDevice);
      expect(leakedKey).toBeUndefined();
      owned.put();
    });
    dev.put();
  });

  it("item 6: holders() and refcountOf() refuse a revoked borrow; clone() after put says ENODEV", () => {
    const { dev } = makeDevice();
    let escaped: TestDevice | undefined;
    withBorrow(dev, (d) => {
      escaped = d;
    });
    expect(codeOf(() => holders(escaped!))).toBe("ENODEV");
    expect(codeOf(() => refcountOf(escaped!))).toBe("ENODEV");
    const ref = dev.get("x");
    ref.put();
    expect(codeOf(() => ref.clone())).toBe("ENODEV");
    dev.put();
  });

  it("item 9: an owned reference cast to a bound context is refused at run time", () => {
    const { dev } = makeDevice();
    expect(codeOf(() => requireContext(dev, CONTEXT_BOUND, "devm_add_action"))).toBe("EPERM");
    withBorrow(dev, (d) => {
      expect(codeOf(() => requireContext(d, CONTEXT_BOUND, "devm_add_action"))).toBe("EPERM");
    });
    inCoreCallback(dev, (d) => {
      expect(requireContext(d, CONTEXT_BOUND, "devm_add_action").name).toBe("dev0");
      // A borrow of a Core borrow keeps its context.
      withBorrow(d, (inner) => {
        expect(requireContext(inner, CONTEXT_BOUND, "devm_add_action").name).toBe("dev0");
      });
    });
    dev.put();
  });

  it("item 16: Refcount.add and subAndTest refuse bad amounts without changing the count", () => {
    const r = new Refcount(3);
    for (const bad of [Number.NaN, undefined, -3, 0, 0.5, "1", 2 ** 31]) {
      // SAFETY: deliberately wrong-typed arguments, as JavaScript callers can pass them.
      expect(codeOf(() => r.add(bad as number))).toBe("EINVAL");
      expect(codeOf(() => r.subAndTest(bad as number))).toBe("EINVAL");
      expect(codeOf(() => r.addNotZero(bad as number))).toBe("EINVAL");
    }
    expect(r.value).toBe(3);
  });

  it("withBorrow refuses a non-function and a non-device before lending", () => {
    const { dev } = makeDevice();
    // SAFETY: deliberately wrong-typed arguments.
    expect(codeOf(() => withBorrow(dev, 5 as unknown as () => void))).toBe("EINVAL");
    // SAFETY: deliberately wrong-typed arguments.
    expect(codeOf(() => withBorrow({} as TestDevice, () => 1))).toBe("EINVAL");
    expect(refcountOf(dev)).toBe(1);
    dev.put();
  });
});
