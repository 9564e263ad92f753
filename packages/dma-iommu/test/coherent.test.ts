import { describe, expect, it } from "vitest";
import {
  type CoherentAllocation,
  DMA_TO_DEVICE,
  dmaAllocCoherent,
  dmaDeviceAudit,
  dmaMapSingle,
  dmaSetMask,
} from "../src/index.js";
import { addDevice, makeEnv } from "./dma-helpers.js";

describe("coherent allocations", () => {
  it("are zeroed, page-order aligned and reachable under the coherent mask", () => {
    const env = makeEnv();
    const d32 = addDevice(env, { name: "c32" });
    const d64 = addDevice(env, { name: "c64", maskBits: 64 });
    const a = d32.run((dev) => dmaAllocCoherent(dev, 3 * 4096));
    const b = d64.run((dev) => dmaAllocCoherent(dev, 100));
    expect(a.dmaAddr % (4 * 4096)).toBe(0); // 3 pages → aligned to 4
    expect(a.dmaAddr + a.size - 1).toBeLessThanOrEqual(0xffff_ffff);
    expect(b.dmaAddr).toBeGreaterThan(0xffff_ffff);
    expect(a.read32(0)).toBe(0);
    a.write32(8, 0xdead_beef);
    a.write64(16, 1, 2);
    expect(a.read32(8)).toBe(0xdead_beef);
    expect(a.read64(16)).toEqual({ lo: 1, hi: 2 });
    expect(env.system.memory.read32(a.phys + 8)).toBe(0xdead_beef); // the device sees it
    expect(() => a.read32(3 * 4096)).toThrow(/outside the 12288-byte/);
    expect(dmaDeviceAudit(d32.ref).entries.map((e) => e.kind)).toEqual(["coherent"]);
    b.free();
    b.free(); // a second free does nothing
    expect(() => b.read8(0)).toThrow(/was freed/);
    env.bus.unplug(d32.ref);
    env.bus.unplug(d64.ref);
    d32.ref.put();
    d64.ref.put();
  });

  it("a buffer kept past unbind fails cleanly, and its memory is given back", () => {
    const env = makeEnv();
    let kept: CoherentAllocation | null = null;
    const d = addDevice(env, {
      name: "keeper",
      probe: (dev) => {
        kept = dmaAllocCoherent(dev, 8192);
      },
    });
    const buf = kept! as CoherentAllocation;
    buf.write32(0, 7);
    const inUse = env.system.audit().ramInUse;
    expect(inUse).toBeGreaterThanOrEqual(8192);
    env.bus.unbind(d.ref);
    expect(buf.isAvailable).toBe(false);
    let err: unknown = null;
    try {
      buf.read32(0);
    } catch (e) {
      err = e;
    }
    expect(err).toMatchObject({ code: "ENODEV" });
    expect(String(err)).toMatch(/keeper.*unbound/);
    expect(env.system.audit().ramInUse).toBe(inUse - 8192);
    // Freed by devres: not a leak.
    expect(env.system.leakReports).toEqual([]);
    d.ref.put();
  });

  it("allocations count as DMA state for the mask rule", () => {
    const env = makeEnv();
    let error: unknown = null;
    addDevice(env, {
      name: "late-mask",
      probe: (dev) => {
        dmaAllocCoherent(dev, 4096);
        try {
          dmaSetMask(dev, 64);
        } catch (e) {
          error = e;
        }
      },
    });
    expect(error).toMatchObject({ code: "EBUSY" });
  });

  it("the unbind report lists leaked mappings beside the coherent buffers devres freed", () => {
    const env = makeEnv();
    const d = addDevice(env, {
      name: "mixed",
      probe: (dev) => {
        dmaAllocCoherent(dev, 4096);
        dmaMapSingle(dev, env.system.allocBuffer(4096, "low"), 64, DMA_TO_DEVICE);
      },
    });
    env.bus.unplug(d.ref);
    const r = env.system.leakReports[0]!;
    expect(r.leaked.map((e) => e.kind)).toEqual(["single"]);
    expect(r.coherentFreed).toBe(1);
    d.ref.put();
  });
});
