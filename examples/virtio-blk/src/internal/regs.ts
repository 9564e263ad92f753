//! C header: include/uapi/linux/virtio_pci.h, virtio_config.h, virtio_ring.h, virtio_blk.h
//!
//! The numbers this driver programs: PCI capability ids, the modern virtio-pci structures,
//! status bits, feature bits, the split ring layout and the virtio-blk request format
//! (VIRTIO 1.2 §2.1, §2.7, §4.1, §5.2, §6).

/** PCI identity of a virtio device: vendor 0x1af4, modern device ids 0x1040 + type (§4.1.2). */
export const VIRTIO_PCI_VENDOR = 0x1af4;
/** Device id of a modern virtio-blk function (0x1040 + device type 2). */
export const VIRTIO_PCI_DEVICE_BLK = 0x1042;

/** PCI configuration space (PCI Local Bus 3.0 §6.1, §6.7). */
export const PCI_CFG = {
  VENDOR_ID: 0x00,
  STATUS: 0x06,
  STATUS_CAP_LIST: 0x10,
  CAPABILITY_LIST: 0x34,
  CAP_ID_VNDR: 0x09,
  /** Linux stops walking after this many capabilities, to survive a loop. */
  CAP_WALK_LIMIT: 48,
} as const;

/** `cfg_type` of a virtio vendor capability (§4.1.4). */
export const VIRTIO_PCI_CAP = {
  COMMON_CFG: 1,
  NOTIFY_CFG: 2,
  ISR_CFG: 3,
  DEVICE_CFG: 4,
  PCI_CFG: 5,
} as const;

/** Offsets inside a virtio vendor capability (`struct virtio_pci_cap`). */
export const VIRTIO_CAP = {
  CFG_TYPE: 3,
  BAR: 4,
  OFFSET: 8,
  LENGTH: 12,
  NOTIFY_OFF_MULTIPLIER: 16,
} as const;

/** The common configuration structure (`struct virtio_pci_common_cfg`, §4.1.4.3). */
export const COMMON = {
  DEVICE_FEATURE_SELECT: 0,
  DEVICE_FEATURE: 4,
  DRIVER_FEATURE_SELECT: 8,
  DRIVER_FEATURE: 12,
  CONFIG_MSIX_VECTOR: 16,
  NUM_QUEUES: 18,
  DEVICE_STATUS: 20,
  CONFIG_GENERATION: 21,
  QUEUE_SELECT: 22,
  QUEUE_SIZE: 24,
  QUEUE_MSIX_VECTOR: 26,
  QUEUE_ENABLE: 28,
  QUEUE_NOTIFY_OFF: 30,
  QUEUE_DESC: 32,
  QUEUE_DRIVER: 40,
  QUEUE_DEVICE: 48,
  /** The length Linux requires of the structure (without `queue_reset`). */
  MIN_LENGTH: 56,
} as const;

/** `VIRTIO_MSI_NO_VECTOR`: no MSI-X vector (or the device could not map it). */
export const VIRTIO_MSI_NO_VECTOR = 0xffff;

/** Device status bits (§2.1). */
export const STATUS = {
  ACKNOWLEDGE: 1,
  DRIVER: 2,
  DRIVER_OK: 4,
  FEATURES_OK: 8,
  DEVICE_NEEDS_RESET: 64,
  FAILED: 128,
} as const;

/** ISR status bits (§4.1.4.5). */
export const ISR = {
  QUEUE: 1,
  CONFIG: 2,
} as const;

/** Feature bit numbers (§6 and §5.2.3). */
export const FEATURE = {
  BLK_SIZE_MAX: 1,
  BLK_SEG_MAX: 2,
  BLK_GEOMETRY: 4,
  BLK_RO: 5,
  BLK_BLK_SIZE: 6,
  BLK_FLUSH: 9,
  BLK_CONFIG_WCE: 11,
  BLK_MQ: 12,
  INDIRECT_DESC: 28,
  EVENT_IDX: 29,
  VERSION_1: 32,
  ACCESS_PLATFORM: 33,
} as const;

/** Split virtqueue layout (§2.7). */
export const VRING = {
  DESC_SIZE: 16,
  DESC_F_NEXT: 1,
  DESC_F_WRITE: 2,
  USED_F_NO_NOTIFY: 1,
  /** Bytes of `flags` + `idx` at the start of both rings. */
  RING_HEADER: 4,
  USED_ELEM_SIZE: 8,
  MAX_SIZE: 32768,
} as const;

/** virtio-blk device configuration offsets (`struct virtio_blk_config`, §5.2.4). */
export const BLK_CFG = {
  CAPACITY: 0,
  SIZE_MAX: 8,
  SEG_MAX: 12,
  BLK_SIZE: 20,
  WRITEBACK: 32,
} as const;

/** virtio-blk request types (§5.2.6). */
export const BLK_T = {
  IN: 0,
  OUT: 1,
  FLUSH: 4,
  GET_ID: 8,
} as const;

/** virtio-blk request status (§5.2.6). */
export const BLK_S = {
  OK: 0,
  IOERR: 1,
  UNSUPP: 2,
} as const;

/** The protocol's sector: always 512 bytes, whatever the logical block size. */
export const SECTOR_SIZE = 512;
/** Bytes of the request header (`struct virtio_blk_outhdr`). */
export const BLK_HEADER_SIZE = 16;
/** Bytes of the `GET_ID` string. */
export const BLK_ID_BYTES = 20;
