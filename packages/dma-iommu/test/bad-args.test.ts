// Issue 8, item 18, with the shared sweep every package runs: every export of
// @devref/dma-iommu, and every method of the objects it hands out, called with wrong-typed
// and out-of-range arguments, succeeds or throws a DevrefError, and the DMA system's audit
// holds after each call. (args.property.test.ts mixes such values into valid calls.)
import { DevrefError, physAddr } from "@devref/raw-device";
import { describe, expect, it } from "vitest";
import { sweepExports } from "../../../scripts/bad-args.js";
import * as dmaIommu from "../src/index.js";
import {
  DMA_TO_DEVICE,
  dmaAllocCoherent,
  dmaMapSingle,
  dmaStateOf,
  IovaDomain,
  iommuGetDomainForDev,
  ScatterList,
  SwiotlbPool,
} from "../src/index.js";
import { addDevice, addTestIommu, makeEnv } from "./dma-helpers.js";

describe("item 18: wrong arguments to every export (shared sweep)", () => {
  it("are a DevrefError or a success, never another exception, and corrupt nothing", async () => {
    const env = makeEnv({ iommuDefaultDomain: "lazy" });
    const mmu = addTestIommu(env, { name: "sweepmmu" });
    const direct = addDevice(env, { name: "sweepdirect" });
    const behind = addDevice(env, {
      name: "sweepbehind",
      iommus: [{ iommu: "sweepmmu", ids: [1] }],
    });
    const buf = env.system.allocBuffer(1 << 16, "high");
    direct.run((d) => dmaMapSingle(d, buf, 2048, DMA_TO_DEVICE));
    behind.run((d) => dmaMapSingle(d, buf, 4096, DMA_TO_DEVICE));
    const coherent = direct.run((d) => dmaAllocCoherent(d, 4096));
    const iovad = new IovaDomain(4096, 1);
    iovad.allocIova(4, 0xfffff, true);
    const pool = new SwiotlbPool(env.system.memory, { base: 0x2000_0000, nslabs: 128 });
    pool.map(physAddr(0x8_1000_0000), 100, DMA_TO_DEVICE);
    const bad = await sweepExports({
      module: dmaIommu,
      expected: DevrefError,
      instances: () => ({
        system: env.system,
        iovad,
        pool,
        coherent,
        iommu: mmu.iommu(),
        dma: dmaStateOf(behind.ref)!,
        fq: iommuGetDomainForDev(behind.ref)!.cookie!.fq!,
        cookie: iommuGetDomainForDev(behind.ref)!.cookie!,
        sg: new ScatterList([{ pa: buf, length: 100 }]),
      }),
      check: () => {
        expect(env.system.audit().problems).toEqual([]);
        const s = pool.stats();
        expect(s.usedSlots).toBe(pool.mappings().reduce((n, m) => n + m.slots, 0));
        const r = iovad.ranges();
        expect(iovad.stats().pfns).toBe(r.reduce((n, x) => n + x.pfnHi - x.pfnLo + 1, 0));
      },
      runs: 600,
    });
    expect(bad).toEqual([]);
    env.bus.unplug(direct.ref);
    env.bus.unplug(behind.ref);
    env.bus.unplug(mmu.ref);
    env.system.freeBuffer(buf, 1 << 16);
    const audit = env.system.audit();
    expect(audit.problems).toEqual([]);
    // What is left is only buffers the sweep itself allocated with valid sizes.
    expect(audit.coherentBytes).toBe(0);
    expect(audit.liveMappings).toBe(0);
    expect(audit.bounceSlots).toBe(0);
    expect(mmu.pages.bytesInUse).toBe(0);
    for (const r of [direct.ref, behind.ref, mmu.ref]) r.put();
  });
});
