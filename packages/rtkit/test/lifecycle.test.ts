import { DevrefError, holders, refcountOf, withBorrow } from "@devref/raw-device";
import { createRtkit, type Rtkit } from "@devref/rtkit";
import { describe, expect, it, vi } from "vitest";
import { makeDevice } from "./device.js";
import { ScriptedFirmware } from "./firmware.js";
import { TestDma } from "./memory.js";
import { booted, makeRig, outcome } from "./rig.js";
import { ManualTimers } from "./timers.js";

const labels = (dev: Parameters<typeof holders>[0]) => holders(dev).map((h) => h.label);

describe("the device reference", () => {
  it("is an owned reference labelled 'rtkit' while the instance lives, put by free()", () => {
    const { dev } = makeDevice("smc");
    const count = refcountOf(dev);
    const rtk = createRtkit(dev, { transport: { send: () => {} } });
    expect(labels(dev)).toEqual(["creator", "rtkit"]);
    expect(refcountOf(dev)).toBe(count + 1);
    expect(rtk.deviceName).toBe("smc");
    rtk.free();
    expect(labels(dev)).toEqual(["creator"]);
    expect(refcountOf(dev)).toBe(count);
    rtk.free(); // twice is nothing
    expect(refcountOf(dev)).toBe(count);
  });

  it("is put by `using` at the end of the block", () => {
    const { dev } = makeDevice("ans");
    {
      using rtk = createRtkit(dev, { transport: { send: () => {} } });
      expect(rtk.isFreed).toBe(false);
      expect(labels(dev)).toContain("rtkit");
    }
    expect(labels(dev)).toEqual(["creator"]);
  });

  it("outlives the borrow it was created from, and keeps the device alive after its creator lets go", async () => {
    const { dev, releases } = makeDevice("dcp");
    const fw = new ScriptedFirmware();
    const rtk: Rtkit = withBorrow(dev, (d) =>
      createRtkit(d, { transport: fw.transport, dma: new TestDma(), timers: new ManualTimers() }),
    );
    fw.attach(rtk);
    dev.put();
    expect(releases()).toBe(0);
    fw.start();
    await rtk.boot();
    expect(rtk.isRunning).toBe(true);
    rtk.free();
    expect(releases()).toBe(1);
  });

  it("takes nothing when the options are invalid, and names the option", () => {
    const { dev } = makeDevice("x");
    const bad: [unknown, string][] = [
      [undefined, "options"],
      [{}, "options.transport"],
      [{ transport: {} }, "options.transport.send"],
      [{ transport: { send: () => {} }, ops: { recvMessage: 5 } }, "options.ops.recvMessage"],
      [{ transport: { send: () => {} }, dma: { alloc: () => null } }, "options.dma.free"],
      [
        { transport: { send: () => {} }, timers: { setTimeout: () => 1 } },
        "options.timers.clearTimeout",
      ],
      [{ transport: { send: () => {} }, log: "console" }, "options.log"],
      [{ transport: { send: () => {} }, schedule: 1 }, "options.schedule"],
    ];
    for (const [options, param] of bad) {
      try {
        createRtkit(dev, options as never);
        expect.unreachable();
      } catch (e) {
        expect(DevrefError.is(e, "EINVAL")).toBe(true);
        expect((e as DevrefError).details.parameter).toBe(param);
      }
    }
    expect(() => createRtkit({} as never, { transport: { send: () => {} } })).toThrow(
      /device must be a RawDevice/,
    );
    expect(labels(dev)).toEqual(["creator"]);
  });

  it("refuses a dead handle with ENODEV", () => {
    const { dev } = makeDevice("y");
    const kept = dev.get("kept");
    kept.put();
    expect(() => createRtkit(kept, { transport: { send: () => {} } })).toThrow(/ENODEV/);
    expect(labels(dev)).toEqual(["creator"]);
  });
});

describe("free()", () => {
  it("ends calls blocked on a completion with ESHUTDOWN, and every later call", async () => {
    const rig = makeRig();
    const boot = rig.rtk.boot();
    await rig.rtk.settled();
    rig.rtk.free();
    expect(await outcome(boot, rig.rtk)).toBe("ESHUTDOWN");
    expect(rig.timers.count).toBe(0);
    for (const call of [
      () => rig.rtk.boot(),
      () => rig.rtk.reinit(),
      () => rig.rtk.sendMessage(2, 1n),
      () => rig.rtk.startEp(2),
    ]) {
      expect(await outcome(call(), rig.rtk)).toBe("ESHUTDOWN");
    }
    expect(rig.rtk.isRunning).toBe(false);
    rig.rtk.receive(0x20, 1n); // dropped: the mailbox is stopped for good
    await rig.rtk.settled();
    expect(rig.app).toEqual([]);
  });

  it("runs what is queued first (destroy_workqueue drains)", async () => {
    const rig = makeRig();
    rig.rtk.receive(0x20, 1n);
    rig.rtk.free();
    expect(rig.app).toEqual([[0x20, 1n]]);
  });

  it("from inside a handler drops the rest of the queue and frees the buffers", async () => {
    const rig = await booted(
      {},
      {
        recvMessage: (_ep, m) => {
          seen.push(m);
          if (m === 1n) rig.rtk.free();
        },
      },
    );
    const seen: bigint[] = [];
    rig.rtk.receive(0x20, 1n);
    rig.rtk.receive(0x20, 2n);
    await rig.rtk.settled();
    expect(seen).toEqual([1n]);
    expect(rig.dma.live).toBe(0);
    expect(rig.rtk.isFreed).toBe(true);
  });
});

describe("settled()", () => {
  it("waits for continuations made runnable by a message", async () => {
    const rig = makeRig();
    rig.fw.sync = false;
    const steps: string[] = [];
    rig.rtk.boot().then(() => steps.push("booted"));
    rig.fw.start();
    for (let i = 0; i < 10 && !rig.rtk.isRunning; i++) {
      rig.fw.flush();
      await rig.rtk.settled();
    }
    expect(steps).toEqual(["booted"]);
  });

  it("resolves at once with nothing to do", async () => {
    const rig = makeRig();
    await rig.rtk.settled();
    await rig.rtk.settled();
  });
});

describe("the default log", () => {
  it("prints '<level> <device>: <text>' on the console at the kernel's levels, without debug", async () => {
    const { dev } = makeDevice("mtp");
    const out = vi.spyOn(console, "log").mockImplementation(() => {});
    const err = vi.spyOn(console, "error").mockImplementation(() => {});
    try {
      const rtk = createRtkit(dev, { transport: { send: () => {} } });
      rtk.receive(0, (1n << 52n) | (12n << 16n) | 11n); // HELLO: info
      rtk.receive(0x44, 1n); // undiscovered: warn
      await rtk.settled();
      expect(out.mock.calls).toEqual([["info mtp: RTKit: Initializing (protocol version 12)"]]);
      expect(err.mock.calls[0]).toEqual(["warn mtp: RTKit: Message to undiscovered endpoint 0x44"]);
      rtk.free();
    } finally {
      out.mockRestore();
      err.mockRestore();
    }
  });

  it("survives a log sink that throws", async () => {
    const rig = makeRig(
      {},
      {},
      {
        log: () => {
          throw new Error("sink");
        },
      },
    );
    rig.rtk.receive(0x44, 1n);
    await rig.rtk.settled();
    expect(rig.app).toEqual([[0x44, 1n]]);
  });
});
