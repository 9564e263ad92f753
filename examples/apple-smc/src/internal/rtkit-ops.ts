//! C source: drivers/mfd/macsmc.c (apple_smc_rtkit_recv_early, apple_smc_rtkit_recv,
//! apple_smc_rtkit_crashed)
//!
//! The SMC's RTKit callbacks: replies and INITIALIZE's answer straight from the interrupt
//! path, notifications from RTKit's work queue, and the crash with its crashlog.

import { DevrefError } from "@devref/raw-device";
import { type Crashlog, parseCrashlog } from "@devref/rtkit";
import { decodeSmcEvent } from "../events.js";
import { hex64, isSmcNotification, SMC_ENDPOINT } from "../protocol.js";
import type { SmcCore } from "./core.js";

/** recv_message_early: INITIALIZE's answer and command replies; notifications go on. */
export function recvEarly(core: SmcCore, ep: number, msg0: bigint): boolean {
  if (ep !== SMC_ENDPOINT) {
    core.log("warn", `Received message for unknown endpoint 0x${ep.toString(16)}`);
    return false;
  }
  // Whatever comes first while booting is the answer (the kernel does the same).
  if (core.takeInitAnswer(msg0)) return true;
  if (isSmcNotification(msg0)) return false;
  core.takeReply(msg0);
  return true;
}

/** recv_message: notifications, to every event handler in turn. */
export function recv(core: SmcCore, ep: number, msg0: bigint): void {
  if (ep !== SMC_ENDPOINT) {
    core.log("warn", `Received message for unknown endpoint 0x${ep.toString(16)}`);
    return;
  }
  if (!isSmcNotification(msg0)) {
    core.log("warn", `Received unknown message from worker: 0x${hex64(msg0)}`);
    return;
  }
  const event = decodeSmcEvent(Number(msg0 >> 32n));
  core.events++;
  core.log("dbg", `event 0x${event.code.toString(16)}: ${event.description}`);
  for (const h of [...core.eventHandlers]) {
    try {
      h(event);
    } catch (e) {
      core.log("err", `an event handler threw: ${String(e)}`);
    }
  }
}

/**
 * crashed: the crashlog copy is parsed and kept, the command in flight fails with EIO, and
 * a restart follows (the kernel only marks the SMC crashed).
 */
export function crashed(core: SmcCore, copy: Uint8Array | null): void {
  core.log("err", "SMC crashed!");
  let crashlog: Crashlog | null = null;
  let problem: string | null = copy === null ? "RTKit had no crashlog to copy" : null;
  if (copy !== null) {
    try {
      crashlog = parseCrashlog(copy);
      problem = crashlog.error ?? (crashlog.footer ? null : "the crashlog has no CLHE footer");
    } catch (e) {
      problem = e instanceof Error ? e.message : String(e);
      core.log("err", `the crashlog could not be parsed: ${problem}`);
    }
  }
  const messages: string[] = [];
  let version: string | null = null;
  for (const s of crashlog?.sections ?? []) {
    if (s.kind === "str") messages.push(...s.lines);
    else if (s.kind === "version") version = s.version;
  }
  core.crashes.push({ crashlog, messages, version, problem });
  if (core.isDead) return;
  core.setStage("crashed");
  const why = messages.length > 0 ? ` (${messages.join("; ")})` : "";
  core.failInFlight(
    new DevrefError(
      "EIO",
      `${core.name}: the SMC firmware crashed${why}; wait for whenRunning() and retry`,
    ),
  );
  core.afterCrash();
}
