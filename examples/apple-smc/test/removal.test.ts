// The ASC pulled, the driver unbound in the middle of a command, a client kept past its
// binding: every call ends with ENODEV, nothing waits forever, nothing is left behind.
import { auditDevices } from "@devref/device-core";
import { REFERENCE_MAP as M } from "@devref/sim";
import { describe, expect, it } from "vitest";
import { settleFor, settleUntil } from "../src/index.js";
import { booted } from "./helpers.js";

describe("surprise removal", () => {
  it("the next command notices the all-ones registers: ENODEV at once, the stage is gone", async () => {
    const rig = await booted();
    const { soc, smc } = rig;
    soc.faults.inject({ kind: "unplug", target: "smc" });
    const t0 = soc.nowNs;
    await expect(settleUntil(soc, smc.readKey("TB0T"))).rejects.toMatchObject({ code: "ENODEV" });
    expect(soc.nowNs).toBe(t0); // no timeout was needed
    expect(smc.stage).toBe("gone");
    await expect(smc.whenRunning()).rejects.toMatchObject({ code: "ENODEV" });
    await expect(settleUntil(soc, smc.shutdown())).rejects.toMatchObject({ code: "ENODEV" });
    rig.platform.unregisterDriver(rig.driver.driver);
    rig.fw.remove();
    expect(auditDevices(soc.machine)).toEqual([]);
    expect(rig.dma.audit().coherentBytes).toBe(0);
    expect(soc.dmaUseAfterFree()).toEqual([]);
  });

  it("a command waiting for its reply when the ASC goes fails with ENODEV at its timeout", async () => {
    const { soc, smc } = await booted();
    const p = smc.readKeyRaw("B0AV", 2);
    p.catch(() => {});
    await settleFor(soc, 1); // sent
    soc.faults.inject({ kind: "unplug", target: "smc" });
    await expect(settleUntil(soc, p)).rejects.toMatchObject({ code: "ENODEV" });
    expect(smc.stage).toBe("gone");
  });
});

describe("unbinding", () => {
  it("in the middle of a command: the command fails with ENODEV, the binding's resources go", async () => {
    const rig = await booted();
    const { soc, smc, parts } = rig;
    parts.smc.fault("no-reply");
    const p = smc.readKeyRaw("B0AV", 2);
    p.catch(() => {});
    await settleFor(soc, 1_000_000);
    rig.platform.unregisterDriver(rig.driver.driver);
    await expect(settleUntil(soc, p)).rejects.toMatchObject({ code: "ENODEV" });
    expect(smc.isBound).toBe(false);
    await expect(smc.listKeys()).rejects.toMatchObject({ code: "ENODEV" });
    await expect(smc.shutdown()).rejects.toMatchObject({ code: "ENODEV" });
    for (let l = M.SMC_IRQ; l < M.SMC_IRQ + 4; l++) expect(soc.irq.isConnected(l)).toBe(false);
    expect(rig.dma.audit().coherentBytes).toBe(0);
    // No timer of the old binding fires into anything later.
    soc.runFor(2_000_000_000);
    expect(rig.lines("err").filter((l) => l.startsWith("Command timed out"))).toEqual([]);
    rig.fw.remove();
    expect(auditDevices(soc.machine)).toEqual([]);
  });

  it("while the firmware restarts after a crash: the restart stops, nothing leaks", async () => {
    const rig = await booted();
    const { soc, smc, parts } = rig;
    parts.firmware.crash("panic");
    expect(soc.runUntil(() => smc.stage === "recovering")).toBe(true);
    rig.platform.unregisterDriver(rig.driver.driver);
    await soc.settle();
    expect(smc.stage).toBe("unbound");
    expect(rig.dma.audit().coherentBytes).toBe(0);
    expect(soc.dmaUseAfterFree()).toEqual([]);
    rig.fw.remove();
    expect(auditDevices(soc.machine)).toEqual([]);
  });
});
