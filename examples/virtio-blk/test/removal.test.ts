// Removal mid-I/O: by surprise (the card pulled, the slot's link down), in order (the
// attention button, the driver unregistered). Requests the device finished complete;
// everything else fails with ENODEV; a completed write is in the image; nothing is left.
import { describe, expect, it } from "vitest";
import type { VirtioBlkDisk } from "../src/index.js";
import {
  FN,
  failure,
  flushMicrotasks,
  leaveStatus,
  outcome,
  pattern,
  type Rig,
  rig,
  sectors,
} from "./helpers.js";

interface Workload {
  readonly writes: { lba: number; data: Uint8Array; o: ReturnType<typeof outcome<void>> }[];
  readonly reads: { lba: number; o: ReturnType<typeof outcome<Uint8Array>> }[];
}

/** Four 4 KiB writes and four reads of known data: eight requests, four of them waiting. */
function workload(r: Rig, disk: VirtioBlkDisk): Workload {
  for (let i = 0; i < 4; i++) r.blk.image.set(pattern(4096, 50 + i), (400 + i * 8) * 512);
  const writes = [0, 1, 2, 3].map((i) => {
    const data = pattern(4096, i);
    return { lba: i * 8, data, o: outcome(disk.write(i * 8, data)) };
  });
  const reads = [0, 1, 2, 3].map((i) => ({
    lba: 400 + i * 8,
    o: outcome(disk.read(400 + i * 8, 8)),
  }));
  return { writes, reads };
}

/** Every request settled: completed correctly, or failed with ENODEV. Returns [ok, failed]. */
function checkAfterRemoval(r: Rig, w: Workload): [number, number] {
  let ok = 0;
  let failed = 0;
  for (const x of w.writes) {
    expect(x.o.settled).toBe(true);
    if (x.o.code === undefined) {
      ok++;
      expect(sectors(r, x.lba, 8)).toEqual(x.data); // a completed write is in the image
    } else {
      failed++;
      expect(x.o.code).toBe("ENODEV");
    }
  }
  for (const [i, x] of w.reads.entries()) {
    expect(x.o.settled).toBe(true);
    if (x.o.code === undefined) {
      ok++;
      expect(x.o.value).toEqual(pattern(4096, 50 + i));
    } else {
      failed++;
      expect(x.o.code).toBe("ENODEV");
    }
  }
  return [ok, failed];
}

describe("surprise removal", () => {
  it("mid-I/O: finished requests complete, the rest fail with ENODEV, nothing is left", async () => {
    const r = await rig();
    const disk = r.vblk.disk(FN);
    const w = workload(r, disk);
    expect([disk.inFlight, disk.queued]).toEqual([4, 4]);
    r.soc.runUntil(() => r.blk.requestsCompleted >= 3);
    r.soc.faults.inject({ kind: "unplug", target: "vblk0" });
    await r.soc.settle();
    await flushMicrotasks();
    const [ok, failed] = checkAfterRemoval(r, w);
    expect(ok).toBeGreaterThanOrEqual(3);
    expect(failed).toBeGreaterThan(0);
    expect(disk.state).toBe("gone");
    expect(r.vblk.diskNames()).toEqual([]);
    expect((await failure(r, disk.read(0, 1))).code).toBe("ENODEV");
    expect((await failure(r, disk.flush())).code).toBe("ENODEV");
    expect(r.soc.dmaUseAfterFree()).toEqual([]);
    expect(await r.teardown()).toEqual([]);
  });

  it("entries the device wrote before the interrupt was handled still complete", async () => {
    const r = await rig();
    const disk = r.vblk.disk(FN);
    const data = pattern(4096, 9);
    const o = outcome(disk.write(0, data));
    // Run until the used entry is written, then pull the card before the MSI is handled.
    r.soc.runUntil(() => r.blk.requestsCompleted === 1);
    r.soc.faults.inject({ kind: "unplug", target: "vblk0" });
    await r.soc.settle();
    await flushMicrotasks();
    expect(o).toMatchObject({ settled: true, value: undefined });
    expect(o.code).toBeUndefined();
    expect(sectors(r, 0, 8)).toEqual(data);
    expect(await r.teardown()).toEqual([]);
  });

  it("at every step of an I/O burst, behind the DART: nothing hangs, is lost or leaks", async () => {
    // Count the steps of the burst in a clean run, then pull the card at each of them.
    const clean = await rig({ iommu: true, soc: { trace: "off" } });
    const first = clean.soc.stepCount + 1;
    const cw = workload(clean, clean.vblk.disk(FN));
    await clean.soc.settle();
    await flushMicrotasks();
    expect(checkAfterRemoval(clean, cw)).toEqual([8, 0]);
    const last = clean.soc.stepCount;
    expect(await clean.teardown()).toEqual([]);
    let removed = 0;
    for (let step = first; step <= last; step++) {
      const r = await rig({ iommu: true, soc: { trace: "off" } });
      expect(r.soc.stepCount + 1).toBe(first);
      r.soc.faults.schedule({ step }, { kind: "unplug", target: "vblk0" });
      const w = workload(r, r.vblk.disk(FN));
      await r.soc.settle();
      await flushMicrotasks();
      const [, failed] = checkAfterRemoval(r, w);
      if (failed > 0) removed++;
      expect(r.soc.dmaUseAfterFree()).toEqual([]);
      expect(await r.teardown()).toEqual([]);
    }
    expect(removed).toBeGreaterThan(0);
  }, 120_000);

  it("the slot's link going down (host.surpriseRemove) does the same; re-insertion rebinds", async () => {
    const r = await rig({ iommu: true });
    const disk = r.vblk.disk(FN);
    const w = workload(r, disk);
    r.soc.runUntil(() => r.blk.requestsCompleted >= 1);
    r.ref.pcie.surpriseRemove(0);
    await r.soc.settle();
    await flushMicrotasks();
    checkAfterRemoval(r, w);
    expect(r.vblk.diskNames()).toEqual([]);
    r.ref.pcie.insert(0, r.blk);
    await r.soc.settle();
    const again = r.vblk.disk(FN);
    expect(again).not.toBe(disk);
    await r.soc.settle();
    const data = pattern(4096, 77);
    const p = again.write(8, data);
    await r.soc.settle();
    await p;
    expect(sectors(r, 8, 8)).toEqual(data);
    expect(r.soc.dmaUseAfterFree()).toEqual([]);
    expect(await r.teardown()).toEqual([]);
  });

  it("during a probe that waits for a slow reset: the probe is abandoned, nothing is left", async () => {
    const r = await rig({ soc: { blk: { resetLatencyNs: 5_000_000 } } });
    leaveStatus(r, 1); // firmware's leftover: the probe's reset takes 5 ms
    r.reregister();
    r.soc.faults.schedule({ timeNs: r.soc.nowNs + 2_000_000 }, { kind: "unplug", target: "vblk0" });
    await r.soc.settle();
    expect(r.vblk.diskNames()).toEqual([]);
    expect(r.soc.machine.busy).toBe(false);
    expect(await r.teardown()).toEqual([]);
  });
});

describe("orderly removal", () => {
  it("the attention button with I/O in flight: the device is reset, the rest fails with ENODEV", async () => {
    const r = await rig();
    const disk = r.vblk.disk(FN);
    const w = workload(r, disk);
    r.soc.runUntil(() => r.blk.requestsCompleted >= 2);
    r.ref.pcie.requestRemoval(0);
    await r.soc.settle();
    await flushMicrotasks();
    const [ok, failed] = checkAfterRemoval(r, w);
    expect(ok).toBeGreaterThanOrEqual(2);
    expect(failed).toBeGreaterThan(0);
    expect(r.blk.deviceStatus).toBe(0); // remove() reset the device before giving buffers back
    expect(r.soc.dmaUseAfterFree()).toEqual([]);
    expect(await r.teardown()).toEqual([]);
  });

  it("unregistering the driver with requests queued fails them with ENODEV and leaks nothing", async () => {
    const r = await rig({ iommu: true });
    const disk = r.vblk.disk(FN);
    const w = workload(r, disk);
    const leaks = await r.teardown();
    await flushMicrotasks();
    checkAfterRemoval(r, w);
    expect(w.writes.every((x) => x.o.code === "ENODEV")).toBe(true);
    expect(leaks).toEqual([]);
    expect(r.soc.dmaUseAfterFree()).toEqual([]);
  });
});
