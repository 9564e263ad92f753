import { describe, expect, it } from "vitest";
import { type AscCoprocessor, AscMailbox, type AscMailboxOptions, Soc } from "../src/index.js";
import {
  A2I_CONTROL,
  ApMailbox,
  EMPTY,
  FULL,
  I2A_CONTROL,
  I2A_RECV0,
  I2A_RECV1,
} from "./asc/driver.js";
import { expectCode } from "./helpers.js";

const BASE = 0x2_3e40_0000;
const MBOX = BASE + 0x8000;
const IRQ = 40;

/** A coprocessor stub: records calls; pops its inbox `delayNs` after each message when asked. */
class Stub implements AscCoprocessor {
  starts = 0;
  inboxCalls = 0;
  spaceCalls = 0;
  goneCalls = 0;
  popped: [number, number, number][] = [];
  constructor(
    readonly asc: AscMailbox,
    readonly drainAfterNs: number | null = null,
  ) {
    asc.attach(this);
  }
  cpuStart(): void {
    this.starts++;
  }
  inbox(): void {
    this.inboxCalls++;
    if (this.drainAfterNs !== null) {
      this.asc.soc.events.after(this.drainAfterNs, () => {
        if (this.asc.popInbox())
          this.popped.push([this.asc.a2i.hi, this.asc.a2i.lo, this.asc.a2i.msg1]);
      });
    }
  }
  outboxSpace(): void {
    this.spaceCalls++;
  }
  gone(): void {
    this.goneCalls++;
  }
  prepareFault(): null {
    return null;
  }
}

function setup(
  options: { fifoDepth?: number; drainAfterNs?: number; variant?: "asc-v4" | "t8015" } = {},
) {
  const soc = new Soc({ seed: 3 });
  const asc = new AscMailbox(soc, {
    name: "mbx",
    base: BASE,
    irq: IRQ,
    allInterrupts: true,
    ...(options.fifoDepth === undefined ? {} : { fifoDepth: options.fifoDepth }),
    ...(options.variant === undefined ? {} : { variant: options.variant }),
  });
  const stub = new Stub(asc, options.drainAfterNs ?? null);
  return { soc, asc, stub, ap: new ApMailbox(soc, BASE) };
}

describe("ASC mailbox registers", () => {
  it("maps the CPU window at base and the mailbox at base + 0x8000, both empty at rest", () => {
    const { soc, ap } = setup();
    expect(soc.memoryMap().filter((r) => r.owner === "mbx")).toEqual([
      { name: "mbx", base: BASE, size: 0x4000, kind: "mmio", owner: "mbx" },
      { name: "mbx.mbox", base: MBOX, size: 0x4000, kind: "mmio", owner: "mbx" },
    ]);
    expect(ap.a2iControl()).toBe(EMPTY);
    expect(ap.i2aControl()).toBe(EMPTY);
    // Device-tree order: send-empty, send-not-empty, recv-empty, recv-not-empty; all level.
    expect([0, 1, 2, 3].map((i) => soc.irq.isAsserted(IRQ + i))).toEqual([
      true,
      false,
      true,
      false,
    ]);
    // By default only the two lines Linux requests are driven.
    const lean = new Soc();
    const asc = new AscMailbox(lean, { name: "m", base: BASE, irq: IRQ });
    asc.pushOutbox(0, 1, 0x20);
    expect([0, 1, 2, 3].map((i) => lean.irq.isAsserted(IRQ + i))).toEqual([
      true,
      false,
      false,
      true,
    ]);
  });

  it("pushes on the SEND1 high-word write only, keeps order, and traces each message", () => {
    const { soc, asc, stub, ap } = setup();
    soc.runFor(500);
    soc.fabric.write32(MBOX + 0x800, 0x89ab_cdef);
    soc.fabric.write32(MBOX + 0x804, 0x0123_4567);
    soc.fabric.write32(MBOX + 0x808, 0x20);
    expect(asc.a2i.count).toBe(0); // the low word alone does not push
    soc.fabric.write32(MBOX + 0x80c, 0);
    expect(asc.a2i.count).toBe(1);
    expect(stub.inboxCalls).toBe(1);
    expect(ap.send(0x21, 0xffff_ffff_ffff_ffffn)).toBe(true);
    expect(ap.a2iControl()).toBe(0); // neither EMPTY nor FULL
    expect(soc.irq.isAsserted(IRQ)).toBe(false);
    expect(soc.irq.isAsserted(IRQ + 1)).toBe(true);
    expect(asc.popInbox()).toBe(true);
    expect([asc.a2i.hi, asc.a2i.lo, asc.a2i.msg1]).toEqual([0x0123_4567, 0x89ab_cdef, 0x20]);
    expect(asc.popInbox()).toBe(true);
    expect([asc.a2i.hi, asc.a2i.lo, asc.a2i.msg1]).toEqual([0xffff_ffff, 0xffff_ffff, 0x21]);
    expect(asc.popInbox()).toBe(false);
    expect(soc.irq.isAsserted(IRQ)).toBe(true);
    const mbox = soc.trace().filter((r) => r.kind === "mbox");
    expect(mbox).toMatchObject([
      {
        direction: "a2i",
        msg0Hi: 0x0123_4567,
        msg0Lo: 0x89ab_cdef,
        msg1: 0x20,
        timeNs: 500,
        source: "mbx",
      },
      { direction: "a2i", msg0Hi: 0xffff_ffff, msg0Lo: 0xffff_ffff, msg1: 0x21 },
    ]);
  });

  it("sets FULL at the depth and loses (and reports) a message pushed anyway", () => {
    const { soc, asc, ap } = setup({ fifoDepth: 4 });
    for (let i = 0; i < 4; i++) expect(ap.send(0x20, BigInt(i))).toBe(true);
    expect(ap.a2iControl()).toBe(FULL);
    expect(ap.send(0x20, 99n)).toBe(false); // the driver checks FULL first
    ap.write64(0x800, 99n);
    ap.write64(0x808, 0x20n); // a driver that does not
    expect(asc.a2i.count).toBe(4);
    expect(soc.trace().some((r) => r.kind === "fault" && r.fault === "mbox-a2i-overflow")).toBe(
      true,
    );
    const got: number[] = [];
    while (asc.popInbox()) got.push(asc.a2i.lo);
    expect(got).toEqual([0, 1, 2, 3]);
  });

  it("raises recv-not-empty for I2A, delivers it as an event, peeks on RECV0/RECV1-low and pops on RECV1-high", () => {
    const { soc, asc, stub, ap } = setup();
    ap.useIrq(IRQ);
    expect(asc.pushOutbox(0xdead_beef, 0x1234_5678, 0x02)).toBe(true);
    expect(asc.pushOutbox(0, 7, 0x20)).toBe(true);
    expect(ap.irqs).toBe(0); // never from inside the model
    expect(soc.irq.isAsserted(IRQ + 3)).toBe(true);
    expect(soc.fabric.read32(MBOX + I2A_RECV0)).toBe(0x1234_5678);
    expect(soc.fabric.read32(MBOX + I2A_RECV0 + 4)).toBe(0xdead_beef);
    expect(soc.fabric.read32(MBOX + I2A_RECV1)).toBe(0x02);
    expect(soc.fabric.read32(MBOX + I2A_RECV1)).toBe(0x02); // still there
    // RECV1 high word: OUTCNT 56:52 (A2I holds 0), INCNT 51:48 (2), OUTPTR 47:44, INPTR 43:40.
    expect(soc.fabric.read32(MBOX + I2A_RECV1 + 4)).toBe(2 << 16);
    expect(stub.spaceCalls).toBe(1);
    soc.run();
    expect(ap.irqs).toBe(1);
    expect(ap.inbox).toEqual([{ ep: 0x20, msg0: 7n }]);
    expect(soc.irq.isAsserted(IRQ + 3)).toBe(false);
    expect(ap.i2aControl()).toBe(EMPTY);
    // A pop of an empty FIFO reads the bookkeeping (no counts; INPTR 2 after two pops) and is reported.
    expect(soc.fabric.read32(MBOX + I2A_RECV1 + 4)).toBe(2 << 8);
    expect(
      soc
        .trace()
        .filter((r) => r.kind === "fault")
        .map((r) => (r.kind === "fault" ? r.fault : "")),
    ).toEqual(["mbox-i2a-underflow"]);
  });

  it("reports both counts and the pointers in RECV1's bookkeeping bits", () => {
    const { asc, ap, soc } = setup({ fifoDepth: 8 });
    ap.send(0x20, 1n);
    ap.send(0x20, 2n);
    ap.send(0x20, 3n);
    asc.popInbox(); // A2I: head 1, tail 3, count 2
    for (let i = 0; i < 5; i++) asc.pushOutbox(0, i, 0x20);
    ap.recv();
    ap.recv(); // I2A: head 2, count 3
    const hi = soc.fabric.read32(MBOX + I2A_RECV1 + 4);
    expect({
      outcnt: (hi >>> 20) & 0x1f,
      incnt: (hi >>> 16) & 0xf,
      outptr: (hi >>> 12) & 0xf,
      inptr: (hi >>> 8) & 0xf,
    }).toEqual({ outcnt: 2, incnt: 3, outptr: 3, inptr: 2 });
  });

  it("keeps send-empty asserted while A2I is empty: an unmasked handler storms, so the AP masks it", () => {
    const soc = new Soc({ irqStormLimit: 20 });
    new AscMailbox(soc, { name: "mbx", base: BASE, irq: IRQ });
    let n = 0;
    soc.irq.connect(IRQ, () => n++);
    soc.run();
    expect(n).toBe(20);
    expect(soc.irq.isMasked(IRQ)).toBe(true);
  });

  it("wakes a sender waiting on send-empty once the coprocessor drains A2I", () => {
    const { soc, stub, ap } = setup({ fifoDepth: 2, drainAfterNs: 1000 });
    soc.irq.mask(IRQ);
    let woke = -1;
    soc.irq.connect(IRQ, () => {
      woke = soc.nowNs;
      soc.irq.mask(IRQ); // disable_irq_nosync, as the kernel's handler does
    });
    ap.send(0x20, 1n);
    ap.send(0x20, 2n);
    expect(ap.send(0x20, 3n)).toBe(false);
    soc.irq.unmask(IRQ); // the line is low: nothing yet
    soc.run();
    expect(woke).toBe(1000);
    expect(stub.popped.map((p) => p[1])).toEqual([1, 2]);
    expect(ap.send(0x20, 3n)).toBe(true);
  });

  it("moves the control registers on t8015 and leaves the message registers", () => {
    const { soc, ap } = setup({ variant: "t8015" });
    expect(soc.fabric.read32(MBOX + 0x108)).toBe(EMPTY);
    expect(soc.fabric.read32(MBOX + 0x10c)).toBe(EMPTY);
    expect(soc.fabric.read32(MBOX + A2I_CONTROL)).toBe(0);
    ap.write64(0x800, 5n);
    ap.write64(0x808, 0x20n);
    expect(soc.fabric.read32(MBOX + 0x108)).toBe(0);
    expect(soc.fabric.read32(MBOX + I2A_CONTROL)).toBe(0);
  });

  it("boots the coprocessor on a 0→1 edge of CPU_CONTROL.RUN and mirrors RUN in CPU_STATUS", () => {
    const { soc, asc, stub } = setup();
    expect(asc.cpuRunning).toBe(false);
    soc.fabric.write32(BASE + 0x44, 0x10);
    soc.fabric.write32(BASE + 0x44, 0x10); // no edge
    expect(stub.starts).toBe(1);
    expect(soc.fabric.read32(BASE + 0x48)).toBe(0x10);
    soc.fabric.write32(BASE + 0x44, 0);
    expect(soc.fabric.read32(BASE + 0x48)).toBe(0);
    soc.fabric.write32(BASE + 0x44, 0x10);
    expect(stub.starts).toBe(2);
    expect(soc.fabric.read8(BASE + 0x44)).toBe(0x10);
  });

  it("keeps ENABLE as written, answers narrow reads and ignores (and reports) narrow writes", () => {
    const { soc, asc } = setup();
    soc.fabric.write32(MBOX + A2I_CONTROL, 0xffff_ffff);
    expect(soc.fabric.read32(MBOX + A2I_CONTROL)).toBe(EMPTY | 2);
    expect(soc.fabric.read8(MBOX + A2I_CONTROL + 2)).toBe(2); // bit 17 → bit 1 of byte 2
    soc.fabric.write8(MBOX + 0x80c, 1);
    expect(asc.a2i.count).toBe(0);
    expect(soc.trace().some((r) => r.kind === "fault" && r.fault === "mbox-narrow-write")).toBe(
      true,
    );
  });

  it("lets the AP reach the coprocessor's registers, as hardware does (and reports stealing)", () => {
    const { soc, asc, ap } = setup();
    ap.send(0x20, 0x42n);
    expect(soc.fabric.read32(MBOX + 0x810)).toBe(0x42);
    expect(soc.fabric.read32(MBOX + 0x818)).toBe(0x20);
    soc.fabric.read32(MBOX + 0x81c);
    expect(asc.a2i.count).toBe(0);
    expect(soc.trace().some((r) => r.kind === "fault" && r.fault === "mbox-a2i-read-by-ap")).toBe(
      true,
    );
    ap.write64(0x820, 0x77n);
    ap.write64(0x828, 0x3n);
    expect(ap.recv()).toEqual({ ep: 3, msg0: 0x77n });
  });

  it("goes dark when unplugged (also through soc.faults)", () => {
    const { soc, asc, stub, ap } = setup();
    asc.pushOutbox(0, 1, 0x20);
    soc.faults.schedule({ step: 2 }, { kind: "unplug", target: "mbx" });
    soc.fabric.read32(MBOX + I2A_CONTROL); // step 1
    expect(soc.fabric.read32(MBOX + I2A_CONTROL)).toBe(0xffff_ffff); // step 2
    expect(stub.goneCalls).toBe(1);
    expect([0, 1, 2, 3].map((i) => soc.irq.isAsserted(IRQ + i))).toEqual([
      false,
      false,
      false,
      false,
    ]);
    ap.write64(0x800, 1n);
    ap.write64(0x808, 0x20n);
    expect(asc.a2i.count).toBe(0);
    expect(asc.pushOutbox(0, 2, 0x20)).toBe(false);
  });

  it("validates options before touching the SoC", () => {
    const soc = new Soc();
    expectCode(() => new AscMailbox(soc, { name: "a", base: BASE + 0x100, irq: 1 }), "EINVAL");
    expectCode(() => new AscMailbox(soc, { name: "a", base: BASE, irq: 253 }), "EINVAL");
    expectCode(
      () => new AscMailbox(soc, { name: "a", base: BASE, irq: 1, fifoDepth: 0 }),
      "EINVAL",
    );
    expectCode(
      () => new AscMailbox(soc, { name: "a", base: BASE, irq: 1, fifoDepth: 257 }),
      "EINVAL",
    );
    // @ts-expect-error an unknown variant
    const m3: AscMailboxOptions = { name: "a", base: BASE, irq: 1, variant: "m3" };
    expectCode(() => new AscMailbox(soc, m3), "EINVAL");
    // @ts-expect-error running is a boolean
    expectCode(() => new AscMailbox(soc, { name: "a", base: BASE, irq: 1, running: 1 }), "EINVAL");
    const allOnes = { name: "a", base: BASE, irq: 1, allInterrupts: "yes" as unknown as boolean };
    expectCode(() => new AscMailbox(soc, allOnes), "EINVAL");
    expect(soc.devices()).toEqual([]);
    expect(soc.memoryMap().length).toBe(1);
    const asc = new AscMailbox(soc, { name: "a", base: BASE, irq: 1 });
    expectCode(() => new AscMailbox(soc, { name: "a", base: BASE + 0x10_0000, irq: 1 }), "EEXIST");
    expectCode(() => new AscMailbox(soc, { name: "b", base: BASE, irq: 1 }), "EBUSY");
    expect(soc.devices().map((d) => d.name)).toEqual(["a"]);
    new Stub(asc);
    expectCode(() => new Stub(asc), "EBUSY");
  });
});
