import {
  type ARef,
  type Borrowed,
  type Bound,
  type Core,
  type DmaAddr,
  defineStatic,
  dmaAddr,
  type Iova,
  iova,
  type Normal,
  type PhysAddr,
  physAddr,
  type Static,
  withBorrow,
} from "@devref/raw-device";
import { describe, expectTypeOf, it } from "vitest";
import { inCoreCallback, makeDevice, type TestDevice } from "./fixture.js";

/** A subsystem that keeps a device: it must be given an owned reference. */
class Keeper {
  kept: ARef<TestDevice> | undefined;
  keep(dev: ARef<TestDevice>): void {
    this.kept = dev;
  }
}

/** APIs by context. */
declare function needsBound<S>(dev: Borrowed<TestDevice<Bound>, S>): void;
declare function needsCore<S>(dev: Borrowed<TestDevice<Core>, S>): void;
declare function anyDevice(dev: TestDevice): string;

describe("ownership promises at compile time", () => {
  it("a borrow cannot be passed where an owned reference is kept", () => {
    const { dev } = makeDevice();
    const keeper = new Keeper();
    keeper.keep(dev.get("keeper"));
    inCoreCallback(dev, (d) => {
      // @ts-expect-error a borrow is not an ARef: keeping it needs d.get()
      keeper.keep(d);
      keeper.keep(d.get("keeper"));
    });
  });

  it("a borrow cannot be returned or wrapped out of its callback", () => {
    const { dev } = makeDevice();
    // @ts-expect-error returning the borrow lets it escape its scope
    withBorrow(dev, (d) => d);
    // @ts-expect-error wrapping the borrow in an object lets it escape too
    withBorrow(dev, (d) => ({ d }));
    // @ts-expect-error an array is a wrapper as well
    inCoreCallback(dev, (d) => [d]);
    // Values computed from the borrow may leave.
    expectTypeOf(withBorrow(dev, (d) => d.name)).toEqualTypeOf<string>();
  });

  it("a borrow cannot be stored in a variable typed outside its callback", () => {
    const { dev } = makeDevice();
    let stash: Borrowed<TestDevice<Core>, unknown> | undefined;
    inCoreCallback(dev, (d) => {
      // @ts-expect-error the scope is invariant: S is not unknown
      stash = d;
    });
    expectTypeOf(stash).toEqualTypeOf<Borrowed<TestDevice<Core>, unknown> | undefined>();
  });

  it("context-specific APIs reject the wrong context", () => {
    const { dev } = makeDevice();
    inCoreCallback(dev, (d) => {
      needsCore(d);
      needsBound(d); // Core derefs to Bound
      anyDevice(d); // and to Normal
    });
    withBorrow(dev, (d) => {
      // @ts-expect-error a Normal borrow does not prove a driver is bound
      needsBound(d);
      // @ts-expect-error nor that the device lock is held
      needsCore(d);
      anyDevice(d);
    });
    // @ts-expect-error an owned reference is not a bound-context borrow
    needsBound(dev);
    anyDevice(dev);
  });

  it("only a Normal-context type can be owned", () => {
    expectTypeOf<ARef<TestDevice<Core>>>().toBeNever();
    expectTypeOf<ARef<TestDevice<Bound>>>().toBeNever();
    expectTypeOf<ARef<TestDevice<Normal>>>().not.toBeNever();
  });

  it("get() yields an owned Normal reference; clone() and put() are for owned references", () => {
    const { dev } = makeDevice();
    expectTypeOf(dev.clone()).toEqualTypeOf<ARef<TestDevice>>();
    inCoreCallback(dev, (d) => {
      expectTypeOf(d.get()).toEqualTypeOf<ARef<TestDevice>>();
      // @ts-expect-error clone() needs an owned reference
      d.clone();
      // @ts-expect-error a borrow is not the caller's to put
      d.put();
    });
  });

  it("static objects may be stored freely", () => {
    const bus = defineStatic({ name: "platform" });
    const registry: Static<{ name: string }>[] = [bus];
    // @ts-expect-error a plain object is not marked as program-lifetime
    registry.push({ name: "pci" });
  });

  it("PhysAddr, DmaAddr and Iova are not interchangeable", () => {
    const pa = physAddr(0x1000);
    const da = dmaAddr(0x1000);
    const va = iova(0x1000);
    const takesPhys = (_: PhysAddr): void => {};
    const takesDma = (_: DmaAddr): void => {};
    const takesIova = (_: Iova): void => {};
    takesPhys(pa);
    takesDma(da);
    takesIova(va);
    // @ts-expect-error a DMA address is not a physical address
    takesPhys(da);
    // @ts-expect-error an IOVA is not a DMA address
    takesDma(va);
    // @ts-expect-error a physical address is not an IOVA
    takesIova(pa);
    // @ts-expect-error a plain number must go through a checked constructor
    takesPhys(0x1000);
    expectTypeOf(pa + 4).toEqualTypeOf<number>();
  });
});
