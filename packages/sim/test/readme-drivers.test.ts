// The README's "Drivers on the SoC" example, run as written (imports adapted to the source
// tree, console output turned into assertions).
import { definePlatformDriver, PciBus, PlatformBus } from "@devref/bus";
import { auditDevices } from "@devref/device-core";
import { expect, it } from "vitest";
import { createReferenceSoc, describeSoc } from "../src/index.js";

it("runs the README's driver example: a DART fault handled, the disk pulled, nothing left", async () => {
  const { soc } = createReferenceSoc({ seed: 1, name: "demo" });
  const platform = new PlatformBus({ machine: soc.machine });
  const pci = new PciBus({ machine: soc.machine });
  const faults: number[] = [];
  platform.registerDriver(
    definePlatformDriver({
      name: "apple-dart",
      ofMatchTable: [{ compatible: "apple,t8110-dart" }],
      probe: (dev) => {
        const regs = dev.ioremapResource(0);
        dev.requestIrq(0, (d) => {
          const r = regs.access(d);
          const error = r.read32(0x100);
          if (error >>> 31 === 0) return "none";
          r.write32(0x100, error);
          faults.push(error);
          return "handled";
        });
        return { regs };
      },
    }),
  );
  const fw = describeSoc(soc, { platform, pci });
  expect(pci.deviceNames()).toEqual(["0000:00:00.0"]);
  soc.faults.inject({ kind: "iommu-fault", target: "dart0", sid: 3 });
  expect(await soc.settle()).toBe(true);
  expect(faults.map((e) => e.toString(16))).toEqual(["80300008"]);
  soc.faults.inject({ kind: "unplug", target: "vblk0" });
  expect(await soc.settle()).toBe(true);
  expect(pci.deviceNames()).toEqual([]);
  fw.remove();
  expect(auditDevices(soc.machine)).toEqual([]);
});
