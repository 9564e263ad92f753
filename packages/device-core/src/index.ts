//! @devref/device-core: device objects of the Linux driver model.
//!
//! C header: include/linux/device.h; C source: drivers/base/core.c, drivers/base/devres.c
//! Rust: rust/kernel/device.rs, rust/kernel/devres.rs, rust/kernel/revocable.rs

export { holders } from "@devref/raw-device";
export {
  configureDevresDebug,
  type DevresDebugOptions,
  type DevresMisuse,
  type DevresMisuseKind,
} from "./debug.js";
export {
  type Attribute,
  type BusEvent,
  createDevice,
  Device,
  type DeviceInit,
  type DeviceIommu,
  type DeviceLifecycle,
  type DevresAction,
  DevresGroup,
  type DmaOps,
  defineAttribute,
  deviceAdd,
  deviceDel,
  deviceUnregister,
} from "./device.js";
export { Devres, type DevresOptions, Revocable, type RevocableOptions } from "./devres.js";
export {
  auditDevices,
  type DeviceAudit,
  deviceTree,
  devresLabels,
  formatHolders,
} from "./introspect.js";
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
