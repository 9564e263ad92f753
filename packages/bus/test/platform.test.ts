import { defaultIrqDomain, definePlatformDriver, type PlatformDevice } from "@devref/bus";
import {
  auditDevices as auditMachine,
  type Devres,
  devErrProbe,
  devresLabels,
  formatHolders,
  holders,
} from "@devref/device-core";
import { DevresNode, deviceStateOf, devresAdd, RES } from "@devref/device-core/unsafe";
import { type ARef, DevrefError, refcountOf } from "@devref/raw-device";
import { describe, expect, it } from "vitest";
import { captureLog, currentMachine, freshBus, gate, recordEvents } from "./helpers.js";

const deferredDevices = () => currentMachine().deferredDevices();
const auditDevices = () => auditMachine(currentMachine());
const irqs = () => defaultIrqDomain(currentMachine());

describe("binding and notifiers", () => {
  it("sends the kernel's events in order through add, bind, unbind and del", () => {
    const bus = freshBus();
    const events = recordEvents(bus);
    const calls: string[] = [];
    const drv = definePlatformDriver({
      name: "uart",
      ofMatchTable: [{ compatible: "acme,uart" }],
      probe: (dev) => {
        calls.push(`probe ${dev.name}`);
        dev.devmAddAction(() => calls.push("devres"), "clk");
        return { n: 1 };
      },
      remove: (dev, data) => {
        calls.push(`remove ${dev.name} ${data.n}`);
      },
    });
    bus.registerDriver(drv);
    const dev = bus.register({ name: "uart", id: 0, compatible: ["acme,uart"] });
    expect(dev.lifecycle).toBe("bound");
    expect(dev.driverName).toBe("uart");
    bus.unplug(dev);
    expect(events).toEqual([
      "ADD_DEVICE uart.0",
      "BIND_DRIVER uart.0[uart]",
      "BOUND_DRIVER uart.0[uart]",
      "DEL_DEVICE uart.0[uart]",
      "UNBIND_DRIVER uart.0[uart]",
      "UNBOUND_DRIVER uart.0",
      "REMOVED_DEVICE uart.0",
    ]);
    expect(calls).toEqual(["probe uart.0", "remove uart.0 1", "devres"]);
    dev.put();
  });

  it("a failed probe sends DRIVER_NOT_BOUND, rolls devres back, and the next driver tries", () => {
    const bus = freshBus();
    const events = recordEvents(bus);
    const order: string[] = [];
    const log = captureLog();
    const bad = definePlatformDriver({
      name: "bad",
      ofMatchTable: [{ compatible: "acme,x" }],
      probe: (dev) => {
        dev.devmAddAction(() => order.push("a"), "a");
        dev.devmAddAction(() => order.push("b"), "b");
        throw new DevrefError("EIO", "firmware did not answer");
      },
    });
    const good = definePlatformDriver({
      name: "good",
      ofMatchTable: [{ compatible: "acme,x" }],
      probe: (dev) => {
        expect(devresLabels(dev)).toEqual([]);
        return null;
      },
    });
    bus.registerDriver(bad);
    bus.registerDriver(good);
    const dev = bus.register({ name: "x" });
    expect(dev.driverName).toBeNull(); // no compatible: nothing matched
    bus.unregister(dev);
    const dev2 = bus.register({ name: "x2", compatible: ["acme,x"] });
    log.restore();
    expect(log.records.map((r) => r.text)).toEqual([
      `${bus.name} x2: probe with driver bad failed with error -5 (EIO)`,
    ]);
    expect(order).toEqual(["b", "a"]);
    expect(dev2.driverName).toBe("good");
    expect(events.slice(-5)).toEqual([
      "ADD_DEVICE x2",
      "BIND_DRIVER x2[bad]",
      "DRIVER_NOT_BOUND x2[bad]",
      "BIND_DRIVER x2[good]",
      "BOUND_DRIVER x2[good]",
    ]);
    bus.unregister(dev2);
  });

  it("logs a failed probe like the kernel, and a rejected match only at debug level", () => {
    const bus = freshBus();
    const log = captureLog();
    const fail = definePlatformDriver({
      name: "fail",
      probe: () => {
        throw new DevrefError("EINVAL", "bad clock rate");
      },
    });
    const notmine = definePlatformDriver({
      name: "notmine",
      probe: () => {
        throw new DevrefError("ENODEV", "wrong revision");
      },
    });
    bus.registerDriver(fail);
    bus.registerDriver(notmine);
    const a = bus.register({ name: "fail" });
    const b = bus.register({ name: "notmine" });
    log.restore();
    expect(log.records.map((r) => [r.level, r.text])).toEqual([
      ["warn", `${bus.name} fail: probe with driver fail failed with error -22 (EINVAL)`],
      ["dbg", `${bus.name} notmine: probe of notmine rejects match -19: ENODEV: wrong revision`],
    ]);
    bus.unregister(a);
    bus.unregister(b);
  });

  it("matching: override, then compatible (most specific first), then id table, then name", () => {
    const bus = freshBus();
    const infos: string[] = [];
    const mk = (name: string, compat: string[], ids: string[]) =>
      definePlatformDriver<null, string>({
        name,
        ofMatchTable: compat.map((c) => ({ compatible: c, data: `${name}:${c}` })),
        idTable: ids.map((i) => ({ name: i, data: `${name}:id:${i}` })),
        probe: (_dev, info) => {
          infos.push(info ?? `${name}:by-name`);
          return null;
        },
      });
    bus.registerDriver(mk("generic", ["acme,generic"], []));
    bus.registerDriver(mk("specific", ["acme,v2"], ["board-uart"]));
    bus.registerDriver(mk("byname", [], []));
    const d1 = bus.register({ name: "u", id: 1, compatible: ["acme,v2", "acme,generic"] });
    const d2 = bus.register({ name: "u", id: 2, compatible: ["acme,generic"] });
    const d3 = bus.register({ name: "board-uart" });
    const d4 = bus.register({ name: "byname" });
    // driver_override beats every table, and a device with an override matches only that driver.
    const d5 = bus.register({
      name: "u",
      id: 5,
      compatible: ["acme,v2"],
      driverOverride: "byname",
    });
    const d6 = bus.register({
      name: "u",
      id: 6,
      compatible: ["acme,v2"],
      driverOverride: "nosuch",
    });
    expect([d1, d2, d3, d4, d5, d6].map((d) => d.driverName)).toEqual([
      "generic", // registration order decides between drivers; both match d1
      "generic",
      "specific",
      "byname",
      "byname",
      null,
    ]);
    expect(infos).toEqual([
      "generic:acme,generic",
      "generic:acme,generic",
      "specific:id:board-uart",
      "byname:by-name",
      "byname:by-name",
    ]);
    for (const d of [d1, d2, d3, d4, d5, d6]) bus.unregister(d);
  });

  it("OF matching prefers the device's most specific compatible within a driver", () => {
    const bus = freshBus();
    const seen: (string | undefined)[] = [];
    bus.registerDriver(
      definePlatformDriver<null, string>({
        name: "dart",
        ofMatchTable: [
          { compatible: "apple,t8103-dart", data: "t8103" },
          { compatible: "apple,t6000-dart", data: "t6000" },
        ],
        probe: (_d, info) => {
          seen.push(info);
          return null;
        },
      }),
    );
    const d = bus.register({
      name: "dart",
      id: 0,
      compatible: ["apple,t6000-dart", "apple,t8103-dart"],
    });
    expect(seen).toEqual(["t6000"]);
    bus.unregister(d);
  });

  it("driver override, unbind and probe on demand; bind by hand with errors", async () => {
    const bus = freshBus();
    const a = definePlatformDriver({
      name: "a",
      ofMatchTable: [{ compatible: "x" }],
      probe: () => "A",
    });
    const b = definePlatformDriver({ name: "b", probe: () => "B" });
    bus.registerDriver(a);
    bus.registerDriver(b);
    const dev = bus.register({ name: "dev", compatible: ["x"] });
    expect(dev.driverName).toBe("a");
    bus.setDriverOverride(dev, "b");
    expect(dev.driverName).toBe("a"); // the override does not rebind by itself
    expect(bus.unbind(dev)).toBe(true);
    expect(bus.unbind(dev)).toBe(false);
    expect(await bus.probe(dev)).toBe(true);
    expect(dev.driverName).toBe("b");
    await expect(bus.bind(dev, a)).rejects.toThrowError(/already bound with driver 'b'/);
    bus.unbind(dev);
    await expect(bus.bind(dev, a)).rejects.toThrowError(/does not match driver 'a'/);
    bus.setDriverOverride(dev, "");
    await bus.bind(dev, a);
    expect(dev.driverName).toBe("a");
    withBound(dev, a);
    expect(() => bus.setDriverOverride(dev, "two words")).toThrowError(/without spaces/);
    bus.unregister(dev);
  });

  it("bind rejects with the probe's error as cause", async () => {
    const bus = freshBus();
    const log = captureLog();
    const drv = definePlatformDriver({
      name: "flaky",
      probe: () => {
        throw new DevrefError("EIO", "link training failed");
      },
    });
    bus.registerDriver(drv);
    const dev = bus.register({ name: "flaky" });
    const err = await bus.bind(dev, drv).catch((e: unknown) => e);
    log.restore();
    expect(DevrefError.is(err, "ENODEV")).toBe(true);
    expect((err as Error).cause).toBeInstanceOf(DevrefError);
    expect(((err as Error).cause as DevrefError).code).toBe("EIO");
    bus.unregister(dev);
  });

  it("unregistering a driver unbinds its devices, newest first", () => {
    const bus = freshBus();
    const removed: string[] = [];
    const drv = definePlatformDriver({
      name: "led",
      probe: (dev) => dev.name,
      remove: (_dev, data) => {
        removed.push(data);
      },
    });
    const reg = bus.registerDriver(drv);
    const devs = [0, 1, 2].map((id) => bus.register({ name: "led", id }));
    expect(drv.boundDevices()).toEqual(["led.0", "led.1", "led.2"]);
    expect(() => bus.registerDriver(drv)).toThrowError(/already registered/);
    reg[Symbol.dispose]();
    expect(removed).toEqual(["led.2", "led.1", "led.0"]);
    expect(devs.map((d) => d.lifecycle)).toEqual(["unbound", "unbound", "unbound"]);
    expect(drv.isRegistered).toBe(false);
    // Registering again binds again.
    bus.registerDriver(drv);
    expect(devs.map((d) => d.driverName)).toEqual(["led", "led", "led"]);
    bus.unregisterDriver(drv);
    for (const d of devs) bus.unregister(d);
  });

  it("driver data is handed to remove and disposed after it; drvdata is typed", () => {
    const bus = freshBus();
    const order: string[] = [];
    class Data {
      constructor(readonly name: string) {}
      [Symbol.dispose](): void {
        order.push(`dispose ${this.name}`);
      }
    }
    const drv = definePlatformDriver({
      name: "dd",
      probe: (dev) => {
        dev.devmAddAction(() => order.push("devres"), "x");
        return new Data(dev.name);
      },
      remove: (dev, data) => {
        order.push(`remove ${data.name}`);
        expect(drv.drvdata(dev).name).toBe("dd");
      },
    });
    bus.registerDriver(drv);
    const dev = bus.register({ name: "dd" });
    bus.unbind(dev);
    expect(order).toEqual(["remove dd", "dispose dd", "devres"]);
    bus.unregisterDriver(drv);
    bus.unregister(dev);
  });

  it("unbinding from the device's own remove() is refused (it deadlocks in the kernel)", () => {
    const bus = freshBus();
    const log = captureLog();
    const drv = definePlatformDriver({
      name: "selfish",
      probe: () => null,
      remove: (dev) => {
        bus.unbind(dev);
      },
    });
    bus.registerDriver(drv);
    const dev = bus.register({ name: "selfish" });
    bus.unbind(dev);
    log.restore();
    expect(log.records.map((r) => r.text)).toEqual([
      expect.stringMatching(/remove\(\) failed: error -16 \(EBUSY\)/),
    ]);
    expect(dev.lifecycle).toBe("unbound");
    bus.unregister(dev);
  });

  it("refuses bad device descriptions before creating anything", () => {
    const bus = freshBus();
    const before = auditDevices().length;
    expect(() => bus.register({ name: "bad name" })).toThrowError(
      /platform device name is made of .*, not .bad name./,
    );
    expect(() => bus.register({ name: "m", mem: [{ start: 0x1000, size: 3 }] })).toThrowError(
      /positive multiple of 4/,
    );
    expect(() => bus.register({ name: "m", irqs: [-1] })).toThrowError(/spec\.irqs\[0\] must be/);
    // item 17: malformed specs are refused before the device exists (no phantom in the audit).
    for (const bad of [
      { name: "m", compatible: 5 },
      { name: "m", irqs: null },
      { name: "m", mem: [{ start: 0x1000, size: 2 ** 40, backend: 7 }] },
      { name: "m", mem: [{ start: 2 ** 52 - 4096, size: 8192 }] },
      { name: "m", iommus: [{ iommu: 3 }] },
      { name: "m", parent: {} },
      { name: "m", release: "no" },
      null,
    ]) {
      // SAFETY: deliberately malformed, as untyped callers can pass them.
      expect(() => bus.register(bad as never)).toThrowError(DevrefError);
    }
    expect(auditDevices().length).toBe(before);
    // item 17: a large window without a backend costs nothing until written.
    const big = bus.register({ name: "big", mem: [{ start: 0x1_0000_0000, size: 2 ** 31 }] });
    bus.unregister(big);
    const a = bus.register({ name: "same" });
    expect(() => bus.register({ name: "same" })).toThrowError(/already has a device named 'same'/);
    expect(auditDevices().length).toBe(before + 1);
    bus.unregister(a);
    expect(auditDevices().length).toBe(before);
  });
});

function withBound(dev: ARef<PlatformDevice>, drv: { boundDevices(): string[] }): void {
  expect(drv.boundDevices()).toContain(dev.name);
}

describe("probe preconditions", () => {
  it("refuses to probe a device that already holds devres (Resources present before probing)", () => {
    const bus = freshBus();
    const log = captureLog();
    const dev = bus.register({ name: "dirty" });
    // Only a device package can leave a resource on an unbound device (drivers get EPERM).
    const st = deviceStateOf(dev);
    devresAdd(st, new DevresNode("stray", RES, null, () => {}, false));
    let probed = false;
    bus.registerDriver(
      definePlatformDriver({
        name: "dirty",
        probe: () => {
          probed = true;
          return null;
        },
      }),
    );
    log.restore();
    expect(probed).toBe(false);
    expect(log.records.map((r) => r.text)).toEqual([
      `${bus.name} dirty: Resources present before probing`,
    ]);
    bus.unregister(dev); // device_del releases the stray resource
    expect(auditDevices().filter((a) => a.name === "dirty")).toEqual([]);
  });
});

describe("release and hierarchy", () => {
  it("release runs exactly once, after the last holder; the bus holds a reference while registered", () => {
    const bus = freshBus();
    let releases = 0;
    const dev = bus.register({ name: "r", release: () => releases++ });
    expect(holders(dev).map((h) => h.label)).toEqual(["creator", `${bus.name} bus`]);
    const kept = dev.get("iommu");
    bus.unplug(dev);
    expect(holders(dev).map((h) => h.label)).toEqual(["creator", "iommu"]);
    dev.put();
    expect(releases).toBe(0);
    expect(kept.lifecycle).toBe("deleted");
    kept.put();
    expect(releases).toBe(1);
  });

  it("the parent outlives its children; unplug removes children first", () => {
    const bus = freshBus();
    const events = recordEvents(bus);
    const released: string[] = [];
    const soc = bus.register({ name: "soc", release: () => released.push("soc") });
    const kid = bus.register({ name: "kid", parent: soc, release: () => released.push("kid") });
    const grandkid = bus.register({ name: "gk", parent: kid, release: () => released.push("gk") });
    expect(formatHolders(soc)).toBe(`soc: 3 refs (creator, ${bus.name} bus, child kid)`);
    soc.put(); // the creator lets go; the bus and the child keep it
    const again = bus.findDevice("soc", "finder")!;
    bus.unplug(again);
    expect(events.filter((e) => e.startsWith("DEL_DEVICE"))).toEqual([
      "DEL_DEVICE gk",
      "DEL_DEVICE kid",
      "DEL_DEVICE soc",
    ]);
    expect(grandkid.isDisconnected).toBe(true);
    again.put();
    expect(released).toEqual(["soc"]);
    grandkid.put();
    kid.put();
    expect(released).toEqual(["soc", "gk", "kid"]);
  });
});

describe("deferred probe", () => {
  it("a consumer defers until its supplier binds, then is retried", async () => {
    const bus = freshBus();
    let clockReady = false;
    const consumer = definePlatformDriver({
      name: "consumer",
      probe: (dev) => {
        if (!clockReady) throw devErrProbe(dev, "EPROBE_DEFER", "waiting for clock controller");
        return null;
      },
    });
    const supplier = definePlatformDriver({
      name: "supplier",
      probe: () => {
        clockReady = true;
        return null;
      },
    });
    bus.registerDriver(consumer);
    const c = bus.register({ name: "consumer" });
    expect(c.driverName).toBeNull();
    expect(deferredDevices()).toContainEqual({
      name: "consumer",
      reason: "waiting for clock controller",
    });
    bus.registerDriver(supplier);
    const s = bus.register({ name: "supplier" });
    expect(s.isBound).toBe(true);
    expect(c.isBound).toBe(false); // the retry is queued work
    await bus.settle();
    expect(c.isBound).toBe(true);
    expect(deferredDevices().map((d) => d.name)).not.toContain("consumer");
    bus.unregister(c);
    bus.unregister(s);
  });

  it("a cycle stays deferred without spinning; a late trigger retries it", async () => {
    const bus = freshBus();
    let probes = 0;
    let allowed = false;
    const mk = (name: string) =>
      definePlatformDriver({
        name,
        probe: (dev) => {
          probes++;
          if (!allowed) throw devErrProbe(dev, "EPROBE_DEFER", `waiting for the other of ${name}`);
          return null;
        },
      });
    bus.registerDriver(mk("ca"));
    bus.registerDriver(mk("cb"));
    const a = bus.register({ name: "ca" });
    const b = bus.register({ name: "cb" });
    await bus.settle();
    expect(probes).toBe(2);
    expect(deferredDevices().map((d) => d.name)).toEqual(expect.arrayContaining(["ca", "cb"]));
    allowed = true;
    currentMachine().deferredProbeTrigger();
    await bus.settle();
    expect([a.isBound, b.isBound]).toEqual([true, true]);
    expect(probes).toBe(4);
    bus.unregister(a);
    bus.unregister(b);
  });

  it("a bind that happens while a probe is in flight makes the deferring probe retry", async () => {
    const bus = freshBus();
    const g = gate();
    let supplierBound = false;
    bus.registerDriver(
      definePlatformDriver({
        name: "slow-consumer",
        probe: async (dev) => {
          const sawSupplier = supplierBound;
          await g.promise;
          if (!sawSupplier && !supplierBound) throw devErrProbe(dev, "EPROBE_DEFER", "no supplier");
          if (!sawSupplier) throw devErrProbe(dev, "EPROBE_DEFER", "supplier came during probe");
          return null;
        },
      }),
    );
    bus.registerDriver(
      definePlatformDriver({
        name: "sup",
        probe: () => {
          supplierBound = true;
          return null;
        },
      }),
    );
    const c = bus.register({ name: "slow-consumer" });
    const s = bus.register({ name: "sup" }); // binds while the consumer's probe waits
    g.open();
    await bus.settle();
    expect(s.isBound).toBe(true);
    expect(c.isBound).toBe(true); // retried thanks to the trigger count
    bus.unregister(c);
    bus.unregister(s);
  });
});

describe("asynchronous probe and surprise removal", () => {
  it("an async probe binds when it settles; settle() waits for it", async () => {
    const bus = freshBus();
    const events = recordEvents(bus);
    const g = gate<number>();
    bus.registerDriver(
      definePlatformDriver({
        name: "slow",
        probe: async (dev) => {
          const n = await g.promise;
          dev.devmAddAction(() => {}, "late");
          return n;
        },
      }),
    );
    const dev = bus.register({ name: "slow" });
    expect(dev.lifecycle).toBe("probing");
    g.open(7);
    await bus.settle();
    expect(dev.lifecycle).toBe("bound");
    expect(events).toEqual([
      "ADD_DEVICE slow",
      "BIND_DRIVER slow[slow]",
      "BOUND_DRIVER slow[slow]",
    ]);
    bus.unregister(dev);
  });

  it("unplug in the middle of an async probe: borrow revoked, devres rolled back, remove never runs", async () => {
    const bus = freshBus();
    const events = recordEvents(bus);
    const g = gate();
    const order: string[] = [];
    let afterAwait: unknown;
    const disposed: string[] = [];
    const drv = definePlatformDriver({
      name: "nic",
      probe: async (dev) => {
        const regs = dev.ioremapResource(0);
        dev.devmAddAction(() => order.push("irq freed"), "irq");
        await g.promise;
        try {
          dev.devmAddAction(() => {}, "after");
        } catch (e) {
          afterAwait = e;
        }
        expect(regs.tryAccess()).toBeUndefined();
        return { [Symbol.dispose]: () => disposed.push("late data") };
      },
      remove: () => {
        order.push("remove");
      },
    });
    bus.registerDriver(drv);
    let released = 0;
    const dev = bus.register({
      name: "nic",
      mem: [{ start: 0x4000_0000, size: 0x1000 }],
      release: () => released++,
    });
    const holder = dev.get("net stack");
    expect(dev.lifecycle).toBe("probing");
    bus.unplug(dev);
    expect(order).toEqual(["irq freed"]);
    expect(events).toEqual([
      "ADD_DEVICE nic",
      "BIND_DRIVER nic[nic]",
      "DEL_DEVICE nic[nic]",
      "DRIVER_NOT_BOUND nic[nic]",
      "REMOVED_DEVICE nic",
    ]);
    g.open();
    await bus.settle();
    expect(DevrefError.is(afterAwait, "ENODEV")).toBe(true);
    expect(String(afterAwait)).toMatch(/borrowed reference was used after its scope ended/);
    expect(order).toEqual(["irq freed"]); // remove never ran
    expect(disposed).toEqual(["late data"]);
    expect(holder.lifecycle).toBe("deleted");
    expect(holder.name).toBe("nic");
    dev.put();
    expect(released).toBe(0);
    holder.put();
    expect(released).toBe(1);
  });

  it("surprise unplug of a bound device: remove runs once and sees all-ones; access afterwards fails", () => {
    const bus = freshBus();
    const seen: number[] = [];
    let kept: Devres<import("@devref/device-core").MmioRegion> | undefined;
    const drv = definePlatformDriver({
      name: "dma-engine",
      probe: (dev) => {
        const regs = dev.ioremapResource(0);
        regs.access(dev).write32(0x10, 0xabcd);
        seen.push(regs.access(dev).read32(0x10));
        kept = regs;
        return { regs };
      },
      remove: (dev, data) => {
        seen.push(data.regs.access(dev).read32(0x10));
        data.regs.access(dev).write32(0x10, 0); // dropped
      },
    });
    bus.registerDriver(drv);
    const dev = bus.register({ name: "dma-engine", mem: [{ start: 0x5000_0000, size: 0x100 }] });
    const stack = dev.get("dmaengine core");
    bus.unplug(dev);
    expect(seen).toEqual([0xabcd, 0xffff_ffff]);
    expect(kept?.tryAccess()).toBeUndefined();
    expect(() => kept?.accessChecked()).toThrowError(/revoked \(unbind of driver 'dma-engine'\)/);
    expect(stack.isDisconnected).toBe(true);
    expect(refcountOf(stack)).toBe(2);
    stack.put();
    dev.put();
  });

  it("unbinding during an async probe aborts it the same way; the device can bind again", async () => {
    const bus = freshBus();
    const g = gate();
    let calls = 0;
    const removed: number[] = [];
    const drv = definePlatformDriver({
      name: "ab",
      probe: async () => {
        calls++;
        if (calls === 1) await g.promise;
        return calls;
      },
      remove: (_dev, data) => {
        removed.push(data); // only the binding that completed is removed
      },
    });
    bus.registerDriver(drv);
    const dev = bus.register({ name: "ab" });
    expect(bus.unbind(dev)).toBe(true);
    expect(dev.lifecycle).toBe("added"); // the aborted probe never bound
    await bus.bind(dev, drv);
    expect(dev.isBound).toBe(true);
    g.open();
    await bus.settle();
    expect(drv.drvdata).toBeTypeOf("function");
    bus.unregisterDriver(drv);
    expect(removed).toEqual([2]);
    bus.unregister(dev);
  });

  it("a driver registered during a failing async probe gets its turn afterwards", async () => {
    const bus = freshBus();
    const g = gate();
    bus.registerDriver(
      definePlatformDriver({
        name: "first",
        ofMatchTable: [{ compatible: "x,y" }],
        probe: async () => {
          await g.promise;
          throw new DevrefError("ENODEV", "not this revision");
        },
      }),
    );
    const dev = bus.register({ name: "dev", compatible: ["x,y"] });
    const later = definePlatformDriver({
      name: "later",
      ofMatchTable: [{ compatible: "x,y" }],
      probe: () => 1,
    });
    bus.registerDriver(later); // the device is probing: driver_attach skips it for now
    expect(dev.driverName).toBe("first");
    g.open();
    await bus.settle();
    expect(dev.driverName).toBe("later");
    bus.unregister(dev);
  });

  it("MMIO regions: bounds checked, mapped once, unmapped at unbind", () => {
    const bus = freshBus();
    let stash: import("@devref/device-core").MmioRegion | undefined;
    const drv = definePlatformDriver({
      name: "regs",
      probe: (dev) => {
        const r = dev.ioremapResource(0);
        expect(() => dev.ioremapResource(0)).toThrowError(/already mapped/);
        expect(() => dev.ioremapResource(1)).toThrowError(/no memory resource 1/);
        const m = r.access(dev);
        expect(() => m.read32(0x100)).toThrowError(/outside the 256-byte region/);
        expect(() => m.read32(2)).toThrowError(/4-byte aligned/);
        m.write64(8, 2, 1);
        expect(m.read32(8)).toBe(2);
        expect(m.read64(8)).toEqual({ lo: 2, hi: 1 });
        stash = m;
        return r;
      },
    });
    bus.registerDriver(drv);
    const dev = bus.register({ name: "regs", mem: [{ start: 0x1000, size: 0x100 }] });
    expect(dev.resource(0)).toEqual({ name: "mem0", start: 0x1000, size: 0x100 });
    bus.unbind(dev);
    expect(stash?.isMapped).toBe(false);
    expect(() => stash?.read32(0)).toThrowError(/was unmapped when its driver unbound/);
    // The resource can be mapped again by the next binding.
    bus.registerDriver(definePlatformDriver({ name: "regs2", probe: (d) => d.ioremapResource(0) }));
    expect(() => bus.probe(dev)).not.toThrow();
    bus.unregister(dev);
  });
});

describe("re-entrancy", () => {
  it("unregistering from the device's own remove() is refused, and changes nothing", () => {
    const bus = freshBus();
    const log = captureLog();
    let target: ARef<PlatformDevice> | undefined;
    const drv = definePlatformDriver({
      name: "reenter",
      probe: () => null,
      remove: () => {
        if (target === undefined) return;
        const mine = target.clone("remover");
        try {
          bus.unregister(mine);
        } finally {
          mine.put(); // refused: the reference is still the caller's to put
        }
      },
    });
    bus.registerDriver(drv);
    const dev = bus.register({ name: "reenter" });
    target = dev;
    bus.unbind(dev);
    log.restore();
    expect(log.records.map((r) => r.text)).toEqual([
      expect.stringMatching(/remove\(\) failed: error -16 \(EBUSY\)/),
    ]);
    expect(dev.lifecycle).toBe("unbound");
    expect(dev.isRegistered).toBe(true);
    expect(bus.deviceNames()).toEqual(["reenter"]);
    expect(refcountOf(dev)).toBe(2); // creator and bus: the refusal changed nothing
    bus.unregister(dev);
  });

  it("item 19: surprise removal during remove takes the hardware at once and finishes after remove", async () => {
    const bus = freshBus();
    let target: ARef<PlatformDevice> | undefined;
    const seen: string[] = [];
    const drv = definePlatformDriver({
      name: "yank",
      probe: (dev) => ({ regs: dev.ioremapResource(0) }),
      remove: (dev, data) => {
        if (target !== undefined) bus.unplug(target); // the card is pulled mid-remove
        seen.push(`disconnected=${dev.isDisconnected}`);
        seen.push(`read=${data.regs.access(dev).read32(0).toString(16)}`);
      },
    });
    bus.registerDriver(drv);
    const dev = bus.register({ name: "yank", mem: [{ start: 0x1000, size: 0x100 }] });
    target = dev;
    bus.unbind(dev);
    expect(seen).toEqual(["disconnected=true", "read=ffffffff"]);
    expect(dev.isDisconnected).toBe(true);
    await bus.settle();
    await Promise.resolve();
    expect(dev.isRegistered).toBe(false);
    expect(bus.deviceNames()).toEqual([]);
    expect(refcountOf(dev)).toBe(1);
    dev.put();
    expect(auditDevices()).toEqual([]);
  });
});

describe("interrupt lines", () => {
  it("a handler runs with a Bound borrow while bound, shares its line, and never runs after unbind", () => {
    const bus = freshBus();
    const seen: string[] = [];
    let stash: unknown;
    const drv = definePlatformDriver({
      name: "irqdev",
      probe: (dev) => {
        const line = dev.requestIrq(0, (d) => {
          stash = d;
          seen.push(`${d.name} bound=${d.isBound}`);
          return "handled";
        });
        expect(() => dev.requestIrq(3, () => "none")).toThrowError(/no interrupt 3/);
        return { line };
      },
      remove: (dev) => {
        // Still requested during remove, as in the kernel.
        expect(irqs().raise(40)).toBe(true);
        expect(dev.isBound).toBe(false); // unbinding
      },
    });
    bus.registerDriver(drv);
    const a = bus.register({ name: "irqdev", id: 0, irqs: [40] });
    const b = bus.register({ name: "irqdev", id: 1, irqs: [40] });
    expect(irqs().interrupts()).toEqual(["40: 0 irqdev.0, irqdev.1"]);
    expect(irqs().raise(40)).toBe(true);
    expect(seen).toEqual(["irqdev.0 bound=true", "irqdev.1 bound=true"]);
    expect((stash as PlatformDevice).isLive).toBe(false); // the handler's borrow ended with the call
    bus.unbind(a);
    expect(seen.slice(2)).toEqual(["irqdev.0 bound=false", "irqdev.1 bound=true"]);
    expect(irqs().interrupts()).toEqual(["40: 2 irqdev.1"]);
    seen.length = 0;
    bus.unplug(b);
    expect(irqs().raise(40)).toBe(false);
    expect(seen).toEqual(["irqdev.1 bound=false"]); // only from b's remove
    expect(irqs().interrupts()).toEqual([]);
    bus.unregister(a);
    b.put();
  });
});

describe("lookup and iteration", () => {
  it("findDevice takes an owned reference; forEachChild lends borrows", () => {
    const bus = freshBus();
    const parent = bus.register({ name: "p" });
    const kids = [0, 1].map((id) => bus.register({ name: "k", id, parent }));
    const found = bus.findDevice("k.1", "finder");
    expect(found?.name).toBe("k.1");
    expect(holders(found!).map((h) => h.label)).toContain("finder");
    expect(bus.findDevice("nope")).toBeNull();
    const names: string[] = [];
    let smuggled: unknown;
    parent.forEachChild((c) => {
      names.push(c.name);
      smuggled = c;
    });
    expect(names).toEqual(["k.0", "k.1"]);
    expect(() => (smuggled as PlatformDevice).name).toThrowError(/used after its scope ended/);
    found?.put();
    bus.unregister(parent);
    for (const k of kids) k.put();
  });

  it("a driver with suppressBindAttrs refuses bind and unbind on demand", async () => {
    const bus = freshBus();
    const drv = definePlatformDriver({ name: "iommu", suppressBindAttrs: true, probe: () => null });
    bus.registerDriver(drv);
    const dev = bus.register({ name: "iommu" });
    expect(dev.isBound).toBe(true);
    expect(() => bus.unbind(dev)).toThrowError(/does not allow unbind on demand/);
    bus.unregisterDriver(drv); // unregistration still unbinds
    expect(dev.isBound).toBe(false);
    bus.registerDriver(drv);
    bus.unregister(dev);
    const other = bus.register({ name: "iommu2" });
    await expect(bus.bind(other, drv)).rejects.toThrowError(/does not allow bind on demand/);
    bus.unregister(other);
    bus.unregisterDriver(drv);
  });
});
