//! C source: drivers/soc/apple/rtkit.c (apple_rtkit_management_rx and its helpers, the
//! crashlog, syslog, IOReport and OSLog handlers, apple_rtkit_rx_work's switch)
//!
//! What the work queue does with a system endpoint's message, in the kernel's order: the
//! same replies, the same state changes, the same log lines.

import { DevrefError } from "@devref/raw-device";
import * as C from "../constants.js";
import { crashlogHeaderProblem, formatCrashlog, parseCrashlog } from "../crashlog.js";
import { hex, hexPad, type52, type56 } from "./bits.js";
import { getBuffer, readShmem } from "./buffers.js";
import type { RtkitClient } from "./client.js";
import { startEp } from "./power.js";
import { cString, isCroppedSyslogByte } from "./text.js";

function helloRx(rtk: RtkitClient, lo: number): void {
  const min = lo & 0xffff;
  const max = lo >>> 16;
  const want = Math.min(C.MAX_SUPPORTED_VERSION, max);
  rtk.log("dbg", `RTKit: Min ver ${min}, max ver ${max}`);
  let problem: string | null = null;
  if (min > C.MAX_SUPPORTED_VERSION) {
    rtk.log("err", `RTKit: Firmware min version ${min} is too new`);
    problem = `the firmware's minimum protocol version ${min} is newer than ${C.MAX_SUPPORTED_VERSION}`;
  } else if (max < C.MIN_SUPPORTED_VERSION) {
    rtk.log("err", `RTKit: Firmware max version ${max} is too old`);
    problem = `the firmware's maximum protocol version ${max} is older than ${C.MIN_SUPPORTED_VERSION}`;
  }
  if (problem !== null) {
    rtk.bootResult = new DevrefError(
      "EINVAL",
      `${rtk.deviceName}: boot aborted: ${problem} (this client speaks ${C.MIN_SUPPORTED_VERSION} to ${C.MAX_SUPPORTED_VERSION})`,
    );
    rtk.completeAll(rtk.epmapDone);
    return;
  }
  rtk.log("info", `RTKit: Initializing (protocol version ${want})`);
  rtk.version = want;
  rtk.mgmtSend(C.MGMT_HELLO_REPLY, 0, (want | (want << 16)) >>> 0);
}

const SYSTEM_EPS_TO_START = [
  C.EP_CRASHLOG,
  C.EP_SYSLOG,
  C.EP_DEBUG,
  C.EP_IOREPORT,
  C.EP_OSLOG,
] as const;

function epmapRx(rtk: RtkitClient, hi: number, lo: number): void {
  const base = hi & 7;
  const last = (hi & (1 << 19)) !== 0;
  rtk.log("dbg", `RTKit: received endpoint bitmap 0x${hex(lo)} with base 0x${hex(base)}`);
  for (let i = 0; i < 32; i++) {
    if (((lo >>> i) & 1) === 0) continue;
    const ep = 32 * base + i;
    rtk.log("dbg", `RTKit: Discovered endpoint 0x${hexPad(ep, 2)}`);
    rtk.endpoints[ep] = 1;
  }
  rtk.mgmtSend(C.MGMT_EPMAP_REPLY, base | (last ? 1 << 19 : 0), last ? 0 : 1);
  if (!last) return;
  for (let ep = 0; ep < C.APP_ENDPOINT_START; ep++) {
    if (rtk.endpoints[ep] === 0 || ep === C.EP_MGMT) continue;
    // SAFETY: widens a tuple of endpoint numbers to number[] so includes() takes any number.
    if ((SYSTEM_EPS_TO_START as readonly number[]).includes(ep)) {
      rtk.log("dbg", `RTKit: Starting system endpoint 0x${hexPad(ep, 2)}`);
      startEp(rtk, ep);
    } else {
      rtk.log("warn", `RTKit: Unknown system endpoint: 0x${hexPad(ep, 2)}`);
    }
  }
  rtk.bootResult = null;
  rtk.completeAll(rtk.epmapDone);
}

function mgmtRx(rtk: RtkitClient, hi: number, lo: number, msg: bigint): void {
  const type = type52(hi);
  switch (type) {
    case C.MGMT_HELLO:
      helloRx(rtk, lo);
      return;
    case C.MGMT_EPMAP:
      epmapRx(rtk, hi, lo);
      return;
    case C.MGMT_SET_IOP_PWR_STATE_ACK: {
      const state = lo & 0xffff;
      rtk.log(
        "dbg",
        `RTKit: IOP power state transition: 0x${hex(rtk.iopPowerState)} -> 0x${hex(state)}`,
      );
      rtk.iopPowerState = state;
      rtk.completeAll(rtk.iopAck);
      return;
    }
    case C.MGMT_SET_AP_PWR_STATE_ACK: {
      const state = lo & 0xffff;
      rtk.log(
        "dbg",
        `RTKit: AP power state transition: 0x${hex(rtk.apPowerState)} -> 0x${hex(state)}`,
      );
      rtk.apPowerState = state;
      rtk.completeAll(rtk.apAck);
      return;
    }
    default:
      rtk.log(
        "warn",
        `RTKit: unknown management message: 0x${hex(msg)} (type: 0x${hexPad(type, 2)})`,
      );
  }
}

function crashlogRx(rtk: RtkitClient, hi: number, lo: number, msg: bigint): void {
  if (type52(hi) !== C.CRASHLOG_CRASH) {
    rtk.log("warn", `RTKit: Unknown crashlog message: ${hex(msg)}`);
    return;
  }
  const slot = rtk.crashlog;
  if (slot.desc === null) {
    getBuffer(rtk, slot, C.EP_CRASHLOG, hi, lo);
    return;
  }
  rtk.log("err", "RTKit: co-processor has crashed");
  // The copy keeps the firmware from changing the log while it is read, and is what
  // ops.crashed gets to keep.
  const desc = slot.desc;
  let copy: Uint8Array | null = new Uint8Array(desc.size);
  if (!readShmem(rtk, desc, 0, copy)) copy = null;
  if (copy === null) {
    rtk.log("err", "RTKit: the crashlog buffer has no CPU view; there is no crashlog to copy");
  } else {
    const problem = crashlogHeaderProblem(copy);
    if (problem !== null) rtk.log("warn", problem);
    else for (const line of formatCrashlog(parseCrashlog(copy))) rtk.log(line.level, line.text);
  }
  rtk.crashed = true;
  const crashed = rtk.cfg.crashed;
  if (crashed !== null) {
    try {
      crashed(copy);
    } catch (e) {
      rtk.callbackError("crashed", e);
    }
  }
}

function syslogLog(rtk: RtkitClient, lo: number, msg: bigint): void {
  const idx = lo & 0xff;
  const desc = rtk.syslog.desc;
  const msgSize = rtk.syslogMsgSize;
  if (!rtk.syslogReady) {
    rtk.log("warn", "RTKit: received syslog message but no syslog_msg_buffer");
  } else if (desc === null) {
    rtk.log("warn", "RTKit: received syslog message but syslog_buffer.size is zero");
  } else if (desc.bytes === null && desc.iomem === null) {
    rtk.log(
      "warn",
      "RTKit: received syslog message but no syslog_buffer.buffer or syslog_buffer.iomem",
    );
  } else if (idx > rtk.syslogEntries) {
    rtk.log("warn", `RTKit: syslog index ${idx} out of range`);
  } else if (msgSize === 0) {
    // The kernel would write a NUL one byte before its zero-sized scratch buffer.
    rtk.log("warn", "RTKit: syslog message size is 0; nothing to print");
  } else {
    const at = idx * (0x20 + msgSize);
    if (at + 0x20 + msgSize > desc.size) {
      // Reachable through the kernel's `idx > n_entries` check (idx == n_entries passes)
      // or a ring the firmware describes larger than the buffer it asked for.
      rtk.log(
        "warn",
        `RTKit: syslog entry ${idx} lies outside the 0x${hex(desc.size)}-byte syslog buffer`,
      );
    } else {
      // A direct view is read in place; an iomem buffer is copied out first (the kernel
      // copies every entry into its syslog scratch buffers).
      let bytes = desc.bytes;
      let base = at;
      if (bytes === null) {
        bytes = rtk.syslogScratch(0x20 + msgSize);
        base = 0;
        if (!readShmem(rtk, desc, at, bytes)) bytes = null;
      }
      if (bytes !== null) {
        const context = cString(bytes, base + 8, base + 8 + 23);
        let len = msgSize - 1;
        const text0 = base + 0x20;
        while (len > 0 && isCroppedSyslogByte(bytes[text0 + len - 1]!)) len--;
        rtk.log("info", `RTKit: syslog message: ${context}: ${cString(bytes, text0, text0 + len)}`);
      }
    }
  }
  rtk.sendIgnoringResult(C.EP_SYSLOG, msg);
}

function syslogRx(rtk: RtkitClient, hi: number, lo: number, msg: bigint): void {
  switch (type52(hi)) {
    case C.BUFFER_REQUEST:
      getBuffer(rtk, rtk.syslog, C.EP_SYSLOG, hi, lo);
      return;
    case C.SYSLOG_INIT:
      rtk.syslogEntries = lo & 0xff;
      rtk.syslogMsgSize = (lo >>> 24) & 0xff;
      rtk.syslogReady = true;
      rtk.log(
        "dbg",
        `RTKit: syslog initialized: entries: ${rtk.syslogEntries}, msg_size: ${rtk.syslogMsgSize}`,
      );
      return;
    case C.SYSLOG_LOG:
      syslogLog(rtk, lo, msg);
      return;
    default:
      rtk.log("warn", `RTKit: Unknown syslog message: ${hex(msg)}`);
  }
}

function ioreportRx(rtk: RtkitClient, hi: number, lo: number, msg: bigint): void {
  switch (type52(hi)) {
    case C.BUFFER_REQUEST:
      getBuffer(rtk, rtk.ioreport, C.EP_IOREPORT, hi, lo);
      return;
    case C.IOREPORT_UNKNOWN1:
    case C.IOREPORT_UNKNOWN2:
      // The firmware hangs unless these are echoed.
      rtk.sendIgnoringResult(C.EP_IOREPORT, msg);
      return;
    default:
      rtk.log("warn", `RTKit: Unknown ioreport message: ${hex(msg)}`);
  }
}

function oslogRx(rtk: RtkitClient, hi: number, lo: number, msg: bigint): void {
  if (type56(hi) === C.OSLOG_BUFFER_REQUEST) getBuffer(rtk, rtk.oslog, C.EP_OSLOG, hi, lo);
  else rtk.log("warn", `RTKit: Unknown oslog message: ${hex(msg)}`);
}

/** apple_rtkit_rx_work for endpoints below 0x20. */
export function dispatchSystem(
  rtk: RtkitClient,
  ep: number,
  hi: number,
  lo: number,
  msg: bigint,
): void {
  switch (ep) {
    case C.EP_MGMT:
      mgmtRx(rtk, hi, lo, msg);
      return;
    case C.EP_CRASHLOG:
      crashlogRx(rtk, hi, lo, msg);
      return;
    case C.EP_SYSLOG:
      syslogRx(rtk, hi, lo, msg);
      return;
    case C.EP_IOREPORT:
      ioreportRx(rtk, hi, lo, msg);
      return;
    case C.EP_OSLOG:
      oslogRx(rtk, hi, lo, msg);
      return;
    default:
      rtk.log("warn", `RTKit: message to unknown endpoint ${hexPad(ep, 2)}: ${hex(msg)}`);
  }
}
