import { DevrefError, dmaAddr } from "@devref/raw-device";
import {
  EP_CRASHLOG,
  EP_IOREPORT,
  EP_OSLOG,
  EP_SYSLOG,
  encodeBufferRequest,
  encodeEpmap,
  encodeOslogBufferRequest,
  encodeSyslogInit,
  encodeSyslogLog,
  type RtkitShmem,
} from "@devref/rtkit";
import { describe, expect, it } from "vitest";
import { booted, makeRig, type Rig } from "./rig.js";

const request = (pages: number, iova = 0) => encodeBufferRequest({ pages, iova });

async function deliver(rig: Rig, ep: number, msg0: bigint): Promise<void> {
  rig.rtk.receive(ep, msg0);
  await rig.rtk.settled();
}

/** A client that knows endpoints 0-4 and 8, beside a firmware that only records. */
async function passive(extraOps = {}, extra = {}): Promise<Rig> {
  const rig = makeRig({}, extraOps, extra);
  rig.fw.react = false;
  rig.rtk.receive(0, encodeEpmap({ base: 0, bitmap: 0x11f, last: false }));
  await rig.rtk.settled();
  rig.fw.sent.length = 0;
  rig.logs.clear();
  return rig;
}

describe("buffer requests (rtkit.md §7)", () => {
  it("allocates through options.dma and replies with the same size and the IOVA used", async () => {
    const rig = await passive();
    await deliver(rig, EP_SYSLOG, request(3));
    expect(rig.dma.allocs).toBe(1);
    const [iova, bytes] = [...rig.dma.buffers][0]!;
    expect(bytes.length).toBe(0x3000);
    expect(rig.fw.sent).toEqual([{ ep: EP_SYSLOG, msg0: request(3, iova), atomic: false }]);
  });

  it("logs ENOMEM and sends nothing when the allocator has no memory", async () => {
    const rig = await passive();
    rig.dma.failNext = 1;
    await deliver(rig, EP_IOREPORT, request(2));
    expect(rig.logs.lines).toContain("err RTKit: failed buffer request for 0x2000 bytes (-12)");
    expect(rig.fw.sent).toEqual([]);
    // The descriptor stays empty: the next request is a first request again.
    await deliver(rig, EP_IOREPORT, request(2));
    expect(rig.fw.sent).toHaveLength(1);
  });

  it("fails with ENOMEM without options.dma or ops.shmemSetup", async () => {
    const rig = await passive({}, { dma: undefined });
    await deliver(rig, EP_SYSLOG, request(1));
    expect(rig.logs.lines).toContain("err RTKit: failed buffer request for 0x1000 bytes (-12)");
  });

  it("refuses a firmware address without shmemSetup and shmemDestroy (EINVAL, no reply)", async () => {
    const rig = await passive();
    await deliver(rig, EP_SYSLOG, request(1, 0x4000_0000));
    expect(rig.logs.lines).toContain("err RTKit: failed buffer request for 0x1000 bytes (-22)");
    expect(rig.fw.sent).toEqual([]);
    const setupOnly = await passive({ shmemSetup: () => {} });
    await deliver(setupOnly, EP_SYSLOG, request(1, 0x4000_0000));
    expect(setupOnly.logs.at("err")).toEqual([
      "RTKit: failed buffer request for 0x1000 bytes (-22)",
    ]);
  });

  it("lets shmemSetup map the firmware's buffer; a mapped buffer gets no reply", async () => {
    const seen: RtkitShmem[] = [];
    const destroyed: RtkitShmem[] = [];
    const rig = await passive({
      shmemSetup: (b: RtkitShmem) => {
        seen.push({ ...b });
        b.isMapped = true;
        b.bytes = new Uint8Array(b.size);
        b.private = "mine";
      },
      shmemDestroy: (b: RtkitShmem) => destroyed.push(b),
    });
    await deliver(rig, EP_IOREPORT, request(4, 0x8_0000_0000));
    expect(seen).toEqual([
      {
        size: 0x4000,
        iova: 0x8_0000_0000,
        isMapped: false,
        bytes: null,
        iomem: null,
        private: undefined,
      },
    ]);
    expect(rig.fw.sent).toEqual([]);
    await rig.rtk.reinit();
    expect(destroyed).toHaveLength(1);
    expect(destroyed[0]!.private).toBe("mine");
  });

  it("lets shmemSetup allocate (iova 0 filled in), and replies with that address", async () => {
    const rig = await passive({
      shmemSetup: (b: RtkitShmem) => {
        b.iova = dmaAddr(0xabc_0000_0000);
        b.bytes = new Uint8Array(b.size);
      },
      shmemDestroy: () => {},
    });
    await deliver(rig, EP_SYSLOG, request(1));
    expect(rig.fw.sent[0]!.msg0).toBe(request(1, 0xabc_0000_0000));
  });

  it("logs shmemSetup's errno and sends nothing when it fails", async () => {
    const rig = await passive({
      shmemSetup: () => {
        throw new DevrefError("ENOSPC", "no room");
      },
      shmemDestroy: () => {},
    });
    await deliver(rig, EP_CRASHLOG, request(1));
    expect(rig.logs.lines).toContain("err RTKit: failed buffer request for 0x1000 bytes (-28)");
    expect(rig.fw.sent).toEqual([]);
  });

  it("refuses what shmemSetup or the allocator give back when it cannot be used, and undoes it", async () => {
    const undone: number[] = [];
    for (const bad of [
      (b: RtkitShmem) => {
        b.bytes = new Uint8Array(10); // shorter than the buffer
      },
      (b: RtkitShmem) => {
        b.iova = dmaAddr(2 ** 44); // does not fit the reply
        b.bytes = new Uint8Array(b.size);
      },
      (b: RtkitShmem) => {
        (b as { size: number }).size = 1;
      },
      (b: RtkitShmem) => {
        b.bytes = [1, 2] as never;
      },
    ]) {
      const rig = await passive({
        shmemSetup: bad,
        shmemDestroy: (b: RtkitShmem) => undone.push(b.size),
      });
      await deliver(rig, EP_SYSLOG, request(1));
      expect(rig.logs.at("err")).toEqual(["RTKit: failed buffer request for 0x1000 bytes (-22)"]);
      expect(rig.fw.sent).toEqual([]);
    }
    expect(undone).toHaveLength(4);
    const rig = await passive(
      {},
      {
        dma: {
          alloc: () => ({ iova: dmaAddr(0x1000), bytes: new Uint8Array(1) }),
          free: (i: number) => undone.push(i),
        },
      },
    );
    await deliver(rig, EP_SYSLOG, request(1));
    expect(rig.fw.sent).toEqual([]);
    expect(undone.at(-1)).toBe(0x1000);
  });

  it("takes an allocator's iomem accessor when it gives no bytes, and refuses neither", async () => {
    const freed: number[] = [];
    const iomem = { readBytes: (_o: number, dest: Uint8Array) => dest.fill(0x5a) };
    const rig = await passive(
      {},
      {
        dma: {
          alloc: () => ({ iova: dmaAddr(0x7000), iomem }),
          free: (i: number) => freed.push(i),
        },
      },
    );
    await deliver(rig, EP_IOREPORT, request(1));
    expect(rig.fw.sent.map((s) => s.msg0)).toEqual([request(1, 0x7000)]);
    const none = await passive(
      {},
      { dma: { alloc: () => ({ iova: dmaAddr(0x7000) }), free: (i: number) => freed.push(i) } },
    );
    await deliver(none, EP_IOREPORT, request(1));
    expect(none.fw.sent).toEqual([]);
    expect(none.logs.at("err")).toEqual(["RTKit: failed buffer request for 0x1000 bytes (-22)"]);
    expect(freed).toEqual([0x7000]); // the refused one went back
    const bad = await passive(
      {},
      {
        dma: {
          alloc: () => ({ iova: dmaAddr(0x7000), iomem: {} as never }),
          free: (i: number) => freed.push(i),
        },
      },
    );
    await deliver(bad, EP_IOREPORT, request(1));
    expect(bad.fw.sent).toEqual([]);
    expect(freed).toEqual([0x7000, 0x7000]);
  });

  it("refuses a request for 0 bytes (on the crashlog endpoint the next type-1 is again a request)", async () => {
    const rig = await passive();
    await deliver(rig, EP_CRASHLOG, request(0));
    expect(rig.logs.lines).toContain("err RTKit: failed buffer request for 0x0 bytes (-22)");
    await deliver(rig, EP_CRASHLOG, request(1));
    expect(rig.fw.sent).toHaveLength(1);
    expect(rig.rtk.isCrashed).toBe(false);
  });

  it("answers a repeated identical request with the live buffer, and refuses a different one", async () => {
    const rig = await passive();
    await deliver(rig, EP_SYSLOG, request(2));
    const first = rig.fw.sent[0]!.msg0;
    await deliver(rig, EP_SYSLOG, request(2));
    expect(rig.fw.sent.map((s) => s.msg0)).toEqual([first, first]);
    expect(rig.dma.allocs).toBe(1);
    expect(rig.logs.has("repeated syslog buffer request")).toBe(true);
    await deliver(rig, EP_SYSLOG, request(4));
    expect(rig.fw.sent).toHaveLength(2);
    expect(rig.logs.has("refused (reinit() after a firmware restart)")).toBe(true);
    expect(rig.dma.live).toBe(1);
  });

  it("frees every buffer on reinit and on free, through options.dma", async () => {
    const rig = await booted();
    expect(rig.dma.live).toBe(4);
    await rig.rtk.reinit();
    expect(rig.dma.live).toBe(0);
    expect(rig.dma.frees).toBe(4);
    const again = await booted();
    again.rtk.free();
    expect(again.dma.live).toBe(0);
  });
});

describe("OSLog (rtkit.md §10)", () => {
  it("reads size in bytes and the IOVA in 4 KiB units, and replies in the same layout", async () => {
    const rig = await passive();
    await deliver(rig, EP_OSLOG, encodeOslogBufferRequest({ size: 0x1800, iova: 0 }));
    const [iova, bytes] = [...rig.dma.buffers][0]!;
    expect(bytes.length).toBe(0x1800);
    expect(rig.fw.sent[0]!.msg0).toBe(encodeOslogBufferRequest({ size: 0x1800, iova }));
  });

  it("refuses an allocator address an OSLog reply cannot carry", async () => {
    const rig = await passive(
      {},
      {
        dma: {
          alloc: (n: number) => ({ iova: dmaAddr(0x1234), bytes: new Uint8Array(n) }),
          free: () => {},
        },
      },
    );
    await deliver(rig, EP_OSLOG, encodeOslogBufferRequest({ size: 0x1000, iova: 0 }));
    expect(rig.fw.sent).toEqual([]);
    expect(rig.logs.at("err")).toEqual(["RTKit: failed buffer request for 0x1000 bytes (-22)"]);
  });

  it("warns about other OSLog types", async () => {
    const rig = await passive();
    await deliver(rig, EP_OSLOG, 3n << 56n);
    expect(rig.logs.lines).toContain("warn RTKit: Unknown oslog message: 300000000000000");
  });
});

describe("IOReport (rtkit.md §11)", () => {
  it("echoes types 0x8 and 0xc unchanged and warns about others", async () => {
    const rig = await passive();
    const a = (0x8n << 52n) | 0xdead_beefn | (1n << 63n);
    const b = (0xcn << 52n) | 0x42n;
    await deliver(rig, EP_IOREPORT, a);
    await deliver(rig, EP_IOREPORT, b);
    await deliver(rig, EP_IOREPORT, 0x9n << 52n);
    expect(rig.fw.sent.map((s) => [s.ep, s.msg0])).toEqual([
      [EP_IOREPORT, a],
      [EP_IOREPORT, b],
    ]);
    expect(rig.logs.lines).toContain("warn RTKit: Unknown ioreport message: 90000000000000");
  });
});

describe("syslog (rtkit.md §8)", () => {
  async function syslogRig(entries = 4, msgSize = 0x40, pages = 1): Promise<[Rig, Uint8Array]> {
    const rig = await passive();
    await deliver(rig, EP_SYSLOG, request(pages));
    await deliver(rig, EP_SYSLOG, encodeSyslogInit({ entries, msgSize }));
    rig.fw.cfg = { ...rig.fw.cfg, syslogMsgSize: msgSize };
    rig.fw.sent.length = 0;
    return [rig, [...rig.dma.buffers.values()][0]!];
  }

  it("prints an entry, trimming trailing newlines, spaces and NULs, and acks with the same msg0", async () => {
    const [rig, ring] = await syslogRig();
    rig.fw.syslog(ring, 2, "smc", "battery ok \r\n");
    await rig.rtk.settled();
    expect(rig.logs.at("info")).toEqual(["RTKit: syslog message: smc: battery ok"]);
    expect(rig.fw.sent).toEqual([
      { ep: EP_SYSLOG, msg0: encodeSyslogLog({ index: 2 }), atomic: false },
    ]);
  });

  it("reads at most 23 context characters and msgSize - 1 text bytes", async () => {
    const [rig, ring] = await syslogRig(4, 8);
    rig.fw.syslog(ring, 0, "c".repeat(30), "0123456789");
    await rig.rtk.settled();
    expect(rig.logs.at("info")).toEqual([`RTKit: syslog message: ${"c".repeat(23)}: 0123456`]);
  });

  it("decodes UTF-8 and replaces what is not", async () => {
    const [rig, ring] = await syslogRig();
    rig.fw.syslog(ring, 1, "ctx", "température");
    await rig.rtk.settled();
    ring[0x60 + 0x20] = 0xff;
    rig.rtk.receive(EP_SYSLOG, encodeSyslogLog({ index: 1 }));
    await rig.rtk.settled();
    expect(rig.logs.at("info")).toEqual([
      "RTKit: syslog message: ctx: température",
      "RTKit: syslog message: ctx: \ufffdempérature",
    ]);
  });

  it("acknowledges every LOG it cannot print, with a warning", async () => {
    const rig = await passive();
    const log = encodeSyslogLog({ index: 0 });
    await deliver(rig, EP_SYSLOG, log); // before INIT
    await deliver(rig, EP_SYSLOG, encodeSyslogInit({ entries: 2, msgSize: 0x20 }));
    await deliver(rig, EP_SYSLOG, log); // no buffer
    expect(rig.logs.at("warn")).toEqual([
      "RTKit: received syslog message but no syslog_msg_buffer",
      "RTKit: received syslog message but syslog_buffer.size is zero",
    ]);
    expect(rig.fw.sent.map((s) => s.msg0)).toEqual([log, log]);
  });

  it("keeps the kernel's off-by-one (index == entries prints) but never reads past the buffer", async () => {
    const [rig, ring] = await syslogRig(4, 0x40, 1);
    rig.fw.syslog(ring, 4, "edge", "inside the buffer");
    await rig.rtk.settled();
    expect(rig.logs.at("info")).toEqual(["RTKit: syslog message: edge: inside the buffer"]);
    rig.rtk.receive(EP_SYSLOG, encodeSyslogLog({ index: 5 }));
    await rig.rtk.settled();
    expect(rig.logs.at("warn")).toContain("RTKit: syslog index 5 out of range");
    // A ring the firmware describes larger than the buffer it asked for.
    const [big] = await syslogRig(255, 0xff, 1);
    big.rtk.receive(EP_SYSLOG, encodeSyslogLog({ index: 200 }));
    await big.rtk.settled();
    expect(big.logs.at("warn")).toEqual([
      "RTKit: syslog entry 200 lies outside the 0x1000-byte syslog buffer",
    ]);
    expect(big.fw.sent).toHaveLength(1); // still acked
  });

  it("prints nothing for a message size of 0 (the kernel writes before its buffer) and acks", async () => {
    const [rig] = await syslogRig(4, 0);
    await deliver(rig, EP_SYSLOG, encodeSyslogLog({ index: 0 }));
    expect(rig.logs.at("warn")).toEqual(["RTKit: syslog message size is 0; nothing to print"]);
    expect(rig.fw.sent).toHaveLength(1);
  });

  it("warns when the syslog buffer has no CPU view", async () => {
    const rig = await passive({
      shmemSetup: (b: RtkitShmem) => {
        b.iova = dmaAddr(0x5000_0000);
      },
      shmemDestroy: () => {},
    });
    await deliver(rig, EP_SYSLOG, request(1));
    await deliver(rig, EP_SYSLOG, encodeSyslogInit({ entries: 1, msgSize: 0x10 }));
    await deliver(rig, EP_SYSLOG, encodeSyslogLog({ index: 0 }));
    expect(rig.logs.at("warn")).toEqual([
      "RTKit: received syslog message but no syslog_buffer.buffer or syslog_buffer.iomem",
    ]);
  });

  it("reads an entry of a ring that has only an iomem accessor (memcpy_fromio)", async () => {
    const ring = new Uint8Array(0x1000);
    const reads: [number, number][] = [];
    const rig = await passive({
      shmemSetup: (b: RtkitShmem) => {
        b.isMapped = true;
        b.iomem = {
          readBytes: (offset: number, dest: Uint8Array) => {
            reads.push([offset, dest.length]);
            dest.set(ring.subarray(offset, offset + dest.length));
          },
        };
      },
      shmemDestroy: () => {},
    });
    await deliver(rig, EP_SYSLOG, request(1, 0x5000_0000));
    await deliver(rig, EP_SYSLOG, encodeSyslogInit({ entries: 4, msgSize: 0x40 }));
    rig.fw.cfg = { ...rig.fw.cfg, syslogMsgSize: 0x40 };
    rig.fw.syslog(ring, 1, "smc", "from SRAM\n");
    await rig.rtk.settled();
    expect(rig.logs.at("info")).toEqual(["RTKit: syslog message: smc: from SRAM"]);
    expect(reads).toEqual([[0x60, 0x60]]); // one entry: its 0x20-byte header and the text
  });

  it("logs an iomem accessor that throws, prints nothing and still acks", async () => {
    const rig = await passive({
      shmemSetup: (b: RtkitShmem) => {
        b.isMapped = true;
        b.iomem = {
          readBytes: () => {
            throw new DevrefError("ENODEV", "gone");
          },
        };
      },
      shmemDestroy: () => {},
    });
    await deliver(rig, EP_SYSLOG, request(1, 0x5000_0000));
    await deliver(rig, EP_SYSLOG, encodeSyslogInit({ entries: 4, msgSize: 0x40 }));
    const log = encodeSyslogLog({ index: 0 });
    await deliver(rig, EP_SYSLOG, log);
    expect(rig.logs.at("info")).toEqual([]);
    expect(rig.logs.at("err")).toEqual([
      "RTKit: reading a shared buffer through its iomem failed: ENODEV: gone",
    ]);
    expect(rig.fw.sent.map((s) => s.msg0)).toEqual([log]);
  });

  it("warns about unknown syslog types", async () => {
    const rig = await passive();
    await deliver(rig, EP_SYSLOG, 0x3n << 52n);
    expect(rig.logs.lines).toEqual(["warn RTKit: Unknown syslog message: 30000000000000"]);
  });
});
