//! @devref/example-virtio-blk: a virtio-blk driver on the modern virtio-pci transport,
//! written only against the public devref packages, with a scenario for the simulator.
//!
//! C source: drivers/block/virtio_blk.c, drivers/virtio/virtio_pci_modern.c,
//! drivers/virtio/virtio_pci_common.c, drivers/virtio/virtio_ring.c

export { auditLeaks } from "./audit.js";
export {
  VirtioBlkDisk,
  type VirtioBlkIrqMode,
  type VirtioBlkState,
  type VirtioBlkStats,
} from "./disk.js";
export { VirtioBlkDriver, type VirtioBlkDriverOptions } from "./driver.js";
export { DRIVER_FEATURES, type DriverTimers } from "./internal/setup.js";
export {
  createVirtioBlkScenario,
  VIRTIO_BLK_FUNCTION,
  type VirtioBlkScenarioOptions,
  virtioBlkScenario,
} from "./scenario.js";
