//! @devref/device-core/unsafe: what bus packages need to create devices and bind drivers.
//!
//! Like `@devref/raw-device/unsafe`: these reach the device object itself, mint borrows of
//! any context and drive the binding state. Only bus and DMA/IOMMU packages should import
//! this entry; every use carries a `// SAFETY:` comment saying why it holds.

export {
  captureStack,
  devresDebugEnabled,
  reportDevresMisuse,
} from "./debug.js";
export {
  addState,
  Binding,
  type BindingPhase,
  type BusHooks,
  checkDevresAdd,
  DeviceScope,
  DeviceState,
  type DeviceStateInit,
  DevresNode,
  deleteTree,
  delState,
  deviceStateOf,
  devresReleaseAll,
} from "./device.js";
export { emit } from "./log.js";
