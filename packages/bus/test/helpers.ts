import { type BusType, PlatformBus } from "@devref/bus";
import { type Device, type LogRecord, setLogSink } from "@devref/device-core";

let n = 0;
/** A fresh platform bus per test, so tests do not see each other's devices. */
export function freshBus(): PlatformBus {
  n++;
  return new PlatformBus(`test${n}`);
}

/** Records every notifier event as "EVENT device[driver]". */
export function recordEvents<H extends Device>(bus: BusType<H>): string[] {
  const events: string[] = [];
  bus.registerNotifier((event, dev) => {
    events.push(`${event} ${dev.name}${dev.driverName === null ? "" : `[${dev.driverName}]`}`);
  });
  return events;
}

/** Collects log records until restored. */
export function captureLog(): { records: LogRecord[]; restore: () => void } {
  const records: LogRecord[] = [];
  const previous = setLogSink((r) => records.push(r));
  return { records, restore: () => setLogSink(previous) };
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
