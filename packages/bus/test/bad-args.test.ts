// Issue 8, items 17 and 18: every export of @devref/bus, called with wrong-typed and
// out-of-range arguments, succeeds or throws a DevrefError, and no phantom device is left.
import * as bus from "@devref/bus";
import { definePciDriver, definePlatformDriver, PciBus, PlatformBus } from "@devref/bus";
import { auditDevices, Machine } from "@devref/device-core";
import { DevrefError } from "@devref/raw-device";
import { describe, expect, it } from "vitest";
import { sweepExports } from "../../../scripts/bad-args.js";

describe("item 18: wrong arguments to every export", () => {
  it("are a DevrefError or a success, never another exception, and leave no phantom device", async () => {
    const machine = new Machine({ name: "swept", logSink: () => {} });
    const platform = new PlatformBus({ machine });
    const pci = new PciBus({ machine });
    const slot = pci.addSlot("s0", 3);
    const plat = platform.register({ name: "sample", mem: [{ start: 0x1000, size: 0x100 }] });
    const func = pci.register({
      slot: 1,
      vendor: 1,
      device: 2,
      classCode: 0,
      bars: [{ size: 0x100 }],
    });
    const pdrv = definePlatformDriver({ name: "swept-drv", probe: () => null });
    const cdrv = definePciDriver({
      name: "swept-pci",
      idTable: [{ vendor: 1 }],
      probe: () => null,
    });
    const samples = new Set(["sample", func.name]);
    const bad = await sweepExports({
      module: bus,
      expected: DevrefError,
      instances: () => ({ platform, pci, slot, plat, func, pdrv, cdrv }),
      skipMembers: [
        "plat.put",
        "plat.get",
        "plat.clone",
        "plat.getParent",
        "func.put",
        "func.get",
        "func.clone",
        "func.getParent",
        "slot.device",
      ],
      check: () => {
        // Only the samples, on this machine; nothing created half-way by a refused call.
        const left = auditDevices(machine)
          .map((a) => a.name)
          .filter((n) => !samples.has(n));
        expect(left).toEqual([]);
      },
      runs: 800,
    });
    expect(bad).toEqual([]);
    platform.unregister(plat);
    pci.unregister(func);
    expect(auditDevices(machine)).toEqual([]);
  });

  it("regression (sweep seed 99): an object with no prototype as the base class's name gets EINVAL", () => {
    // BusType is abstract in the types, but JavaScript can call it: its messages must not
    // turn a value into a string with String(), which throws for a null-prototype object.
    const Base = bus.BusType as unknown as new (...args: unknown[]) => unknown;
    const nameless = Object.create(null);
    try {
      new Base({ length: -1 }, nameless, "x", [1, 2, 3], 1);
      expect.unreachable("the base constructor accepted a name with no prototype");
    } catch (e) {
      expect(DevrefError.is(e, "EINVAL")).toBe(true);
      expect((e as DevrefError).message).toMatch(
        /a bus name is made of letters, digits and _ . -, not an object/,
      );
    }
  });
});
