//! The driver core's global state (drivers/base/dd.c): the deferred-probe lists and the
//! probes in flight, which `waitForDeviceProbe()` waits for.
//!
//! Deterministic: no timers. "Work items" are promise continuations, run in the order
//! they were queued.

import type { DeviceState } from "@devref/device-core/unsafe";

// Devices waiting for another bind before they are retried (deferred_probe_pending_list)
// and devices being retried (deferred_probe_active_list). Both keep insertion order.
const pending: Set<DeviceState> = new Set();
const active: DeviceState[] = [];
let triggerCount = 0;
let workQueued = false;
const inflight: Set<Promise<unknown>> = new Set();

/** Tracks an asynchronous probe or attach so `waitForDeviceProbe` waits for it. */
export function track(p: Promise<unknown>): void {
  inflight.add(p);
  const done = (): void => {
    inflight.delete(p);
  };
  p.then(done, done);
}

/** driver_deferred_probe_add. */
export function deferredAdd(st: DeviceState): void {
  pending.add(st);
}

/** driver_deferred_probe_del. */
export function deferredDel(st: DeviceState): void {
  if (pending.size === 0 && active.length === 0) return;
  pending.delete(st);
  const i = active.indexOf(st);
  if (i >= 0) active.splice(i, 1);
}

/** The trigger count: a probe that defers compares it with the value at its start. */
export function currentTriggerCount(): number {
  return triggerCount;
}

/**
 * driver_deferred_probe_trigger: moves every pending device to the active list and
 * queues the work that retries them. Runs after any successful bind.
 */
export function triggerDeferred(): void {
  for (const st of pending) active.push(st);
  pending.clear();
  triggerCount++;
  if (workQueued) return;
  workQueued = true;
  track(Promise.resolve().then(runDeferredWork));
}

function runDeferredWork(): void {
  workQueued = false;
  while (active.length > 0) {
    const st = active.shift()!;
    if (st.registered && !st.dead && st.binding === null) st.bus?.probeDevice(st);
  }
}

/** Whether `st` is on a deferred list. */
export function isDeferred(st: DeviceState): boolean {
  return pending.has(st) || active.includes(st);
}

/** One device waiting on the deferred-probe list, with the reason its probe gave. */
export interface DeferredDevice {
  readonly name: string;
  readonly reason: string | null;
}

/**
 * The devices waiting to be probed again, in order, with their deferral reasons (the
 * kernel's debugfs `devices_deferred`).
 */
export function deferredDevices(): DeferredDevice[] {
  return [...pending, ...active].map((st) => ({ name: st.name, reason: st.deferredReason }));
}

/**
 * Waits until no probe is in flight and no deferred-probe work is queued
 * (wait_for_device_probe).
 *
 * **Invariants:** deterministic: it waits only on promises the driver core created.
 * An asynchronous probe that never settles makes it wait forever, as in the kernel.
 *
 * @example
 * ```ts
 * platformBus.registerDriver(asyncDriver);
 * await waitForDeviceProbe();
 * dev.isBound; // true
 * ```
 */
export async function waitForDeviceProbe(): Promise<void> {
  while (inflight.size > 0) await Promise.allSettled([...inflight]);
}

/**
 * Re-runs every deferred probe (the late_initcall trigger after built-in drivers are
 * registered). Wait with {@link waitForDeviceProbe}.
 */
export function deferredProbeTrigger(): void {
  triggerDeferred();
}
