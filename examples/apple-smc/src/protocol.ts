//! C source: drivers/mfd/macsmc.c (SMC_* fields and commands), include/linux/mfd/macsmc.h
//! (smc_key, the key-info flags)
//!
//! The SMC's application protocol on RTKit endpoint 0x20 (sim-hardware.md §2.3–§2.6): the
//! numbers, and the packing of a command and a reply into one 64-bit message.

import { argumentError, checkInteger, checkString } from "@devref/raw-device";

/** The RTKit endpoint the SMC speaks on (SMC_ENDPOINT). */
export const SMC_ENDPOINT = 0x20;
/** Bytes of the shared buffer the driver may use (SMC_SHMEM_SIZE, the driver authors' guess). */
export const SMC_SHMEM_SIZE = 0x1000;
/** Largest read or write (SMC_MAX_SIZE). */
export const SMC_MAX_SIZE = 255;
/** How long a command, or INITIALIZE, waits for its answer (SMC_TIMEOUT_MS). */
export const SMC_TIMEOUT_MS = 500;

/** `MSG` READ_KEY: `SIZE` bytes of the key in `DATA`. */
export const SMC_MSG_READ_KEY = 0x10;
/** `MSG` WRITE_KEY: `SIZE` bytes from the shared buffer to the key (`WSIZE` 0). */
export const SMC_MSG_WRITE_KEY = 0x11;
/** `MSG` GET_KEY_BY_INDEX: the key at index `DATA` of the sorted table. */
export const SMC_MSG_GET_KEY_BY_INDEX = 0x12;
/** `MSG` GET_KEY_INFO: six bytes of key info into the shared buffer. */
export const SMC_MSG_GET_KEY_INFO = 0x13;
/** `MSG` INITIALIZE: answered with the shared buffer's address. */
export const SMC_MSG_INITIALIZE = 0x17;
/** `MSG` of a notification (SMC to AP only); replies never carry it as their result. */
export const SMC_MSG_NOTIFICATION = 0x18;
/** `MSG` RW_KEY: call a function key with `WSIZE` argument bytes, read `SIZE` back. */
export const SMC_MSG_RW_KEY = 0x20;

/** Key-info flag (byte 5): the key can be read. */
export const SMC_FLAG_READABLE = 0x80;
/** Key-info flag: the key can be written. */
export const SMC_FLAG_WRITABLE = 0x40;
/** Key-info flag: a function key, called with RW_KEY. */
export const SMC_FLAG_FUNCTION = 0x10;

/**
 * SMC result codes as Apple names them (from a QEMU model of an iOS SMC; neither Linux nor
 * m1n1 decodes them — sim-hardware.md §2.9 ⚠).
 */
export const SMC_RESULT_NAMES: Readonly<Record<number, string>> = {
  0: "kSMCSuccess",
  1: "kSMCError",
  128: "kSMCCommCollision",
  129: "kSMCSpuriousData",
  130: "kSMCBadCommand",
  131: "kSMCBadParameter",
  132: "kSMCKeyNotFound",
  133: "kSMCKeyNotReadable",
  134: "kSMCKeyNotWritable",
  135: "kSMCKeySizeMismatch",
  136: "kSMCFramingError",
  137: "kSMCBadArgumentError",
  183: "kSMCTimeoutError",
  184: "kSMCKeyIndexRangeError",
  192: "kSMCBadFuncParameter",
  196: "kSMCEventBuffWrongOrder",
  197: "kSMCEventBuffReadError",
  199: "kSMCDeviceAccessError",
  203: "kSMCUnsupportedFeature",
  204: "kSMCSMBAccessError",
};

/** The name of an SMC result code, or its hex value for one nobody named. */
export function smcResultName(result: number): string {
  return SMC_RESULT_NAMES[result] ?? `result 0x${result.toString(16).padStart(2, "0")}`;
}

const TWO32 = 0x1_0000_0000;

/**
 * Packs a key's four characters big-endian into a `u32` (SMC_KEY): `smcKey("NTAP")` is
 * 0x4E54_4150, as it travels in a command's `DATA`.
 *
 * **Errors:** `EINVAL` for anything but four printable ASCII characters.
 *
 * @example
 * ```ts
 * smcKey("#KEY").toString(16); // "234b4559"
 * ```
 */
export function smcKey(name: string): number {
  checkString("smcKey", "name", name);
  if (!/^[\x20-\x7e]{4}$/.test(name)) {
    throw argumentError("smcKey", "name", "four printable ASCII characters, e.g. 'TB0T'", name);
  }
  return (
    ((name.charCodeAt(0) << 24) |
      (name.charCodeAt(1) << 16) |
      (name.charCodeAt(2) << 8) |
      name.charCodeAt(3)) >>>
    0
  );
}

/**
 * The four characters of a packed key (or type code); bytes outside printable ASCII
 * become `\xNN`, so a key from a misbehaving firmware still prints.
 */
export function smcKeyName(key: number): string {
  let s = "";
  for (let shift = 24; shift >= 0; shift -= 8) {
    const c = (key >>> shift) & 0xff;
    s += c >= 0x20 && c <= 0x7e ? String.fromCharCode(c) : `\\x${c.toString(16).padStart(2, "0")}`;
  }
  return s;
}

/** A command as its fields (AP → SMC). */
export interface SmcCommand {
  /** `MSG`, bits 7:0. */
  readonly msg: number;
  /** `DATA`, bits 63:32: a key, a key index or another 32-bit argument. */
  readonly data: number;
  /** `SIZE`, bits 23:16. */
  readonly size: number;
  /** `WSIZE`, bits 31:24. */
  readonly wsize: number;
  /** `ID`, bits 15:12. */
  readonly id: number;
}

/**
 * Packs a command into msg0 (bits 11:8 stay zero).
 *
 * **Errors:** `EINVAL` for a field out of its range.
 *
 * @example
 * ```ts
 * encodeSmcCommand({ msg: 0x10, data: smcKey("#KEY"), size: 4, wsize: 0, id: 1 });
 * // 0x234b4559_00041010n
 * ```
 */
export function encodeSmcCommand(c: SmcCommand): bigint {
  const W = "encodeSmcCommand";
  const msg = checkInteger(W, "msg", c.msg, 0, 0xff);
  const data = checkInteger(W, "data", c.data, 0, 0xffff_ffff);
  const size = checkInteger(W, "size", c.size, 0, 0xff);
  const wsize = checkInteger(W, "wsize", c.wsize, 0, 0xff);
  const id = checkInteger(W, "id", c.id, 0, 0xf);
  const lo = ((wsize << 24) | (size << 16) | (id << 12) | msg) >>> 0;
  return (BigInt(data) << 32n) | BigInt(lo);
}

/** A message from the SMC on its endpoint, as its fields (SMC → AP). */
export interface SmcReply {
  /** `RESULT` (or `MSG` 0x18 for a notification), bits 7:0. */
  readonly result: number;
  /** `ID`, bits 15:12. */
  readonly id: number;
  /** `SIZE`, bits 23:16. */
  readonly size: number;
  /** `DATA`, bits 63:32: up to four value bytes (byte 0 in bits 39:32), a key, or an event. */
  readonly data: number;
}

/** Splits a message from the SMC into its fields (no check: every 64-bit value decodes). */
export function decodeSmcReply(msg0: bigint): SmcReply {
  const lo = Number(msg0 & 0xffff_ffffn);
  const data = Number((msg0 >> 32n) & 0xffff_ffffn);
  return { result: lo & 0xff, id: (lo >>> 12) & 0xf, size: (lo >>> 16) & 0xff, data };
}

/** Whether a message from the SMC is a notification (bits 7:0 = 0x18), not a reply. */
export function isSmcNotification(msg0: bigint): boolean {
  return (msg0 & 0xffn) === BigInt(SMC_MSG_NOTIFICATION);
}

/** msg0 as 16 hex digits, for log lines. */
export function hex64(msg0: bigint): string {
  return msg0.toString(16).padStart(16, "0");
}

/** A 64-bit INITIALIZE answer as a number, or -1 when it is no address a `number` holds. */
export function shmemAddressOf(msg0: bigint): number {
  const hi = Number(msg0 >> 32n);
  const lo = Number(msg0 & 0xffff_ffffn);
  const addr = hi * TWO32 + lo;
  return Number.isSafeInteger(addr) ? addr : -1;
}
