//! Devres misuse checks (debug mode).
//!
//! C cannot check these: a devm pointer kept past unbind is just a dangling pointer, and a
//! devm_* call made from a release() callback is a double free found much later. Here every
//! managed resource knows its device and binding, so the misuse is reported where it happens.

import { checkInstance } from "@devref/raw-device";
import { defaultMachine, Machine } from "./machine.js";

/** The kinds of devres misuse the debug mode reports. */
export type DevresMisuseKind =
  /** A resource was tied to a device that has no driver bound (only possible through `/unsafe`). */
  | "registered-unbound"
  /** A resource was added from `remove()`: it is released as soon as `remove()` returns. */
  | "registered-during-remove"
  /** A managed resource was used after its binding ended (it was kept by a longer-lived object). */
  | "use-after-revoke"
  /** A managed resource was released from a device release callback, long after unbind. */
  | "released-from-release-callback"
  /** Resources registered outside a binding were still there when the device was released. */
  | "left-until-release";

/** One devres misuse report. */
export interface DevresMisuse {
  readonly kind: DevresMisuseKind;
  /** The device the resource belongs to. */
  readonly device: string;
  /** The driver whose binding the resource belonged to, if any. */
  readonly driver: string | null;
  /** The resource's label. */
  readonly resource: string;
  /** A sentence saying what went wrong and what to do. */
  readonly message: string;
  /** Who stored the resource: the `owner` given at creation, else undefined. */
  readonly storedBy: string | undefined;
  /** Where the resource was created (stack, debug mode). */
  readonly createdAt: string | undefined;
  /** Where the misuse happened (stack). */
  readonly at: string | undefined;
}

/** Settings of the devres debug mode. */
export interface DevresDebugOptions {
  /** Check and report devres misuse; records a creation stack per resource (about 2 µs each). */
  readonly debug?: boolean;
  /**
   * Receives each report; `null` (the default) logs it at warning level through the
   * machine's log sink.
   */
  readonly onMisuse?: ((misuse: DevresMisuse) => void) | null;
}

/**
 * Turns the devres misuse checks of `machine` (the default machine when omitted) on or
 * off and sets where reports go; returns the settings in force before, so a test can put
 * them back.
 *
 * **Invariants:** with debug off, the checks cost one flag test per devres operation.
 *
 * @example
 * ```ts
 * const previous = configureDevresDebug({ debug: true, onMisuse: (m) => reports.push(m) });
 * try { runScenario(); } finally { configureDevresDebug(previous); }
 * ```
 */
export function configureDevresDebug(
  options: DevresDebugOptions,
  machine: Machine = defaultMachine(),
): { debug: boolean; onMisuse: ((misuse: DevresMisuse) => void) | null } {
  return checkInstance("configureDevresDebug", "machine", machine, Machine).configureDevresDebug(
    options,
  );
}

/** Sends one report to `machine`'s reporter. */
export function reportDevresMisuse(machine: Machine, misuse: DevresMisuse): void {
  machine.reportMisuse(misuse);
}

/** A stack trace without the frames of devref itself, for reports. */
export function captureStack(): string | undefined {
  const stack = new Error().stack;
  if (stack === undefined) return undefined;
  const lines = stack.split("\n").slice(1);
  const outside = lines.filter((l) => !/[\\/](device-core|bus|raw-device)[\\/]src[\\/]/.test(l));
  return (outside.length > 0 ? outside : lines).slice(0, 6).join("\n");
}
