//! @devref/device-core/unsafe: what bus packages need to create devices and bind drivers.
//!
//! Like `@devref/raw-device/unsafe`: these reach the device object itself, mint borrows of
//! any context and drive the binding state. Only bus and DMA/IOMMU packages should import
//! this entry; every use carries a `// SAFETY:` comment saying why it holds.

export { makeBoundCallback } from "./callback.js";
export {
  addState,
  checkFirmwareNode,
  checkRelease,
  deleteTree,
  delState,
  machineFor,
} from "./core.js";
export { captureStack, reportDevresMisuse } from "./debug.js";
export { boundState } from "./device.js";
export {
  checkDevresAdd,
  DevresNode,
  devresAdd,
  devresReleaseAll,
  RES,
} from "./devres-list.js";
export { requestIrqOf } from "./irq-request.js";
export {
  linksBusy,
  linksCheckSuppliers,
  linksDriverBound,
  linksDriverCleanup,
  linksNoDriver,
  linksUnbindConsumers,
} from "./links.js";
export { errProbe } from "./log.js";
export { coreOf, type DeviceList, MachineCore, type NamedOnMachine } from "./machine.js";
export {
  checkMemResource,
  checkMmioBackend,
  type MmioRegionInit,
  unmapRegion,
} from "./mmio.js";
export { DeviceScope } from "./scope.js";
export {
  Binding,
  type BindingPhase,
  type BusHooks,
  DeviceState,
  type DeviceStateInit,
  deviceStateOf,
  EMPTY_FWNODE,
  type ScopeLike,
} from "./state.js";
