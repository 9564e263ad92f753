//! @devref/raw-device: ownership of device references, refcount_t, errors, addresses, memory.

export * from "./address.js";
export * from "./allocator.js";
export * from "./errors.js";
export * from "./memory.js";
