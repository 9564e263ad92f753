// `devref run`, `explore`, `tree` and `holders` on the scenarios, as subprocesses; and the
// exit status of a failing scenario, through the same command line in process.
import { existsSync, readFileSync } from "node:fs";
import { join } from "node:path";
import type { Scenario, ScenarioOptions, ScenarioOutcome } from "@devref/sim";
import { afterAll, describe, expect, it } from "vitest";
import type { CliIo } from "../src/internal/io.js";
import { runCli } from "../src/internal/program.js";
import { devref, json, tempDir } from "./helpers.js";

const tmp = tempDir();
afterAll(() => tmp.remove());

describe("devref run", () => {
  it("narrates the soc scenario and closes with a clean audit (exit 0)", async () => {
    const r = await devref(["run", "soc"]);
    expect(r.status).toBe(0);
    expect(r.stderr).toBe("");
    expect(r.stdout).toMatch(/^devref run soc \(seed 1\)/);
    expect(r.stdout).toContain("tree: the machine with every driver bound");
    expect(r.stdout).toContain("holders:");
    expect(r.stdout).toContain("audit: nothing left behind");
    expect(r.stdout).toMatch(/^leaks {2}none$/m);
    expect(r.stdout).toMatch(/^clean: /m);
  });

  it("--json gives the narration and the outcome; the same seed gives the same digest", async () => {
    const [a, b] = [
      await devref(["run", "soc", "--seed", "7", "--json"]),
      await devref(["run", "soc", "--seed", "7", "--json"]),
    ];
    expect(a.status).toBe(0);
    const out = json(a);
    expect(out).toMatchObject({ scenario: "soc", seed: 7, faults: [] });
    expect(out.narration).toEqual(expect.arrayContaining([expect.stringContaining("audit")]));
    expect(out.outcome).toMatchObject({
      scenario: "soc",
      seed: 7,
      steps: expect.any(Number),
      digest: expect.stringMatching(/^[0-9a-f]{16}$/),
      exceptions: [],
      leaks: [],
      useAfterFree: [],
      failed: false,
    });
    expect((json(b).outcome as { digest: string }).digest).toBe(
      (out.outcome as { digest: string }).digest,
    ); // SAFETY: shapes checked above.
  });

  it("injects the scenario's faults at the steps the options name", async () => {
    const r = await devref([
      "run",
      "soc",
      "--unplug-at",
      "5",
      "--inject",
      "iommu-fault@7",
      "--json",
    ]);
    expect(r.status).toBe(0);
    expect(json(r).faults).toEqual([
      { kind: "unplug", step: 5 },
      { kind: "iommu-fault", step: 7 },
    ]);
  });

  it("--trace writes the SoC trace as JSON lines, which rtkit decode reads", async () => {
    const file = join(tmp.dir, "soc.jsonl");
    const r = await devref(["run", "soc", "--trace", file, "--json"]);
    expect(r.status).toBe(0);
    expect(existsSync(file)).toBe(true);
    const lines = readFileSync(file, "utf8").trimEnd().split("\n");
    expect(json(r).trace).toEqual({ file, records: lines.length });
    const records = lines.map((l) => JSON.parse(l) as { kind: string; step: number }); // SAFETY: trace records.
    expect(records.length).toBeGreaterThan(0);
    for (const rec of records)
      expect(["mmio", "irq", "dma", "iotlb", "fault", "note", "mbox"]).toContain(rec.kind);
    const decoded = await devref(["rtkit", "decode", file, "--json"]);
    expect(decoded.status).toBe(0);
    const d = json(decoded);
    expect((d.messages as unknown[]).length + (d.skipped as number)).toBe(records.length); // SAFETY: the JSON shape of rtkit decode.
  });
});

describe("devref explore", () => {
  it("--json: the scenario, the steps explored, outcomes by kind, the failures", async () => {
    const r = await devref(["explore", "soc", "--from", "1", "--to", "6", "--json"]);
    expect(r.status).toBe(0);
    const out = json(r);
    expect(out).toMatchObject({
      scenario: "soc",
      seed: 1,
      kinds: ["unplug"],
      steps: 6,
      from: 1,
      to: 6,
      runs: 6,
      failures: [],
    });
    const outcomes = out.outcomes as Record<string, number>; // SAFETY: the JSON shape under test.
    const counted = Object.entries(outcomes).filter(([k]) => k !== "failed");
    expect(counted.every(([k]) => k.startsWith("unplug: "))).toBe(true);
    expect(counted.reduce((n, [, v]) => n + v, 0)).toBe(6);
  });

  it("several kinds: one run per step and kind; the text shows the table", async () => {
    const r = await devref([
      "explore",
      "soc",
      "--kinds",
      "unplug,crash,iommu-fault",
      "--from",
      "3",
      "--to",
      "4",
    ]);
    expect(r.status).toBe(0);
    expect(r.stdout).toContain("unplug, rtkit-crash, iommu-fault at every step 3..4");
    expect(r.stdout).toMatch(/^outcome\s+runs$/m);
    expect(r.stdout).toMatch(/^failed\s+0$/m);
    expect(r.stdout).toContain("no failures");
  });
});

describe("every scenario", () => {
  it("runs clean and explores a few steps clean, by name", async () => {
    const list = json(await devref(["list", "--json"])).scenarios as {
      name: string;
      injections: string[];
    }[]; // SAFETY: the JSON shape of list.
    expect(list.map((s) => s.name)).toEqual(
      expect.arrayContaining(["soc", "apple-dart", "virtio-blk"]),
    );
    for (const { name, injections } of list) {
      const run = await devref(["run", name, "--json"]);
      expect(run.status, name).toBe(0);
      const outcome = json(run).outcome as { scenario: string; failed: boolean; steps: number }; // SAFETY: the JSON shape of run.
      expect(outcome.scenario).toBe(name);
      expect(outcome.failed).toBe(false);
      // Three steps from the middle of the run, with every kind the scenario has.
      const from = Math.floor(outcome.steps / 2);
      const ex = await devref([
        "explore",
        name,
        "--kinds",
        injections.join(","),
        "--from",
        String(from),
        "--to",
        String(from + 2),
        "--json",
      ]);
      expect(ex.status, name).toBe(0);
      expect(json(ex)).toMatchObject({
        scenario: name,
        steps: 3,
        runs: 3 * injections.length,
        failures: [],
      });
    }
  });
});

describe("devref tree / holders", () => {
  it("tree --step N shows the machine just before step N", async () => {
    const r = await devref(["tree", "soc", "--step", "100", "--json"]);
    expect(r.status).toBe(0);
    const out = json(r);
    expect(out).toMatchObject({
      scenario: "soc",
      at: "step",
      step: 100,
      tree: expect.stringContaining("dart0"),
    });
    const text = await devref(["tree", "soc", "--step", "100"]);
    expect(text.stdout).toMatch(/^soc just before step 100/);
    expect(text.stdout).toContain((out.tree as string).split("\n")[0]!); // SAFETY: checked to be a string above.
  });

  it("holders without a step: every device at the scenario's own point, with who holds it", async () => {
    const r = await devref(["holders", "soc", "--json"]);
    expect(r.status).toBe(0);
    const out = json(r);
    expect(out.at).toBe("scenario");
    const devices = out.devices as { name: string; refcount: number; holders: string[] }[]; // SAFETY: the JSON shape under test.
    const dart = devices.find((d) => d.name === "dart0");
    expect(dart?.holders).toContain("platform bus");
    expect(dart?.refcount).toBe(dart?.holders.length);
    const text = await devref(["holders", "soc"]);
    expect(text.stdout).toMatch(/^device\s+refs\s+state\s+holders$/m);
    expect(text.stdout).toMatch(/^dart0\s+\d+\s+\w+\s+.*platform bus/m);
  });

  it("a step past the end of the run shows the machine after teardown", async () => {
    const r = await devref(["holders", "soc", "--step", "10000000", "--json"]);
    expect(r.status).toBe(0);
    expect(json(r)).toMatchObject({ at: "end", devices: [] });
  });
});

/** The command line in process, with its output collected. */
async function inProcess(argv: string[], registry: Record<string, () => Promise<Scenario>>) {
  let stdout = "";
  let stderr = "";
  const io: CliIo = {
    out: (t) => {
      stdout += t;
    },
    err: (t) => {
      stderr += t;
    },
    stderrIsTTY: false,
    color: false,
    progressStream: null,
  };
  const status = await runCli(argv, io, "0.0.0", registry);
  return { status, stdout, stderr };
}

/** A scenario that leaks after a fault at step 3 or later, and throws a TypeError at step 5. */
const leaky: Scenario = {
  name: "leaky",
  description: "leaks once faulted late",
  injections: { unplug: { kind: "unplug", target: "x" } },
  async run(options: ScenarioOptions = {}): Promise<ScenarioOutcome> {
    const step =
      options.faults?.[0] !== undefined && "step" in options.faults[0].at
        ? options.faults[0].at.step
        : 0;
    options.narrate?.(`fault at ${step}`);
    return {
      scenario: "leaky",
      seed: options.seed ?? 1,
      steps: 5,
      timeNs: 0,
      digest: "0000000000000000",
      result: step === 0 ? "completed" : "device removed",
      exceptions:
        step === 5 ? [{ devref: false, code: null, message: "TypeError: x is undefined" }] : [],
      leaks: step >= 3 ? ["device x: 1 ref (test)"] : [],
      useAfterFree: [],
    };
  },
};

describe("exit status on failures", () => {
  it("explore exits 1 and lists every failing run when a run leaks or throws a non-DevrefError", async () => {
    const r = await inProcess(["explore", "leaky", "--json"], { leaky: async () => leaky });
    expect(r.status).toBe(1);
    const out = JSON.parse(r.stdout) as {
      steps: number;
      outcomes: Record<string, number>;
      failures: { step: number }[];
    }; // SAFETY: the JSON shape under test.
    expect(out.steps).toBe(5);
    expect(out.outcomes).toEqual({ "unplug: device removed": 5, failed: 3 });
    expect(out.failures.map((f) => f.step)).toEqual([3, 4, 5]);
    const text = await inProcess(["explore", "leaky"], { leaky: async () => leaky });
    expect(text.status).toBe(1);
    expect(text.stdout).toContain("3 failing run(s)");
    expect(text.stdout).toContain(
      "step 5 unplug (device removed): not a DevrefError: TypeError: x is undefined",
    );
    expect(text.stdout).toContain("devref run leaky --seed 1 --unplug-at 3");
    // The clean range passes.
    expect(
      (await inProcess(["explore", "leaky", "--to", "2"], { leaky: async () => leaky })).status,
    ).toBe(0);
  });

  it("run exits 1 on a failing outcome, and says so", async () => {
    const r = await inProcess(["run", "leaky", "--unplug-at", "4"], { leaky: async () => leaky });
    expect(r.status).toBe(1);
    expect(r.stdout).toContain("device x: 1 ref (test)");
    expect(r.stdout).toMatch(/^FAILED: /m);
  });

  it("a scenario without a ScenarioObserver cannot show a tree: EOPNOTSUPP", async () => {
    const r = await inProcess(["tree", "leaky"], { leaky: async () => leaky });
    expect(r.status).toBe(2);
    expect(r.stderr).toMatch(/^devref: EOPNOTSUPP: scenario 'leaky' took no snapshot/);
  });

  it("an exception escaping the command that is not a DevrefError is a bug: status 3", async () => {
    const broken: Scenario = { ...leaky, run: () => Promise.reject(new TypeError("boom")) };
    const r = await inProcess(["run", "leaky"], { leaky: async () => broken });
    expect(r.status).toBe(3);
    expect(r.stderr).toBe(
      "devref: EBUG: TypeError: boom (an exception other than a DevrefError: a bug in devref)\n",
    );
  });
});
