//! C header: include/linux/dev_printk.h (dev_err, dev_warn, dev_info, dev_dbg, dev_err_probe)

import { DevrefError, type Errno } from "@devref/raw-device";
import type { Device } from "./device.js";
import { deviceStateOf } from "./device.js";

/** Message levels, as the kernel's `KERN_*` levels. */
export type LogLevel = "err" | "warn" | "notice" | "info" | "dbg";

/** One log message. */
export interface LogRecord {
  readonly level: LogLevel;
  /** The device name. */
  readonly device: string;
  /** What the kernel prints before the device name: the bound driver, else the bus, else null. */
  readonly prefix: string | null;
  /** The message without prefix. */
  readonly message: string;
  /** The full line, `"<driver> <devname>: message"` or `"<devname>: message"`. */
  readonly text: string;
}

/** Where log records go. */
export type LogSink = (record: LogRecord) => void;

/**
 * The default sink: errors and warnings to `console.error`, `notice` and `info` to
 * `console.log`; debug messages are dropped, as without `dyndbg`.
 */
export const consoleSink: LogSink = (record) => {
  if (record.level === "dbg") return;
  if (record.level === "err" || record.level === "warn") console.error(record.text);
  else console.log(record.text);
};

let sink: LogSink = consoleSink;

/**
 * Replaces the log sink and returns the previous one.
 *
 * @example
 * ```ts
 * const lines: string[] = [];
 * const previous = setLogSink((r) => lines.push(r.text));
 * try { ... } finally { setLogSink(previous); }
 * ```
 */
export function setLogSink(next: LogSink): LogSink {
  const previous = sink;
  sink = next;
  return previous;
}

/** @internal Emits a record for a device known by name and prefix. */
export function emit(
  level: LogLevel,
  device: string,
  prefix: string | null,
  message: string,
): void {
  const text = prefix === null ? `${device}: ${message}` : `${prefix} ${device}: ${message}`;
  sink({ level, device, prefix, message, text });
}

function devLog(level: LogLevel, dev: Device, message: string): void {
  const st = deviceStateOf(dev);
  emit(level, st.name, st.driverString(), message);
}

/** Logs an error about `dev` (dev_err). **Errors:** `ENODEV` if the handle is not live. */
export function devErr(dev: Device, message: string): void {
  devLog("err", dev, message);
}
/** Logs a warning about `dev` (dev_warn). */
export function devWarn(dev: Device, message: string): void {
  devLog("warn", dev, message);
}
/** Logs a notice about `dev` (dev_notice). */
export function devNotice(dev: Device, message: string): void {
  devLog("notice", dev, message);
}
/** Logs information about `dev` (dev_info). */
export function devInfo(dev: Device, message: string): void {
  devLog("info", dev, message);
}
/** Logs a debug message about `dev` (dev_dbg); the default sink drops these. */
export function devDbg(dev: Device, message: string): void {
  devLog("dbg", dev, message);
}

/**
 * Makes the error a probe returns, and logs it the way `dev_err_probe` does: a deferral is
 * recorded as the device's deferral reason (see `deferredDevices()` in `@devref/bus`) and
 * logged at debug level only; any other error is logged at error level.
 *
 * **Errors:** none of its own; it returns the error for the caller to throw.
 *
 * @example
 * ```ts
 * if (!clock.ready) throw devErrProbe(dev, "EPROBE_DEFER", "waiting for the clock controller");
 * ```
 */
export function devErrProbe(dev: Device, error: Errno | DevrefError, message: string): DevrefError {
  const st = deviceStateOf(dev);
  const err =
    typeof error === "string"
      ? new DevrefError(error, `${st.name}: ${message}`)
      : new DevrefError(error.code, `${st.name}: ${message}`, { cause: error });
  if (err.code === "EPROBE_DEFER") {
    st.deferredReason = message;
    emit("dbg", st.name, st.driverString(), `error ${err.code}: ${message}`);
  } else {
    emit("err", st.name, st.driverString(), `error ${err.code}: ${message}`);
  }
  return err;
}
