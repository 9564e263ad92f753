// The SMC's coprocessor behind the DART (its DMA on a stream, `iommus` in its node): the
// RTKit buffers are coherent allocations mapped at IOVAs by the DART driver, and the
// firmware's syslog and crashlog reach the CPU through them.
import { PlatformBus } from "@devref/bus";
import { auditDevices, type LogRecord } from "@devref/device-core";
import { DmaSystem } from "@devref/dma-iommu";
import { createAppleDartDriver } from "@devref/example-apple-dart";
import { createReferenceSoc, describeSoc, REFERENCE_MAP as M } from "@devref/sim";
import { describe, expect, it } from "vitest";
import { createAppleSmcDriver, settleUntil } from "../src/index.js";

// Buffers of one 16 KiB DART page each.
const DART_PAGE_BUFFERS = {
  firmware: { crashlog: { pages: 4 }, ioreport: { pages: 4 }, syslog: { pages: 4 } },
};

const SMC_SID = 4;

describe("behind the DART", () => {
  it("boots, logs, crashes and restarts with its buffers at IOVAs, and leaves nothing", async () => {
    const logs: LogRecord[] = [];
    const {
      soc,
      dart,
      smc: parts,
    } = createReferenceSoc({
      seed: 2,
      blk: false,
      smc: DART_PAGE_BUFFERS,
      logSink: (r) => logs.push(r),
    });
    dart.attach(parts!.asc.dma, SMC_SID);
    const system = new DmaSystem({
      machine: soc.machine,
      memory: soc.memory,
      ram: soc.ram,
      swiotlb: { nslabs: 128 },
    });
    const platform = new PlatformBus({ machine: soc.machine });
    const darts = createAppleDartDriver({ system });
    const smcDriver = createAppleSmcDriver({ timers: soc.events });
    platform.registerDriver(darts.driver);
    platform.registerDriver(smcDriver.driver);
    const fw = describeSoc(soc, { platform, mailbox: "inline" });
    expect(fw.nodes.find((n) => n.name === "smc")?.spec.iommus).toEqual([
      { iommu: "dart0", ids: [SMC_SID] },
    ]);
    await soc.settle();
    const smc = smcDriver.client("smc")!;
    expect(smc.stage).toBe("running");
    // The firmware was given device addresses outside RAM: IOVAs the DART translates.
    const syslogAt = parts!.firmware.bufferAddress(2);
    expect(syslogAt < M.RAM_BASE || syslogAt >= M.RAM_BASE + 0x1000_0000).toBe(true);
    parts!.firmware.log("smc", "through the DART");
    await soc.settle();
    expect(logs.map((r) => r.message)).toContain("RTKit: syslog message: smc: through the DART");
    parts!.firmware.crash("behind the DART");
    soc.runUntil(() => smc.stage !== "running");
    await settleUntil(soc, smc.whenRunning());
    expect(smc.crashes[0]!.messages).toContain("behind the DART");
    expect(await settleUntil(soc, smc.readKey("BUIC"))).toBe(80);
    await settleUntil(soc, smc.shutdown());
    fw.remove();
    await soc.settle();
    expect(auditDevices(soc.machine)).toEqual([]);
    const a = system.audit();
    expect(a.problems).toEqual([]);
    expect(a.coherentBytes).toBe(0);
    expect(a.iovaBytes).toBe(0);
    expect(soc.dmaUseAfterFree()).toEqual([]);
    expect(logs.filter((r) => r.level === "err" && !r.message.includes("crash"))).toEqual([]);
  });
});
