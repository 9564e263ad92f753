//! C header: include/linux/soc/apple/rtkit.h; C source: drivers/soc/apple/rtkit.c (the enums
//! and field masks at its top), drivers/soc/apple/rtkit-internal.h

/** The management endpoint: always running, never started with STARTEP. */
export const EP_MGMT = 0x00;
/** The crashlog endpoint: a buffer request, then crash notifications. */
export const EP_CRASHLOG = 0x01;
/** The syslog endpoint: a buffer request, INIT, and log entries that are acknowledged. */
export const EP_SYSLOG = 0x02;
/** The debug (m1n1: kdebug) endpoint: started at boot, no handler in the kernel. */
export const EP_DEBUG = 0x03;
/** The IOReport endpoint: a buffer request and two message types that must be echoed. */
export const EP_IOREPORT = 0x04;
/** The OSLog endpoint: a buffer request in its own layout. */
export const EP_OSLOG = 0x08;
/** The first application endpoint (APPLE_RTKIT_APP_ENDPOINT_START). */
export const APP_ENDPOINT_START = 0x20;
/** Number of endpoint numbers (APPLE_RTKIT_MAX_ENDPOINTS): an endpoint is 8 bits. */
export const MAX_ENDPOINTS = 0x100;

/** Management type (bits 59:52) of HELLO, IOP to AP: the versions the firmware speaks. */
export const MGMT_HELLO = 0x1;
/** Management type of HELLO_REPLY, AP to IOP: the chosen version. */
export const MGMT_HELLO_REPLY = 0x2;
/** m1n1's name for type 3; the kernel has no handler for it. */
export const MGMT_PING = 0x3;
/** m1n1's name for type 4; the kernel has no handler for it. */
export const MGMT_PONG = 0x4;
/** Management type of STARTEP, AP to IOP. */
export const MGMT_STARTEP = 0x5;
/** Management type of SET_IOP_PWR_STATE, AP to IOP. */
export const MGMT_SET_IOP_PWR_STATE = 0x6;
/** Management type of SET_IOP_PWR_STATE_ACK, IOP to AP: the state the IOP is now in. */
export const MGMT_SET_IOP_PWR_STATE_ACK = 0x7;
/** EPMAP (IOP to AP) and EPMAP_REPLY (AP to IOP) share the type. */
export const MGMT_EPMAP = 0x8;
/** Management type of EPMAP_REPLY (the same as EPMAP's). */
export const MGMT_EPMAP_REPLY = 0x8;
/** The AP power state request (AP to IOP) and its acknowledgement (IOP to AP) share the type. */
export const MGMT_SET_AP_PWR_STATE = 0xb;
/** Management type of the AP power state acknowledgement (the same as the request's). */
export const MGMT_SET_AP_PWR_STATE_ACK = 0xb;

/** The STARTEP flag the kernel always sends (bit 1: "start" in m1n1's 2-bit field). */
export const STARTEP_FLAG_START = 0x2;
/** m1n1's "stop" value of the STARTEP flag field; the kernel never sends it. */
export const STARTEP_FLAG_STOP = 0x1;

/** Power state (bits 15:0 of the power messages): off; a coprocessor put here may not restart. */
export const PWR_STATE_OFF = 0x000;
/** Power state: sleeping, can be woken (the IOP target of shutdown). */
export const PWR_STATE_SLEEP = 0x001;
/** Power state: running but not communicating (quiesce). */
export const PWR_STATE_QUIESCED = 0x010;
/** Power state: the normal running state. */
export const PWR_STATE_ON = 0x020;
/** Power state: sleeping with its state kept (idle). */
export const PWR_STATE_IDLE = 0x201;
/** Power state: starting up, what wake asks the IOP for; its low byte reads as ON. */
export const PWR_STATE_INIT = 0x220;

/** The buffer request type on the crashlog, syslog and IOReport endpoints (bits 59:52). */
export const BUFFER_REQUEST = 0x1;
/** On the crashlog endpoint, every type-1 message after the buffer request is a crash. */
export const CRASHLOG_CRASH = 0x1;
/** Syslog type of a log entry announcement, echoed back as its acknowledgement. */
export const SYSLOG_LOG = 0x5;
/** Syslog type of INIT: ring entries and message size. */
export const SYSLOG_INIT = 0x8;
/** An IOReport type that must be echoed unchanged (kernel: unnamed; m1n1: "Report"). */
export const IOREPORT_UNKNOWN1 = 0x8;
/** An IOReport type that must be echoed unchanged (kernel: unnamed; m1n1: "Start"). */
export const IOREPORT_UNKNOWN2 = 0xc;
/** The OSLog buffer request (type in bits 63:56). */
export const OSLOG_BUFFER_REQUEST = 0x1;

/** The oldest protocol version the client speaks. */
export const MIN_SUPPORTED_VERSION = 11;
/** The newest protocol version the client speaks. */
export const MAX_SUPPORTED_VERSION = 12;

/** How long every completion wait lasts before it fails with ETIME, in milliseconds. */
export const COMPLETION_TIMEOUT_MS = 1000;

/** The kernel's names of the power states, for messages and traces. */
export const POWER_STATE_NAMES: Readonly<Record<number, string>> = {
  [PWR_STATE_OFF]: "OFF",
  [PWR_STATE_SLEEP]: "SLEEP",
  [PWR_STATE_QUIESCED]: "QUIESCED",
  [PWR_STATE_ON]: "ON",
  [PWR_STATE_IDLE]: "IDLE",
  [PWR_STATE_INIT]: "INIT",
};
