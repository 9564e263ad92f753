// A TLB command whose busy bit never clears: the driver gives up after its 100 polls,
// logs the kernel's message, keeps ETIMEDOUT as the last command error and goes on; at
// probe (the reset's invalidation) the probe fails with ETIMEDOUT.
import {
  DMA_BIDIRECTIONAL,
  dmaMappingError,
  dmaMapSingle,
  dmaUnmapSingle,
} from "@devref/dma-iommu";
import { describe, expect, it } from "vitest";
import { ENGINE_SID, rig } from "./helpers.js";

describe("a stuck TLB command", () => {
  it("t8110: a map's invalidation times out, is logged as ETIMEDOUT, and nothing hangs", async () => {
    const r = await rig();
    const d = r.dart();
    const buf = r.system.allocBuffer(0x4000);
    r.soc.faults.inject({ kind: "stuck-command", target: "dart0" });
    const addr = r.engines.run("engine0", (dev) =>
      dmaMapSingle(dev, buf, 0x4000, DMA_BIDIRECTIONAL),
    )!;
    expect(dmaMappingError(r.engine!, addr)).toBe(false); // the kernel ignores the error too
    expect(d.stats.timeouts).toBe(1);
    expect(d.lastCommandError?.code).toBe("ETIMEDOUT");
    expect(d.lastCommandError?.message).toMatch(/100 µs/);
    expect(r.errors()).toEqual([
      `apple-dart dart0: busy bit did not clear after command 1 for stream ${ENGINE_SID}`,
    ]);
    // The DART ignores commands while one is running: every later one times out as well.
    r.engines.run("engine0", (dev) => dmaUnmapSingle(dev, addr, 0x4000, DMA_BIDIRECTIONAL));
    expect(d.stats.timeouts).toBe(2);
    r.system.freeBuffer(buf, 0x4000);
    expect(r.teardown()).toEqual([]);
  });

  it("t8020: the stream-select command's message names the stream bitmap", async () => {
    const r = await rig({ dart: { variant: "t8020" } });
    r.soc.faults.inject({ kind: "stuck-command", target: "dart0" });
    const buf = r.system.allocBuffer(0x4000);
    const addr = r.engines.run("engine0", (dev) =>
      dmaMapSingle(dev, buf, 0x4000, DMA_BIDIRECTIONAL),
    )!;
    expect(r.errors()).toEqual([
      "apple-dart dart0: busy bit did not clear after command 100000 for streams 4",
    ]);
    r.engines.run("engine0", (dev) => dmaUnmapSingle(dev, addr, 0x4000, DMA_BIDIRECTIONAL));
    r.system.freeBuffer(buf, 0x4000);
    expect(r.teardown()).toEqual([]);
  });

  it("a command stuck for a while: it times out, and once the DART is done the next one works", async () => {
    const r = await rig();
    const d = r.dart();
    r.soc.faults.inject({ kind: "stuck-command", target: "dart0", durationNs: 200_000 });
    const buf = r.system.allocBuffer(0x4000);
    const addr = r.engines.run("engine0", (dev) =>
      dmaMapSingle(dev, buf, 0x4000, DMA_BIDIRECTIONAL),
    )!;
    expect(d.stats.timeouts).toBe(1);
    await r.soc.settle(); // the DART finishes the command 200 µs later
    expect(r.master.write32(addr, 5)).toBe(true);
    r.engines.run("engine0", (dev) => dmaUnmapSingle(dev, addr, 0x4000, DMA_BIDIRECTIONAL));
    expect(d.stats.timeouts).toBe(1);
    expect(r.master.write32(addr, 6)).toBe(false); // flushed
    expect(r.soc.memory.read32(buf)).toBe(5);
    r.system.freeBuffer(buf, 0x4000);
    expect(r.teardown()).toEqual([]);
  });

  it("stuck at the reset: the probe fails with ETIMEDOUT and the engine waits for its IOMMU", async () => {
    const r = await rig({
      before: (soc) => soc.faults.inject({ kind: "stuck-command", target: "dart0" }),
    });
    expect(r.darts.dart("dart0")).toBeNull();
    expect(r.errors().join("\n")).toMatch(/busy bit did not clear after command 1 for stream 0\b/);
    const dart = r.fw.device("dart0", "test")!;
    expect(dart.isBound).toBe(false);
    dart.put();
    expect(r.engines.isBound("engine0")).toBe(false); // deferred: no IOMMU named dart0
    expect(r.teardown()).toEqual([]);
  });
});
