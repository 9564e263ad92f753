// The block API against the disk image the simulator holds: round trips, requests split
// at the transfer limit, flush, GET_ID, the queue depth with requests waiting beyond it,
// configuration changes, device errors, and argument checks.
import { dmaDeviceAudit } from "@devref/dma-iommu";
import type { TraceRecord } from "@devref/sim";
import { describe, expect, it } from "vitest";
import { done, FN, failure, outcome, pattern, rig, sectors } from "./helpers.js";

/** The most requests the device held at once, from its trace notes. */
function maxOutstanding(trace: readonly TraceRecord[]): number {
  let now = 0;
  let max = 0;
  for (const t of trace) {
    if (t.kind !== "note") continue;
    if (t.text === "virtio-blk-request") max = Math.max(max, ++now);
    if (t.text === "virtio-blk-complete") now--;
  }
  return max;
}

describe("block I/O", () => {
  it("writes land in the image and read back; flush reaches the device", async () => {
    const r = await rig();
    const disk = r.vblk.disk(FN);
    const a = pattern(512, 1);
    const b = pattern(4096, 2);
    const c = pattern(20 * 512, 3); // five pages: a scatterlist
    await done(r, disk.write(1, a));
    await done(r, disk.write(40, b));
    await done(r, disk.write(100, c));
    expect(sectors(r, 1, 1)).toEqual(a);
    expect(sectors(r, 40, 8)).toEqual(b);
    expect(sectors(r, 100, 20)).toEqual(c);
    expect(r.blk.unflushedWrites).toBe(3);
    await done(r, disk.flush());
    expect(r.blk.flushCount).toBe(1);
    expect(r.blk.unflushedWrites).toBe(0);
    r.blk.image.set(pattern(3 * 512, 4), 2000 * 512); // written behind the driver's back
    expect(await done(r, disk.read(2000, 3))).toEqual(pattern(3 * 512, 4));
    expect(await done(r, disk.read(100, 20))).toEqual(c);
    const all = await done(r, disk.read(0, 2048)); // 1 MiB in 16 requests
    expect(Buffer.compare(all, r.blk.image)).toBe(0); // (a deep equal of 1 MiB is slow)
    expect(disk.stats).toMatchObject({ completed: 22, failed: 0, resets: 0 });
    expect(r.problems()).toEqual([]);
    expect(await r.teardown()).toEqual([]);
  });

  it("splits a call larger than the transfer limit and keeps the parts in order", async () => {
    const r = await rig({ driver: { maxTransfer: 8192 } });
    const disk = r.vblk.disk(FN);
    expect(disk.maxTransfer).toBe(8192);
    const data = pattern(40 * 512, 7);
    const before = disk.stats.submitted;
    await done(r, disk.write(64, data));
    expect(disk.stats.submitted - before).toBe(3); // 16 + 16 + 8 sectors
    expect(sectors(r, 64, 40)).toEqual(data);
    expect(await done(r, disk.read(64, 40))).toEqual(data);
    expect(await r.teardown()).toEqual([]);
  });

  it("GET_ID returns the serial", async () => {
    const r = await rig({ soc: { blk: { serial: "vblk-serial-0001" } } });
    expect(await done(r, r.vblk.disk(FN).getId())).toBe("vblk-serial-0001");
    expect(await r.teardown()).toEqual([]);
  });

  it("holds at most queueDepth requests in the device; the rest wait in order", async () => {
    const r = await rig();
    const disk = r.vblk.disk(FN);
    expect(disk.queueDepth).toBe(4);
    for (let i = 0; i < 10; i++) r.blk.image.set(pattern(4096, 10 + i), i * 4096);
    const reads = Array.from({ length: 10 }, (_, i) => disk.read(i * 8, 8));
    expect(disk.inFlight).toBe(4);
    expect(disk.queued).toBe(6);
    await r.soc.settle();
    const got = await Promise.all(reads);
    expect(got).toEqual(got.map((_, i) => pattern(4096, 10 + i)));
    expect(disk.inFlight).toBe(0);
    expect(disk.queued).toBe(0);
    expect(maxOutstanding(r.soc.trace())).toBe(4);
    // One mapping per request in flight, none left.
    const dev = r.fw.bridge!.slots[0]!.device("test")!;
    expect(dmaDeviceAudit(dev).entries.filter((e) => e.kind !== "coherent")).toEqual([]);
    dev.put();
    expect(await r.teardown()).toEqual([]);
  });

  it("a queue depth of one serialises; the ring may be small", async () => {
    const r = await rig({ driver: { queueDepth: 1, ringSize: 8 } });
    const disk = r.vblk.disk(FN);
    expect([disk.queueDepth, disk.ringSize]).toEqual([1, 8]);
    const writes = [0, 1, 2, 3].map((i) => disk.write(i * 16, pattern(8192, i)));
    expect([disk.inFlight, disk.queued]).toEqual([1, 3]);
    await r.soc.settle();
    await Promise.all(writes);
    for (let i = 0; i < 4; i++) expect(sectors(r, i * 16, 16)).toEqual(pattern(8192, i));
    expect(maxOutstanding(r.soc.trace())).toBe(1);
    expect(await r.teardown()).toEqual([]);
  });

  it("works without EVENT_IDX (kicks and interrupts on every request)", async () => {
    const r = await rig({ soc: { blk: { eventIdx: false } } });
    const disk = r.vblk.disk(FN);
    expect(disk.features[0] & (1 << 29)).toBe(0);
    const all = Array.from({ length: 6 }, (_, i) => disk.write(i * 8, pattern(4096, i)));
    await r.soc.settle();
    await Promise.all(all);
    for (let i = 0; i < 6; i++) expect(sectors(r, i * 8, 8)).toEqual(pattern(4096, i));
    expect(await r.teardown()).toEqual([]);
  });

  it("a disk without a write cache needs no flush request", async () => {
    const r = await rig({ soc: { blk: { flush: false } } });
    const disk = r.vblk.disk(FN);
    const before = disk.stats.submitted;
    await done(r, disk.flush());
    expect(disk.stats.submitted).toBe(before);
    expect(r.blk.flushCount).toBe(0);
    expect(await r.teardown()).toEqual([]);
  });

  it("a read-only disk refuses writes with EPERM before anything reaches the device", async () => {
    const r = await rig({ soc: { blk: { readOnly: true } } });
    const disk = r.vblk.disk(FN);
    const e = await failure(r, disk.write(0, new Uint8Array(512)));
    expect(e.code).toBe("EPERM");
    expect(disk.stats.submitted).toBe(0);
    expect(await r.teardown()).toEqual([]);
  });

  it("follows a capacity change, and a request the device refuses fails with EIO", async () => {
    const r = await rig();
    const disk = r.vblk.disk(FN);
    const late = outcome(disk.read(2040, 8)); // taken by the device after it shrank
    r.blk.resize(1024);
    await r.soc.settle();
    await null;
    expect(late.code).toBe("EIO");
    expect(disk.capacity).toBe(1024);
    expect((await failure(r, disk.read(1020, 8))).code).toBe("EINVAL");
    expect(r.logs.map((l) => l.text)).toContain(
      "virtio_blk 0000:00:00.0: virtio-blk: capacity changed from 2048 to 1024 sectors",
    );
    r.blk.resize(4096);
    await r.soc.settle();
    expect(disk.capacity).toBe(4096);
    await done(r, disk.write(4000, pattern(4096, 1)));
    expect(sectors(r, 4000, 8)).toEqual(pattern(4096, 1));
    expect(await r.teardown()).toEqual([]);
  });

  it("rejects bad arguments with EINVAL and submits nothing", async () => {
    const r = await rig();
    const disk = r.vblk.disk(FN);
    const bad: Promise<unknown>[] = [
      disk.read(-1, 1),
      disk.read(0, 0),
      disk.read(1.5, 1),
      disk.read(0, Number.NaN),
      disk.read(2047, 2),
      disk.read("0" as never, 1),
      disk.write(0, new Uint8Array(100)),
      disk.write(0, new Uint8Array(0)),
      disk.write(0, [1, 2, 3] as never),
      disk.write(2047, new Uint8Array(1024)),
    ];
    for (const p of bad) expect((await failure(r, p)).code).toBe("EINVAL");
    expect(disk.stats.submitted).toBe(0);
    expect(await r.teardown()).toEqual([]);
  });

  it("a 4096-byte logical block addresses in 4 KiB units", async () => {
    const r = await rig({ soc: { blk: { blkSize: 4096 } } });
    const disk = r.vblk.disk(FN);
    expect(disk.capacity).toBe(256);
    await done(r, disk.write(3, pattern(8192, 5)));
    expect(sectors(r, 24, 16)).toEqual(pattern(8192, 5));
    expect((await failure(r, disk.write(0, new Uint8Array(512)))).code).toBe("EINVAL");
    expect(await r.teardown()).toEqual([]);
  });
});
