// uevents beside the bus notifiers, in the kernel's order (device-model.md §2.3, §2.4, §4.2,
// §4.5, §10): a notifier sees each step first, then udev.
import { definePlatformDriver } from "@devref/bus";
import type { Uevent } from "@devref/device-core";
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
