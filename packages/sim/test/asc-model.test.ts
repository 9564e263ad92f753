// The ASC mailbox against a plain two-array model, over random register-level sequences
// from both sides: order, FULL/EMPTY, the four lines, the RECV1 counts, overflow and
// underflow.
import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { type AscCoprocessor, AscMailbox, Soc } from "../src/index.js";
import { ApMailbox, EMPTY, FULL } from "./asc/driver.js";

const BASE = 0x2_3e40_0000;
const MBOX = BASE + 0x8000;
const IRQ = 8;

type Cmd =
  | { op: "apSend"; ep: number; hi: number; lo: number }
  | { op: "apRecv" }
  | { op: "apRecvEmptyPop" }
  | { op: "iopPop" }
  | { op: "iopPush"; ep: number; hi: number; lo: number };

const u32 = fc.integer({ min: 0, max: 0xffff_ffff });
const msg = fc.tuple(fc.integer({ min: 0, max: 0xff }), u32, u32);
const cmd: fc.Arbitrary<Cmd> = fc.oneof(
  { weight: 4, arbitrary: msg.map(([ep, hi, lo]) => ({ op: "apSend" as const, ep, hi, lo })) },
  { weight: 3, arbitrary: fc.constant({ op: "apRecv" as const }) },
  { weight: 1, arbitrary: fc.constant({ op: "apRecvEmptyPop" as const }) },
  { weight: 3, arbitrary: fc.constant({ op: "iopPop" as const }) },
  { weight: 4, arbitrary: msg.map(([ep, hi, lo]) => ({ op: "iopPush" as const, ep, hi, lo })) },
);

class Counter implements AscCoprocessor {
  inboxCalls = 0;
  spaceCalls = 0;
  cpuStart(): void {}
  inbox(): void {
    this.inboxCalls++;
  }
  outboxSpace(): void {
    this.spaceCalls++;
  }
  gone(): void {}
  prepareFault(): null {
    return null;
  }
}

describe("ASC mailbox model", () => {
  it("matches two bounded queues under any interleaving of both sides", () => {
    fc.assert(
      fc.property(
        fc.integer({ min: 1, max: 6 }),
        fc.array(cmd, { maxLength: 80 }),
        (depth, cmds) => {
          const soc = new Soc();
          const asc = new AscMailbox(soc, {
            name: "m",
            base: BASE,
            irq: IRQ,
            fifoDepth: depth,
            allInterrupts: true,
          });
          const cop = new Counter();
          asc.attach(cop);
          const ap = new ApMailbox(soc, BASE);
          const a2i: [number, number, number][] = [];
          const i2a: [number, number, number][] = [];
          let overflows = 0;
          let underflows = 0;
          let pushes = 0;
          let pops = 0;
          let i2aPushed = 0;
          for (const c of cmds) {
            switch (c.op) {
              case "apSend":
                // Written regardless of FULL, as a careless driver would.
                ap.write64(0x800, (BigInt(c.hi) << 32n) | BigInt(c.lo));
                ap.write64(0x808, BigInt(c.ep));
                if (a2i.length < depth) {
                  a2i.push([c.hi, c.lo, c.ep]);
                  pushes++;
                } else overflows++;
                break;
              case "apRecv": {
                const got = ap.recv();
                const want = i2a.shift();
                expect(got).toEqual(
                  want === undefined
                    ? null
                    : { ep: want[2] & 0xff, msg0: (BigInt(want[0]) << 32n) | BigInt(want[1]) },
                );
                if (want !== undefined) pops++;
                break;
              }
              case "apRecvEmptyPop": {
                // A pop without looking at EMPTY first.
                const hi = soc.fabric.read32(MBOX + 0x83c);
                expect((hi >>> 16) & 0xf).toBe(i2a.length & 0xf);
                expect((hi >>> 20) & 0x1f).toBe(a2i.length & 0x1f);
                if (i2a.shift() === undefined) underflows++;
                else pops++;
                break;
              }
              case "iopPop": {
                const ok = asc.popInbox();
                const want = a2i.shift();
                expect(ok).toBe(want !== undefined);
                if (want !== undefined)
                  expect([asc.a2i.hi, asc.a2i.lo, asc.a2i.msg1]).toEqual(want);
                break;
              }
              case "iopPush": {
                const ok = asc.pushOutbox(c.hi, c.lo, c.ep);
                expect(ok).toBe(i2a.length < depth);
                if (ok) {
                  i2a.push([c.hi, c.lo, c.ep]);
                  i2aPushed++;
                }
                break;
              }
            }
            expect(ap.a2iControl()).toBe(
              (a2i.length === 0 ? EMPTY : 0) | (a2i.length === depth ? FULL : 0),
            );
            expect(ap.i2aControl()).toBe(
              (i2a.length === 0 ? EMPTY : 0) | (i2a.length === depth ? FULL : 0),
            );
            expect([0, 1, 2, 3].map((i) => soc.irq.isAsserted(IRQ + i))).toEqual([
              a2i.length === 0,
              a2i.length > 0,
              i2a.length === 0,
              i2a.length > 0,
            ]);
          }
          const faults = soc.trace().filter((r) => r.kind === "fault");
          expect(
            faults.filter((r) => r.kind === "fault" && r.fault === "mbox-a2i-overflow"),
          ).toHaveLength(overflows);
          expect(
            faults.filter((r) => r.kind === "fault" && r.fault === "mbox-i2a-underflow"),
          ).toHaveLength(underflows);
          expect(cop.inboxCalls).toBe(pushes);
          expect(cop.spaceCalls).toBe(pops);
          expect(soc.trace().filter((r) => r.kind === "mbox")).toHaveLength(pushes + i2aPushed);
        },
      ),
      { seed: 42, numRuns: 200 },
    );
  });
});
