//! Outcomes as text and as JSON.

import { outcomeFailed, type ScenarioException, type ScenarioOutcome } from "@devref/sim";
import type { Printer } from "./io.js";

/** An outcome as JSON: the outcome's fields plus `failed`. */
export function outcomeJson(o: ScenarioOutcome): Record<string, unknown> {
  return { ...o, failed: outcomeFailed(o) };
}

/** Virtual time as text, in the largest unit that keeps it readable. */
export function formatTime(ns: number): string {
  if (ns < 1_000) return `${ns} ns`;
  if (ns < 1_000_000) return `${(ns / 1_000).toFixed(1)} µs`;
  if (ns < 1_000_000_000) return `${(ns / 1_000_000).toFixed(2)} ms`;
  return `${(ns / 1_000_000_000).toFixed(3)} s`;
}

/** One exception on one line. */
export function formatException(e: ScenarioException): string {
  return e.devref ? `${e.code}: ${e.message}` : `not a DevrefError: ${e.message}`;
}

/** Prints what a run found: result, size, digest, then exceptions, leaks and uses after free. */
export function printOutcome(p: Printer, o: ScenarioOutcome): void {
  const { c } = p;
  p.line(
    `${c.bold("result")}  ${o.result}: ${o.steps} steps, ${formatTime(o.timeNs)} of virtual time, digest ${o.digest}`,
  );
  const list = (title: string, items: readonly string[], bad: (i: number) => boolean): void => {
    if (items.length === 0) {
      p.line(`${c.bold(title)}  ${c.green("none")}`);
      return;
    }
    p.line(`${c.bold(title)}  ${items.length}`);
    items.forEach((item, i) => {
      p.line(`  ${bad(i) ? c.red(item) : c.yellow(item)}`);
    });
  };
  list("exceptions", o.exceptions.map(formatException), (i) => o.exceptions[i]?.devref === false);
  list("leaks", o.leaks, () => true);
  list("use after free", o.useAfterFree, () => true);
  p.line(
    outcomeFailed(o)
      ? c.red(c.bold("FAILED: a leak, a use after free or an exception other than a DevrefError"))
      : c.green("clean: nothing left behind, no use after free, no unexpected exception"),
  );
}
