import { definePciDriver, definePlatformDriver, PciBus } from "@devref/bus";
import { formatHolders, Machine } from "@devref/device-core";
import { DevrefError } from "@devref/raw-device";
import { describe, expect, it } from "vitest";
import { recordEvents } from "./helpers.js";

let n = 0;
let machine = new Machine();
const freshPci = (): PciBus => {
  machine = new Machine({ name: `pcitest${++n}` });
  return new PciBus({ machine, domain: n, busNumber: 0 });
};

describe("PCI-like bus", () => {
  it("matches by vendor/device, subsystem and class under a mask, in table order", () => {
    const bus = freshPci();
    const seen: string[] = [];
    const nvme = definePciDriver<null, string>({
      name: "nvme",
      idTable: [
        { vendor: 0x106b, device: 0x2005, data: "apple-ans" },
        { classCode: 0x010802, data: "class" },
      ],
      probe: (dev, info) => {
        seen.push(`${dev.ids} ${info}`);
        return null;
      },
    });
    const sub = definePciDriver<null, string>({
      name: "sub",
      idTable: [{ vendor: 0x8086, subvendor: 0x1028, subdevice: 0x0001, data: "dell" }],
      probe: (dev, info) => {
        seen.push(`${dev.ids} ${info}`);
        return null;
      },
    });
    bus.registerDriver(nvme);
    bus.registerDriver(sub);
    const a = bus.register({ slot: 0, vendor: 0x106b, device: 0x2005, classCode: 0x010802 });
    const b = bus.register({ slot: 1, vendor: 0x144d, device: 0xa808, classCode: 0x010802 });
    const c = bus.register({
      slot: 2,
      vendor: 0x8086,
      device: 0x1533,
      subsystemVendor: 0x1028,
      subsystemDevice: 0x0001,
      classCode: 0x020000,
    });
    const d = bus.register({ slot: 3, vendor: 0x8086, device: 0x1533, classCode: 0x020000 });
    expect(seen).toEqual(["106b:2005 apple-ans", "144d:a808 class", "8086:1533 dell"]);
    expect(d.driverName).toBeNull();
    expect(a.name).toBe(`${n.toString(16).padStart(4, "0")}:00:00.0`);
    expect(a.dmaMaskBits).toBe(32);
    for (const x of [a, b, c, d]) bus.unregister(x);
  });

  it("hot-plug slot: insert binds; surprise removal runs remove once with all-ones BARs", () => {
    const bus = freshPci();
    const events = recordEvents(bus);
    const seen: string[] = [];
    const nic = definePciDriver({
      name: "nic",
      idTable: [{ vendor: 0x10ec }],
      probe: (dev) => {
        dev.enableDevice();
        dev.setMaster();
        const bar = dev.iomapBar(0);
        bar.access(dev).write32(0, 0x1234);
        seen.push(`probe status=${bar.access(dev).read32(0).toString(16)}`);
        return { bar };
      },
      remove: (dev, data) => {
        const v = data.bar.access(dev).read32(0);
        // A driver must treat all-ones as "device gone" and not wait for the hardware.
        seen.push(v === 0xffff_ffff ? "remove: device gone" : `remove status=${v.toString(16)}`);
        expect(dev.isEnabled).toBe(true);
      },
    });
    bus.registerDriver(nic);
    const slot = bus.addSlot("slot1", 1);
    slot.insert({ vendor: 0x10ec, device: 0x8168, classCode: 0x020000, bars: [{ size: 0x100 }] });
    expect(slot.occupied).toBe(true);
    const stack = slot.device("net stack")!;
    expect(stack.isBound).toBe(true);
    expect(stack.isBusMaster).toBe(true);
    // Every resource of the binding keeps the device and says so (honest holders).
    expect(formatHolders(stack)).toBe(
      `${stack.name}: 5 refs (slot slot1, pci bus, pci enable, bar 0, net stack)`,
    );
    expect(() => slot.insert({ vendor: 1, device: 1, classCode: 0 })).toThrowError(/occupied/);
    slot.surpriseRemove();
    expect(seen).toEqual(["probe status=1234", "remove: device gone"]);
    expect(stack.lifecycle).toBe("deleted");
    expect(stack.isEnabled).toBe(false); // pcim: disabled when the binding ended
    expect(stack.isDisconnected).toBe(true);
    expect(events.map((e) => e.split(" ")[0])).toEqual([
      "ADD_DEVICE",
      "BIND_DRIVER",
      "BOUND_DRIVER",
      "DEL_DEVICE",
      "UNBIND_DRIVER",
      "UNBOUND_DRIVER",
      "REMOVED_DEVICE",
    ]);
    expect(formatHolders(stack)).toMatch(/1 ref \(net stack\)/);
    stack.put();
    expect(() => slot.surpriseRemove()).toThrowError(/empty/);
    // The slot takes a new card.
    slot.insert({ vendor: 0x10ec, device: 0x8125, classCode: 0x020000, bars: [{ size: 0x100 }] });
    slot.remove();
    expect(seen.at(-1)).toBe("remove status=1234");
  });

  it("refuses bad descriptions and wrong-bus drivers", () => {
    const bus = freshPci();
    expect(() => bus.register({ slot: 40, vendor: 1, device: 1, classCode: 0 })).toThrowError(
      /spec\.slot must be a whole number in \[0, 31\], not 40/,
    );
    expect(() => bus.register({ slot: 0, vendor: 0x10000, device: 1, classCode: 0 })).toThrowError(
      /spec\.vendor must be a whole number in \[0, 65535\], not 65536/,
    );
    expect(() => bus.addSlot("x", 32)).toThrowError(/\[0, 31\]/);
    bus.addSlot("a", 2);
    expect(() => bus.addSlot("b", 2)).toThrowError(/already has slot 2/);
    const drv = definePciDriver({ name: "p", idTable: [], probe: () => null });
    // SAFETY: bypasses the type check to show the run-time one.
    const platformish = bus as unknown as { registerDriver(d: unknown): unknown };
    const other = new PciBus({ name: "other-pci", machine });
    other.registerDriver(drv);
    expect(() => platformish.registerDriver(drv)).toThrowError(/already registered/);
    other.unregisterDriver(drv);
    const platformDrv = definePlatformDriver({ name: "plat", probe: () => null });
    // SAFETY: bypasses the type check to show the run-time one.
    expect(() => platformish.registerDriver(platformDrv)).toThrowError(/not a pci driver/);
    try {
      bus.register({ slot: 0, vendor: 1, device: 1, classCode: 0, func: 9 });
    } catch (e) {
      expect(DevrefError.is(e, "EINVAL")).toBe(true);
    }
  });
});
