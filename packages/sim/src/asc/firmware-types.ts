//! The shapes an RTKit firmware model shares with what plugs into it: its states and the
//! application-endpoint interface.

import type { FaultSpec } from "../faults.js";

/** Where the firmware is in its life. */
export type RtkitFirmwareState =
  /** CPU held in reset (`CPU_CONTROL.RUN` never set). */
  | "off"
  /** Leaving reset; HELLO follows after the boot delay. */
  | "booting"
  /** Running but asleep: a SET_IOP_PWR_STATE to ON or INIT starts a handshake. */
  | "asleep"
  /** HELLO sent, waiting for HELLO_REPLY. */
  | "hello"
  /** Sending EPMAP pages, one per reply. */
  | "epmap"
  /** EPMAP done, waiting for the system endpoints to be started. */
  | "starting"
  /** IOP power ON acknowledged. */
  | "running"
  /** Crashed: nothing is read from the mailbox until the CPU is reset. */
  | "crashed"
  /** Powered OFF, or the device is gone: only a CPU reset revives it. */
  | "halted";

/** The states in the order of the firmware's internal numbering (trace `rtkit-state` notes). */
export const FIRMWARE_STATES: readonly RtkitFirmwareState[] = [
  "off",
  "booting",
  "asleep",
  "hello",
  "epmap",
  "starting",
  "running",
  "crashed",
  "halted",
];

/**
 * An application endpoint's firmware (the SMC is one). `msg0` travels as two 32-bit
 * halves; the endpoint answers with `RtkitFirmware.send`.
 */
export interface RtkitEndpoint {
  /** STARTEP with the start flag. */
  start(): void;
  /** STARTEP with m1n1's stop flag (what real firmware does with it is unknown). */
  stop(): void;
  /** A message from the AP while the endpoint is started. */
  receive(hi: number, lo: number): void;
  /** The firmware forgot its session (sleep, CPU reset): drop per-session state. */
  reset(): void;
  /** Fault kinds the endpoint accepts, like `DeviceModel.prepareFault`. */
  prepareFault(spec: FaultSpec): (() => void) | null;
}
