//! @devref/rtkit: the Apple RTKit coprocessor client and its mailbox message codecs.
//!
//! C header: include/linux/soc/apple/rtkit.h; C source: drivers/soc/apple/rtkit.c,
//! drivers/soc/apple/rtkit-crashlog.c

export * from "./codec.js";
export * from "./constants.js";
export {
  CRASHLOG_HEADER_FOURCC,
  CRASHLOG_HEADER_SIZE,
  CRASHLOG_REGS_SIZE,
  type Crashlog,
  type CrashlogHeader,
  type CrashlogLine,
  type CrashlogMailboxEntry,
  type CrashlogRegisters,
  type CrashlogSection,
  formatCrashlog,
  parseCrashlog,
} from "./crashlog.js";
export {
  describeMessage,
  endpointName,
  type MessageDirection,
  powerStateName,
} from "./describe.js";
export { devmRtkit } from "./devm.js";
export { createRtkit } from "./rtkit.js";
export type {
  Rtkit,
  RtkitDma,
  RtkitDmaBuffer,
  RtkitIomem,
  RtkitLogLevel,
  RtkitOps,
  RtkitOptions,
  RtkitSendOptions,
  RtkitShmem,
  RtkitTimers,
  RtkitTransport,
} from "./types.js";
