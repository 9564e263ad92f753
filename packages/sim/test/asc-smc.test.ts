import { describe, expect, it } from "vitest";
import {
  AppleSmc,
  AscMailbox,
  createAppleSmc,
  RtkitFirmware,
  type SmcKeyDef,
  Soc,
  smcChargePercent,
  smcTemperature,
} from "../src/index.js";
import { parseCrashlog } from "./asc/crashlog-reader.js";
import { ApMailbox, ApRtkit, bits, PWR, typed } from "./asc/driver.js";
import { expectCode } from "./helpers.js";

const ASC = 0x2_3e40_0000;
const SRAM = 0x2_3fe0_0000;
const SRAM_SIZE = 0x10_0000;
const IRQ = 100;

const READ_KEY = 0x10;
const WRITE_KEY = 0x11;
const GET_KEY_BY_INDEX = 0x12;
const GET_KEY_INFO = 0x13;
const INITIALIZE = 0x17;
const RW_KEY = 0x20;

/** A FourCC packed big-endian, as `SMC_KEY()` does. */
function key(s: string): number {
  return (
    ((s.charCodeAt(0) << 24) |
      (s.charCodeAt(1) << 16) |
      (s.charCodeAt(2) << 8) |
      s.charCodeAt(3)) >>>
    0
  );
}

interface Reply {
  readonly result: number;
  readonly id: number;
  readonly size: number;
  readonly data: number;
  readonly msg0: bigint;
}

/** The SMC driver's command path (apple_smc_cmd_locked), reduced to what the tests need. */
class ApSmc {
  id = 0;
  readonly events: number[] = [];
  constructor(readonly ap: ApRtkit) {}

  get soc(): Soc {
    return this.ap.mb.soc;
  }

  /** Sends one command; the reply, or null after 500 ms of virtual time without one. */
  cmd(msg: number, data = 0, size = 0, wsize = 0): Reply | null {
    this.id = (this.id + 1) & 0xf;
    const m =
      (BigInt(data) << 32n) |
      (BigInt(wsize) << 24n) |
      (BigInt(size) << 16n) |
      (BigInt(this.id) << 12n) |
      BigInt(msg);
    this.ap.send(0x20, m);
    const deadline = this.soc.nowNs + 500_000_000;
    let reply: bigint | null = null;
    this.ap.pump(() => {
      for (let r = this.ap.app.shift(); r !== undefined; r = this.ap.app.shift()) {
        if ((r.msg0 & 0xffn) === 0x18n) this.events.push(bits(r.msg0, 63, 32));
        else reply = r.msg0;
      }
      return reply !== null;
    }, 500_000_000);
    if (reply === null) {
      if (this.soc.nowNs < deadline) this.soc.runFor(deadline - this.soc.nowNs);
      return null;
    }
    const r: bigint = reply;
    return {
      result: bits(r, 7, 0),
      id: bits(r, 15, 12),
      size: bits(r, 23, 16),
      data: bits(r, 63, 32),
      msg0: r,
    };
  }

  /** Writes `bytes` to the shared buffer (memcpy_toio). */
  put(shmem: number, bytes: number[]): void {
    for (let i = 0; i < bytes.length; i++) this.soc.fabric.write8(shmem + i, bytes[i]!);
  }

  get(shmem: number, n: number): number[] {
    return Array.from({ length: n }, (_, i) => this.soc.fabric.read8(shmem + i));
  }
}

function setup(o: { seed?: number; keys?: SmcKeyDef[]; onSystemEvent?: (e: string) => void } = {}) {
  const soc = new Soc({ seed: o.seed ?? 1 });
  const parts = createAppleSmc(soc, {
    irq: IRQ,
    smc: {
      ...(o.keys === undefined ? {} : { keys: o.keys }),
      ...(o.onSystemEvent === undefined ? {} : { onSystemEvent: o.onSystemEvent }),
    },
  });
  const mb = new ApMailbox(soc, ASC);
  mb.useIrq(IRQ);
  const ap = new ApRtkit(mb);
  return { soc, ...parts, mb, ap, drv: new ApSmc(ap) };
}

/** The probe's first steps: wake, start EP 0x20, INITIALIZE; returns the shared buffer address. */
function probe(s: ReturnType<typeof setup>): number {
  s.ap.send(0, typed(6, PWR.INIT)); // apple_rtkit_wake
  expect(s.ap.boot()).toBe(true);
  s.ap.send(0, typed(5, (0x20n << 32n) | 2n));
  s.ap.send(0x20, BigInt(INITIALIZE)); // ID 0, nothing else
  s.ap.pump(() => s.ap.app.length > 0);
  return Number(s.ap.app.shift()!.msg0);
}

describe("Apple SMC: boot", () => {
  it("wakes, answers INITIALIZE with the shared buffer's SRAM address, and keeps its RTKit buffers in SRAM", () => {
    const s = setup();
    expect(s.firmware.state).toBe("asleep");
    const shmem = probe(s);
    expect(shmem).toBe(SRAM);
    expect(s.soc.memoryMap().find((r) => r.name === "smc-sram")).toEqual({
      name: "smc-sram",
      base: SRAM,
      size: SRAM_SIZE,
      kind: "memory",
      owner: "soc",
    });
    // Firmware-owned buffers: the requests carry SRAM addresses and the AP sends no reply.
    const reqs = s.ap.log.seen.filter((m) => m.ep >= 1 && m.ep <= 4 && bits(m.msg0, 59, 52) === 1);
    expect(reqs.map((m) => [m.ep, m.msg0])).toEqual([
      [1, typed(1, (1n << 44n) | BigInt(SRAM + 0x8000))],
      [2, typed(1, (1n << 44n) | BigInt(SRAM + 0xa000))],
      [4, typed(1, (1n << 44n) | BigInt(SRAM + 0x9000))],
    ]);
    expect(s.firmware.protocolErrors).toBe(0);
  });

  it("reads #KEY as the worked example encodes it, big-endian", () => {
    const s = setup();
    probe(s);
    s.ap.send(0x20, 0x234b_4559_0004_1010n); // READ_KEY #KEY, 4 bytes, ID 1
    s.ap.pump(() => s.ap.app.length > 0);
    const reply = s.ap.app.shift()!.msg0;
    const n = s.smc.keyCount;
    // DATA holds the value's bytes from bits 39:32 up: #KEY is big-endian.
    const data =
      (BigInt(n & 0xff) << 56n) |
      (BigInt((n >>> 8) & 0xff) << 48n) |
      (BigInt((n >>> 16) & 0xff) << 40n) |
      (BigInt(n >>> 24) << 32n);
    expect(reply).toBe(data | 0x0004_1000n);
  });
});

describe("Apple SMC: commands", () => {
  function ready(o: Parameters<typeof setup>[0] = {}) {
    const s = setup(o);
    const shmem = probe(s);
    return { ...s, shmem };
  }

  it("enumerates every key by index in sorted order, #KEY first, and refuses an index past the end", () => {
    const { drv, smc } = ready();
    const count = drv.cmd(READ_KEY, key("#KEY"), 4)!;
    const n = Number(
      ((BigInt(count.data) & 0xffn) << 24n) |
        (((BigInt(count.data) >> 8n) & 0xffn) << 16n) |
        (((BigInt(count.data) >> 16n) & 0xffn) << 8n) |
        (BigInt(count.data) >> 24n),
    );
    expect(n).toBe(smc.keyCount);
    const names: string[] = [];
    for (let i = 0; i < n; i++) {
      const r = drv.cmd(GET_KEY_BY_INDEX, i)!;
      expect([r.result, r.size]).toEqual([0, 0]);
      names.push(
        String.fromCharCode(
          r.data & 0xff,
          (r.data >>> 8) & 0xff,
          (r.data >>> 16) & 0xff,
          r.data >>> 24,
        ),
      );
    }
    expect(names[0]).toBe("#KEY");
    expect(drv.cmd(GET_KEY_BY_INDEX, 0)!.data).toBe(0x5945_4b23); // the worked example
    expect(names).toEqual(smc.keyNames());
    const packed = names.map(key);
    expect(packed).toEqual([...packed].sort((a, b) => a - b));
    expect(names).toContain("gP00");
    expect(drv.cmd(GET_KEY_BY_INDEX, n)!.result).toBe(0xb8); // kSMCKeyIndexRangeError
  });

  it("leaves size, type and flags in the shared buffer for GET_KEY_INFO", () => {
    const { drv, shmem } = ready();
    const info = (k: string) => {
      const r = drv.cmd(GET_KEY_INFO, key(k))!;
      return { result: r.result, size: r.size, info: r.result === 0 ? drv.get(shmem, 6) : [] };
    };
    const chars = (t: string) => [...t].map((c) => c.charCodeAt(0));
    expect(info("TB0T")).toEqual({ result: 0, size: 0, info: [4, ...chars("flt "), 0x80] });
    expect(info("NTAP")).toEqual({ result: 0, size: 0, info: [1, ...chars("flag"), 0xc0] });
    expect(info("gP00")).toEqual({ result: 0, size: 0, info: [4, ...chars("ui32"), 0xd0] });
    expect(info("BMDN")).toEqual({ result: 0, size: 0, info: [32, ...chars("ch8*"), 0x80] });
    expect(info("ZZZZ").result).toBe(0x84);
  });

  it("reads small values from DATA and large ones from the shared buffer, with the key's real size", () => {
    const { drv, shmem, smc } = ready();
    const r = drv.cmd(READ_KEY, key("B0AV"), 2)!;
    expect([r.result, r.size, r.data & 0xffff]).toEqual([0, 2, 12_300]); // little-endian u16
    const big = drv.cmd(READ_KEY, key("BMDN"), 255)!; // the power driver asks for 255
    expect([big.result, big.size]).toEqual([0, 32]);
    expect(String.fromCharCode(...drv.get(shmem, 8))).toBe("bq40z651");
    expect(drv.cmd(READ_KEY, key("B0AV"), 1)!.result).toBe(0x87); // fewer bytes than the key holds
    expect(drv.cmd(READ_KEY, key("NOPE"), 4)!.result).toBe(0x84);
    smc.setKey("MSLD", [1]);
    expect(drv.cmd(READ_KEY, key("MSLD"), 1)!.data).toBe(1);
    expect([...smc.keyValue("B0AV")]).toEqual([12_300 & 0xff, 12_300 >> 8]);
  });

  it("refuses unreadable keys and answers unknown commands with kSMCBadCommand", () => {
    const { drv } = ready({ keys: [{ key: "WOnl", type: "ui8 ", size: 1, flags: 0x40 }] });
    expect(drv.cmd(READ_KEY, key("WOnl"), 1)!.result).toBe(0x85);
    const r = drv.cmd(0x42, 0)!;
    expect(r.result).toBe(0x82);
    expect(r.id).toBe(drv.id);
  });

  it("writes through the shared buffer, as the worked example: NTAP = 1, reply SIZE 0", () => {
    const { drv, shmem, smc, ap } = ready();
    drv.put(shmem, [1]);
    ap.send(0x20, 0x4e54_4150_0001_2011n); // WRITE_KEY NTAP, 1 byte, ID 2
    ap.pump(() => ap.app.length > 0);
    expect(ap.app.shift()!.msg0).toBe(0x2000n); // result 0, ID 2, SIZE 0
    expect(smc.notificationsEnabled).toBe(true);
    drv.id = 2;
    drv.put(shmem, [0, 0, 0x20, 0x41]);
    expect(drv.cmd(WRITE_KEY, key("TB0T"), 4)!.result).toBe(0x86); // read-only
    expect(drv.cmd(WRITE_KEY, key("NTAP"), 2)!.result).toBe(0x87); // wrong size
    expect(drv.cmd(WRITE_KEY, key("NOPE"), 1)!.result).toBe(0x84);
    drv.put(shmem, [0, 0, 0x20, 0x41]); // 10.0f
    expect(drv.cmd(WRITE_KEY, key("F0Tg"), 4)).toMatchObject({ result: 0, size: 0 });
    expect([...smc.keyValue("F0Tg")]).toEqual([0, 0, 0x20, 0x41]);
  });

  it("calls function keys with RW_KEY (a GPIO: set output, read back) and refuses RW on a plain key", () => {
    const { drv, shmem, ap } = ready();
    drv.put(shmem, [1, 0, 0, 1]); // cmd 1 (output) in bits 31:24, level 1
    expect(drv.cmd(RW_KEY, key("gP00"), 4, 4)).toMatchObject({ result: 0, size: 4, data: 0 });
    drv.put(shmem, [0, 0, 0, 2]); // cmd 2 (input)
    drv.id = 2;
    ap.send(0x20, 0x6750_3030_0404_3020n); // the worked example: RW_KEY gP00, write 4, read 4, ID 3
    ap.pump(() => ap.app.length > 0);
    expect(ap.app.shift()!.msg0).toBe(0x0000_0001_0004_3000n);
    drv.id = 3;
    expect(drv.cmd(READ_KEY, key("gP00"), 4)!.data).toBe(1);
    expect(drv.cmd(RW_KEY, key("B0AV"), 2, 1)!.result).toBe(0xc0);
  });

  it("drives sensors from the virtual clock, deterministically", () => {
    const { drv, soc } = ready();
    const float = (d: number) => new DataView(new Uint32Array([d]).buffer).getFloat32(0, true);
    const readAt = (k: string) => {
      const r = drv.cmd(READ_KEY, key(k), 4)!;
      const t = soc
        .trace()
        .filter((x) => x.kind === "mbox" && x.direction === "i2a")
        .at(-1)!.timeNs;
      return { v: float(r.data), t };
    };
    const a = readAt("TB0T");
    soc.runFor(4_000_000_000);
    const b = readAt("TB0T");
    expect(a.v).toBe(Math.fround(smcTemperature(a.t)));
    expect(b.v).toBe(Math.fround(smcTemperature(b.t)));
    expect(b.v).toBeGreaterThan(a.v + 3.9);
    expect(readAt("TCHP").v).toBeCloseTo(b.v + 5, 2);
    soc.runFor(180_000_000_000);
    const soc3 = drv.cmd(READ_KEY, key("BUIC"), 1)!.data;
    expect(soc3).toBe(smcChargePercent(soc.nowNs));
    expect(soc3).toBe(77);
  });

  it("counts the RTC at 32 768 Hz and takes a new time through a write", () => {
    const { drv, soc, shmem } = ready();
    const clkm = () => {
      drv.cmd(READ_KEY, key("CLKM"), 6);
      return drv.get(shmem, 6).reduceRight((acc, b) => acc * 256 + b, 0);
    };
    const t0 = clkm();
    soc.runFor(2_000_000_000);
    const t1 = clkm();
    expect(t1 - t0).toBeGreaterThanOrEqual(2 * 32768);
    expect(t1 - t0).toBeLessThan(2 * 32768 + 10);
    drv.put(shmem, [0, 0, 0, 0, 0x10, 0]); // 2^36 ticks
    expect(drv.cmd(WRITE_KEY, key("CLKM"), 6)!.result).toBe(0);
    expect(clkm() - 2 ** 36).toBeLessThan(10);
  });

  it("reports MBSE writes as system events", () => {
    const seen: string[] = [];
    const { drv, shmem, smc } = ready({ onSystemEvent: (e) => seen.push(e) });
    drv.put(shmem, [0x31, 0x66, 0x66, 0x6f]); // 'off1' as a little-endian u32
    expect(drv.cmd(WRITE_KEY, key("MBSE"), 4)!.result).toBe(0);
    expect(seen).toEqual(["off1"]);
    expect(smc.lastSystemEvent).toBe("off1");
  });
});

describe("Apple SMC: notifications", () => {
  it("sends notifications only while NTAP is 1, and a notification does not complete a command", () => {
    const s = setup();
    const shmem = probe(s);
    expect(s.smc.notify(0x7203_0100)).toBe(false);
    s.drv.put(shmem, [1]);
    expect(s.drv.cmd(WRITE_KEY, key("NTAP"), 1)!.result).toBe(0);
    expect(s.smc.notify(0x7203_0100)).toBe(true);
    s.ap.pump(() => s.ap.app.length > 0);
    expect(s.ap.app.shift()).toEqual({ ep: 0x20, msg0: 0x7203_0100_0000_0018n }); // lid closed
    // A notification while a command is outstanding arrives first; the command still completes.
    s.soc.events.after(500, () => s.smc.notify(0x7201_0101));
    const r = s.drv.cmd(READ_KEY, key("MSLD"), 1)!;
    expect(r.result).toBe(0);
    expect(r.id).toBe(s.drv.id);
    expect(s.drv.events).toEqual([0x7201_0101]);
    expect(s.smc.notificationsDropped).toBe(1);
    // NTAP goes back to 0 when the firmware sleeps.
    s.ap.send(0, typed(6, PWR.QUIESCED));
    s.ap.pump();
    expect(s.smc.notificationsEnabled).toBe(false);
  });
});

describe("Apple SMC: faults", () => {
  it("times out (no reply), replies with another ID or a wrong result, on command and at a step", () => {
    const s = setup();
    probe(s);
    s.smc.fault("no-reply");
    const t = s.soc.nowNs;
    expect(s.drv.cmd(READ_KEY, key("MSLD"), 1)).toBeNull();
    expect(s.soc.nowNs - t).toBeGreaterThanOrEqual(500_000_000);
    expect(s.drv.cmd(READ_KEY, key("MSLD"), 1)!.result).toBe(0);
    s.smc.fault("wrong-id");
    const r = s.drv.cmd(READ_KEY, key("MSLD"), 1)!;
    expect(r.id).toBe((s.drv.id + 1) & 0xf);
    s.soc.faults.schedule(
      { step: s.soc.stepCount + 1 },
      { kind: "smc-fault", target: "smc", mode: "result", result: 0xb7, count: 2 },
    );
    expect(s.drv.cmd(READ_KEY, key("MSLD"), 1)).toMatchObject({ result: 0xb7, size: 0, data: 0 });
    expect(s.drv.cmd(GET_KEY_INFO, key("MSLD"))!.result).toBe(0xb7);
    expect(s.drv.cmd(READ_KEY, key("MSLD"), 1)!.result).toBe(0);
    expect(
      s.soc.trace().filter((x) => x.kind === "fault" && x.fault === "smc-injected"),
    ).toHaveLength(4);
    expectCode(
      () =>
        s.soc.faults.schedule(
          { step: 1e9 },
          { kind: "smc-fault", target: "smc", mode: "result", result: 0x18 },
        ),
      "EINVAL",
    );
    // @ts-expect-error smc-fault needs a mode
    expectCode(() => s.soc.faults.inject({ kind: "smc-fault", target: "smc" }), "EINVAL");
  });

  it("aims each fault mode at the commands it concerns", () => {
    const s = setup();
    s.smc.fault("wrong-id"); // INITIALIZE carries no ID: the fault waits for a real command
    expect(probe(s)).toBe(SRAM);
    expect(s.drv.cmd(READ_KEY, key("MSLD"), 1)!.id).toBe((s.drv.id + 1) & 0xf);
    s.smc.fault("bad-shmem"); // only INITIALIZE: ordinary commands are untouched
    expect(s.drv.cmd(READ_KEY, key("MSLD"), 1)).toMatchObject({ result: 0, id: s.drv.id });
    s.ap.send(0x20, BigInt(INITIALIZE));
    s.ap.pump(() => s.ap.app.length > 0);
    expect(Number(s.ap.app.shift()!.msg0)).toBe(SRAM + SRAM_SIZE);
  });

  it("answers INITIALIZE with an address outside SRAM when told to", () => {
    const s = setup();
    s.soc.faults.inject({ kind: "smc-fault", target: "smc", mode: "bad-shmem" });
    expect(probe(s)).toBe(SRAM + SRAM_SIZE);
  });

  it("crashes with its crashlog in SRAM, where the AP reads it through the fabric", () => {
    const s = setup();
    probe(s);
    s.soc.faults.inject({ kind: "rtkit-crash", target: "smc", reason: "smc panic" });
    s.ap.pump();
    expect(s.ap.crashed).toBe(true);
    const b = new Uint8Array(0x1000);
    for (let i = 0; i < b.length; i++) b[i] = s.soc.fabric.read8(SRAM + 0x8000 + i);
    const log = parseCrashlog(b);
    expect(log.magic).toBe("CLHE");
    expect(log.sections.map((x) => x.fourcc)).toContain("Cstr");
    expect(s.drv.cmd(READ_KEY, key("MSLD"), 1)).toBeNull(); // a crashed SMC answers nothing
  });
});

describe("Apple SMC: construction and determinism", () => {
  it("validates its options and keys", () => {
    const soc = new Soc();
    const asc = new AscMailbox(soc, { name: "smc", base: ASC, irq: IRQ, running: true });
    const fw = new RtkitFirmware(asc);
    expectCode(() => new AppleSmc(fw, { sramBase: SRAM, sramSize: SRAM_SIZE }), "EINVAL"); // SRAM not mapped
    soc.addMemory("sram", SRAM, SRAM_SIZE);
    const bad: SmcKeyDef[] = [
      { key: "#KEY", type: "ui32", size: 4 },
      { key: "TOOLONG", type: "ui8 ", size: 1 },
      { key: "ABCD", type: "ui8", size: 1 },
      { key: "ABCD", type: "ui8 ", size: 0 },
      { key: "ABCD", type: "ui8 ", size: 2, value: [1] },
      { key: "ABCD", type: "ui8 ", size: 1, value: [256] },
    ];
    for (const k of bad)
      expectCode(
        () => new AppleSmc(fw, { sramBase: SRAM, sramSize: SRAM_SIZE, keys: [k] }),
        "EINVAL",
      );
    expectCode(
      () => new AppleSmc(fw, { sramBase: SRAM, sramSize: SRAM_SIZE, endpoint: 0x10 }),
      "EINVAL",
    );
    const smc = new AppleSmc(fw, {
      sramBase: SRAM,
      sramSize: SRAM_SIZE,
      defaultKeys: false,
      keys: [{ key: "ABCD", type: "ui8 ", size: 1 }],
    });
    expect(smc.keyNames()).toEqual(["#KEY", "ABCD"]);
    expect([...smc.keyValue("#KEY")]).toEqual([0, 0, 0, 2]);
    expectCode(() => smc.keyValue("ZZZZ"), "ENOENT");
    expectCode(() => smc.setKey("ABCD", [1, 2]), "EINVAL");
    expectCode(() => smc.setKey("#KEY", [0, 0, 0, 9]), "EINVAL");
    expectCode(() => new AppleSmc(fw, { sramBase: SRAM, sramSize: SRAM_SIZE }), "EBUSY");
  });

  it("createAppleSmc checks everything first: a refused setup adds nothing", () => {
    const soc = new Soc();
    expectCode(() => createAppleSmc(soc, { irq: 300 }), "EINVAL");
    expectCode(() => createAppleSmc(soc, { irq: 10, firmware: { syslogEntries: 0 } }), "EINVAL");
    const count: SmcKeyDef = { key: "#KEY", type: "ui32", size: 4 };
    expectCode(() => createAppleSmc(soc, { irq: 10, smc: { keys: [count] } }), "EINVAL");
    expectCode(() => createAppleSmc(soc, { irq: 10, sramBase: ASC }), "EBUSY");
    soc.addMemory("x", SRAM + 0x1000, 0x1000);
    expectCode(() => createAppleSmc(soc, { irq: 10 }), "EBUSY");
    expect(soc.devices()).toEqual([]);
    expect(soc.memoryMap().map((r) => r.name)).toEqual(["x", "ram"]);
    const parts = createAppleSmc(soc, { irq: 10, sramBase: 0x2_4000_0000, name: "smc1" });
    expect(parts.asc.name).toBe("smc1");
    expectCode(
      () => createAppleSmc(soc, { irq: 10, sramBase: 0x2_5000_0000, name: "smc1" }),
      "EEXIST",
    );
  });

  it("gives the same trace digest for the same seed", () => {
    const run = (seed: number): string => {
      const s = setup({ seed });
      const shmem = probe(s);
      s.drv.put(shmem, [1]);
      s.drv.cmd(WRITE_KEY, key("NTAP"), 1);
      s.firmware.corrupt("random");
      s.smc.notify(0x7102_0000);
      s.drv.cmd(READ_KEY, key("TB0T"), 4);
      s.soc.runFor(1_000_000);
      return s.soc.traceDigest();
    };
    expect(run(5)).toBe(run(5));
    expect(run(5)).not.toBe(run(6));
  });
});
