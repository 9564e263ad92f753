// pnpm bench: messages per second through the client's receive path, beside a bare function
// call in the same run. Prints figures; asserts nothing. The work queue is run by the bench
// itself (options.schedule), after every batch of 256 messages, as an IRQ burst would be.
import { type DmaAddr, dmaAddr, RawDevice } from "@devref/raw-device";
import { adoptRef, Kobject } from "@devref/raw-device/unsafe";
import { consume, measure, report } from "../../../scripts/bench.js";
import {
  createRtkit,
  EP_SYSLOG,
  encodeBufferRequest,
  encodeEpmap,
  encodeSyslogInit,
  encodeSyslogLog,
} from "../src/index.js";

class BenchDevice extends RawDevice {}
const dev = adoptRef<BenchDevice>(new Kobject("bench0", () => {}, BenchDevice), "bench");

const BATCH = 256;
const N = 2_000_000;
let queued: (() => void) | null = null;
const runQueue = (): void => {
  const run = queued;
  queued = null;
  run?.();
};
const memory = new Map<number, Uint8Array>();
let nextIova = 0x1_0000_0000;

function makeClient(early: boolean) {
  const rtk = createRtkit(dev, {
    transport: { send: (ep) => consume(ep) },
    ops: {
      recvMessage: (ep) => consume(ep),
      ...(early ? { recvMessageEarly: (ep: number) => ep === 0x21 } : {}),
    },
    dma: {
      alloc: (size: number): { iova: DmaAddr; bytes: Uint8Array } => {
        const bytes = new Uint8Array(size);
        const iova = nextIova;
        nextIova += size + 0x4000;
        memory.set(iova, bytes);
        return { iova: dmaAddr(iova), bytes };
      },
      free: (iova: DmaAddr) => memory.delete(iova),
    },
    schedule: (run) => {
      queued = run;
    },
    log: (_level, text) => consume(text.length),
  });
  // Endpoints 0x20-0x3f exist; application messages need no running RTKit to be received.
  rtk.receive(0, encodeEpmap({ base: 1, bitmap: 0xffff_ffff, last: false }));
  rtk.receive(0, encodeEpmap({ base: 0, bitmap: 0x4, last: false }));
  runQueue();
  return rtk;
}

const msgs: bigint[] = [];
for (let i = 0; i < BATCH; i++) msgs.push(BigInt(i) * 0x1_2345_6789n + 0xabn);

const rtk = makeClient(false);
const app = measure("receive → queue → dispatch → recvMessage", N, (n) => {
  for (let i = 0; i < n; i += BATCH) {
    for (let j = 0; j < BATCH; j++) rtk.receive(0x20 + (j & 7), msgs[j]!);
    runQueue();
  }
});
const bare = (ep: number, _msg0: bigint): void => consume(ep);
const baseline = measure("bare call fn(ep, msg0)", N, (n) => {
  for (let i = 0; i < n; i++) bare(0x20 + (i & 7), msgs[i & (BATCH - 1)]!);
});
const perSecond = (ns: number): string => `${Math.round(1e9 / ns).toLocaleString("en")} msg/s`;
console.log("@devref/rtkit");
report("application messages (ordered work queue)", app, baseline, { perSecondAtLeast: 2_000_000 });
console.log(`  = ${perSecond(app.nsPerOp)}`);

const withEarly = makeClient(true);
const early = measure("receive → recvMessageEarly (consumed)", N, (n) => {
  for (let i = 0; i < n; i += BATCH) {
    for (let j = 0; j < BATCH; j++) withEarly.receive(0x21, msgs[j]!);
    runQueue();
  }
});
report("application messages taken early (IRQ path)", early, baseline);
console.log(`  = ${perSecond(early.nsPerOp)}`);

// Syslog: a 64-entry ring in shared memory, each LOG printed and acknowledged.
const sys = makeClient(false);
sys.receive(EP_SYSLOG, encodeBufferRequest({ pages: 3, iova: 0 }));
sys.receive(EP_SYSLOG, encodeSyslogInit({ entries: 64, msgSize: 0x80 }));
runQueue();
const ring = [...memory.values()].at(-1)!;
const text = new TextEncoder();
for (let i = 0; i < 64; i++) {
  const at = i * (0x20 + 0x80);
  ring.set(text.encode("smc-fw"), at + 8);
  ring.set(text.encode(`battery: cell ${i} at 4.1 V, temperature nominal\n`), at + 0x20);
}
const logs: bigint[] = [];
for (let i = 0; i < 64; i++) logs.push(encodeSyslogLog({ index: i }));
const syslog = measure("syslog LOG → read ring → log line → ack", N / 4, (n) => {
  for (let i = 0; i < n; i += BATCH) {
    for (let j = 0; j < BATCH; j++) sys.receive(EP_SYSLOG, logs[j & 63]!);
    runQueue();
  }
});
report("syslog messages (ring in shared memory)", syslog, baseline);
console.log(`  = ${perSecond(syslog.nsPerOp)}`);
for (const r of [rtk, withEarly, sys]) r.free();
