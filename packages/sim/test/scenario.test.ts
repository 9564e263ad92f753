// Scenarios and exploration, and the SoC's use-after-free report for DMA.
import { DevrefError } from "@devref/raw-device";
import {
  describeException,
  describeUseAfterFree,
  explore,
  type Scenario,
  type ScenarioOptions,
  type ScenarioOutcome,
  Soc,
} from "@devref/sim";
import { describe, expect, it } from "vitest";

describe("DMA use after free", () => {
  it("a DMA access to RAM freed before it is reported, with the master and the step", () => {
    const soc = new Soc({ seed: 3 });
    const dma = soc.dmaMaster("engine0");
    const buf = soc.ram.alloc(4096);
    expect(dma.write32(buf, 1)).toBe(true);
    expect(soc.dmaUseAfterFree()).toEqual([]);
    soc.ram.free(buf, 4096);
    expect(dma.write32(buf + 8, 2)).toBe(true); // hardware does not know
    expect(soc.dmaUseAfterFree()).toEqual([
      { master: "engine0", pa: buf + 8, length: 4, write: true, step: 0, timeNs: 0 },
    ]);
    expect(describeUseAfterFree(soc.dmaUseAfterFree())).toEqual([
      `engine0 wrote 4 bytes at 0x${(buf + 8).toString(16)} (step 0)`,
    ]);
    // SAFETY: deliberately wrong-typed records.
    expect(() => describeUseAfterFree([{ master: Symbol("x") }] as never)).toThrowError(/EINVAL/);
  });
});

/** A tiny scenario: a timer-driven "device" writes a buffer five times, then the buffer is freed. */
function tinyScenario(freeEarly: boolean): Scenario {
  return {
    name: "tiny",
    description: "five DMA writes into a buffer, then teardown",
    // SAFETY (test): a fault kind this test defines on each SoC, outside the FaultKinds map.
    injections: { stop: { kind: "test-stop" } as never },
    async run(options: ScenarioOptions = {}): Promise<ScenarioOutcome> {
      const soc = new Soc({ seed: options.seed ?? 1, trace: "digest" });
      const dma = soc.dmaMaster("engine0");
      // SAFETY (test): see injections above.
      soc.faults.define("test-stop" as never, () => () => {
        dma.injectedErrors = 100;
      });
      for (const f of options.faults ?? []) soc.faults.schedule(f.at, f.spec);
      const buf = soc.ram.alloc(4096);
      let failed = 0;
      for (let i = 0; i < 5; i++) {
        soc.events.after(1000 * (i + 1), () => {
          if (!dma.write32(buf + 4 * i, i)) failed++;
        });
      }
      if (freeEarly) soc.ram.free(buf, 4096);
      const exceptions = [];
      try {
        soc.run();
      } catch (e) {
        exceptions.push(describeException(e));
      }
      if (!freeEarly) soc.ram.free(buf, 4096);
      return {
        scenario: "tiny",
        seed: options.seed ?? 1,
        steps: soc.stepCount,
        timeNs: soc.nowNs,
        digest: soc.traceDigest(),
        result: failed > 0 ? "dma failed" : "completed",
        exceptions,
        leaks: soc.ram.bytesInUse > 0 ? [`${soc.ram.bytesInUse} bytes of RAM`] : [],
        useAfterFree: soc.dmaUseAfterFree().map((u) => `${u.master} at ${u.pa}`),
      };
    },
  };
}

describe("explore", () => {
  it("reruns the scenario with the fault at every step and counts outcomes", async () => {
    const progress: number[] = [];
    const report = await explore(tinyScenario(false), { onProgress: (d) => progress.push(d) });
    expect(report.steps).toBe(5);
    expect(report.runs).toBe(5);
    expect(report.failures).toEqual([]);
    expect(report.outcomes).toEqual({ "stop: dma failed": 5 });
    expect(progress).toEqual([1, 2, 3, 4, 5]);
    // Deterministic: the same exploration twice gives the same report.
    expect(await explore(tinyScenario(false))).toEqual(report);
  });

  it("a scenario that frees before the device is done fails wherever the device still writes", async () => {
    const report = await explore(tinyScenario(true));
    // Stopped before its first write (step 1), the device never touches the freed buffer.
    expect(report.failures.map((f) => f.step)).toEqual([0, 2, 3, 4, 5]);
    expect(report.outcomes.failed).toBe(4);
  });

  it("refuses unknown kinds and bad scenarios", async () => {
    await expect(explore(tinyScenario(false), { kinds: ["crash"] })).rejects.toThrowError(
      DevrefError,
    );
    await expect(explore({} as never)).rejects.toThrowError(DevrefError);
  });
});
