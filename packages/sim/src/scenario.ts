//! Scenarios and exploration: a driver scenario runs on a fresh simulated SoC, and an
//! exploration reruns it once per step with a fault injected at that step, to prove that a
//! removal (or a crash, or an IOMMU fault) at any moment leaves nothing behind.

import { auditDevices, type DeviceAudit, deviceTree } from "@devref/device-core";
import {
  argumentError,
  checkArray,
  checkBoolean,
  checkCallback,
  checkInteger,
  checkObject,
  checkString,
  DevrefError,
  describeValue,
} from "@devref/raw-device";
import type { FaultSpec, FaultWhen } from "./faults.js";
import type { DmaUseAfterFree, Soc } from "./soc.js";
import type { TraceMode, TraceRecord } from "./trace.js";

declare module "./faults.js" {
  interface FaultKinds {
    /**
     * Not a fault: the moment a {@link ScenarioObserver} takes the snapshot a run was asked
     * for (defined on the SoC by the observer; traced as `inject-scenario-snapshot`).
     */
    "scenario-snapshot": { readonly target?: undefined };
  }
}

/** A fault to inject at a step (or a virtual time) of a scenario run. */
export interface ScenarioFault {
  readonly at: FaultWhen;
  readonly spec: FaultSpec;
}

/** How one scenario run is made. Every field has a default. */
export interface ScenarioOptions {
  /** Seed of the SoC's random source (default 1). */
  readonly seed?: number;
  /** Faults to inject. */
  readonly faults?: readonly ScenarioFault[];
  /** Receives the narration: what happens, in order (default: nothing). */
  readonly narrate?: (line: string) => void;
  /** Trace mode of the SoC (default `digest`). */
  readonly trace?: TraceMode;
  /**
   * Asks for the machine's device tree and holders at a step, or at the scenario's own
   * point (everything probed, traffic done) when `step` is omitted. Honoured through
   * {@link ScenarioObserver}.
   */
  readonly snapshot?: ScenarioSnapshotRequest;
  /**
   * Receives the SoC's kept trace records when the run ends (only `trace: "full"` keeps
   * any). Honoured through {@link ScenarioObserver}.
   */
  readonly onTrace?: (records: readonly TraceRecord[]) => void;
}

/** Which snapshot a run is asked for, and who receives it. */
export interface ScenarioSnapshotRequest {
  /** Take it just before this step runs (steps count from 1); omitted: at the scenario's own point. */
  readonly step?: number;
  /** Receives the snapshot, once. */
  readonly take: (snapshot: ScenarioSnapshot) => void;
}

/** The machine at one moment of a run: what `devref tree` and `devref holders` show. */
export interface ScenarioSnapshot {
  /**
   * `step`: just before the requested step; `scenario`: at the scenario's own point;
   * `end`: the run ended before the requested step (taken after teardown).
   */
  readonly at: "step" | "scenario" | "end";
  /** The step counter when it was taken: for `step`, the requested step, which has not done anything yet. */
  readonly step: number;
  readonly timeNs: number;
  /** The device tree, as `deviceTree(machine)` prints it. */
  readonly tree: string;
  /** Every device not yet released, oldest first, with its count and holders (`auditDevices`). */
  readonly devices: readonly DeviceAudit[];
}

/** An exception that escaped a driver or the scenario. */
export interface ScenarioException {
  /** Whether it was a DevrefError (expected, with an errno) or anything else (a bug). */
  readonly devref: boolean;
  readonly code: string | null;
  readonly message: string;
}

/** What one run of a scenario found. */
export interface ScenarioOutcome {
  readonly scenario: string;
  readonly seed: number;
  /** The SoC's step count at the end of the run (steps are numbered from 1). */
  readonly steps: number;
  readonly timeNs: number;
  /** The trace digest: the same options give the same digest. */
  readonly digest: string;
  /**
   * What the scenario saw happen, in a few words: `completed`, `device removed`,
   * `firmware crashed, recovered`, … — the kinds an exploration counts.
   */
  readonly result: string;
  /** Exceptions that escaped; any with `devref: false` is a failure. */
  readonly exceptions: readonly ScenarioException[];
  /** What the audits found left after teardown (devices, holders, devres, DMA); empty is clean. */
  readonly leaks: readonly string[];
  /** DMA to RAM that was not allocated at the time (the SoC's use-after-free report). */
  readonly useAfterFree: readonly string[];
}

/**
 * A driver scenario: builds a fresh SoC, describes it, registers drivers, runs traffic,
 * tears everything down and audits. `run` never throws for what the drivers did: it
 * reports it in the outcome.
 */
export interface Scenario {
  readonly name: string;
  readonly description: string;
  /** The faults an exploration injects, by kind (e.g. `unplug`: pull the card). */
  readonly injections: Readonly<Record<string, FaultSpec>>;
  run(options?: ScenarioOptions): Promise<ScenarioOutcome>;
}

/**
 * What a scenario's `run` uses to honour {@link ScenarioOptions.snapshot} and
 * {@link ScenarioOptions.onTrace}: made right after the SoC (and the faults) are scheduled,
 * told the scenario's own point with {@link ScenarioObserver.point}, and finished at the end
 * of the run with {@link ScenarioObserver.finish}.
 *
 * **Invariants:** the snapshot is taken at most once. A snapshot at a step runs inside that
 * step (it only reads the machine) and adds one `inject-scenario-snapshot` trace record, so
 * only runs that ask for one have a different digest.
 *
 * **Errors:** `EINVAL` from the constructor for a malformed request or a step already past.
 *
 * @example
 * ```ts
 * const observer = new ScenarioObserver(soc, options);
 * // ... probe, traffic ...
 * observer.point(); // the tree with every driver bound
 * // ... teardown, audit ...
 * observer.finish();
 * ```
 */
export class ScenarioObserver {
  private readonly soc: Soc;
  private readonly request: ScenarioSnapshotRequest | null;
  private readonly onTrace: ((records: readonly TraceRecord[]) => void) | null;
  private taken = false;

  constructor(soc: Soc, options: ScenarioOptions = {}) {
    checkObject("ScenarioObserver", "options", options);
    const request = options.snapshot ?? null;
    if (request !== null) {
      checkObject("ScenarioObserver", "options.snapshot", request);
      checkCallback("ScenarioObserver", "options.snapshot.take", request.take);
    }
    if (options.onTrace !== undefined)
      checkCallback("ScenarioObserver", "options.onTrace", options.onTrace);
    this.soc = soc;
    this.request = request;
    this.onTrace = options.onTrace ?? null;
    if (request?.step !== undefined) {
      checkInteger(
        "ScenarioObserver",
        "options.snapshot.step",
        request.step,
        1,
        Number.MAX_SAFE_INTEGER,
      );
      soc.faults.define("scenario-snapshot", () => () => this.take("step"));
      soc.faults.schedule({ step: request.step }, { kind: "scenario-snapshot" });
    }
  }

  /** The machine now: its device tree and every live device with its holders. */
  snapshot(at: ScenarioSnapshot["at"] = "scenario"): ScenarioSnapshot {
    const machine = this.soc.machine;
    return {
      at,
      step: this.soc.stepCount,
      timeNs: this.soc.nowNs,
      tree: deviceTree(machine),
      devices: auditDevices(machine),
    };
  }

  /** The scenario's own point: takes the snapshot if it was asked for without a step. */
  point(): void {
    if (this.request !== null && this.request.step === undefined) this.take("scenario");
  }

  /** The end of the run: a snapshot whose step never came is taken now; the trace is handed over. */
  finish(): void {
    if (this.request !== null) this.take("end");
    this.onTrace?.(this.soc.trace());
  }

  private take(at: ScenarioSnapshot["at"]): void {
    if (this.taken || this.request === null) return;
    this.taken = true;
    this.request.take(this.snapshot(at));
  }
}

/**
 * Whether an outcome is a failure: a non-DevrefError exception, a leak or a use after free.
 *
 * **Errors:** `EINVAL` for an `o` that is not a {@link ScenarioOutcome} (an object with
 * `exceptions`, `leaks` and `useAfterFree` arrays).
 */
export function outcomeFailed(o: ScenarioOutcome): boolean {
  checkObject("outcomeFailed", "o", o);
  for (const field of ["exceptions", "leaks", "useAfterFree"] as const) {
    if (!Array.isArray(o[field])) {
      throw argumentError("outcomeFailed", `o.${field}`, "an array (a ScenarioOutcome)", o[field]);
    }
  }
  return o.exceptions.some((e) => !e.devref) || o.leaks.length > 0 || o.useAfterFree.length > 0;
}

/**
 * The SoC's DMA uses after free as a scenario reports them in
 * {@link ScenarioOutcome.useAfterFree}: one line each, naming the master, the access and the
 * step.
 *
 * **Errors:** `EINVAL` for anything but a list of {@link DmaUseAfterFree} records.
 *
 * @example
 * ```ts
 * const useAfterFree = describeUseAfterFree(soc.dmaUseAfterFree()); // [] in a correct run
 * ```
 */
export function describeUseAfterFree(records: readonly DmaUseAfterFree[]): string[] {
  const where = "describeUseAfterFree";
  checkArray(where, "records", records);
  return records.map((u, i) => {
    const at = `records[${i}]`;
    checkObject(where, at, u);
    checkString(where, `${at}.master`, u.master);
    checkInteger(where, `${at}.pa`, u.pa, 0, Number.MAX_SAFE_INTEGER);
    checkInteger(where, `${at}.length`, u.length, 0, Number.MAX_SAFE_INTEGER);
    checkBoolean(where, `${at}.write`, u.write);
    checkInteger(where, `${at}.step`, u.step, 0, Number.MAX_SAFE_INTEGER);
    return `${u.master} ${u.write ? "wrote" : "read"} ${u.length} bytes at 0x${u.pa.toString(16)} (step ${u.step})`;
  });
}

/** Describes any thrown value as a {@link ScenarioException}; never throws itself. */
export function describeException(e: unknown): ScenarioException {
  if (e instanceof DevrefError) return { devref: true, code: e.code, message: e.message };
  if (e instanceof Error) return { devref: false, code: null, message: `${e.name}: ${e.message}` };
  let message: string;
  try {
    message = String(e);
  } catch {
    // An object whose conversion to a string throws (no prototype, a hostile toString).
    message = describeValue(e);
  }
  return { devref: false, code: null, message };
}

/** What {@link explore} is asked to do. */
export interface ExploreOptions {
  /** Seed of every run (default 1). */
  readonly seed?: number;
  /** Which of the scenario's injections to try at each step (default: all). */
  readonly kinds?: readonly string[];
  /** Explore only steps `from`..`to` (default: every step of the clean run). */
  readonly from?: number;
  readonly to?: number;
  /** Called after each run, for a progress bar. */
  readonly onProgress?: (done: number, total: number) => void;
}

/** One failing run of an exploration. */
export interface ExploreFailure {
  readonly step: number;
  readonly kind: string;
  readonly outcome: ScenarioOutcome;
}

/** What an exploration found. */
export interface ExploreReport {
  readonly scenario: string;
  readonly seed: number;
  /** Steps of the clean run, and how many were explored. */
  readonly steps: number;
  readonly explored: number;
  /** Runs made (explored steps × kinds). */
  readonly runs: number;
  /** Outcomes counted by `<kind>: <result>`, plus `failed` for failing runs. */
  readonly outcomes: Readonly<Record<string, number>>;
  readonly failures: readonly ExploreFailure[];
  /** The clean run. */
  readonly baseline: ScenarioOutcome;
}

/**
 * Runs `scenario` once clean, then once per step of that run and per injection kind with
 * that fault injected at that step.
 *
 * **Invariants:** deterministic: the same scenario and options give the same report.
 *
 * **Errors:** `EINVAL` for bad options or an unknown kind; whatever the clean run reports
 * as a failure is returned as a failure at step 0.
 *
 * @example
 * ```ts
 * const report = await explore(virtioBlkScenario, { kinds: ["unplug"] });
 * report.failures; // [] — a removal at any step leaves nothing behind
 * ```
 */
export async function explore(
  scenario: Scenario,
  options: ExploreOptions = {},
): Promise<ExploreReport> {
  checkObject("explore", "scenario", scenario);
  checkString("explore", "scenario.name", scenario.name, true);
  checkCallback("explore", "scenario.run", scenario.run);
  checkObject("explore", "options", options);
  const seed = checkInteger(
    "explore",
    "options.seed",
    options.seed ?? 1,
    0,
    Number.MAX_SAFE_INTEGER,
  );
  const kinds = options.kinds ?? Object.keys(scenario.injections);
  if (!Array.isArray(kinds)) throw argumentError("explore", "options.kinds", "an array", kinds);
  for (const k of kinds) {
    if (typeof k !== "string" || !Object.hasOwn(scenario.injections, k)) {
      throw argumentError(
        "explore",
        "options.kinds",
        `kinds of this scenario (${Object.keys(scenario.injections).join(", ")})`,
        k,
      );
    }
  }
  if (options.onProgress !== undefined)
    checkCallback("explore", "options.onProgress", options.onProgress);
  const baseline = await scenario.run({ seed });
  const outcomes: Record<string, number> = {};
  const failures: ExploreFailure[] = [];
  const count = (key: string): void => {
    outcomes[key] = (outcomes[key] ?? 0) + 1;
  };
  if (outcomeFailed(baseline)) failures.push({ step: 0, kind: "none", outcome: baseline });
  const from = checkInteger(
    "explore",
    "options.from",
    options.from ?? 1,
    1,
    Number.MAX_SAFE_INTEGER,
  );
  const to = Math.min(
    baseline.steps,
    checkInteger("explore", "options.to", options.to ?? baseline.steps, 0, Number.MAX_SAFE_INTEGER),
  );
  const explored = Math.max(0, to - from + 1);
  const total = explored * kinds.length;
  let done = 0;
  for (let step = from; step <= to; step++) {
    for (const kind of kinds) {
      const spec = scenario.injections[kind]!;
      const outcome = await scenario.run({ seed, faults: [{ at: { step }, spec }] });
      count(`${kind}: ${outcome.result}`);
      if (outcomeFailed(outcome)) {
        count("failed");
        failures.push({ step, kind, outcome });
      }
      done++;
      options.onProgress?.(done, total);
    }
  }
  return {
    scenario: scenario.name,
    seed,
    steps: baseline.steps,
    explored,
    runs: total,
    outcomes,
    failures,
    baseline,
  };
}
