// Type-level regression tests for the ownership promise (issue 8, items 1 and 6).
import { type ARef, type Core, withBorrow } from "@devref/raw-device";
import { describe, expectTypeOf, it } from "vitest";
import { inCoreCallback, makeDevice, type TestDevice } from "./fixture.js";

class Keeper {
  kept: ARef<TestDevice>[] = [];
  keep(dev: ARef<TestDevice>): void {
    this.kept.push(dev);
  }
}

describe("issue 8: a borrow of an owned reference is not owned", () => {
  it("item 1: the borrow lent from an ARef is typed without the owned mark", () => {
    const { dev } = makeDevice();
    const keeper = new Keeper();
    withBorrow(dev, (d) => {
      expectTypeOf(d).not.toMatchTypeOf<ARef<TestDevice>>();
      // @ts-expect-error a borrow lent from an owned reference is still only a borrow
      keeper.keep(d);
      keeper.keep(d.get("keeper"));
      // @ts-expect-error a borrow is not an owned reference, whatever it was lent from
      const owned: ARef<TestDevice> = d;
      void owned;
      // @ts-expect-error only owned references can be put
      d.put();
    });
  });

  it("item 1: explicit type arguments cannot make the borrow owned", () => {
    const { dev } = makeDevice();
    // @ts-expect-error T must not carry the owned mark: the borrow would type as an ARef
    withBorrow<ARef<TestDevice>, ARef<TestDevice>>(dev, (d) => d);
  });

  it("item 1: a borrow of a borrow keeps its context and stays a borrow", () => {
    const { dev } = makeDevice();
    inCoreCallback(dev, (core) => {
      withBorrow(core, (d) => {
        expectTypeOf(d).toMatchTypeOf<TestDevice<Core>>();
        // @ts-expect-error still not an owned reference
        new Keeper().keep(d);
      });
    });
  });

  it("item 6: `using` refuses a borrow; clone() is for owned references only", () => {
    const { dev } = makeDevice();
    inCoreCallback(dev, (d) => {
      // @ts-expect-error a borrow has no [Symbol.dispose]: it is not the holder's to put
      using kept = d;
      void kept;
      // @ts-expect-error clone() needs an owned reference
      d.clone();
    });
    using owned = dev.get("block");
    expectTypeOf(owned.clone("again")).toEqualTypeOf<ARef<TestDevice>>();
  });
});
