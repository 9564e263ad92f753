// Reserved regions (get_resv_regions): what the IOMMU driver reserves for a device never
// comes out of its DMA domain's IOVA space, as iova_reserve_iommu_regions does.
import { DevrefError, iova } from "@devref/raw-device";
import { describe, expect, it } from "vitest";
import {
  DMA_TO_DEVICE,
  dmaMapSingle,
  dmaUnmapSingle,
  iommuDeviceRegister,
  iommuGetDomainForDev,
  iommuIovaToPhys,
} from "../src/index.js";
import { addDevice, addTestIommu, makeEnv } from "./dma-helpers.js";

const DOORBELL = { start: 0xffff_f000, length: 0x1000, prot: 0x1a, type: "msi" } as const;

describe("reserved regions", () => {
  it("an MSI doorbell page is never handed out: the top-down allocator starts below it", () => {
    const env = makeEnv();
    const seen: string[] = [];
    addTestIommu(env, {
      name: "smmu",
      pgsizeBitmap: 0x1000,
      resvRegions: (dev, ids) => {
        seen.push(`${dev}:${ids.join(",")}`);
        return [DOORBELL];
      },
    });
    const nic = addDevice(env, { name: "nic", iommus: [{ iommu: "smmu", ids: [7] }] });
    expect(seen).toEqual(["nic:7"]);
    const buf = env.system.allocBuffer(0x1000);
    const addr = nic.run((dev) => dmaMapSingle(dev, buf, 0x1000, DMA_TO_DEVICE));
    expect(addr).toBe(0xffff_e000);
    const dom = iommuGetDomainForDev(nic.ref)!;
    expect(iommuIovaToPhys(dom, iova(0xffff_f000))).toBe(0);
    nic.run((dev) => dmaUnmapSingle(dev, addr, 0x1000, DMA_TO_DEVICE));
    env.system.freeBuffer(buf, 0x1000);
    expect(env.system.audit().ok).toBe(true);
  });

  it("a software-managed MSI window is left to dma-iommu (not reserved)", () => {
    const env = makeEnv();
    addTestIommu(env, {
      name: "smmu",
      pgsizeBitmap: 0x1000,
      resvRegions: () => [{ ...DOORBELL, type: "sw-msi" }],
    });
    const nic = addDevice(env, { name: "nic", iommus: [{ iommu: "smmu", ids: [1] }] });
    const buf = env.system.allocBuffer(0x1000);
    const addr = nic.run((dev) => dmaMapSingle(dev, buf, 0x1000, DMA_TO_DEVICE));
    expect(addr).toBe(0xffff_f000);
    nic.run((dev) => dmaUnmapSingle(dev, addr, 0x1000, DMA_TO_DEVICE));
    env.system.freeBuffer(buf, 0x1000);
  });

  it("a malformed answer fails the device's probe with EINVAL and leaves nothing", () => {
    for (const bad of [
      null,
      [null],
      [{ ...DOORBELL, length: 0 }],
      [{ ...DOORBELL, type: "doorbell" }],
      [{ ...DOORBELL, start: -1 }],
      [{ ...DOORBELL, prot: 64 }],
    ]) {
      const env = makeEnv();
      addTestIommu(env, { name: "smmu", pgsizeBitmap: 0x1000, resvRegions: () => bad });
      const nic = addDevice(env, {
        name: "nic",
        iommus: [{ iommu: "smmu", ids: [1] }],
      });
      expect(nic.ref.isBound).toBe(false);
      const failed = env.logs.filter((l) => l.level === "err" || l.level === "warn");
      expect(failed.map((l) => l.text)).toEqual([
        expect.stringMatching(/nic: probe with driver drv\d+ failed with error -22 \(EINVAL\)/),
      ]);
      expect(env.system.audit().ok).toBe(true);
      expect(env.system.iommus.get("smmu")?.clientNames).toEqual([]);
    }
  });

  it("a getResvRegions that is not a function is refused at registration", () => {
    const env = makeEnv();
    let caught: unknown = null;
    addDevice(env, {
      name: "hw",
      probe: (dev) => {
        try {
          iommuDeviceRegister(env.system, dev, {
            pgsizeBitmap: 0x1000,
            probeDevice: () => {},
            domainAllocPaging: () => {
              throw new DevrefError("ENOMEM", "unused");
            },
            // SAFETY (test): the wrong type on purpose.
            getResvRegions: 5 as never,
          });
        } catch (e) {
          caught = e;
        }
      },
    });
    expect(caught).toBeInstanceOf(DevrefError);
    expect((caught as DevrefError).code).toBe("EINVAL");
    expect((caught as DevrefError).message).toMatch(/ops\.getResvRegions/);
    expect(env.system.iommus.size).toBe(0);
  });
});
