import { definePlatformDriver, PlatformBus } from "@devref/bus";
import { holders } from "@devref/raw-device";
import { devmRtkit, type Rtkit } from "@devref/rtkit";
import { describe, expect, it } from "vitest";
import { ScriptedFirmware } from "./firmware.js";
import { TestDma } from "./memory.js";
import { ManualTimers } from "./timers.js";

const labels = (dev: Parameters<typeof holders>[0]) => holders(dev).map((h) => h.label);

describe("devmRtkit", () => {
  it("frees the instance when the driver unbinds, buffers and reference included", async () => {
    const bus = new PlatformBus({ name: "rtkit-test" });
    const dma = new TestDma();
    const fw = new ScriptedFirmware();
    let rtk: Rtkit | null = null;
    const drv = definePlatformDriver({
      name: "apple-smc",
      ofMatchTable: [{ compatible: "apple,smc" }],
      probe: async (dev) => {
        const r = devmRtkit(dev, {
          transport: fw.transport,
          dma,
          timers: new ManualTimers(),
          log: () => {},
        });
        fw.attach(r);
        rtk = r;
        fw.start();
        await r.boot();
        return {};
      },
    });
    bus.registerDriver(drv);
    const dev = bus.register({ name: "smc", id: 0, compatible: ["apple,smc"] });
    await bus.settle();
    expect(rtk!.isRunning).toBe(true);
    expect(labels(dev)).toContain("rtkit");
    expect(dma.live).toBe(4);
    bus.unbind(dev);
    expect(rtk!.isFreed).toBe(true);
    expect(labels(dev)).not.toContain("rtkit");
    expect(dma.live).toBe(0);
    await expect(rtk!.boot()).rejects.toMatchObject({ code: "ESHUTDOWN" });
    bus.unregisterDriver(drv);
    bus.unregister(dev);
    dev.put();
  });

  it("frees the instance at once and throws ENODEV when the borrow has ended", async () => {
    const bus = new PlatformBus({ name: "rtkit-test2" });
    let leaked: unknown = null;
    const drv = definePlatformDriver({
      name: "apple-ans",
      ofMatchTable: [{ compatible: "apple,ans" }],
      probe: (dev) => {
        leaked = dev;
        return {};
      },
    });
    bus.registerDriver(drv);
    const dev = bus.register({ name: "ans", id: 0, compatible: ["apple,ans"] });
    await bus.settle();
    expect(() => devmRtkit(leaked as never, { transport: { send: () => {} } })).toThrow(/ENODEV/);
    expect(labels(dev)).not.toContain("rtkit");
    bus.unregisterDriver(drv);
    bus.unregister(dev);
    dev.put();
  });
});
