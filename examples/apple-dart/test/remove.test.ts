// Removing the DART, in order or by surprise, while a client uses it: the IOMMU is
// unregistered, the client loses its domain cleanly (its DMA stops, its mappings fail with
// an errno), every table page and every reference goes back.
import {
  DL_FLAG_AUTOREMOVE_SUPPLIER,
  DL_FLAG_MANAGED,
  DL_FLAG_PM_RUNTIME,
  DL_STATE_ACTIVE,
  deviceLinks,
  holders,
} from "@devref/device-core";
import {
  DMA_BIDIRECTIONAL,
  dmaMappingError,
  dmaMapSingle,
  dmaUnmapSingle,
  iommuGetDomainForDev,
} from "@devref/dma-iommu";
import { physAddr } from "@devref/raw-device";
import { DART_T8110, DMA_STATUS } from "@devref/sim";
import { describe, expect, it } from "vitest";
import { ENGINE_SID, rig } from "./helpers.js";

describe("removing the DART", () => {
  it("in order (driver unregistered): its clients unbind first (device link), streams are blocked, all back", async () => {
    const r = await rig();
    const buf = r.system.allocBuffer(0x4000);
    const addr = r.engines.run("engine0", (dev) =>
      dmaMapSingle(dev, buf, 0x4000, DMA_BIDIRECTIONAL),
    )!;
    expect(r.master.write32(addr, 1)).toBe(true);
    expect(r.system.iommuPages.bytesInUse).toBeGreaterThan(0);
    const dart = r.fw.device("dart0", "test")!;
    expect(holders(dart).map((h) => h.label)).toContain("iommu dart0");
    // apple_dart_probe_device linked the client to the DART.
    const [link] = deviceLinks(r.engine!).suppliers;
    expect(link?.supplier).toBe("dart0");
    expect(link?.state).toBe(DL_STATE_ACTIVE);
    expect(link?.flags).toBe(DL_FLAG_PM_RUNTIME | DL_FLAG_AUTOREMOVE_SUPPLIER | DL_FLAG_MANAGED);
    r.platform.unregisterDriver(r.darts.driver);
    expect(link?.deleted).toBe(true);
    // The reset at removal blocked the stream before the tables went.
    expect(r.model.port.read32(DART_T8110.TCR + 4 * ENGINE_SID)).toBe(0);
    expect(r.master.write32(addr, 2)).toBe(false);
    expect(r.master.status).toBe(DMA_STATUS.IOMMU_BLOCKED);
    expect(r.soc.memory.read32(buf)).toBe(1);
    expect(r.system.iommuPages.bytesInUse).toBe(0);
    expect(r.system.iommus.has("dart0")).toBe(false);
    expect(iommuGetDomainForDev(r.engine!)).toBeNull();
    expect(holders(dart).map((h) => h.label)).not.toContain("iommu dart0");
    expect(
      holders(r.engine!)
        .map((h) => h.label)
        .filter((l) => l.includes("dart0")),
    ).toEqual([]);
    // The device link apple_dart_probe_device adds unbound the client first: its binding,
    // and the mapping it never unmapped, went before the DART's (dma-debug reports it).
    expect(r.engine!.isBound).toBe(false);
    expect(r.engine!.isRegistered).toBe(true);
    expect(
      r.logs.some((l) =>
        /pending DMA allocations while released .*\[via iommu-dma\]/.test(l.message),
      ),
    ).toBe(true);
    dart.put();
    r.system.freeBuffer(buf, 0x4000);
    expect(r.teardown()).toEqual([]);
    expect(r.soc.dmaUseAfterFree()).toEqual([]);
  });

  it("by surprise: the hardware vanishes mid-use, then the bus removes the device", async () => {
    const r = await rig();
    const d = r.dart();
    const buf = r.system.allocBuffer(0x8000);
    const addr = r.engines.run("engine0", (dev) =>
      dmaMapSingle(dev, buf, 0x4000, DMA_BIDIRECTIONAL),
    )!;
    r.soc.faults.inject({ kind: "unplug", target: "dart0" });
    expect(r.master.write32(addr, 1)).toBe(false); // nothing translates any more
    // The driver still runs: its commands read all-ones and give up at once (ENODEV).
    const other = r.engines.run("engine0", (dev) =>
      dmaMapSingle(dev, physAddr(buf + 0x4000), 0x4000, DMA_BIDIRECTIONAL),
    )!;
    expect(d.lastCommandError?.code).toBe("ENODEV");
    expect(d.stats.timeouts).toBe(0);
    // The bus learns of it: remove() runs on dead hardware, the IOMMU is unregistered.
    const dart = r.fw.device("dart0", "test")!;
    r.platform.unplug(dart);
    await r.soc.settle();
    expect(r.darts.dart("dart0")).toBeNull();
    expect(r.system.iommus.has("dart0")).toBe(false);
    expect(r.system.iommuPages.bytesInUse).toBe(0);
    expect(dart.lifecycle).toBe("deleted");
    dart.put();
    for (const a of [addr, other]) {
      if (!dmaMappingError(r.engine!, a)) {
        r.engines.run("engine0", (dev) => dmaUnmapSingle(dev, a, 0x4000, DMA_BIDIRECTIONAL));
      }
    }
    r.system.freeBuffer(buf, 0x8000);
    expect(r.teardown()).toEqual([]);
  });

  it("the engine goes first: its default domain is freed and its stream blocked", async () => {
    const r = await rig();
    const d = r.dart();
    expect(d.streamMode(ENGINE_SID)).toBe("translate");
    r.platform.unregister(r.engine!);
    r.engine = null;
    await r.soc.settle();
    expect(d.streamMode(ENGINE_SID)).toBe("disabled");
    expect(d.domainOf(ENGINE_SID)).toBeNull();
    expect(r.model.port.read32(DART_T8110.TCR + 4 * ENGINE_SID)).toBe(0);
    expect(r.system.iommuPages.bytesInUse).toBe(0);
    expect(r.teardown()).toEqual([]);
  });
});
