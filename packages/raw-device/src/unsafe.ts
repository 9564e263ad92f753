//! @devref/raw-device/unsafe: what device packages need to implement the RawDevice trait.
//!
//! Like `unsafe` in the Rust kernel crate: these let a caller fabricate handles and end
//! borrows. Only device-model packages (device-core, bus) should import this entry; every
//! use carries a `// SAFETY:` comment saying why it holds.

export { Lifetime, type LifetimeOwner } from "./lifetime.js";
export {
  adoptRef,
  BorrowScope,
  CONTEXT_BOUND,
  CONTEXT_CORE,
  CONTEXT_NORMAL,
  contextOf,
  HANDLE_KEY,
  type HandleConstructor,
  Kobject,
  liveObject,
  objectIfLive,
  requireContext,
} from "./ownership.js";
