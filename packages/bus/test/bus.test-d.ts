import { definePlatformDriver, PlatformBus, type PlatformDevice } from "@devref/bus";
import type { Devres, IrqSpec, MmioRegion } from "@devref/device-core";
import type { ARef, Borrowed, Core } from "@devref/raw-device";
import { describe, expectTypeOf, it } from "vitest";

interface KeepsDevice {
  readonly dev: ARef<PlatformDevice>;
}

describe("bus ownership promises at compile time", () => {
  it("probe's Core borrow cannot be stored in driver data typed ARef; an owned one can", () => {
    definePlatformDriver<KeepsDevice>({
      name: "bad",
      // @ts-expect-error the Core borrow is not an ARef: keeping it needs dev.get()
      probe: (dev) => ({ dev }),
    });
    definePlatformDriver<KeepsDevice>({
      name: "good",
      probe: (dev) => ({ dev: dev.get("my driver") }),
      remove: (_dev, data) => data.dev.put(),
    });
  });

  it("probe's borrow cannot be returned as driver data of any type", () => {
    definePlatformDriver<{ dev: Borrowed<PlatformDevice<Core>, unknown> }>({
      name: "sneaky",
      // @ts-expect-error the scope is invariant: S is not unknown
      probe: (dev) => ({ dev }),
    });
  });

  it("probe gets a Core platform device and the matched data; remove gets the data", () => {
    const drv = definePlatformDriver<{ regs: Devres<MmioRegion> }, { rev: number }>({
      name: "typed",
      ofMatchTable: [{ compatible: "acme,x", data: { rev: 2 } }],
      probe: (dev, info) => {
        expectTypeOf(info).toEqualTypeOf<{ rev: number } | undefined>();
        dev.setDmaMask(36); // Core
        return { regs: dev.ioremapResource(0) }; // Bound
      },
      remove: (dev, data) => {
        expectTypeOf(data.regs.access(dev)).toEqualTypeOf<MmioRegion>();
      },
    });
    expectTypeOf(drv.drvdata).returns.toEqualTypeOf<{ regs: Devres<MmioRegion> }>();
  });

  it("an owned platform device cannot map MMIO or reach drvdata", () => {
    const platformBus = new PlatformBus();
    const dev = platformBus.register({ name: "t" });
    // @ts-expect-error mapping MMIO needs a Bound borrow (it is tied to a binding)
    dev.ioremapResource(0);
    const drv = definePlatformDriver({ name: "d", probe: () => 1 });
    // @ts-expect-error an interrupt handler is tied to a binding: it needs a Bound borrow
    dev.requestIrq(0, () => "handled");
    // @ts-expect-error drvdata needs proof that the device is bound
    drv.drvdata(dev);
    expectTypeOf(dev.irq).returns.toEqualTypeOf<IrqSpec>();
    expectTypeOf(dev.get()).toEqualTypeOf<ARef<PlatformDevice>>();
  });

  it("notifiers receive a borrow that cannot escape", () => {
    const platformBus = new PlatformBus();
    let kept: ARef<PlatformDevice> | undefined;
    platformBus.registerNotifier((_event, dev) => {
      // @ts-expect-error a notifier's borrow is not an owned reference
      kept = dev;
    });
    expectTypeOf(kept).toEqualTypeOf<ARef<PlatformDevice> | undefined>();
  });
});
