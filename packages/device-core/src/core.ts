//! C source: drivers/base/core.c (device_initialize, device_add, device_del,
//! device_unregister), drivers/pci/remove.c (removal of a subtree)

import {
  type ARef,
  argumentError,
  checkArray,
  checkInstance,
  checkInteger,
  checkObject,
  checkOneOf,
  checkString,
  DevrefError,
} from "@devref/raw-device";
import { adoptRef } from "@devref/raw-device/unsafe";
import { Device } from "./device.js";
import { devresReleaseAll } from "./devres-list.js";
import { linksPurge } from "./links.js";
import { coreOf, defaultMachine, Machine } from "./machine.js";
import { checkMemResource, checkMmioBackend } from "./mmio.js";
import {
  DeviceState,
  deviceStateOf,
  EMPTY_FWNODE,
  type FirmwareNode,
  listAppend,
  listRemove,
} from "./state.js";
import { devpathOf } from "./uevent.js";

/** What {@link createDevice} takes. */
export interface DeviceInit {
  /** The device name. */
  readonly name: string;
  /** The parent: the child takes its own reference when added. Any live handle. */
  readonly parent?: Device | null;
  /** The machine; the parent's, else the default machine, when omitted. */
  readonly machine?: Machine;
  /** What firmware says about the device; absent fields are empty. */
  readonly fwnode?: Partial<FirmwareNode>;
  /** Runs once, when the last reference goes (dev->release). Required. */
  readonly release: () => void;
}

/**
 * Creates an initialized device on no bus (device_initialize) and returns the creator's
 * owned reference, labelled `label`.
 *
 * **Invariants:** the device is freed only through put: after this call, even if
 * `deviceAdd` fails or is never called, drop it with `.put()`.
 *
 * **Errors:** `EINVAL` for a bad description (no name string, no release function, a
 * parent on another machine); `ENODEV` if `parent` is not live.
 *
 * @example
 * ```ts
 * const soc = createDevice({ name: "soc", release: () => console.log("soc released") });
 * deviceAdd(soc);
 * ```
 */
export function createDevice(init: DeviceInit, label = "creator"): ARef<Device> {
  checkObject("createDevice", "init", init);
  checkString("createDevice", "init.name", init.name);
  checkString("createDevice", "label", label);
  const parent =
    init.parent === undefined || init.parent === null
      ? null
      : deviceStateOf(checkInstance("createDevice", "init.parent", init.parent, Device));
  const machine = machineFor("createDevice", init.machine, parent);
  const fwnode =
    init.fwnode === undefined ? undefined : checkFirmwareNode("createDevice", init.fwnode);
  checkRelease(init.name, init.release);
  const st = new DeviceState(
    { name: init.name, parent, machine, fwnode, release: init.release },
    Device,
    machine,
  );
  return adoptRef<Device>(st, label);
}

/**
 * The machine a new device joins: the one given, else its parent's, else the default.
 *
 * **Errors:** `EINVAL` if the given machine is not a Machine, or differs from the parent's.
 */
export function machineFor(
  where: string,
  machine: Machine | undefined,
  parent: DeviceState | null,
): Machine {
  if (machine !== undefined) checkInstance(where, "machine", machine, Machine);
  const m = machine ?? parent?.machine ?? defaultMachine();
  if (parent !== null && parent.machine !== m) {
    throw new DevrefError(
      "EINVAL",
      `${where}: the parent '${parent.name}' belongs to machine '${parent.machine.name}', not '${m.name}'; a device and its parent share one machine`,
    );
  }
  return m;
}

/** Checks a release callback (dev->release): required, as the kernel warns loudly without one. */
export function checkRelease(name: string, release: unknown): void {
  if (typeof release !== "function") {
    throw new DevrefError(
      "EINVAL",
      `device '${name}' has no release() function: it would be broken and leak; ` +
        "pass release, which runs once when the last reference goes",
    );
  }
}

/**
 * Checks a firmware description and returns a frozen copy.
 *
 * **Errors:** `EINVAL` naming the first bad field.
 */
export function checkFirmwareNode(where: string, fw: Partial<FirmwareNode>): FirmwareNode {
  checkObject(where, "fwnode", fw);
  const compatible = checkStringList(where, "compatible", fw.compatible);
  const mem = fw.mem === undefined ? [] : checkArray(where, "mem", fw.mem);
  mem.forEach((r, i) => {
    checkObject(where, `mem[${i}]`, r);
    checkString(where, `mem[${i}].name`, r.name);
    checkMemResource(where, r, `mem[${i}]`);
    checkMmioBackend(where, `mem[${i}].backend`, r.backend);
  });
  const interrupts =
    fw.interrupts === undefined ? [] : checkArray(where, "interrupts", fw.interrupts);
  interrupts.forEach((irq, i) => {
    checkObject(where, `interrupts[${i}]`, irq);
    checkString(where, `interrupts[${i}].domain`, irq.domain, true);
    checkInteger(where, `interrupts[${i}].hwirq`, irq.hwirq, 0, 0x7fff_ffff);
    checkOneOf(where, `interrupts[${i}].trigger`, irq.trigger, ["level", "edge"]);
  });
  const iommus = fw.iommus === undefined ? [] : checkArray(where, "iommus", fw.iommus);
  iommus.forEach((r, i) => {
    checkObject(where, `iommus[${i}]`, r);
    checkString(where, `iommus[${i}].iommu`, r.iommu, true);
    checkArray(where, `iommus[${i}].ids`, r.ids).forEach((id, k) => {
      checkInteger(where, `iommus[${i}].ids[${k}]`, id, 0, 0xffff_ffff);
    });
  });
  // Copies, so later changes to the caller's arrays do not reach the device; empty lists
  // share the frozen empties of EMPTY_FWNODE (most devices have no IRQs or IOMMUs).
  return Object.freeze({
    compatible: compatible.length === 0 ? EMPTY_FWNODE.compatible : Object.freeze([...compatible]),
    mem:
      mem.length === 0 ? EMPTY_FWNODE.mem : Object.freeze(mem.map((r) => Object.freeze({ ...r }))),
    interrupts:
      interrupts.length === 0
        ? EMPTY_FWNODE.interrupts
        : Object.freeze(interrupts.map((r) => Object.freeze({ ...r }))),
    iommus:
      iommus.length === 0
        ? EMPTY_FWNODE.iommus
        : Object.freeze(
            iommus.map((r) => Object.freeze({ iommu: r.iommu, ids: Object.freeze([...r.ids]) })),
          ),
  });
}

function checkStringList(where: string, param: string, value: unknown): readonly string[] {
  if (value === undefined) return [];
  if (!Array.isArray(value)) throw argumentError(where, param, "an array of strings", value);
  value.forEach((v, i) => {
    checkString(where, `${param}[${i}]`, v, true);
  });
  // SAFETY: every element was checked to be a string just above.
  return value as readonly string[];
}

/**
 * Registers a device (device_add): names it, takes a reference on its parent, adds it to
 * its bus (which notifies `ADD_DEVICE` and tries to bind a driver) and to the parent's
 * children.
 *
 * **Errors:** `EEXIST` if already registered; `EINVAL` if it was deleted (allocate a new
 * one) or has no name; `ENODEV` if the parent is not registered; whatever the bus throws
 * when adding (everything is undone; the caller must still put its reference).
 */
export function deviceAdd(dev: Device): void {
  addState(deviceStateOf(checkInstance("deviceAdd", "dev", dev, Device)));
}

/**
 * Unregisters a device (device_del): marks it dead, unbinds its driver, releases devres,
 * leaves the bus and sysfs, and drops the parent reference. The caller's own reference is
 * untouched: the dead device stays readable until the last holder puts it.
 *
 * **Errors:** `EINVAL` if the device is not registered.
 */
export function deviceDel(dev: Device): void {
  delState(deviceStateOf(checkInstance("deviceDel", "dev", dev, Device)));
}

/**
 * Renames a device (device_rename). The kernel discourages it, but networking still does
 * it, which is why a name is never an identity here: handles read the current name, and
 * device links and uevents follow it. A registered device's bus and siblings must not have
 * the name yet; listeners get a `move` uevent with the old path.
 *
 * **Errors:** `EINVAL` for a name that is empty or has a `/`, or a deleted device;
 * `EEXIST` if the bus or a sibling already has a device of that name (nothing changes).
 */
export function deviceRename(dev: Device, name: string): void {
  const st = deviceStateOf(checkInstance("device_rename", "dev", dev, Device));
  checkString("device_rename", "name", name, true);
  if (name.includes("/")) {
    throw new DevrefError(
      "EINVAL",
      `device_rename: '${name}' has a '/': a device name is one path element`,
    );
  }
  if (st.dead) {
    throw new DevrefError(
      "EINVAL",
      `device_rename: '${st.name}' was deleted; a dead device keeps its name`,
    );
  }
  const old = st.name;
  if (name === old) return;
  if (st.registered) {
    if (siblingsOf(st).some((s) => s !== st && s.name === name)) {
      throw new DevrefError(
        "EEXIST",
        `device_rename: '${st.parent?.name ?? "/devices"}' already has a device named '${name}'`,
      );
    }
    st.bus?.renameDevice(st, name);
  }
  const oldPath = st.registered ? devpathOf(st) : null;
  st.name = name;
  st.refcount.owner = name;
  if (oldPath !== null) coreOf(st.machine).uevent(st, "move", null, oldPath);
}

/** The registered devices that share `st`'s parent (or that have none, as `st`). */
function siblingsOf(st: DeviceState): DeviceState[] {
  if (st.parent !== null) return st.parent.children;
  const out: DeviceState[] = [];
  for (let d = coreOf(st.machine).roots.head; d !== null; d = d.nextSibling) out.push(d);
  return out;
}

/** deviceDel, then put the caller's reference (device_unregister). */
export function deviceUnregister(dev: ARef<Device>): void {
  delState(deviceStateOf(checkInstance("deviceUnregister", "dev", dev, Device)));
  dev.put();
}

/** @internal device_add on the object. */
export function addState(st: DeviceState): void {
  if (st.dead) {
    throw new DevrefError(
      "EINVAL",
      `device '${st.name}' was deleted and must never be added again; create a new device`,
    );
  }
  if (st.registered) {
    throw new DevrefError("EEXIST", `device '${st.name}' is already registered`);
  }
  if (st.name === "" && st.bus?.devName !== undefined && st.id !== undefined) {
    st.name = `${st.bus.devName}${st.id}`;
    st.refcount.owner = st.name;
  }
  if (st.name === "") {
    throw new DevrefError(
      "EINVAL",
      "a device needs a name before it is added; set one at creation",
    );
  }
  const parent = st.parent;
  if (st.bus !== null && st.bus.machine !== st.machine) {
    throw new DevrefError(
      "EINVAL",
      `device '${st.name}' belongs to machine '${st.machine.name}', but bus '${st.bus.name}' to '${st.bus.machine.name}'`,
    );
  }
  if (parent !== null && (!parent.registered || parent.dead)) {
    throw new DevrefError(
      "ENODEV",
      `cannot add '${st.name}' under '${parent.name}', which is ${parent.lifecycle}; add the parent first`,
    );
  }
  st.refcount.inc(); // held for the duration of device_add
  try {
    st.takeParentRef();
    st.registered = true;
    try {
      st.bus?.addDevice(st);
    } catch (e) {
      st.registered = false;
      st.dropParentRef();
      throw e;
    }
    st.bus?.notify("ADD_DEVICE", st);
    coreOf(st.machine).uevent(st, "add", null);
    if (!st.dead) st.bus?.probeDevice(st);
    if (st.registered) {
      if (parent === null) listAppend(coreOf(st.machine).roots, st, false);
      else parent.addChild(st);
    }
  } finally {
    st.put();
  }
}

function refuseDuringRemove(st: DeviceState): void {
  if (st.binding?.phase === "unbinding") {
    throw new DevrefError(
      "EBUSY",
      `device '${st.name}' is being unbound: it cannot be deleted from its own driver's remove() ` +
        "(that deadlocks in the kernel); delete it after remove() returns",
    );
  }
}

/** @internal device_del on the object. */
export function delState(st: DeviceState): void {
  if (!st.registered || st.dead) {
    throw new DevrefError(
      "EINVAL",
      `device '${st.name}' is ${st.lifecycle}, not registered; only a registered device can be deleted`,
    );
  }
  refuseDuringRemove(st);
  st.refcount.inc(); // the device must outlive its own deletion
  try {
    st.dead = true;
    st.bus?.notify("DEL_DEVICE", st);
    st.bus?.removeDevice(st);
    linksPurge(st);
    // Resources added outside a binding (device_del has released them since 2023).
    devresReleaseAll(st);
    st.bus?.notify("REMOVED_DEVICE", st);
    coreOf(st.machine).uevent(st, "remove", null);
    st.registered = false;
    if (st.parent === null) listRemove(coreOf(st.machine).roots, st, false);
    else st.parent.removeChild(st);
    st.dropParentRef();
  } finally {
    st.put();
  }
}

/**
 * Deletes `st` and every registered descendant, children first and newest first, as bus
 * code does on removal.
 *
 * With `surprise`, the hardware is gone at once: the whole subtree is marked disconnected
 * first, so MMIO reads all-ones, writes are dropped and DMA fails from this moment, and
 * drivers' remove callbacks see hardware that no longer answers. Hardware does not wait:
 * if a driver of the subtree is being unbound right now (its remove or devres release is
 * running), the software side of the removal is queued on the machine's scheduler and runs
 * once that unbind has finished.
 *
 * **Errors:** without `surprise`, `EBUSY` when a device of the subtree is being unbound
 * (deleting it from its own remove deadlocks in the kernel); nothing changes then.
 */
export function deleteTree(st: DeviceState, surprise: boolean): void {
  if (surprise) {
    markDisconnected(st);
    if (subtreeBusy(st)) {
      queueRemoval(st);
      return;
    }
  } else {
    checkSubtree(st);
  }
  deleteSubtree(st);
}

/** Whether a driver of the subtree is being unbound or its devres is being released. */
function subtreeBusy(st: DeviceState): boolean {
  if (st.releasingDevres > 0) return true;
  if (st.registered && !st.dead && st.binding?.phase === "unbinding") return true;
  for (let c = st.head; c !== null; c = c.nextSibling) if (subtreeBusy(c)) return true;
  return false;
}

function queueRemoval(st: DeviceState): void {
  const held = st.hold("pending surprise removal");
  st.machine.scheduler.queue(() => {
    try {
      if (st.registered && !st.dead) deleteTree(st, true);
    } finally {
      st.unhold(held);
    }
  });
}

function checkSubtree(st: DeviceState): void {
  if (st.registered && !st.dead) refuseDuringRemove(st);
  for (const c of st.children) checkSubtree(c);
}

function deleteSubtree(st: DeviceState): void {
  const children = st.children.reverse();
  for (const child of children) {
    if (child.registered && !child.dead) deleteSubtree(child);
  }
  if (st.registered && !st.dead) delState(st);
}

function markDisconnected(st: DeviceState): void {
  st.disconnected = true;
  for (const child of st.children) markDisconnected(child);
}
