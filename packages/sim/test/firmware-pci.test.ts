// describeSoc, PCI side: the host enumerated onto a PciBus as the PCI core would, a
// virtio-pci driver written against @devref/bus (config space, BARs, MSI-X), hot-plug from
// the host's interrupt, and the whole scenario twice for the same trace digest.
import { definePciDriver, PciBus, type PciDevice, PlatformBus } from "@devref/bus";
import {
  auditDevices,
  type Devres,
  deviceTree,
  type LogRecord,
  type MmioRegion,
} from "@devref/device-core";
import type { Core } from "@devref/raw-device";
import { DevrefError } from "@devref/raw-device";
import { describe, expect, it } from "vitest";
import {
  createReferenceSoc,
  describeSoc,
  REFERENCE_MAP as M,
  PCI_HOTPLUG,
  PciFunction,
} from "../src/index.js";

// virtio-pci modern transport (VIRTIO 1.2 §4.1.4): vendor capability types and common cfg.
const COMMON_CFG = 1;
const DEVICE_FEATURE_SELECT = 0x00;
const DEVICE_FEATURE = 0x04;
const DRIVER_FEATURE_SELECT = 0x08;
const DRIVER_FEATURE = 0x0c;
const MSIX_CONFIG = 0x10;
const DEVICE_STATUS = 0x14;
const CONFIG_GENERATION = 0x15;
const ACK = 1;
const DRIVER = 2;
const DRIVER_OK = 4;
const FEATURES_OK = 8;

/** pci_find_capability for a virtio vendor capability of `type`: its BAR and offset. */
function virtioCap(dev: PciDevice, type: number): { bar: number; offset: number } | null {
  if ((dev.configRead(0x06, 2) & 0x10) === 0) return null;
  for (let at = dev.configRead(0x34, 1) & 0xfc, n = 0; at !== 0 && n < 48; n++) {
    if (dev.configRead(at, 1) === 0x09 && dev.configRead(at + 3, 1) === type) {
      return { bar: dev.configRead(at + 4, 1), offset: dev.configRead(at + 8, 4) };
    }
    at = dev.configRead(at + 1, 1) & 0xfc;
  }
  return null;
}

interface VirtioData {
  readonly bar: Devres<MmioRegion>;
  readonly common: number;
}

/** A virtio-pci driver in miniature: negotiates, takes MSI-X vector 0 for config changes. */
function virtioDriver(seen: string[]) {
  return definePciDriver<VirtioData>({
    name: "virtio-test",
    idTable: [{ vendor: 0x1af4, device: 0x1042 }],
    probe: <S>(dev: import("@devref/raw-device").Borrowed<PciDevice<Core>, S>) => {
      dev.enableDevice();
      dev.setMaster();
      const cap = virtioCap(dev, COMMON_CFG);
      if (cap === null) throw new DevrefError("ENODEV", "no common configuration");
      const bar = dev.iomapBar(cap.bar);
      const r = bar.access(dev);
      const c = cap.offset;
      const vectors = dev.allocIrqVectors(1, 2);
      dev.requestIrq(0, (d) => {
        const m = bar.access(d);
        seen.push(`config change, generation ${m.read8(c + CONFIG_GENERATION)}`);
        return "handled";
      });
      r.write8(c + DEVICE_STATUS, 0);
      r.write8(c + DEVICE_STATUS, ACK);
      r.write8(c + DEVICE_STATUS, ACK | DRIVER);
      r.write32(c + DEVICE_FEATURE_SELECT, 1);
      const high = r.read32(c + DEVICE_FEATURE);
      r.write32(c + DRIVER_FEATURE_SELECT, 0);
      r.write32(c + DRIVER_FEATURE, 0);
      r.write32(c + DRIVER_FEATURE_SELECT, 1);
      r.write32(c + DRIVER_FEATURE, high & 0x3); // VERSION_1, ACCESS_PLATFORM if offered
      r.write8(c + DEVICE_STATUS, ACK | DRIVER | FEATURES_OK);
      if ((r.read8(c + DEVICE_STATUS) & FEATURES_OK) === 0) {
        throw new DevrefError("EIO", "the device refused our features");
      }
      r.write16(c + MSIX_CONFIG, 0);
      r.write8(c + DEVICE_STATUS, ACK | DRIVER | FEATURES_OK | DRIVER_OK);
      seen.push(`probe ${dev.name}: ${vectors} vectors, features ${high & 3}`);
      return { bar, common: c };
    },
    remove: (dev, data) => {
      const status = data.bar.access(dev).read8(data.common + DEVICE_STATUS);
      seen.push(status === 0xff ? "remove: device gone" : `remove: status ${status}`);
      if (status !== 0xff) data.bar.access(dev).write8(data.common + DEVICE_STATUS, 0);
    },
  });
}

function scenarioSoc(seed = 1) {
  const logs: LogRecord[] = [];
  const ref = createReferenceSoc({ seed, logSink: (r) => logs.push(r) });
  const { soc } = ref;
  const platform = new PlatformBus({ machine: soc.machine });
  const pci = new PciBus({ machine: soc.machine });
  return { ...ref, platform, pci, logs };
}

describe("describeSoc: PCI enumeration", () => {
  it("finds the virtio-blk function in ECAM and registers it with BARs, INTx, MSI-X and its DART stream", () => {
    const { soc, platform, pci } = scenarioSoc();
    using fw = describeSoc(soc, { platform, pci });
    expect(pci.deviceNames()).toEqual(["0000:00:00.0"]);
    const dev = fw.bridge!.slots[0]!.device("test")!;
    expect(dev.ids).toBe("1af4:1042");
    expect(dev.classCode).toBe(0x010000);
    expect(dev.subsystemVendorId).toBe(0x1af4);
    expect(dev.subsystemDeviceId).toBe(0x40);
    // BARs by size, naturally aligned, at their CPU addresses in the window.
    expect(dev.bar(4)).toEqual({ start: M.WINDOW_BASE, size: 0x4000 });
    expect(dev.bar(1)).toEqual({ start: M.WINDOW_BASE + 0x4000, size: 0x1000 });
    expect(() => dev.bar(0)).toThrowError(/no BAR 0/);
    expect(dev.barCount).toBe(2);
    // What the BAR registers hold: bus addresses, decoding off until the driver enables.
    expect((dev.configRead(0x20, 4) & ~0xf) >>> 0).toBe(M.WINDOW_BUS_BASE);
    expect(dev.configRead(0x24, 4)).toBe(0); // BAR4 is 64-bit: the high half
    expect((dev.configRead(0x14, 4) & ~0xf) >>> 0).toBe(M.WINDOW_BUS_BASE + 0x4000);
    expect(dev.configRead(0x04, 2) & 0x6).toBe(0);
    expect(dev.firmware.iommus).toEqual([{ iommu: "dart0", ids: [M.PCIE_SID] }]);
    expect(dev.firmware.interrupts).toEqual([
      { domain: "aic", hwirq: M.INTX_BASE, trigger: "level" },
    ]);
    expect(dev.firmware.compatible).toEqual(["pci1af4,1042", "pciclass,010000"]);
    const parent = dev.getParent("test")!;
    expect(parent.name).toBe("pcie0");
    parent.put();
    // The host's node: creator, bus, child; the function: the slot, the bus, the test.
    expect(deviceTree(soc.machine)).toContain(
      "pcie0 [platform, 3 refs]\n└── 0000:00:00.0 [pci, 3 refs]",
    );
    expect(soc.machine.names("irq domain")).toEqual(["aic", "msi"]);
    expect(fw.bridge!.msi.size).toBe(M.MSI_COUNT);
    expect(soc.irq.isConnected(M.HOTPLUG_IRQ)).toBe(true);
    dev.put();
    fw.remove();
    expect(soc.irq.isConnected(M.HOTPLUG_IRQ)).toBe(false);
    expect(auditDevices(soc.machine)).toEqual([]);
  });

  it("a virtio-pci driver maps BARs, allocates MSI-X vectors and receives the model's MSI", async () => {
    const { soc, platform, pci, blk, logs } = scenarioSoc();
    const seen: string[] = [];
    pci.registerDriver(virtioDriver(seen));
    using fw = describeSoc(soc, { platform, pci });
    expect(seen).toEqual(["probe 0000:00:00.0: 2 vectors, features 3"]);
    const dev = fw.bridge!.slots[0]!.device("test")!;
    expect(dev.isBusMaster).toBe(true);
    expect(dev.irqVectorCount).toBe(2);
    // The PCI core's writes reached the hardware: decoding, mastering, MSI-X on, entry 0.
    const fn = blk!;
    expect(fn.memoryEnabled && fn.busMaster && fn.msixEnabled).toBe(true);
    const table = M.WINDOW_BASE + 0x4000;
    expect([0, 4, 8, 12].map((o) => soc.fabric.read32(table + o))).toEqual([
      M.MSI_DOORBELL,
      0,
      0, // data = line 0 of the "msi" domain
      0, // unmasked
    ]);
    expect(fw.bridge!.msi.interrupts()).toEqual(["0: 0 0000:00:00.0"]);
    blk!.resize(4096); // a configuration change: the device sends its config vector
    expect(seen).toHaveLength(1);
    expect(await soc.settle()).toBe(true);
    expect(seen.at(-1)).toBe("config change, generation 1");
    expect(
      soc.trace().some((r) => r.kind === "irq" && r.line === M.MSI_BASE && r.action === "pulse"),
    ).toBe(true);
    dev.put();
    fw.remove(); // orderly: remove() sees working hardware, vectors masked, MSI-X off
    expect(seen.at(-1)).toBe("remove: status 15");
    expect(fn.msixEnabled).toBe(false);
    expect(fn.busMaster).toBe(false);
    expect(soc.fabric.read32(table + 12)).toBe(1);
    expect(auditDevices(soc.machine)).toEqual([]);
    expect(logs.filter((r) => r.level === "err" || r.level === "warn")).toEqual([]);
  });
});

/** The hot-plug scenario; returns what a run leaves to compare. */
async function hotplugScenario(seed: number) {
  const { soc, platform, pci, pcie, blk, logs } = scenarioSoc(seed);
  const seen: string[] = [];
  pci.registerDriver(virtioDriver(seen));
  const fw = describeSoc(soc, { platform, pci });
  const slot = fw.bridge!.slots[0]!;
  // 1. Surprise removal by the fault injector, in the middle of the run.
  soc.faults.schedule({ timeNs: 5_000 }, { kind: "unplug", target: "vblk0" });
  soc.events.after(10_000, () => blk!.resize(2048)); // too late: nothing is there any more
  expect(await soc.settle()).toBe(true);
  const afterSurprise = {
    seen: [...seen],
    names: pci.deviceNames(),
    occupied: slot.occupied,
    audit: auditDevices(soc.machine).map((a) => a.name),
  };
  // 2. The card goes back in: enumerated again from the hot-plug interrupt, bound, working.
  pcie.insert(0, blk!);
  expect(await soc.settle()).toBe(true);
  blk!.resize(1024);
  expect(await soc.settle()).toBe(true);
  const afterInsert = [...seen];
  // 3. Orderly removal (attention button): remove() runs with the card still answering,
  // then the bridge powers the slot off.
  pcie.requestRemoval(0);
  expect(await soc.settle()).toBe(true);
  const afterOrderly = {
    seen: [...seen],
    present: soc.fabric.read32(M.HOTPLUG_BASE + PCI_HOTPLUG.SLOT_PRESENT),
    occupied: slot.occupied,
  };
  fw.remove();
  return {
    faults: soc
      .trace()
      .filter((r) => r.kind === "fault")
      .map((r) => (r.kind === "fault" ? r.fault : "")),
    afterSurprise,
    afterInsert,
    afterOrderly,
    audit: auditDevices(soc.machine),
    logs: logs.map((r) => r.text),
    digest: soc.traceDigest(),
    steps: soc.stepCount,
  };
}

describe("hot-plug through the host's interrupt", () => {
  it("a surprise unplug removes the function (remove sees all-ones), re-insertion rebinds, attention removes it in order", async () => {
    const r = await hotplugScenario(1);
    expect(r.afterSurprise).toEqual({
      seen: ["probe 0000:00:00.0: 2 vectors, features 3", "remove: device gone"],
      names: [],
      occupied: false,
      audit: ["dart0", "pcie0", "smc-mbox", "smc"], // nothing of the PCI function is left
    });
    expect(r.afterInsert.slice(2)).toEqual([
      "probe 0000:00:00.0: 2 vectors, features 3",
      // The disk was resized twice (once while out of its slot): generation 2.
      "config change, generation 2",
    ]);
    expect(r.afterOrderly).toEqual({
      seen: [...r.afterInsert, "remove: status 15"],
      present: 0,
      occupied: false,
    });
    expect(r.audit).toEqual([]);
    // The injected unplug and the card gone, then gone again when its slot was powered off;
    // no master abort from software touching a pulled card.
    expect(r.faults).toEqual(["inject-unplug:vblk0", "device-gone", "device-gone"]);
    expect(r.logs.filter((l) => /fail|error/i.test(l))).toEqual([]);
  });

  it("the same scenario twice gives the same trace, digest, log and step count", async () => {
    const a = await hotplugScenario(7);
    const b = await hotplugScenario(7);
    expect(b).toEqual(a);
    expect(a.digest).toMatch(/^[0-9a-f]{16}$/);
  });
});

describe("hot-plug of other cards", () => {
  it("a multi-function card is enumerated function by function and leaves as a whole; a BAR that does not fit is left out", async () => {
    const { soc, platform, pci, pcie } = scenarioSoc();
    using fw = describeSoc(soc, { platform, pci });
    const regs = { mmioRead: () => 0x5a5a_5a5a, mmioWrite: () => {} };
    const fn0 = new PciFunction(soc, {
      name: "nic.0",
      vendor: 0x8086,
      device: 0x1521,
      classCode: 0x020000,
      bars: [{ size: 0x2_0000, handler: regs }],
    });
    const fn1 = new PciFunction(soc, {
      name: "nic.1",
      vendor: 0x8086,
      device: 0x1521,
      classCode: 0x020000,
      function: 1,
      interruptPin: 2,
      bars: [{ size: 0x4000_0000, handler: regs }, null, { size: 0x100, handler: regs }],
    });
    pcie.insert(1, [fn0, fn1]);
    expect(pci.deviceNames()).toEqual(["0000:00:00.0"]); // the interrupt has not run yet
    expect(await soc.settle()).toBe(true);
    expect(pci.deviceNames()).toEqual(["0000:00:00.0", "0000:00:01.0", "0000:00:01.1"]);
    const a = pci.findDevice("0000:00:01.0", "test")!;
    const b = pci.findDevice("0000:00:01.1", "test")!;
    // Placed after the disk's BARs (0x4000 + 0x1000), naturally aligned.
    expect(a.bar(0)).toEqual({ start: M.WINDOW_BASE + 0x2_0000, size: 0x2_0000 });
    expect(() => b.bar(0)).toThrowError(/no BAR 0/); // 1 GiB does not fit the 256 MiB window
    expect(b.bar(2).size).toBe(0x100);
    expect(b.firmware.interrupts).toEqual([
      { domain: "aic", hwirq: M.INTX_BASE + 1, trigger: "level" },
    ]);
    expect(soc.trace().some((r) => r.kind === "note" && r.text === "pci-bar-no-space")).toBe(true);
    pcie.surpriseRemove(1);
    expect(await soc.settle()).toBe(true);
    expect(pci.deviceNames()).toEqual(["0000:00:00.0"]);
    expect([a.isDisconnected, b.isDisconnected]).toEqual([true, true]);
    expect(a.configRead(0, 4)).toBe(0xffff_ffff); // a pulled function's config space
    expect(() => a.configRead(2, 4)).toThrowError(/multiple of 4/);
    a.put();
    b.put();
    // The freed ranges are handed out again.
    pcie.insert(1, fn0);
    expect(await soc.settle()).toBe(true);
    const again = pci.findDevice("0000:00:01.0", "test")!;
    expect(again.bar(0).start).toBe(M.WINDOW_BASE + 0x2_0000);
    again.put();
    fw.remove();
    expect(auditDevices(soc.machine)).toEqual([]);
  });

  it("refuses a second description of the host, a bus of another machine or bus number", () => {
    const { soc, platform, pci } = scenarioSoc();
    const fw = describeSoc(soc, { platform, pci });
    const other = new PciBus({ machine: soc.machine, name: "pci2" });
    expect(() =>
      describeSoc(soc, {
        platform: new PlatformBus({ machine: soc.machine, name: "p2" }),
        pci: other,
      }),
    ).toThrowError(/hot-plug line 40 of 'pcie0' already has a handler/);
    fw.remove();
    // The bus keeps its hot-plug slots: describing to it again is refused, and rolled back.
    expect(() => describeSoc(soc, { platform, pci })).toThrowError(/already has slot 0/);
    expect(platform.deviceNames()).toEqual([]);
    expect(soc.irq.isConnected(M.HOTPLUG_IRQ)).toBe(false);
    const foreign = new PciBus({ machine: createReferenceSoc().soc.machine });
    expect(() => describeSoc(soc, { platform, pci: foreign })).toThrowError(
      /must belong to the SoC/,
    );
    const bus1 = new PciBus({ machine: soc.machine, name: "pci1", busNumber: 1 });
    expect(() => describeSoc(soc, { platform, pci: bus1 })).toThrowError(/bus 0 of domain 0/);
    expect(auditDevices(soc.machine)).toEqual([]);
  });
});
