//! @devref/raw-device: ownership of device references, refcount_t, errors, addresses, memory.

export * from "./address.js";
export * from "./allocator.js";
export * from "./args.js";
export * from "./dispose.js";
export * from "./errors.js";
export * from "./memory.js";
export {
  type ARef,
  type Borrowed,
  type Bound,
  type ContextOf,
  type Core,
  configureOwnership,
  type DeviceContext,
  defaultOwnershipSettings,
  defineStatic,
  type HolderInfo,
  holders,
  isThenable,
  type LeakReport,
  type Normal,
  type NotOwned,
  type OwnedMark,
  type OwnershipOptions,
  OwnershipSettings,
  RawDevice,
  refcountOf,
  type Static,
  withBorrow,
} from "./ownership.js";
export * from "./refcount.js";
