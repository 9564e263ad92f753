//! C source: lib/kobject_uevent.c (kobject_uevent), drivers/base/core.c (device_add,
//! device_del), drivers/base/dd.c (driver_bound, __device_release_driver)
//!
//! uevents: what udev hears. Every device's add, remove and rename (move), and every
//! driver's bind and unbind, in the kernel's order beside the bus notifiers (a notifier sees
//! the device first).

import type { Machine } from "./machine.js";
import type { DeviceState } from "./state.js";

/** A uevent action (`enum kobject_action`). */
export type UeventAction = "add" | "remove" | "bind" | "unbind" | "move";

/** One uevent, with the environment udev reads from it. */
export interface Uevent {
  /** `ACTION`. */
  readonly action: UeventAction;
  /** `DEVPATH`: `/devices/` and the names of the device's ancestors, then its own. */
  readonly devpath: string;
  /** The device's name. */
  readonly device: string;
  /** `SUBSYSTEM`: the bus's name, or null for a device on no bus. */
  readonly subsystem: string | null;
  /** `DRIVER`, for bind. */
  readonly driver: string | null;
  /** `DEVPATH_OLD`, for move: the path before a rename. */
  readonly devpathOld: string | null;
  /** `SEQNUM`: counts the machine's uevents from 1. */
  readonly seqnum: number;
}

/** Receives uevents; one that throws is logged and the others still run. */
export type UeventListener = (event: Uevent) => void;

/** @internal A machine's uevent listeners and sequence number. */
export class UeventHub {
  listeners: readonly UeventListener[] = [];
  seqnum = 0;
}

/** @internal `DEVPATH` of a device: its ancestors' names under `/devices`. */
export function devpathOf(st: DeviceState): string {
  const names: string[] = [];
  for (let at: DeviceState | null = st; at !== null; at = at.parent) names.push(at.name);
  return `/devices/${names.reverse().join("/")}`;
}

/** @internal kobject_uevent: sends `action` for `st` to its machine's listeners. */
export function sendUevent(
  machine: Machine,
  hub: UeventHub,
  st: DeviceState,
  action: UeventAction,
  driver: string | null,
  devpathOld: string | null,
): void {
  const listeners = hub.listeners;
  hub.seqnum++;
  if (listeners.length === 0) return;
  const event: Uevent = {
    action,
    devpath: devpathOf(st),
    device: st.name,
    subsystem: st.bus?.name ?? null,
    driver,
    devpathOld,
    seqnum: hub.seqnum,
  };
  for (const fn of listeners) {
    try {
      fn(event);
    } catch (e) {
      machine.log("err", st.name, null, `uevent listener failed on ${action}: ${String(e)}`);
    }
  }
}
