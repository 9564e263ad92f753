//! The modes of the ASC firmware models' fault kinds (`rtkit-crash`, `rtkit-silence`,
//! `rtkit-stall`, `rtkit-garbage`, `smc-fault` in the core's `FaultKinds`). Each targets
//! the ASC by its model name: `soc.faults.schedule({ step: 40 }, { kind: "rtkit-crash",
//! target: "smc" })`.

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
