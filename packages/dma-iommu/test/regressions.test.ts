// Regression tests for the promises "no stored borrow, no corruption, removal at any
// moment": each is named after the issue item it pins down.

import { definePlatformDriver } from "@devref/bus";
import { deviceStateOf } from "@devref/device-core/unsafe";
import {
  BuddyAllocator,
  DevrefError,
  dmaAddr,
  holders,
  type PhysAddr,
  physAddr,
  refcountOf,
} from "@devref/raw-device";
import { describe, expect, it } from "vitest";
import {
  DMA_BIDIRECTIONAL,
  DMA_FROM_DEVICE,
  DMA_MAPPING_ERROR,
  DMA_TO_DEVICE,
  dmaAllocCoherent,
  dmaConfigure,
  dmaDeviceAudit,
  dmaMapSingle,
  dmaSyncSingleForCpu,
  dmaUnmapSingle,
  type IommuDomain,
  type IommuOps,
  iommuDeviceRegister,
  iommuGetDomainForDev,
  iommuIovaToPhys,
} from "../src/index.js";
import { addDevice, addTestIommu, makeEnv } from "./dma-helpers.js";
import { expectCode } from "./expect-code.js";

/** Puts (and disposes) every reference-like value an object exposes, as a careless caller would. */
function putEverythingHandedOut(obj: object): void {
  const names = new Set<string>();
  for (
    let o: object | null = obj;
    o !== null && o !== Object.prototype;
    o = Object.getPrototypeOf(o)
  )
    for (const k of Object.getOwnPropertyNames(o)) names.add(k);
  names.delete("constructor");
  for (const k of names) {
    let v: unknown;
    try {
      v = (obj as Record<string, unknown>)[k];
    } catch {
      continue;
    }
    for (const x of Array.isArray(v) ? v : [v]) {
      if (typeof x !== "object" || x === null) continue;
      const ref = x as { put?: () => void; [Symbol.dispose]?: () => void };
      if (typeof ref.put !== "function") continue;
      try {
        ref.put();
      } catch {}
      try {
        ref[Symbol.dispose]?.();
      } catch {}
    }
  }
}

describe("regressions", () => {
  it("item 8: a caller's put or dispose of what the IOMMU hands out cannot drop the core's references", () => {
    const env = makeEnv();
    const mmu = addTestIommu(env, { name: "smmu8" });
    const d = addDevice(env, { name: "gpu8", iommus: [{ iommu: "smmu8", ids: [3] }] });
    const iommu = mmu.iommu();
    const hwCount = refcountOf(mmu.ref);
    const devCount = refcountOf(d.ref);
    // The core's own references, as raw-device lists them.
    const coreRefs = (r: typeof d.ref, label: string): number =>
      holders(r).filter((h) => h.label === label).length;
    expect(coreRefs(mmu.ref, "iommu smmu8")).toBe(1);
    expect(coreRefs(d.ref, "iommu client smmu8")).toBe(1);
    // Whatever the IOMMU object, its per-device data and its groups expose, put it all.
    putEverythingHandedOut(iommu);
    putEverythingHandedOut(d.ref.iommu!);
    for (const g of iommu.groupList) putEverythingHandedOut(g);
    expect(refcountOf(mmu.ref)).toBe(hwCount);
    expect(refcountOf(d.ref)).toBe(devCount);
    // What a caller may have: fresh references of its own, which it puts (once or twice).
    const hw = iommu.getHwDevice("test hw")!;
    expect(hw.name).toBe("smmu8");
    expect(refcountOf(mmu.ref)).toBe(hwCount + 1);
    hw.put();
    try {
      hw.put(); // a second put of one's own reference drops nothing more
    } catch {}
    expect(refcountOf(mmu.ref)).toBe(hwCount);
    {
      const clients = iommu.getClientRefs("test clients");
      expect(clients.map((c) => c.name)).toEqual(["gpu8"]);
      expect(refcountOf(d.ref)).toBe(devCount + 1);
      for (const c of clients) {
        using _c = c;
      }
    }
    expect(refcountOf(d.ref)).toBe(devCount);
    expect(iommu.clientNames).toEqual(["gpu8"]);
    expect(iommu.hwDeviceName).toBe("smmu8");
    expect(coreRefs(mmu.ref, "iommu smmu8")).toBe(1);
    expect(coreRefs(d.ref, "iommu client smmu8")).toBe(1);
    // The core still holds exactly its own references and gives them back once.
    env.bus.unbind(mmu.ref);
    expect(coreRefs(mmu.ref, "iommu smmu8")).toBe(0);
    expect(coreRefs(d.ref, "iommu client smmu8")).toBe(0);
    expect(refcountOf(d.ref)).toBe(devCount - 1);
    expect(iommu.getHwDevice("late")).toBeNull();
    expect(iommu.getClientRefs("late")).toEqual([]);
  });

  it("item 13: unmapping DMA_MAPPING_ERROR or an unknown address is a DevrefError; bad attrs change nothing", () => {
    const env = makeEnv();
    const d = addDevice(env, { name: "n13" }); // 32-bit: a high buffer bounces
    const buf = env.system.allocBuffer(4096, "high");
    const a = d.run((dev) => dmaMapSingle(dev, buf, 2048, DMA_TO_DEVICE));
    const pool = env.system.swiotlb;
    expect(pool.stats().usedSlots).toBe(1);
    d.run((dev) => {
      expectCode(
        () => dmaUnmapSingle(dev, DMA_MAPPING_ERROR, 2048, DMA_TO_DEVICE),
        "EINVAL",
        /tries to free DMA memory it has not allocated.*DMA_MAPPING_ERROR/,
      );
      expectCode(
        () => dmaUnmapSingle(dev, dmaAddr(0x1234_5000), 2048, DMA_TO_DEVICE),
        "EINVAL",
        /tries to free DMA memory it has not allocated/,
      );
      expectCode(
        () => dmaSyncSingleForCpu(dev, DMA_MAPPING_ERROR, 16, DMA_TO_DEVICE),
        "EINVAL",
        /has not allocated/,
      );
      // Attributes the kernel does not know, or not a number at all.
      expectCode(() => dmaUnmapSingle(dev, a, 2048, DMA_TO_DEVICE, 1 << 20), "EINVAL", /attrs/);
      expectCode(
        () => dmaUnmapSingle(dev, a, 2048, DMA_TO_DEVICE, 32n as unknown as number),
        "EINVAL",
        /attrs/,
      );
      expectCode(() => dmaUnmapSingle(dev, a, Number.NaN, DMA_TO_DEVICE), "EINVAL", /size/);
    });
    // Nothing was forgotten: the mapping and its bounce slot are still there, and unmap works.
    expect(dmaDeviceAudit(d.ref).entries).toHaveLength(1);
    expect(pool.stats().usedSlots).toBe(1);
    d.run((dev) => dmaUnmapSingle(dev, a, 2048, DMA_TO_DEVICE));
    expect(pool.stats().usedSlots).toBe(0);
    expect(dmaDeviceAudit(d.ref).entries).toHaveLength(0);
    expect(env.system.audit().problems).toEqual([]);
  });

  it("item 14: a probe aborted by removal loses its mappings before its devres frees the buffers", async () => {
    for (const behindIommu of [false, true]) {
      const env = makeEnv();
      if (behindIommu) addTestIommu(env, { name: "mmu14" });
      const system = env.system;
      let release: () => void = () => {};
      const gate = new Promise<void>((r) => {
        release = r;
      });
      // At each free: is any live mapping still pointing into memory that is already freed?
      const stale: string[] = [];
      const freed: [number, number][] = [];
      let domain: IommuDomain | null = null;
      const mapped: number[] = [];
      // The probe's borrow is revoked by the time devres runs: look through an owned reference.
      let owner: Parameters<typeof dmaDeviceAudit>[0] | null = null;
      const check = (when: string): void => {
        for (const e of dmaDeviceAudit(owner!).entries) {
          for (const [pa, size] of freed) {
            if (e.phys < pa + size && pa < e.phys + e.size)
              stale.push(`${when}: ${e.via} ${e.dmaAddr}`);
          }
        }
        if (domain !== null && !domain.freed) {
          for (const a of mapped) {
            const pa = iommuIovaToPhys(domain, a as never);
            for (const [lo, size] of freed)
              if (pa >= lo && pa < lo + size) stale.push(`${when}: iova ${a}`);
          }
        }
      };
      const drv = definePlatformDriver({
        name: `slow14-${String(behindIommu)}`,
        ofMatchTable: [{ compatible: "test,slow14" }],
        probe: async (dev) => {
          dmaConfigure(system, dev);
          domain = iommuGetDomainForDev(dev);
          // The buffer's devres is registered before its mapping (the usual order) ...
          const early = system.allocBuffer(8192, "high");
          dev.devmAddAction(() => {
            freed.push([early, 8192]);
            system.freeBuffer(early, 8192);
            check("after freeing the early buffer");
          }, "free early");
          mapped.push(dmaMapSingle(dev, early, 8192, DMA_FROM_DEVICE));
          // ... and this one's after it.
          const late = system.allocBuffer(4096, "high");
          mapped.push(dmaMapSingle(dev, late, 4096, DMA_BIDIRECTIONAL));
          dev.devmAddAction(() => {
            freed.push([late, 4096]);
            system.freeBuffer(late, 4096);
            check("after freeing the late buffer");
          }, "free late");
          await gate; // removed while waiting for the hardware
          return {};
        },
      });
      env.bus.registerDriver(drv);
      const ref = env.bus.register({
        name: "slow14",
        compatible: ["test,slow14"],
        ...(behindIommu ? { iommus: [{ iommu: "mmu14", ids: [1] }] } : {}),
      });
      owner = ref;
      expect(mapped).toHaveLength(2);
      env.bus.unplug(ref);
      release();
      await env.bus.settle();
      expect(stale).toEqual([]);
      expect(freed).toHaveLength(2);
      // Both mappings were the driver's leaks: reported, and nothing is left behind.
      const report = system.leakReports.at(-1)!;
      expect(report.leaked).toHaveLength(2);
      expect(system.swiotlb.stats().usedSlots).toBe(0);
      expect(system.audit().ramInUse).toBe(0);
      ref.put();
    }
  });

  it("item 14: at the end of any binding the DMA layer quiesces before the driver's devres runs", async () => {
    // Memory the DMA system does not manage (the driver's own allocator), freed by a devres
    // action registered after the mapping: only the order of the teardown protects it.
    for (const how of ["unbind", "probe failure", "aborted probe"] as const) {
      const env = makeEnv();
      addTestIommu(env, { name: "mmu14b" });
      const own = new BuddyAllocator(env.system.memory, 0x9_0000_0000, 0x10_0000, 4096);
      const seenAtFree: number[] = [];
      let release: () => void = () => {};
      const gate = new Promise<void>((r) => {
        release = r;
      });
      env.bus.registerDriver(
        definePlatformDriver({
          name: `quiet-${how.replace(" ", "-")}`,
          ofMatchTable: [{ compatible: "test,quiet" }],
          probe: (dev) => {
            const buf = own.alloc(8192);
            dmaMapSingle(dev, buf, 8192, DMA_FROM_DEVICE);
            dev.devmAddAction(() => {
              seenAtFree.push(env.system.audit().liveMappings);
              own.free(buf, 8192);
            }, "free buffer");
            if (how === "probe failure") throw new Error("probe gives up after mapping");
            if (how === "aborted probe") return gate.then(() => ({}));
            return {};
          },
        }),
      );
      const ref = env.bus.register({
        name: "quiet",
        compatible: ["test,quiet"],
        iommus: [{ iommu: "mmu14b", ids: [1] }],
      });
      env.bus.unplug(ref);
      release();
      await env.bus.settle();
      expect(seenAtFree, how).toEqual([0]);
      expect(env.system.audit().problems).toEqual([]);
      if (how !== "probe failure") expect(env.system.leakReports.at(-1)?.leaked).toHaveLength(1);
      ref.put();
    }
  });

  it("item 15: a coherent free whose IOMMU unmap fails keeps the buffer accounted and completes at unbind", () => {
    const env = makeEnv();
    const mmu = addTestIommu(env, { name: "mmu15" });
    const d = addDevice(env, { name: "c15", iommus: [{ iommu: "mmu15", ids: [1] }] });
    const ramBefore = env.system.audit().ramByUse.coherent;
    const buf = d.run((dev) => dmaAllocCoherent(dev, 8192));
    const dom = iommuGetDomainForDev(d.ref)!;
    const at = buf.dmaAddr;
    mmu.domains.at(-1)!.failUnmaps = 1;
    expectCode(() => buf.free(), "EIO", /injected/);
    // Still mapped, so the memory must stay allocated and listed until the unmap succeeds.
    expect(iommuIovaToPhys(dom, at as never)).not.toBe(0);
    expect(dmaDeviceAudit(d.ref).entries.map((e) => e.kind)).toEqual(["coherent"]);
    expect(env.system.audit().ramByUse.coherent).toBe(ramBefore + 8192);
    expect(env.system.audit().problems).toEqual([]);
    env.bus.unplug(d.ref);
    expect(env.system.audit().ramByUse.coherent).toBe(ramBefore);
    expect(mmu.pages.bytesInUse).toBe(0); // the default domain and its tables are gone
    d.ref.put();
  });

  it("item 15: a flush that fails while a lazy domain is freed still frees its tables", () => {
    const env = makeEnv({ iommuDefaultDomain: "lazy" });
    const mmu = addTestIommu(env, { name: "mmu15b" });
    const d = addDevice(env, { name: "fq15", iommus: [{ iommu: "mmu15b", ids: [1] }] });
    const buf = env.system.allocBuffer(4096, "high");
    const a = d.run((dev) => dmaMapSingle(dev, buf, 4096, DMA_TO_DEVICE));
    d.run((dev) => dmaUnmapSingle(dev, a, 4096, DMA_TO_DEVICE)); // queued, not flushed
    mmu.domains.at(-1)!.failFlushes = 5;
    env.bus.unplug(d.ref);
    expect(mmu.pages.bytesInUse).toBe(0);
    expect(mmu.events).toContain("free");
    d.ref.put();
  });

  it("item 15: a DMA domain whose smallest page is over 64 KiB fails cleanly and leaks no table page", () => {
    const env = makeEnv();
    const pages = new BuddyAllocator(env.system.memory, 0x1000_0000, 0x10_0000, 4096);
    const ops: IommuOps = {
      pgsizeBitmap: 0x2_0000, // 128 KiB pages only: no IOVA granule fits a 64 KiB CPU page
      probeDevice: () => {},
      domainAllocPaging: () => {
        const table = pages.alloc(4096);
        return {
          attachDev: () => {},
          mapPages: () => 0,
          unmapPages: () => 0,
          iotlbSync: () => {},
          flushIotlbAll: () => {},
          iovaToPhys: () => physAddr(0),
          free: () => pages.free(table, 4096),
        };
      },
    };
    env.bus.registerDriver(
      definePlatformDriver({
        name: "big-pages",
        ofMatchTable: [{ compatible: "test,bigpages" }],
        probe: (dev) => {
          iommuDeviceRegister(env.system, dev, ops, { name: "bigmmu" });
          return {};
        },
      }),
    );
    const mmuRef = env.bus.register({ name: "bigmmu", compatible: ["test,bigpages"] });
    let probeError: unknown = null;
    env.bus.registerDriver(
      definePlatformDriver({
        name: "behind-big",
        ofMatchTable: [{ compatible: "test,behindbig" }],
        probe: (dev) => {
          try {
            dmaConfigure(env.system, dev);
          } catch (e) {
            probeError = e;
            throw e;
          }
          return {};
        },
      }),
    );
    const ref = env.bus.register({
      name: "behindbig",
      compatible: ["test,behindbig"],
      iommus: [{ iommu: "bigmmu", ids: [0] }],
    });
    expect(ref.isBound).toBe(false);
    // The machine's DMA layer configures the device before the driver's probe runs.
    expect(probeError).toBeNull();
    const failure = deviceStateOf(ref).probeError;
    expect(failure).toMatchObject({ code: "EINVAL" });
    expect(String(failure)).toMatch(/64 KiB|65536/);
    expect(pages.bytesInUse).toBe(0);
    env.bus.unplug(ref);
    env.bus.unplug(mmuRef);
    ref.put();
    mmuRef.put();
  });

  it("freeBuffer: a buffer never allocated, freed twice or with another size is an error that frees nothing", () => {
    const env = makeEnv();
    const buf = env.system.allocBuffer(4096, "high");
    expectCode(() => env.system.freeBuffer(physAddr(0x1234_0000), 4096), "EINVAL");
    expectCode(() => env.system.freeBuffer(buf, 8192), "EINVAL");
    env.system.freeBuffer(buf, 4096);
    expectCode(() => env.system.freeBuffer(buf, 4096), "EINVAL");
    expect(env.system.audit().ramInUse).toBe(0);
    // SAFETY (test): the address is only compared.
    void (buf as PhysAddr);
  });

  it("exploration: unregistering an IOMMU tells its driver to release each device before the device's domain and tables go", () => {
    const env = makeEnv();
    const mmu = addTestIommu(env, { name: "mmu-x1" });
    const d = addDevice(env, { name: "x1", iommus: [{ iommu: "mmu-x1", ids: [1] }] });
    env.bus.unbind(mmu.ref); // the IOMMU driver unbinds: iommu_device_unregister
    const release = mmu.events.indexOf("release x1");
    expect(release).toBeGreaterThanOrEqual(0);
    expect(mmu.events.indexOf("free")).toBeGreaterThan(release);
    env.bus.unplug(d.ref);
    expect(env.system.audit().problems).toEqual([]);
    d.ref.put();
  });

  it("exploration: a removal from inside a bound callback revokes its borrow at once (ENODEV, not a DMA call on an unbound device)", () => {
    const env = makeEnv();
    const d = addDevice(env, { name: "x2" });
    const buf = env.system.allocBuffer(4096, "low");
    const err = d.run((dev) => {
      env.bus.unplug(d.ref);
      try {
        dmaMapSingle(dev, buf, 64, DMA_TO_DEVICE);
      } catch (e) {
        return e;
      }
      return null;
    });
    expect(err).toBeInstanceOf(DevrefError);
    expect((err as DevrefError).code).toBe("ENODEV");
    env.system.freeBuffer(buf, 4096);
    expect(env.system.audit().problems).toEqual([]);
    d.ref.put();
  });
});
