//! The ASC firmware models' fault kinds (`rtkit-crash`, `rtkit-silence`, `rtkit-stall`,
//! `rtkit-garbage`, `smc-fault` in the core's `FaultKinds`): their modes and how a spec
//! becomes an action. Each targets the ASC by its model name: `soc.faults.schedule({ step:
//! 40 }, { kind: "rtkit-crash", target: "smc" })`.

import { argumentError, checkInteger, checkOneOf } from "@devref/raw-device";
import type { FaultSpec } from "../faults.js";
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

/** The garbage modes, in the order of the `rtkit-corrupt-message` record's `a` (1-based). */
export const GARBAGE_MODES: readonly RtkitGarbageMode[] = [
  "random",
  "wrong-type",
  "wrong-endpoint",
  "out-of-range",
];

/** The crashlog damage modes `RtkitFirmware.crash` accepts. */
export const CRASHLOG_CORRUPTIONS: readonly CrashlogCorruption[] = [
  "none",
  "bad-magic",
  "too-large",
  "zero-section",
  "no-footer",
];

/** What the firmware's fault kinds act on (the firmware's own public methods). */
export interface FirmwareFaultTarget {
  crash(reason: string, corrupt: CrashlogCorruption): boolean;
  silence(durationNs?: number): void;
  stall(durationNs?: number): void;
  corrupt(mode: RtkitGarbageMode, count: number): void;
}

/**
 * Validates one of the firmware's fault kinds and returns its action; null for any other
 * kind.
 *
 * **Errors:** `EINVAL` for a bad field.
 */
export function firmwareFault(fw: FirmwareFaultTarget, spec: FaultSpec): (() => void) | null {
  switch (spec.kind) {
    case "rtkit-crash": {
      const reason = spec.reason ?? "injected crash";
      if (typeof reason !== "string") {
        throw argumentError("rtkit-crash fault", "reason", "a string", reason);
      }
      const corrupt = checkOneOf(
        "rtkit-crash fault",
        "corrupt",
        spec.corrupt ?? "none",
        CRASHLOG_CORRUPTIONS,
      );
      return () => {
        fw.crash(reason, corrupt);
      };
    }
    case "rtkit-silence":
    case "rtkit-stall": {
      const d = spec.durationNs;
      if (d !== undefined) {
        checkInteger(`${spec.kind} fault`, "durationNs", d, 1, Number.MAX_SAFE_INTEGER / 2);
      }
      return spec.kind === "rtkit-silence" ? () => fw.silence(d) : () => fw.stall(d);
    }
    case "rtkit-garbage": {
      const mode = checkOneOf("rtkit-garbage fault", "mode", spec.mode ?? "random", GARBAGE_MODES);
      const count = checkInteger("rtkit-garbage fault", "count", spec.count ?? 1, 1, 0x7fff_ffff);
      return () => fw.corrupt(mode, count);
    }
    default:
      return null;
  }
}
