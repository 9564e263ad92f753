// Issue 9: two machines in one process, each with its own devices, buses, deferred probes,
// log, interrupt domains and audit, never see each other.
import { definePlatformDriver, PlatformBus } from "@devref/bus";
import {
  auditDevices,
  createDevice,
  devErrProbe,
  deviceTree,
  IrqDomain,
  type LogRecord,
  Machine,
} from "@devref/device-core";
import { describe, expect, it } from "vitest";

function board(name: string) {
  const log: LogRecord[] = [];
  const machine = new Machine({ name, logSink: (r) => log.push(r) });
  const bus = new PlatformBus({ machine });
  const aic = new IrqDomain({ machine, name: "aic", size: 64 });
  let supplierReady = false;
  const consumer = definePlatformDriver({
    name: "consumer",
    probe: (dev) => {
      if (!supplierReady) throw devErrProbe(dev, "EPROBE_DEFER", `waiting on ${name}'s supplier`);
      dev.requestIrq(0, () => "handled");
      return null;
    },
  });
  const supplier = definePlatformDriver({
    name: "supplier",
    probe: () => {
      supplierReady = true;
      return null;
    },
  });
  return { machine, bus, aic, log, consumer, supplier };
}

describe("two machines in one process", () => {
  it("keep their devices, deferred lists, logs, interrupts and audits apart", async () => {
    const a = board("board-a");
    const b = board("board-b");
    // Same names everywhere: buses, domains and devices are per machine.
    for (const m of [a, b]) m.bus.registerDriver(m.consumer);
    const ca = a.bus.register({
      name: "consumer",
      interrupts: [{ domain: "aic", hwirq: 5, trigger: "edge" }],
    });
    const cb = b.bus.register({
      name: "consumer",
      interrupts: [{ domain: "aic", hwirq: 5, trigger: "edge" }],
    });
    expect(a.machine.deferredDevices()).toEqual([
      { name: "consumer", reason: "waiting on board-a's supplier" },
    ]);
    expect(b.machine.deferredDevices()).toEqual([
      { name: "consumer", reason: "waiting on board-b's supplier" },
    ]);
    // Resolving board A's deferral leaves board B's alone.
    a.bus.registerDriver(a.supplier);
    const sa = a.bus.register({ name: "supplier" });
    await a.bus.settle();
    expect(ca.isBound).toBe(true);
    expect(cb.isBound).toBe(false);
    expect(a.machine.deferredDevices()).toEqual([]);
    expect(b.machine.deferredDevices()).toHaveLength(1);
    // Interrupts: the same line number on each machine reaches only its own device.
    expect(a.aic.raise(5)).toBe(true);
    expect(b.aic.raise(5)).toBe(false);
    expect(a.aic.interrupts()).toEqual(["5: 1 consumer"]);
    expect(b.aic.interrupts()).toEqual([]);
    // Logs: each machine's sink saw only its own lines.
    expect(a.log.every((r) => !r.text.includes("board-b"))).toBe(true);
    expect(b.log.every((r) => !r.text.includes("board-a"))).toBe(true);
    // Audits and trees.
    expect(auditDevices(a.machine).map((d) => d.name)).toEqual(["consumer", "supplier"]);
    expect(auditDevices(b.machine).map((d) => d.name)).toEqual(["consumer"]);
    expect(deviceTree(b.machine)).toBe("consumer [platform, deferred, 2 refs]");
    // A device of one machine cannot join the other's bus or parent.
    expect(() => b.bus.register({ name: "x", parent: ca })).toThrowError(
      /belongs to machine 'board-a'/,
    );
    expect(() =>
      createDevice({ name: "y", parent: cb, machine: a.machine, release: () => {} }),
    ).toThrowError(/belongs to machine 'board-b'/);
    a.bus.unregister(ca);
    a.bus.unregister(sa);
    b.bus.unregister(cb);
    expect(auditDevices(a.machine)).toEqual([]);
    expect(auditDevices(b.machine)).toEqual([]);
  });
});
