//! @devref/io-pgtable: ARM LPAE and Apple DART I/O page tables over caller-supplied memory.
//! C header: include/linux/io-pgtable.h

export * from "./alloc.js";
export * from "./constants.js";
export { AppleDartIoPgtable } from "./dart.js";
export {
  type DecodeOptions,
  decodeIoPgtable,
  dumpIoPgtable,
  formatProt,
  type IoPgtableProblem,
} from "./decode.js";
export * from "./gather.js";
export { ArmLpaeIoPgtable, type IoPgtableOps } from "./lpae.js";
export * from "./types.js";
