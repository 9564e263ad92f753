// The PCI host and function models against specs/sim-hardware.md §3, at the register level.
import { describe, expect, it } from "vitest";
import {
  DMA_STATUS,
  type MmioHandler,
  type MmioWidth,
  PCI,
  PCI_HOTPLUG,
  PciFunction,
  type PciFunctionOptions,
  PciHost,
  Soc,
} from "../src/index.js";
import { attachTranslate, buildTables, resetDart, tables } from "./dart-helpers.js";
import { expectCode } from "./helpers.js";

const ECAM = 0x6_0000_0000;
const HP = 0x6_0010_0000;
const WIN = 0xa000_0000;
const RAM = 0x8_0000_0000;
const INTX = 32;
const HP_IRQ = 40;
const MSI = 64;
const DOORBELL = 0xffff_f000;

class RegFile implements MmioHandler {
  readonly words = new Uint32Array(0x1000);
  mmioRead(offset: number, width: MmioWidth): number {
    const w = this.words[offset >>> 2]!;
    return width === 4 ? w : (w >>> ((offset & 3) * 8)) & (width === 1 ? 0xff : 0xffff);
  }
  mmioWrite(offset: number, width: MmioWidth, value: number): void {
    if (width === 4) this.words[offset >>> 2] = value;
  }
}

class TestFn extends PciFunction {
  readonly regs: RegFile;
  constructor(soc: Soc, name: string, extra: Partial<PciFunctionOptions> = {}) {
    const regs = new RegFile();
    super(soc, {
      name,
      vendor: 0x1234,
      device: 0x5678,
      classCode: 0x02_00_00,
      revision: 3,
      bars: [
        { size: 0x1000, handler: regs },
        null,
        { size: 0x4000, is64: true, prefetchable: true, handler: regs },
      ],
      msix: { vectors: 4, tableBar: 2, tableOffset: 0x2000, pbaBar: 2, pbaOffset: 0x3000 },
      ...extra,
    });
    this.regs = regs;
  }
  fire(vector: number): boolean {
    return this.signalMsix(vector);
  }
  intx(level: boolean): void {
    this.setIntx(level);
  }
}

function setup() {
  const soc = new Soc();
  const host = new PciHost(soc, {
    name: "pcie0",
    ecamBase: ECAM,
    windowBase: WIN,
    windowSize: 0x1000_0000,
    hotplugBase: HP,
    intxBase: INTX,
    hotplugIrq: HP_IRQ,
    msiBase: MSI,
  });
  const fn = new TestFn(soc, "nic0");
  const cfg = (dev: number, f = 0) => ({
    r8: (reg: number) => soc.fabric.read8(ECAM + (dev << 15) + (f << 12) + reg),
    r16: (reg: number) => soc.fabric.read16(ECAM + (dev << 15) + (f << 12) + reg),
    r32: (reg: number) => soc.fabric.read32(ECAM + (dev << 15) + (f << 12) + reg),
    w16: (reg: number, v: number) => soc.fabric.write16(ECAM + (dev << 15) + (f << 12) + reg, v),
    w32: (reg: number, v: number) => soc.fabric.write32(ECAM + (dev << 15) + (f << 12) + reg, v),
  });
  return { soc, host, fn, cfg };
}

/** Programs BAR0 at WIN and BAR2 (64-bit) at WIN + 0x10000, then enables memory and mastering. */
function assign(
  c: ReturnType<ReturnType<typeof setup>["cfg"]>,
  command = PCI.COMMAND_MEMORY | PCI.COMMAND_MASTER,
): void {
  c.w32(0x10, WIN);
  c.w32(0x18, (WIN + 0x1_0000) % 2 ** 32);
  c.w32(0x1c, Math.floor((WIN + 0x1_0000) / 2 ** 32));
  c.w16(PCI.COMMAND, command);
}

describe("PCI configuration space", () => {
  it("reads all-ones for an empty slot or a missing function", () => {
    const { cfg } = setup();
    expect(cfg(0).r16(0)).toBe(0xffff);
    expect(cfg(0).r32(0)).toBe(0xffff_ffff);
    expect(cfg(31).r8(0)).toBe(0xff);
  });

  it("shows the type-0 header and a capability list", () => {
    const { host, fn, cfg } = setup();
    host.insert(1, fn);
    const c = cfg(1);
    expect(c.r32(0)).toBe(0x5678_1234);
    expect(c.r32(0x08)).toBe(0x0200_0003);
    expect(c.r8(PCI.HEADER_TYPE)).toBe(0);
    expect(c.r8(PCI.INTERRUPT_PIN)).toBe(1);
    expect(c.r16(PCI.STATUS) & PCI.STATUS_CAP_LIST).toBe(PCI.STATUS_CAP_LIST);
    const cap = c.r8(PCI.CAPABILITY_LIST) & ~3;
    expect(cap).toBe(0x40);
    expect(c.r8(cap)).toBe(PCI.CAP_ID_MSIX);
    expect(c.r8(cap + 1)).toBe(0);
    expect(c.r16(cap + 2) & PCI.MSIX_FLAGS_QSIZE).toBe(3);
    expect(c.r32(cap + 4)).toBe(0x2000 | 2);
    expect(c.r32(cap + 8)).toBe(0x3000 | 2);
    expect(cfg(1, 1).r16(0)).toBe(0xffff);
  });

  it("keeps read-only fields, masks Command and clears Status bits by writing one", () => {
    const { host, fn, cfg } = setup();
    host.insert(0, fn);
    const c = cfg(0);
    c.w32(0, 0xdead_beef);
    expect(c.r32(0)).toBe(0x5678_1234);
    c.w16(PCI.COMMAND, 0xffff);
    expect(c.r16(PCI.COMMAND)).toBe(0x0546); // no I/O space, no reserved bits
    c.w16(PCI.STATUS, 0xffff);
    expect(c.r16(PCI.STATUS)).toBe(PCI.STATUS_CAP_LIST);
    c.w32(PCI.INTERRUPT_LINE, 0xffff_ff2a);
    expect(c.r8(PCI.INTERRUPT_LINE)).toBe(0x2a);
    expect(c.r8(PCI.INTERRUPT_PIN)).toBe(1);
  });

  it("sizes BARs by writing all-ones and reading back the mask", () => {
    const { host, fn, cfg } = setup();
    host.insert(0, fn);
    const c = cfg(0);
    const size32 = (reg: number) => {
      const saved = c.r32(reg);
      c.w32(reg, 0xffff_ffff);
      const v = c.r32(reg);
      c.w32(reg, saved);
      return v;
    };
    const bar0 = size32(0x10);
    expect(bar0).toBe(0xffff_f000);
    expect((~(bar0 & 0xffff_fff0) + 1) >>> 0).toBe(0x1000);
    const bar2lo = size32(0x18);
    const bar2hi = size32(0x1c);
    expect(bar2lo).toBe(0xffff_c00c); // 64-bit, prefetchable
    expect(bar2hi).toBe(0xffff_ffff);
    const mask = BigInt(bar2hi) * 2n ** 32n + BigInt((bar2lo & 0xffff_fff0) >>> 0);
    expect(((~mask & 0xffff_ffff_ffff_ffffn) + 1n).toString(16)).toBe("4000");
    expect(size32(0x14)).toBe(0); // unimplemented
    expect(size32(0x24)).toBe(0);
    expect(c.r32(0x10)).toBe(0);
  });
});

describe("PCI BAR decoding and DMA", () => {
  it("decodes BARs in the window only with memory space enabled", () => {
    const { soc, host, fn, cfg } = setup();
    host.insert(0, fn);
    const c = cfg(0);
    assign(c, 0);
    fn.regs.words[1] = 0x1111_2222;
    expect(soc.fabric.read32(WIN + 4)).toBe(0xffff_ffff); // master abort
    expect(fn.barPort(0).read32(4)).toBe(0xffff_ffff);
    c.w16(PCI.COMMAND, PCI.COMMAND_MEMORY);
    expect(soc.fabric.read32(WIN + 4)).toBe(0x1111_2222);
    expect(soc.fabric.read32(WIN + 0x1_0004)).toBe(0x1111_2222);
    soc.fabric.write32(WIN + 8, 77);
    expect(fn.regs.words[2]).toBe(77);
    expect(
      soc
        .memoryMap()
        .filter((e) => e.owner === "nic0")
        .map((e) => [e.name, e.base]),
    ).toEqual([
      ["nic0.bar0", WIN],
      ["nic0.bar2", WIN + 0x1_0000],
    ]);
    // Moving a BAR moves the decode.
    c.w32(0x10, WIN + 0x8000);
    expect(soc.fabric.read32(WIN + 0x8004)).toBe(0x1111_2222);
    expect(soc.fabric.read32(WIN + 4)).toBe(0xffff_ffff);
    expect(soc.trace().some((r) => r.kind === "fault" && r.fault === "pci-master-abort")).toBe(
      true,
    );
  });

  it("reports overlapping BARs and keeps the first", () => {
    const { soc, host, fn, cfg } = setup();
    const other = new TestFn(soc, "nic1");
    host.insert(0, fn);
    host.insert(1, other);
    assign(cfg(0));
    assign(cfg(1));
    fn.regs.words[0] = 1;
    expect(soc.fabric.read32(WIN)).toBe(1);
    expect(soc.trace().some((r) => r.kind === "fault" && r.fault === "pci-bar-overlap")).toBe(true);
  });

  it("lets the function master DMA only with bus mastering on", () => {
    const { soc, host, fn, cfg } = setup();
    host.insert(0, fn);
    expect(fn.dma.write32(RAM, 5)).toBe(false);
    expect(fn.dma.status).toBe(DMA_STATUS.MASTER_DISABLED);
    assign(cfg(0));
    expect(fn.dma.write32(RAM, 5)).toBe(true);
    expect(soc.memory.read32(RAM)).toBe(5);
  });

  it("sends its DMA through a DART stream when it names one", () => {
    const soc = new Soc();
    const dart = resetDart(soc, "t8110");
    const host = new PciHost(soc, {
      name: "pcie0",
      ecamBase: ECAM,
      windowBase: WIN,
      windowSize: 0x1000_0000,
      hotplugBase: HP,
      intxBase: INTX,
      hotplugIrq: HP_IRQ,
      msiBase: MSI,
    });
    const fn = new TestFn(soc, "nic0", { iommu: dart, streamId: 2 });
    host.insert(0, fn);
    soc.fabric.write16(ECAM + PCI.COMMAND, PCI.COMMAND_MASTER);
    expect(fn.dma.write32(RAM, 1)).toBe(false);
    expect(fn.dma.status).toBe(DMA_STATUS.IOMMU_BLOCKED);
    const t = buildTables(tables(soc, "dart2"));
    const pa = soc.ram.alloc(0x4000, 0x4000);
    t.map(0x4000, pa);
    attachTranslate(soc, dart, 2, t.top);
    expect(fn.dma.write32(0x4008, 9)).toBe(true);
    expect(soc.memory.read32(pa + 8)).toBe(9);
  });
});

describe("PCI interrupts", () => {
  it("asserts INTx with Status.INTERRUPT, and INTX_DISABLE releases the line", () => {
    const { soc, host, fn, cfg } = setup();
    host.insert(2, fn);
    const c = cfg(2);
    fn.intx(true);
    expect(soc.irq.isAsserted(INTX + 2)).toBe(true);
    expect(c.r16(PCI.STATUS) & PCI.STATUS_INTERRUPT).toBe(PCI.STATUS_INTERRUPT);
    c.w16(PCI.COMMAND, PCI.COMMAND_INTX_DISABLE);
    expect(soc.irq.isAsserted(INTX + 2)).toBe(false);
    expect(c.r16(PCI.STATUS) & PCI.STATUS_INTERRUPT).toBe(PCI.STATUS_INTERRUPT);
    c.w16(PCI.COMMAND, 0);
    fn.intx(false);
    expect(soc.irq.isAsserted(INTX + 2)).toBe(false);
    expect(c.r16(PCI.STATUS) & PCI.STATUS_INTERRUPT).toBe(0);
  });

  it("delivers MSI-X through the doorbell, holds masked vectors pending, and needs mastering", () => {
    const { soc, host, fn, cfg } = setup();
    host.insert(0, fn);
    const c = cfg(0);
    assign(c);
    const got: number[] = [];
    soc.irq.connect(MSI + 3, (l) => got.push(l));
    expect(fn.fire(1)).toBe(false); // MSI-X off: the caller would use INTx
    c.w16(0x42, PCI.MSIX_FLAGS_ENABLE);
    const entry = WIN + 0x1_0000 + 0x2000 + 16;
    expect(soc.fabric.read32(entry + 12)).toBe(1); // masked after reset
    soc.fabric.write32(entry, DOORBELL);
    soc.fabric.write32(entry + 4, 0);
    soc.fabric.write32(entry + 8, 3);
    expect(fn.fire(1)).toBe(true);
    soc.run();
    expect(got).toEqual([]);
    expect(soc.fabric.read32(WIN + 0x1_0000 + 0x3000)).toBe(0b10); // pending
    soc.fabric.write32(entry + 12, 0); // unmask: the pending message goes out
    soc.run();
    expect(got).toEqual([MSI + 3]);
    expect(soc.fabric.read32(WIN + 0x1_0000 + 0x3000)).toBe(0);
    // A function mask holds it again.
    c.w16(0x42, PCI.MSIX_FLAGS_ENABLE | PCI.MSIX_FLAGS_MASKALL);
    fn.fire(1);
    c.w16(0x42, PCI.MSIX_FLAGS_ENABLE);
    soc.run();
    expect(got).toEqual([MSI + 3, MSI + 3]);
    // Without bus mastering the message is dropped (and traced).
    c.w16(PCI.COMMAND, PCI.COMMAND_MEMORY);
    fn.fire(1);
    soc.run();
    expect(got).toHaveLength(2);
    expect(
      soc.trace().some((r) => r.kind === "fault" && r.fault === "msi-without-bus-master"),
    ).toBe(true);
    // A message to another address is a plain memory write.
    c.w16(PCI.COMMAND, PCI.COMMAND_MEMORY | PCI.COMMAND_MASTER);
    soc.fabric.write32(entry, RAM % 2 ** 32);
    soc.fabric.write32(entry + 4, Math.floor(RAM / 2 ** 32));
    fn.fire(1);
    expect(soc.memory.read32(RAM)).toBe(3);
  });
});

describe("PCI hot-plug", () => {
  it("surprise removal: all-ones everywhere, DMA fails, INTx low, presence event", () => {
    const { soc, host, fn, cfg } = setup();
    host.insert(0, fn);
    const c = cfg(0);
    assign(c);
    soc.fabric.write32(HP + PCI_HOTPLUG.SLOT_EVENTS, 1); // ack the insertion
    fn.intx(true);
    fn.regs.words[0] = 42;
    host.surpriseRemove(0);
    expect(c.r16(0)).toBe(0xffff);
    expect(c.r32(PCI.COMMAND)).toBe(0xffff_ffff);
    expect(soc.fabric.read32(WIN)).toBe(0xffff_ffff);
    expect(fn.barPort(0).read32(0)).toBe(0xffff_ffff);
    expect(fn.configRead(0, 2)).toBe(0xffff);
    expect(fn.dma.write32(RAM, 1)).toBe(false);
    expect(fn.dma.status).toBe(DMA_STATUS.DEVICE_GONE);
    expect(soc.irq.isAsserted(INTX)).toBe(false);
    expect(soc.fabric.read32(HP + PCI_HOTPLUG.SLOT_PRESENT)).toBe(0);
    expect(soc.fabric.read32(HP + PCI_HOTPLUG.SLOT_EVENTS)).toBe(1);
    expect(soc.irq.isAsserted(HP_IRQ)).toBe(true);
    soc.fabric.write32(HP + PCI_HOTPLUG.SLOT_EVENTS, 1);
    expect(soc.irq.isAsserted(HP_IRQ)).toBe(false);
    expect(fn.gone).toBe(true);
  });

  it("re-insertion resets the function", () => {
    const { soc, host, fn, cfg } = setup();
    host.insert(0, fn);
    assign(cfg(0));
    host.surpriseRemove(0);
    host.insert(0, fn);
    expect(fn.gone).toBe(false);
    expect(cfg(0).r16(PCI.COMMAND)).toBe(0);
    expect(cfg(0).r32(0x10)).toBe(0);
    expect(soc.fabric.read32(WIN)).toBe(0xffff_ffff);
    expect(fn.dma.write32(RAM, 1)).toBe(false); // alive again, but mastering is off after reset
    expect(fn.dma.status).toBe(DMA_STATUS.MASTER_DISABLED);
  });

  it("orderly removal keeps the card working until the slot is powered off", () => {
    const { soc, host, fn, cfg } = setup();
    host.insert(0, fn);
    assign(cfg(0));
    soc.fabric.write32(HP + PCI_HOTPLUG.SLOT_EVENTS, 1);
    host.requestRemoval(0);
    expect(soc.fabric.read32(HP + PCI_HOTPLUG.SLOT_ATTENTION)).toBe(1);
    expect(soc.irq.isAsserted(HP_IRQ)).toBe(true);
    fn.regs.words[0] = 5;
    expect(soc.fabric.read32(WIN)).toBe(5);
    expect(fn.dma.write32(RAM, 1)).toBe(true);
    soc.fabric.write32(HP + PCI_HOTPLUG.SLOT_POWER_OFF, 1);
    expect(fn.gone).toBe(true);
    expect(soc.fabric.read32(WIN)).toBe(0xffff_ffff);
    expect(soc.fabric.read32(HP + PCI_HOTPLUG.SLOT_ATTENTION)).toBe(0);
  });

  it("unplugs a function's slot by fault injection at a step", () => {
    const { soc, host, fn, cfg } = setup();
    host.insert(0, fn);
    const c = cfg(0);
    soc.faults.schedule({ step: soc.stepCount + 3 }, { kind: "unplug", target: "nic0" });
    expect(c.r16(0)).toBe(0x1234);
    expect(c.r16(0)).toBe(0x1234);
    expect(c.r16(0)).toBe(0xffff);
    expect(host.slot(0).functions).toEqual([]);
  });

  it("holds multi-function cards and refuses bad insertions", () => {
    const { soc, host, fn, cfg } = setup();
    const f1 = new TestFn(soc, "nic0.1", { function: 1 });
    host.insert(3, [fn, f1]);
    expect(cfg(3).r8(PCI.HEADER_TYPE)).toBe(0x80);
    expect(cfg(3, 1).r16(0)).toBe(0x1234);
    expectCode(() => host.insert(3, new TestFn(soc, "x")), "EBUSY");
    expectCode(() => host.insert(2, fn), "EBUSY");
    expectCode(() => host.insert(9, new TestFn(soc, "y")), "EINVAL");
    expectCode(() => host.insert(1, [new TestFn(soc, "a"), new TestFn(soc, "b")]), "EINVAL");
    expectCode(
      () => new TestFn(soc, "bad", { bars: [{ size: 0x1800, handler: new RegFile() }] }),
      "EINVAL",
    );
  });
});
