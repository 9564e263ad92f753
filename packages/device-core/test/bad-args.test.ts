// Issue 8, item 18: every export of @devref/device-core, called with wrong-typed and
// out-of-range arguments, succeeds or throws a DevrefError, and the machine's audit holds.
import * as deviceCore from "@devref/device-core";
import {
  auditDevices,
  Devres,
  IrqDomain,
  Machine,
  RegisterFile,
  Revocable,
} from "@devref/device-core";
import { DevrefError } from "@devref/raw-device";
import { describe, expect, it } from "vitest";
import { sweepExports } from "../../../scripts/bad-args.js";
import { bindByHand, makeDevice } from "./fixture.js";

describe("item 18: wrong arguments to every export", () => {
  it("are a DevrefError or a success, never another exception, and corrupt nothing", async () => {
    const machine = new Machine({ name: "swept", logSink: () => {} });
    const made = makeDevice("swept0");
    const bad = await sweepExports({
      module: deviceCore,
      expected: DevrefError,
      skip: [
        // Change the default machine's settings for good; checked by their own tests.
        "setLogSink",
        "configureDevresDebug",
        // Prints to the console by design.
        "consoleSink",
      ],
      instances: () => ({
        machine,
        device: made.dev,
        domain:
          IrqDomain.find(machine, "sweep") ?? new IrqDomain({ machine, name: "sweep", size: 8 }),
        registers: new RegisterFile(64),
        revocable: new Revocable(1),
      }),
      skipMembers: [
        "device.put",
        "device.clone",
        "device.get",
        "device.getParent",
        "machine.setLogSink",
        "machine.configureDevresDebug",
        "machine.claimName",
      ],
      check: () => {
        // Nothing the sweep did leaves a device behind but the sample one.
        expect(
          auditDevices().filter((a) => a.name !== "swept0" && a.name.startsWith("swept")),
        ).toEqual([]);
        expect(made.dev.isLive).toBe(true);
      },
      runs: 800,
    });
    expect(bad).toEqual([]);
    made.dev.put();
    expect(made.releases()).toBe(1);
  });

  it("bound-context APIs refuse wrong arguments before registering anything", () => {
    const { dev } = makeDevice("swept1");
    bindByHand(dev, "drv", (d) => {
      for (const bad of [undefined, null, 5, "x", {}]) {
        if (bad === null) expect(() => new Devres(d, 1, bad as never)).toThrowError(DevrefError);
        // SAFETY: deliberately wrong-typed, as untyped callers can pass them.
        expect(() => d.devmAddAction(bad as never)).toThrowError(DevrefError);
        expect(() => d.requestIrq(bad as never, () => "none")).toThrowError(DevrefError);
        expect(() => d.devmCallback(bad as never)).toThrowError(DevrefError);
        // Options may be absent or an empty object; anything else is refused.
        if (bad !== undefined && typeof bad !== "object") {
          expect(() => new Devres(d, 1, bad as never)).toThrowError(DevrefError);
        }
      }
      expect(deviceCore.devresLabels(d)).toEqual([]);
    });
    dev.put();
  });

  it("regression (sweep seed 3): RegisterFile's lane helpers are not callable from outside", () => {
    // They took a mask from their caller and shifted by it: with a symbol, a TypeError.
    const regs = new deviceCore.RegisterFile(16);
    for (const name of ["lane", "merge"]) expect(name in regs).toBe(false);
    regs.write8(1, 0xab);
    expect(regs.read8(1)).toBe(0xab);
    expect(regs.read16(0)).toBe(0xab00);
    expect(() => regs.write16(2, Symbol("v") as never)).toThrowError(DevrefError);
  });
});
