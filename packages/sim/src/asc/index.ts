//! The Apple ASC mailbox, an RTKit firmware framework and the Apple SMC.

export type { CrashlogCorruption } from "./crashlog.js";
export {
  CRASHLOG_CORRUPTIONS,
  GARBAGE_MODES,
  type RtkitGarbageMode,
  type SmcFaultMode,
} from "./faults.js";
export { RtkitFirmware } from "./firmware.js";
export type {
  RtkitBufferOption,
  RtkitFirmwareOptions,
  RtkitOslogOption,
} from "./firmware-options.js";
export { FIRMWARE_STATES, type RtkitEndpoint, type RtkitFirmwareState } from "./firmware-types.js";
export {
  type AscCoprocessor,
  type AscIrqLines,
  AscMailbox,
  type AscMailboxOptions,
  type AscVariant,
} from "./mailbox.js";
export { type AppleSmcParts, type AppleSmcSetup, createAppleSmc } from "./setup.js";
export { AppleSmc, type AppleSmcOptions } from "./smc.js";
export {
  defaultSmcKeys,
  type SmcKeyDef,
  smcChargePercent,
  smcRtcTicks,
  smcTemperature,
} from "./smc-keys.js";
