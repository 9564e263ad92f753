// A firmware crash at each interesting point: the crashlog is copied, parsed and kept, the
// command in flight fails with EIO, and the driver restarts the coprocessor (or, with
// recover: false, stays down as the kernel's driver does) — leaving no buffer behind.
import { DevrefError } from "@devref/raw-device";
import type { CrashlogCorruption } from "@devref/sim";
import { describe, expect, it } from "vitest";
import { type AppleSmc, settleFor, settleUntil } from "../src/index.js";
import { booted, makeRig, type Rig } from "./helpers.js";

/** Crashes the firmware and runs the SoC until the driver has seen it. */
function crash(rig: Rig, smc: AppleSmc, reason: string, corrupt?: CrashlogCorruption): void {
  expect(rig.parts.firmware.crash(reason, corrupt)).toBe(true);
  expect(rig.soc.runUntil(() => smc.stage !== "running")).toBe(true);
}

describe("a crash while running", () => {
  it("parses the crashlog, restarts the firmware, and the SMC answers again", async () => {
    const rig = await booted();
    const { soc, smc, parts, dma, lines } = rig;
    const stages: string[] = [];
    smc.onStageChange((s) => stages.push(s));
    const before = dma.audit().coherentBytes;
    crash(rig, smc, "assertion failed in smc_poll");
    await settleUntil(soc, smc.whenRunning());
    expect(stages).toEqual(["crashed", "recovering", "booting", "initialized", "running"]);
    expect(smc.crashes).toHaveLength(1);
    const c = smc.crashes[0]!;
    expect(c.messages).toContain("assertion failed in smc_poll");
    expect(c.version).toBe("RTKit-sim 1.0");
    expect(c.problem).toBeNull();
    const kinds = c.crashlog!.sections.map((s) => s.kind);
    expect(kinds).toEqual(["version", "str", "time", "mailbox", "registers"]);
    const regs = c.crashlog!.sections.find((s) => s.kind === "registers");
    expect(regs?.kind === "registers" && regs.registers.exceptionLevel).toBe("EL1h");
    expect(lines("err")).toContain("RTKit: co-processor has crashed");
    expect(smc.stats()).toMatchObject({ recoveries: 1, cpuRestarts: 1 });
    // Fresh buffers for the new session, the old ones freed; notifications back on.
    expect(dma.audit().coherentBytes).toBe(before);
    expect(parts.smc.notificationsEnabled).toBe(true);
    expect(await settleUntil(soc, smc.readKey("BUIC"))).toBe(80);
    expect(soc.dmaUseAfterFree()).toEqual([]);
  });

  it("fails the command in flight with EIO; it succeeds once the SMC runs again", async () => {
    const rig = await booted();
    const { soc, smc, parts } = rig;
    parts.smc.fault("no-reply");
    const p = smc.readKeyRaw("B0AV", 2);
    p.catch(() => {});
    await settleFor(soc, 100_000_000); // sent, and not answered
    crash(rig, smc, "watchdog");
    const err = await settleUntil(soc, p).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(DevrefError);
    expect((err as DevrefError).code).toBe("EIO");
    expect((err as DevrefError).message).toMatch(/crashed \(watchdog/);
    // Commands while it restarts fail fast with EIO rather than waiting.
    expect(smc.stage).toBe("crashed");
    await expect(smc.readKey("TB0T")).rejects.toMatchObject({ code: "EIO" });
    await settleUntil(soc, smc.whenRunning());
    expect(await settleUntil(soc, smc.readKeyRaw("B0AV", 2))).toEqual(parts.smc.keyValue("B0AV"));
  });

  it.each<CrashlogCorruption>(["bad-magic", "too-large", "zero-section", "no-footer"])(
    "a damaged crashlog (%s) is reported, not trusted, and the SMC still restarts",
    async (corrupt) => {
      const rig = await booted();
      const { soc, smc } = rig;
      crash(rig, smc, "panic", corrupt);
      await settleUntil(soc, smc.whenRunning());
      const c = smc.crashes[0]!;
      if (corrupt === "bad-magic" || corrupt === "too-large") {
        expect(c.crashlog).toBeNull();
        expect(c.problem).toMatch(/crashlog/i);
      } else {
        expect(c.crashlog).not.toBeNull();
        expect(c.problem).not.toBeNull();
      }
      expect(smc.stage).toBe("running");
    },
  );

  it("a crashlog kept in SRAM is read through the SRAM window", async () => {
    const rig = await booted({ smc: {} });
    const { soc, smc } = rig;
    crash(rig, smc, "sram panic");
    await settleUntil(soc, smc.whenRunning());
    expect(smc.crashes[0]!.messages).toContain("sram panic");
  });

  it("crashes again while restarting: tries again, up to maxRecoveries, then gives up", async () => {
    const rig = await booted({ driver: { maxRecoveries: 2 } });
    const { soc, smc, lines } = rig;
    crash(rig, smc, "first");
    await settleUntil(soc, smc.whenRunning());
    crash(rig, smc, "second");
    await settleUntil(soc, smc.whenRunning());
    crash(rig, smc, "third");
    await expect(settleUntil(soc, smc.whenRunning())).rejects.toMatchObject({ code: "EIO" });
    expect(smc.stage).toBe("crashed");
    expect(lines("err")).toContain(
      "not restarting the SMC again (2 restarts this binding); every command fails with EIO until a rebind",
    );
    expect(smc.crashes.map((c) => c.messages[0])).toEqual(["first", "second", "third"]);
  });
});

describe("recover: false (the kernel's behaviour)", () => {
  it("stays crashed: every command fails with EIO until a rebind, which brings it back", async () => {
    const rig = await booted({ driver: { recover: false } });
    const { soc, smc } = rig;
    crash(rig, smc, "panic");
    await soc.settle();
    expect(smc.stage).toBe("crashed");
    await expect(smc.readKey("TB0T")).rejects.toMatchObject({ code: "EIO" });
    await expect(smc.whenRunning()).rejects.toMatchObject({ code: "EIO" });
    // shutdown has nothing to quiesce; unbind and bind again: the probe restarts the CPU.
    await settleUntil(soc, smc.shutdown());
    rig.platform.unregisterDriver(rig.driver.driver);
    expect(rig.dma.audit().coherentBytes).toBe(0);
    rig.platform.registerDriver(rig.driver.driver);
    await soc.settle();
    const again = rig.driver.client("smc")!;
    expect(again.stage).toBe("running");
    expect(again.stats().cpuRestarts).toBe(1);
  });
});

describe("a crash during probe", () => {
  it("before the crashlog buffer exists the firmware just stops: probe restarts its CPU", async () => {
    const rig = makeRig();
    // Early in the handshake (before any buffer request was answered).
    rig.soc.faults.schedule({ step: 20 }, { kind: "rtkit-crash", target: "smc" });
    await rig.soc.settle();
    const smc = rig.driver.client("smc")!;
    expect(smc.stage).toBe("running");
    expect(smc.crashes).toEqual([]);
    expect(smc.stats().cpuRestarts).toBe(1);
  });

  it("with a crashlog: kept, and the probe's restart brings the SMC up", async () => {
    const rig = makeRig();
    // After the buffers are set up, before INITIALIZE is answered.
    rig.soc.faults.schedule({ step: 140 }, { kind: "rtkit-crash", target: "smc" });
    await rig.soc.settle();
    const smc = rig.driver.client("smc")!;
    expect(smc.stage).toBe("running");
    expect(smc.crashes).toHaveLength(1);
    expect(smc.stats().cpuRestarts).toBe(1);
    expect(rig.parts.smc.notificationsEnabled).toBe(true);
  });
});
