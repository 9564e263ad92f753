// The SoC's device-core Machine: its scheduler is the event queue, so driver-core work,
// asynchronous probes and interrupts all happen when the simulation runs; the "aic" domain
// is bridged to the interrupt controller; settle() waits the way a test must.
import { definePlatformDriver, PlatformBus } from "@devref/bus";
import { auditDevices, devErrProbe, IrqDomain, type LogRecord } from "@devref/device-core";
import { DevrefError } from "@devref/raw-device";
import { describe, expect, it } from "vitest";
import { Soc } from "../src/index.js";

function board(options: { irqStormLimit?: number } = {}) {
  const logs: LogRecord[] = [];
  const soc = new Soc({ name: "board", logSink: (r) => logs.push(r), ...options });
  const platform = new PlatformBus({ machine: soc.machine });
  return { soc, platform, logs };
}

describe("the SoC's machine", () => {
  it("is named, logs to the given sink, runs its work queue on the event queue, and has the aic domain", () => {
    const { soc, logs } = board();
    expect(soc.machine.name).toBe("board");
    expect(soc.machine.scheduler).toBe(soc.events);
    expect(soc.machine.names("irq domain")).toEqual(["aic"]);
    expect(IrqDomain.find(soc.machine, "aic")).toBe(soc.aic);
    expect(soc.aic.size).toBe(soc.irq.lines);
    soc.machine.log("info", "x", null, "hello");
    expect(logs.map((r) => r.text)).toEqual(["x: hello"]);
    expect(new Soc().machine.name).toBe("soc");
    expect(() => new Soc({ name: "" })).toThrowError(DevrefError);
    // SAFETY: a wrong-typed option, to show the run-time check.
    expect(() => new Soc({ logSink: 3 as unknown as () => void })).toThrowError(/logSink/);
  });

  it("deferred probes are retried when the simulation runs, not before", async () => {
    const { soc, platform } = board();
    let ready = false;
    const consumer = definePlatformDriver({
      name: "consumer",
      probe: (dev) => {
        if (!ready) throw devErrProbe(dev, "EPROBE_DEFER", "waiting for the supplier");
        return null;
      },
    });
    const supplier = definePlatformDriver({
      name: "supplier",
      probe: () => {
        ready = true;
        return null;
      },
    });
    platform.registerDriver(consumer);
    platform.registerDriver(supplier);
    const c = platform.register({ name: "consumer" });
    const s = platform.register({ name: "supplier" });
    // The supplier bound at once; the retry of the consumer is an event, not yet run.
    expect(s.isBound).toBe(true);
    expect(c.isBound).toBe(false);
    expect(soc.machine.busy).toBe(true);
    const before = soc.stepCount;
    expect(await soc.settle()).toBe(true);
    expect(c.isBound).toBe(true);
    expect(soc.machine.busy).toBe(false);
    expect(soc.stepCount).toBeGreaterThan(before);
    platform.unregister(c);
    platform.unregister(s);
    expect(auditDevices(soc.machine)).toEqual([]);
  });

  it("an asynchronous probe that waits on virtual time completes inside settle()", async () => {
    const { soc, platform } = board();
    const slow = definePlatformDriver({
      name: "slow",
      probe: async () => {
        await new Promise<void>((resolve) => soc.events.setTimeout(resolve, 2)); // 2 ms
        await new Promise<void>((resolve) => soc.events.after(500, resolve));
        return { at: soc.nowNs };
      },
    });
    platform.registerDriver(slow);
    const dev = platform.register({ name: "slow" });
    expect(dev.isBound).toBe(false);
    expect(soc.machine.busy).toBe(true);
    expect(await soc.settle()).toBe(true);
    expect(dev.isBound).toBe(true);
    expect(soc.nowNs).toBe(2_000_500);
    platform.unregister(dev);
  });

  it("settle() reports a probe that waits forever, stops at its time limit, and refuses endless queues", async () => {
    const { soc, platform } = board();
    let release = (): void => {};
    const stuck = definePlatformDriver({
      name: "stuck",
      // Waits for something outside the simulation (here: the test itself).
      probe: () =>
        new Promise<null>((resolve) => {
          release = () => resolve(null);
        }),
    });
    platform.registerDriver(stuck);
    const dev = platform.register({ name: "stuck" });
    expect(await soc.settle()).toBe(false);
    expect(dev.isBound).toBe(false);
    release();
    expect(await soc.settle()).toBe(true);
    expect(dev.isBound).toBe(true);
    platform.unregister(dev);

    soc.events.after(1_000_000, () => {});
    expect(await soc.settle({ timeoutNs: 1000 })).toBe(false);
    expect(soc.nowNs).toBe(1000);
    const tick = (): void => {
      soc.events.after(10, tick);
    };
    tick();
    await expect(soc.settle({ maxEvents: 50 })).rejects.toThrowError(/EBUSY|50 events ran/);
    await expect(soc.settle({ maxEvents: -1 })).rejects.toThrowError(DevrefError);
  });

  it("the aic domain delivers the controller's lines to requested handlers, level lines until acknowledged", async () => {
    const { soc, platform, logs } = board({ irqStormLimit: 50 });
    const seen: string[] = [];
    let acks = 0;
    const src = soc.irq.source(7, "dev7");
    const drv = definePlatformDriver({
      name: "lvl",
      probe: (dev) => {
        dev.requestIrq(0, (d) => {
          seen.push(`${d.name} at ${soc.nowNs}`);
          if (++acks === 3) src.lower();
          return "handled";
        });
        return null;
      },
    });
    platform.registerDriver(drv);
    const dev = platform.register({
      name: "lvl",
      interrupts: [{ domain: "aic", hwirq: 7, trigger: "level" }],
    });
    expect(soc.irq.isConnected(7)).toBe(true);
    src.raise();
    expect(seen).toEqual([]); // delivery is an event
    expect(await soc.settle()).toBe(true);
    expect(seen).toEqual(["lvl at 0", "lvl at 0", "lvl at 0"]);
    expect(soc.aic.interrupts()).toEqual(["7: 3 lvl"]);
    expect(soc.trace().filter((r) => r.kind === "irq" && r.action === "deliver")).toHaveLength(3);
    // A handler that never acknowledges: the controller's storm detection masks the line.
    src.raise();
    expect(await soc.settle()).toBe(true);
    expect(soc.irq.isMasked(7)).toBe(true);
    expect(soc.trace().some((r) => r.kind === "irq" && r.action === "storm")).toBe(true);
    // Unbinding disconnects the line.
    platform.unregister(dev);
    expect(soc.irq.isConnected(7)).toBe(false);
    expect(logs.filter((r) => r.level === "err")).toEqual([]);
  });

  it("a line nobody handles is disabled by the domain and released at the controller", async () => {
    const { soc, platform, logs } = board();
    const drv = definePlatformDriver({
      name: "deaf",
      probe: (dev) => {
        dev.requestIrq(0, () => "none");
        return null;
      },
    });
    platform.registerDriver(drv);
    const dev = platform.register({
      name: "deaf",
      interrupts: [{ domain: "aic", hwirq: 9, trigger: "edge" }],
    });
    for (let i = 0; i < 120; i++) {
      soc.irq.pulse(9);
      await soc.settle();
    }
    expect(soc.aic.isDisabled(9)).toBe(true);
    expect(soc.irq.isConnected(9)).toBe(false);
    expect(logs.map((r) => r.text)).toEqual([expect.stringMatching(/irq aic:9: nobody cared/)]);
    platform.unregister(dev);
  });

  it("a line the simulator already routes elsewhere refuses the request", () => {
    const { soc, platform } = board();
    soc.irq.connect(12, () => {});
    let err: unknown;
    const drv = definePlatformDriver({
      name: "late",
      probe: (dev) => {
        try {
          dev.requestIrq(0, () => "handled");
        } catch (e) {
          err = e;
        }
        return null;
      },
    });
    platform.registerDriver(drv);
    const dev = platform.register({
      name: "late",
      interrupts: [{ domain: "aic", hwirq: 12, trigger: "level" }],
    });
    expect(DevrefError.is(err, "EBUSY")).toBe(true);
    expect(soc.aic.interrupts()).toEqual([]);
    platform.unregister(dev);
  });
});
