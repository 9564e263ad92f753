//! `devref explore <scenario>`: the scenario rerun with a fault at every step.

import { type ExploreReport, explore, type Scenario } from "@devref/sim";
import cliProgress from "cli-progress";
import { injectOption, seedOf } from "../commands/common.js";
import { EXIT } from "../errors.js";
import { type CliContext, Printer } from "../io.js";
import { parseNumber } from "../numbers.js";
import { formatException } from "../outcome.js";
import { findScenario, injectionKind } from "../scenarios.js";
import { table } from "../table.js";

export interface ExploreFlags {
  readonly seed?: string;
  readonly kinds?: string;
  readonly from?: string;
  readonly to?: string;
  readonly json?: boolean;
  readonly progress?: boolean;
}

/** Failures listed in the text output; the JSON lists them all. */
const FAILURES_SHOWN = 20;

function kindsOf(scenario: Scenario, text: string | undefined): string[] {
  if (text === undefined) {
    const all = Object.keys(scenario.injections);
    return all.includes("unplug") ? ["unplug"] : all;
  }
  const kinds = text
    .split(",")
    .map((k) => k.trim())
    .filter((k) => k !== "")
    .map((k) => injectionKind(scenario, k));
  return [...new Set(kinds)];
}

/** Runs `devref explore`. */
export async function exploreCommand(
  ctx: CliContext,
  name: string,
  flags: ExploreFlags,
): Promise<number> {
  const scenario = await findScenario(ctx.scenarios, name);
  const seed = seedOf(flags);
  const kinds = kindsOf(scenario, flags.kinds);
  const from = flags.from === undefined ? undefined : parseNumber("--from", flags.from, 1);
  const to = flags.to === undefined ? undefined : parseNumber("--to", flags.to, 1);
  const json = flags.json === true;
  const p = new Printer(ctx.io);
  const stream = ctx.io.progressStream;
  const bar =
    !json && flags.progress !== false && ctx.io.stderrIsTTY && stream !== null
      ? new cliProgress.SingleBar(
          {
            stream,
            format: `explore ${scenario.name} |{bar}| {value}/{total} runs`,
            hideCursor: true,
            clearOnComplete: true,
            etaBuffer: 50,
          },
          cliProgress.Presets.shades_classic,
        )
      : null;
  let started = false;
  let report: ExploreReport;
  try {
    report = await explore(scenario, {
      seed,
      kinds,
      ...(from === undefined ? {} : { from }),
      ...(to === undefined ? {} : { to }),
      onProgress: (doneRuns, total) => {
        if (bar === null) return;
        if (!started) {
          bar.start(total, 0);
          started = true;
        }
        bar.update(doneRuns);
      },
    });
  } finally {
    if (started) bar?.stop();
  }
  const failures = report.failures.map((f) => ({
    step: f.step,
    kind: f.kind,
    result: f.outcome.result,
    exceptions: f.outcome.exceptions,
    leaks: f.outcome.leaks,
    useAfterFree: f.outcome.useAfterFree,
    digest: f.outcome.digest,
  }));
  const firstStep = from ?? 1;
  const lastStep = Math.min(report.steps, to ?? report.steps);
  if (json) {
    p.json({
      scenario: report.scenario,
      seed: report.seed,
      kinds,
      steps: report.explored,
      from: firstStep,
      to: lastStep,
      runSteps: report.steps,
      runs: report.runs,
      outcomes: report.outcomes,
      failures,
    });
  } else {
    const { c } = p;
    p.line(
      c.bold(`devref explore ${report.scenario}`) +
        c.dim(
          ` (seed ${report.seed}): ${kinds.join(", ")} at every step ${firstStep}..${lastStep} of ${report.steps}: ${report.explored} steps, ${report.runs} runs`,
        ),
      "",
    );
    const rows = Object.entries(report.outcomes)
      .filter(([k]) => k !== "failed")
      .sort(([a], [b]) => a.localeCompare(b))
      .map(([k, n]) => [k, String(n)]);
    rows.push(["failed", String(report.outcomes.failed ?? 0)]);
    const lines = table([["outcome", "runs"], ...rows], [1]);
    p.line(c.bold(lines[0]!), ...lines.slice(1, -1), lines.at(-1)!);
    p.line("");
    if (failures.length === 0) {
      p.line(
        c.green("no failures: no leak, no use after free, no exception other than a DevrefError"),
      );
    } else {
      p.line(c.red(c.bold(`${failures.length} failing run(s):`)));
      for (const f of failures.slice(0, FAILURES_SHOWN)) {
        const what = [
          ...f.exceptions.filter((e) => !e.devref).map(formatException),
          ...f.leaks.map((l) => `leak: ${l}`),
          ...f.useAfterFree.map((u) => `use after free: ${u}`),
        ];
        p.line(
          `  step ${f.step} ${f.kind} (${f.result}): ${c.red(what[0] ?? "?")}${what.length > 1 ? c.dim(` and ${what.length - 1} more`) : ""}`,
        );
      }
      if (failures.length > FAILURES_SHOWN) {
        p.line(c.dim(`  ... and ${failures.length - FAILURES_SHOWN} more (--json lists them all)`));
      }
      const first = failures[0]!;
      const again = first.step === 0 ? "" : ` ${injectOption(first.kind, first.step)}`;
      p.line(
        c.dim(
          `see the first one with: devref run ${report.scenario} --seed ${report.seed}${again}`,
        ),
      );
    }
  }
  return failures.length > 0 ? EXIT.failed : EXIT.ok;
}
