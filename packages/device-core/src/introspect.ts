//! Introspection: the device tree (like `tree /sys/devices`), holders, and an audit of
//! everything not yet released.

import { checkInstance, holders } from "@devref/raw-device";
import type { Device } from "./device.js";
import { coreOf, defaultMachine, Machine } from "./machine.js";
import { type DeviceLifecycle, type DeviceState, deviceStateOf } from "./state.js";

function describe(st: DeviceState): string {
  const parts: string[] = [];
  if (st.bus !== null) parts.push(st.bus.name);
  const b = st.binding;
  if (b !== null && b.phase !== "ended") {
    parts.push(b.phase === "bound" ? `driver ${b.driver}` : `${b.phase} ${b.driver}`);
  } else if (st.deferredReason !== null) {
    parts.push("deferred");
  }
  if (st.disconnected) parts.push("disconnected");
  const failed = st.probeError;
  // A deferral is shown as such above; any other failure stays visible until a probe works.
  if (
    failed !== undefined &&
    (b === null || b.phase === "ended") &&
    errnoName(failed) !== "EPROBE_DEFER"
  ) {
    parts.push(`probe failed: ${errnoName(failed)}`);
  }
  parts.push(`${st.refcount.value} ref${st.refcount.value === 1 ? "" : "s"}`);
  return `${st.name} [${parts.join(", ")}]`;
}

function errnoName(e: unknown): string {
  if (typeof e === "object" && e !== null && "code" in e && typeof e.code === "string")
    return e.code;
  return "exception";
}

function walk(st: DeviceState, prefix: string, last: boolean, out: string[], top: boolean): void {
  out.push(top ? describe(st) : `${prefix}${last ? "└── " : "├── "}${describe(st)}`);
  const children = [...st.children];
  const next = top ? "" : `${prefix}${last ? "    " : "│   "}`;
  children.forEach((c, i) => {
    walk(c, next, i === children.length - 1, out, false);
  });
}

/**
 * The registered device tree as text, one device per line with its bus, driver and count,
 * like `tree /sys/devices`: of `root`'s machine (the default machine when omitted), or with
 * a device `root`, only that device's subtree.
 *
 * **Errors:** `ENODEV` if `root` is not a live handle.
 *
 * @example
 * ```text
 * soc [3 refs]
 * ├── dart0 [platform, driver apple-dart, 2 refs]
 * └── nvme0 [platform, deferred, 2 refs]
 * ```
 */
export function deviceTree(root?: Device | Machine): string {
  const out: string[] = [];
  if (root !== undefined && !(root instanceof Machine)) {
    walk(deviceStateOf(root), "", true, out, true);
  } else {
    const machine = root ?? defaultMachine();
    for (let st = coreOf(machine).roots.head; st !== null; st = st.nextSibling)
      walk(st, "", true, out, true);
  }
  return out.length === 0 ? "(no devices)" : out.join("\n");
}

/** `dev`'s count and who holds it, on one line: `"dart0: 3 refs (creator, platform bus, child x)"`. */
export function formatHolders(dev: Device): string {
  const st = deviceStateOf(dev);
  const labels = holders(dev).map((h) => h.label);
  const n = st.refcount.value;
  return `${st.name}: ${n} ref${n === 1 ? "" : "s"} (${labels.join(", ") || "no owned references"})`;
}

/** The labels of `dev`'s managed resources, oldest first (group markers as `<group>`/`</group>`). */
export function devresLabels(dev: Device): string[] {
  return deviceStateOf(dev).devres.map((n) =>
    n.kind === 1 ? `<${n.label}>` : n.kind === 2 ? `</${n.label}>` : n.label,
  );
}

/** One device that has not been released yet, as {@link auditDevices} lists it. */
export interface DeviceAudit {
  readonly name: string;
  readonly lifecycle: DeviceLifecycle;
  readonly refcount: number;
  /** The labels of the owned references that keep it alive. */
  readonly holders: readonly string[];
  /** Managed resources still registered. */
  readonly devres: number;
  /** What the last failed probe threw (errno name), until a probe succeeds. */
  readonly probeError: string | null;
}

/**
 * Every device of `machine` (the default machine when omitted) created and not yet
 * released, oldest first: what a test or a demo checks at the end to show nothing was left
 * behind.
 */
export function auditDevices(machine: Machine = defaultMachine()): DeviceAudit[] {
  checkInstance("auditDevices", "machine", machine, Machine);
  const out: DeviceAudit[] = [];
  for (let st = coreOf(machine).live.head; st !== null; st = st.nextLive) {
    out.push({
      name: st.name,
      lifecycle: st.lifecycle,
      refcount: st.refcount.value,
      holders: st.holders().map((h) => h.label),
      devres: st.devres.filter((n) => n.kind === 0).length,
      probeError: st.probeError === undefined ? null : errnoName(st.probeError),
    });
  }
  return out;
}
