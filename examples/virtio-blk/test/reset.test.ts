// Device errors: a DMA error on a ring access makes the device set DEVICE_NEEDS_RESET; the
// driver fails what was in flight with EIO, resets (polling a slow reset on the clock),
// brings the queue back and serves what waited. An IOMMU fault behind the DART does the
// same, or fails one request's data with EIO.
import { describe, expect, it } from "vitest";
import {
  done,
  FN,
  flushMicrotasks,
  leaveStatus,
  outcome,
  pattern,
  rig,
  sectors,
} from "./helpers.js";

describe("DEVICE_NEEDS_RESET", () => {
  it("a ring DMA error: in-flight requests fail with EIO, the device is reset, queued ones go on", async () => {
    const r = await rig();
    const disk = r.vblk.disk(FN);
    r.soc.faults.inject({ kind: "dma-error", target: "vblk0", count: 1 });
    const a = outcome(disk.write(0, pattern(4096, 1))); // its avail ring read fails
    const b = outcome(disk.write(8, pattern(4096, 2)));
    const c = outcome(disk.write(16, pattern(4096, 3)));
    const d = outcome(disk.write(24, pattern(4096, 4)));
    const e = outcome(disk.write(32, pattern(4096, 5))); // waits for a slot
    expect([disk.inFlight, disk.queued]).toEqual([4, 1]);
    await r.soc.settle();
    await flushMicrotasks();
    expect([a.code, b.code, c.code, d.code]).toEqual(["EIO", "EIO", "EIO", "EIO"]);
    expect(e).toMatchObject({ settled: true });
    expect(e.code).toBeUndefined();
    expect(sectors(r, 32, 8)).toEqual(pattern(4096, 5));
    expect(disk.stats.resets).toBe(1);
    expect(disk.state).toBe("live");
    expect(r.blk.deviceStatus).toBe(15);
    expect(r.problems()).toEqual([
      "virtio_blk 0000:00:00.0: virtio-blk: the device set DEVICE_NEEDS_RESET; failing the requests in flight and resetting the device",
    ]);
    // The disk keeps working.
    await done(r, disk.write(0, pattern(4096, 9)));
    expect(await done(r, disk.read(0, 8))).toEqual(pattern(4096, 9));
    expect(await r.teardown()).toEqual([]);
  });

  it("polls a slow reset on the clock; requests made meanwhile wait and then complete", async () => {
    const r = await rig({ soc: { blk: { resetLatencyNs: 4_000_000 } } });
    leaveStatus(r, 1);
    await r.rebind();
    const disk = r.vblk.disk(FN);
    r.soc.faults.inject({ kind: "dma-error", target: "vblk0", count: 1 });
    const a = outcome(disk.read(0, 8));
    r.soc.runUntil(() => disk.state === "resetting");
    const b = outcome(disk.read(8, 8)); // made while the device resets
    expect([disk.inFlight, disk.queued]).toEqual([1, 1]);
    const t0 = r.soc.nowNs;
    await r.soc.settle();
    await flushMicrotasks();
    expect(a.code).toBe("EIO");
    expect(b.value).toEqual(sectors(r, 8, 8));
    expect(r.soc.nowNs - t0).toBeGreaterThanOrEqual(4_000_000);
    expect(disk.state).toBe("live");
    expect(await r.teardown()).toEqual([]);
  });

  it("removal while the device resets fails everything with ENODEV and leaks nothing", async () => {
    const r = await rig({ soc: { blk: { resetLatencyNs: 4_000_000 } } });
    leaveStatus(r, 1);
    await r.rebind();
    const disk = r.vblk.disk(FN);
    r.soc.faults.inject({ kind: "dma-error", target: "vblk0", count: 1 });
    const a = outcome(disk.read(0, 8));
    r.soc.runUntil(() => disk.state === "resetting");
    const b = outcome(disk.read(8, 8));
    r.soc.faults.schedule({ timeNs: r.soc.nowNs + 1_000_000 }, { kind: "unplug", target: "vblk0" });
    await r.soc.settle();
    await flushMicrotasks();
    expect([a.code, b.code]).toEqual(["ENODEV", "ENODEV"]);
    expect(disk.state).toBe("gone");
    expect(r.soc.dmaUseAfterFree()).toEqual([]);
    expect(await r.teardown()).toEqual([]);
  });
});

describe("behind the DART", () => {
  it("an IOMMU fault on the stream: the DART driver reports it, the request fails with EIO, the disk recovers", async () => {
    const r = await rig({ iommu: true });
    const disk = r.vblk.disk(FN);
    r.soc.faults.inject({ kind: "iommu-fault", target: "dart0", sid: 1, next: true });
    const a = outcome(disk.read(0, 8));
    await r.soc.settle();
    await flushMicrotasks();
    expect(a.code).toBe("EIO");
    expect(r.logs.some((l) => l.device === "dart0" && /fault/i.test(l.text))).toBe(true);
    const data = pattern(8192, 4);
    await done(r, disk.write(0, data));
    expect(await done(r, disk.read(0, 16))).toEqual(data);
    expect(r.soc.dmaUseAfterFree()).toEqual([]);
    expect(await r.teardown()).toEqual([]);
  });
});
