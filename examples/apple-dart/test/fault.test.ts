// The fault interrupt: a DMA to an unmapped IOVA (or an injected fault) is decoded per
// variant, reported through the IOMMU core's fault path with the right IOVA and flags, and
// cleared so the level interrupt drops.
import {
  IOMMU_FAULT_READ,
  IOMMU_FAULT_WRITE,
  type IommuFaultHandler,
  iommuGetDomainForDev,
  iommuMap,
  iommuSetFaultHandler,
  iommuUnmap,
} from "@devref/dma-iommu";
import { IOMMU_READ } from "@devref/io-pgtable";
import { DevrefError, iova } from "@devref/raw-device";
import { DART_T8020, DART_T8110, type DartFaultCode } from "@devref/sim";
import { describe, expect, it } from "vitest";
import { DART_IRQ, ENGINE_SID, rig } from "./helpers.js";

interface Seen {
  domain: unknown;
  dev: string | null;
  iova: number;
  flags: number;
}

function recorder(seen: Seen[], result = 0): IommuFaultHandler {
  return (domain, dev, at, flags) => {
    seen.push({ domain, dev: dev?.name ?? null, iova: at, flags });
    return result;
  };
}

describe("the fault interrupt", () => {
  for (const variant of ["t8020", "t6000", "t8110"] as const) {
    it(`${variant}: a read of an unmapped IOVA is reported to the engine's domain and cleared`, async () => {
      const r = await rig({ dart: { variant } });
      const domain = iommuGetDomainForDev(r.engine!)!;
      const seen: Seen[] = [];
      iommuSetFaultHandler(domain, recorder(seen));
      const at = 0x0123_4000 + 0x40;
      expect(r.master.read32(at)).toBe(0xffff_ffff);
      expect(r.soc.irq.isAsserted(DART_IRQ)).toBe(true);
      await r.soc.settle();
      expect(seen).toEqual([{ domain, dev: "engine0", iova: at, flags: IOMMU_FAULT_READ }]);
      const d = r.dart();
      expect(d.stats).toMatchObject({ faults: 1, faultsHandled: 1 });
      const f = d.faults[0]!;
      expect(f).toMatchObject({ stream: ENGINE_SID, address: at, write: false });
      // Nothing is mapped below the top of the 32-bit space yet: the leaf table is missing.
      expect(f.name).toBe("NO PMD FOR IOVA");
      const error = variant === "t8110" ? DART_T8110.ERROR : DART_T8020.ERROR;
      expect(r.model.port.read32(error)).toBe(0);
      expect(r.soc.irq.isAsserted(DART_IRQ)).toBe(false);
      expect(r.errors()).toEqual([
        `apple-dart dart0: translation fault: status:0x${f.status.toString(16)} stream:2 code:0x${f.code.toString(16)} (NO PMD FOR IOVA) at 0x${at.toString(16)}`,
      ]);
      expect(r.teardown()).toEqual([]);
    });
  }

  it("a write to a read-only page carries IOMMU_FAULT_WRITE", async () => {
    const r = await rig();
    const domain = iommuGetDomainForDev(r.engine!)!;
    const seen: Seen[] = [];
    iommuSetFaultHandler(domain, recorder(seen));
    // One read-only page, mapped through the core at a chosen IOVA.
    const buf = r.system.allocBuffer(0x4000);
    iommuMap(domain, iova(0x4000), buf, 0x4000, IOMMU_READ);
    expect(r.master.write32(0x4008, 1)).toBe(false);
    await r.soc.settle();
    expect(seen).toEqual([{ domain, dev: "engine0", iova: 0x4008, flags: IOMMU_FAULT_WRITE }]);
    expect(r.dart().faults[0]?.name).toBe("WRITE FAULT");
    expect(iommuUnmap(domain, iova(0x4000), 0x4000)).toBe(0x4000);
    r.system.freeBuffer(buf, 0x4000);
    expect(r.teardown()).toEqual([]);
  });

  const codes: [DartFaultCode, string][] = [
    ["no-ttbr", "NO TTBR FOR IOVA"],
    ["no-pgd", "NO PGD FOR IOVA"],
    ["no-pmd", "NO PMD FOR IOVA"],
    ["no-pte", "NO PTE FOR IOVA"],
    ["write-fault", "WRITE FAULT"],
    ["read-fault", "READ FAULT"],
  ];
  for (const variant of ["t8020", "t8110"] as const) {
    it(`${variant}: every code the kernel names, injected, decodes to its name`, async () => {
      const r = await rig({ dart: { variant } });
      const seen: Seen[] = [];
      iommuSetFaultHandler(iommuGetDomainForDev(r.engine!)!, recorder(seen));
      const want: string[] = [];
      for (const [code, name] of codes) {
        if (code === "no-pgd" && variant !== "t8110") continue;
        r.soc.faults.inject({
          kind: "iommu-fault",
          target: "dart0",
          sid: ENGINE_SID,
          code,
          dva: 0x8000,
        });
        await r.soc.settle();
        want.push(name);
      }
      const d = r.dart();
      expect(d.faults.map((f) => f.name)).toEqual(want);
      expect(d.faults.every((f) => f.stream === ENGINE_SID && f.address === 0x8000)).toBe(true);
      expect(seen.map((s) => s.flags)).toEqual(
        want.map((n) => (n === "WRITE FAULT" ? IOMMU_FAULT_WRITE : IOMMU_FAULT_READ)),
      );
      expect(r.teardown()).toEqual([]);
    });
  }

  it("no handler: -ENOSYS from the core, the fault is still logged and cleared", async () => {
    const r = await rig();
    r.soc.faults.inject({ kind: "iommu-fault", target: "dart0", sid: ENGINE_SID, dva: 0x4000 });
    await r.soc.settle();
    expect(r.dart().stats).toMatchObject({ faults: 1, faultsHandled: 0 });
    expect(r.soc.irq.isAsserted(DART_IRQ)).toBe(false);
    expect(r.teardown()).toEqual([]);
  });

  it("a stream no device uses: logged and cleared, reported to nobody", async () => {
    const r = await rig();
    const seen: Seen[] = [];
    iommuSetFaultHandler(iommuGetDomainForDev(r.engine!)!, recorder(seen));
    r.soc.faults.inject({ kind: "iommu-fault", target: "dart0", sid: 9, dva: 0x4000 });
    await r.soc.settle();
    expect(seen).toEqual([]);
    expect(r.dart().faults[0]).toMatchObject({ stream: 9, name: "NO PTE FOR IOVA" });
    expect(r.soc.irq.isAsserted(DART_IRQ)).toBe(false);
    expect(r.teardown()).toEqual([]);
  });

  it("a handler that throws is logged; the error is cleared all the same", async () => {
    const r = await rig();
    iommuSetFaultHandler(iommuGetDomainForDev(r.engine!)!, () => {
      throw new DevrefError("EIO", "handler broke");
    });
    r.soc.faults.inject({ kind: "iommu-fault", target: "dart0", sid: ENGINE_SID, dva: 0x4000 });
    await r.soc.settle();
    expect(r.soc.irq.isAsserted(DART_IRQ)).toBe(false);
    expect(r.errors().at(-1)).toMatch(
      /fault handler failed for 0x4000: EIO: handler broke|handler broke/,
    );
    expect(r.teardown()).toEqual([]);
  });

  it("t8110: the per-stream error bits are cleared too", async () => {
    const r = await rig({ dart: { errorStreamsHoldIrq: true } });
    r.soc.faults.inject({ kind: "iommu-fault", target: "dart0", sid: ENGINE_SID, dva: 0x4000 });
    await r.soc.settle();
    expect(r.model.port.read32(DART_T8110.ERROR_STREAMS)).toBe(0);
    expect(r.soc.irq.isAsserted(DART_IRQ)).toBe(false);
    expect(r.dart().stats.faults).toBe(1);
    expect(r.teardown()).toEqual([]);
  });
});
