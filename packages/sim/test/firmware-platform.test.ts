// describeSoc, platform side: the reference SoC's DART, ASC mailbox and SMC as device-tree
// nodes on a PlatformBus, bound by drivers written against @devref/bus as for hardware.
import { definePlatformDriver, PlatformBus } from "@devref/bus";
import type { Devres } from "@devref/device-core";
import {
  auditDevices,
  deviceTree,
  type IrqSpec,
  type LogRecord,
  type MmioRegion,
} from "@devref/device-core";
import { DevrefError } from "@devref/raw-device";
import { describe, expect, it } from "vitest";
import {
  createReferenceSoc,
  DART_T8110,
  Dart,
  describeDart,
  describeSoc,
  REFERENCE_MAP as M,
  Soc,
} from "../src/index.js";

function reference(seed = 1) {
  const logs: LogRecord[] = [];
  const ref = createReferenceSoc({ seed, name: "ref", logSink: (r) => logs.push(r) });
  const platform = new PlatformBus({ machine: ref.soc.machine });
  return { ...ref, platform, logs };
}

const level = (hwirq: number): IrqSpec => ({ domain: "aic", hwirq, trigger: "level" });

/** A DART driver in miniature: maps the registers, reads the parameters, logs faults. */
function dartDriver(faults: string[], params: number[]) {
  return definePlatformDriver<{ regs: Devres<MmioRegion> }, string>({
    name: "apple-dart",
    ofMatchTable: [
      { compatible: "apple,t8103-dart", data: "t8020" },
      { compatible: "apple,t6000-dart", data: "t6000" },
      { compatible: "apple,t8110-dart", data: "t8110" },
    ],
    probe: (dev, variant) => {
      if (variant !== "t8110") throw new DevrefError("ENODEV", "this test drives t8110 only");
      const regs = dev.ioremapResource(0);
      const r = regs.access(dev);
      params.push(r.read32(0x00), r.read32(0x04), r.read32(0x08), r.read32(0x0c));
      dev.requestIrq(0, (d) => {
        const m = regs.access(d);
        const error = m.read32(DART_T8110.ERROR);
        if ((error & 0x8000_0000) === 0) return "none";
        const addr = m.read32(DART_T8110.ERROR_ADDR_LO);
        m.write32(DART_T8110.ERROR, error); // W1C, as apple_dart_t8110_irq does
        faults.push(`${error.toString(16)} @${addr.toString(16)}`);
        return "handled";
      });
      return { regs };
    },
  });
}

describe("describeSoc: platform devices", () => {
  it("gives each platform model a DT node: compatible, reg backed by the model, interrupts on aic", () => {
    const { soc, dart, smc, platform } = reference();
    using fw = describeSoc(soc, { platform });
    expect(fw.nodes.map((n) => [n.name, n.spec.compatible])).toEqual([
      ["dart0", ["apple,t8110-dart"]],
      ["pcie0", ["pci-host-ecam-generic"]],
      ["smc-mbox", ["apple,t8103-asc-mailbox", "apple,asc-mailbox-v4"]],
      ["smc", ["apple,t8103-smc", "apple,smc"]],
    ]);
    const node = (name: string) => fw.nodes.find((n) => n.name === name)!.spec;
    expect(node("dart0").mem).toEqual([
      { name: "dart", start: M.DART_BASE, size: 0x4000, backend: dart.port },
    ]);
    expect(node("dart0").interrupts).toEqual([level(M.DART_IRQ)]);
    expect(node("smc-mbox").mem).toEqual([
      { name: "mbox", start: M.SMC_MBOX_BASE, size: 0x4000, backend: smc!.asc.mboxPort },
    ]);
    expect(node("smc-mbox").interrupts).toEqual([48, 49, 50, 51].map(level));
    expect(node("smc").mem!.map((r) => [r.name, r.start, r.size])).toEqual([
      ["smc", M.SMC_BASE, 0x4000],
      ["sram", M.SMC_SRAM_BASE, M.SMC_SRAM_SIZE],
    ]);
    expect(node("smc").iommus).toEqual([]); // the SMC's buffers live in SRAM, no DART
    expect(fw.nodes.find((n) => n.name === "smc")!.mboxes).toEqual(["smc-mbox"]);
    expect(deviceTree(soc.machine)).toBe(
      [
        "dart0 [platform, 2 refs]",
        "pcie0 [platform, 2 refs]",
        "smc-mbox [platform, 2 refs]",
        "smc [platform, 2 refs]",
      ].join("\n"),
    );
    const d = fw.device("dart0", "test")!;
    expect(d.compatible).toEqual(["apple,t8110-dart"]);
    expect(d.irq(0)).toEqual(level(10));
    d.put();
    expect(fw.device("nope")).toBeNull();
    // Each DART variant gets its binding's compatible.
    const other = new Soc();
    for (const [variant, compat] of [
      ["t8020", "apple,t8103-dart"],
      ["t6000", "apple,t6000-dart"],
    ] as const) {
      const m = new Dart(other, {
        name: `d-${variant}`,
        variant,
        base: variant === "t8020" ? 0x1_0000_0000 : 0x1_0001_0000,
        irq: variant === "t8020" ? 1 : 2,
      });
      expect(describeDart(m).compatible).toEqual([compat]);
    }
  });

  it("a DART driver maps the model's registers, reads real values, and handles the model's faults", async () => {
    const { soc, dart: model, platform, logs } = reference();
    const faults: string[] = [];
    const params: number[] = [];
    const drv = dartDriver(faults, params);
    platform.registerDriver(drv);
    using fw = describeSoc(soc, { platform });
    const dart = fw.device("dart0", "test")!;
    expect(dart.driverName).toBe("apple-dart");
    // PARAMS1: 16 KiB pages; PARAMS2: bypass; PARAMS3: PA 42 / VA 36 bits; PARAMS4: 16 streams.
    expect(params[0]).toBe(14 << 24);
    expect(params[1]! & 1).toBe(1);
    expect((params[2]! >>> 24) & 0x3f).toBe(42);
    expect((params[2]! >>> 16) & 0x3f).toBe(36);
    expect(params[3]! & 0x1ff).toBe(16);
    expect(soc.aic.interrupts()).toEqual(["10: 0 dart0"]);
    // An injected fault: latched at once, delivered as an interrupt when the SoC runs.
    soc.faults.inject({ kind: "iommu-fault", target: "dart0", sid: 3, dva: 0x4000 });
    expect(faults).toEqual([]);
    expect(await soc.settle()).toBe(true);
    expect(faults).toEqual(["80300008 @4000"]); // FLAG | stream 3 | NO_PTE
    expect(soc.irq.isAsserted(M.DART_IRQ)).toBe(false);
    // A real one: a master on stream 2 with translation on and an empty table.
    const table = soc.ram.alloc(0x4000, 0x4000);
    const w = (off: number, v: number) => soc.fabric.write32(M.DART_BASE + off, v);
    w(DART_T8110.ENABLE_STREAMS, 1 << 2);
    w(DART_T8110.TTBR + 8, DART_T8110.TTBR_VALID | ((table / 0x4000) << 2));
    w(DART_T8110.TCR + 8, DART_T8110.TCR_TRANSLATE_ENABLE);
    const dma = soc.dmaMaster("engine");
    dma.attachIommu(model, 2);
    expect(dma.write32(0x8000, 1)).toBe(false);
    expect(await soc.settle()).toBe(true);
    expect(faults).toHaveLength(2);
    expect(faults[1]).toMatch(/^802000[0-9a-f]{2} @8000$/);
    expect(soc.aic.interrupts()).toEqual(["10: 2 dart0"]);
    dart.put();
    fw.remove();
    expect(soc.irq.isConnected(M.DART_IRQ)).toBe(false);
    expect(auditDevices(soc.machine)).toEqual([]);
    expect(logs.filter((r) => r.level === "err" || r.level === "warn")).toEqual([]);
  });

  it("an ASC mailbox driver talks to the RTKit firmware through the described node", async () => {
    const { soc, platform } = reference();
    const inbox: string[] = [];
    const mbox = definePlatformDriver({
      name: "apple-mailbox",
      ofMatchTable: [{ compatible: "apple,asc-mailbox-v4" }],
      probe: (dev) => {
        const regs = dev.ioremapResource(0);
        // recv-not-empty (index 3) only: send-empty stays off until a sender waits for room.
        dev.requestIrq(3, (d) => {
          const m = regs.access(d);
          while ((m.read32(0x114) & (1 << 17)) === 0) {
            const msg0 = m.read64(0x830);
            const ep = m.read32(0x838) & 0xff;
            m.read32(0x83c); // pops
            inbox.push(`${ep}:${msg0.hi.toString(16)}_${msg0.lo.toString(16).padStart(8, "0")}`);
          }
          return "handled";
        });
        const r = regs.access(dev);
        // SET_IOP_PWR_STATE(INIT) on endpoint 0, as apple_rtkit_wake sends it.
        r.write64(0x800, 0x0000_0220, 0x0060_0000);
        r.write64(0x808, 0, 0);
        return { regs };
      },
    });
    platform.registerDriver(mbox);
    using fw = describeSoc(soc, { platform });
    expect(await soc.settle()).toBe(true);
    expect(inbox).toEqual(["0:100000_000c000b"]); // HELLO, versions 11..12
    // The SMC's SRAM resource reaches the SRAM.
    const smcNode = fw.nodes.find((n) => n.name === "smc")!.spec;
    const sram = smcNode.mem![1]!.backend!;
    sram.write32(0x10, 0xfeed_f00d);
    expect(soc.memory.read32(M.SMC_SRAM_BASE + 0x10)).toBe(0xfeed_f00d);
    fw.remove();
    expect(auditDevices(soc.machine)).toEqual([]);
  });

  it("with mailbox: inline, the SMC node carries its mailbox, for a client that drives it itself", async () => {
    const { soc, platform } = reference();
    const inbox: number[] = [];
    const smcDriver = definePlatformDriver({
      name: "macsmc",
      ofMatchTable: [{ compatible: "apple,smc" }],
      probe: (dev) => {
        expect([0, 1, 2].map((i) => dev.resource(i).name)).toEqual(["smc", "sram", "mbox"]);
        const mbox = dev.ioremapResource(2);
        dev.requestIrq(3, (d) => {
          const m = mbox.access(d);
          while ((m.read32(0x114) & (1 << 17)) === 0) {
            inbox.push(m.read32(0x834)); // msg0 high word
            m.read32(0x838);
            m.read32(0x83c);
          }
          return "handled";
        });
        const r = mbox.access(dev);
        r.write64(0x800, 0x0000_0220, 0x0060_0000);
        r.write64(0x808, 0, 0);
        return { mbox };
      },
    });
    platform.registerDriver(smcDriver);
    using fw = describeSoc(soc, { platform, mailbox: "inline" });
    expect(fw.nodes.map((n) => n.name)).toEqual(["dart0", "pcie0", "smc"]);
    expect(fw.nodes[2]!.spec.interrupts).toEqual([48, 49, 50, 51].map(level));
    expect(fw.nodes[2]!.mboxes).toEqual([]);
    expect(await soc.settle()).toBe(true);
    expect(inbox).toEqual([0x10_0000]); // HELLO
    // SAFETY: a wrong-typed option, to show the run-time check.
    expect(() => describeSoc(soc, { platform, mailbox: "x" as "node" })).toThrowError(
      /options\.mailbox/,
    );
  });

  it("refuses buses of another machine and taken names, leaving nothing registered", () => {
    const { soc, platform } = reference();
    const foreign = new PlatformBus({ machine: new Soc().machine });
    expect(() => describeSoc(soc, { platform: foreign })).toThrowError(/soc\.machine/);
    const squatter = platform.register({ name: "smc" });
    expect(() => describeSoc(soc, { platform })).toThrowError(/already has a device named 'smc'/);
    expect(platform.deviceNames()).toEqual(["smc"]);
    platform.unregister(squatter);
    // SAFETY: wrong-typed arguments, to show the run-time checks.
    expect(() => describeSoc({} as never, { platform })).toThrowError(DevrefError);
    expect(() => describeSoc(soc, {} as never)).toThrowError(DevrefError);
    const fw = describeSoc(soc, { platform });
    fw.remove();
    fw.remove();
    expect(fw.isRemoved).toBe(true);
    expect(auditDevices(soc.machine)).toEqual([]);
  });
});
