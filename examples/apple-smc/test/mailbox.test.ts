// The ASC mailbox transport on its own, in a bare driver on the SMC node: order kept
// through a full FIFO, the send-empty interrupt held only while something waits, the
// 500 ms limit on virtual time, a bounded backlog, removal and unbinding.
import { definePlatformDriver, PlatformBus } from "@devref/bus";
import { DevrefError } from "@devref/raw-device";
import {
  createReferenceSoc,
  describeSoc,
  REFERENCE_MAP as M,
  type MboxTraceRecord,
} from "@devref/sim";
import { describe, expect, it } from "vitest";
import { AscMailboxChannel, settleFor, settleUntil } from "../src/index.js";

/** SET_IOP_PWR_STATE(INIT): wakes the sleeping firmware, which answers with HELLO. */
const WAKE = 0x0060_0000_0000_0220n;

function rig(fifoDepth = 1) {
  const { soc, smc } = createReferenceSoc({ seed: 3, blk: false, smc: { fifoDepth } });
  const platform = new PlatformBus({ machine: soc.machine });
  const inbox: [number, bigint][] = [];
  const logs: string[] = [];
  let channel: AscMailboxChannel | null = null;
  const driver = definePlatformDriver({
    name: "mbox-test",
    ofMatchTable: [{ compatible: "apple,smc" }],
    probe: (dev) => {
      channel = new AscMailboxChannel(dev, {
        regs: dev.ioremapResource(2),
        sendEmptyIrq: 0,
        recvNotEmptyIrq: 3,
        timers: soc.events,
        receive: (ep, msg0) => inbox.push([ep, msg0]),
        log: (_level, text) => logs.push(text),
        backlog: 2,
      });
      return {};
    },
  });
  platform.registerDriver(driver);
  const fw = describeSoc(soc, { platform, mailbox: "inline" });
  const toIop = () =>
    soc
      .trace()
      .filter((r): r is MboxTraceRecord => r.kind === "mbox" && r.direction === "a2i")
      .map((r) => (BigInt(r.msg0Hi) << 32n) | BigInt(r.msg0Lo));
  return { soc, parts: smc!, platform, fw, inbox, logs, toIop, channel: () => channel! };
}

describe("AscMailboxChannel", () => {
  it("keeps order through a full FIFO and holds send-empty only while it waits", async () => {
    const { soc, parts, inbox, toIop, channel } = rig();
    await soc.settle();
    const ch = channel();
    parts.firmware.stall(); // reads nothing until resumed
    ch.send(0, WAKE); // fills the one-message FIFO
    ch.send(0x20, 0x1n);
    ch.send(0x20, 0x2n);
    expect(ch.backlog).toBe(2);
    expect(ch.waitingForRoom).toBe(true);
    expect(soc.irq.isConnected(M.SMC_IRQ)).toBe(true);
    expect(() => ch.send(0x20, 0x3n)).toThrow(/already wait for room/);
    const room = ch.waitForRoom();
    let roomy = false;
    room.then(() => {
      roomy = true;
    });
    await settleFor(soc, 100_000_000);
    expect(roomy).toBe(false);
    parts.firmware.resume();
    await settleUntil(soc, room);
    expect(toIop()).toEqual([WAKE, 0x1n, 0x2n]);
    expect(ch.backlog).toBe(0);
    expect(ch.waitingForRoom).toBe(false);
    expect(soc.irq.isConnected(M.SMC_IRQ)).toBe(false);
    await soc.settle();
    expect(inbox[0]).toEqual([0, 0x0010_0000_000c_000bn]); // HELLO
    expect(ch.sent).toBe(3);
  });

  it("gives up after 500 ms of virtual time: ETIMEDOUT, the backlog dropped, the interrupt let go", async () => {
    const { soc, parts, logs, toIop, channel } = rig();
    await soc.settle();
    const ch = channel();
    parts.firmware.stall();
    ch.send(0, WAKE);
    ch.send(0x20, 0x1n);
    const t0 = soc.nowNs;
    const err = await settleUntil(soc, ch.waitForRoom()).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(DevrefError);
    expect((err as DevrefError).code).toBe("ETIMEDOUT");
    expect(soc.nowNs - t0).toBe(500_000_000);
    expect(logs).toContain(
      "mailbox: no room in A2I for 500 ms; 1 waiting message dropped (-ETIMEDOUT)",
    );
    expect(ch.backlog).toBe(0);
    expect(soc.irq.isConnected(M.SMC_IRQ)).toBe(false);
    parts.firmware.resume();
    await soc.settle();
    expect(toIop()).toEqual([WAKE]); // the dropped one never went
  });

  it("a removed coprocessor reads all-ones: ENODEV for senders and waiters", async () => {
    const { soc, parts, logs, channel } = rig(4);
    await soc.settle();
    const ch = channel();
    parts.firmware.stall();
    for (let i = 0; i < 4; i++) ch.send(0x20, BigInt(i));
    ch.send(0x20, 9n); // waits in the backlog
    const room = ch.waitForRoom();
    room.catch(() => {});
    soc.faults.inject({ kind: "unplug", target: "smc" });
    expect(ch.checkGone()).toBe(true);
    await expect(room).rejects.toMatchObject({ code: "ENODEV" });
    expect(() => ch.send(0x20, 1n)).toThrow(/gone/);
    expect(ch.isGone).toBe(true);
    expect(logs).toContain("mailbox: registers read all-ones: the coprocessor is gone");
    expect(soc.irq.isConnected(M.SMC_IRQ)).toBe(false);
  });

  it("unbinding fails whoever waits and refuses later sends with ENODEV", async () => {
    const { soc, parts, platform, fw, channel } = rig();
    await soc.settle();
    const ch = channel();
    parts.firmware.stall();
    ch.send(0, WAKE);
    ch.send(0x20, 1n);
    const room = ch.waitForRoom();
    room.catch(() => {});
    fw.remove();
    await expect(room).rejects.toMatchObject({ code: "ENODEV" });
    expect(() => ch.send(0, WAKE)).toThrow(/no longer bound/);
    await expect(ch.waitForRoom()).rejects.toMatchObject({ code: "ENODEV" });
    expect(soc.aic.interrupts()).toEqual([]);
    soc.runFor(1_000_000_000); // its timer is gone too
    expect(platform.deviceNames()).toEqual([]);
  });
});
