// The DART model against specs/sim-hardware.md §1, driven at the register level.
import { describe, expect, it } from "vitest";
import { type Dart, type DartVariant, DMA_STATUS, Soc } from "../src/index.js";
import {
  attachTranslate,
  buildTables,
  DART_BASE,
  DART_IRQ,
  errorRegs,
  invalidate,
  resetDart,
  tables,
} from "./dart-helpers.js";
import { expectCode } from "./helpers.js";

const P16 = 0x4000;
const fmtOf = (v: DartVariant): "dart1" | "dart2" => (v === "t8020" ? "dart1" : "dart2");

function setup(
  variant: DartVariant,
  extra: Parameters<typeof resetDart>[2] = {},
  fourLevel = false,
) {
  const soc = new Soc();
  const dart = resetDart(soc, variant, extra);
  const t = buildTables(tables(soc, fmtOf(variant), dart.pageShift), fourLevel);
  const dev = soc.dmaMaster("dev");
  dart.attach(dev, 3);
  const page = (): number => soc.ram.alloc(dart.pageSize, dart.pageSize);
  return { soc, dart, t, dev, page };
}

describe("DART registers", () => {
  it("reports PARAMS as the spec suggests", () => {
    const soc = new Soc();
    const d8110 = new Soc();
    const a = resetDart(soc, "t8020");
    const b = resetDart(d8110, "t8110", { vaWidth: 42, streams: 40 });
    expect(a.port.read32(0x00)).toBe(14 << 24);
    expect(a.port.read32(0x04)).toBe(1);
    expect(b.port.read32(0x08) >>> 16).toBe((42 << 8) | 42);
    expect(b.port.read32(0x0c) & 0x1ff).toBe(40);
    // streams 32..39 live in the second enable word; the reset wrote all-ones to both.
    expect(b.port.read32(0xc00)).toBe(0xffff_ffff);
    expect(b.port.read32(0xc04)).toBe(0xff);
  });

  it("reads unmodelled registers as 0 and ignores writes to them", () => {
    const { dart } = setup("t8020");
    dart.port.write32(0x80, 0x1234);
    dart.port.write32(0xf0, 1);
    expect(dart.port.read32(0x80)).toBe(0);
    expect(dart.port.read32(0xf0)).toBe(0);
  });

  it("encodes the worked error values: stream 3 NO_PTE", () => {
    for (const [variant, value] of [
      ["t8020", 0x8300_0004],
      ["t6000", 0x8300_0004],
      ["t8110", 0x8030_0008],
    ] as const) {
      const { dart, dev, t, page } = setup(variant);
      t.map(0x4000, page()); // the leaf table exists; the slot for 0x10_0000 is empty
      attachTranslate(dart.soc, dart, 3, t.top);
      expect(dev.read32(0x10_0000)).toBe(0xffff_ffff);
      expect(dev.status).toBe(DMA_STATUS.IOMMU_FAULT);
      expect(errorRegs(dart)).toEqual({ error: value, addrLo: 0x10_0000, addrHi: 0 });
    }
  });
});

describe.each(["t8020", "t6000", "t8110"] as const)("DART %s translation", (variant) => {
  it("translates through a table the kernel's way and moves data", () => {
    const { soc, dart, t, dev, page } = setup(variant);
    const pa = page();
    t.map(0x4000, pa);
    attachTranslate(soc, dart, 3, t.top);
    expect(dev.write32(0x4000 + 0x10, 0xcafe_f00d)).toBe(true);
    expect(soc.memory.read32(pa + 0x10)).toBe(0xcafe_f00d);
    expect(dev.read32(0x4010)).toBe(0xcafe_f00d);
    expect(dart.iotlbEntries()).toEqual([
      { sid: 3, dva: 0x4000, pa, noRead: false, noWrite: false, fault: null },
    ]);
    expect(dart.errorLatched).toBe(false);
  });

  it("faults with NO_TTBR, NO_PMD, NO_PTE, WRITE_FAULT and READ_FAULT", () => {
    const bits =
      variant === "t8110"
        ? { ttbr: 1, pmd: 4, pte: 8, write: 16, read: 32 }
        : { ttbr: 1, pmd: 2, pte: 4, write: 8, read: 16 };
    const code = (d: Dart) => errorRegs(d).error & (variant === "t8110" ? 0x7fff : 0xfff);
    const clear = (d: Dart) =>
      d.port.write32(variant === "t8110" ? 0x100 : 0x40, errorRegs(d).error);

    const { soc, dart, t, dev, page } = setup(variant);
    // NO_TTBR: translate mode with no valid TTBR.
    dart.port.write32(
      variant === "t8110" ? 0x1000 + 12 : 0x100 + 12,
      variant === "t8110" ? 1 : 0x80,
    );
    expect(dev.read32(0x4000)).toBe(0xffff_ffff);
    expect(code(dart)).toBe(bits.ttbr);
    expect(soc.irq.isAsserted(DART_IRQ)).toBe(true);
    clear(dart);
    expect(soc.irq.isAsserted(DART_IRQ)).toBe(false);
    expect(dart.errorLatched).toBe(false);

    attachTranslate(soc, dart, 3, t.top);
    // NO_PMD: nothing at level 1 for this DVA.
    dev.read32(0x4000);
    expect(code(dart)).toBe(bits.pmd);
    clear(dart);
    // NO_PTE: the leaf table exists but the slot is empty.
    t.map(0x8000, page());
    dev.read32(0x4000);
    expect(code(dart)).toBe(bits.pte);
    expect(errorRegs(dart).addrLo).toBe(0x4000);
    clear(dart);
    // WRITE_FAULT / READ_FAULT from the leaf's permission bits.
    t.map(0xc000, page(), { write: false });
    t.map(0x1_0000, page(), { read: false });
    expect(dev.read32(0xc000)).not.toBe(undefined);
    expect(dev.status).toBe(DMA_STATUS.OK);
    expect(dev.write32(0xc000, 1)).toBe(false);
    expect(code(dart)).toBe(bits.write);
    clear(dart);
    expect(dev.write32(0x1_0000, 1)).toBe(true);
    dev.read32(0x1_0000);
    expect(dev.status).toBe(DMA_STATUS.IOMMU_FAULT);
    expect(code(dart)).toBe(bits.read);
    clear(dart);
    // Each fault was traced with its name.
    const names = soc
      .trace()
      .filter((r) => r.kind === "fault" && r.fault.startsWith("dart-"))
      .map((r) => (r.kind === "fault" ? r.fault : ""));
    expect(names).toEqual([
      "dart-no-ttbr",
      "dart-no-pmd",
      "dart-no-pte",
      "dart-write-fault",
      "dart-read-fault",
    ]);
  });

  it("keeps a stale translation after an unmap until the TLB is invalidated", () => {
    const { soc, dart, t, dev, page } = setup(variant);
    const pa = page();
    t.map(0x4000, pa);
    attachTranslate(soc, dart, 3, t.top);
    expect(dev.write32(0x4000, 1)).toBe(true);
    t.unmap(0x4000); // the driver forgets iotlb_sync
    expect(dev.write32(0x4004, 2)).toBe(true); // still reaches the old page
    expect(soc.memory.read32(pa + 4)).toBe(2);
    invalidate(soc, dart, 3);
    expect(dev.write32(0x4008, 3)).toBe(false);
    expect(dev.status).toBe(DMA_STATUS.IOMMU_FAULT);
    expect(soc.memory.read32(pa + 8)).toBe(0);
    const flushes = soc
      .trace()
      .filter((r) => r.kind === "iotlb" && r.action === "flush" && r.count > 0);
    expect(flushes.at(-1)).toMatchObject({ sid: 3, count: 1 });
  });

  it("does not flush on TTBR or TCR writes: a new domain without invalidation still hits the old one", () => {
    const { soc, dart, t, dev, page } = setup(variant);
    const oldPa = page();
    t.map(0x4000, oldPa);
    attachTranslate(soc, dart, 3, t.top);
    dev.write32(0x4000, 1);
    const t2 = buildTables(tables(soc, fmtOf(variant), dart.pageShift));
    const newPa = page();
    t2.map(0x4000, newPa);
    // Attach without the final invalidation.
    const w = (off: number, v: number) => soc.fabric.write32(DART_BASE + off, v);
    if (variant === "t8110") w(0x1400 + 12, (1 | ((t2.top / P16) << 2)) >>> 0);
    else w(0x200 + 48, (0x8000_0000 | (t2.top / 0x1000)) >>> 0);
    dev.write32(0x4000, 2);
    expect(soc.memory.read32(oldPa)).toBe(2);
    invalidate(soc, dart, 3);
    dev.write32(0x4000, 3);
    expect(soc.memory.read32(newPa)).toBe(3);
  });

  it("splits transfers at page boundaries and stops at the first faulting page", () => {
    const { soc, dart, t, dev, page } = setup(variant);
    const a = page();
    t.map(0x4000, a);
    attachTranslate(soc, dart, 3, t.top);
    const buf = new Uint8Array(0x20).fill(0xab);
    expect(dev.write(0x8000 - 0x10, buf)).toBe(false);
    expect(dev.errorAddr).toBe(0x8000);
    expect(soc.memory.read8(a + 0x3ff0)).toBe(0xab);
    expect(soc.memory.read8(a + 0x3fff)).toBe(0xab);
    // A 4-byte access across the boundary takes the byte path.
    const b = page();
    t.map(0x8000, b);
    expect(dev.write32(0x7ffe, 0x4433_2211)).toBe(true);
    expect(soc.memory.read8(a + 0x3ffe)).toBe(0x11);
    expect(soc.memory.read8(b + 1)).toBe(0x44);
    expect(dev.read32(0x7ffe)).toBe(0x4433_2211);
  });

  it("passes addresses through in bypass and blocks on TCR 0, both bits, or a disabled stream", () => {
    const { soc, dart, dev } = setup(variant);
    const tcr = variant === "t8110" ? 0x1000 + 12 : 0x100 + 12;
    const bypass = variant === "t8110" ? 0x6 : 0x1100;
    const both = variant === "t8110" ? 0x3 : 0x180;
    dart.port.write32(tcr, bypass);
    expect(dev.write32(0x8_0000_0100, 7)).toBe(true);
    expect(soc.memory.read32(0x8_0000_0100)).toBe(7);
    dart.port.write32(tcr, both);
    expect(dev.write32(0x8_0000_0100, 8)).toBe(false);
    expect(dev.status).toBe(DMA_STATUS.IOMMU_BLOCKED);
    dart.port.write32(tcr, 0);
    expect(dev.read32(0x8_0000_0100)).toBe(0xffff_ffff);
    expect(dev.status).toBe(DMA_STATUS.IOMMU_BLOCKED);
    expect(dart.errorLatched).toBe(false); // blocked transactions latch nothing by default
    dart.port.write32(tcr, bypass);
    if (variant === "t8110") dart.port.write32(0xc20, 1 << 3);
    else dart.port.write32(0xfc, 0xffff & ~(1 << 3));
    expect(dev.write32(0x8_0000_0100, 9)).toBe(false);
    expect(soc.memory.read32(0x8_0000_0100)).toBe(7);
  });

  it("latches the first fault only and clears it by writing the value back", () => {
    const { soc, dart, t, dev } = setup(variant);
    attachTranslate(soc, dart, 3, t.top);
    dev.read32(0x4000);
    const first = errorRegs(dart);
    dev.read32(0x8_0000);
    const second = errorRegs(dart);
    expect(second.addrLo).toBe(first.addrLo);
    if (variant === "t8110") expect(second.error).toBe((first.error | (1 << 19)) >>> 0);
    else expect(second.error).toBe(first.error);
    dart.port.write32(variant === "t8110" ? 0x100 : 0x40, second.error);
    expect(errorRegs(dart).error).toBe(0);
    expect(soc.irq.isAsserted(DART_IRQ)).toBe(false);
  });

  it("truncates DVAs to the input width", () => {
    const { soc, dart, t, dev, page } = setup(variant);
    const pa = page();
    t.map(0x4000, pa);
    attachTranslate(soc, dart, 3, t.top);
    const above = variant === "t8110" ? 2 ** 36 : 2 ** 32;
    expect(dev.write32(above + 0x4000, 5)).toBe(true);
    expect(soc.memory.read32(pa)).toBe(5);
  });
});

describe("DART t8110 specifics", () => {
  it("walks four levels with FOUR_LEVEL and faults NO_PGD on an empty level 0", () => {
    const soc = new Soc();
    const dart = resetDart(soc, "t8110", { vaWidth: 42 });
    const t = buildTables(tables(soc, "dart2"), true);
    const dev = soc.dmaMaster("dev");
    dart.attach(dev, 3);
    const pa = soc.ram.alloc(P16, P16);
    t.map(0x4000, pa);
    attachTranslate(soc, dart, 3, t.top, true);
    expect(dart.port.read32(0x1000 + 12)).toBe(9);
    expect(dev.write32(0x4000, 1)).toBe(true);
    expect(soc.memory.read32(pa)).toBe(1);
    // L0 index 1 (DVA bit 36) has no table.
    expect(dev.write32(2 ** 36 + 0x4000, 1)).toBe(false);
    expect(errorRegs(dart)).toEqual({ error: 0x8030_0002, addrLo: 0x4000, addrHi: 0x10 });
  });

  it("drops FOUR_LEVEL on a DART whose VA width does not need it", () => {
    const soc = new Soc();
    const dart = resetDart(soc, "t8110");
    dart.port.write32(0x1000, 0x9);
    expect(dart.port.read32(0x1000)).toBe(1);
  });

  it("records faulting streams in ERROR_STREAMS (W1C); t602x-like DARTs hold the IRQ on them", () => {
    for (const hold of [false, true]) {
      const soc = new Soc();
      const dart = resetDart(soc, "t8110", { streams: 40, errorStreamsHoldIrq: hold });
      soc.faults.inject({ kind: "iommu-fault", target: "dart0", sid: 3 });
      soc.faults.inject({ kind: "iommu-fault", target: "dart0", sid: 35 }); // secondary
      expect(dart.port.read32(0x1c0)).toBe(1 << 3);
      expect(dart.port.read32(0x1c4)).toBe(1 << 3);
      dart.port.write32(0x100, dart.port.read32(0x100)); // what kernels before ecf6508923f8 do
      expect(soc.irq.isAsserted(DART_IRQ)).toBe(hold);
      dart.port.write32(0x1c0, 0xffff_ffff); // and what the kernel does since
      dart.port.write32(0x1c4, 0xffff_ffff);
      expect(dart.port.read32(0x1c0)).toBe(0);
      expect(soc.irq.isAsserted(DART_IRQ)).toBe(false);
    }
    expectCode(() => resetDart(new Soc(), "t8020", { errorStreamsHoldIrq: true }), "EINVAL");
  });

  it("suppresses errors whose bit is set in ERROR_MASK", () => {
    const soc = new Soc();
    const dart = resetDart(soc, "t8110");
    const t = buildTables(tables(soc, "dart2"));
    const dev = soc.dmaMaster("dev");
    dart.attach(dev, 3);
    attachTranslate(soc, dart, 3, t.top);
    dart.port.write32(0x104, 1 << 2); // NO_PMD masked
    expect(dev.read32(0x4000)).toBe(0xffff_ffff);
    expect(dev.status).toBe(DMA_STATUS.IOMMU_FAULT); // the transaction still fails
    expect(dart.errorLatched).toBe(false);
  });

  it("PROTECT makes TCR/TTBR writes ignored; UNPROTECT works until PROTECT_LOCK", () => {
    const soc = new Soc();
    const dart = resetDart(soc, "t8110");
    dart.port.write32(0x1000, 1);
    dart.port.write32(0x200, 1);
    expect(dart.locked).toBe(true);
    dart.port.write32(0x1000, 6);
    expect(dart.port.read32(0x1000)).toBe(1);
    dart.port.write32(0x204, 1);
    expect(dart.locked).toBe(false);
    dart.port.write32(0x200, 1);
    dart.port.write32(0x208, 1);
    dart.port.write32(0x204, 1);
    expect(dart.locked).toBe(true);
    expect(dart.port.read32(0x200)).toBe(1);
    expect(
      soc.trace().filter((r) => r.kind === "fault" && r.fault === "dart-locked-write"),
    ).toHaveLength(2);
  });
});

describe("DART lock (t8020 CONFIG.LOCK)", () => {
  it("ignores TCR/TTBR writes, keeps table memory live and invalidation working", () => {
    const soc = new Soc();
    const dart = resetDart(soc, "t8020");
    const t = buildTables(tables(soc, "dart1"));
    const dev = soc.dmaMaster("disp");
    dart.attach(dev, 3);
    const a = soc.ram.alloc(P16, P16);
    const b = soc.ram.alloc(P16, P16);
    t.map(0x4000, a);
    attachTranslate(soc, dart, 3, t.top); // what a bootloader leaves behind
    dart.port.write32(0x60, 1 << 15);
    expect(dart.port.read32(0x60) & (1 << 15)).not.toBe(0);
    dart.port.write32(0x60, 0); // LOCK is sticky
    expect(dart.locked).toBe(true);
    dart.port.write32(0x100 + 12, 0);
    dart.port.write32(0x200 + 48, 0);
    expect(dart.port.read32(0x100 + 12)).toBe(0x80);
    // The OS edits the preset table in place and invalidates: that works.
    t.map(0x4000, b);
    invalidate(soc, dart, 3);
    dev.write32(0x4000, 0x55);
    expect(soc.memory.read32(b)).toBe(0x55);
    expect(soc.memory.read32(a)).toBe(0);
  });
});

describe("DART command timing and injected faults", () => {
  it("keeps BUSY for the configured latency and flushes when the command completes", () => {
    const soc = new Soc();
    const dart = resetDart(soc, "t8020", { commandLatencyNs: 5000 });
    soc.run(); // let the reset's invalidation finish
    const t = buildTables(tables(soc, "dart1"));
    const dev = soc.dmaMaster("dev");
    dart.attach(dev, 3);
    const pa = soc.ram.alloc(P16, P16);
    t.map(0x4000, pa);
    attachTranslate(soc, dart, 3, t.top);
    soc.run();
    dev.write32(0x4000, 1);
    t.unmap(0x4000);
    invalidate(soc, dart, 3);
    expect(dart.port.read32(0x20) & 4).toBe(4);
    expect(dev.write32(0x4000, 2)).toBe(true); // not flushed yet
    soc.runFor(4999);
    expect(dart.port.read32(0x20) & 4).toBe(4);
    soc.runFor(1);
    expect(dart.port.read32(0x20) & 4).toBe(0);
    expect(dev.write32(0x4000, 3)).toBe(false);
  });

  it("can make a command stick busy forever (the driver's 100 us timeout path) or for a while", () => {
    const soc = new Soc();
    const dart = resetDart(soc, "t8110");
    soc.faults.inject({ kind: "stuck-command", target: "dart0" });
    dart.port.write32(0x80, 0x105);
    soc.runFor(100_000);
    expect(dart.port.read32(0x80) >>> 31).toBe(1);
    dart.port.write32(0x80, 0x106); // ignored while busy
    expect(dart.port.read32(0x80) & 0x7ff).toBe(0x105);

    const soc2 = new Soc();
    const d2 = resetDart(soc2, "t8110");
    soc2.faults.schedule(
      { step: soc2.stepCount + 1 },
      { kind: "stuck-command", target: "dart0", durationNs: 200_000 },
    );
    d2.port.write32(0x80, 0x105);
    soc2.runFor(100_000);
    expect(d2.commandBusy).toBe(true);
    soc2.runFor(100_000);
    expect(d2.commandBusy).toBe(false);
  });

  it("injects an IOMMU fault now, or on the stream's next translation", () => {
    const soc = new Soc();
    const dart = resetDart(soc, "t8110");
    const t = buildTables(tables(soc, "dart2"));
    const dev = soc.dmaMaster("dev");
    dart.attach(dev, 3);
    const pa = soc.ram.alloc(P16, P16);
    t.map(0x4000, pa);
    attachTranslate(soc, dart, 3, t.top);
    soc.faults.inject({
      kind: "iommu-fault",
      target: "dart0",
      sid: 5,
      code: "read-fault",
      dva: 0x1234_5678,
    });
    expect(errorRegs(dart)).toEqual({ error: 0x8050_0020, addrLo: 0x1234_5678, addrHi: 0 });
    dart.port.write32(0x100, 0x8050_0020);
    soc.faults.inject({ kind: "iommu-fault", target: "dart0", sid: 3, next: true, code: "no-pgd" });
    expect(dev.write32(0x4000, 1)).toBe(false);
    expect(errorRegs(dart).error).toBe(0x8030_0002);
    dart.port.write32(0x100, 0x8030_0002);
    expect(dev.write32(0x4000, 1)).toBe(true); // armed once
    expectCode(
      () => soc.faults.inject({ kind: "iommu-fault", target: "dart0", sid: 99 }),
      "EINVAL",
    );
    const soc8020 = new Soc();
    resetDart(soc8020, "t8020");
    expectCode(
      () => soc8020.faults.inject({ kind: "iommu-fault", target: "dart0", sid: 1, code: "no-pgd" }),
      "EINVAL",
    );
  });
});

describe("DART caches and options", () => {
  it("evicts the least recently used entry when the IOTLB is full", () => {
    const { soc, dart, t, dev, page } = setup("t8110", { iotlbEntries: 2 });
    const pas = [page(), page(), page()];
    for (const [i, pa] of pas.entries()) t.map(0x4000 * (i + 1), pa);
    attachTranslate(soc, dart, 3, t.top);
    dev.read32(0x4000);
    dev.read32(0x8000);
    dev.read32(0x4000); // page 1 is now the most recent
    dev.read32(0xc000); // evicts page 2
    for (let i = 1; i <= 3; i++) t.unmap(0x4000 * i);
    expect(dev.write32(0x4000, 1)).toBe(true); // stale hit
    expect(dev.write32(0xc000, 1)).toBe(true); // stale hit
    expect(dev.write32(0x8000, 1)).toBe(false); // evicted: walks and faults
  });

  it("optionally caches table entries, which only invalidation drops", () => {
    for (const cacheTables of [false, true]) {
      const { soc, dart, t, dev, page } = setup("t8110", { cacheTables });
      t.map(0x4000, page());
      const other = page();
      t.map(0x8000, other);
      attachTranslate(soc, dart, 3, t.top);
      dev.read32(0x4000); // caches the level-1 entry (if enabled)
      t.dropLeafTable(0x4000); // frees the leaf table's link without invalidating
      expect(dev.write32(0x8000, 1)).toBe(cacheTables);
      invalidate(soc, dart, 3);
      expect(dev.write32(0x8000, 1)).toBe(false);
    }
  });

  it("optionally caches failed lookups until invalidation", () => {
    const { soc, dart, t, dev, page } = setup("t8020", { cacheFaults: true });
    attachTranslate(soc, dart, 3, t.top);
    expect(dev.read32(0x4000)).toBe(0xffff_ffff);
    dart.port.write32(0x40, dart.port.read32(0x40));
    t.map(0x4000, page()); // mapped without invalidation (the kernel always invalidates)
    expect(dev.write32(0x4000, 1)).toBe(false);
    expect(dart.iotlbEntries()[0]).toMatchObject({ sid: 3, dva: 0x4000, pa: -1, fault: "no-pmd" });
    invalidate(soc, dart, 3);
    expect(dev.write32(0x4000, 1)).toBe(true);
  });

  it("optionally faults outside a leaf's subpage range", () => {
    const { soc, dart, t, dev, page } = setup("t8020", { strictSubpage: true });
    t.map(0x4000, page(), { spStart: 0, spEnd: 0x3ff }); // first 4 KiB of the 16 KiB page
    attachTranslate(soc, dart, 3, t.top);
    expect(dev.write32(0x4ffc, 1)).toBe(true);
    expect(dev.write32(0x5000, 1)).toBe(false);
    expect(errorRegs(dart).error & 0xfff).toBe(1 << 7);
  });

  it("latches NO_TTBR for blocked streams when asked to", () => {
    const { dart, dev } = setup("t8020", { latchBlocked: true });
    expect(dev.read32(0x4000)).toBe(0xffff_ffff);
    expect(errorRegs(dart).error).toBe(0x8300_0001);
  });

  it("selects one of four TTBRs by DVA bits 31:30 with 4 KiB pages (DART1)", () => {
    const soc = new Soc();
    const dart = resetDart(soc, "t8020", { pageShift: 12 });
    const t = buildTables(tables(soc, "dart1", 12));
    const dev = soc.dmaMaster("dev");
    dart.attach(dev, 2);
    const pa = soc.ram.alloc(0x1000, 0x1000);
    t.map(0x1000, pa); // the table builder indexes within one TTBR's range
    const w = (off: number, v: number) => soc.fabric.write32(DART_BASE + off, v);
    w(0x200 + 32 + 4, (0x8000_0000 | (t.top / 0x1000)) >>> 0); // TTBR(2, 1)
    w(0x100 + 8, 0x80);
    invalidate(soc, dart, 2);
    expect(dev.write32(0x4000_1000, 9)).toBe(true); // bits 31:30 = 1 → TTBR 1
    expect(soc.memory.read32(pa)).toBe(9);
    expect(dev.write32(0x1000, 9)).toBe(false); // TTBR 0 is not valid
    expect(errorRegs(dart).error & 0xfff).toBe(1);
  });

  it("refuses bad options", () => {
    const soc = new Soc();
    soc.addMemory("sram", DART_BASE + 0x1000, 0x1000);
    expectCode(() => resetDart(soc, "t8110"), "EBUSY"); // overlaps: nothing registered
    expect(soc.device("dart0")).toBeUndefined();
    expectCode(() => resetDart(soc, "t8110", { pageShift: 12 }), "EINVAL");
    expectCode(() => resetDart(soc, "t8020", { streams: 32 }), "EINVAL");
    expectCode(() => resetDart(soc, "t8110", { streams: 300 }), "EINVAL");
    expectCode(() => resetDart(soc, "t8110", { iotlbEntries: 0 }), "EINVAL");
    expect(soc.devices()).toEqual([]);
  });

  it("ignores narrow writes and traces them", () => {
    const { soc, dart } = setup("t8110");
    dart.port.write8(0x104, 0xff);
    expect(dart.port.read32(0x104)).toBe(0);
    expect(dart.port.read8(0x0b)).toBe(42);
    expect(soc.trace().some((r) => r.kind === "fault" && r.fault === "dart-narrow-write")).toBe(
      true,
    );
  });
});
