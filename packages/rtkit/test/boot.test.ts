import { DevrefError } from "@devref/raw-device";
import {
  encodeEpmap,
  encodeHello,
  encodeIopPowerStateAck,
  encodeSetApPowerState,
  PWR_STATE_ON,
} from "@devref/rtkit";
import { describe, expect, it } from "vitest";
import { booted, makeRig, outcome } from "./rig.js";

describe("boot (rtkit.md §5.2, §5.3, §6)", () => {
  it("sends what the kernel sends, in the kernel's order", async () => {
    const rig = await booted();
    expect(rig.fw.trace()).toEqual([
      "ep 0x00 mgmt HELLO_REPLY min 12 max 12",
      "ep 0x00 mgmt EPMAP_REPLY base 0 more",
      "ep 0x00 mgmt EPMAP_REPLY base 1 last",
      "ep 0x00 mgmt STARTEP ep 0x01 start",
      "ep 0x00 mgmt STARTEP ep 0x02 start",
      "ep 0x00 mgmt STARTEP ep 0x03 start",
      "ep 0x00 mgmt STARTEP ep 0x04 start",
      "ep 0x00 mgmt STARTEP ep 0x08 start",
      "ep 0x01 crashlog BUFFER_REPLY 1 pages (0x1000 bytes) at 0x100000000",
      "ep 0x02 syslog BUFFER_REPLY 2 pages (0x2000 bytes) at 0x100008000",
      "ep 0x04 ioreport BUFFER_REPLY 1 pages (0x1000 bytes) at 0x100010000",
      "ep 0x08 oslog BUFFER_REPLY 0x2000 bytes at 0x100018000",
      "ep 0x00 mgmt SET_AP_PWR_STATE ON (0x20)",
    ]);
    expect(rig.rtk.isRunning).toBe(true);
    expect(rig.rtk.version).toBe(12);
    expect([rig.rtk.iopPowerState, rig.rtk.apPowerState]).toEqual([PWR_STATE_ON, PWR_STATE_ON]);
    expect(rig.logs.at("info")).toEqual(["RTKit: Initializing (protocol version 12)"]);
    expect(rig.fw.sent.every((s) => !s.atomic)).toBe(true);
  });

  it("returns at once, sending nothing, when already running", async () => {
    const rig = await booted();
    const before = rig.fw.sent.length;
    await rig.rtk.boot();
    expect(rig.fw.sent.length).toBe(before);
  });

  it("works when the firmware finished its handshake before boot() was called", async () => {
    const rig = makeRig();
    rig.fw.start();
    await rig.rtk.settled();
    expect(rig.rtk.isRunning).toBe(false);
    await rig.rtk.boot();
    expect(rig.rtk.isRunning).toBe(true);
  });

  it("negotiates min(12, max) within 11..12", async () => {
    for (const [min, max, want] of [
      [11, 12, 12],
      [11, 11, 11],
      [10, 15, 12],
      [12, 11, 11], // an inverted range: the kernel checks neither against the other
    ] as const) {
      const rig = makeRig({ minVer: min, maxVer: max });
      rig.fw.start();
      await rig.rtk.settled();
      expect(rig.fw.trace()[0]).toBe(`ep 0x00 mgmt HELLO_REPLY min ${want} max ${want}`);
      expect(rig.rtk.version).toBe(want);
    }
  });

  it("aborts the boot with EINVAL and no reply for a version range it cannot speak", async () => {
    for (const [min, max, line] of [
      [13, 15, "err RTKit: Firmware min version 13 is too new"],
      [5, 10, "err RTKit: Firmware max version 10 is too old"],
    ] as const) {
      const rig = makeRig({ minVer: min, maxVer: max });
      const boot = rig.rtk.boot();
      rig.fw.start();
      expect(await outcome(boot, rig.rtk)).toBe("EINVAL");
      expect(rig.fw.sent).toEqual([]);
      expect(rig.logs.lines).toContain(line);
      expect(rig.rtk.version).toBe(0);
    }
  });

  it("accumulates EPMAP bits whatever the order, replying MORE or LAST per message", async () => {
    const rig = makeRig();
    rig.fw.react = false;
    rig.rtk.receive(0, encodeHello({ minVer: 11, maxVer: 12 }));
    rig.rtk.receive(0, encodeEpmap({ base: 1, bitmap: 0x1, last: false }));
    rig.rtk.receive(0, encodeEpmap({ base: 1, bitmap: 0x1, last: false })); // duplicate
    rig.rtk.receive(0, encodeEpmap({ base: 7, bitmap: 0x8000_0000, last: false }));
    rig.rtk.receive(0, encodeEpmap({ base: 0, bitmap: 0x407, last: true })); // 0, 1, 2, 0x0a
    await rig.rtk.settled();
    expect(rig.fw.trace()).toEqual([
      "ep 0x00 mgmt HELLO_REPLY min 12 max 12",
      "ep 0x00 mgmt EPMAP_REPLY base 1 more",
      "ep 0x00 mgmt EPMAP_REPLY base 1 more",
      "ep 0x00 mgmt EPMAP_REPLY base 7 more",
      "ep 0x00 mgmt EPMAP_REPLY base 0 last",
      "ep 0x00 mgmt STARTEP ep 0x01 start",
      "ep 0x00 mgmt STARTEP ep 0x02 start",
    ]);
    expect(rig.logs.lines).toContain("warn RTKit: Unknown system endpoint: 0x0a");
    for (const ep of [0, 1, 2, 0x0a, 0x20, 0xff]) expect(rig.rtk.hasEndpoint(ep)).toBe(true);
    expect(rig.rtk.hasEndpoint(3)).toBe(false);
  });

  it("handles IOP and AP power acknowledgements that nobody asked for, as state", async () => {
    const rig = makeRig();
    rig.rtk.receive(0, encodeIopPowerStateAck({ state: 0x220 }));
    rig.rtk.receive(0, encodeSetApPowerState({ state: 0x20 }));
    await rig.rtk.settled();
    // Only the low byte counts: INIT (0x220) is "on".
    expect(rig.rtk.isRunning).toBe(true);
    expect(rig.logs.lines).toContain("dbg RTKit: IOP power state transition: 0x0 -> 0x220");
  });

  it("warns about unknown management types and sends nothing", async () => {
    const rig = makeRig();
    rig.rtk.receive(0, (3n << 52n) | 0x1234n);
    await rig.rtk.settled();
    expect(rig.logs.lines).toEqual([
      "warn RTKit: unknown management message: 0x30000000001234 (type: 0x03)",
    ]);
    expect(rig.fw.sent).toEqual([]);
  });
});

describe("the receive path (rtkit.md §13)", () => {
  it("warns about an undiscovered endpoint and still delivers the message", async () => {
    const rig = makeRig();
    rig.rtk.receive(0x30, 0x1234n);
    await rig.rtk.settled();
    expect(rig.logs.lines).toContain("warn RTKit: Message to undiscovered endpoint 0x30");
    expect(rig.app).toEqual([[0x30, 0x1234n]]);
  });

  it("handles queued messages one at a time in arrival order, across endpoints", async () => {
    const order: string[] = [];
    const rig = makeRig(
      {},
      { recvMessage: (ep, m) => order.push(`app ${ep} ${m}`) },
      {
        log: (_l, t) => {
          if (t.startsWith("RTKit: Unknown syslog")) order.push("syslog");
        },
      },
    );
    rig.rtk.receive(0x20, 1n);
    rig.rtk.receive(2, 0x7n << 52n);
    rig.rtk.receive(0x21, 2n);
    expect(order).toEqual([]); // nothing runs inside receive()
    await rig.rtk.settled();
    expect(order).toEqual(["app 32 1", "syslog", "app 33 2"]);
  });

  it("gives application messages to recvMessageEarly first, which may overtake the queue", async () => {
    const order: string[] = [];
    const rig = makeRig(
      {},
      {
        recvMessage: (ep, m) => order.push(`late ${ep} ${m}`),
        recvMessageEarly: (ep, m) => {
          order.push(`early ${ep} ${m}`);
          return m === 2n;
        },
      },
    );
    rig.rtk.receive(0x20, 1n);
    rig.rtk.receive(0x20, 2n);
    rig.rtk.receive(2, 0x7n << 52n); // system endpoints never go early
    await rig.rtk.settled();
    expect(order).toEqual(["early 32 1", "early 32 2", "late 32 1"]);
  });

  it("queues a message whose recvMessageEarly throws, and logs it", async () => {
    const rig = makeRig(
      {},
      {
        recvMessageEarly: () => {
          throw new Error("driver bug");
        },
      },
    );
    rig.rtk.receive(0x20, 5n);
    await rig.rtk.settled();
    expect(rig.app).toEqual([[0x20, 5n]]);
    expect(rig.logs.lines).toContain("err RTKit: ops.recvMessageEarly threw: driver bug");
  });

  it("warns about application messages without recvMessage (EP in decimal, as the kernel)", async () => {
    const rig = makeRig({}, { recvMessage: undefined as never });
    rig.rtk.receive(0x20, 0xabn);
    await rig.rtk.settled();
    expect(rig.logs.lines).toContain("warn Received unexpected message to EP32: ab");
  });

  it("sends messages to endpoint 3 and other unhandled system endpoints to the warning", async () => {
    const rig = makeRig();
    rig.rtk.receive(3, 0x1n);
    rig.rtk.receive(0x0a, 0x2n);
    await rig.rtk.settled();
    expect(rig.logs.at("warn")).toContain("RTKit: message to unknown endpoint 03: 1");
    expect(rig.logs.at("warn")).toContain("RTKit: message to unknown endpoint 0a: 2");
  });

  it("keeps going when recvMessage throws", async () => {
    let n = 0;
    const rig = makeRig(
      {},
      {
        recvMessage: () => {
          n++;
          if (n === 1) throw new DevrefError("EIO", "first");
        },
      },
    );
    rig.rtk.receive(0x20, 1n);
    rig.rtk.receive(0x20, 2n);
    await rig.rtk.settled();
    expect(n).toBe(2);
    expect(rig.logs.has("ops.recvMessage threw: EIO: first")).toBe(true);
  });

  it("refuses invalid arguments before anything is queued", async () => {
    const rig = makeRig();
    for (const [ep, m] of [
      [256, 0n],
      [-1, 0n],
      [1.5, 0n],
      ["2", 0n],
      [2, -1n],
      [2, 2n ** 64n],
      [2, 5],
    ] as const) {
      expect(() => rig.rtk.receive(ep as number, m as bigint)).toThrow(DevrefError);
    }
    await rig.rtk.settled();
    expect(rig.logs.lines).toEqual([]);
  });

  it("drops messages once the queue holds 65536, with an error", async () => {
    let ran = 0;
    const rig = makeRig({}, { recvMessage: () => ran++ }, { schedule: () => {} });
    for (let i = 0; i < 65_540; i++) rig.rtk.receive(0x20, 1n);
    expect(rig.logs.at("err").filter((l) => l.includes("work queue full"))).toHaveLength(4);
    expect(ran).toBe(0);
  });

  it("runs the queue through options.schedule", async () => {
    const runs: (() => void)[] = [];
    const rig = makeRig({}, {}, { schedule: (run) => runs.push(run) });
    rig.rtk.receive(0x20, 1n);
    rig.rtk.receive(0x20, 2n);
    expect(runs).toHaveLength(1);
    expect(rig.app).toEqual([]);
    runs[0]!();
    expect(rig.app).toEqual([
      [0x20, 1n],
      [0x20, 2n],
    ]);
  });
});

describe("startEp and sendMessage (rtkit.md §15)", () => {
  it("starts discovered endpoints; application ones only while running", async () => {
    const rig = makeRig();
    rig.rtk.receive(0, encodeEpmap({ base: 1, bitmap: 1, last: false }));
    await rig.rtk.settled();
    expect(await outcome(rig.rtk.startEp(0x21), rig.rtk)).toBe("EINVAL"); // not discovered
    expect(await outcome(rig.rtk.startEp(0x20), rig.rtk)).toBe("EINVAL"); // not running
    const done = await booted();
    await done.rtk.startEp(0x20);
    expect(done.fw.trace().at(-1)).toBe("ep 0x00 mgmt STARTEP ep 0x20 start");
  });

  it("sends to application endpoints only while running, with the atomic flag passed on", async () => {
    const rig = makeRig();
    expect(await outcome(rig.rtk.sendMessage(0x20, 1n), rig.rtk)).toBe("EINVAL");
    expect(rig.logs.lines).toContain(
      "warn RTKit: Endpoint 0x20 is not running, cannot send message",
    );
    const done = await booted();
    await done.rtk.sendMessage(0x20, 0xfeedn, { atomic: true });
    await done.rtk.sendMessage(0x21, 0xbeefn);
    expect(done.fw.appMessages).toEqual([
      { ep: 0x20, msg0: 0xfeedn, atomic: true },
      { ep: 0x21, msg0: 0xbeefn, atomic: false },
    ]);
    // System endpoints need no running RTKit (the kernel checks only ep >= 0x20).
    await rig.rtk.sendMessage(2, 0x5n << 52n);
  });

  it("rejects with the transport's error when the mailbox refuses", async () => {
    const rig = await booted();
    rig.fw.failSends = { code: "ETIMEDOUT", count: 1 };
    await expect(rig.rtk.sendMessage(0x20, 1n)).rejects.toMatchObject({ code: "ETIMEDOUT" });
    // startEp returns 0 even when its STARTEP could not be sent (the kernel ignores it).
    rig.fw.failSends = { code: "ETIMEDOUT", count: 1 };
    await rig.rtk.startEp(0x20);
    expect(rig.logs.lines).toContain("err RTKit: Failed to send management message: -110");
  });

  it("wraps a transport that throws something else as EIO", async () => {
    const rig = makeRig(
      {},
      {},
      {
        transport: {
          send: () => {
            throw new TypeError("oops");
          },
        },
      },
    );
    await expect(rig.rtk.sendMessage(2, 1n)).rejects.toMatchObject({ code: "EIO" });
  });

  it("validates every argument before sending", async () => {
    const rig = await booted();
    const n = rig.fw.sent.length;
    for (const call of [
      () => rig.rtk.sendMessage(0x100, 1n),
      () => rig.rtk.sendMessage(0x20, -1n),
      () => rig.rtk.sendMessage(0x20, 1 as never),
      () => rig.rtk.sendMessage(0x20, 1n, { atomic: "yes" as never }),
      () => rig.rtk.sendMessage(0x20, 1n, null as never),
      () => rig.rtk.startEp(-1),
    ]) {
      const e = await call().catch((x: unknown) => x);
      expect(DevrefError.is(e, "EINVAL")).toBe(true);
    }
    expect(rig.fw.sent.length).toBe(n);
    expect(() => rig.rtk.hasEndpoint(300)).toThrow(/ep must be/);
  });

  it("passes poll() to the transport when it has one", async () => {
    let polls = 0;
    const rig = makeRig(
      {},
      {},
      {
        transport: {
          send: () => {},
          poll: () => {
            polls++;
          },
        },
      },
    );
    await rig.rtk.poll();
    expect(polls).toBe(1);
    const plain = makeRig();
    await plain.rtk.poll();
  });
});
