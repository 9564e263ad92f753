// Device links (drivers/base/core.c) through a real bus: probe order, unbind order,
// autoremove, deletion, references, and the kernel's refusals.
import {
  definePciDriver,
  definePlatformDriver,
  PciBus,
  type PlatformBus,
  type PlatformDevice,
} from "@devref/bus";
import {
  type DeviceLink,
  DL_FLAG_AUTOPROBE_CONSUMER,
  DL_FLAG_AUTOREMOVE_CONSUMER,
  DL_FLAG_AUTOREMOVE_SUPPLIER,
  DL_FLAG_MANAGED,
  DL_FLAG_PM_RUNTIME,
  DL_FLAG_STATELESS,
  DL_FLAG_SYNC_STATE_ONLY,
  DL_STATE_ACTIVE,
  DL_STATE_AVAILABLE,
  DL_STATE_DORMANT,
  DL_STATE_NONE,
  deviceLinkAdd,
  deviceLinkDel,
  deviceLinkRemove,
  deviceLinks,
  holders,
} from "@devref/device-core";
import { type ARef, DevrefError } from "@devref/raw-device";
import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { currentMachine, freshBus } from "./helpers.js";

interface World {
  readonly bus: PlatformBus;
  readonly calls: string[];
  readonly supplier: ARef<PlatformDevice>;
  readonly consumer: ARef<PlatformDevice>;
  /** The consumer's driver, registered from the start. */
  readonly consumerDriver: ReturnType<typeof definePlatformDriver>;
  /** Registers the supplier's driver. */
  supplierDriver(): void;
}

function world(): World {
  const bus = freshBus();
  const calls: string[] = [];
  const driver = (name: string) =>
    definePlatformDriver({
      name,
      ofMatchTable: [{ compatible: `test,${name}` }],
      probe: (dev) => {
        calls.push(`probe ${dev.name}`);
        return {};
      },
      remove: (dev) => {
        calls.push(`remove ${dev.name}`);
      },
    });
  const supplier = bus.register({ name: "mbox", compatible: ["test,mbox"] });
  const consumer = bus.register({ name: "smc", compatible: ["test,smc"] });
  const consumerDriver = driver("smc");
  bus.registerDriver(consumerDriver);
  return {
    bus,
    calls,
    supplier,
    consumer,
    consumerDriver,
    supplierDriver: () => bus.registerDriver(driver("mbox")),
  };
}

const labels = (dev: PlatformDevice) => holders(dev).map((h) => h.label);

describe("device links", () => {
  it("a consumer's probe defers until its supplier is bound, then follows it", async () => {
    const w = world();
    w.bus.unbind(w.consumer);
    const link = deviceLinkAdd(w.consumer, w.supplier, 0) as DeviceLink;
    expect(link.flags).toBe(DL_FLAG_MANAGED);
    expect(link.state).toBe(DL_STATE_DORMANT);
    expect(await w.bus.probe(w.consumer)).toBe(false);
    expect(currentMachine().deferredDevices()).toEqual([
      { name: "smc", reason: "supplier mbox not ready" },
    ]);
    await expect(w.bus.bind(w.consumer, w.consumerDriver)).rejects.toThrowError(
      /EPROBE_DEFER.*supplier mbox not ready/,
    );
    w.supplierDriver();
    expect(link.state).toBe(DL_STATE_AVAILABLE);
    await w.bus.settle();
    expect(w.consumer.lifecycle).toBe("bound");
    expect(link.state).toBe(DL_STATE_ACTIVE);
    expect(w.calls).toEqual(["probe smc", "remove smc", "probe mbox", "probe smc"]);
    w.supplier.put();
    w.consumer.put();
  });

  it("a supplier's unbind unbinds its consumers first; the link then sleeps", async () => {
    const w = world();
    w.supplierDriver();
    const link = deviceLinkAdd(w.consumer, w.supplier, 0) as DeviceLink;
    expect(link.state).toBe(DL_STATE_ACTIVE);
    w.calls.length = 0;
    w.bus.unbind(w.supplier);
    expect(w.calls).toEqual(["remove smc", "remove mbox"]);
    expect(link.state).toBe(DL_STATE_DORMANT);
    expect(link.deleted).toBe(false);
    // The consumer waits for the supplier again.
    expect(await w.bus.probe(w.consumer)).toBe(false);
    expect(await w.bus.probe(w.supplier)).toBe(true);
    await w.bus.settle();
    expect(w.consumer.lifecycle).toBe("bound");
    w.supplier.put();
    w.consumer.put();
  });

  it("AUTOREMOVE_SUPPLIER and AUTOREMOVE_CONSUMER links go with the driver they name", () => {
    const w = world();
    w.supplierDriver();
    const bySupplier = deviceLinkAdd(w.consumer, w.supplier, DL_FLAG_AUTOREMOVE_SUPPLIER)!;
    w.bus.unbind(w.supplier);
    expect(bySupplier.deleted).toBe(true);
    expect(deviceLinks(w.consumer).suppliers).toEqual([]);
    expect(labels(w.supplier)).not.toContain("device link from smc");

    w.bus.probe(w.supplier);
    w.bus.probe(w.consumer);
    const byConsumer = deviceLinkAdd(w.consumer, w.supplier, DL_FLAG_AUTOREMOVE_CONSUMER)!;
    expect(byConsumer.state).toBe(DL_STATE_ACTIVE);
    w.bus.unbind(w.consumer);
    expect(byConsumer.deleted).toBe(true);
    expect(w.supplier.lifecycle).toBe("bound");
    w.supplier.put();
    w.consumer.put();
  });

  it("with both AUTOREMOVE flags the supplier's wins, as in the kernel", () => {
    const w = world();
    const link = deviceLinkAdd(
      w.consumer,
      w.supplier,
      DL_FLAG_AUTOREMOVE_CONSUMER | DL_FLAG_AUTOREMOVE_SUPPLIER,
    )!;
    expect(link.flags).toBe(DL_FLAG_AUTOREMOVE_SUPPLIER | DL_FLAG_MANAGED);
    w.supplier.put();
    w.consumer.put();
  });

  it("refuses what the kernel refuses with NULL, and changes nothing", () => {
    const w = world();
    const child = w.bus.register({ name: "child", parent: w.consumer });
    const before = [labels(w.consumer), labels(w.supplier)];
    const refused: [PlatformDevice, PlatformDevice, number][] = [
      [w.consumer, w.consumer, 0],
      [w.consumer, w.supplier, DL_FLAG_STATELESS | DL_FLAG_AUTOREMOVE_CONSUMER],
      [w.consumer, w.supplier, DL_FLAG_AUTOPROBE_CONSUMER | DL_FLAG_AUTOREMOVE_SUPPLIER],
      [w.consumer, w.supplier, DL_FLAG_MANAGED],
      [w.consumer, w.supplier, 1 << 12],
      [w.consumer, w.supplier, DL_FLAG_SYNC_STATE_ONLY | DL_FLAG_PM_RUNTIME],
      // The supplier would depend on its own consumer: its child.
      [w.consumer, child, 0],
    ];
    for (const [c, s, flags] of refused) expect(deviceLinkAdd(c, s, flags)).toBeNull();
    // A cycle through links: smc → mbox, then mbox → smc.
    expect(deviceLinkAdd(w.consumer, w.supplier, DL_FLAG_STATELESS)).not.toBeNull();
    expect(deviceLinkAdd(w.supplier, w.consumer, DL_FLAG_STATELESS)).toBeNull();
    deviceLinkRemove(w.consumer, w.supplier);
    expect([labels(w.consumer), labels(w.supplier)]).toEqual(before);
    // A supplier that is not registered any more.
    const kept = child.get("test");
    w.bus.unregister(child);
    expect(deviceLinkAdd(w.consumer, kept, 0)).toBeNull();
    kept.put();
    // Wrong types, and devices of two machines, are errors, not NULL.
    expect(() => deviceLinkAdd(w.consumer, w.supplier, -1)).toThrowError(DevrefError);
    const elsewhere = freshBus().register({ name: "far" });
    expect(() => deviceLinkAdd(w.consumer, elsewhere, 0)).toThrowError(
      /link devices of one machine/,
    );
    elsewhere.put();
    expect(() => deviceLinkAdd({} as never, w.supplier, 0)).toThrowError(DevrefError);
    w.supplier.put();
    w.consumer.put();
  });

  it("holds a reference on both ends; stateless links are counted, managed ones are the core's", () => {
    const w = world();
    const a = deviceLinkAdd(w.consumer, w.supplier, DL_FLAG_STATELESS)!;
    const b = deviceLinkAdd(w.consumer, w.supplier, DL_FLAG_STATELESS)!;
    expect(b).toBe(a);
    expect(a.state).toBe(DL_STATE_NONE);
    expect(labels(w.consumer)).toContain("device link to mbox");
    expect(labels(w.supplier)).toContain("device link from smc");
    deviceLinkDel(a);
    expect(a.deleted).toBe(false);
    deviceLinkDel(a);
    expect(a.deleted).toBe(true);
    expect(labels(w.consumer)).not.toContain("device link to mbox");

    const m = deviceLinkAdd(w.consumer, w.supplier, 0)!;
    expect(() => deviceLinkDel(m)).toThrowError(/managed/);
    expect(m.deleted).toBe(false);
    w.supplier.put();
    w.consumer.put();
  });

  it("device_del purges every link of the device, and their references", () => {
    const w = world();
    w.supplierDriver();
    const link = deviceLinkAdd(w.consumer, w.supplier, 0)!;
    w.calls.length = 0;
    const supplier = w.supplier.get("test");
    w.bus.unregister(w.supplier);
    expect(w.calls).toEqual(["remove smc", "remove mbox"]);
    expect(link.deleted).toBe(true);
    expect(labels(w.consumer)).toEqual(["creator", "platform bus"]);
    expect(labels(supplier)).toEqual(["test"]);
    supplier.put();
    w.consumer.put();
  });

  it("a supplier pulled by surprise unbinds its consumer first, then its links go", async () => {
    const w = world();
    w.supplierDriver();
    const link = deviceLinkAdd(w.consumer, w.supplier, DL_FLAG_AUTOPROBE_CONSUMER)!;
    expect(link.state).toBe(DL_STATE_ACTIVE);
    w.calls.length = 0;
    w.bus.unplug(w.supplier);
    await w.bus.settle();
    expect(w.calls).toEqual(["remove smc", "remove mbox"]);
    expect(link.deleted).toBe(true);
    expect(w.supplier.lifecycle).toBe("deleted");
    // The consumer, free of the link, binds again on its own.
    expect(await w.bus.probe(w.consumer)).toBe(true);
    w.supplier.put();
    w.consumer.put();
  });

  it("links cross buses: a PCI consumer of a platform supplier is unbound through its own bus", () => {
    const w = world();
    w.supplierDriver();
    const pci = new PciBus({ machine: currentMachine(), domain: 0, busNumber: 0 });
    const calls: string[] = [];
    pci.registerDriver(
      definePciDriver({
        name: "nic",
        idTable: [{ vendor: 0x14e4 }],
        probe: () => {
          calls.push("probe nic");
          return null;
        },
        remove: () => {
          calls.push("remove nic");
        },
      }),
    );
    const nic = pci.register({ slot: 0, vendor: 0x14e4, device: 1, classCode: 0x020000 });
    const link = deviceLinkAdd(nic, w.supplier, DL_FLAG_AUTOREMOVE_SUPPLIER)!;
    expect(link.state).toBe(DL_STATE_ACTIVE);
    w.bus.unbind(w.supplier);
    expect(calls).toEqual(["probe nic", "remove nic"]);
    expect(nic.isBound).toBe(false);
    expect(link.deleted).toBe(true);
    pci.unregister(nic);
    w.supplier.put();
    w.consumer.put();
  });

  it("AUTOPROBE_CONSUMER probes the consumer once the supplier binds", async () => {
    const w = world();
    w.bus.unbind(w.consumer);
    const link = deviceLinkAdd(w.consumer, w.supplier, DL_FLAG_AUTOPROBE_CONSUMER)!;
    expect(currentMachine().deferredDevices()).toEqual([]);
    w.supplierDriver();
    expect(link.state).toBe(DL_STATE_AVAILABLE);
    await w.bus.settle();
    expect(w.consumer.lifecycle).toBe("bound");
    w.supplier.put();
    w.consumer.put();
  });

  it("model: whatever the order of binds, unbinds and links, a consumer waits for its supplier and link states agree with both ends", async () => {
    type Op =
      | { kind: "bind"; who: 0 | 1 | 2 }
      | { kind: "unbind"; who: 0 | 1 | 2 }
      | { kind: "link"; c: 0 | 1 | 2; s: 0 | 1 | 2; flags: number }
      | { kind: "unlink"; c: 0 | 1 | 2; s: 0 | 1 | 2 };
    const who = fc.constantFrom(0 as const, 1 as const, 2 as const);
    const op: fc.Arbitrary<Op> = fc.oneof(
      fc.record({ kind: fc.constant("bind" as const), who }),
      fc.record({ kind: fc.constant("unbind" as const), who }),
      fc.record({
        kind: fc.constant("link" as const),
        c: who,
        s: who,
        flags: fc.oneof(
          fc.constantFrom(
            0,
            DL_FLAG_STATELESS,
            DL_FLAG_AUTOREMOVE_CONSUMER,
            DL_FLAG_AUTOREMOVE_SUPPLIER,
            DL_FLAG_AUTOPROBE_CONSUMER,
          ),
          // Any combination of the ten flag bits: refused or accepted, never corrupting.
          fc.integer({ min: 0, max: 0x3ff }),
        ),
      }),
      fc.record({ kind: fc.constant("unlink" as const), c: who, s: who }),
    );
    await fc.assert(
      fc.asyncProperty(fc.array(op, { maxLength: 30 }), async (ops) => {
        const bus = freshBus();
        const drv = definePlatformDriver({
          name: "any",
          ofMatchTable: [{ compatible: "test,any" }],
          probe: () => ({}),
        });
        const devs = ["d0", "d1", "d2"].map((name) =>
          bus.register({ name, compatible: ["test,any"] }),
        );
        bus.registerDriver(drv);
        const byName = (name: string) => devs.find((x) => x.name === name)!;
        for (const o of ops) {
          if (o.kind === "bind") {
            const d = devs[o.who]!;
            // A consumer whose managed supplier is not bound must not bind.
            const waiting =
              d.lifecycle !== "bound" &&
              deviceLinks(d).suppliers.some(
                (l) => l.managed && byName(l.supplier).lifecycle !== "bound",
              );
            await bus.probe(d);
            if (waiting)
              expect(d.lifecycle, `${d.name} bound before its supplier`).not.toBe("bound");
          } else if (o.kind === "unbind") bus.unbind(devs[o.who]!);
          else if (o.kind === "link") deviceLinkAdd(devs[o.c]!, devs[o.s]!, o.flags);
          else {
            try {
              deviceLinkRemove(devs[o.c]!, devs[o.s]!);
            } catch (e) {
              expect(DevrefError.is(e, "EPERM")).toBe(true);
            }
          }
          await bus.settle();
          // Each managed link's state agrees with its two ends.
          for (const d of devs) {
            for (const l of deviceLinks(d).suppliers) {
              if (!l.managed) continue;
              const supplierBound = byName(l.supplier).lifecycle === "bound";
              if (l.state === DL_STATE_ACTIVE) {
                expect([d.lifecycle, supplierBound]).toEqual(["bound", true]);
              } else if (l.state === DL_STATE_AVAILABLE) {
                expect(supplierBound).toBe(true);
              } else {
                expect(l.state).toBe(DL_STATE_DORMANT);
                expect(supplierBound).toBe(false);
              }
            }
          }
        }
        const kept = devs.map((d) => d.get("test"));
        for (const d of devs) bus.unregister(d);
        for (const d of kept) {
          expect(deviceLinks(d)).toEqual({ suppliers: [], consumers: [] });
          expect(holders(d).map((h) => h.label)).toEqual(["test"]);
          d.put();
        }
      }),
      { seed: 42, numRuns: 150 },
    );
  });
});
