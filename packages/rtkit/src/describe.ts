//! A one-line trace decoder for RTKit mailbox traffic (what m1n1's trace/asc.py prints).

import { checkInteger, checkOneOf } from "@devref/raw-device";
import * as C from "./constants.js";
import {
  checkMsg0,
  field36,
  field44,
  hex,
  hexPad,
  hiOf,
  join,
  loOf,
  type52,
  type56,
} from "./internal/bits.js";

/** Which way a message went; some types mean different things each way. */
export type MessageDirection = "to-ap" | "to-iop";

const ENDPOINT_NAMES: Readonly<Record<number, string>> = {
  [C.EP_MGMT]: "mgmt",
  [C.EP_CRASHLOG]: "crashlog",
  [C.EP_SYSLOG]: "syslog",
  [C.EP_DEBUG]: "debug",
  [C.EP_IOREPORT]: "ioreport",
  [C.EP_OSLOG]: "oslog",
  10: "tracekit",
};

/**
 * The name of an endpoint: "mgmt", "syslog", …, "app" for 0x20 and up, else "system".
 *
 * **Errors:** `EINVAL` if `ep` is not a whole number in [0, 255].
 *
 * @example
 * ```ts
 * endpointName(2); // "syslog"
 * ```
 */
export function endpointName(ep: number): string {
  checkInteger("endpointName", "ep", ep, 0, 0xff);
  return ENDPOINT_NAMES[ep] ?? (ep >= C.APP_ENDPOINT_START ? "app" : "system");
}

/**
 * A power state as `NAME (0xNNN)`, or just the number for one the kernel does not name.
 *
 * **Errors:** `EINVAL` if `state` is not a whole number in [0, 0xffff] (the 16-bit field the
 * power-state messages carry).
 *
 * @example
 * ```ts
 * powerStateName(0x20); // "ON (0x20)"
 * ```
 */
export function powerStateName(state: number): string {
  checkInteger("powerStateName", "state", state, 0, 0xffff);
  const name = C.POWER_STATE_NAMES[state];
  return name === undefined ? `0x${hex(state)}` : `${name} (0x${hex(state)})`;
}

const reservedText = (hi: number, lo: number, knownHi: number, knownLo: number): string => {
  const rHi = (hi & ~knownHi) >>> 0;
  const rLo = (lo & ~knownLo) >>> 0;
  return rHi === 0 && rLo === 0 ? "" : ` reserved 0x${hex(join(rHi, rLo))}`;
};

const T52_MASK = 0x0ff0_0000; // bits 59:52 in the high half

function describeMgmt(hi: number, lo: number, dir: MessageDirection | undefined): string {
  const type = type52(hi);
  switch (type) {
    case C.MGMT_HELLO:
    case C.MGMT_HELLO_REPLY: {
      const min = lo & 0xffff;
      const max = lo >>> 16;
      const name = type === C.MGMT_HELLO ? "HELLO" : "HELLO_REPLY";
      return `${name} min ${min} max ${max}${reservedText(hi, lo, T52_MASK, 0xffff_ffff)}`;
    }
    case C.MGMT_STARTEP: {
      const flag = lo & 3;
      const what = flag === 2 ? "start" : flag === 1 ? "stop" : `flag ${flag}`;
      return `STARTEP ep 0x${hexPad(hi & 0xff, 2)} ${what}${reservedText(hi, lo, T52_MASK | 0xff, 3)}`;
    }
    case C.MGMT_SET_IOP_PWR_STATE:
    case C.MGMT_SET_IOP_PWR_STATE_ACK:
    case C.MGMT_SET_AP_PWR_STATE: {
      const name =
        type === C.MGMT_SET_IOP_PWR_STATE
          ? "SET_IOP_PWR_STATE"
          : type === C.MGMT_SET_IOP_PWR_STATE_ACK
            ? "SET_IOP_PWR_STATE_ACK"
            : dir === "to-ap"
              ? "SET_AP_PWR_STATE_ACK"
              : dir === "to-iop"
                ? "SET_AP_PWR_STATE"
                : "SET_AP_PWR_STATE(_ACK)";
      return `${name} ${powerStateName(lo & 0xffff)}${reservedText(hi, lo, T52_MASK, 0xffff)}`;
    }
    case C.MGMT_EPMAP: {
      const base = hi & 7;
      const last = (hi & (1 << 19)) !== 0 ? " last" : "";
      if (dir === "to-iop") {
        const more = (lo & 1) !== 0 ? " more" : "";
        return `EPMAP_REPLY base ${base}${last}${more}${reservedText(hi, lo, T52_MASK | 7 | (1 << 19), 1)}`;
      }
      const eps: string[] = [];
      for (let i = 0; i < 32; i++) if ((lo >>> i) & 1) eps.push(`0x${hexPad(base * 32 + i, 2)}`);
      const name = dir === "to-ap" ? "EPMAP" : "EPMAP(_REPLY)";
      return `${name} base ${base} bitmap 0x${hexPad(lo, 8)} [${eps.join(" ")}]${last}${reservedText(hi, lo, T52_MASK | 7 | (1 << 19), 0xffff_ffff)}`;
    }
    default: {
      const alias =
        type === C.MGMT_PING ? " (m1n1 PING)" : type === C.MGMT_PONG ? " (m1n1 PONG)" : "";
      return `unknown type 0x${hexPad(type, 2)}${alias} msg0 0x${hex(join(hi, lo))}`;
    }
  }
}

function describeBuffer(hi: number, lo: number, dir: MessageDirection | undefined): string {
  const pages = (hi >>> 12) & 0xff;
  const iova = field44(hi, lo);
  const who = iova === 0 ? " (AP allocates)" : "";
  const name = dir === "to-iop" ? "BUFFER_REPLY" : "BUFFER_REQUEST";
  return `${name} ${pages} pages (0x${hex(pages * 0x1000)} bytes) at 0x${hex(iova)}${who}${reservedText(hi, lo, T52_MASK | 0xf_ffff, 0xffff_ffff)}`;
}

function describeSystem(ep: number, hi: number, lo: number, dir: MessageDirection | undefined) {
  const type = type52(hi);
  const unknown = () => `unknown type 0x${hexPad(type, 2)} msg0 0x${hex(join(hi, lo))}`;
  switch (ep) {
    case C.EP_CRASHLOG:
      if (type !== C.CRASHLOG_CRASH) return unknown();
      return dir === "to-iop"
        ? describeBuffer(hi, lo, dir)
        : `${describeBuffer(hi, lo, dir)} (a CRASH once the buffer exists)`;
    case C.EP_SYSLOG:
      if (type === C.BUFFER_REQUEST) return describeBuffer(hi, lo, dir);
      if (type === C.SYSLOG_INIT) {
        return `INIT ${lo & 0xff} entries of ${(lo >>> 24) & 0xff} bytes${reservedText(hi, lo, T52_MASK, 0xff00_00ff)}`;
      }
      if (type === C.SYSLOG_LOG) {
        const ack = dir === "to-iop" ? " ack" : "";
        return `LOG entry ${lo & 0xff}${ack}${reservedText(hi, lo, T52_MASK, 0xff)}`;
      }
      return unknown();
    case C.EP_IOREPORT:
      if (type === C.BUFFER_REQUEST) return describeBuffer(hi, lo, dir);
      if (type === C.IOREPORT_UNKNOWN1 || type === C.IOREPORT_UNKNOWN2) {
        const name =
          type === C.IOREPORT_UNKNOWN1 ? "UNKNOWN1 (m1n1 Report)" : "UNKNOWN2 (m1n1 Start)";
        const echo = dir === "to-iop" ? " echo" : "";
        return `${name}${echo}${reservedText(hi, lo, T52_MASK, 0)}`;
      }
      return unknown();
    case C.EP_OSLOG: {
      const t = type56(hi);
      if (t !== C.OSLOG_BUFFER_REQUEST) {
        return `unknown type 0x${hexPad(t, 2)} msg0 0x${hex(join(hi, lo))}`;
      }
      const size = (hi >>> 4) & 0xf_ffff;
      const iova = field36(hi, lo) * 0x1000;
      const name = dir === "to-iop" ? "BUFFER_REPLY" : "BUFFER_REQUEST";
      return `${name} 0x${hex(size)} bytes at 0x${hex(iova)}${iova === 0 ? " (AP allocates)" : ""}`;
    }
    default:
      return `msg0 0x${hexPad(join(hi, lo), 16)}`;
  }
}

/**
 * Names any RTKit message in one line, e.g. `ep 0x00 mgmt HELLO min 11 max 12`: the
 * endpoint, its kind, the message type and its fields, and any bits no field names
 * (`reserved 0x…`). Types that mean different things each way (EPMAP and its reply, the AP
 * power state and its ack, buffer requests and replies) are named exactly when `direction`
 * is given.
 *
 * **Invariants:** never more than one line; every (ep, msg0) pair has a description.
 *
 * **Errors:** `EINVAL` if `ep` is not in [0, 255], `msg0` is not a 64-bit bigint, or
 * `direction` is not "to-ap", "to-iop" or undefined.
 *
 * @example
 * ```ts
 * describeMessage(0, 0x0088_0000_0000_011fn, "to-ap");
 * // "ep 0x00 mgmt EPMAP base 0 bitmap 0x0000011f [0x00 0x01 0x02 0x03 0x04 0x08] last"
 * ```
 */
export function describeMessage(ep: number, msg0: bigint, direction?: MessageDirection): string {
  checkInteger("describeMessage", "ep", ep, 0, 0xff);
  const msg = checkMsg0("describeMessage", "msg0", msg0);
  if (direction !== undefined) {
    checkOneOf("describeMessage", "direction", direction, ["to-ap", "to-iop"] as const);
  }
  const hi = hiOf(msg);
  const lo = loOf(msg);
  const head = `ep 0x${hexPad(ep, 2)} ${endpointName(ep)}`;
  if (ep === C.EP_MGMT) return `${head} ${describeMgmt(hi, lo, direction)}`;
  if (ep >= C.APP_ENDPOINT_START) return `${head} msg0 0x${hexPad(msg, 16)}`;
  return `${head} ${describeSystem(ep, hi, lo, direction)}`;
}
