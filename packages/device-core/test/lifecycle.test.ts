import {
  auditDevices,
  createDevice,
  defineAttribute,
  devErrProbe,
  devInfo,
  deviceAdd,
  deviceDel,
  deviceTree,
  deviceUnregister,
  devWarn,
  formatHolders,
  holders,
} from "@devref/device-core";
import { deleteTree, deviceStateOf } from "@devref/device-core/unsafe";
import { DevrefError, refcountOf } from "@devref/raw-device";
import { describe, expect, it } from "vitest";
import { bindByHand, captureLog, makeBusDevice, makeDevice, RecordingBus } from "./fixture.js";

describe("device life cycle", () => {
  it("goes initialized → added → deleted → released, release exactly once", () => {
    const { dev, releases } = makeDevice("soc");
    expect(dev.lifecycle).toBe("initialized");
    deviceAdd(dev);
    expect(dev.lifecycle).toBe("added");
    expect(dev.isRegistered).toBe(true);
    const kept = dev.get("iommu");
    deviceDel(dev);
    expect(dev.lifecycle).toBe("deleted");
    expect(dev.isDead).toBe(true);
    dev.put();
    expect(releases()).toBe(0);
    // A holder still sees a valid (dead) object.
    expect(kept.name).toBe("soc");
    expect(kept.lifecycle).toBe("deleted");
    kept.put();
    expect(releases()).toBe(1);
    kept.put(); // a second put of the same handle is a no-op
    expect(releases()).toBe(1);
  });

  it("an initialized device that is never added is freed by put alone", () => {
    const { dev, releases } = makeDevice("orphan");
    dev.put();
    expect(releases()).toBe(1);
  });

  it("a deleted device is never added again; a registered one is not added twice", () => {
    const { dev } = makeDevice("once");
    deviceAdd(dev);
    expect(() => deviceAdd(dev)).toThrowError(/already registered/);
    deviceDel(dev);
    expect(() => deviceAdd(dev)).toThrowError(/must never be added again; create a new device/);
    expect(() => deviceDel(dev)).toThrowError(/only a registered device can be deleted/);
    dev.put();
  });

  it("requires a release function, loudly", () => {
    // SAFETY: deliberately breaks the type to show the run-time check.
    const bad = { name: "broken" } as unknown as Parameters<typeof createDevice>[0];
    expect(() => createDevice(bad)).toThrowError(/no release\(\) function/);
  });

  it("a child holds a reference on its parent from add until del; the parent outlives its children", () => {
    const parent = makeDevice("bus0");
    deviceAdd(parent.dev);
    const child = makeDevice("dev0", parent.dev);
    expect(refcountOf(parent.dev)).toBe(1);
    deviceAdd(child.dev);
    expect(refcountOf(parent.dev)).toBe(2);
    expect(holders(parent.dev).map((h) => h.label)).toEqual(["creator", "child dev0"]);
    expect(child.dev.parentName).toBe("bus0");
    // The parent's owner lets go first: the parent is deleted but not released.
    deviceUnregister(parent.dev);
    expect(parent.releases()).toBe(0);
    // The child is deleted: its reference on the parent goes, and only then the parent is released.
    deviceDel(child.dev);
    expect(parent.releases()).toBe(1);
    expect(child.releases()).toBe(0);
    expect(child.dev.getParent("x")).toBeNull();
    child.dev.put();
    expect(child.releases()).toBe(1);
  });

  it("getParent takes an owned reference", () => {
    const parent = makeDevice("p");
    deviceAdd(parent.dev);
    const child = makeDevice("c", parent.dev);
    deviceAdd(child.dev);
    const p = child.dev.getParent("walker");
    expect(p?.name).toBe("p");
    expect(holders(parent.dev).map((h) => h.label)).toContain("walker");
    p?.put();
    deleteTree(deviceStateOf(parent.dev), false);
    child.dev.put();
    parent.dev.put();
    expect(parent.releases()).toBe(1);
    expect(child.releases()).toBe(1);
  });

  it("adding under a parent that is not registered fails and changes nothing", () => {
    const parent = makeDevice("unadded");
    const child = makeDevice("kid", parent.dev);
    expect(() => deviceAdd(child.dev)).toThrowError(/add the parent first/);
    expect(refcountOf(parent.dev)).toBe(1);
    expect(child.dev.lifecycle).toBe("initialized");
    child.dev.put();
    parent.dev.put();
    expect(parent.releases()).toBe(1);
  });

  it("deleteTree removes children first, newest first", () => {
    const bus = new RecordingBus();
    const root = makeBusDevice(bus, "root");
    deviceAdd(root.dev);
    const a = makeBusDevice(bus, "a");
    const b = makeBusDevice(bus, "b");
    // Parents are set at creation through the state.
    deviceStateOf(a.dev).parent = deviceStateOf(root.dev);
    deviceStateOf(b.dev).parent = deviceStateOf(root.dev);
    deviceAdd(a.dev);
    deviceAdd(b.dev);
    bus.events.length = 0;
    deleteTree(deviceStateOf(root.dev), true);
    expect(bus.events.filter((e) => e.startsWith("DEL_DEVICE"))).toEqual([
      "DEL_DEVICE b",
      "DEL_DEVICE a",
      "DEL_DEVICE root",
    ]);
    expect(a.dev.isDisconnected).toBe(true);
    for (const d of [a, b, root]) d.dev.put();
    expect([a, b, root].map((d) => d.releases())).toEqual([1, 1, 1]);
  });

  it("calls the bus in device_add and device_del order", () => {
    const bus = new RecordingBus();
    const { dev } = makeBusDevice(bus, "", 3);
    deviceAdd(dev);
    expect(dev.name).toBe("fake3");
    deviceDel(dev);
    expect(bus.events).toEqual([
      "add fake3",
      "ADD_DEVICE fake3",
      "probe fake3",
      "DEL_DEVICE fake3",
      "remove fake3",
      "REMOVED_DEVICE fake3",
    ]);
    dev.put();
  });

  it("a device with no name cannot be added", () => {
    const { dev } = makeDevice("");
    expect(() => deviceAdd(dev)).toThrowError(/needs a name/);
    dev.put();
  });
});

describe("attributes", () => {
  const serial = defineAttribute<string>({ name: "serial", mode: "ro", show: (s) => s });
  const level = defineAttribute<number>({
    name: "level",
    mode: "rw",
    show: (n) => String(n),
    store: (t) => {
      const n = Number(t);
      if (!Number.isInteger(n)) throw new DevrefError("EINVAL", `'${t}' is not a whole number`);
      return n;
    },
  });

  it("are typed, shown and stored like sysfs files while registered", () => {
    const { dev } = makeDevice("attr0");
    dev.setAttribute(serial, "C02");
    dev.setAttribute(level, 3);
    expect(dev.attribute(level)).toBe(3);
    expect(() => dev.showAttribute("serial")).toThrowError(/not in sysfs/);
    deviceAdd(dev);
    expect(dev.attributeNames()).toEqual(["level", "serial"]);
    expect(dev.showAttribute("serial")).toBe("C02\n");
    dev.storeAttribute("level", "7\n");
    expect(dev.attribute(level)).toBe(7);
    expect(() => dev.storeAttribute("level", "x")).toThrowError(/not a whole number/);
    expect(dev.attribute(level)).toBe(7);
    expect(() => dev.storeAttribute("serial", "x")).toThrowError(/read-only/);
    expect(() => dev.showAttribute("nope")).toThrowError(
      /no attribute 'nope'; it has: level, serial/,
    );
    const other = defineAttribute<string>({ name: "serial", mode: "ro", show: (s) => s });
    expect(() => dev.setAttribute(other, "x")).toThrowError(/different attribute named 'serial'/);
    expect(dev.attribute(other)).toBeUndefined();
    deviceUnregister(dev);
  });

  it("rejects bad definitions", () => {
    expect(() => defineAttribute({ name: "a b", mode: "ro", show: String })).toThrowError(
      /not a valid sysfs file name/,
    );
    expect(() => defineAttribute({ name: "w", mode: "rw", show: String })).toThrowError(/no store/);
  });
});

describe("logging", () => {
  it("prefixes messages with the driver (else the bus) and the device name", () => {
    const bus = new RecordingBus();
    const { dev } = makeBusDevice(bus, "uart0");
    const { records } = captureLog(() => {
      devInfo(dev, "registered");
      bindByHand(dev, "serial8250", (d) => {
        devWarn(d, "no FIFO");
        const e = devErrProbe(d, "EPROBE_DEFER", "waiting for clocks");
        expect(e.code).toBe("EPROBE_DEFER");
      });
    });
    expect(records.map((r) => [r.level, r.text])).toEqual([
      ["info", "fake uart0: registered"],
      ["warn", "serial8250 uart0: no FIFO"],
      ["dbg", "serial8250 uart0: error EPROBE_DEFER: waiting for clocks"],
    ]);
    expect(deviceStateOf(dev).deferredReason).toBe("waiting for clocks");
    dev.put();
  });

  it("a device on no bus logs as '<devname>: message'", () => {
    const { dev } = makeDevice("solo");
    const { records } = captureLog(() => devInfo(dev, "hello"));
    expect(records[0]?.text).toBe("solo: hello");
    dev.put();
  });
});

describe("introspection", () => {
  it("prints the tree and holders; the audit lists what is left", () => {
    const soc = makeDevice("soc0");
    deviceAdd(soc.dev);
    const a = makeDevice("dart0", soc.dev);
    const b = makeDevice("mbox0", soc.dev);
    deviceAdd(a.dev);
    deviceAdd(b.dev);
    const held = b.dev.get("rtkit");
    expect(deviceTree(soc.dev)).toBe(
      ["soc0 [3 refs]", "├── dart0 [1 ref]", "└── mbox0 [2 refs]"].join("\n"),
    );
    expect(formatHolders(b.dev)).toBe("mbox0: 2 refs (creator, rtkit)");
    deleteTree(deviceStateOf(soc.dev), false);
    for (const d of [a, b, soc]) d.dev.put();
    const left = auditDevices().filter((d) => ["soc0", "dart0", "mbox0"].includes(d.name));
    expect(left).toEqual([
      {
        name: "mbox0",
        lifecycle: "deleted",
        refcount: 1,
        holders: ["rtkit"],
        devres: 0,
        probeError: null,
      },
    ]);
    held.put();
    expect(auditDevices().filter((d) => d.name === "mbox0")).toEqual([]);
  });
});
