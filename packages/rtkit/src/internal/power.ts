//! C source: drivers/soc/apple/rtkit.c (apple_rtkit_boot, _wake, _shutdown, _idle,
//! _quiesce, _poweroff, _reinit, _start_ep, apple_rtkit_set_{ap,iop}_power_state)
//!
//! The calls that wait. Each returns null or the error the kernel returns, and stops at the
//! first failing step, as the kernel does.

import { DevrefError } from "@devref/raw-device";
import * as C from "../constants.js";
import { powerStateName } from "../describe.js";
import { hexPad } from "./bits.js";
import { freeBuffer } from "./buffers.js";
import type { RtkitClient } from "./client.js";

type Result = DevrefError | null;

async function setApPowerState(rtk: RtkitClient, state: number): Promise<Result> {
  rtk.reinitCompletion(rtk.apAck);
  const sent = rtk.mgmtSend(C.MGMT_SET_AP_PWR_STATE, 0, state);
  if (sent !== null) return sent;
  const waited = await rtk.waitFor(rtk.apAck);
  if (waited !== null) return waited;
  if (rtk.apPowerState === state) return null;
  return new DevrefError(
    "EINVAL",
    `${rtk.deviceName}: asked for AP power state ${powerStateName(state)}, the firmware acknowledged ${powerStateName(rtk.apPowerState)}`,
  );
}

async function setIopPowerState(rtk: RtkitClient, state: number): Promise<Result> {
  rtk.reinitCompletion(rtk.iopAck);
  const sent = rtk.mgmtSend(C.MGMT_SET_IOP_PWR_STATE, 0, state);
  if (sent !== null) return sent;
  const waited = await rtk.waitFor(rtk.iopAck);
  if (waited !== null) return waited;
  if (rtk.iopPowerState === state) return null;
  return new DevrefError(
    "EINVAL",
    `${rtk.deviceName}: asked for IOP power state ${powerStateName(state)}, the firmware acknowledged ${powerStateName(rtk.iopPowerState)}`,
  );
}

/** apple_rtkit_start_ep: the kernel ignores whether the STARTEP could be sent. */
export function startEp(rtk: RtkitClient, ep: number): Result {
  if (rtk.endpoints[ep] === 0) {
    return new DevrefError(
      "EINVAL",
      `${rtk.deviceName}: endpoint 0x${hexPad(ep, 2)} was not announced by the firmware's EPMAP`,
    );
  }
  if (ep >= C.APP_ENDPOINT_START && !rtk.isRunning) {
    return new DevrefError(
      "EINVAL",
      `${rtk.deviceName}: endpoint 0x${hexPad(ep, 2)} is an application endpoint and RTKit is not running; boot() first`,
    );
  }
  rtk.mgmtSend(C.MGMT_STARTEP, ep, C.STARTEP_FLAG_START);
  return null;
}

export async function boot(rtk: RtkitClient): Promise<Result> {
  if (rtk.isRunning) return null;
  if (rtk.crashed) {
    return new DevrefError(
      "EINVAL",
      `${rtk.deviceName}: the coprocessor has crashed; reset it and call reinit() before booting again`,
    );
  }
  rtk.log("dbg", "RTKit: waiting for boot to finish");
  const epmap = await rtk.waitFor(rtk.epmapDone);
  if (epmap !== null) return epmap;
  if (rtk.bootResult !== null) return rtk.bootResult;
  rtk.log("dbg", "RTKit: waiting for IOP power state ACK");
  const iop = await rtk.waitFor(rtk.iopAck);
  if (iop !== null) return iop;
  return setApPowerState(rtk, C.PWR_STATE_ON);
}

export async function wake(rtk: RtkitClient): Promise<Result> {
  if (rtk.isRunning) {
    return new DevrefError("EINVAL", `${rtk.deviceName}: wake: RTKit is already running`);
  }
  // boot() waits for this acknowledgement, so the request is sent without waiting here.
  rtk.reinitCompletion(rtk.iopAck);
  const sent = rtk.mgmtSend(C.MGMT_SET_IOP_PWR_STATE, 0, C.PWR_STATE_INIT);
  if (sent !== null) return sent;
  return boot(rtk);
}

export async function reinit(rtk: RtkitClient): Promise<Result> {
  await rtk.stopAndFlush();
  if (rtk.freed) return rtk.shutdownError("reinit");
  for (const slot of [rtk.ioreport, rtk.crashlog, rtk.oslog, rtk.syslog]) freeBuffer(rtk, slot);
  rtk.syslogReady = false;
  rtk.syslogEntries = 0;
  rtk.syslogMsgSize = 0;
  rtk.endpoints.fill(0);
  rtk.endpoints[C.EP_MGMT] = 1;
  rtk.reinitCompletion(rtk.epmapDone);
  rtk.reinitCompletion(rtk.iopAck);
  rtk.reinitCompletion(rtk.apAck);
  rtk.crashed = false;
  rtk.iopPowerState = C.PWR_STATE_OFF;
  rtk.apPowerState = C.PWR_STATE_OFF;
  rtk.restart();
  return null;
}

export async function shutdown(rtk: RtkitClient): Promise<Result> {
  // SLEEP rather than OFF: a coprocessor put into OFF does not wake again.
  return (
    (await setApPowerState(rtk, C.PWR_STATE_QUIESCED)) ??
    (await setIopPowerState(rtk, C.PWR_STATE_SLEEP)) ??
    reinit(rtk)
  );
}

export async function idle(rtk: RtkitClient): Promise<Result> {
  const err =
    (await setApPowerState(rtk, C.PWR_STATE_IDLE)) ??
    (await setIopPowerState(rtk, C.PWR_STATE_IDLE));
  if (err !== null) return err;
  rtk.iopPowerState = C.PWR_STATE_IDLE;
  rtk.apPowerState = C.PWR_STATE_IDLE;
  return null;
}

export async function quiesce(rtk: RtkitClient): Promise<Result> {
  const err =
    (await setApPowerState(rtk, C.PWR_STATE_QUIESCED)) ??
    (await setIopPowerState(rtk, C.PWR_STATE_QUIESCED)) ??
    (await reinit(rtk));
  if (err !== null) return err;
  rtk.iopPowerState = C.PWR_STATE_QUIESCED;
  rtk.apPowerState = C.PWR_STATE_QUIESCED;
  return null;
}

export async function poweroff(rtk: RtkitClient): Promise<Result> {
  return (
    (await setApPowerState(rtk, C.PWR_STATE_OFF)) ??
    (await setIopPowerState(rtk, C.PWR_STATE_OFF)) ??
    reinit(rtk)
  );
}
