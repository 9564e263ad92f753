import { dmaAddr } from "@devref/raw-device";
import { EP_CRASHLOG, encodeBufferRequest, parseCrashlog, type RtkitShmem } from "@devref/rtkit";
import { describe, expect, it } from "vitest";
import { buildCrashlog, regsSection, strSection, versionSection } from "./crashlog-builder.js";
import { booted, outcome, type Rig } from "./rig.js";

const crash = encodeBufferRequest({ pages: 1, iova: 0 });

function crashlogBuffer(rig: Rig): Uint8Array {
  const iova = rig.fw.bufferAt.get(EP_CRASHLOG)!;
  return rig.dma.buffers.get(iova)!;
}

async function crashWith(rig: Rig, log: Uint8Array | null): Promise<void> {
  if (log !== null) crashlogBuffer(rig).set(log);
  rig.rtk.receive(EP_CRASHLOG, crash);
  await rig.rtk.settled();
}

describe("crash handling (rtkit.md §9)", () => {
  it("treats a type-1 message after the buffer request as a crash and hands over a copy", async () => {
    const rig = await booted();
    const log = buildCrashlog([strSection(7, "assert"), versionSection("rtk-1.0")]);
    await crashWith(rig, log);
    expect(rig.rtk.isCrashed).toBe(true);
    expect(rig.rtk.isRunning).toBe(false);
    expect(rig.crashes).toHaveLength(1);
    const copy = rig.crashes[0]!;
    expect(copy.length).toBe(0x1000);
    expect(copy.subarray(0, log.length)).toEqual(log);
    // A copy: the firmware scribbling on its buffer afterwards does not change it.
    crashlogBuffer(rig).fill(0xee);
    expect(parseCrashlog(copy).sections[1]).toMatchObject({ version: "rtk-1.0" });
    expect(rig.logs.at("err")).toContain("RTKit: co-processor has crashed");
    expect(rig.logs.at("warn")).toEqual([
      "RTKit: Message (id=7): assert",
      "RTKit: Version: rtk-1.0",
    ]);
  });

  it("copies a crashlog through the buffer's iomem accessor when it has no bytes", async () => {
    const log = buildCrashlog([strSection(3, "from iomem")]);
    const mem = new Uint8Array(0x1000);
    mem.set(log);
    const rig = await booted(
      {},
      {
        shmemSetup: (b: RtkitShmem) => {
          b.iova = dmaAddr(0x9000_0000 + b.size);
          b.iomem = {
            readBytes: (o: number, dest: Uint8Array) => dest.set(mem.subarray(o, o + dest.length)),
          };
        },
        shmemDestroy: () => {},
      },
    );
    rig.rtk.receive(EP_CRASHLOG, crash);
    await rig.rtk.settled();
    expect(rig.crashes).toHaveLength(1);
    expect(rig.crashes[0]!.subarray(0, log.length)).toEqual(log);
    expect(rig.logs.at("warn")).toContain("RTKit: Message (id=3): from iomem");
  });

  it("logs the register dump like the kernel", async () => {
    const rig = await booted();
    await crashWith(rig, buildCrashlog([regsSection((i) => BigInt(i), 0x9n, 0x4242n)]));
    expect(rig.logs.at("warn")).toContain("  == Exception taken from EL2h ==");
    expect(rig.logs.at("warn")).toContain("  PC     = 0x4242");
    expect(rig.logs.at("dbg")).toContain("RTKit: End of crashlog reached");
  });

  it("still marks the crash and calls ops.crashed when the crashlog cannot be parsed", async () => {
    const rig = await booted();
    await crashWith(rig, new Uint8Array(64).fill(0x11));
    expect(rig.rtk.isCrashed).toBe(true);
    expect(rig.crashes).toHaveLength(1);
    expect(rig.logs.at("warn")).toContain("RTKit: Expected crashlog header but got 11111111");
    const huge = await booted();
    await crashWith(huge, buildCrashlog([], { headerSize: 0x2000 }));
    expect(huge.logs.at("warn")).toContain("RTKit: Crashlog size (2000) is too large");
    expect(huge.crashes).toHaveLength(1);
  });

  it("passes null when the crashlog buffer has no CPU view", async () => {
    const rig = await booted(
      {},
      {
        shmemSetup: (b: RtkitShmem) => {
          b.iova = dmaAddr(0x7000_0000 + b.size);
        },
        shmemDestroy: () => {},
      },
    );
    rig.rtk.receive(EP_CRASHLOG, crash);
    await rig.rtk.settled();
    expect(rig.crashes).toEqual([null]);
    expect(rig.rtk.isCrashed).toBe(true);
  });

  it("refuses sends, application starts and boot after a crash, until reinit", async () => {
    const rig = await booted();
    await crashWith(rig, null);
    expect(await outcome(rig.rtk.sendMessage(0x20, 1n), rig.rtk)).toBe("EINVAL");
    expect(await outcome(rig.rtk.sendMessage(2, 1n), rig.rtk)).toBe("EINVAL");
    expect(rig.logs.at("warn")).toContain("RTKit: Device is crashed, cannot send message");
    expect(await outcome(rig.rtk.startEp(0x20), rig.rtk)).toBe("EINVAL");
    // A system endpoint's start "succeeds": the kernel ignores the failed STARTEP.
    expect(await outcome(rig.rtk.startEp(2), rig.rtk)).toBe("ok");
    expect(await outcome(rig.rtk.boot(), rig.rtk)).toBe("EINVAL");
    await rig.rtk.reinit();
    expect(rig.rtk.isCrashed).toBe(false);
    rig.fw.start();
    await rig.rtk.boot();
    expect(rig.rtk.isRunning).toBe(true);
  });

  it("reports every further crash message again", async () => {
    const rig = await booted();
    await crashWith(rig, null);
    await crashWith(rig, null);
    expect(rig.crashes).toHaveLength(2);
  });

  it("warns about other crashlog types", async () => {
    const rig = await booted();
    rig.rtk.receive(EP_CRASHLOG, 0x2n << 52n);
    await rig.rtk.settled();
    expect(rig.logs.at("warn")).toContain("RTKit: Unknown crashlog message: 20000000000000");
    expect(rig.rtk.isCrashed).toBe(false);
  });

  it("keeps going when ops.crashed throws", async () => {
    const rig = await booted(
      {},
      {
        crashed: () => {
          throw new Error("driver bug");
        },
      },
    );
    await crashWith(rig, null);
    expect(rig.rtk.isCrashed).toBe(true);
    expect(rig.logs.at("err")).toContain("RTKit: ops.crashed threw: driver bug");
  });
});
