import { describe, expect, it } from "vitest";
import { DMA_STATUS, EventQueue, Prng, Soc } from "../src/index.js";
import { Fnv64 } from "../src/internal/fnv.js";
import { expectCode, ToyDevice } from "./helpers.js";

const RAM = 0x8_0000_0000;
const TOY = 0x2_0000_0000;

describe("EventQueue", () => {
  it("runs events in time order and FIFO among equal times", () => {
    const q = new EventQueue();
    const seen: string[] = [];
    q.after(10, () => seen.push("b@10"));
    q.after(5, () => seen.push("a@5"));
    q.after(10, () => seen.push("c@10"));
    q.queue(() => seen.push("now"));
    q.at(10, () => seen.push("d@10"));
    while (q.runNext());
    expect(seen).toEqual(["now", "a@5", "b@10", "c@10", "d@10"]);
    expect(q.nowNs).toBe(10);
  });

  it("speaks milliseconds on the scheduler seam", () => {
    const q = new EventQueue();
    let at = -1;
    q.setTimeout(() => {
      at = q.now();
    }, 2.5);
    q.runNext();
    expect(at).toBe(2.5);
    expect(q.nowNs).toBe(2_500_000);
  });

  it("cancels timers, ignores foreign handles and never runs a job twice", () => {
    const q = new EventQueue();
    let n = 0;
    const h = q.setTimeout(() => n++, 1);
    q.setTimeout(() => n++, 1);
    q.clearTimeout(h);
    q.clearTimeout({});
    q.clearTimeout(h);
    expect(q.pending).toBe(1);
    while (q.runNext());
    expect(n).toBe(1);
    expect(h.pending).toBe(false);
  });

  it("cancels only its own handles, and handles are made by queues only", () => {
    const q = new EventQueue();
    const other = new EventQueue();
    const h = other.after(5, () => {});
    q.after(5, () => {});
    expect(q.cancel(h)).toBe(false);
    expect(q.pending).toBe(1);
    expect(other.pending).toBe(1);
    expect(other.cancel(h)).toBe(true);
    // SAFETY: deliberately calling the constructor the way a forger would.
    const Ctor = h.constructor as new (...args: unknown[]) => unknown;
    expectCode(() => new Ctor(Symbol("x"), q, 0, 0, () => {}, true), "EPERM");
  });

  it("refuses times in the past and non-functions", () => {
    const q = new EventQueue();
    q.after(100, () => {});
    q.runNext();
    expectCode(() => q.at(50, () => {}), "EINVAL");
    expectCode(() => q.after(-1, () => {}), "EINVAL");
    // @ts-expect-error a job must be a function
    expectCode(() => q.queue(42), "EINVAL");
  });

  it("clamps negative or NaN setTimeout delays to zero like the DOM", () => {
    const q = new EventQueue();
    q.after(3, () => {});
    q.runNext();
    const h = q.setTimeout(() => {}, -5);
    const g = q.setTimeout(() => {}, Number.NaN);
    expect(h.timeNs).toBe(3);
    expect(g.timeNs).toBe(3);
  });
});

describe("Prng and FNV", () => {
  it("gives the same sequence for the same seed and a different one otherwise", () => {
    const a = new Prng(42);
    const b = new Prng(42);
    const c = new Prng(43);
    const sa = Array.from({ length: 8 }, () => a.nextU32());
    const sb = Array.from({ length: 8 }, () => b.nextU32());
    const sc = Array.from({ length: 8 }, () => c.nextU32());
    expect(sa).toEqual(sb);
    expect(sa).not.toEqual(sc);
    for (let i = 0; i < 100; i++) {
      const v = a.between(3, 9);
      expect(v >= 3 && v <= 9).toBe(true);
    }
    expectCode(() => a.below(0), "EINVAL");
  });

  it("matches published FNV-1a 64 vectors", () => {
    const h = new Fnv64();
    expect(h.hex()).toBe("cbf29ce484222325");
    h.byte(0x61); // "a"
    expect(h.hex()).toBe("af63dc4c8601ec8c");
    const f = new Fnv64();
    for (const c of "foobar") f.byte(c.charCodeAt(0));
    expect(f.hex()).toBe("85944171f73967e8");
  });
});

describe("Soc core", () => {
  it("lists RAM and mapped devices in the memory map", () => {
    const soc = new Soc();
    new ToyDevice(soc, "toy0", TOY, 3);
    soc.addMemory("sram", 0x2_3fe0_0000, 0x10_0000);
    expect(soc.memoryMap()).toEqual([
      { name: "toy0", base: TOY, size: 0x400, kind: "mmio", owner: "toy0" },
      { name: "sram", base: 0x2_3fe0_0000, size: 0x10_0000, kind: "memory", owner: "soc" },
      { name: "ram", base: RAM, size: 256 << 20, kind: "ram", owner: "soc" },
    ]);
  });

  it("routes absolute addresses, counts each MMIO access as a step, and traces it", () => {
    const soc = new Soc();
    const toy = new ToyDevice(soc, "toy0", TOY, 3);
    soc.fabric.write32(TOY + 8, 0x1234_5678);
    expect(soc.fabric.read32(TOY + 8)).toBe(0x1234_5678);
    expect(soc.fabric.read16(TOY + 10)).toBe(0x1234);
    expect(soc.fabric.read8(TOY + 8)).toBe(0x78);
    expect(toy.port.read32(8)).toBe(0x1234_5678);
    expect(soc.stepCount).toBe(5);
    // RAM through the fabric is plain memory: no step.
    soc.fabric.write32(RAM + 16, 7);
    expect(soc.memory.read32(RAM + 16)).toBe(7);
    expect(soc.stepCount).toBe(5);
    const mmio = soc.trace().filter((r) => r.kind === "mmio");
    expect(mmio.map((r) => [r.step, r.write, r.offset, r.width])).toEqual([
      [1, true, 8, 4],
      [2, false, 8, 4],
      [3, false, 10, 2],
      [4, false, 8, 1],
      [5, false, 8, 4],
    ]);
  });

  it("fails loudly on unmapped addresses, bad offsets, bad values and overlaps", () => {
    const soc = new Soc();
    const toy = new ToyDevice(soc, "toy0", TOY, 3);
    expectCode(() => soc.fabric.read32(0x1000), "EFAULT");
    expectCode(() => soc.fabric.read32(TOY + 0x1fe), "EINVAL"); // misaligned
    expectCode(() => soc.fabric.read32(TOY + 0x3fe), "EFAULT"); // runs past the region
    expectCode(() => soc.fabric.read32(-4), "EINVAL");
    expectCode(() => toy.port.read32(0x400), "EINVAL");
    expectCode(() => toy.port.read32(1.5), "EINVAL");
    // @ts-expect-error offsets are numbers
    expectCode(() => toy.port.read32("8"), "EINVAL");
    expectCode(() => toy.port.write8(0, 0x100), "EINVAL");
    expectCode(() => toy.port.write32(0, 2 ** 32), "EINVAL");
    expectCode(() => new ToyDevice(soc, "toy1", TOY + 0x200, 3), "EBUSY");
    expectCode(() => new ToyDevice(soc, "toy0", TOY + 0x1000, 3), "EEXIST");
    expect(soc.stepCount).toBe(0);
  });

  it("makes a gone device read all-ones, drop writes and fail DMA", () => {
    const soc = new Soc();
    const toy = new ToyDevice(soc, "toy0", TOY, 3);
    soc.fabric.write32(TOY, 5);
    toy.unplug();
    expect(toy.gone).toBe(true);
    expect(soc.fabric.read32(TOY)).toBe(0xffff_ffff);
    expect(soc.fabric.read16(TOY)).toBe(0xffff);
    expect(soc.fabric.read8(TOY)).toBe(0xff);
    soc.fabric.write32(TOY, 9);
    expect(toy.regs[0]).toBe(5);
    expect(toy.dma.write32(RAM, 1)).toBe(false);
    expect(toy.dma.status).toBe(DMA_STATUS.DEVICE_GONE);
    expect(soc.memory.read32(RAM)).toBe(0);
  });

  it("moves data by DMA and reports bus errors outside memory", () => {
    const soc = new Soc();
    const toy = new ToyDevice(soc, "toy0", TOY, 3);
    soc.memory.writeBytes(RAM + 0x100, new Uint8Array([1, 2, 3, 4, 5, 6, 7, 8]));
    soc.fabric.write32(TOY + 0x44, 0x100);
    soc.fabric.write32(TOY + 0x54, 8);
    soc.fabric.write32(TOY + 0x48, 8);
    soc.fabric.write32(TOY + 0x4c, 1);
    expect(soc.fabric.read32(TOY + 0x50)).toBe(0);
    expect(toy.regs[0x100 / 4]).toBe(0x0403_0201);
    soc.fabric.write32(TOY + 0x54, 0); // address 0x100: no memory there
    soc.fabric.write32(TOY + 0x4c, 2);
    expect(soc.fabric.read32(TOY + 0x50)).toBe(DMA_STATUS.BUS_ERROR);
    const dma = soc.trace().filter((r) => r.kind === "dma");
    expect(dma.map((r) => [r.write, r.addr, r.length, r.status])).toEqual([
      [false, RAM + 0x100, 8, 0],
      [true, 0x100, 8, DMA_STATUS.BUS_ERROR],
    ]);
    // Small accessors and multi-byte values are little-endian.
    const m = soc.dmaMaster("m");
    expect(m.write64(RAM + 0x200, 0x1_2345_6789)).toBe(true);
    expect(m.read32(RAM + 0x200)).toBe(0x2345_6789);
    expect(m.read16(RAM + 0x204)).toBe(1);
    expect(m.read64(RAM + 0x200)).toBe(0x1_2345_6789);
    m.enabled = false;
    expect(m.read8(RAM)).toBe(0xff);
    expect(m.status).toBe(DMA_STATUS.MASTER_DISABLED);
  });
});

describe("interrupt controller", () => {
  it("delivers a level line while asserted, as an event, and honours the mask", () => {
    const soc = new Soc();
    const toy = new ToyDevice(soc, "toy0", TOY, 3);
    const got: number[] = [];
    soc.irq.connect(3, (line) => {
      got.push(line);
      soc.fabric.write32(TOY + 0x40, 0); // the handler clears the cause
    });
    soc.fabric.write32(TOY + 0x40, 1);
    expect(got).toEqual([]); // not from inside the model
    soc.run();
    expect(got).toEqual([3]);
    soc.irq.mask(3);
    soc.fabric.write32(TOY + 0x40, 1);
    soc.run();
    expect(got).toEqual([3]);
    expect(soc.irq.isPending(3)).toBe(true);
    soc.irq.unmask(3);
    soc.run();
    expect(got).toEqual([3, 3]);
    expect(toy.gone).toBe(false);
  });

  it("ORs shared sources and coalesces edges", () => {
    const soc = new Soc();
    const a = soc.irq.source(7, "a");
    const b = soc.irq.source(7, "b");
    a.raise();
    b.raise();
    a.lower();
    expect(soc.irq.isAsserted(7)).toBe(true);
    b.lower();
    expect(soc.irq.isAsserted(7)).toBe(false);
    let n = 0;
    soc.irq.connect(8, () => n++);
    soc.irq.pulse(8);
    soc.irq.pulse(8);
    soc.run();
    expect(n).toBe(1);
    expectCode(() => soc.irq.connect(8, () => {}), "EBUSY");
    expect(soc.irq.disconnect(8)).toBe(true);
    expectCode(() => soc.irq.raise(256), "EINVAL");
  });

  it("masks a line whose handler never clears it (storm)", () => {
    const soc = new Soc({ irqStormLimit: 50 });
    let n = 0;
    soc.irq.connect(4, () => n++);
    soc.irq.raise(4);
    soc.run();
    expect(n).toBe(50);
    expect(soc.irq.isMasked(4)).toBe(true);
    expect(soc.trace().some((r) => r.kind === "irq" && r.action === "storm")).toBe(true);
  });

  it("a handler that throws surfaces the error and the still-asserted line is delivered again", () => {
    const soc = new Soc();
    let calls = 0;
    soc.irq.connect(6, () => {
      calls++;
      if (calls === 1) throw new Error("handler bug");
      soc.irq.lower(6);
    });
    soc.irq.raise(6);
    expect(() => soc.run()).toThrow("handler bug");
    soc.run();
    expect(calls).toBe(2);
    expect(soc.irq.isAsserted(6)).toBe(false);
  });

  it("lowers a gone device's lines and ignores it afterwards", () => {
    const soc = new Soc();
    const toy = new ToyDevice(soc, "toy0", TOY, 3);
    soc.fabric.write32(TOY + 0x40, 1);
    expect(soc.irq.isAsserted(3)).toBe(true);
    toy.unplug();
    expect(soc.irq.isAsserted(3)).toBe(false);
  });
});

describe("run loop", () => {
  it("runFor advances the clock even with no events; runUntil stops at the deadline", () => {
    const soc = new Soc();
    soc.runFor(1000);
    expect(soc.nowNs).toBe(1000);
    let flag = false;
    soc.events.after(500, () => {
      flag = true;
    });
    expect(soc.runUntil(() => flag, { timeoutNs: 100 })).toBe(false);
    expect(soc.nowNs).toBe(1100);
    expect(soc.runUntil(() => flag)).toBe(true);
    expect(soc.nowNs).toBe(1500);
  });

  it("counts each event as a step and refuses to run forever", () => {
    const soc = new Soc();
    soc.events.after(1, () => {});
    soc.events.after(2, () => {});
    expect(soc.run()).toBe(2);
    expect(soc.stepCount).toBe(2);
    const tick = (): void => {
      soc.events.after(10, tick);
    };
    tick();
    expectCode(() => soc.run({ maxEvents: 100 }), "EBUSY");
  });
});

describe("fault injection", () => {
  it("fires an unplug just before the chosen step", () => {
    const soc = new Soc();
    new ToyDevice(soc, "toy0", TOY, 3);
    soc.fabric.write32(TOY, 0xabc);
    soc.faults.schedule({ step: 4 }, { kind: "unplug", target: "toy0" });
    const reads = [1, 2, 3, 4].map(() => soc.fabric.read32(TOY));
    // steps 2 and 3 see the device; step 4 is the first that sees it gone.
    expect(reads).toEqual([0xabc, 0xabc, 0xffff_ffff, 0xffff_ffff]);
    const fault = soc
      .trace()
      .find((r) => r.kind === "fault" && r.fault.startsWith("inject-unplug"));
    expect(fault?.step).toBe(4);
  });

  it("fires by virtual time without renumbering steps", () => {
    const soc = new Soc();
    const toy = new ToyDevice(soc, "toy0", TOY, 3);
    soc.events.after(100, () => {});
    soc.events.after(300, () => {});
    soc.faults.schedule({ timeNs: 200 }, { kind: "dma-error", target: "toy0", count: 2 });
    soc.run();
    expect(soc.stepCount).toBe(2);
    expect(toy.dma.write32(RAM, 1)).toBe(false);
    expect(toy.dma.status).toBe(DMA_STATUS.BUS_ERROR);
    expect(toy.dma.write32(RAM, 1)).toBe(false);
    expect(toy.dma.write32(RAM, 1)).toBe(true);
  });

  it("validates a fault completely before scheduling it", () => {
    const soc = new Soc();
    new ToyDevice(soc, "toy0", TOY, 3);
    soc.fabric.read32(TOY);
    expectCode(
      () => soc.faults.schedule({ step: 1 }, { kind: "unplug", target: "toy0" }),
      "EINVAL",
    );
    expectCode(
      () => soc.faults.schedule({ step: 9 }, { kind: "unplug", target: "nope" }),
      "EINVAL",
    );
    expectCode(
      () => soc.faults.schedule({ step: 9 }, { kind: "stuck-command", target: "toy0" }),
      "EINVAL",
    );
    expectCode(
      () => soc.faults.schedule({ step: 9 }, { kind: "dma-error", target: "toy0", count: 0 }),
      "EINVAL",
    );
    expect(soc.faults.pendingBySteps()).toEqual([]);
  });

  it("lets other parts define their own fault kinds", () => {
    const soc = new Soc();
    const fired: string[] = [];
    soc.faults.define("unplug", () => () => fired.push("custom"));
    expectCode(() => soc.faults.define("unplug", () => () => {}), "EEXIST");
    soc.faults.inject({ kind: "unplug", target: "anything" });
    expect(fired).toEqual(["custom"]);
  });

  it("cancels a scheduled fault", () => {
    const soc = new Soc();
    const toy = new ToyDevice(soc, "toy0", TOY, 3);
    const f = soc.faults.schedule({ step: 2 }, { kind: "unplug", target: "toy0" });
    expect(soc.faults.cancel(f)).toBe(true);
    soc.fabric.read32(TOY);
    soc.fabric.read32(TOY);
    expect(toy.gone).toBe(false);
    expect(f.fired).toBe(false);
  });
});

describe("trace and digest", () => {
  const scenario = (seed: number, mode: "full" | "digest" = "full"): Soc => {
    const soc = new Soc({ seed, trace: mode });
    new ToyDevice(soc, "toy0", TOY, 3);
    soc.irq.connect(3, () => soc.fabric.write32(TOY + 0x40, 0));
    for (let i = 0; i < 5; i++) {
      soc.events.after(soc.random.below(1000), () => soc.fabric.write32(TOY + 0x40, 1));
    }
    soc.run();
    return soc;
  };

  it("is the same for the same seed, different for another, and the same without keeping records", () => {
    const a = scenario(1);
    const b = scenario(1);
    const c = scenario(2);
    expect(a.traceDigest()).toBe(b.traceDigest());
    expect(a.traceDigest()).not.toBe(c.traceDigest());
    expect(scenario(1, "digest").traceDigest()).toBe(a.traceDigest());
    expect(scenario(1, "digest").trace()).toEqual([]);
    expect(a.traceDigest()).toMatch(/^[0-9a-f]{16}$/);
  });

  it("keeps only the most recent records when the limit is reached", () => {
    const soc = new Soc({ traceLimit: 3 });
    for (let i = 0; i < 5; i++) soc.note(`n${i}`);
    const kept = soc.trace();
    expect(kept.map((r) => (r.kind === "note" ? r.text : ""))).toEqual(["n2", "n3", "n4"]);
    expect(soc.tracer.dropped).toBe(2);
    expect(soc.tracer.count).toBe(5);
  });
});

describe("construction validates before it registers anything", () => {
  it("a model whose window overlaps is refused without taking its name", () => {
    const soc = new Soc();
    new ToyDevice(soc, "toy0", TOY, 3);
    expectCode(() => soc.fabric.checkFree("x", TOY + 0x100, 4), "EBUSY");
    expectCode(() => new ToyDevice(soc, "toy1", TOY + 0x200, 3), "EBUSY");
    expect(soc.device("toy1")).toBeUndefined();
    new ToyDevice(soc, "toy1", TOY + 0x1000, 3); // the name is still free
    expect(soc.devices().map((d) => d.name)).toEqual(["toy0", "toy1"]);
  });
});
