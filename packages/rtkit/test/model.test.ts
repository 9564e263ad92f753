// Model-based test of the power state machine (rtkit.md §5.4, §6, §14): random sequences of
// calls and firmware events, some with a silent, wrong or refused first answer, run against
// the client and against a small model of the kernel's rules; outcomes and states must agree.
import {
  EP_CRASHLOG,
  encodeBufferRequest,
  PWR_STATE_IDLE,
  PWR_STATE_INIT,
  PWR_STATE_OFF,
  PWR_STATE_ON,
  PWR_STATE_QUIESCED,
  PWR_STATE_SLEEP,
} from "@devref/rtkit";
import fc from "fast-check";
import { describe, expect, it } from "vitest";
import type { Answer } from "./firmware.js";
import { makeRig, type Rig } from "./rig.js";

type Fault = { kind: "none" } | { kind: "answer"; answer: Answer } | { kind: "failSend" };

interface Model {
  iop: number;
  ap: number;
  crashed: boolean;
  epmap: boolean;
  iopAck: boolean;
  fwIop: number;
  buffers: Set<string>;
}

const running = (m: Model) =>
  !m.crashed && (m.iop & 0xff) === PWR_STATE_ON && (m.ap & 0xff) === PWR_STATE_ON;

/** What happens to the model when the firmware runs its handshake. */
function handshake(m: Model): void {
  if (m.crashed) return; // HELLO_REPLY cannot be sent: the firmware waits forever
  m.epmap = true;
  // The crashlog buffer request comes again: with a live buffer the kernel reads a crash.
  if (m.buffers.has("crashlog")) m.crashed = true;
  for (const b of ["crashlog", "syslog", "ioreport", "oslog"]) m.buffers.add(b);
  m.iop = PWR_STATE_ON;
  m.iopAck = true;
  m.fwIop = PWR_STATE_ON;
}

/** A fault is used by the first message an operation sends. */
class Once {
  constructor(private fault: Fault) {}
  take(): Fault {
    const f = this.fault;
    this.fault = { kind: "none" };
    return f;
  }
}

type R = string; // "ok" or an errno name

function send(m: Model, f: Fault): R | null {
  if (m.crashed) return "EINVAL";
  if (f.kind === "failSend") return "ETIMEDOUT";
  return null;
}

function setAp(m: Model, state: number, once: Once): R {
  const f = once.take();
  const s = send(m, f);
  if (s !== null) return s;
  const answer = f.kind === "answer" ? f.answer : "echo";
  if (answer === "silent") return "ETIME";
  m.ap = answer === "echo" ? state : answer;
  return m.ap === state ? "ok" : "EINVAL";
}

function setIop(m: Model, state: number, once: Once): R {
  m.iopAck = false;
  const f = once.take();
  const s = send(m, f);
  if (s !== null) return s;
  const answer = f.kind === "answer" ? f.answer : "echo";
  if (answer === "silent") return "ETIME";
  m.iop = answer === "echo" ? state : answer;
  m.fwIop = m.iop;
  m.iopAck = true;
  return m.iop === state ? "ok" : "EINVAL";
}

function reinit(m: Model): R {
  m.buffers.clear();
  m.epmap = false;
  m.iopAck = false;
  m.crashed = false;
  m.iop = PWR_STATE_OFF;
  m.ap = PWR_STATE_OFF;
  return "ok";
}

function boot(m: Model, once: Once): R {
  if (running(m)) return "ok";
  if (m.crashed) return "EINVAL";
  if (!m.epmap || !m.iopAck) return "ETIME";
  return setAp(m, PWR_STATE_ON, once);
}

const seq = (...steps: (() => R)[]): R => {
  for (const step of steps) {
    const r = step();
    if (r !== "ok") return r;
  }
  return "ok";
};

const OPS = {
  boot: (m: Model, o: Once) => boot(m, o),
  wake: (m: Model, o: Once): R => {
    if (running(m)) return "EINVAL";
    m.iopAck = false;
    const f = o.take();
    const s = send(m, f);
    if (s !== null) return s;
    const answer = f.kind === "answer" ? f.answer : "echo";
    if (answer === "silent") {
      // no answer: boot waits for the IOP in vain
    } else if (m.fwIop !== PWR_STATE_IDLE && answer === "echo") {
      handshake(m);
    } else {
      m.iop = answer === "echo" ? PWR_STATE_INIT : answer;
      m.fwIop = m.iop;
      m.iopAck = true;
    }
    return boot(m, o);
  },
  shutdown: (m: Model, o: Once) =>
    seq(
      () => setAp(m, PWR_STATE_QUIESCED, o),
      () => setIop(m, PWR_STATE_SLEEP, o),
      () => reinit(m),
    ),
  idle: (m: Model, o: Once) =>
    seq(
      () => setAp(m, PWR_STATE_IDLE, o),
      () => setIop(m, PWR_STATE_IDLE, o),
      () => {
        m.iop = PWR_STATE_IDLE;
        m.ap = PWR_STATE_IDLE;
        return "ok";
      },
    ),
  quiesce: (m: Model, o: Once) =>
    seq(
      () => setAp(m, PWR_STATE_QUIESCED, o),
      () => setIop(m, PWR_STATE_QUIESCED, o),
      () => reinit(m),
      () => {
        m.iop = PWR_STATE_QUIESCED;
        m.ap = PWR_STATE_QUIESCED;
        return "ok";
      },
    ),
  poweroff: (m: Model, o: Once) =>
    seq(
      () => setAp(m, PWR_STATE_OFF, o),
      () => setIop(m, PWR_STATE_OFF, o),
      () => reinit(m),
    ),
  reinit: (m: Model) => reinit(m),
} as const;

type OpName = keyof typeof OPS;

async function settle(rig: Rig, p: Promise<void>): Promise<R> {
  let result: R = "pending";
  p.then(
    () => {
      result = "ok";
    },
    (e: { code: string }) => {
      result = e.code;
    },
  );
  for (let i = 0; i < 6 && result === "pending"; i++) {
    await rig.rtk.settled();
    if (result === "pending") rig.timers.advance(1000);
  }
  await rig.rtk.settled();
  return result;
}

function compare(m: Model, rig: Rig): void {
  expect({
    running: rig.rtk.isRunning,
    crashed: rig.rtk.isCrashed,
    iop: rig.rtk.iopPowerState,
    ap: rig.rtk.apPowerState,
    buffers: rig.dma.live,
  }).toEqual({
    running: running(m),
    crashed: m.crashed,
    iop: m.iop,
    ap: m.ap,
    buffers: m.buffers.size,
  });
}

class OpCommand implements fc.AsyncCommand<Model, Rig> {
  constructor(
    readonly op: OpName,
    readonly fault: Fault,
  ) {}
  check(): boolean {
    return true;
  }
  async run(m: Model, rig: Rig): Promise<void> {
    const expected = OPS[this.op](m, new Once(this.fault));
    if (this.fault.kind === "answer") rig.fw.nextAnswer = this.fault.answer;
    if (this.fault.kind === "failSend") rig.fw.failSends = { code: "ETIMEDOUT", count: 1 };
    const actual = await settle(rig, rig.rtk[this.op]());
    rig.fw.nextAnswer = null;
    rig.fw.failSends = null;
    expect(actual).toBe(expected);
    compare(m, rig);
  }
  toString(): string {
    return `${this.op}(${JSON.stringify(this.fault)})`;
  }
}

class StartFirmware implements fc.AsyncCommand<Model, Rig> {
  check(): boolean {
    return true;
  }
  async run(m: Model, rig: Rig): Promise<void> {
    handshake(m);
    rig.fw.start();
    await rig.rtk.settled();
    compare(m, rig);
  }
  toString(): string {
    return "startFirmware";
  }
}

class Crash implements fc.AsyncCommand<Model, Rig> {
  check(): boolean {
    return true;
  }
  async run(m: Model, rig: Rig): Promise<void> {
    if (m.buffers.has("crashlog")) m.crashed = true;
    else m.buffers.add("crashlog");
    rig.rtk.receive(EP_CRASHLOG, encodeBufferRequest({ pages: 1, iova: 0 }));
    await rig.rtk.settled();
    compare(m, rig);
  }
  toString(): string {
    return "crash";
  }
}

const STATES = [
  PWR_STATE_OFF,
  PWR_STATE_SLEEP,
  PWR_STATE_QUIESCED,
  PWR_STATE_ON,
  PWR_STATE_IDLE,
  PWR_STATE_INIT,
  0x55,
];

const fault: fc.Arbitrary<Fault> = fc.oneof(
  { weight: 6, arbitrary: fc.constant<Fault>({ kind: "none" }) },
  { weight: 1, arbitrary: fc.constant<Fault>({ kind: "failSend" }) },
  {
    weight: 2,
    arbitrary: fc
      .oneof(fc.constant<Answer>("silent"), fc.constantFrom<Answer>(...STATES))
      .map((answer): Fault => ({ kind: "answer", answer })),
  },
);

const commands = [
  fc
    .tuple(fc.constantFrom<OpName>(...(Object.keys(OPS) as OpName[])), fault)
    .map(([op, f]) => new OpCommand(op, f)),
  fc.constant(new StartFirmware()),
  fc.constant(new Crash()),
];

describe("the power state machine against a model of the kernel's rules", () => {
  it("agrees on every outcome and state", async () => {
    await fc.assert(
      fc.asyncProperty(fc.commands(commands, { maxCommands: 40 }), async (cmds) => {
        const rig = makeRig();
        const model: Model = {
          iop: PWR_STATE_OFF,
          ap: PWR_STATE_OFF,
          crashed: false,
          epmap: false,
          iopAck: false,
          fwIop: PWR_STATE_OFF,
          buffers: new Set(),
        };
        await fc.asyncModelRun(() => ({ model, real: rig }), cmds);
        rig.rtk.free();
        expect(rig.dma.live).toBe(0);
      }),
      { seed: 42, numRuns: 300 },
    );
  }, 60_000);
});
