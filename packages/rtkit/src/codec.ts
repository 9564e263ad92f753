//! C source: drivers/soc/apple/rtkit.c (the FIELD_PREP/FIELD_GET of every message)
//!
//! Encoders and decoders for every RTKit message the kernel sends or handles, over msg0 as
//! a bigint. Decoders keep the bits no field names in `reserved`, and encoders put them
//! back, so `encodeX(decodeX(m)) === m` for every m of that type.

import { checkObject, checkOneOf } from "@devref/raw-device";
import * as C from "./constants.js";
import { type Decoded, Layout } from "./internal/layout.js";

const T52 = [59, 52] as const;
const T56 = [63, 56] as const;

const HELLO = new Layout({
  name: "HELLO",
  typeField: T52,
  types: [C.MGMT_HELLO],
  numbers: { minVer: { hi: 15, lo: 0 }, maxVer: { hi: 31, lo: 16 } },
  flags: {},
});
const HELLO_REPLY = new Layout({
  name: "HELLO_REPLY",
  typeField: T52,
  types: [C.MGMT_HELLO_REPLY],
  numbers: { minVer: { hi: 15, lo: 0 }, maxVer: { hi: 31, lo: 16 } },
  flags: {},
});
const STARTEP = new Layout({
  name: "STARTEP",
  typeField: T52,
  types: [C.MGMT_STARTEP],
  numbers: { ep: { hi: 39, lo: 32 }, flag: { hi: 1, lo: 0 } },
  flags: {},
});
const pwr = (name: string, type: number) =>
  new Layout({
    name,
    typeField: T52,
    types: [type],
    numbers: { state: { hi: 15, lo: 0 } },
    flags: {},
  });
const SET_IOP_PWR = pwr("SET_IOP_PWR_STATE", C.MGMT_SET_IOP_PWR_STATE);
const IOP_PWR_ACK = pwr("SET_IOP_PWR_STATE_ACK", C.MGMT_SET_IOP_PWR_STATE_ACK);
const SET_AP_PWR = pwr("SET_AP_PWR_STATE", C.MGMT_SET_AP_PWR_STATE);
const EPMAP = new Layout({
  name: "EPMAP",
  typeField: T52,
  types: [C.MGMT_EPMAP],
  numbers: { bitmap: { hi: 31, lo: 0 }, base: { hi: 34, lo: 32 } },
  flags: { last: 51 },
});
const EPMAP_REPLY = new Layout({
  name: "EPMAP_REPLY",
  typeField: T52,
  types: [C.MGMT_EPMAP_REPLY],
  numbers: { base: { hi: 34, lo: 32 } },
  flags: { last: 51, more: 0 },
});
const BUFFER = new Layout({
  name: "BUFFER_REQUEST",
  typeField: T52,
  types: [C.BUFFER_REQUEST],
  numbers: { pages: { hi: 51, lo: 44 }, iova: { hi: 43, lo: 0 } },
  flags: {},
});
const OSLOG_BUFFER = new Layout({
  name: "OSLOG_BUFFER_REQUEST",
  typeField: T56,
  types: [C.OSLOG_BUFFER_REQUEST],
  numbers: { size: { hi: 55, lo: 36 }, iova: { hi: 35, lo: 0, unit: 0x1000 } },
  flags: {},
});
const SYSLOG_INIT = new Layout({
  name: "SYSLOG_INIT",
  typeField: T52,
  types: [C.SYSLOG_INIT],
  numbers: { entries: { hi: 7, lo: 0 }, msgSize: { hi: 31, lo: 24 } },
  flags: {},
});
const SYSLOG_LOG = new Layout({
  name: "SYSLOG_LOG",
  typeField: T52,
  types: [C.SYSLOG_LOG],
  numbers: { index: { hi: 7, lo: 0 } },
  flags: {},
});
const IOREPORT_ECHO = new Layout({
  name: "IOREPORT_UNKNOWN1/UNKNOWN2",
  typeField: T52,
  types: [C.IOREPORT_UNKNOWN1, C.IOREPORT_UNKNOWN2],
  numbers: {},
  flags: {},
});

/** HELLO (IOP to AP): the protocol versions the firmware speaks. */
export type Hello = Decoded<"minVer" | "maxVer", never>;
/** HELLO_REPLY (AP to IOP): the chosen version, in both fields. */
export type HelloReply = Decoded<"minVer" | "maxVer", never>;
/** STARTEP (AP to IOP): `flag` is m1n1's 2-bit field (2 = start, which the kernel sends). */
export type StartEp = Decoded<"ep" | "flag", never>;
/** A power state message: SET_IOP_PWR_STATE, its ACK, SET_AP_PWR_STATE and its ACK. */
export type PowerState = Decoded<"state", never>;
/** EPMAP (IOP to AP): bit i of `bitmap` means endpoint 32 × base + i exists. */
export type Epmap = Decoded<"bitmap" | "base", "last">;
/** EPMAP_REPLY (AP to IOP): `last` echoes the request's LAST; otherwise `more` is set. */
export type EpmapReply = Decoded<"base", "last" | "more">;
/** A buffer request or its reply on EP 1, 2 or 4: `pages` of 4 KiB at `iova` (0: AP allocates). */
export type BufferRequest = Decoded<"pages" | "iova", never>;
/** An OSLog buffer request or reply: `size` in bytes, `iova` a 4 KiB-aligned address. */
export type OslogBufferRequest = Decoded<"size" | "iova", never>;
/** SYSLOG_INIT: ring entries and the text size of each (the kernel's 8-bit fields). */
export type SyslogInit = Decoded<"entries" | "msgSize", never>;
/** SYSLOG_LOG: the ring entry to print; the AP echoes the message as acknowledgement. */
export type SyslogLog = Decoded<"index", never>;
/** IOReport type 0x8 or 0xc, which the AP echoes unchanged; the payload is `reserved`. */
export type IoreportEcho = Decoded<never, never> & { readonly type: number };

/** The fields an encoder takes: a decoded message without `reserved`, or with it. */
export type Fields<T> = Omit<T, "reserved"> & { readonly reserved?: bigint };

/**
 * Encodes HELLO.
 *
 * **Invariants:** `decodeHello(encodeHello(f))` equals `f` with `reserved: 0n`.
 *
 * **Errors:** `EINVAL` naming a field that is not a whole number in its range.
 *
 * @example
 * ```ts
 * encodeHello({ minVer: 11, maxVer: 12 }); // 0x0010_0000_000c_000bn
 * ```
 */
export function encodeHello(fields: Fields<Hello>): bigint {
  return HELLO.encode("encodeHello", fields);
}
/**
 * Decodes HELLO. **Errors:** `EINVAL` if `msg0` is not a 64-bit bigint of type 0x1.
 *
 * @example
 * ```ts
 * decodeHello(0x0010_0000_000c_000bn); // { minVer: 11, maxVer: 12, reserved: 0n }
 * ```
 */
export function decodeHello(msg0: bigint): Hello {
  return HELLO.decode("decodeHello", msg0);
}
/** Encodes HELLO_REPLY. Errors as {@link encodeHello}. @example `encodeHelloReply({ minVer: 12, maxVer: 12 })` */
export function encodeHelloReply(fields: Fields<HelloReply>): bigint {
  return HELLO_REPLY.encode("encodeHelloReply", fields);
}
/** Decodes HELLO_REPLY. **Errors:** `EINVAL` unless type 0x2. */
export function decodeHelloReply(msg0: bigint): HelloReply {
  return HELLO_REPLY.decode("decodeHelloReply", msg0);
}
/** Encodes STARTEP. Errors as {@link encodeHello}. @example `encodeStartEp({ ep: 2, flag: 2 })` */
export function encodeStartEp(fields: Fields<StartEp>): bigint {
  return STARTEP.encode("encodeStartEp", fields);
}
/** Decodes STARTEP. **Errors:** `EINVAL` unless type 0x5. */
export function decodeStartEp(msg0: bigint): StartEp {
  return STARTEP.decode("decodeStartEp", msg0);
}
/** Encodes SET_IOP_PWR_STATE. @example `encodeSetIopPowerState({ state: PWR_STATE_ON })` */
export function encodeSetIopPowerState(fields: Fields<PowerState>): bigint {
  return SET_IOP_PWR.encode("encodeSetIopPowerState", fields);
}
/** Decodes SET_IOP_PWR_STATE. **Errors:** `EINVAL` unless type 0x6. */
export function decodeSetIopPowerState(msg0: bigint): PowerState {
  return SET_IOP_PWR.decode("decodeSetIopPowerState", msg0);
}
/** Encodes SET_IOP_PWR_STATE_ACK (the state the IOP is now in). */
export function encodeIopPowerStateAck(fields: Fields<PowerState>): bigint {
  return IOP_PWR_ACK.encode("encodeIopPowerStateAck", fields);
}
/** Decodes SET_IOP_PWR_STATE_ACK. **Errors:** `EINVAL` unless type 0x7. */
export function decodeIopPowerStateAck(msg0: bigint): PowerState {
  return IOP_PWR_ACK.decode("decodeIopPowerStateAck", msg0);
}
/** Encodes SET_AP_PWR_STATE, the request and its acknowledgement alike (type 0xb). */
export function encodeSetApPowerState(fields: Fields<PowerState>): bigint {
  return SET_AP_PWR.encode("encodeSetApPowerState", fields);
}
/** Decodes SET_AP_PWR_STATE or its acknowledgement. **Errors:** `EINVAL` unless type 0xb. */
export function decodeSetApPowerState(msg0: bigint): PowerState {
  return SET_AP_PWR.decode("decodeSetApPowerState", msg0);
}
/** Encodes EPMAP. @example `encodeEpmap({ base: 0, bitmap: 0x11f, last: true })` is 0x0088_0000_0000_011fn */
export function encodeEpmap(fields: Fields<Epmap>): bigint {
  return EPMAP.encode("encodeEpmap", fields);
}
/** Decodes EPMAP. **Errors:** `EINVAL` unless type 0x8. */
export function decodeEpmap(msg0: bigint): Epmap {
  return EPMAP.decode("decodeEpmap", msg0);
}
/** Encodes EPMAP_REPLY. @example `encodeEpmapReply({ base: 1, last: false, more: true })` */
export function encodeEpmapReply(fields: Fields<EpmapReply>): bigint {
  return EPMAP_REPLY.encode("encodeEpmapReply", fields);
}
/** Decodes EPMAP_REPLY. **Errors:** `EINVAL` unless type 0x8. */
export function decodeEpmapReply(msg0: bigint): EpmapReply {
  return EPMAP_REPLY.decode("decodeEpmapReply", msg0);
}
/**
 * Encodes a buffer request, or the AP's reply to one (same layout), on the crashlog,
 * syslog or IOReport endpoint. A crash notification on EP 1 is a message of this type too.
 *
 * **Errors:** `EINVAL` for `pages` outside [0, 255] or `iova` outside [0, 2^44).
 *
 * @example
 * ```ts
 * encodeBufferRequest({ pages: 2, iova: 0x8000_0000 }); // 0x0010_2000_8000_0000n
 * ```
 */
export function encodeBufferRequest(fields: Fields<BufferRequest>): bigint {
  return BUFFER.encode("encodeBufferRequest", fields);
}
/** Decodes a buffer request or reply. **Errors:** `EINVAL` unless type 0x1 (bits 59:52). */
export function decodeBufferRequest(msg0: bigint): BufferRequest {
  return BUFFER.decode("decodeBufferRequest", msg0);
}
/**
 * Encodes an OSLog buffer request or reply: type in bits 63:56, `size` in bytes (55:36),
 * `iova` a 4 KiB-aligned address stored as address >> 12 (35:0).
 *
 * **Errors:** `EINVAL` for a size above 2^20 - 1, or an unaligned or too large address.
 */
export function encodeOslogBufferRequest(fields: Fields<OslogBufferRequest>): bigint {
  return OSLOG_BUFFER.encode("encodeOslogBufferRequest", fields);
}
/** Decodes an OSLog buffer request or reply. **Errors:** `EINVAL` unless type 0x1 (bits 63:56). */
export function decodeOslogBufferRequest(msg0: bigint): OslogBufferRequest {
  return OSLOG_BUFFER.decode("decodeOslogBufferRequest", msg0);
}
/** Encodes SYSLOG_INIT. **Errors:** `EINVAL` for values above 255 (the kernel reads 8 bits). */
export function encodeSyslogInit(fields: Fields<SyslogInit>): bigint {
  return SYSLOG_INIT.encode("encodeSyslogInit", fields);
}
/** Decodes SYSLOG_INIT. **Errors:** `EINVAL` unless type 0x8. */
export function decodeSyslogInit(msg0: bigint): SyslogInit {
  return SYSLOG_INIT.decode("decodeSyslogInit", msg0);
}
/** Encodes SYSLOG_LOG for ring entry `index`. */
export function encodeSyslogLog(fields: Fields<SyslogLog>): bigint {
  return SYSLOG_LOG.encode("encodeSyslogLog", fields);
}
/** Decodes SYSLOG_LOG. **Errors:** `EINVAL` unless type 0x5. */
export function decodeSyslogLog(msg0: bigint): SyslogLog {
  return SYSLOG_LOG.decode("decodeSyslogLog", msg0);
}
/**
 * Encodes an IOReport message of type 0x8 or 0xc (m1n1: "Report" and "Start"), which the
 * AP echoes back unchanged; the payload goes in `reserved`.
 *
 * **Errors:** `EINVAL` for another type or reserved bits in the type field.
 */
export function encodeIoreportEcho(fields: Fields<IoreportEcho>): bigint {
  checkObject("encodeIoreportEcho", "fields", fields);
  const { type, ...rest } = fields;
  checkOneOf("encodeIoreportEcho", "fields.type", type, [C.IOREPORT_UNKNOWN1, C.IOREPORT_UNKNOWN2]);
  return IOREPORT_ECHO.encode("encodeIoreportEcho", rest, type);
}
/** Decodes an IOReport echo message. **Errors:** `EINVAL` unless type 0x8 or 0xc. */
export function decodeIoreportEcho(msg0: bigint): IoreportEcho {
  const d = IOREPORT_ECHO.decode("decodeIoreportEcho", msg0);
  return { type: IOREPORT_ECHO.typeOf(msg0), reserved: d.reserved };
}
