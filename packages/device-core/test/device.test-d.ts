import {
  type Device,
  type DeviceLink,
  Devres,
  deviceLinkAdd,
  type IrqLine,
  Revocable,
} from "@devref/device-core";
import { type ARef, type Borrowed, type Bound, type Core, withBorrow } from "@devref/raw-device";
import { describe, expectTypeOf, it } from "vitest";
import { bindByHand, makeDevice } from "./fixture.js";

declare function needsBound<S>(dev: Borrowed<Device<Bound>, S>): void;

describe("device-core ownership promises at compile time", () => {
  it("a Normal owned reference cannot call bound-only or core-only APIs", () => {
    const { dev } = makeDevice("t0");
    // @ts-expect-error devres needs a Bound borrow: an owned reference says nothing about binding
    dev.devmAddAction(() => {});
    // @ts-expect-error groups too
    dev.devresOpenGroup();
    // @ts-expect-error DMA masks are set from probe (Core), not through a kept reference
    dev.setDmaMask(32);
    // @ts-expect-error a Devres is created only with proof of binding
    new Devres(dev, 1);
    // Reading state is fine for any handle.
    expectTypeOf(dev.lifecycle).toBeString();
    expectTypeOf(dev.dmaMaskBits).toEqualTypeOf<number | null>();
  });

  it("a Normal borrow cannot either", () => {
    const { dev } = makeDevice("t1");
    withBorrow(dev, (d) => {
      // @ts-expect-error a Normal borrow does not prove a driver is bound
      d.devmAddAction(() => {});
      // @ts-expect-error nor does it allow Devres
      new Devres(d, 1);
    });
  });

  it("a Core borrow may do everything; Core derefs to Bound", () => {
    const { dev } = makeDevice("t2");
    bindByHand(dev, "drv", (d) => {
      d.devmAddAction(() => {});
      d.setDmaMask(32);
      needsBound(d);
      const r = new Devres(d, { x: 1 });
      expectTypeOf(r.access(d)).toEqualTypeOf<{ x: number }>();
    });
  });

  it("Devres unchecked access demands a Bound borrow", () => {
    const { dev } = makeDevice("t3");
    const res = bindByHand(dev, "drv", (d) => new Devres(d, 7));
    // @ts-expect-error access() is the fast path: it needs a Bound borrow as proof, not an ARef
    res.access(dev);
    withBorrow(dev, (d) => {
      // @ts-expect-error a Normal borrow is no proof either
      res.access(d);
    });
    // The checked paths need no proof.
    expectTypeOf(res.tryAccess()).toEqualTypeOf<number | undefined>();
    expectTypeOf(res.accessChecked()).toEqualTypeOf<number>();
    expectTypeOf(new Revocable("s").tryAccess()).toEqualTypeOf<string | undefined>();
  });

  it("a Core borrow cannot be kept where an owned reference is expected", () => {
    const { dev } = makeDevice("t4");
    class Keeper {
      dev: ARef<Device> | undefined;
    }
    const k = new Keeper();
    bindByHand(dev, "drv", (d) => {
      // @ts-expect-error a borrow is not an ARef: keeping the device needs d.get()
      k.dev = d;
      k.dev = d.get("keeper");
    });
    // @ts-expect-error returning the Core borrow lets it escape its scope
    bindByHand(dev, "drv", (d) => d);
    expectTypeOf<ARef<Device<Core>>>().toBeNever();
  });

  it("get() on a device handle yields an owned Device", () => {
    const { dev } = makeDevice("t5");
    expectTypeOf(dev.get("x")).toEqualTypeOf<ARef<Device>>();
    expectTypeOf(dev.getParent("x")).toEqualTypeOf<ARef<Device> | null>();
  });

  it("interrupt masking needs a Bound borrow; a device link keeps no handle a caller could take", () => {
    const { dev } = makeDevice("t6");
    const line: IrqLine = { domain: "aic", hwirq: 1, name: "x" };
    // @ts-expect-error masking a line is for the driver that requested it: an owned reference says nothing about binding
    dev.disableIrq(line);
    // @ts-expect-error nor may it unmask
    dev.enableIrq(line);
    withBorrow(dev, (d) => {
      // @ts-expect-error a Normal borrow does not prove a binding either
      d.disableIrqNosync(line);
    });
    // Links name their ends; the references they hold are their own.
    expectTypeOf<DeviceLink["consumer"]>().toEqualTypeOf<string>();
    expectTypeOf<DeviceLink["supplier"]>().toEqualTypeOf<string>();
    expectTypeOf<keyof DeviceLink>().toEqualTypeOf<
      "consumer" | "supplier" | "flags" | "state" | "stateName" | "deleted" | "managed"
    >();
    // Any live handle can be linked, owned or borrowed; the result may be null, as in C.
    expectTypeOf(deviceLinkAdd(dev, dev, 0)).toEqualTypeOf<DeviceLink | null>();
  });
});
