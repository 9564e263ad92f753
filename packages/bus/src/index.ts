//! @devref/bus: bus types, drivers, matching, probe/remove, deferred probe, notifiers and
//! surprise removal; a platform bus and a PCI-like bus with hot-plug slots.
//!
//! C source: drivers/base/bus.c, drivers/base/dd.c, drivers/base/platform.c,
//! drivers/pci/pci-driver.c, drivers/pci/hotplug/
//! Rust: rust/kernel/driver.rs, rust/kernel/platform.rs, rust/kernel/pci.rs

export { type BusNotifier, BusType, type MatchResult, type NotifierRegistration } from "./bus.js";
export { Driver, type DriverRegistration } from "./driver.js";
export {
  type DeferredDevice,
  deferredDevices,
  deferredProbeTrigger,
  waitForDeviceProbe,
} from "./internal/core.js";
export { type MemResource, type MmioBackend, MmioRegion, RegisterFile } from "./mmio.js";
export {
  definePciDriver,
  HotplugSlot,
  type PciBarSpec,
  PciBus,
  PciDevice,
  type PciDeviceId,
  type PciDeviceSpec,
  PciDriver,
  type PciDriverSpec,
  pciBus,
} from "./pci.js";
export {
  definePlatformDriver,
  type IommuRef,
  type IrqHandler,
  type IrqLine,
  type IrqReturn,
  type MemResourceSpec,
  type OfDeviceId,
  PlatformBus,
  PlatformDevice,
  type PlatformDeviceId,
  type PlatformDeviceSpec,
  PlatformDriver,
  type PlatformDriverSpec,
  platformBus,
} from "./platform.js";
