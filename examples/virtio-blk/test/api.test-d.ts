// Type promises of the driver's public side.
import type { PciDevice, PciDriver } from "@devref/bus";
import type { Bound, Static } from "@devref/raw-device";
import type { Scenario, Soc } from "@devref/sim";
import { describe, expectTypeOf, it } from "vitest";
import {
  type DriverTimers,
  type VirtioBlkDisk,
  type VirtioBlkDriver,
  type VirtioBlkDriverOptions,
  type VirtioBlkState,
  type VirtioBlkStats,
  virtioBlkScenario,
} from "../src/index.js";

describe("virtio-blk type promises", () => {
  it("the block API returns promises of bytes, nothing and strings", () => {
    expectTypeOf<VirtioBlkDisk["read"]>().returns.toEqualTypeOf<Promise<Uint8Array>>();
    expectTypeOf<VirtioBlkDisk["write"]>().returns.toEqualTypeOf<Promise<void>>();
    expectTypeOf<VirtioBlkDisk["flush"]>().returns.toEqualTypeOf<Promise<void>>();
    expectTypeOf<VirtioBlkDisk["getId"]>().returns.toEqualTypeOf<Promise<string>>();
    expectTypeOf<VirtioBlkDisk["write"]>().parameter(1).toEqualTypeOf<Uint8Array>();
    expectTypeOf<VirtioBlkDisk["state"]>().toEqualTypeOf<VirtioBlkState>();
    expectTypeOf<VirtioBlkDisk["stats"]>().toEqualTypeOf<VirtioBlkStats>();
  });

  it("the driver is a static PCI driver whose data is the disk", () => {
    expectTypeOf<VirtioBlkDriver["driver"]>().toEqualTypeOf<Static<PciDriver<VirtioBlkDisk>>>();
    expectTypeOf<VirtioBlkDriver["disk"]>().returns.toEqualTypeOf<VirtioBlkDisk>();
  });

  it("the simulator's event queue serves as the driver's timers; timers are required", () => {
    expectTypeOf<Soc["events"]>().toMatchTypeOf<DriverTimers>();
    // @ts-expect-error the driver needs timers for its bounded waits
    const noTimers: VirtioBlkDriverOptions = {};
    void noTimers;
    // @ts-expect-error only "msix" and "intx" are interrupt modes
    const badIrq: VirtioBlkDriverOptions = { timers: {} as DriverTimers, irq: "msi" };
    void badIrq;
  });

  it("the disk holds no device handle anyone could reach", () => {
    // A disk is not a device: it cannot be passed where a PCI device borrow is wanted.
    expectTypeOf<VirtioBlkDisk>().not.toMatchTypeOf<PciDevice<Bound>>();
    // Its constructor wants a Bound borrow (a probe's); an owned, unbound handle will not do.
    type Arg = ConstructorParameters<typeof VirtioBlkDisk>[0];
    expectTypeOf<Arg>().toEqualTypeOf<PciDevice<Bound>>();
    expectTypeOf<PciDevice>().not.toMatchTypeOf<Arg>();
  });

  it("the scenario is a sim Scenario", () => {
    expectTypeOf(virtioBlkScenario).toEqualTypeOf<Scenario>();
  });
});
