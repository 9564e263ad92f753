// A minimal bus for the tests: binds a driver by hand, the way @devref/bus does, through
// the unsafe entry.

import {
  type BusEvent,
  createDevice,
  Device,
  defaultMachine,
  type LogRecord,
  type Machine,
  setLogSink,
} from "@devref/device-core";
import {
  Binding,
  type BusHooks,
  DeviceScope,
  type DeviceState,
  deviceStateOf,
  devresReleaseAll,
  DeviceState as State,
} from "@devref/device-core/unsafe";
import type { ARef, Borrowed, Core } from "@devref/raw-device";
import { adoptRef, CONTEXT_CORE } from "@devref/raw-device/unsafe";

export interface Made {
  readonly dev: ARef<Device>;
  readonly releases: () => number;
}

/** A bus-less device whose creator holds the initial reference. */
export function makeDevice(name: string, parent?: Device): Made {
  let releases = 0;
  const dev = createDevice({
    name,
    parent: parent ?? null,
    release: () => {
      releases++;
    },
  });
  return { dev, releases: () => releases };
}

/** Runs `fn` as a probe would: a binding is started and a Core borrow handed out. */
export function bindByHand<R>(
  dev: Device,
  driver: string,
  fn: <S>(d: Borrowed<Device<Core>, S>) => R,
): R {
  const st = deviceStateOf(dev);
  const b = new Binding(driver, {});
  st.binding = b;
  const scope = new DeviceScope(CONTEXT_CORE);
  b.probeScope = scope;
  try {
    // SAFETY: the test plays the bus: the binding exists and the scope closes after fn.
    const r = fn(scope.borrow(st, st.Handle) as unknown as Borrowed<Device<Core>, never>);
    b.phase = "bound";
    st.everBound = true;
    return r;
  } finally {
    scope.close();
    b.probeScope = null;
  }
}

/** Ends the binding as unbind does: remove (given), then devres in reverse. */
export function unbindByHand(
  dev: Device,
  remove?: <S>(d: Borrowed<Device<Core>, S>) => void,
): void {
  const st = deviceStateOf(dev);
  const b = st.binding;
  if (b === null) return;
  b.phase = "unbinding";
  const scope = new DeviceScope(CONTEXT_CORE);
  try {
    // SAFETY: as in bindByHand.
    remove?.(scope.borrow(st, st.Handle) as unknown as Borrowed<Device<Core>, never>);
  } finally {
    scope.close();
  }
  devresReleaseAll(st);
  b.closeScopes();
  b.phase = "ended";
  st.binding = null;
}

/** Collects log records while `fn` runs. */
export function captureLog<R>(fn: () => R): { result: R; records: LogRecord[] } {
  const records: LogRecord[] = [];
  const previous = setLogSink((r) => records.push(r));
  try {
    return { result: fn(), records };
  } finally {
    setLogSink(previous);
  }
}

/** A fake bus that records the hooks device-core calls. */
export class RecordingBus implements BusHooks {
  readonly name = "fake";
  readonly machine: Machine = defaultMachine();
  readonly devName: string | undefined = "fake";
  readonly events: string[] = [];
  addDevice(dev: DeviceState): void {
    this.events.push(`add ${dev.name}`);
  }
  probeDevice(dev: DeviceState): void {
    this.events.push(`probe ${dev.name}`);
  }
  removeDevice(dev: DeviceState): void {
    this.events.push(`remove ${dev.name}`);
  }
  releaseDriver(dev: DeviceState): void {
    this.events.push(`release driver ${dev.name}`);
  }
  renameDevice(dev: DeviceState, name: string): void {
    this.events.push(`rename ${dev.name} to ${name}`);
  }
  notify(event: BusEvent, dev: DeviceState): void {
    this.events.push(`${event} ${dev.name}`);
  }
}

/** A device on `bus`, created through the unsafe entry as a bus package does. */
export function makeBusDevice(bus: BusHooks, name: string, id?: number): Made {
  let releases = 0;
  const st = new State({ name, id, bus, release: () => releases++ }, Device, bus.machine);
  // SAFETY: adopts the initial count of the new object.
  return { dev: adoptRef<Device>(st, "creator"), releases: () => releases };
}
