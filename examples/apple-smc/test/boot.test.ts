// Probe on the simulated SoC: wake, the RTKit handshake, the system buffers, STARTEP,
// INITIALIZE and the shared buffer, #KEY, NTAP; what the binding holds and gives back.
import { auditDevices, holders } from "@devref/device-core";
import { REFERENCE_MAP as M, type MboxTraceRecord } from "@devref/sim";
import { describe, expect, it } from "vitest";
import { settleUntil } from "../src/index.js";
import { booted, makeRig } from "./helpers.js";

function smcRefs(rig: ReturnType<typeof makeRig>): string[] {
  const ref = rig.fw.device("smc", "test");
  const labels = holders(ref!).map((h) => h.label);
  ref!.put();
  return labels.filter((l) => l !== "test");
}

describe("probe", () => {
  it("wakes the firmware, initializes the SMC and reads #KEY", async () => {
    const rig = await booted();
    const { smc, parts } = rig;
    expect(smc.stage).toBe("running");
    expect(smc.keyCount).toBe(parts.smc.keyCount);
    expect(parts.firmware.state).toBe("running");
    // NTAP = 1 was written: the SMC sends notifications.
    expect(parts.smc.notificationsEnabled).toBe(true);
    expect(parts.smc.keyValue("NTAP")).toEqual(new Uint8Array([1]));
    // The first commands after INITIALIZE carry IDs 1 (#KEY) and 2 (NTAP).
    const fromAp = rig.soc
      .trace()
      .filter((r): r is MboxTraceRecord => r.kind === "mbox")
      .filter((r) => r.direction === "a2i" && r.msg1 === 0x20);
    expect(fromAp.map((r) => [r.msg0Hi >>> 0, r.msg0Lo >>> 0])).toEqual([
      [0, 0x17], // INITIALIZE
      [0x234b_4559, 0x0004_1010], // READ_KEY #KEY, 4 bytes, ID 1
      [0x4e54_4150, 0x0001_2011], // WRITE_KEY NTAP, 1 byte, ID 2
    ]);
    expect(rig.lines("err")).toEqual([]);
    expect(rig.lines("info")).toContain(`SMC up: ${parts.smc.keyCount} keys`);
  });

  it("serves the firmware's buffer requests from coherent DMA, which it reaches", async () => {
    const rig = await booted();
    const a = rig.dma.audit();
    expect(a.ok).toBe(true);
    expect(a.coherentBytes).toBe(3 * 0x1000); // crashlog, IOReport, syslog: one page each
    const at = [1, 2, 4].map((ep) => rig.parts.firmware.bufferAddress(ep as 1 | 2 | 4));
    for (const pa of at) {
      expect(pa).toBeGreaterThanOrEqual(M.RAM_BASE);
      expect(rig.soc.ram.isAllocated(pa, 0x1000)).toBe(true);
    }
    // A syslog line from the firmware is read out of the coherent ring and printed.
    rig.parts.firmware.log("smc", "fan curve loaded");
    await rig.soc.settle();
    expect(rig.lines("info")).toContain("RTKit: syslog message: smc: fan curve loaded");
  });

  it("maps buffers the firmware keeps in SRAM instead (t8103), allocating nothing", async () => {
    const rig = await booted({ smc: {} });
    expect(rig.dma.audit().coherentBytes).toBe(0);
    expect(rig.parts.firmware.bufferAddress(2)).toBe(M.SMC_SRAM_BASE + 0xa000);
    rig.parts.firmware.log("smc", "from SRAM");
    await rig.soc.settle();
    expect(rig.lines("info")).toContain("RTKit: syslog message: smc: from SRAM");
  });

  it("holds one RTKit reference while bound, and gives everything back at unbind", async () => {
    const rig = await booted();
    // The RTKit client's own reference, and the devres action that frees it at unbind.
    expect(smcRefs(rig).filter((l) => l === "rtkit")).toHaveLength(2);
    expect(rig.soc.irq.isConnected(M.SMC_IRQ + 3)).toBe(true); // recv-not-empty
    expect(rig.soc.irq.isConnected(M.SMC_IRQ)).toBe(false); // send-empty only while waiting
    await settleUntil(rig.soc, rig.smc.shutdown());
    expect(rig.parts.firmware.state).toBe("asleep"); // quiesced: the next wake boots it
    rig.platform.unregisterDriver(rig.driver.driver);
    expect(smcRefs(rig)).toEqual(["firmware", "platform bus"]);
    expect(rig.driver.client("smc")).toBeNull();
    expect(rig.dma.audit().coherentBytes).toBe(0);
    expect(rig.soc.aic.interrupts()).toEqual([]);
    await expect(rig.smc.readKey("TB0T")).rejects.toMatchObject({ code: "ENODEV" });
    rig.fw.remove();
    expect(auditDevices(rig.soc.machine)).toEqual([]);
    expect(rig.soc.dmaUseAfterFree()).toEqual([]);
  });

  it("rebinds after shutdown through a fresh wake, without restarting the CPU", async () => {
    const rig = await booted();
    await settleUntil(rig.soc, rig.smc.shutdown());
    rig.platform.unregisterDriver(rig.driver.driver);
    rig.platform.registerDriver(rig.driver.driver);
    await rig.soc.settle();
    const again = rig.driver.client("smc")!;
    expect(again).not.toBe(rig.smc);
    expect(again.stage).toBe("running");
    expect(again.stats().cpuRestarts).toBe(0);
    expect(await settleUntil(rig.soc, again.readKey("#KEY"))).toBe(rig.parts.smc.keyCount);
  });

  it("rebinds without a shutdown by restarting the CPU (the firmware was left running)", async () => {
    const rig = await booted();
    rig.platform.unregisterDriver(rig.driver.driver);
    rig.platform.registerDriver(rig.driver.driver);
    await rig.soc.settle();
    const again = rig.driver.client("smc")!;
    expect(again.stage).toBe("running");
    expect(again.stats().cpuRestarts).toBe(1);
    expect(rig.lines("warn")).toContain(
      "the SMC did not come up after wake (ETIME); restarting its CPU",
    );
    // The first binding's coherent buffers went at its unbind; the firmware never wrote them after.
    expect(rig.soc.dmaUseAfterFree()).toEqual([]);
    expect(rig.dma.audit().coherentBytes).toBe(3 * 0x1000);
  });

  it("fails with EIO when INITIALIZE names a buffer outside SRAM (boot stage no-shmem)", async () => {
    const rig = makeRig();
    rig.soc.faults.inject({ kind: "smc-fault", target: "smc", mode: "bad-shmem", count: 2 });
    await rig.soc.settle();
    expect(rig.driver.client("smc")).toBeNull();
    expect(auditDevices(rig.soc.machine).find((d) => d.name === "smc")?.probeError).toBe("EIO");
    expect(
      rig.lines("err").some((l) => l.startsWith("Failed to initialize shared memory (-EFAULT)")),
    ).toBe(true);
    // Nothing of the failed binding is left: no RTKit reference, no buffers, no interrupt.
    expect(smcRefs(rig)).toEqual(["firmware", "platform bus"]);
    expect(rig.dma.audit().coherentBytes).toBe(0);
    expect(rig.soc.aic.interrupts()).toEqual([]);
  });

  it("refuses a firmware buffer outside SRAM (EFAULT, no reply) and still comes up", async () => {
    const rig = await booted({
      smc: { firmware: { ioreport: { pages: 1, address: M.RAM_BASE + 0x10_0000 } } },
    });
    expect(rig.smc.stage).toBe("running");
    expect(rig.lines("err")).toContain(
      `RTKit buffer request outside SRAM region: [0x${(M.RAM_BASE + 0x10_0000).toString(16)}, 0x${(M.RAM_BASE + 0x10_0fff).toString(16)}]`,
    );
    expect(rig.lines("err")).toContain("RTKit: failed buffer request for 0x1000 bytes (-14)");
  });

  it("needs the mailbox on the SMC node: a separate mailbox node fails with ENODEV", async () => {
    const rig = makeRig({ register: false });
    rig.fw.remove();
    const { describeSoc } = await import("@devref/sim");
    rig.platform.registerDriver(rig.driver.driver);
    const fw = describeSoc(rig.soc, { platform: rig.platform });
    await rig.soc.settle();
    expect(rig.driver.client("smc")).toBeNull();
    expect(rig.lines("err").some((l) => l.includes('mailbox: "inline"'))).toBe(true);
    fw.remove();
  });
});
