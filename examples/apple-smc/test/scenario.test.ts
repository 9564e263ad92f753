// The scenario: a clean run narrates every stage and leaves nothing behind, the same seed
// gives the same run, and the exploration — removal, a crash, and silence injected at every
// step of it — finds zero leaks, zero uses after free and zero non-DevrefError exceptions.
import { explore, outcomeFailed } from "@devref/sim";
import { describe, expect, it } from "vitest";
import { appleSmcScenario, makeAppleSmcScenario } from "../src/index.js";

describe("appleSmcScenario", () => {
  it("runs clean: probe, keys, sensors, a write, a notification, teardown, nothing left", async () => {
    const lines: string[] = [];
    const o = await appleSmcScenario.run({ narrate: (l) => lines.push(l) });
    expect(o).toMatchObject({
      scenario: "apple-smc",
      result: "completed",
      exceptions: [],
      leaks: [],
      useAfterFree: [],
    });
    expect(lines).toContain("probe: SMC running, 31 keys, notifications on");
    expect(lines.some((l) => l.startsWith("keys: 31 listed (#KEY ui32/4"))).toBe(true);
    expect(lines).toContain("sensor: TB0T = 30.00");
    expect(lines).toContain("time: +5 s");
    expect(lines).toContain("sensor: TB0T = 35.00"); // the sensor moved with virtual time
    expect(lines).toContain("write: F0Tg (fan target) = 2400 RPM");
    expect(lines).toContain("event: lid closed");
    expect(lines.at(-1)).toBe("teardown: nothing left behind");
    expect(lines.filter((l) => l.startsWith("  err") || l.startsWith("  warn"))).toEqual([]);
  });

  it("is deterministic: the same seed gives the same digest", async () => {
    const a = await appleSmcScenario.run({ seed: 5 });
    const b = await appleSmcScenario.run({ seed: 5 });
    expect(a.digest).toBe(b.digest);
    expect(a.steps).toBe(b.steps);
  });

  it("with the firmware's buffers in SRAM (t8103) it completes too", async () => {
    const o = await makeAppleSmcScenario({ buffers: "sram" }).run();
    expect(o.result).toBe("completed");
    expect(o.leaks).toEqual([]);
  });

  it("reports an injected crash as recovered, and with recover: false as a crash", async () => {
    const crash = { at: { step: 600 }, spec: appleSmcScenario.injections["rtkit-crash"]! };
    const o = await appleSmcScenario.run({ faults: [crash] });
    expect(o.result).toBe("firmware crashed, recovered");
    expect(outcomeFailed(o)).toBe(false);
    const down = await makeAppleSmcScenario({ recover: false }).run({ faults: [crash] });
    expect(down.result).toBe("firmware crashed");
    expect(outcomeFailed(down)).toBe(false);
  });

  it("explore: unplug, rtkit-crash, rtkit-silence and rtkit-garbage at every step, zero failures", async () => {
    const report = await explore(appleSmcScenario, { seed: 1 });
    expect(report.failures).toEqual([]);
    expect(report.explored).toBe(report.steps);
    expect(report.runs).toBe(4 * report.steps);
    const kinds = Object.keys(report.outcomes);
    for (const k of [
      "unplug: device removed",
      "unplug: probe failed (ENODEV)",
      "rtkit-crash: firmware crashed, recovered",
      "rtkit-crash: firmware restarted at probe",
      "rtkit-silence: commands timed out",
      "rtkit-garbage: commands timed out",
    ]) {
      expect(kinds).toContain(k);
    }
    expect(kinds.some((k) => k.includes("driver bug"))).toBe(false);
    // For the record (the README quotes these figures).
    console.log(
      `apple-smc explore: ${report.steps} steps, ${report.runs} runs`,
      JSON.stringify(report.outcomes),
    );
  }, 900_000);
});
