//! C source: drivers/soc/apple/mailbox.c (register offsets and bits), drivers/soc/apple/rtkit.c
//! (message fields), drivers/mfd/macsmc.c (SMC commands)
//!
//! The numbers the ASC, RTKit-firmware and SMC models are built from, written down from
//! the specs (rtkit.md, sim-hardware.md §2) on the device side. Nothing here is shared
//! with the AP-side client: a wrong bit there must meet a right one here.

/** Offset of the mailbox block inside the ASC region (m1n1 `hw/asc.py`). */
export const ASC_MBOX_OFFSET = 0x8000;
/** Size of each of the two register windows (the CPU-control block and the mailbox). */
export const ASC_WINDOW_SIZE = 0x4000;
/** ASC CPU control register (in the CPU-control window); bit 4 is RUN. */
export const ASC_CPU_CONTROL = 0x44;
/** ASC CPU status register (not decoded by any driver). */
export const ASC_CPU_STATUS = 0x48;
/** `CPU_CONTROL.RUN`. */
export const ASC_CPU_RUN: number = 1 << 4;

/** Mailbox register offsets (inside the mailbox window), ASC v4 layout. */
export const MBOX_A2I_CONTROL = 0x110;
export const MBOX_I2A_CONTROL = 0x114;
/** t8015 moves only the two control registers. */
export const MBOX_T8015_A2I_CONTROL = 0x108;
export const MBOX_T8015_I2A_CONTROL = 0x10c;
export const MBOX_A2I_SEND0 = 0x800;
export const MBOX_A2I_SEND1 = 0x808;
export const MBOX_A2I_RECV0 = 0x810;
export const MBOX_A2I_RECV1 = 0x818;
export const MBOX_I2A_SEND0 = 0x820;
export const MBOX_I2A_SEND1 = 0x828;
export const MBOX_I2A_RECV0 = 0x830;
export const MBOX_I2A_RECV1 = 0x838;
/** Control register bits. */
export const MBOX_CONTROL_ENABLE: number = 1 << 1;
export const MBOX_CONTROL_FULL: number = 1 << 16;
export const MBOX_CONTROL_EMPTY: number = 1 << 17;

/** RTKit endpoints. */
export const EP_MGMT = 0x00;
export const EP_CRASHLOG = 0x01;
export const EP_SYSLOG = 0x02;
export const EP_DEBUG = 0x03;
export const EP_IOREPORT = 0x04;
export const EP_OSLOG = 0x08;
export const EP_APP_START = 0x20;

/** Management types (bits 59:52). */
export const MGMT_HELLO = 0x1;
export const MGMT_HELLO_REPLY = 0x2;
export const MGMT_STARTEP = 0x5;
export const MGMT_SET_IOP_PWR = 0x6;
export const MGMT_SET_IOP_PWR_ACK = 0x7;
export const MGMT_EPMAP = 0x8;
export const MGMT_SET_AP_PWR = 0xb;

/** Power states (bits 15:0). */
export const PWR_OFF = 0x000;
export const PWR_SLEEP = 0x001;
export const PWR_QUIESCED = 0x010;
export const PWR_ON = 0x020;
export const PWR_IDLE = 0x201;
export const PWR_INIT = 0x220;

/** System-endpoint message types (bits 59:52; OSLog uses 63:56). */
export const BUFFER_REQUEST = 0x1;
export const SYSLOG_LOG = 0x5;
export const SYSLOG_INIT = 0x8;
export const IOREPORT_UNKNOWN1 = 0x8;
export const IOREPORT_UNKNOWN2 = 0xc;
export const OSLOG_BUFFER_REQUEST = 0x1;

/** Apple SMC commands (`MSG`, bits 7:0). */
export const SMC_READ_KEY = 0x10;
export const SMC_WRITE_KEY = 0x11;
export const SMC_GET_KEY_BY_INDEX = 0x12;
export const SMC_GET_KEY_INFO = 0x13;
export const SMC_INITIALIZE = 0x17;
export const SMC_NOTIFICATION = 0x18;
export const SMC_RW_KEY = 0x20;

/**
 * SMC result codes (Apple's names, as the QEMU iOS model gives them; sim-hardware.md §2.9).
 */
export const SMC_RESULT = {
  SUCCESS: 0x00,
  ERROR: 0x01,
  COMM_COLLISION: 0x80,
  SPURIOUS_DATA: 0x81,
  BAD_COMMAND: 0x82,
  BAD_PARAMETER: 0x83,
  KEY_NOT_FOUND: 0x84,
  KEY_NOT_READABLE: 0x85,
  KEY_NOT_WRITABLE: 0x86,
  KEY_SIZE_MISMATCH: 0x87,
  FRAMING_ERROR: 0x88,
  BAD_ARGUMENT: 0x89,
  TIMEOUT: 0xb7,
  KEY_INDEX_RANGE: 0xb8,
  BAD_FUNC_PARAMETER: 0xc0,
} as const;

/** SMC key flags (byte 5 of the key info). */
export const SMC_FLAG_READABLE = 0x80;
export const SMC_FLAG_WRITABLE = 0x40;
export const SMC_FLAG_FUNCTION = 0x10;
