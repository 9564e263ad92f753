import {
  PWR_STATE_IDLE,
  PWR_STATE_INIT,
  PWR_STATE_OFF,
  PWR_STATE_ON,
  PWR_STATE_QUIESCED,
} from "@devref/rtkit";
import { describe, expect, it } from "vitest";
import { booted, makeRig, outcome, type Rig } from "./rig.js";

const states = (rig: Rig) => [rig.rtk.iopPowerState, rig.rtk.apPowerState];
const mark = (rig: Rig) => rig.fw.sent.length;
const since = (rig: Rig, n: number) => rig.fw.trace().slice(n);

describe("completion timeouts (rtkit.md §12)", () => {
  it("fails boot with ETIME after 1000 ms of a silent firmware, on the injected clock", async () => {
    const rig = makeRig();
    const boot = rig.rtk.boot();
    let result = "pending";
    boot.catch((e: { code: string }) => {
      result = e.code;
    });
    await rig.rtk.settled(); // a call blocked on a completion does not hold settled() back
    expect(result).toBe("pending");
    rig.timers.advance(999);
    await rig.rtk.settled();
    expect(result).toBe("pending");
    rig.timers.advance(1);
    await rig.rtk.settled();
    expect(result).toBe("ETIME");
    expect(rig.timers.count).toBe(0);
  });

  it("waits 1000 ms for each completion in turn: EPMAP, then the IOP's power-on", async () => {
    const rig = makeRig({ autoIopAck: false });
    const boot = rig.rtk.boot();
    rig.fw.start();
    let result = "pending";
    boot.catch((e: { code: string; message: string }) => {
      result = `${e.code} ${e.message}`;
    });
    await rig.rtk.settled();
    rig.timers.advance(1000);
    await rig.rtk.settled();
    expect(result).toContain("ETIME");
    expect(result).toContain("the IOP power state acknowledgement");
  });

  it("fails with ETIME when the AP power state is never acknowledged", async () => {
    const rig = makeRig({ apAnswer: "silent" });
    const boot = rig.rtk.boot();
    rig.fw.start();
    await rig.rtk.settled();
    rig.timers.advance(1000);
    expect(await outcome(boot, rig.rtk)).toBe("ETIME");
    expect(rig.rtk.isRunning).toBe(false);
  });

  it("fails with EINVAL when the firmware acknowledges another state", async () => {
    const rig = makeRig({ apAnswer: PWR_STATE_QUIESCED });
    const boot = rig.rtk.boot();
    rig.fw.start();
    const e = await boot.catch((x: { code: string; message: string }) => x);
    expect(e).toMatchObject({ code: "EINVAL" });
    expect((e as { message: string }).message).toContain(
      "asked for AP power state ON (0x20), the firmware acknowledged QUIESCED (0x10)",
    );
  });
});

describe("power sequences (rtkit.md §14)", () => {
  it("shutdown: AP QUIESCED, IOP SLEEP, then reinit", async () => {
    const rig = await booted();
    const n = mark(rig);
    await rig.rtk.shutdown();
    expect(since(rig, n)).toEqual([
      "ep 0x00 mgmt SET_AP_PWR_STATE QUIESCED (0x10)",
      "ep 0x00 mgmt SET_IOP_PWR_STATE SLEEP (0x1)",
    ]);
    expect(states(rig)).toEqual([PWR_STATE_OFF, PWR_STATE_OFF]);
    expect(rig.dma.live).toBe(0);
    expect(rig.rtk.hasEndpoint(2)).toBe(false);
    expect(rig.rtk.hasEndpoint(0)).toBe(true);
  });

  it("wake after shutdown: SET_IOP_PWR_STATE INIT, and a fresh handshake", async () => {
    const rig = await booted();
    await rig.rtk.shutdown();
    const n = mark(rig);
    await rig.rtk.wake();
    expect(rig.rtk.isRunning).toBe(true);
    const trace = since(rig, n);
    expect(trace[0]).toBe("ep 0x00 mgmt SET_IOP_PWR_STATE INIT (0x220)");
    expect(trace[1]).toBe("ep 0x00 mgmt HELLO_REPLY min 12 max 12");
    expect(trace.at(-1)).toBe("ep 0x00 mgmt SET_AP_PWR_STATE ON (0x20)");
    expect(rig.dma.live).toBe(4);
  });

  it("idle keeps the handshake; wake then needs only the IOP's acknowledgement", async () => {
    const rig = await booted();
    const n = mark(rig);
    await rig.rtk.idle();
    expect(states(rig)).toEqual([PWR_STATE_IDLE, PWR_STATE_IDLE]);
    expect(rig.rtk.isRunning).toBe(false);
    expect(rig.dma.live).toBe(4);
    await rig.rtk.wake();
    expect(since(rig, n)).toEqual([
      "ep 0x00 mgmt SET_AP_PWR_STATE IDLE (0x201)",
      "ep 0x00 mgmt SET_IOP_PWR_STATE IDLE (0x201)",
      "ep 0x00 mgmt SET_IOP_PWR_STATE INIT (0x220)",
      "ep 0x00 mgmt SET_AP_PWR_STATE ON (0x20)",
    ]);
    // INIT counts as on: only the low byte is compared.
    expect(states(rig)).toEqual([PWR_STATE_INIT, PWR_STATE_ON]);
    expect(rig.rtk.isRunning).toBe(true);
  });

  it("quiesce ends with both tracked states QUIESCED, after a reinit", async () => {
    const rig = await booted();
    await rig.rtk.quiesce();
    expect(states(rig)).toEqual([PWR_STATE_QUIESCED, PWR_STATE_QUIESCED]);
    expect(rig.dma.live).toBe(0);
  });

  it("poweroff: AP OFF, IOP OFF, reinit", async () => {
    const rig = await booted();
    const n = mark(rig);
    await rig.rtk.poweroff();
    expect(since(rig, n)).toEqual([
      "ep 0x00 mgmt SET_AP_PWR_STATE OFF (0x0)",
      "ep 0x00 mgmt SET_IOP_PWR_STATE OFF (0x0)",
    ]);
    expect(states(rig)).toEqual([PWR_STATE_OFF, PWR_STATE_OFF]);
    expect(rig.dma.live).toBe(0);
  });

  it("wake refuses with EINVAL while running", async () => {
    const rig = await booted();
    expect(await outcome(rig.rtk.wake(), rig.rtk)).toBe("EINVAL");
  });

  it("stops at the first failing step: a refused send returns the mailbox's errno", async () => {
    const rig = await booted();
    rig.fw.failSends = { code: "ETIMEDOUT", count: 1 };
    expect(await outcome(rig.rtk.shutdown(), rig.rtk)).toBe("ETIMEDOUT");
    expect(rig.logs.at("err")).toContain("RTKit: Failed to send management message: -110");
    expect(rig.dma.live).toBe(4); // reinit did not run
    expect(rig.rtk.isRunning).toBe(true);
  });

  it("stops at a wrong IOP answer with EINVAL, without reinit", async () => {
    const rig = await booted({ iopAnswer: PWR_STATE_ON });
    expect(await outcome(rig.rtk.shutdown(), rig.rtk)).toBe("EINVAL");
    expect(rig.dma.live).toBe(4);
    expect(states(rig)).toEqual([PWR_STATE_ON, PWR_STATE_QUIESCED]);
  });

  it("wake fails with the mailbox's errno when SET_IOP_PWR_STATE cannot be sent", async () => {
    const rig = await booted();
    await rig.rtk.shutdown();
    rig.fw.failSends = { code: "ETIMEDOUT", count: 1 };
    expect(await outcome(rig.rtk.wake(), rig.rtk)).toBe("ETIMEDOUT");
  });

  it("reinit holds messages that arrive meanwhile and delivers them afterwards", async () => {
    const rig = await booted();
    const order: string[] = [];
    const stops = makeRig(
      {},
      {
        recvMessage: (_ep, m) => {
          order.push(`msg ${m}`);
          if (m === 1n) {
            // From inside the work queue: reinit waits for the queue to finish first.
            stops.rtk.reinit().then(() => order.push("reinit done"));
            stops.rtk.receive(0x20, 3n); // arrives while the mailbox is stopped
          }
        },
      },
    );
    stops.rtk.receive(0x20, 1n);
    stops.rtk.receive(0x20, 2n);
    await stops.rtk.settled();
    expect(order).toEqual(["msg 1", "msg 2", "msg 3", "reinit done"]);
    expect(rig.rtk.isRunning).toBe(true);
  });
});
