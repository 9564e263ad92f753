//! @devref/device-core: device objects of the Linux driver model, on a machine.
//!
//! C header: include/linux/device.h; C source: drivers/base/core.c, drivers/base/devres.c,
//! drivers/base/dd.c, kernel/irq/irqdomain.c
//! Rust: rust/kernel/device.rs, rust/kernel/devres.rs, rust/kernel/revocable.rs

export { holders } from "@devref/raw-device";
export { type Attribute, defineAttribute } from "./attributes.js";
export type { BoundCallback } from "./callback.js";
export {
  createDevice,
  type DeviceInit,
  deviceAdd,
  deviceDel,
  deviceRename,
  deviceUnregister,
} from "./core.js";
export {
  configureDevresDebug,
  type DevresDebugOptions,
  type DevresMisuse,
  type DevresMisuseKind,
} from "./debug.js";
export { Device } from "./device.js";
export { Devres, type DevresOptions, Revocable, type RevocableOptions } from "./devres.js";
export { type DevresAction, DevresGroup } from "./devres-list.js";
export {
  auditDevices,
  type DeviceAudit,
  deviceTree,
  devresLabels,
  formatHolders,
} from "./introspect.js";
export {
  IRQ_STORM_LIMIT,
  IRQ_UNHANDLED_LIMIT,
  type IrqChip,
  IrqDomain,
  type IrqDomainOptions,
  type IrqHandler,
  type IrqLine,
  type IrqReturn,
} from "./irq.js";
export {
  DeviceLink,
  type DeviceLinkList,
  DL_DEV_DRIVER_BOUND,
  DL_DEV_NO_DRIVER,
  DL_DEV_PROBING,
  DL_DEV_UNBINDING,
  DL_FLAG_AUTOPROBE_CONSUMER,
  DL_FLAG_AUTOREMOVE_CONSUMER,
  DL_FLAG_AUTOREMOVE_SUPPLIER,
  DL_FLAG_CYCLE,
  DL_FLAG_INFERRED,
  DL_FLAG_MANAGED,
  DL_FLAG_PM_RUNTIME,
  DL_FLAG_RPM_ACTIVE,
  DL_FLAG_STATELESS,
  DL_FLAG_SYNC_STATE_ONLY,
  DL_STATE_ACTIVE,
  DL_STATE_AVAILABLE,
  DL_STATE_CONSUMER_PROBE,
  DL_STATE_DORMANT,
  DL_STATE_NONE,
  DL_STATE_SUPPLIER_UNBIND,
  deviceLinkAdd,
  deviceLinkDel,
  deviceLinkRemove,
  deviceLinks,
} from "./links.js";
export {
  consoleSink,
  devDbg,
  devErr,
  devErrProbe,
  devInfo,
  devNotice,
  devWarn,
  type LogLevel,
  type LogRecord,
  type LogSink,
  setLogSink,
} from "./log.js";
export {
  type DeferredDevice,
  type DmaLayer,
  defaultMachine,
  deferredDevices,
  deferredProbeTrigger,
  Machine,
  type MachineOptions,
  microtaskScheduler,
  type Scheduler,
  type UeventRegistration,
  waitForDeviceProbe,
} from "./machine.js";
export {
  type MemResource,
  type MmioBackend,
  MmioRegion,
  RegisterFile,
  type U64,
} from "./mmio.js";
export type {
  AttributeSlot,
  BusEvent,
  DeviceIommu,
  DeviceLifecycle,
  DmaOps,
  FirmwareNode,
  IommuRef,
  IrqSpec,
  IrqTrigger,
} from "./state.js";
export type { Uevent, UeventAction, UeventListener } from "./uevent.js";
