//! C header: include/linux/dev_printk.h (dev_err, dev_warn, dev_info, dev_dbg, dev_err_probe)

import { checkInstance, checkString, DevrefError, type Errno } from "@devref/raw-device";
import type { Device } from "./device.js";
import { defaultMachine, type LogLevel, type LogSink, Machine } from "./machine.js";
import { type DeviceState, deviceStateOf } from "./state.js";

export {
  consoleSink,
  type LogLevel,
  type LogRecord,
  type LogSink,
} from "./machine.js";

/**
 * Replaces the log sink of `machine` (the default machine when omitted) and returns the
 * previous one.
 *
 * @example
 * ```ts
 * const lines: string[] = [];
 * const previous = setLogSink((r) => lines.push(r.text));
 * try { ... } finally { setLogSink(previous); }
 * ```
 */
export function setLogSink(next: LogSink, machine: Machine = defaultMachine()): LogSink {
  return checkInstance("setLogSink", "machine", machine, Machine).setLogSink(next);
}

function devLog(level: LogLevel, dev: Device, message: string): void {
  const st = deviceStateOf(dev);
  st.log(level, checkString(`dev_${level}`, "message", message));
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
  checkString("devErrProbe", "message", message);
  if (!(error instanceof DevrefError) && typeof error !== "string") {
    throw new DevrefError("EINVAL", "devErrProbe: error must be an errno name or a DevrefError");
  }
  return errProbe(st, error, message);
}

/**
 * @internal {@link devErrProbe} on the device object, for the driver core's own probe
 * errors (a device link's missing supplier); the arguments are the caller's to check.
 */
export function errProbe(
  st: DeviceState,
  error: Errno | DevrefError,
  message: string,
): DevrefError {
  const err =
    typeof error === "string"
      ? new DevrefError(error, `${st.name}: ${message}`)
      : new DevrefError(error.code, `${st.name}: ${message}`, { cause: error });
  if (err.code === "EPROBE_DEFER") {
    st.deferredReason = message;
    st.log("dbg", `error ${err.code}: ${message}`);
  } else {
    st.log("err", `error ${err.code}: ${message}`);
  }
  return err;
}
