import { definePlatformDriver } from "@devref/bus";
import { DevrefError, dmaAddr, type PhysAddr, RawDevice } from "@devref/raw-device";
import { adoptRef, Kobject } from "@devref/raw-device/unsafe";
import { describe, expect, it } from "vitest";
import {
  DMA_ATTR_NO_WARN,
  DMA_ATTR_SKIP_CPU_SYNC,
  DMA_BIDIRECTIONAL,
  DMA_FROM_DEVICE,
  DMA_MAPPING_ERROR,
  DMA_NONE,
  DMA_TO_DEVICE,
  dmaDeviceAudit,
  dmaLastError,
  dmaMappingError,
  dmaMapSg,
  dmaMapSingle,
  dmaSetMask,
  dmaSyncSgForCpu,
  dmaSyncSingleForCpu,
  dmaSyncSingleForDevice,
  dmaUnmapSg,
  dmaUnmapSingle,
  IO_TLB_SIZE,
  ScatterList,
} from "../src/index.js";
import { addDevice, makeEnv } from "./dma-helpers.js";
import { expectCode } from "./expect-code.js";

function fill(env: ReturnType<typeof makeEnv>, pa: number, n: number, seed: number): Uint8Array {
  const bytes = new Uint8Array(n);
  for (let i = 0; i < n; i++) bytes[i] = (i * 7 + seed) & 0xff;
  env.system.memory.writeBytes(pa, bytes);
  return bytes;
}

function read(env: ReturnType<typeof makeEnv>, pa: number, n: number): Uint8Array {
  const out = new Uint8Array(n);
  env.system.memory.readBytes(pa, out);
  return out;
}

describe("per-device masks on one bus", () => {
  it("a 64-bit device maps a high buffer directly; a 32-bit device bounces it below 4 GiB", () => {
    const env = makeEnv();
    const wide = addDevice(env, { name: "nic", maskBits: 64 });
    const narrow = addDevice(env, { name: "uart" }); // platform default: 32 bits
    const buf = env.system.allocBuffer(4096, "high");
    expect(buf).toBeGreaterThan(0xffff_ffff);

    const a = wide.run((dev) => dmaMapSingle(dev, buf, 4096, DMA_TO_DEVICE));
    const b = narrow.run((dev) => dmaMapSingle(dev, buf, 4096, DMA_TO_DEVICE));
    expect(a).toBe(buf); // dma-direct: the DMA address is the physical address
    expect(b).not.toBe(buf);
    expect(b).toBeLessThanOrEqual(0xffff_ffff);
    expect(env.system.swiotlb.isBounceAddress(b)).toBe(true);
    expect(wide.ref.dmaOps?.name).toBe("dma-direct");
    expect(dmaDeviceAudit(wide.ref).entries[0]?.via).toBe("dma-direct");
    expect(dmaDeviceAudit(narrow.ref).entries[0]?.via).toBe("swiotlb");
    expect(dmaDeviceAudit(narrow.ref).bounceSlots).toBe(2);

    wide.run((dev) => dmaUnmapSingle(dev, a, 4096, DMA_TO_DEVICE));
    narrow.run((dev) => dmaUnmapSingle(dev, b, 4096, DMA_TO_DEVICE));
    expect(env.system.swiotlb.stats().usedSlots).toBe(0);
    expect(dmaDeviceAudit(narrow.ref).entries).toEqual([]);
  });

  it("a low buffer is mapped directly for both", () => {
    const env = makeEnv();
    const narrow = addDevice(env, { name: "uart" });
    const buf = env.system.allocBuffer(4096, "low");
    const a = narrow.run((dev) => dmaMapSingle(dev, buf, 100, DMA_FROM_DEVICE));
    expect(a).toBe(buf);
    narrow.run((dev) => dmaUnmapSingle(dev, a, 100, DMA_FROM_DEVICE));
  });

  it("forced bouncing bounces even reachable buffers", () => {
    const env = makeEnv();
    const d = addDevice(env, { name: "cc", maskBits: 64, configure: { forceBounce: true } });
    const buf = env.system.allocBuffer(4096, "low");
    const a = d.run((dev) => dmaMapSingle(dev, buf, 64, DMA_TO_DEVICE));
    expect(env.system.swiotlb.isBounceAddress(a)).toBe(true);
    d.run((dev) => dmaUnmapSingle(dev, a, 64, DMA_TO_DEVICE));
  });
});

describe("bounce copies: direction and moment", () => {
  it("TO_DEVICE copies in at map and never back", () => {
    const env = makeEnv();
    const d = addDevice(env, { name: "tx" });
    const buf = env.system.allocBuffer(4096, "high");
    const data = fill(env, buf, 1500, 1);
    const addr = d.run((dev) => dmaMapSingle(dev, buf, 1500, DMA_TO_DEVICE));
    expect(read(env, addr, 1500)).toEqual(data); // copied in at map
    // The device scribbles on the bounce buffer; unmap must not copy it back.
    fill(env, addr, 1500, 99);
    d.run((dev) => dmaUnmapSingle(dev, addr, 1500, DMA_TO_DEVICE));
    expect(read(env, buf, 1500)).toEqual(data);
  });

  it("FROM_DEVICE copies back at unmap and at sync_for_cpu, not before", () => {
    const env = makeEnv();
    const d = addDevice(env, { name: "rx" });
    const buf = env.system.allocBuffer(4096, "high");
    const before = fill(env, buf, 2000, 3);
    const addr = d.run((dev) => dmaMapSingle(dev, buf, 2000, DMA_FROM_DEVICE));
    // Map copies unconditionally (no stale pool data reaches a device that writes less).
    expect(read(env, addr, 2000)).toEqual(before);
    const written = fill(env, addr, 2000, 42); // the device writes
    expect(read(env, buf, 2000)).toEqual(before); // CPU side untouched until a sync
    d.run((dev) => dmaSyncSingleForCpu(dev, addr, 2000, DMA_FROM_DEVICE));
    expect(read(env, buf, 2000)).toEqual(written);
    d.run((dev) => dmaSyncSingleForDevice(dev, addr, 2000, DMA_FROM_DEVICE));
    const second = fill(env, addr, 2000, 77);
    d.run((dev) => dmaUnmapSingle(dev, addr, 2000, DMA_FROM_DEVICE));
    expect(read(env, buf, 2000)).toEqual(second);
  });

  it("BIDIRECTIONAL: sync_for_device pushes CPU writes; unmap copies back", () => {
    const env = makeEnv();
    const d = addDevice(env, { name: "bi" });
    const buf = env.system.allocBuffer(4096, "high");
    fill(env, buf, 512, 5);
    const addr = d.run((dev) => dmaMapSingle(dev, buf, 512, DMA_BIDIRECTIONAL));
    d.run((dev) => dmaSyncSingleForCpu(dev, addr, 512, DMA_BIDIRECTIONAL));
    const cpu = fill(env, buf, 512, 11);
    d.run((dev) => dmaSyncSingleForDevice(dev, addr, 512, DMA_BIDIRECTIONAL));
    expect(read(env, addr, 512)).toEqual(cpu);
    const dev2 = fill(env, addr, 512, 13);
    d.run((dev) => dmaUnmapSingle(dev, addr, 512, DMA_BIDIRECTIONAL));
    expect(read(env, buf, 512)).toEqual(dev2);
  });

  it("SKIP_CPU_SYNC on unmap skips the copy back", () => {
    const env = makeEnv();
    const d = addDevice(env, { name: "skip" });
    const buf = env.system.allocBuffer(4096, "high");
    const data = fill(env, buf, 256, 1);
    const addr = d.run((dev) => dmaMapSingle(dev, buf, 256, DMA_FROM_DEVICE));
    fill(env, addr, 256, 200);
    d.run((dev) => dmaUnmapSingle(dev, addr, 256, DMA_FROM_DEVICE, DMA_ATTR_SKIP_CPU_SYNC));
    expect(read(env, buf, 256)).toEqual(data);
  });
});

describe("mapping errors", () => {
  it("an exhausted pool is a mapping error naming the device, the mask and the pool state", () => {
    const env = makeEnv({ swiotlb: { base: 0x4000_0000, nslabs: 128 } });
    const d = addDevice(env, { name: "hungry" });
    const buf = env.system.allocBuffer(1 << 20, "high");
    const addrs: number[] = [];
    d.run((dev) => {
      for (let i = 0; i < 64; i++) {
        // SAFETY (test): inside the buffer just allocated.
        addrs.push(dmaMapSingle(dev, (buf + i * 4096) as PhysAddr, 4096, DMA_TO_DEVICE));
      }
    });
    expect(addrs.every((a) => a !== DMA_MAPPING_ERROR)).toBe(true);
    const failed = d.run((dev) => dmaMapSingle(dev, buf, 2048, DMA_TO_DEVICE));
    expect(failed).toBe(DMA_MAPPING_ERROR);
    expect(dmaMappingError(d.ref, failed)).toBe(true);
    const err = dmaLastError(d.ref)!;
    expect(err.code).toBe("ENOMEM");
    expect(err.message).toContain("hungry");
    expect(err.message).toContain("0xffffffff"); // the mask
    expect(err.message).toMatch(/128 slots, 128 used/);
    expect(
      env.logs.some((r) => r.level === "warn" && r.message.includes("swiotlb buffer is full")),
    ).toBe(true);
    // NO_WARN keeps it quiet but still fails.
    const n = env.logs.length;
    expect(d.run((dev) => dmaMapSingle(dev, buf, 64, DMA_TO_DEVICE, DMA_ATTR_NO_WARN))).toBe(
      DMA_MAPPING_ERROR,
    );
    expect(env.logs.length).toBe(n);
    d.run((dev) => {
      for (const a of addrs) dmaUnmapSingle(dev, a as never, 4096, DMA_TO_DEVICE);
    });
    expect(env.system.swiotlb.stats().usedSlots).toBe(0);
  });

  it("bad directions and misuse are clear errors that change nothing", () => {
    const env = makeEnv();
    const d = addDevice(env, { name: "bad" });
    const buf = env.system.allocBuffer(4096, "low");
    expect(() => d.run((dev) => dmaMapSingle(dev, buf, 16, DMA_NONE))).toThrow(/DMA_NONE/);
    const a = d.run((dev) => dmaMapSingle(dev, buf, 16, DMA_TO_DEVICE));
    expect(() => d.run((dev) => dmaUnmapSingle(dev, a, 32, DMA_TO_DEVICE))).toThrow(
      /does not match/,
    );
    expect(() => d.run((dev) => dmaUnmapSingle(dev, a, 16, DMA_FROM_DEVICE))).toThrow(
      /DMA_TO_DEVICE/,
    );
    expect(() => d.run((dev) => dmaSyncSingleForCpu(dev, a, 16, DMA_FROM_DEVICE))).toThrow(
      /mapped DMA_TO_DEVICE/,
    );
    expect(() =>
      d.run((dev) => dmaUnmapSingle(dev, (a + 4096) as never, 16, DMA_TO_DEVICE)),
    ).toThrow(/has not allocated/);
    d.run((dev) => dmaUnmapSingle(dev, a, 16, DMA_TO_DEVICE));
  });

  it("the map path's one liveness test still refuses what is not a live, configured device", () => {
    const env = makeEnv();
    const d = addDevice(env, { name: "who" });
    const buf = env.system.allocBuffer(4096, "low");
    // Another package's handle: live, but its object has no DMA state.
    class Other extends RawDevice {}
    const other = adoptRef<Other>(new Kobject("other", () => {}, Other), "test");
    for (const dev of [other, {}, { lifetime: {}, object: undefined }, null, 7]) {
      expectCode(() => dmaMapSingle(dev as never, buf, 16, DMA_TO_DEVICE), "EINVAL", /dev/);
    }
    other.put();
    // A borrow kept past its callback is refused as dead, and changes nothing.
    let kept: unknown;
    const a = d.run((dev) => {
      kept = dev;
      return dmaMapSingle(dev, buf, 16, DMA_TO_DEVICE);
    });
    expect(() => d.run(() => dmaUnmapSingle(kept as never, a, 16, DMA_TO_DEVICE))).toThrow(
      /scope ended/,
    );
    expect(dmaDeviceAudit(d.ref).entries).toHaveLength(1);
    d.run((dev) => dmaUnmapSingle(dev, a, 16, DMA_TO_DEVICE));
    expect(dmaDeviceAudit(d.ref).entries).toHaveLength(0);
  });

  it("the same buffer mapped twice is tracked twice and unmapped in any order", () => {
    const env = makeEnv();
    const d = addDevice(env, { name: "twice", maskBits: 64 });
    const buf = env.system.allocBuffer(4096, "low");
    d.run((dev) => {
      const a = dmaMapSingle(dev, buf, 64, DMA_TO_DEVICE);
      const b = dmaMapSingle(dev, buf, 128, DMA_FROM_DEVICE);
      const c = dmaMapSingle(dev, buf, 64, DMA_TO_DEVICE);
      expect(a).toBe(buf);
      expect(b).toBe(buf);
      expect(dmaDeviceAudit(dev).entries).toHaveLength(3);
      dmaUnmapSingle(dev, a, 64, DMA_TO_DEVICE);
      expect(() => dmaUnmapSingle(dev, b, 64, DMA_FROM_DEVICE)).toThrow(/does not match/);
      dmaUnmapSingle(dev, b, 128, DMA_FROM_DEVICE);
      dmaUnmapSingle(dev, c, 64, DMA_TO_DEVICE);
      expect(() => dmaUnmapSingle(dev, c, 64, DMA_TO_DEVICE)).toThrow(/has not allocated/);
    });
    expect(dmaDeviceAudit(d.ref).entries).toEqual([]);
  });

  it("masks can be set only before any mapping, and only to what dma-direct can serve", () => {
    const env = makeEnv();
    let probeError: unknown = null;
    const d = addDevice(env, {
      name: "masks",
      probe: (dev) => {
        try {
          dmaSetMask(dev, 24);
        } catch (e) {
          probeError = e;
        }
        const buf = env.system.allocBuffer(4096, "low");
        dmaMapSingle(dev, buf, 8, DMA_TO_DEVICE);
        try {
          dmaSetMask(dev, 64);
        } catch (e) {
          probeError = [probeError, e];
        }
      },
    });
    const [tooSmall, busy] = probeError as [DevrefError, DevrefError];
    expect(tooSmall.code).toBe("EIO");
    expect(busy.code).toBe("EBUSY");
    expect(busy.message).toMatch(/before any mapping/);
    expect(d.ref.dmaMaskBits).toBe(32);
  });
});

describe("scatter-gather through dma-direct", () => {
  it("maps one to one, bouncing only the segments above the mask", () => {
    const env = makeEnv();
    const d = addDevice(env, { name: "sg" });
    const low = env.system.allocBuffer(4096, "low");
    const high = env.system.allocBuffer(4096, "high");
    const sg = new ScatterList([
      { pa: low, length: 1000 },
      { pa: high, length: 3000 },
    ]);
    const n = d.run((dev) => dmaMapSg(dev, sg, DMA_FROM_DEVICE));
    expect(n).toBe(2);
    expect(sg.dmaAddress[0]).toBe(low);
    expect(env.system.swiotlb.isBounceAddress(dmaAddr(sg.dmaAddress[1]!))).toBe(true);
    const written = fill(env, sg.dmaAddress[1]!, 3000, 9);
    d.run((dev) => dmaSyncSgForCpu(dev, sg, 2, DMA_FROM_DEVICE));
    expect(read(env, high, 3000)).toEqual(written);
    expect(() => d.run((dev) => dmaUnmapSg(dev, sg, 1, DMA_FROM_DEVICE))).toThrow(
      /original count 2/,
    );
    d.run((dev) => dmaUnmapSg(dev, sg, 2, DMA_FROM_DEVICE));
    expect(dmaDeviceAudit(d.ref).entries).toEqual([]);
  });

  it("a failing segment unmaps the ones before it and returns 0", () => {
    const env = makeEnv({ swiotlb: { base: 0x4000_0000, nslabs: 128 } });
    const d = addDevice(env, { name: "sgfail" });
    const high = env.system.allocBuffer(1 << 20, "high");
    const segs = [];
    for (let i = 0; i < 3; i++)
      segs.push({ pa: (high + i * 0x40000) as PhysAddr, length: 0x3f000 * (i === 2 ? 1 : 1) });
    const sg = new ScatterList(segs); // 3 × ~252 KiB: the 256 KiB pool holds one
    expect(d.run((dev) => dmaMapSg(dev, sg, DMA_TO_DEVICE, DMA_ATTR_NO_WARN))).toBe(0);
    expect(env.system.swiotlb.stats().usedSlots).toBe(0);
    expect(dmaLastError(d.ref)?.code).toBe("ENOMEM");
    expect(IO_TLB_SIZE).toBe(2048);
  });
});

describe("leak audit at unbind", () => {
  it("reports a mapping the driver leaked, and releases its bounce slots", () => {
    const env = makeEnv();
    const d = addDevice(env, { name: "leaky" });
    const buf = env.system.allocBuffer(4096, "high");
    const addr = d.run((dev) => dmaMapSingle(dev, buf, 3000, DMA_FROM_DEVICE));
    fill(env, addr, 3000, 1);
    env.bus.unplug(d.ref);
    expect(env.system.leakReports).toHaveLength(1);
    const report = env.system.leakReports[0]!;
    expect(report.device).toBe("leaky");
    expect(report.leaked).toEqual([
      {
        kind: "single",
        dmaAddr: addr,
        size: 3000,
        dir: "DMA_FROM_DEVICE",
        via: "swiotlb",
        phys: buf,
      },
    ]);
    expect(report.bounceSlots).toBe(2);
    expect(env.system.swiotlb.stats().usedSlots).toBe(0);
    expect(read(env, buf, 16)).toEqual(new Uint8Array(16)); // no copy back for a gone driver
    expect(
      env.logs.some((r) => r.level === "err" && r.message.includes("pending DMA allocations")),
    ).toBe(true);
    d.ref.put();
  });

  it("a clean driver produces no report", () => {
    const env = makeEnv();
    const d = addDevice(env, { name: "clean" });
    const buf = env.system.allocBuffer(4096, "high");
    const addr = d.run((dev) => dmaMapSingle(dev, buf, 64, DMA_TO_DEVICE));
    d.run((dev) => dmaUnmapSingle(dev, addr, 64, DMA_TO_DEVICE));
    env.bus.unplug(d.ref);
    expect(env.system.leakReports).toEqual([]);
    expect(d.ref.dmaOps).toBeNull();
    d.ref.put();
  });

  it("on a machine whose DMA layer is the system, every probe is configured without asking", () => {
    const env = makeEnv();
    let addr: number | null = null;
    env.bus.registerDriver(
      definePlatformDriver({
        name: "auto-drv",
        ofMatchTable: [{ compatible: "test,auto" }],
        probe: (dev) => {
          const buf = env.system.allocBuffer(4096, "low");
          addr = dmaMapSingle(dev, buf, 8, DMA_TO_DEVICE);
          dmaUnmapSingle(dev, addr as never, 8, DMA_TO_DEVICE);
          return {};
        },
      }),
    );
    const ref = env.bus.register({ name: "auto", compatible: ["test,auto"] });
    expect(addr).not.toBeNull();
    expect(ref.dmaOps?.name).toBe("dma-direct");
    ref.put();
  });

  it("DMA without dmaConfigure in this binding is a clear error (no DMA layer on the machine)", () => {
    const env = makeEnv({}, false);
    let caught: unknown = null;
    const drv = definePlatformDriver({
      name: "noconf-drv",
      ofMatchTable: [{ compatible: "test,noconf" }],
      probe: (dev) => {
        try {
          dmaMapSingle(dev, env.system.allocBuffer(4096, "low"), 8, DMA_TO_DEVICE);
        } catch (e) {
          caught = e;
        }
        return {};
      },
    });
    env.bus.registerDriver(drv);
    const ref = env.bus.register({ name: "noconf", compatible: ["test,noconf"] });
    expect(DevrefError.is(caught, "EINVAL")).toBe(true);
    expect(String(caught)).toMatch(/call dmaConfigure/);
    ref.put();
  });
});
