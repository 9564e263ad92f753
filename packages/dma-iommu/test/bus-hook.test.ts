import { definePlatformDriver, PlatformBus } from "@devref/bus";
import { Machine } from "@devref/device-core";
import { deviceStateOf } from "@devref/device-core/unsafe";
import { describe, expect, it } from "vitest";
import {
  DMA_ATTR_MMIO,
  DMA_ATTR_PRIVILEGED,
  DMA_BIDIRECTIONAL,
  DMA_FROM_DEVICE,
  DMA_MAPPING_ERROR,
  DMA_TO_DEVICE,
  DmaSystem,
  dmaConfigureDevice,
  dmaInfoToProt,
  dmaLastError,
  dmaMapSingle,
  dmaUnmapSingle,
} from "../src/index.js";
import { addDevice, makeEnv } from "./dma-helpers.js";
import { expectCode } from "./expect-code.js";

describe("the machine's DMA layer", () => {
  it("a DmaSystem created on a machine configures every probe on it, as dma_configure does", () => {
    const machine = new Machine({ name: "hook" });
    const system = new DmaSystem({ machine });
    expect(machine.dma).not.toBeNull();
    const bus = new PlatformBus({ name: "dmabus", machine });
    let ops: string | null = null;
    bus.registerDriver(
      definePlatformDriver({
        name: "auto",
        ofMatchTable: [{ compatible: "test,auto" }],
        probe: (dev) => {
          ops = dev.dmaOps?.name ?? null;
          const a = dmaMapSingle(dev, system.allocBuffer(4096, "high"), 64, DMA_TO_DEVICE);
          dmaUnmapSingle(dev, a, 64, DMA_TO_DEVICE);
          return {};
        },
      }),
    );
    const ref = bus.register({ name: "auto", compatible: ["test,auto"] });
    expect(ref.isBound).toBe(true);
    expect(ops).toBe("dma-direct");
    bus.unregister(ref);
    expect(system.audit().problems).toEqual([]);
  });

  it("one DMA system per machine; dmaConfigureDevice only for a device being probed", () => {
    const machine = new Machine({ name: "hook2" });
    const system = new DmaSystem({ machine });
    expectCode(() => new DmaSystem({ machine }), "EEXIST");
    const bus = new PlatformBus({ name: "dmabus2", machine });
    const ref = bus.register({ name: "idle", compatible: ["test,none"] });
    expectCode(() => dmaConfigureDevice(system, deviceStateOf(ref)), "EINVAL", /not being probed/);
    expectCode(() => dmaConfigureDevice(system, {} as never), "EINVAL");
    bus.unregister(ref);
  });
});

describe("attributes that change behaviour", () => {
  it("DMA_ATTR_MMIO is never bounced: above the mask it is a mapping error", () => {
    const env = makeEnv();
    const d = addDevice(env, { name: "p2p" });
    const bar = 0x10_0000_0000; // a peer's BAR above 4 GiB
    // SAFETY (test): a physical address inside memory.
    const a = d.run((dev) => dmaMapSingle(dev, bar as never, 64, DMA_TO_DEVICE, DMA_ATTR_MMIO));
    expect(a).toBe(DMA_MAPPING_ERROR);
    expect(dmaLastError(d.ref)?.message).toMatch(/MMIO is never bounced/);
    expect(env.system.swiotlb.stats().usedSlots).toBe(0);
  });

  it("dma_info_to_prot: direction to READ/WRITE, privileged and MMIO bits", () => {
    expect(dmaInfoToProt(DMA_TO_DEVICE, false, 0)).toBe(1);
    expect(dmaInfoToProt(DMA_FROM_DEVICE, false, 0)).toBe(2);
    expect(dmaInfoToProt(DMA_BIDIRECTIONAL, true, 0)).toBe(1 | 2 | 4);
    expect(dmaInfoToProt(DMA_TO_DEVICE, false, DMA_ATTR_PRIVILEGED)).toBe(1 | 32);
    expect(dmaInfoToProt(DMA_TO_DEVICE, false, DMA_ATTR_MMIO)).toBe(1 | 16);
    expect(dmaInfoToProt(3, false, 0)).toBe(0);
  });
});
