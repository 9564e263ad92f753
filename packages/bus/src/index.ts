//! @devref/bus: bus types, drivers, matching, probe/remove, deferred probe, notifiers and
//! surprise removal; a platform bus and a PCI-like bus with hot-plug slots and MSI-X.
//!
//! C source: drivers/base/bus.c, drivers/base/dd.c, drivers/base/platform.c,
//! drivers/pci/pci-driver.c, drivers/pci/msi/, drivers/pci/hotplug/
//! Rust: rust/kernel/driver.rs, rust/kernel/platform.rs, rust/kernel/pci.rs

export {
  type BusNotifier,
  type BusOptions,
  BusType,
  type MatchResult,
  type NotifierRegistration,
} from "./bus.js";
export { Driver, type DriverRegistration } from "./driver.js";
export {
  definePciDriver,
  HotplugSlot,
  MSI_IRQ_DOMAIN,
  type MsiTarget,
  msiDomainOf,
  type PciBarSpec,
  PciBus,
  type PciConfigSpace,
  PciDevice,
  type PciDeviceId,
  type PciDeviceSpec,
  PciDriver,
  type PciDriverSpec,
} from "./pci.js";
export {
  DEFAULT_IRQ_DOMAIN,
  defaultIrqDomain,
  definePlatformDriver,
  type IommuRefSpec,
  type MemResourceSpec,
  type OfDeviceId,
  PlatformBus,
  PlatformDevice,
  type PlatformDeviceId,
  type PlatformDeviceSpec,
  PlatformDriver,
  type PlatformDriverSpec,
} from "./platform.js";
