// Probe: the capabilities, the status handshake in order, feature negotiation (VERSION_1,
// ACCESS_PLATFORM behind the DART, what the driver supports), the queue in coherent
// memory, the device configuration, and the ways a probe fails without leaving anything.
import { dmaDeviceAudit } from "@devref/dma-iommu";
import type { TraceRecord } from "@devref/sim";
import { describe, expect, it } from "vitest";
import { DRIVER_FEATURES } from "../src/index.js";
import { done, FN, leaveStatus, pattern, rig, sectors } from "./helpers.js";

const STATUS_OFFSET = 20; // device_status in the common configuration (BAR4 + 0)

/** Values written to device_status, in order. */
function statusWrites(trace: readonly TraceRecord[]): number[] {
  return trace
    .filter(
      (t) =>
        t.kind === "mmio" &&
        t.source === "vblk0.bar4" &&
        t.write &&
        t.offset === STATUS_OFFSET &&
        t.width === 1,
    )
    .map((t) => (t.kind === "mmio" ? t.value : -1));
}

describe("probe", () => {
  it("follows the handshake: reset, ACKNOWLEDGE, DRIVER, FEATURES_OK, DRIVER_OK", async () => {
    const r = await rig();
    expect(r.vblk.diskNames()).toEqual([FN]);
    expect(statusWrites(r.soc.trace())).toEqual([0, 1, 3, 11, 15]);
    expect(r.blk.deviceStatus).toBe(15);
    expect(r.problems()).toEqual([]);
    expect(await r.teardown()).toEqual([]);
  });

  it("negotiates VERSION_1 and what the driver supports, no ACCESS_PLATFORM without an IOMMU", async () => {
    const r = await rig();
    const disk = r.vblk.disk(FN);
    const [lo, hi] = disk.features;
    // VERSION_1 (32); SEG_MAX (2), BLK_SIZE (6), FLUSH (9), EVENT_IDX (29) offered and taken;
    // INDIRECT_DESC (28) offered and left.
    expect(hi).toBe(1);
    expect(lo).toBe(((1 << 2) | (1 << 6) | (1 << 9) | (1 << 29)) >>> 0);
    expect(r.blk.deviceFeatures[0] & (1 << 28)).not.toBe(0);
    expect(lo & ~DRIVER_FEATURES[0]).toBe(0);
    expect(disk.writeCache).toBe(true);
    expect(disk.readOnly).toBe(false);
    expect(disk.irqMode).toBe("msix");
    expect(disk.capacity).toBe(2048);
    expect(disk.blockSize).toBe(512);
    expect(await r.teardown()).toEqual([]);
  });

  it("behind the DART accepts ACCESS_PLATFORM and gives the device IOVAs", async () => {
    const r = await rig({ iommu: true });
    const disk = r.vblk.disk(FN);
    expect(disk.features[1]).toBe(3); // VERSION_1 | ACCESS_PLATFORM
    const q = r.blk.queues[0]!;
    expect(q.enabled).toBe(true);
    expect(q.size).toBe(128);
    const dev = r.fw.bridge!.slots[0]!.device("test")!;
    const audit = dmaDeviceAudit(dev);
    expect(audit.ops).toBe("iommu-dma");
    const ring = audit.entries.find((e) => e.kind === "coherent")!;
    expect(q.desc).toBe(ring.dmaAddr);
    expect(q.desc).not.toBe(ring.phys); // an IOVA, not the physical address
    dev.put();
    const data = pattern(8192, 3);
    await done(r, disk.write(16, data));
    expect(sectors(r, 16, 16)).toEqual(data);
    expect(await done(r, disk.read(16, 16))).toEqual(data);
    expect(r.problems()).toEqual([]);
    expect(await r.teardown()).toEqual([]);
  });

  it("refuses a device behind an IOMMU that does not offer ACCESS_PLATFORM, and marks it FAILED", async () => {
    const r = await rig({ iommu: true, soc: { blk: { accessPlatform: false } } });
    expect(r.vblk.diskNames()).toEqual([]);
    expect(r.problems().join("\n")).toMatch(/does not offer VIRTIO_F_ACCESS_PLATFORM/);
    expect(r.blk.deviceStatus & 0x80).toBe(0x80); // FAILED
    expect(statusWrites(r.soc.trace())).toEqual([0, 1, 3, 0x83]);
    expect(await r.teardown()).toEqual([]);
  });

  it("the device refuses FEATURES_OK when a driver leaves ACCESS_PLATFORM out (the model's rule)", async () => {
    // A device offering ACCESS_PLATFORM without an IOMMU: the driver accepts it, the
    // device keeps FEATURES_OK.
    const r = await rig({ soc: { blk: { accessPlatform: true } } });
    expect(r.vblk.disk(FN).features[1]).toBe(3);
    expect(await r.teardown()).toEqual([]);
  });

  it("reads the configuration: block size, seg_max, size_max, read-only, no FLUSH", async () => {
    const r = await rig({
      soc: { blk: { blkSize: 4096, segMax: 2, sizeMax: 2048, readOnly: true, flush: false } },
    });
    const disk = r.vblk.disk(FN);
    expect(disk.blockSize).toBe(4096);
    expect(disk.capacity).toBe(256);
    expect(disk.readOnly).toBe(true);
    expect(disk.writeCache).toBe(false);
    // Two descriptors a request of at most 2048 bytes each: one page a request.
    expect(disk.maxTransfer).toBe(4096);
    r.blk.image.set(pattern(3 * 4096, 9), 4096);
    expect(await done(r, disk.read(1, 3))).toEqual(pattern(3 * 4096, 9));
    expect(await r.teardown()).toEqual([]);
  });

  it("waits for a slow reset on the clock, and gives up after a second", async () => {
    // From status 0 a reset is immediate (nothing to undo): the first probe succeeds. With a
    // status left behind (firmware used the device), the reset takes the model's latency and
    // the next probe polls for it on the clock.
    const slow = await rig({ soc: { blk: { resetLatencyNs: 3_000_000 } } });
    expect(slow.vblk.diskNames()).toEqual([FN]);
    leaveStatus(slow, 1);
    const t0 = slow.soc.nowNs;
    await slow.rebind();
    expect(slow.vblk.diskNames()).toEqual([FN]);
    expect(slow.soc.nowNs - t0).toBeGreaterThanOrEqual(3_000_000);
    const data = pattern(4096, 5);
    await done(slow, slow.vblk.disk(FN).write(0, data));
    expect(sectors(slow, 0, 8)).toEqual(data);
    expect(await slow.teardown()).toEqual([]);

    const stuck = await rig({ soc: { blk: { resetLatencyNs: 2_000_000_000 } } });
    leaveStatus(stuck, 1);
    await stuck.rebind();
    expect(stuck.vblk.diskNames()).toEqual([]);
    expect(stuck.problems().join("\n")).toMatch(/did not reset: .*did not read 0 within 1000 ms/);
    expect(await stuck.teardown()).toEqual([]);
  });

  it("fails with ENODEV on a machine without a DMA layer", async () => {
    const { createReferenceSoc, describeSoc } = await import("@devref/sim");
    const { PciBus, PlatformBus } = await import("@devref/bus");
    const { VirtioBlkDriver } = await import("../src/index.js");
    const logs: string[] = [];
    const { soc } = createReferenceSoc({
      iommu: false,
      smc: false,
      logSink: (l) => logs.push(l.text),
    });
    const pci = new PciBus({ machine: soc.machine });
    const vblk = new VirtioBlkDriver({ timers: soc.events });
    pci.registerDriver(vblk.driver);
    using _fw = describeSoc(soc, { platform: new PlatformBus({ machine: soc.machine }), pci });
    await soc.settle();
    expect(vblk.diskNames()).toEqual([]);
    expect(logs.join("\n")).toMatch(/no DMA layer/);
  });

  it("checks its options", async () => {
    const { VirtioBlkDriver } = await import("../src/index.js");
    const { soc } = (await import("@devref/sim")).createReferenceSoc({ smc: false });
    const timers = soc.events;
    for (const bad of [
      {},
      { timers: {} },
      { timers, queueDepth: 0 },
      { timers, queueDepth: 65 },
      { timers, ringSize: 100 },
      { timers, maxTransfer: 5000 },
      { timers, irq: "msi" },
      { timers, name: "" },
    ]) {
      // @ts-expect-error wrong options on purpose
      expect(() => new VirtioBlkDriver(bad)).toThrowError(/EINVAL/);
    }
    const vblk = new VirtioBlkDriver({ timers });
    expect(() => vblk.disk("0000:00:01.0")).toThrowError(/ENODEV.*no disk '0000:00:01.0'/);
    expect(() => vblk.disk(7 as never)).toThrowError(/EINVAL/);
  });
});
