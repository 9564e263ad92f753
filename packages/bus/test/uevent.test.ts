// uevents beside the bus notifiers, and device_rename,, in the kernel's order (device-model.md §2.3, §2.4, §4.2,
// §4.5, §10): a notifier sees each step first, then udev.
import { definePlatformDriver } from "@devref/bus";
import {
  DL_FLAG_STATELESS,
  deviceLinkAdd,
  deviceLinkDel,
  deviceRename,
  type Uevent,
} from "@devref/device-core";
import { DevrefError } from "@devref/raw-device";
import { describe, expect, it } from "vitest";
import { captureLog, currentMachine, freshBus, recordEvents } from "./helpers.js";

describe("uevents", () => {
  it("add, bind, unbind and remove follow their notifiers; only bind names the driver", () => {
    const bus = freshBus();
    const trace = recordEvents(bus);
    const seen: Uevent[] = [];
    const reg = currentMachine().onUevent((e) => {
      seen.push(e);
      trace.push(`uevent ${e.action} ${e.device}${e.driver === null ? "" : ` DRIVER=${e.driver}`}`);
    });
    bus.registerDriver(
      definePlatformDriver({
        name: "uart",
        ofMatchTable: [{ compatible: "acme,uart" }],
        probe: () => ({}),
      }),
    );
    const soc = bus.register({ name: "soc" });
    const dev = bus.register({ name: "uart0", parent: soc, compatible: ["acme,uart"] });
    bus.unregister(dev);
    expect(trace).toEqual([
      "ADD_DEVICE soc",
      "uevent add soc",
      "ADD_DEVICE uart0",
      "uevent add uart0",
      "BIND_DRIVER uart0[uart]",
      "BOUND_DRIVER uart0[uart]",
      "uevent bind uart0 DRIVER=uart",
      "DEL_DEVICE uart0[uart]",
      "UNBIND_DRIVER uart0[uart]",
      "UNBOUND_DRIVER uart0",
      "uevent unbind uart0",
      "REMOVED_DEVICE uart0",
      "uevent remove uart0",
    ]);
    expect(seen[1]).toEqual({
      action: "add",
      devpath: "/devices/soc/uart0",
      device: "uart0",
      subsystem: "platform",
      driver: null,
      devpathOld: null,
      seqnum: 2,
    });
    expect(seen.map((e) => e.seqnum)).toEqual([1, 2, 3, 4, 5]);
    reg.unregister();
    bus.unregister(soc);
    expect(seen).toHaveLength(5);
  });

  it("a failed probe sends no bind; a listener that throws is logged and the others still run", () => {
    const bus = freshBus();
    const log = captureLog();
    const actions: string[] = [];
    currentMachine().onUevent(() => {
      throw new Error("udev crashed");
    });
    using _reg = currentMachine().onUevent((e) => actions.push(e.action));
    bus.registerDriver(
      definePlatformDriver({
        name: "bad",
        ofMatchTable: [{ compatible: "acme,bad" }],
        probe: () => {
          throw new DevrefError("EIO", "no clock");
        },
      }),
    );
    const dev = bus.register({ name: "bad0", compatible: ["acme,bad"] });
    bus.unregister(dev);
    expect(actions).toEqual(["add", "remove"]);
    expect(
      log.records.some((r) => /uevent listener failed on add: Error: udev crashed/.test(r.text)),
    ).toBe(true);
    log.restore();
    expect(() => currentMachine().onUevent(5 as never)).toThrowError(DevrefError);
  });
});

describe("device_rename", () => {
  it("renames on the bus and for every holder, keeps the bus order, and sends move with the old path", () => {
    const bus = freshBus();
    const moves: Uevent[] = [];
    using _reg = currentMachine().onUevent((e) => {
      if (e.action === "move") moves.push(e);
    });
    const soc = bus.register({ name: "soc" });
    const eth = bus.register({ name: "eth0", parent: soc });
    const other = bus.register({ name: "eth1", parent: soc });
    const link = deviceLinkAdd(eth, other, DL_FLAG_STATELESS)!;
    const kept = eth.get("netdev");
    deviceRename(eth, "wan0");
    expect(kept.name).toBe("wan0");
    expect(bus.deviceNames()).toEqual(["soc", "wan0", "eth1"]);
    expect(bus.findDevice("eth0")).toBeNull();
    expect(link.consumer).toBe("wan0");
    expect(moves).toEqual([
      expect.objectContaining({
        action: "move",
        devpath: "/devices/soc/wan0",
        devpathOld: "/devices/soc/eth0",
      }),
    ]);
    // The old name is free again; a taken one is refused and changes nothing.
    const again = bus.register({ name: "eth0", parent: soc });
    expect(() => deviceRename(eth, "eth1")).toThrowError(/already has a device named 'eth1'/);
    expect(() => deviceRename(eth, "a/b")).toThrowError(/one path element/);
    expect(kept.name).toBe("wan0");
    expect(bus.deviceNames()).toEqual(["soc", "wan0", "eth1", "eth0"]);
    deviceLinkDel(link);
    for (const d of [again, eth, other, soc]) bus.unregister(d);
    expect(() => deviceRename(kept, "gone")).toThrowError(/was deleted/);
    kept.put();
  });
});
