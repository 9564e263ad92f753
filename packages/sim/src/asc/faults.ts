//! The fault kinds of the ASC firmware models, added to the core's `FaultKinds`. Each
//! targets the ASC by its model name: `soc.faults.schedule({ step: 40 }, { kind:
//! "rtkit-crash", target: "smc" })`.

import type { CrashlogCorruption } from "./crashlog.js";

/** What an injected SMC fault does to the next commands (see `AppleSmc.fault`). */
export type SmcFaultMode =
  /** No reply at all: the AP's command times out. */
  | "no-reply"
  /** The reply carries another sequence ID. */
  | "wrong-id"
  /** The reply carries `result` (default 0x01, kSMCError) instead of the real result. */
  | "result"
  /** INITIALIZE answers with an address just past the end of SRAM. */
  | "bad-shmem";

/** How the firmware damages its next messages (`RtkitFirmware.corrupt`, `rtkit-garbage`). */
export type RtkitGarbageMode =
  /** msg0 replaced by 64 random bits from the SoC's seeded source. */
  | "random"
  /** The type field (bits 59:52; 63:56 on OSLog) XOR-ed with 0xf0: a type nobody defines. */
  | "wrong-type"
  /** Sent to the next endpoint number the EPMAP did not announce. */
  | "wrong-endpoint"
  /** Every field below the type set to all ones (versions, states, sizes, indexes, addresses). */
  | "out-of-range";

declare module "../faults.js" {
  interface FaultKinds {
    /** The RTKit firmware on the target ASC crashes (crashlog, then the crash message). */
    "rtkit-crash": {
      readonly target: string;
      readonly reason?: string;
      readonly corrupt?: CrashlogCorruption;
    };
    /** The firmware reads and ignores everything and sends nothing (for `durationNs`, or for good). */
    "rtkit-silence": { readonly target: string; readonly durationNs?: number };
    /** The firmware stops reading its mailbox (for `durationNs`, or for good). */
    "rtkit-stall": { readonly target: string; readonly durationNs?: number };
    /** The firmware's next `count` (default 1) messages are damaged (default `random`). */
    "rtkit-garbage": {
      readonly target: string;
      readonly mode?: RtkitGarbageMode;
      readonly count?: number;
    };
    /** The SMC endpoint on the target ASC misbehaves for its next `count` (default 1) commands. */
    "smc-fault": {
      readonly target: string;
      readonly mode: SmcFaultMode;
      readonly result?: number;
      readonly count?: number;
    };
  }
}
