import { type BusType, PlatformBus } from "@devref/bus";
import { type Device, type LogRecord, Machine } from "@devref/device-core";

let n = 0;
let current: Machine = new Machine({ name: "test0" });
/** A fresh platform bus on a fresh machine per test, so tests do not see each other. */
export function freshBus(): PlatformBus {
  n++;
  current = new Machine({ name: `test${n}` });
  return new PlatformBus({ machine: current });
}

/** The machine of the latest {@link freshBus}. */
export function currentMachine(): Machine {
  return current;
}

/** Records every notifier event as "EVENT device[driver]". */
export function recordEvents<H extends Device>(bus: BusType<H>): string[] {
  const events: string[] = [];
  bus.registerNotifier((event, dev) => {
    events.push(`${event} ${dev.name}${dev.driverName === null ? "" : `[${dev.driverName}]`}`);
  });
  return events;
}

/** Collects the log records of the latest fresh machine until restored. */
export function captureLog(): { records: LogRecord[]; restore: () => void } {
  const records: LogRecord[] = [];
  const machine = current;
  const previous = machine.setLogSink((r) => records.push(r));
  return { records, restore: () => machine.setLogSink(previous) };
}

/** A promise resolved from outside: how tests pace an asynchronous probe. */
export function gate<T = void>(): {
  promise: Promise<T>;
  open: (v: T) => void;
  fail: (e: unknown) => void;
} {
  let open!: (v: T) => void;
  let fail!: (e: unknown) => void;
  const promise = new Promise<T>((res, rej) => {
    open = res;
    fail = rej;
  });
  return { promise, open, fail };
}
