import { definePlatformDriver, PlatformBus } from "@devref/bus";
import type { DeviceState } from "@devref/device-core/unsafe";
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

/** A platform bus whose dma_configure hook sets DMA up for every probe, as the kernel's does. */
class DmaPlatformBus extends PlatformBus {
  readonly system: DmaSystem;
  constructor(name: string, system: DmaSystem) {
    super(name);
    this.system = system;
  }
  protected override dmaConfigure(st: DeviceState): void {
    super.dmaConfigure(st);
    dmaConfigureDevice(this.system, st);
  }
}

describe("bus hook", () => {
  it("a bus that configures DMA in its dma_configure hook gives drivers a ready device", () => {
    const system = new DmaSystem();
    const bus = new DmaPlatformBus("dmabus", system);
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
