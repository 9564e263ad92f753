//! C header: include/uapi/linux/virtio_pci.h, virtio_config.h, virtio_ring.h, virtio_blk.h
//!
//! Constants of the modern virtio-pci transport, the split virtqueue and virtio-blk
//! (specs/sim-hardware.md §4, VIRTIO 1.2).

/** PCI identity of a modern virtio device (§4.1). */
export const VIRTIO_PCI_VENDOR_ID = 0x1af4;
/** Device ID of a modern device is 0x1040 + virtio device ID. */
export const VIRTIO_PCI_DEVICE_ID_BASE = 0x1040;
/** virtio device ID of a block device. */
export const VIRTIO_ID_BLOCK = 2;

/** `cfg_type` of the vendor capabilities (§4.2). */
export const VIRTIO_PCI_CAP = {
  COMMON_CFG: 1,
  NOTIFY_CFG: 2,
  ISR_CFG: 3,
  DEVICE_CFG: 4,
  PCI_CFG: 5,
} as const;

/** Common configuration structure offsets (§4.3). */
export const VIRTIO_PCI_COMMON = {
  DFSELECT: 0,
  DF: 4,
  GFSELECT: 8,
  GF: 12,
  MSIX: 16,
  NUMQ: 18,
  STATUS: 20,
  CFGGENERATION: 21,
  Q_SELECT: 22,
  Q_SIZE: 24,
  Q_MSIX: 26,
  Q_ENABLE: 28,
  Q_NOFF: 30,
  Q_DESCLO: 32,
  Q_DESCHI: 36,
  Q_AVAILLO: 40,
  Q_AVAILHI: 44,
  Q_USEDLO: 48,
  Q_USEDHI: 52,
  Q_NDATA: 56,
  Q_RESET: 58,
  /** Size of the structure as the model exposes it. */
  SIZE: 64,
} as const;

/** `VIRTIO_MSI_NO_VECTOR`. */
export const VIRTIO_MSI_NO_VECTOR = 0xffff;

/** Device status bits (§4.4). */
export const VIRTIO_STATUS = {
  ACKNOWLEDGE: 1,
  DRIVER: 2,
  DRIVER_OK: 4,
  FEATURES_OK: 8,
  DEVICE_NEEDS_RESET: 64,
  FAILED: 128,
} as const;

/** Device-independent feature bits (§4.5). */
export const VIRTIO_F = {
  INDIRECT_DESC: 28,
  EVENT_IDX: 29,
  VERSION_1: 32,
  ACCESS_PLATFORM: 33,
  RING_PACKED: 34,
  IN_ORDER: 35,
  ORDER_PLATFORM: 36,
  SR_IOV: 37,
  NOTIFICATION_DATA: 38,
  NOTIF_CONFIG_DATA: 39,
  RING_RESET: 40,
} as const;

/** virtio-blk feature bits (§4.5). */
export const VIRTIO_BLK_F = {
  SIZE_MAX: 1,
  SEG_MAX: 2,
  GEOMETRY: 4,
  RO: 5,
  BLK_SIZE: 6,
  FLUSH: 9,
  TOPOLOGY: 10,
  CONFIG_WCE: 11,
  MQ: 12,
  DISCARD: 13,
  WRITE_ZEROES: 14,
} as const;

/** Split-ring descriptor flags and ring flags (§4.6). */
export const VIRTQ = {
  DESC_F_NEXT: 1,
  DESC_F_WRITE: 2,
  DESC_F_INDIRECT: 4,
  AVAIL_F_NO_INTERRUPT: 1,
  USED_F_NO_NOTIFY: 1,
  DESC_SIZE: 16,
  MAX_SIZE: 32768,
} as const;

/** virtio-blk request types and status values (§4.9). */
export const VIRTIO_BLK_T = {
  IN: 0,
  OUT: 1,
  FLUSH: 4,
  FLUSH_OUT: 5,
  GET_ID: 8,
  GET_LIFETIME: 10,
  DISCARD: 11,
  WRITE_ZEROES: 13,
  SECURE_ERASE: 14,
} as const;

/** Status byte a virtio-blk request completes with. */
export const VIRTIO_BLK_S = {
  OK: 0,
  IOERR: 1,
  UNSUPP: 2,
} as const;

/** Bytes of the virtio-blk request header; sectors are always 512 bytes. */
export const VIRTIO_BLK_HEADER_SIZE = 16;
/** Bytes of a virtio-blk sector, whatever the disk's block size. */
export const VIRTIO_BLK_SECTOR_SIZE = 512;
/** Length of the `GET_ID` string. */
export const VIRTIO_BLK_ID_BYTES = 20;

/** virtio-blk configuration offsets (§4.8). */
export const VIRTIO_BLK_CFG = {
  CAPACITY: 0,
  SIZE_MAX: 8,
  SEG_MAX: 12,
  GEOMETRY: 16,
  BLK_SIZE: 20,
  TOPOLOGY: 24,
  WRITEBACK: 32,
  NUM_QUEUES: 34,
  /** Bytes the model exposes. */
  SIZE: 64,
} as const;

/** The model's BAR layout (QEMU's: MSI-X in BAR1, virtio structures in 64-bit BAR4). */
export const VIRTIO_PCI_LAYOUT = {
  MSIX_BAR: 1,
  MSIX_BAR_SIZE: 0x1000,
  MSIX_TABLE: 0x000,
  MSIX_PBA: 0x800,
  BAR: 4,
  BAR_SIZE: 0x4000,
  COMMON: 0x0000,
  ISR: 0x1000,
  DEVICE: 0x2000,
  NOTIFY: 0x3000,
  REGION_SIZE: 0x1000,
  NOTIFY_MULTIPLIER: 4,
} as const;
