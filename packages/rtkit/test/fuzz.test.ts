// 1,000,000 random inbound messages (fixed seed), mostly well-typed with random fields so
// they reach the handlers, mixed with API calls, clock jumps, a mailbox that refuses,
// an allocator that fails and firmware scribbling over the shared buffers. Nothing may
// throw but a DevrefError for invalid arguments, nothing may hang, every buffer is
// released at the end, and the state queries answer throughout.
import { DevrefError, type DmaAddr, dmaAddr } from "@devref/raw-device";
import { createRtkit, type Rtkit } from "@devref/rtkit";
import { describe, expect, it } from "vitest";
import { makeDevice } from "./device.js";
import { ManualTimers } from "./timers.js";

const MESSAGES = 1_000_000;

class Rng {
  private s: number;
  constructor(seed: number) {
    this.s = seed >>> 0 || 1;
  }
  u32(): number {
    let x = this.s;
    x ^= x << 13;
    x ^= x >>> 17;
    x ^= x << 5;
    this.s = x >>> 0;
    return this.s;
  }
  below(n: number): number {
    return this.u32() % n;
  }
  pick<T>(xs: readonly T[]): T {
    return xs[this.below(xs.length)]!;
  }
}

class FuzzDma {
  readonly live = new Map<number, Uint8Array>();
  private next = 0x10_0000;
  constructor(private readonly rng: Rng) {}
  alloc(size: number): { iova: DmaAddr; bytes: Uint8Array } | null {
    if (this.rng.below(50) === 0) return null;
    const iova = this.next;
    this.next += Math.ceil(size / 0x1000) * 0x1000 + 0x1000;
    const bytes = new Uint8Array(size);
    this.live.set(iova, bytes);
    return { iova: dmaAddr(iova), bytes };
  }
  free(iova: DmaAddr, size: number): void {
    const b = this.live.get(iova);
    if (b === undefined || b.length !== size) throw new Error("free of something not allocated");
    this.live.delete(iova);
  }
}

const TYPES: Record<number, readonly number[]> = {
  0: [1, 1, 2, 5, 6, 7, 7, 8, 8, 0xb, 0xb, 3],
  1: [1, 2, 2, 3],
  2: [1, 5, 5, 5, 8, 8, 3],
  4: [1, 8, 0xc, 9],
};

function message(rng: Rng): [number, bigint] {
  const r = rng.below(100);
  const ep =
    r < 30
      ? 0
      : r < 31
        ? 1
        : r < 53
          ? 2
          : r < 59
            ? 4
            : r < 65
              ? 8
              : r < 70
                ? rng.pick([3, 0x0a, rng.below(0x20)])
                : r < 95
                  ? 0x20 + rng.below(16)
                  : rng.below(256);
  let hi = rng.u32();
  let lo = rng.u32();
  if (ep < 0x20 && rng.below(100) < 85) {
    if (ep === 8) {
      hi = (1 << 24) | ((rng.below(0x8000) & 0xf_ffff) << 4) | (rng.below(8) === 0 ? hi & 0xf : 0);
      if (rng.below(5) !== 0) lo = 0;
    } else {
      const type = rng.pick(TYPES[ep] ?? [rng.below(256)]);
      hi = (hi & ~0x0ff0_0000) | (type << 20);
      if (type === 1 && ep !== 0) {
        // Buffer requests: small, mostly "AP allocates"; big ones only off the crashlog.
        const pages = ep !== 1 && rng.below(10) === 0 ? rng.below(256) : rng.below(5);
        hi = (hi & ~0x000f_ffff) | (pages << 12);
        if (rng.below(5) !== 0) {
          hi &= ~0xfff;
          lo = 0;
        }
      }
      if (ep === 0 && type === 1) lo = (rng.below(16) << 16) | rng.below(16); // versions
      if (ep === 0 && (type === 7 || type === 0xb)) lo = rng.pick([0, 1, 0x10, 0x20, 0x201, 0x220]);
      if (ep === 2 && type === 5 && rng.below(2) === 0) lo = rng.below(16);
    }
  }
  return [ep, (BigInt(hi >>> 0) << 32n) | BigInt(lo >>> 0)];
}

describe("fuzz", () => {
  it(`survives ${MESSAGES.toLocaleString("en")} random inbound messages`, async () => {
    const rng = new Rng(42);
    const { dev, releases } = makeDevice("fuzz0");
    const timers = new ManualTimers();
    const dma = new FuzzDma(rng);
    const counts = { sends: 0, logs: 0, app: 0, crashes: 0, rejected: 0, invalid: 0 };
    const foreign: unknown[] = [];
    const rtk: Rtkit = createRtkit(dev, {
      transport: {
        send: () => {
          counts.sends++;
          const r = rng.below(200);
          if (r === 0) throw new DevrefError("ETIMEDOUT", "fuzz mailbox full");
          if (r === 1) throw new Error("fuzz transport bug");
        },
      },
      ops: {
        recvMessage: () => {
          counts.app++;
          if (rng.below(1000) === 0) throw new Error("fuzz driver bug");
        },
        recvMessageEarly: () => rng.below(4) === 0,
        crashed: () => {
          counts.crashes++;
        },
      },
      dma,
      timers,
      log: () => {
        counts.logs++;
      },
    });
    const api = (p: Promise<void>): void => {
      p.catch((e: unknown) => {
        if (e instanceof DevrefError) counts.rejected++;
        else foreign.push(e);
      });
    };
    const start = performance.now();
    for (let i = 0; i < MESSAGES; i++) {
      const [ep, msg0] = message(rng);
      rtk.receive(ep, msg0);
      if ((i & 255) === 255) {
        if (rng.below(128) === 0) {
          try {
            rtk.receive(rng.pick([256, -1, 0.5]), msg0);
          } catch (e) {
            if (DevrefError.is(e, "EINVAL")) counts.invalid++;
            else foreign.push(e);
          }
        }
        switch (rng.below(48)) {
          case 0:
            api(rtk.boot());
            break;
          case 1:
            api(rtk.shutdown());
            break;
          case 2:
            api(rtk.wake());
            break;
          case 3:
            api(rtk.idle());
            break;
          case 4:
            api(rtk.quiesce());
            break;
          case 5:
            api(rtk.poweroff());
            break;
          case 6:
            if (rng.below(8) === 0) api(rtk.reinit());
            break;
          case 7:
            api(rtk.startEp(rng.below(300)));
            break;
          case 8:
            api(rtk.sendMessage(rng.below(256), BigInt(rng.u32())));
            break;
          case 9:
            timers.advance(1000);
            break;
          case 10:
            // The firmware scribbles over its buffers, sometimes leaving a crashlog header.
            for (const bytes of dma.live.values()) {
              for (let k = 0; k < 16 && bytes.length > 0; k++)
                bytes[rng.below(bytes.length)] = rng.u32();
              if (bytes.length >= 0x20 && rng.below(2) === 0) {
                const v = new DataView(bytes.buffer);
                v.setUint32(0, 0x434c4845, true);
                v.setUint32(8, rng.below(bytes.length + 1), true);
              }
            }
            break;
        }
        // A driver resets a crashed coprocessor sooner or later.
        if (rtk.isCrashed && rng.below(4) !== 0) api(rtk.reinit());
        await rtk.settled();
        expect(typeof rtk.isRunning).toBe("boolean");
        expect(typeof rtk.isCrashed).toBe("boolean");
        expect(rtk.iopPowerState).toBeGreaterThanOrEqual(0);
      }
    }
    timers.advance(10_000);
    await rtk.settled();
    const elapsed = performance.now() - start;
    rtk.free();
    await rtk.settled();
    expect(foreign).toEqual([]);
    expect(dma.live.size).toBe(0);
    expect(timers.count).toBe(0);
    dev.put();
    expect(releases()).toBe(1);
    // Coverage of the run: the handlers were reached, not just the front door.
    expect(counts.crashes).toBeGreaterThan(100);
    expect(counts.app).toBeGreaterThan(100_000);
    console.log(
      `fuzz: ${MESSAGES} messages in ${(elapsed / 1000).toFixed(1)} s ` +
        `(${Math.round(MESSAGES / (elapsed / 1000)).toLocaleString("en")}/s); ${JSON.stringify(counts)}`,
    );
  }, 60_000);
});
