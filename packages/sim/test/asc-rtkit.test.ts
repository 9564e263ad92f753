import { describe, expect, it } from "vitest";
import {
  AscMailbox,
  DMA_STATUS,
  type RtkitEndpoint,
  RtkitFirmware,
  type RtkitFirmwareOptions,
  Soc,
  XLATE_FAULT,
} from "../src/index.js";
import { cstring, fourcc, parseCrashlog, u32, u64 } from "./asc/crashlog-reader.js";
import { ApMailbox, ApRtkit, bits, type Msg, PWR, typed } from "./asc/driver.js";
import { expectCode } from "./helpers.js";

const BASE = 0x2_7700_0000;
const IRQ = 20;
const RAM = 0x8_0000_0000;

interface RigOptions {
  readonly fw?: RtkitFirmwareOptions;
  readonly running?: boolean;
  readonly fifoDepth?: number;
  readonly seed?: number;
  readonly endpoints?: Record<number, RtkitEndpoint>;
}

function rig(o: RigOptions = {}) {
  const soc = new Soc({ seed: o.seed ?? 1 });
  const asc = new AscMailbox(soc, {
    name: "iop",
    base: BASE,
    irq: IRQ,
    running: o.running ?? false,
    ...(o.fifoDepth === undefined ? {} : { fifoDepth: o.fifoDepth }),
  });
  const fw = new RtkitFirmware(asc, o.fw ?? {});
  for (const [ep, h] of Object.entries(o.endpoints ?? {})) fw.addEndpoint(Number(ep), h);
  const mb = new ApMailbox(soc, BASE);
  mb.useIrq(IRQ);
  const ap = new ApRtkit(mb);
  const cpuRun = (): void => soc.fabric.write32(BASE + 0x44, 0x10);
  const expectNext = (ep: number, msg0: bigint): Msg => {
    const m = mb.next();
    expect(m).toEqual({ ep, msg0 });
    return m!;
  };
  return { soc, asc, fw, mb, ap, cpuRun, expectNext };
}

/** An application endpoint that echoes every message plus one, and records its calls. */
class Echo implements RtkitEndpoint {
  calls: string[] = [];
  fw: RtkitFirmware | null = null;
  constructor(readonly ep: number) {}
  start(): void {
    this.calls.push("start");
  }
  stop(): void {
    this.calls.push("stop");
  }
  receive(hi: number, lo: number): void {
    this.calls.push(`rx ${hi}:${lo}`);
    this.fw?.send(this.ep, hi, (lo + 1) >>> 0);
  }
  reset(): void {
    this.calls.push("reset");
  }
  prepareFault(): null {
    return null;
  }
}

describe("RTKit firmware: handshake", () => {
  it("boots on CPU_CONTROL.RUN and walks HELLO, EPMAP, STARTEP, buffer requests and power-on, bit for bit", () => {
    const { soc, fw, mb, cpuRun, expectNext } = rig();
    expect(fw.state).toBe("off");
    cpuRun();
    expect(fw.state).toBe("booting");
    expectNext(0, 0x0010_0000_000c_000bn); // HELLO 11..12
    expect(soc.nowNs).toBe(100_000);
    mb.send(0, 0x0020_0000_000c_000cn); // HELLO_REPLY 12
    expectNext(0, 0x0088_0000_0000_011fn); // EPMAP base 0: 0,1,2,3,4,8, LAST
    expect(fw.version).toBe(12);
    mb.send(0, 0x0088_0000_0000_0000n); // EPMAP_REPLY LAST
    for (const ep of [1, 2, 3, 4, 8]) mb.send(0, typed(5, (BigInt(ep) << 32n) | 2n));
    expectNext(1, 0x0010_1000_0000_0000n); // crashlog: 1 page, AP allocates
    expectNext(2, 0x0010_2000_0000_0000n); // syslog: 2 pages (rtkit.md §5.5)
    expectNext(4, 0x0010_1000_0000_0000n); // IOReport: 1 page
    expectNext(8, 0x0102_0000_0000_0000n); // OSLog: type 63:56, 0x2000 bytes in 55:36
    expectNext(0, 0x0070_0000_0000_0020n); // IOP_PWR_ACK ON
    expect(fw.state).toBe("running");
    mb.send(0, 0x00b0_0000_0000_0020n);
    expectNext(0, 0x00b0_0000_0000_0020n); // AP power ON acknowledged
    expect(fw.apPowerState).toBe(PWR.ON);
    expect(fw.protocolErrors).toBe(0);
    // Every message in both directions is in the trace with its time.
    const mbox = soc.trace().filter((r) => r.kind === "mbox");
    expect(mbox.filter((r) => r.direction === "a2i")).toHaveLength(8);
    expect(mbox.filter((r) => r.direction === "i2a")).toHaveLength(8);
    expect(mbox[0]).toMatchObject({
      direction: "i2a",
      msg0Hi: 0x0010_0000,
      msg0Lo: 0x000c_000b,
      timeNs: 100_000,
    });
  });

  it("handles one message per latency step, in order", () => {
    const { soc, mb, cpuRun, expectNext } = rig({ fw: { latencyNs: 5000 } });
    cpuRun();
    expectNext(0, 0x0010_0000_000c_000bn);
    const t = soc.nowNs;
    mb.send(0, 0x0020_0000_000c_000cn);
    mb.send(0, 0x0060_0000_0000_0020n); // during the handshake: ignored, no answer
    expectNext(0, 0x0088_0000_0000_011fn);
    expect(soc.nowNs).toBe(t + 5000);
    soc.run();
    expect(soc.nowNs).toBe(t + 10_000);
    expect(mb.inbox).toEqual([]);
  });

  it("offers its version range; a kernel-like AP refuses one it does not support and the firmware waits", () => {
    const tooNew = rig({ fw: { minVersion: 13, maxVersion: 14 } });
    tooNew.cpuRun();
    expect(tooNew.ap.boot()).toBe(false);
    expect(tooNew.ap.log.seen).toEqual([{ ep: 0, msg0: 0x0010_0000_000e_000dn }]);
    expect(tooNew.fw.state).toBe("hello");
    const only11 = rig({ fw: { minVersion: 10, maxVersion: 11 } });
    only11.cpuRun();
    expect(only11.ap.boot()).toBe(true);
    expect(only11.fw.version).toBe(11);
  });

  it("refuses a HELLO_REPLY outside its range or with MINVER ≠ MAXVER, and one out of turn", () => {
    const { fw, mb, cpuRun, expectNext, soc } = rig({ fw: { minVersion: 11, maxVersion: 11 } });
    mb.send(0, 0x0020_0000_000b_000bn); // CPU not running yet: stays in the FIFO
    soc.run();
    expect(fw.protocolErrors).toBe(0);
    cpuRun();
    expectNext(0, 0x0010_0000_000b_000bn);
    soc.run(); // the early reply is read now: accepted, since it matches
    expect(fw.state).toBe("epmap");
    expect(mb.inbox).toHaveLength(1);
    const rig2 = rig({ fw: { minVersion: 11, maxVersion: 11 } });
    rig2.cpuRun();
    rig2.expectNext(0, 0x0010_0000_000b_000bn);
    rig2.mb.send(0, 0x0020_0000_000c_000cn); // 12: not offered
    rig2.mb.send(0, 0x0020_0000_000c_000bn); // min 11, max 12
    rig2.soc.run();
    expect(rig2.fw.protocolErrors).toBe(2);
    expect(rig2.fw.lastProtocolError).toContain("HELLO_REPLY with a version");
    expect(rig2.fw.state).toBe("hello");
    expect(rig2.mb.inbox).toEqual([]);
    expect(
      rig2.soc.trace().filter((r) => r.kind === "fault" && r.fault === "rtkit-protocol-error"),
    ).toHaveLength(2);
  });

  it("sends one EPMAP page per reply, with LAST only on the last, and checks each reply", () => {
    const endpoints = { 32: new Echo(0x20), 33: new Echo(0x21), 65: new Echo(0x41) };
    const { fw, mb, cpuRun, expectNext, soc } = rig({ fw: { systemEndpoints: [1, 2] }, endpoints });
    cpuRun();
    expectNext(0, 0x0010_0000_000c_000bn);
    mb.send(0, 0x0020_0000_000c_000cn);
    expectNext(0, 0x0080_0000_0000_0007n); // base 0: 0,1,2 — not last
    mb.send(0, 0x0080_0000_0000_0000n); // neither MORE nor LAST: refused
    soc.run();
    expect(fw.protocolErrors).toBe(1);
    expect(mb.inbox).toEqual([]);
    mb.send(0, 0x0080_0001_0000_0001n); // wrong BASE
    soc.run();
    expect(fw.protocolErrors).toBe(2);
    mb.send(0, 0x0080_0000_0000_0001n); // base 0, MORE
    expectNext(0, 0x0080_0001_0000_0003n); // base 1: 0x20, 0x21 (rtkit.md §5.5)
    mb.send(0, 0x0080_0001_0000_0001n);
    expectNext(0, 0x0088_0002_0000_0002n); // base 2: 0x41, LAST
    mb.send(0, 0x0088_0002_0000_0001n); // MORE on the last page: refused
    soc.run();
    expect(fw.protocolErrors).toBe(3);
    mb.send(0, 0x0088_0002_0000_0000n);
    soc.run();
    expect(fw.state).toBe("starting");
  });

  it("acknowledges IOP power ON only once every announced system endpoint the kernel starts is started", () => {
    const { fw, mb, cpuRun, expectNext, soc } = rig({
      fw: { systemEndpoints: [1, 3, 0xa], crashlog: null },
    });
    cpuRun();
    expectNext(0, 0x0010_0000_000c_000bn);
    mb.send(0, 0x0020_0000_000c_000cn);
    expectNext(0, 0x0088_0000_0000_040bn); // 0, 1, 3, 0xa (TraceKit: announced, never required)
    mb.send(0, 0x0088_0000_0000_0000n);
    mb.send(0, typed(5, (1n << 32n) | 2n));
    soc.run();
    expect(mb.inbox).toEqual([]); // no crashlog buffer configured, EP 3 not started yet
    expect(fw.state).toBe("starting");
    mb.send(0, typed(5, (3n << 32n) | 2n));
    expectNext(0, 0x0070_0000_0000_0020n);
  });

  it("refuses bad STARTEPs: undiscovered, management, no flag, too early", () => {
    const { fw, mb, cpuRun, expectNext, soc } = rig();
    cpuRun();
    expectNext(0, 0x0010_0000_000c_000bn);
    mb.send(0, typed(5, (1n << 32n) | 2n)); // before EPMAP
    mb.send(0, 0x0020_0000_000c_000cn);
    expectNext(0, 0x0088_0000_0000_011fn);
    mb.send(0, 0x0088_0000_0000_0000n);
    mb.send(0, typed(5, (5n << 32n) | 2n)); // not announced
    mb.send(0, typed(5, 2n)); // EP 0
    mb.send(0, typed(5, 1n << 32n)); // no flag
    mb.send(0, typed(0x3)); // PING: the kernel has none, neither does the model
    soc.run();
    expect(fw.protocolErrors).toBe(5);
    expect(mb.inbox).toEqual([]);
  });
});

describe("RTKit firmware: buffers and syslog", () => {
  it("uses the buffers the AP allocated and announces the syslog ring with INIT", () => {
    const { fw, ap, cpuRun } = rig({ fw: { syslogEntries: 4, syslogMessageSize: 0x40 } });
    cpuRun();
    expect(ap.boot()).toBe(true);
    for (const ep of [1, 2, 4, 8] as const) {
      expect(fw.bufferAddress(ep)).toBe(ap.log.buffers.get(ep)!.addr);
      expect(fw.bufferAddress(ep)).toBeGreaterThanOrEqual(RAM);
    }
    expect([ap.log.syslogEntries, ap.log.syslogMsgSize]).toEqual([4, 0x40]);
    const init = ap.log.seen.find((m) => m.ep === 2 && bits(m.msg0, 59, 52) === 8)!;
    expect(init.msg0).toBe(0x0080_0000_4000_0004n);
  });

  it("writes syslog entries into the ring by DMA and reuses an entry only after its ack", () => {
    const { soc, fw, ap, mb, cpuRun } = rig({ fw: { syslogEntries: 2, syslogMessageSize: 0x20 } });
    fw.log("early", "queued before the buffer exists");
    cpuRun();
    expect(ap.boot()).toBe(true);
    ap.pump();
    const ring = ap.log.buffers.get(2)!.addr;
    const stride = 0x20 + 0x20;
    const entry = (i: number) => {
      const b = new Uint8Array(stride);
      soc.memory.readBytes(ring + i * stride, b);
      return { seq: u32(b, 0), context: cstring(b, 8, 0x20), text: cstring(b, 0x20) };
    };
    expect(entry(0)).toEqual({ seq: 0, context: "early", text: "queued before the buffer exists" });
    // The AP acked entry 0; a log line with a long context and text is cut to the fields.
    fw.log("a-context-longer-than-24-bytes", "x".repeat(40));
    ap.pump();
    expect(entry(1)).toEqual({ seq: 1, context: "a-context-longer-than-2", text: "x".repeat(31) });
    // Without acks the ring fills: the third line waits for entry 0's ack.
    mb.inbox.length = 0;
    soc.irq.mask(IRQ + 3);
    fw.log("k", "two");
    fw.log("k", "three");
    fw.log("k", "four");
    soc.run();
    const logs = mb.drain().filter((m) => m.ep === 2);
    expect(logs.map((m) => m.msg0)).toEqual([typed(5, 0n), typed(5, 1n)]);
    expect(entry(0).text).toBe("two");
    mb.send(2, logs[0]!.msg0);
    soc.run();
    expect(entry(0).text).toBe("four");
    expect(mb.drain().map((m) => m.msg0)).toEqual([typed(5, 0n)]);
    // Acks that echo nothing are refused.
    mb.send(2, typed(5, 0n) | 0x100n);
    mb.send(2, typed(5, 7n));
    soc.run();
    expect(fw.protocolErrors).toBe(2);
    const dma = soc.trace().filter((r) => r.kind === "dma" && r.write && r.source === "iop");
    expect(dma.length).toBe(5);
    expect(dma.every((r) => r.kind === "dma" && r.status === 0 && r.length === stride)).toBe(true);
  });

  it("asks for firmware-owned buffers with their address and expects no reply", () => {
    const syslogAt = RAM + 0x20_0000;
    const { fw, ap, mb, cpuRun, soc } = rig({
      fw: {
        syslog: { pages: 1, address: syslogAt },
        crashlog: { pages: 1, address: RAM + 0x30_0000 },
        oslog: { size: 0x1000, address: RAM + 0x40_0000 },
      },
    });
    cpuRun();
    expect(ap.boot()).toBe(true);
    const req = ap.log.seen.find((m) => m.ep === 2 && bits(m.msg0, 59, 52) === 1)!;
    expect(req.msg0).toBe(typed(1, (1n << 44n) | BigInt(syslogAt)));
    const os = ap.log.seen.find((m) => m.ep === 8)!;
    expect(os.msg0).toBe((1n << 56n) | (0x1000n << 36n) | BigInt((RAM + 0x40_0000) / 0x1000));
    expect(fw.bufferAddress(2)).toBe(syslogAt);
    expect(fw.bufferAddress(8)).toBe(RAM + 0x40_0000);
    fw.log("fw", "owned ring");
    ap.pump();
    const b = new Uint8Array(16);
    soc.memory.readBytes(syslogAt + 0x20, b);
    expect(cstring(b, 0)).toBe("owned ring");
    // A reply to a request that wanted none is refused.
    mb.send(2, req.msg0);
    soc.run();
    expect(fw.protocolErrors).toBe(1);
    // The firmware's own memory is reached without the bus master.
    expect(soc.trace().some((r) => r.kind === "dma" && r.source === "iop.local")).toBe(true);
  });

  it("refuses buffer replies with address 0 or a smaller size", () => {
    const r2 = rig({ fw: { systemEndpoints: [2], syslog: { pages: 4 } } });
    r2.cpuRun();
    r2.expectNext(0, 0x0010_0000_000c_000bn);
    r2.mb.send(0, 0x0020_0000_000c_000cn);
    r2.expectNext(0, 0x0088_0000_0000_0005n);
    r2.mb.send(0, 0x0088_0000_0000_0000n);
    r2.mb.send(0, typed(5, (2n << 32n) | 2n));
    r2.expectNext(2, 0x0010_4000_0000_0000n);
    r2.expectNext(0, 0x0070_0000_0000_0020n);
    r2.mb.send(2, typed(1, 4n << 44n)); // address 0
    r2.mb.send(2, typed(1, (2n << 44n) | 0x8_0100_0000n)); // 2 pages < 4
    r2.soc.run();
    expect(r2.fw.protocolErrors).toBe(2);
    expect(r2.fw.bufferAddress(2)).toBe(-1);
    r2.mb.send(2, typed(1, (4n << 44n) | 0x8_0100_0000n));
    r2.expectNext(2, 0x0080_0000_8000_0008n); // INIT: 8 entries of 0x80 bytes
    expect(r2.fw.bufferAddress(2)).toBe(0x8_0100_0000);
  });

  it("can hold its buffer requests until the AP power state is ON", () => {
    const { ap, cpuRun } = rig({ fw: { buffersAfterApPowerOn: true } });
    cpuRun();
    expect(ap.boot()).toBe(true);
    ap.pump();
    const order = ap.log.seen.map(
      (m) => `${m.ep}:${m.ep === 8 ? bits(m.msg0, 63, 56) : bits(m.msg0, 59, 52)}`,
    );
    expect(order.indexOf("0:11")).toBeLessThan(order.indexOf("1:1"));
    expect(order.slice(order.indexOf("0:11"))).toEqual(["0:11", "1:1", "2:1", "4:1", "8:1", "2:8"]);
  });

  it("reaches AP-allocated buffers through the bus master's IOMMU: the AP must map them", () => {
    const { soc, fw, asc, ap, cpuRun } = rig();
    // A stand-in IOMMU: 16 KiB pages, identity-mapped only where the test says.
    const mapped = new Set<number>();
    asc.dma.attachIommu(
      {
        pageSize: 0x4000,
        translate: (_sid, dva) => (mapped.has(Math.floor(dva / 0x4000)) ? dva : XLATE_FAULT),
      },
      1,
    );
    cpuRun();
    expect(ap.boot()).toBe(true);
    ap.pump();
    const ring = fw.bufferAddress(2);
    fw.log("k", "unmapped");
    ap.pump();
    expect(fw.syslogDropped).toBe(1);
    expect(asc.dma.status).toBe(DMA_STATUS.IOMMU_FAULT);
    mapped.add(Math.floor(ring / 0x4000));
    fw.log("k", "mapped");
    ap.pump();
    const b = new Uint8Array(8);
    soc.memory.readBytes(ring + 0x20, b);
    expect(cstring(b, 0)).toBe("mapped");
    expect(fw.syslogDropped).toBe(1);
  });

  it("reports a syslog ring it cannot write (DMA bus error) and sends no LOG", () => {
    const { soc, fw, ap, cpuRun } = rig({ fw: { syslog: { pages: 1, address: 0x1000_0000 } } });
    cpuRun();
    expect(ap.boot()).toBe(true);
    fw.log("x", "lost");
    ap.pump();
    expect(fw.syslogDropped).toBe(1);
    expect(ap.log.seen.some((m) => m.ep === 2 && bits(m.msg0, 59, 52) === 5)).toBe(false);
    expect(
      soc.trace().some((r) => r.kind === "fault" && r.fault === "rtkit-syslog-dma-error"),
    ).toBe(true);
  });

  it("sends IOReport messages the AP must echo, and refuses a false echo", () => {
    const { fw, ap, mb, cpuRun, soc } = rig();
    expect(fw.ioreport(0x8, 1)).toBe(false); // not running yet
    cpuRun();
    expect(ap.boot()).toBe(true);
    expect(fw.ioreport(0xc, 0x1234)).toBe(true);
    expect(fw.ioreport(0x8)).toBe(true);
    ap.pump();
    expect(fw.ioreportAcks).toBe(2);
    mb.send(4, typed(0x8, 5n));
    soc.run();
    expect(fw.protocolErrors).toBe(1);
    // @ts-expect-error only 0x8 and 0xc are echoed types
    expectCode(() => fw.ioreport(0x5), "EINVAL");
  });
});

describe("RTKit firmware: crashes", () => {
  it("writes a §9.1 crashlog into the crashlog buffer, then sends the crash message and stops reading", () => {
    const { soc, fw, ap, mb, asc, cpuRun } = rig();
    cpuRun();
    expect(ap.boot()).toBe(true);
    ap.pump();
    const lastBefore = soc
      .trace()
      .filter((r) => r.kind === "mbox")
      .at(-1)!;
    const remembered = fw.received + fw.sent;
    const crashAt = soc.nowNs;
    expect(fw.crash("watchdog expired")).toBe(true);
    expect(fw.state).toBe("crashed");
    ap.pump();
    expect(ap.crashed).toBe(true);
    const cl = ap.log.buffers.get(1)!;
    const crashMsg = ap.log.seen.at(-1)!;
    expect(crashMsg).toEqual({ ep: 1, msg0: typed(1, (1n << 44n) | BigInt(cl.addr)) });
    const b = new Uint8Array(cl.size);
    soc.memory.readBytes(cl.addr, b);
    expect([...b.subarray(0, 4)]).toEqual([0x45, 0x48, 0x4c, 0x43]); // "EHLC" in memory
    const log = parseCrashlog(b);
    expect(log.magic).toBe("CLHE");
    expect(log.size).toBeLessThanOrEqual(cl.size);
    expect(log.footer).toBe(true);
    expect(log.sections.map((s) => s.fourcc)).toEqual(["Cver", "Cstr", "Ctim", "Cmbx", "Crg8"]);
    const [cver, cstr, ctim, cmbx, crg8] = log.sections;
    expect(cstring(cver!.payload, 16)).toBe("RTKit-sim 1.0");
    expect(u32(cstr!.payload, 0)).toBe(1);
    expect(cstring(cstr!.payload, 4)).toBe(`watchdog expired\nfirmware panic at ${crashAt} ns`);
    expect(u64(ctim!.payload, 0)).toBe(BigInt(crashAt));
    // Cmbx: the kernel's count is (section size − 28) / 0x18, entries from payload + 28.
    const n = Math.floor((cmbx!.size - 28) / 0x18);
    expect(n).toBe(16);
    const newest = cmbx!.payload.subarray(28 + (n - 1) * 0x18);
    if (lastBefore.kind !== "mbox") throw new Error("no mailbox record");
    // msg0 (u64), msg1 (u64), a µs timestamp, then the model's direction word (1 = A2I).
    expect([u32(newest, 4), u32(newest, 0), u32(newest, 8), u32(newest, 12)]).toEqual([
      lastBefore.msg0Hi,
      lastBefore.msg0Lo,
      lastBefore.msg1,
      0,
    ]);
    expect(u32(newest, 16)).toBe(Math.floor(lastBefore.timeNs / 1000));
    expect(u32(newest, 20)).toBe(lastBefore.direction === "a2i" ? 1 : 0);
    expect(u32(cmbx!.payload, 24)).toBe(remembered % 16); // the ring's next index
    // Crg8: at least 0x350 bytes; EL1h in the PSR; a BRK in the ESR.
    expect(crg8!.size).toBeGreaterThanOrEqual(0x350);
    expect(Number(u64(crg8!.payload, 0x110) & 0xfn)).toBe(5);
    expect(u64(crg8!.payload, 0x340)).toBe(0xf200_0001n);
    expect(fourcc(b, crg8!.offset + crg8!.size)).toBe("CLHE");
    // A crashed firmware reads nothing more: the FIFO keeps what the AP sends; nor does
    // anything it would send (an endpoint's reply, a log line) get out.
    mb.send(0, typed(0xb, PWR.ON));
    const dropped = fw.dropped;
    fw.send(0, 0x00b0_0000, 0x20);
    fw.log("k", "after the crash");
    soc.run();
    expect(asc.a2i.count).toBe(1);
    expect(mb.inbox).toEqual([]);
    expect(fw.dropped).toBe(dropped + 1);
    expect(soc.trace().some((r) => r.kind === "fault" && r.fault === "rtkit-crash")).toBe(true);
  });

  it("damages the crashlog on request so a decoder can be tested", () => {
    const read = (corrupt: "bad-magic" | "too-large" | "zero-section" | "no-footer") => {
      const { soc, fw, ap, cpuRun } = rig();
      cpuRun();
      ap.boot();
      ap.pump();
      fw.crash("x", corrupt);
      const cl = ap.log.buffers.get(1)!;
      const b = new Uint8Array(cl.size);
      soc.memory.readBytes(cl.addr, b);
      return b;
    };
    expect(fourcc(read("bad-magic"), 0)).not.toBe("CLHE");
    expect(u32(read("too-large"), 8)).toBeGreaterThan(0x1000);
    expect(() => parseCrashlog(read("zero-section"))).toThrow(/Cstr .* size 0/);
    const nf = parseCrashlog(read("no-footer"));
    expect(nf.footer).toBe(false);
    expect(nf.sections.map((s) => s.fourcc)).toEqual(["Cver", "Cstr", "Ctim", "Cmbx", "Crg8"]);
  });

  it("just stops when it has no crashlog buffer, and boots again after a CPU reset", () => {
    const { soc, fw, ap, mb, cpuRun } = rig({ fw: { crashlog: null } });
    cpuRun();
    expect(ap.boot()).toBe(true);
    const seen = ap.log.seen.length;
    expect(fw.crash()).toBe(false);
    ap.pump();
    expect(ap.log.seen.length).toBe(seen);
    expect(fw.state).toBe("crashed");
    soc.fabric.write32(BASE + 0x44, 0);
    cpuRun();
    mb.inbox.length = 0;
    expect(mb.next()).toEqual({ ep: 0, msg0: 0x0010_0000_000c_000bn });
  });

  it("crashes at a chosen step or time through soc.faults", () => {
    const { soc, fw, ap, cpuRun } = rig();
    cpuRun();
    expect(ap.boot()).toBe(true);
    const at = soc.stepCount + 3;
    soc.faults.schedule({ step: at }, { kind: "rtkit-crash", target: "iop", reason: "step fault" });
    fw.log("k", "v"); // gives the SoC a few events to run
    ap.pump();
    expect(fw.state).toBe("crashed");
    const rec = soc.trace().find((r) => r.kind === "fault" && r.fault === "inject-rtkit-crash:iop");
    expect(rec?.step).toBe(at);
    expect(ap.crashed).toBe(true);
    const t = rig();
    t.cpuRun();
    t.soc.faults.schedule({ timeNs: 50_000 }, { kind: "rtkit-crash", target: "iop" });
    t.soc.run();
    expect(t.fw.state).toBe("crashed"); // before HELLO: it stops without a log
    expect(t.mb.inbox).toEqual([]);
    expectCode(
      () =>
        t.soc.faults.schedule(
          { step: 1e6 },
          { kind: "rtkit-crash", target: "iop", reason: 5 as unknown as string },
        ),
      "EINVAL",
    );
  });
});

describe("RTKit firmware: silence, stalls and wrong answers", () => {
  function booted(o: RigOptions = {}) {
    const r = rig(o);
    r.cpuRun();
    expect(r.ap.boot()).toBe(true);
    r.ap.pump();
    r.mb.inbox.length = 0;
    return r;
  }

  it("goes silent: reads and ignores everything, answers nothing, then answers again", () => {
    const { soc, fw, mb, asc, expectNext } = booted();
    fw.silence(1_000_000);
    expect(fw.isSilent).toBe(true);
    mb.send(0, typed(0xb, PWR.ON));
    fw.log("k", "swallowed");
    soc.runFor(500_000);
    expect(asc.a2i.count).toBe(0);
    expect(mb.inbox).toEqual([]);
    expect(fw.dropped).toBe(1);
    soc.runFor(600_000);
    expect(fw.isSilent).toBe(false);
    mb.send(0, typed(0xb, PWR.ON));
    expectNext(0, typed(0xb, PWR.ON));
    // Through soc.faults, for good.
    soc.faults.inject({ kind: "rtkit-silence", target: "iop" });
    mb.send(0, typed(0xb, PWR.ON));
    soc.run();
    expect(mb.inbox).toEqual([]);
    fw.resume();
    mb.send(0, typed(0xb, PWR.ON));
    expectNext(0, typed(0xb, PWR.ON));
  });

  it("stalls its mailbox: A2I fills up and the AP sees FULL until the stall ends", () => {
    const { soc, fw, mb, asc } = booted({ fifoDepth: 8 });
    soc.faults.inject({ kind: "rtkit-stall", target: "iop", durationNs: 2_000_000 });
    for (let i = 0; i < 8; i++) expect(mb.send(0, typed(0xb, PWR.ON))).toBe(true);
    expect(mb.send(0, typed(0xb, PWR.ON))).toBe(false);
    soc.runFor(1_000_000);
    expect(asc.a2i.count).toBe(8);
    expect(fw.isStalled).toBe(true);
    soc.run();
    expect(fw.isStalled).toBe(false);
    expect(mb.inbox.map((m) => m.msg0)).toEqual(Array(8).fill(typed(0xb, PWR.ON)));
  });

  it("answers wrongly on request: wrong type, wrong endpoint, out-of-range fields, garbage", () => {
    const { fw, mb, expectNext, soc } = booted();
    const ask = (): void => void mb.send(0, typed(0xb, PWR.ON));
    fw.corrupt("wrong-type");
    ask();
    expectNext(0, typed(0xfb, PWR.ON));
    fw.corrupt("wrong-endpoint");
    ask();
    expectNext(5, typed(0xb, PWR.ON)); // 0..4 and 8 are announced; 5 is not
    soc.faults.inject({ kind: "rtkit-garbage", target: "iop", mode: "out-of-range", count: 2 });
    ask();
    ask();
    expectNext(0, 0x00bf_ffff_ffff_ffffn);
    expectNext(0, 0x00bf_ffff_ffff_ffffn);
    fw.corrupt("random");
    ask();
    const g = mb.next()!;
    expect(g.ep).toBe(0);
    expect(g.msg0).not.toBe(typed(0xb, PWR.ON));
    ask();
    expectNext(0, typed(0xb, PWR.ON)); // back to normal
    expect(
      soc.trace().filter((r) => r.kind === "fault" && r.fault === "rtkit-corrupt-message"),
    ).toHaveLength(5);
  });

  it("damages the HELLO too, so a client's version checks meet out-of-range values", () => {
    const { fw, cpuRun, expectNext } = rig();
    cpuRun(); // a CPU start clears earlier damage orders, so give it after
    fw.corrupt("out-of-range");
    expectNext(0, 0x001f_ffff_ffff_ffffn); // MINVER = MAXVER = 0xffff
  });
});

describe("RTKit firmware: power states", () => {
  it("sleeps on QUIESCED and redoes the handshake and buffer requests on wake (INIT)", () => {
    const { fw, ap, mb, cpuRun, expectNext, soc } = rig();
    cpuRun();
    expect(ap.boot()).toBe(true);
    ap.pump();
    mb.inbox.length = 0;
    mb.send(0, typed(0xb, PWR.QUIESCED));
    expectNext(0, typed(0xb, PWR.QUIESCED));
    mb.send(0, typed(6, PWR.QUIESCED));
    expectNext(0, typed(7, PWR.QUIESCED));
    expect(fw.state).toBe("asleep");
    expect(fw.bufferAddress(2)).toBe(-1);
    mb.send(0, typed(6, PWR.INIT)); // apple_rtkit_wake
    const again = new ApRtkit(mb, 0x8_0200_0000);
    expect(again.boot()).toBe(true);
    expect(again.log.seen[0]).toEqual({ ep: 0, msg0: 0x0010_0000_000c_000bn });
    again.pump();
    expect(fw.bufferAddress(2)).toBe(again.log.buffers.get(2)!.addr);
    expect(again.log.iopPower).toBe(PWR.ON);
    soc.run();
  });

  it("idles and resumes without a new handshake, and refuses unknown states with the current one", () => {
    const { fw, ap, mb, cpuRun, expectNext } = rig();
    cpuRun();
    ap.boot();
    ap.pump();
    mb.inbox.length = 0;
    mb.send(0, typed(0xb, PWR.IDLE));
    expectNext(0, typed(0xb, PWR.IDLE));
    mb.send(0, typed(6, PWR.IDLE));
    expectNext(0, typed(7, PWR.IDLE));
    expect(fw.iopPowerState).toBe(PWR.IDLE);
    mb.send(0, typed(6, PWR.INIT));
    expectNext(0, typed(7, PWR.ON));
    mb.send(0, typed(6, 0x123));
    expectNext(0, typed(7, PWR.ON));
    expect(fw.protocolErrors).toBe(1);
    expect(fw.state).toBe("running");
  });

  it("powers off for good on OFF; only a CPU reset brings it back", () => {
    const { fw, ap, mb, cpuRun, expectNext, asc, soc } = rig();
    cpuRun();
    ap.boot();
    ap.pump();
    mb.inbox.length = 0;
    mb.send(0, typed(6, PWR.OFF));
    expectNext(0, typed(7, PWR.OFF));
    expect(fw.state).toBe("halted");
    mb.send(0, typed(6, PWR.INIT));
    soc.run();
    expect(asc.a2i.count).toBe(1);
    soc.fabric.write32(BASE + 0x44, 0);
    cpuRun();
    expectNext(0, 0x0010_0000_000c_000bn);
  });

  it("wakes a firmware the bootloader left running only when asked", () => {
    const { fw, mb, soc, expectNext } = rig({ running: true });
    expect(fw.state).toBe("asleep");
    soc.run();
    expect(mb.inbox).toEqual([]);
    mb.send(0, typed(0xb, PWR.ON)); // answered even asleep
    expectNext(0, typed(0xb, PWR.ON));
    mb.send(0, typed(6, PWR.ON));
    expectNext(0, 0x0010_0000_000c_000bn);
  });
});

describe("RTKit firmware: application endpoints", () => {
  it("plugs in handlers: STARTEP starts them, messages reach them, replies go out on their endpoint", () => {
    const echo = new Echo(0x30);
    const { fw, ap, mb, cpuRun, expectNext, soc } = rig({ endpoints: { 48: echo } });
    echo.fw = fw;
    cpuRun();
    expect(ap.boot()).toBe(true);
    expect(ap.log.endpoints.has(0x30)).toBe(true);
    ap.pump();
    mb.inbox.length = 0;
    mb.send(0x30, 41n); // not started yet
    soc.run();
    expect(fw.protocolErrors).toBe(1);
    mb.send(0, typed(5, (0x30n << 32n) | 2n));
    mb.send(0x30, (7n << 32n) | 41n);
    expectNext(0x30, (7n << 32n) | 42n);
    mb.send(0, typed(5, (0x30n << 32n) | 1n)); // m1n1's stop
    soc.run();
    expect(echo.calls[0]).toBe("reset"); // the session starts clean
    expect(echo.calls.filter((c) => c !== "reset")).toEqual(["start", "rx 7:41", "stop"]);
    expect(fw.isStarted(0x30)).toBe(false);
  });

  it("checks endpoint registrations", () => {
    const { fw } = rig();
    expectCode(() => fw.addEndpoint(0x1f, new Echo(0x1f)), "EINVAL");
    fw.addEndpoint(0x20, new Echo(0x20));
    expectCode(() => fw.addEndpoint(0x20, new Echo(0x20)), "EBUSY");
    // @ts-expect-error a handler needs every RtkitEndpoint method
    expectCode(() => fw.addEndpoint(0x21, { start() {} }), "EINVAL");
    expectCode(() => fw.send(0x100, 0, 0), "EINVAL");
    expectCode(() => fw.send(0, -1, 0), "EINVAL");
  });
});

describe("RTKit firmware: options and determinism", () => {
  it("validates every option before attaching to the ASC", () => {
    const soc = new Soc();
    const asc = new AscMailbox(soc, { name: "iop", base: BASE, irq: IRQ });
    const bad: RtkitFirmwareOptions[] = [
      { minVersion: 12, maxVersion: 11 },
      { systemEndpoints: [0x20] },
      { systemEndpoints: [1, 1] },
      { syslog: { pages: 0 } },
      { syslog: { pages: 1, address: 0x1234 } },
      { syslogEntries: 64, syslogMessageSize: 0xff, syslog: { pages: 1 } },
      { oslog: { size: 0x10_0000 } },
      { latencyNs: -1 },
      { buffersAfterApPowerOn: "yes" as unknown as boolean },
    ];
    for (const o of bad) expectCode(() => new RtkitFirmware(asc, o), "EINVAL");
    const fw = new RtkitFirmware(asc);
    expect(fw.state).toBe("off");
    expectCode(() => new RtkitFirmware(asc), "EBUSY");
  });

  it("gives the same trace digest for the same seed and scenario", () => {
    const scenario = (seed: number): string => {
      const { soc, fw, ap, cpuRun } = rig({ seed });
      cpuRun();
      ap.boot();
      fw.corrupt("random", 2);
      fw.log("a", "b");
      fw.ioreport(0x8, 3);
      ap.pump();
      soc.faults.schedule({ step: soc.stepCount + 5 }, { kind: "rtkit-crash", target: "iop" });
      fw.log("c", "d");
      ap.pump();
      return soc.traceDigest();
    };
    expect(scenario(7)).toBe(scenario(7));
    expect(scenario(7)).not.toBe(scenario(8));
  });
});
