//! @devref/example-apple-smc: an Apple SMC client over @devref/rtkit on the simulated ASC
//! mailbox.
//!
//! C source: drivers/mfd/macsmc.c, drivers/platform/apple/smc_rtkit.c,
//! drivers/soc/apple/mailbox.c; C header: include/linux/mfd/macsmc.h

export {
  type AppleSmcBinding,
  type AppleSmcDriver,
  type AppleSmcDriverOptions,
  createAppleSmcDriver,
} from "./driver.js";
export { decodeSmcEvent, type SmcEvent, type SmcEventKind } from "./events.js";
export type { SmcCrash, SmcStage } from "./internal/core.js";
export {
  ASC_V4_LAYOUT,
  AscMailboxChannel,
  type AscMailboxChannelOptions,
  type AscMailboxLayout,
  MBOX_CONTROL_EMPTY,
  MBOX_CONTROL_FULL,
  MBOX_TX_TIMEOUT_MS,
  T8015_LAYOUT,
} from "./mailbox.js";
export * from "./protocol.js";
export {
  type AppleSmcScenarioOptions,
  appleSmcScenario,
  makeAppleSmcScenario,
} from "./scenario.js";
export { settleFor, settleUntil } from "./settle.js";
export { type CoherentRtkitDma, coherentRtkitDma, SramWindow } from "./shmem.js";
export { AppleSmc, type AppleSmcStats } from "./smc.js";
export {
  decodeSmcValue,
  encodeSmcValue,
  keyInfoFromBytes,
  type SmcKeyInfo,
  type SmcKnownKeys,
  type SmcValue,
  type SmcValueOf,
} from "./values.js";
