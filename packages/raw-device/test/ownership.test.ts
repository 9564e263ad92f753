import {
  configureOwnership,
  DevrefError,
  holders,
  type LeakReport,
  type RefcountEvent,
  refcountOf,
  setRefcountReporter,
} from "@devref/raw-device";
import { BorrowScope, Kobject, liveObject, objectIfLive } from "@devref/raw-device/unsafe";
import { describe, expect, it } from "vitest";
import { inCoreCallback, makeDevice, TestDevice, withBorrow } from "./fixture.js";

describe("owned references", () => {
  it("get increments, put decrements, release runs once at zero", () => {
    const { dev, releases } = makeDevice();
    expect(refcountOf(dev)).toBe(1);
    const a = dev.get("a");
    const b = a.clone("b");
    expect(refcountOf(dev)).toBe(3);
    a.put();
    b[Symbol.dispose]();
    expect(refcountOf(dev)).toBe(1);
    expect(releases()).toBe(0);
    dev.put();
    expect(releases()).toBe(1);
  });

  it("using releases at the end of the block", () => {
    const { dev, releases } = makeDevice();
    {
      using kept = dev.get("block");
      expect(kept.name).toBe("dev0");
      expect(refcountOf(dev)).toBe(2);
    }
    expect(refcountOf(dev)).toBe(1);
    dev.put();
    expect(releases()).toBe(1);
  });

  it("disposing twice is a no-op; using after dispose throws a clear error", () => {
    const { dev, releases } = makeDevice();
    const extra = dev.get("driver-x");
    extra.put();
    extra.put();
    extra[Symbol.dispose]();
    expect(refcountOf(dev)).toBe(1);
    expect(() => extra.name).toThrowError(
      /held by 'driver-x'\) was already put; take a new one with \.get\(\)/,
    );
    try {
      void extra.value;
    } catch (e) {
      expect(DevrefError.is(e, "ENODEV")).toBe(true);
    }
    dev.put();
    expect(releases()).toBe(1);
  });

  it("clone keeps the holder label unless given one", () => {
    const { dev } = makeDevice();
    const a = dev.get("net");
    const b = a.clone();
    const c = a.clone("other");
    expect(holders(dev).map((h) => h.label)).toEqual(["creator", "net", "net", "other"]);
    for (const r of [a, b, c]) r.put();
  });

  it("holders lists live owned references, oldest first", () => {
    const { dev } = makeDevice();
    const iommu = dev.get("iommu");
    const rtkit = dev.get("rtkit");
    expect(holders(dev).map((h) => h.label)).toEqual(["creator", "iommu", "rtkit"]);
    iommu.put();
    expect(holders(dev).map((h) => h.label)).toEqual(["creator", "rtkit"]);
    expect(holders(dev)[0]?.stack).toBeUndefined();
    rtkit.put();
  });

  it("handles can only be made by device packages", () => {
    const { dev } = makeDevice();
    // SAFETY: deliberately bypasses the type check to show the run-time guard.
    const Handle = TestDevice as unknown as new (...args: unknown[]) => TestDevice;
    expect(() => new Handle(Symbol("forged"), {}, null)).toThrowError(
      /made by device packages only/,
    );
    dev.put();
  });
});

describe("borrowed references", () => {
  it("work inside the callback and are revoked after it", () => {
    const { dev } = makeDevice();
    dev.value = 7;
    let smuggled: unknown;
    const seen = withBorrow(dev, (d) => {
      smuggled = d;
      return d.value;
    });
    expect(seen).toBe(7);
    const escaped = smuggled as TestDevice;
    expect(escaped.isLive).toBe(false);
    expect(() => escaped.value).toThrowError(
      /used after its scope ended.*call \.get\('<who keeps it>'\) inside the callback/,
    );
    // The owner's handle is untouched.
    expect(dev.value).toBe(7);
    dev.put();
  });

  it("a borrow smuggled through a closure throws on use", () => {
    const { dev } = makeDevice("smuggle0");
    let later: (() => string) | undefined;
    inCoreCallback(dev, (d) => {
      later = () => d.name;
      expect(later()).toBe("smuggle0");
    });
    expect(() => later?.()).toThrowError(DevrefError);
    expect(() => later?.()).toThrowError(/device 'smuggle0': this borrowed reference/);
    dev.put();
  });

  it("a borrow upgraded with get() outlives the callback", () => {
    const { dev, releases } = makeDevice();
    const kept = inCoreCallback(dev, (d) => d.get("kept"));
    expect(kept.name).toBe("dev0");
    dev.put();
    expect(releases()).toBe(0);
    kept.put();
    expect(releases()).toBe(1);
  });

  it("a borrow is revoked when its callback throws", () => {
    const { dev } = makeDevice();
    let smuggled: unknown;
    expect(() =>
      withBorrow(dev, (d) => {
        smuggled = d;
        throw new Error("probe failed");
      }),
    ).toThrowError("probe failed");
    expect((smuggled as TestDevice).isLive).toBe(false);
    dev.put();
  });

  it("an async callback keeps its borrow until the promise settles", async () => {
    const { dev } = makeDevice();
    let smuggled: unknown;
    const done = withBorrow(dev, async (d) => {
      smuggled = d;
      await Promise.resolve();
      return d.name;
    });
    expect((smuggled as TestDevice).isLive).toBe(true);
    await expect(done).resolves.toBe("dev0");
    expect((smuggled as TestDevice).isLive).toBe(false);
    dev.put();
  });

  it("a borrow cannot be put; it pins the device while its scope is open", () => {
    const { dev } = makeDevice();
    withBorrow(dev, (d) => {
      expect(refcountOf(d)).toBe(2);
      expect(holders(d).map((h) => h.label)).toEqual(["creator", "borrow"]);
      expect(d.isOwned).toBe(false);
      // SAFETY: bypasses the compile-time rule to show the run-time one.
      expect(() => (d as unknown as { put(): void }).put()).toThrowError(/not yours to put/);
    });
    expect(refcountOf(dev)).toBe(1);
    dev.put();
  });

  it("a closed scope refuses new borrows", () => {
    const { dev } = makeDevice();
    const scope = new BorrowScope();
    scope.close();
    expect(() => scope.borrow(dev)).toThrowError(/scope has closed/);
    dev.put();
  });
});

describe("objectIfLive (a hot path's liveness test)", () => {
  it("gives the object of a live handle, owned or borrowed, and null once it ends", () => {
    const { dev } = makeDevice();
    const object = liveObject(dev);
    const a = dev.get("a");
    expect(objectIfLive(a)).toBe(object);
    const copy = Object.assign({}, a);
    a.put();
    expect(objectIfLive(a)).toBeNull();
    expect(objectIfLive(copy)).toBeNull();
    let smuggled: unknown;
    withBorrow(dev, (b) => {
      expect(objectIfLive(b)).toBe(object);
      smuggled = b;
    });
    expect(objectIfLive(smuggled)).toBeNull();
    dev.put();
  });

  it("gives null, never a TypeError, for anything that is not a live handle", () => {
    for (const value of [undefined, null, 0, "dev", Symbol("x"), {}, [], () => 1]) {
      expect(objectIfLive(value)).toBeNull();
    }
    // A forged lifetime whose generation matches but no object behind it.
    expect(objectIfLive({ lifetime: {}, object: undefined })).toBeNull();
  });

  it("look-alikes (fields named like a handle's) get EINVAL from the checks, never a TypeError", () => {
    const lookAlikes = [
      { lifetime: {} },
      { lifetime: {}, object: null },
      { lifetime: { gen: 0 }, gen: 0, object: 7 },
      { lifetime: { gen: 0 }, gen: 0, object: {} },
    ];
    for (const fake of lookAlikes) {
      for (const use of [() => holders(fake as never), () => refcountOf(fake as never)]) {
        try {
          use();
          expect.unreachable("a look-alike was accepted");
        } catch (e) {
          expect(DevrefError.is(e, "EINVAL")).toBe(true);
        }
      }
    }
    for (const fake of lookAlikes.slice(0, 3)) {
      expect(() => liveObject(fake as never)).toThrowError(/expected a device handle/);
    }
  });
});

describe("refcount misuse below the handles", () => {
  it("a device package that puts the kobject twice gets an underflow report, and release stays single", () => {
    const events: RefcountEvent[] = [];
    const previous = setRefcountReporter((e) => events.push(e));
    try {
      let releases = 0;
      const object = new Kobject("raw0", () => releases++, TestDevice);
      object.put();
      object.put();
      object.refcount.inc();
      expect(releases).toBe(1);
      expect(events.map((e) => [e.type, e.owner])).toEqual([
        ["SUB_UAF", "raw0"],
        ["ADD_OVF", "raw0"],
      ]);
      expect(object.refcount.saturated).toBe(true);
    } finally {
      setRefcountReporter(previous);
    }
  });

  it("by default the report throws, naming the object", () => {
    const object = new Kobject("raw1", () => {}, TestDevice);
    object.put();
    expect(() => object.refcount.inc()).toThrowError(
      /raw1: refcount_t: addition on 0; use-after-free\./,
    );
  });
});

describe("debug mode", () => {
  it("records a stack for each holder", () => {
    const previous = configureOwnership({ debug: true });
    try {
      const { dev } = makeDevice();
      const ref = dev.get("traced");
      const traced = holders(dev).find((h) => h.label === "traced");
      expect(traced?.stack).toMatch(/ownership\.test\.ts/);
      ref.put();
      dev.put();
    } finally {
      configureOwnership(previous);
    }
  });
});

describe("leak detection (debug mode)", () => {
  it("reports an owned reference collected without put, with its holder", async () => {
    const gc = (globalThis as { gc?: () => void }).gc;
    expect(gc).toBeTypeOf("function");
    const leaks: LeakReport[] = [];
    const previous = configureOwnership({ debug: true, onLeak: (l) => leaks.push(l) });
    try {
      const { dev } = makeDevice("leaky0");
      (() => {
        dev.get("forgetful-driver"); // dropped on the floor
      })();
      const kept = dev.get("careful-driver");
      for (let i = 0; i < 20 && leaks.length === 0; i++) {
        gc?.();
        await new Promise<void>((resolve) => setImmediate(resolve));
      }
      expect(leaks).toHaveLength(1);
      expect(leaks[0]).toMatchObject({ device: "leaky0", label: "forgetful-driver" });
      expect(leaks[0]?.stack).toMatch(/ownership\.test\.ts/);
      kept.put();
      dev.put();
    } finally {
      configureOwnership(previous);
    }
  });
});
