//! Snapshots as text: the device tree, then each live device's count and holders.

import type { ScenarioSnapshot } from "@devref/sim";

/** The lines `devref run` narrates for a snapshot: the tree, then one line of holders per device. */
export function formatSnapshot(s: ScenarioSnapshot): string[] {
  const lines = s.tree.split("\n");
  lines.push("holders:");
  for (const d of s.devices) {
    const n = d.refcount;
    lines.push(
      `  ${d.name}: ${n} ref${n === 1 ? "" : "s"} (${d.holders.join(", ") || "no owned references"})`,
    );
  }
  return lines;
}
