// Probe: PARAMS decoding per variant, the reset's register writes, the refusals (locked
// DART, small region, gone hardware, stuck reset), forced and missing bypass.

import { auditDevices } from "@devref/device-core";
import { IOMMU_DOMAIN_DMA, IOMMU_DOMAIN_IDENTITY, iommuGetDomainForDev } from "@devref/dma-iommu";
import type { DevrefError } from "@devref/raw-device";
import { DART_T8020, DART_T8110 } from "@devref/sim";
import { describe, expect, it } from "vitest";
import {
  DART_HW_T8103,
  DART_HW_T8110,
  dartTtbrValue,
  decodeDartError,
  readDartParams,
} from "../src/index.js";
import { DART_BASE, rig } from "./helpers.js";

describe("probe reads PARAMS per variant", () => {
  const cases = [
    {
      variant: "t8020",
      dart: { variant: "t8020" as const },
      want: { type: "t8020", pgsize: 0x4000, numStreams: 16, ias: 32, oas: 36, fourLevel: false },
      fmt: "apple-dart",
    },
    {
      variant: "t8020 with 4 KiB pages",
      dart: { variant: "t8020" as const, pageShift: 12 as const },
      want: { type: "t8020", pgsize: 0x1000, numStreams: 16, ias: 32, oas: 36, fourLevel: false },
      fmt: "apple-dart",
    },
    {
      variant: "t6000",
      dart: { variant: "t6000" as const },
      want: { type: "t6000", pgsize: 0x4000, numStreams: 16, ias: 32, oas: 42, fourLevel: false },
      fmt: "apple-dart2",
    },
    {
      variant: "t8110",
      dart: { variant: "t8110" as const, streams: 48 },
      want: { type: "t8110", pgsize: 0x4000, numStreams: 48, ias: 36, oas: 42, fourLevel: false },
      fmt: "apple-dart2",
    },
    {
      variant: "t8110 with a 42-bit VA (four levels)",
      dart: { variant: "t8110" as const, vaWidth: 42 },
      want: { type: "t8110", pgsize: 0x4000, numStreams: 16, ias: 42, oas: 42, fourLevel: true },
      fmt: "apple-dart2",
    },
  ];
  for (const c of cases) {
    it(c.variant, async () => {
      const r = await rig({ dart: c.dart });
      const d = r.dart();
      expect(d.params).toEqual({
        ...c.want,
        supportsBypass: true,
        forceBypass: false,
      });
      expect(d.hw.fmt).toBe(c.fmt);
      expect(r.logs.map((l) => l.text)).toContain(
        `apple-dart dart0: DART [pagesize ${c.want.pgsize.toString(16)}, ${c.want.numStreams} streams, bypass support: 1, bypass forced: 0, ias ${c.want.ias}, oas ${c.want.oas}] initialized`,
      );
      // Registered as the IOMMU the engine names; the engine got a DMA domain on it.
      expect(r.system.iommus.get("dart0")?.hwDeviceName).toBe("dart0");
      expect(r.engines.isBound("engine0")).toBe(true);
      const dom = iommuGetDomainForDev(r.engine!);
      expect(dom?.type).toBe(IOMMU_DOMAIN_DMA);
      expect(dom?.pgsizeBitmap).toBe(c.want.pgsize);
      expect(dom?.apertureEnd).toBe(2 ** c.want.ias - 1);
      expect(d.streamMode(2)).toBe("translate");
      expect(d.domainOf(2)?.streams()).toEqual([2]);
      expect(r.errors()).toEqual([]);
      expect(r.teardown()).toEqual([]);
    });
  }
});

describe("reset", () => {
  it("t8110: every stream disabled, TTBRs cleared, all enabled globally, errors unmasked, TLB flushed", async () => {
    const r = await rig({ engine: false, dart: { streams: 40 } });
    const reg = (off: number) => r.model.port.read32(off);
    for (let sid = 0; sid < 40; sid++) {
      expect(reg(DART_T8110.TCR + 4 * sid)).toBe(0);
      expect(reg(DART_T8110.TTBR + 4 * sid)).toBe(0);
    }
    expect(reg(DART_T8110.ENABLE_STREAMS)).toBe(0xffff_ffff);
    expect(reg(DART_T8110.ENABLE_STREAMS + 4) & 0xff).toBe(0xff); // streams 32..39
    expect(reg(DART_T8110.ERROR_MASK)).toBe(0);
    // One FLUSH_SID per stream: the last one names stream 39.
    expect(reg(DART_T8110.TLB_CMD) & 0x7ff).toBe(0x100 | 39);
    expect(r.dart().stats.invalidations).toBe(1);
    expect(r.teardown()).toEqual([]);
  });

  it("t8020: stream-select then INVALIDATE for all 16 streams; a stale error is cleared", async () => {
    const r = await rig({
      engine: false,
      dart: { variant: "t8020" },
      before: (soc) => soc.faults.inject({ kind: "iommu-fault", target: "dart0", sid: 5 }),
    });
    // The model keeps the 16 enable bits of its 16 streams.
    expect(r.model.port.read32(DART_T8020.STREAMS_ENABLE)).toBe(0xffff);
    expect(r.model.port.read32(DART_T8020.STREAM_SELECT)).toBe(0xffff);
    expect(r.model.port.read32(DART_T8020.ERROR)).toBe(0);
    expect(r.soc.irq.isAsserted(10)).toBe(false);
    expect(r.dart().stats.faults).toBe(0); // cleared by the reset, before the IRQ was requested
    expect(r.teardown()).toEqual([]);
  });

  it("a locked DART fails the probe with EINVAL and the kernel's message", async () => {
    const r = await rig({ engine: false, dart: { variant: "t8020" } });
    expect(r.teardown()).toEqual([]);
    // Lock the model as a bootloader would, then bind again.
    r.model.port.write32(DART_T8020.CONFIG, DART_T8020.CONFIG_LOCK);
    const fresh = r.platform.register({
      name: "dart1",
      compatible: ["apple,t8103-dart"],
      mem: [{ start: DART_BASE, size: 0x4000, backend: r.model.port }],
      interrupts: [{ domain: "aic", hwirq: 10, trigger: "level" }],
    });
    await r.soc.settle();
    expect(fresh.isBound).toBe(false);
    expect(r.errors().join("\n")).toMatch(/DART is locked down until reboot: 00008000/);
    r.platform.unregister(fresh);
  });
});

describe("bypass", () => {
  it("a 16 KiB DART under a 4 KiB kernel is forced to bypass: identity default domain, no paging domain", async () => {
    const r = await rig({ driver: { hostPageSize: 4096 } });
    const d = r.dart();
    expect(d.params.forceBypass).toBe(true);
    const dom = iommuGetDomainForDev(r.engine!);
    expect(dom?.type).toBe(IOMMU_DOMAIN_IDENTITY);
    expect(d.streamMode(2)).toBe("bypass");
    expect(r.model.port.read32(DART_T8110.TCR + 8)).toBe(0x6);
    // The engine's bus addresses are physical now.
    const buf = r.system.allocBuffer(0x4000);
    expect(r.master.write32(buf + 8, 0x1234_5678)).toBe(true);
    expect(r.soc.memory.read32(buf + 8)).toBe(0x1234_5678);
    r.system.freeBuffer(buf, 0x4000);
    expect(r.teardown()).toEqual([]);
  });

  it("without bypass support the default domain is DMA even with iommu.passthrough", async () => {
    const r = await rig({ dart: { bypass: false }, iommuPassthrough: true });
    expect(r.dart().params.supportsBypass).toBe(false);
    expect(iommuGetDomainForDev(r.engine!)?.type).toBe(IOMMU_DOMAIN_DMA);
    expect(r.teardown()).toEqual([]);
  });

  it("with bypass support and iommu.passthrough the default domain is identity", async () => {
    const r = await rig({ iommuPassthrough: true });
    expect(iommuGetDomainForDev(r.engine!)?.type).toBe(IOMMU_DOMAIN_IDENTITY);
    expect(r.dart().streamMode(2)).toBe("bypass");
    expect(r.teardown()).toEqual([]);
  });
});

describe("variant data", () => {
  it("TTBR encodings match the spec's worked values", () => {
    expect(dartTtbrValue(DART_HW_T8103, 0x8_0001_0000)).toBe(0x8080_0010);
    expect(dartTtbrValue(DART_HW_T8110, 0x8_0001_0000)).toBe(0x0080_0011);
  });

  it("ERROR decodes per family, unknown for two bits at once", () => {
    expect(decodeDartError(DART_HW_T8103, 0x8300_0004, 0x4000, 0)).toMatchObject({
      stream: 3,
      code: 4,
      name: "NO PTE FOR IOVA",
      address: 0x4000,
      write: false,
    });
    expect(decodeDartError(DART_HW_T8110, 0x8030_0008, 0, 1)).toMatchObject({
      stream: 3,
      name: "NO PTE FOR IOVA",
      address: 2 ** 32,
    });
    expect(decodeDartError(DART_HW_T8110, 0x8050_0010, 0, 0)?.write).toBe(true);
    expect(decodeDartError(DART_HW_T8110, 0x8050_0018, 0, 0)?.name).toBe("unknown");
    expect(decodeDartError(DART_HW_T8110, 0x0050_0008, 0, 0)).toBeNull();
  });
});

describe("probe refusals", () => {
  it("PARAMS: too many streams, a page size without tables, registers that read all-ones", () => {
    const regs = (values: Record<number, number>) => (off: number) => values[off] ?? 0;
    const t8110 = (p4: number) => regs({ 0: 14 << 24, 4: 1, 8: (42 << 24) | (36 << 16), 12: p4 });
    expect(readDartParams(DART_HW_T8110, t8110(256), 16384).numStreams).toBe(256);
    expect(() => readDartParams(DART_HW_T8110, t8110(257), 16384)).toThrow(
      "Too many streams (257 > 256)",
    );
    expect(() => readDartParams(DART_HW_T8103, regs({ 0: 0 }), 16384)).toThrow(/2\^0 bytes/);
    expect(() => readDartParams(DART_HW_T8103, regs({ 0: 13 << 24 }), 16384)).toThrow(/2\^13/);
    let gone: unknown = null;
    try {
      readDartParams(DART_HW_T8110, () => 0xffff_ffff, 16384);
    } catch (e) {
      gone = e;
    }
    expect((gone as DevrefError).code).toBe("ENODEV");
  });

  it("a region smaller than 0x4000 bytes (EINVAL) and a node without an interrupt (ENODEV)", async () => {
    const r = await rig({ engine: false });
    const small = r.platform.register({
      name: "dart-small",
      compatible: ["apple,t8110-dart"],
      mem: [{ start: 0x3_0000_0000, size: 0x1000 }],
      interrupts: [{ domain: "aic", hwirq: 11, trigger: "level" }],
    });
    const noirq = r.platform.register({
      name: "dart-noirq",
      compatible: ["apple,t8110-dart"],
      mem: [{ start: 0x3_0001_0000, size: 0x4000 }],
    });
    await r.soc.settle();
    expect(small.isBound).toBe(false);
    expect(noirq.isBound).toBe(false);
    expect(r.errors().join("\n")).toMatch(
      /dart-small: probe with driver apple-dart failed with error -22 \(EINVAL\)/,
    );
    // ENODEV from a probe is the kernel's quiet "does not match": no error line, only the audit.
    const audit = auditDevices(r.soc.machine);
    expect(audit.find((a) => a.name === "dart-noirq")?.probeError).toBe("ENODEV");
    expect(audit.find((a) => a.name === "dart-small")?.probeError).toBe("EINVAL");
    r.platform.unregister(small);
    r.platform.unregister(noirq);
    expect(r.teardown()).toEqual([]);
  });
});

describe("identity and blocked attach, at the register level", () => {
  it("bypass writes the bypass TCR, blocked writes 0; the paging domain gets the stream back", async () => {
    const r = await rig({ dart: { variant: "t8020" } });
    const d = r.dart();
    const ops = r.system.iommus.get("dart0")!.ops;
    const domain = d.domainOf(2)!;
    const tcr = () => r.model.port.read32(DART_T8020.TCR + 8);
    expect(tcr()).toBe(0x80);
    r.engines.run("engine0", (dev) => ops.attachIdentity!(dev, [2]));
    expect(tcr()).toBe(0x1100);
    expect(d.streamMode(2)).toBe("bypass");
    expect(domain.streams()).toEqual([]);
    const buf = r.system.allocBuffer(0x4000);
    expect(r.master.write32(buf, 0x77)).toBe(true); // physical addresses pass through
    expect(r.soc.memory.read32(buf)).toBe(0x77);
    r.engines.run("engine0", (dev) => ops.attachBlocked!(dev, [2]));
    expect(tcr()).toBe(0);
    expect(d.streamMode(2)).toBe("disabled");
    expect(r.master.write32(buf, 0x78)).toBe(false);
    r.engines.run("engine0", (dev) => domain.attachDev(dev, [2]));
    expect(tcr()).toBe(0x80);
    expect(domain.streams()).toEqual([2]);
    r.system.freeBuffer(buf, 0x4000);
    expect(r.teardown()).toEqual([]);
  });

  it("without bypass support identity is refused (EINVAL) and nothing changes", async () => {
    const r = await rig({ dart: { bypass: false } });
    const ops = r.system.iommus.get("dart0")!.ops;
    let caught: unknown = null;
    r.engines.run("engine0", (dev) => {
      try {
        ops.attachIdentity!(dev, [2]);
      } catch (e) {
        caught = e;
      }
    });
    expect((caught as DevrefError).code).toBe("EINVAL");
    expect(r.dart().streamMode(2)).toBe("translate");
    expect(r.teardown()).toEqual([]);
  });
});
