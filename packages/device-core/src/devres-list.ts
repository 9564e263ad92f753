//! C source: drivers/base/devres.c (devres_add, devres_release_all, devres groups)
//!
//! The list of managed resources of a device. Every resource on the list keeps a counted
//! reference to its device, labelled like the resource, so `holders()` shows it.

import { DevrefError } from "@devref/raw-device";
import type { Lifetime } from "@devref/raw-device/unsafe";
import { captureStack, reportDevresMisuse } from "./debug.js";
import { coreOf } from "./machine.js";
import type { DeviceState } from "./state.js";

/** Node kinds: a resource, a group's opening marker, a group's closing marker. */
export const RES = 0;
export const GROUP_OPEN = 1;
export const GROUP_CLOSE = 2;

/** A devres group id (from `devresOpenGroup`): the kernel's `void *id` of `devres_open_group`. */
export class DevresGroup {
  readonly label: string;
  /** @internal */ closed = false;
  constructor(label: string) {
    this.label = label;
  }
}

/** A devres node: one managed resource (or a group marker) on a device's list. */
export class DevresNode {
  /** @internal The device reference this node holds while on a list. */ holder: Lifetime | null =
    null;
  readonly label: string;
  /** @internal 0 resource, 1 group open, 2 group close. */
  readonly kind: number;
  /** @internal */ readonly group: DevresGroup | null;
  /** @internal Cleared once run or removed. */ release: (() => void) | null;
  /** @internal The device while the node is on its list. */ owner: DeviceState | null = null;
  /** @internal Creation stack in debug mode. */ readonly createdAt: string | undefined;
  constructor(
    label: string,
    kind: number,
    group: DevresGroup | null,
    release: (() => void) | null,
    debug: boolean,
  ) {
    this.label = label;
    this.kind = kind;
    this.group = group;
    this.release = release;
    this.createdAt = debug ? captureStack() : undefined;
  }
}

/** A registered devm action, for `devmRemoveAction`/`devmReleaseAction`. */
export type DevresAction = DevresNode;

/** The devres list of a device that has none yet: shared and frozen, replaced on first add. */
// SAFETY: the array is frozen, so a write that skipped the replacement throws instead of
// sharing nodes between devices; readers only see an empty list.
export const NO_DEVRES: DevresNode[] = Object.freeze([]) as unknown as DevresNode[];

/** Adds `node` to `st`'s list; the node takes a reference to the device. */
export function devresAdd(st: DeviceState, node: DevresNode): DevresNode {
  checkDevresAdd(st, node);
  node.owner = st;
  if (node.kind === RES) node.holder = st.hold(node.label);
  if (st.devres === NO_DEVRES) st.devres = [];
  st.devres.push(node);
  return node;
}

/** @internal Checks done before a managed resource is tied to `st`. */
export function checkDevresAdd(
  st: DeviceState,
  node: { readonly label: string; readonly createdAt: string | undefined },
): void {
  const b = st.binding;
  if (st.dead && (b === null || b.phase === "ended")) {
    throw new DevrefError(
      "ENODEV",
      `device '${st.name}' was removed; managed resources can no longer be tied to it`,
    );
  }
  if (!st.machine.devresDebug) return;
  if (b === null || b.phase === "ended") {
    reportDevresMisuse(st.machine, {
      kind: "registered-unbound",
      device: st.name,
      driver: null,
      resource: node.label,
      message:
        "a managed resource was registered on a device with no driver bound; it will only be " +
        "released at device_del or release. Register it from probe, or manage it yourself",
      storedBy: undefined,
      createdAt: node.createdAt,
      at: captureStack(),
    });
  } else if (b.phase === "unbinding") {
    reportDevresMisuse(st.machine, {
      kind: "registered-during-remove",
      device: st.name,
      driver: b.driver,
      resource: node.label,
      message:
        "a managed resource was registered from remove(); it is released as soon as remove() returns",
      storedBy: undefined,
      createdAt: node.createdAt,
      at: captureStack(),
    });
  }
}

export function devresUnlink(st: DeviceState, node: DevresNode): void {
  const i = node.owner === st ? st.devres.lastIndexOf(node) : -1;
  if (i < 0) {
    throw new DevrefError(
      "ENOENT",
      `devres '${node.label}' is not registered on device '${st.name}' (already released or removed?)`,
    );
  }
  st.devres.splice(i, 1);
  node.owner = null;
  dropHolder(st, node);
}

/** Gives back the device reference a resource node held. */
function dropHolder(st: DeviceState, node: DevresNode): void {
  const holder = node.holder;
  if (holder === null) return;
  node.holder = null;
  st.unhold(holder);
}

/** @internal Unlinks `node` from its device if it is still on a list (Devres drop). */
export function devresDetach(node: DevresNode): void {
  const st = node.owner;
  if (st === null) return;
  const i = st.devres.lastIndexOf(node);
  if (i >= 0) st.devres.splice(i, 1);
  node.owner = null;
  dropHolder(st, node);
}

/** @internal Adds a node for a Devres<T>. */
export function devresAttach(st: DeviceState, node: DevresNode): void {
  devresAdd(st, node);
}

/** @internal Reports a devres release made from a device release callback (debug mode). */
export function noteReleaseFromReleaseCallback(label: string, st: DeviceState): void {
  if (!st.machine.devresDebug) return;
  const running = coreOf(st.machine).releaseRunning;
  if (running === undefined) return;
  reportDevresMisuse(st.machine, {
    kind: "released-from-release-callback",
    device: st.name,
    driver: null,
    resource: label,
    message:
      `a managed resource was released from the release callback of '${running}'; devres is ` +
      "released at unbind, long before release: do not release managed resources there",
    storedBy: undefined,
    createdAt: undefined,
    at: captureStack(),
  });
}

export function findGroup(st: DeviceState, group: DevresGroup | undefined): DevresGroup {
  const list = st.devres;
  for (let i = list.length - 1; i >= 0; i--) {
    const n = list[i]!;
    if (n.kind !== GROUP_OPEN) continue;
    if (group === undefined ? !n.group!.closed : n.group === group) return n.group!;
  }
  throw new DevrefError(
    "ENOENT",
    group === undefined
      ? `device '${st.name}' has no open devres group`
      : `devres group '${group.label}' is not on device '${st.name}' (released or removed already?)`,
  );
}

export function releaseNodes(st: DeviceState, nodes: DevresNode[]): number {
  let released = 0;
  for (let i = nodes.length - 1; i >= 0; i--) {
    const n = nodes[i]!;
    n.owner = null;
    const run = n.release;
    n.release = null;
    if (n.kind !== RES) continue;
    if (run !== null) {
      released++;
      try {
        run();
      } catch (e) {
        // Release functions return void in the kernel: one failing must not stop the rest.
        st.log("err", `devres '${n.label}' release failed: ${String(e)}`);
      }
    }
    dropHolder(st, n);
  }
  return released;
}

/**
 * Releases every managed resource of `st`, newest first (devres_release_all): after
 * remove, on probe failure, in deviceDel and at release. Returns how many ran.
 */
export function devresReleaseAll(st: DeviceState): number {
  let released = 0;
  st.releasingDevres++;
  try {
    // Release actions may register more (they should not); release those too, a bounded
    // number of rounds, so the list is empty afterwards.
    for (let round = 0; st.devres.length > 0 && round < 16; round++) {
      const list = st.devres;
      st.devres = NO_DEVRES;
      released += releaseNodes(st, list);
    }
  } finally {
    st.releasingDevres--;
  }
  return released;
}
