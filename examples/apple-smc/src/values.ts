//! C header: include/linux/mfd/macsmc.h (struct apple_smc_key_info, the type codes, the
//! typed read/write helpers such as apple_smc_read_u32 and apple_smc_write_flag)
//!
//! What an SMC key is (its info: size, type code, flags) and how its bytes become a
//! JavaScript value and back. Numbers are little-endian on Apple Silicon; `#KEY` and `B0RM`
//! are the big-endian exceptions the kernel's callers know about (sim-hardware.md §2.6).

import { argumentError, checkInteger, DevrefError } from "@devref/raw-device";
import { SMC_FLAG_FUNCTION, SMC_FLAG_READABLE, SMC_FLAG_WRITABLE } from "./protocol.js";

/** A key's metadata, as GET_KEY_INFO reports it. */
export interface SmcKeyInfo {
  /** The key's four characters. */
  readonly key: string;
  /** Value size in bytes. */
  readonly size: number;
  /** Type code, four characters with spaces kept (`flt `, `ui32`, `ch8*`, …). */
  readonly type: string;
  /** The flags byte (0x80 readable, 0x40 writable, 0x10 function). */
  readonly flags: number;
  readonly readable: boolean;
  readonly writable: boolean;
  /** A function key, called with RW_KEY (the GPIO keys). */
  readonly isFunction: boolean;
}

/** Builds an {@link SmcKeyInfo} from the six bytes GET_KEY_INFO leaves in the shared buffer. */
export function keyInfoFromBytes(key: string, b: Uint8Array): SmcKeyInfo {
  const type = String.fromCharCode(b[1] ?? 0, b[2] ?? 0, b[3] ?? 0, b[4] ?? 0);
  const flags = b[5] ?? 0;
  return {
    key,
    size: b[0] ?? 0,
    type,
    flags,
    readable: (flags & SMC_FLAG_READABLE) !== 0,
    writable: (flags & SMC_FLAG_WRITABLE) !== 0,
    isFunction: (flags & SMC_FLAG_FUNCTION) !== 0,
  };
}

/** Any value a key can hold, decoded by its type code. */
export type SmcValue = number | bigint | boolean | string | Uint8Array;

/**
 * The keys the kernel's SMC drivers read, with the JavaScript type of their value
 * (sim-hardware.md §2.7). `readKey` and `writeKey` are typed by this table; other keys read
 * as {@link SmcValue}.
 */
export interface SmcKnownKeys {
  "#KEY": number;
  NTAP: boolean;
  MBSE: Uint8Array;
  CLKM: Uint8Array;
  MSLD: number;
  bHLD: number;
  TB0T: number;
  TCHP: number;
  TW0P: number;
  PSTR: number;
  PHPC: number;
  SBAV: number;
  VD0R: number;
  ID0R: number;
  F0Ac: number;
  F0Mn: number;
  F0Mx: number;
  F0Tg: number;
  F0Md: number;
  B0AV: number;
  B0AC: number;
  B0AP: number;
  BUIC: number;
  BSFC: boolean;
  CHCE: boolean;
  CHCC: boolean;
  BBAD: boolean;
  B0AT: number;
  B0CT: number;
  B0TE: number;
  B0TF: number;
  B0FC: number;
  B0DC: number;
  B0RM: number;
  BNCB: number;
  BCF0: number;
  ACSt: number;
  CHIS: number;
  CHNC: bigint;
  BMDN: string;
  BMSN: string;
  BMDT: string;
}

/** The value type of key `K`: its entry in {@link SmcKnownKeys}, or any {@link SmcValue}. */
export type SmcValueOf<K extends string> = K extends keyof SmcKnownKeys
  ? SmcKnownKeys[K]
  : SmcValue;

type Kind = "number" | "bigint" | "boolean" | "string" | "bytes";

/** The JavaScript kind of each known key's value, checked against what the SMC reports. */
const KNOWN_KINDS: Readonly<Record<keyof SmcKnownKeys, Kind>> = {
  "#KEY": "number",
  NTAP: "boolean",
  MBSE: "bytes",
  CLKM: "bytes",
  MSLD: "number",
  bHLD: "number",
  TB0T: "number",
  TCHP: "number",
  TW0P: "number",
  PSTR: "number",
  PHPC: "number",
  SBAV: "number",
  VD0R: "number",
  ID0R: "number",
  F0Ac: "number",
  F0Mn: "number",
  F0Mx: "number",
  F0Tg: "number",
  F0Md: "number",
  B0AV: "number",
  B0AC: "number",
  B0AP: "number",
  BUIC: "number",
  BSFC: "boolean",
  CHCE: "boolean",
  CHCC: "boolean",
  BBAD: "boolean",
  B0AT: "number",
  B0CT: "number",
  B0TE: "number",
  B0TF: "number",
  B0FC: "number",
  B0DC: "number",
  B0RM: "number",
  BNCB: "number",
  BCF0: "number",
  ACSt: "number",
  CHIS: "number",
  CHNC: "bigint",
  BMDN: "string",
  BMSN: "string",
  BMDT: "string",
};

/** Whether `key`'s integer value is big-endian (the kernel's callers byte-swap these two). */
function isBigEndian(key: string): boolean {
  return key === "#KEY" || key === "B0RM";
}

function kindOf(v: SmcValue): Kind {
  if (v instanceof Uint8Array) return "bytes";
  const t = typeof v;
  // SAFETY: SmcValue's primitive members are exactly these four typeof names.
  return t as "number" | "bigint" | "boolean" | "string";
}

/** The kind a known key must have, or null for any other key. */
function expectedKind(key: string): Kind | null {
  if (!Object.hasOwn(KNOWN_KINDS, key)) return null;
  // SAFETY: hasOwn just said the table has this key.
  return KNOWN_KINDS[key as keyof SmcKnownKeys];
}

/** Integer types: width in bytes and signedness. */
const INTEGER_TYPES: Readonly<Record<string, readonly [number, boolean]>> = {
  "ui8 ": [1, false],
  ui16: [2, false],
  ui32: [4, false],
  ui64: [8, false],
  "si8 ": [1, true],
  si16: [2, true],
  si32: [4, true],
  si64: [8, true],
};

function isAscii(s: string): boolean {
  for (let i = 0; i < s.length; i++) if (s.charCodeAt(i) > 0x7f) return false;
  return true;
}

function readUint(b: Uint8Array, n: number, bigEndian: boolean): number {
  let v = 0;
  for (let i = 0; i < n; i++) v = v * 256 + (b[bigEndian ? i : n - 1 - i] ?? 0);
  return v;
}

function readBig(b: Uint8Array): bigint {
  let v = 0n;
  for (let i = 7; i >= 0; i--) v = (v << 8n) | BigInt(b[i] ?? 0);
  return v;
}

function wrongSize(info: SmcKeyInfo, want: number): DevrefError {
  return new DevrefError(
    "EIO",
    `SMC key '${info.key}' has type '${info.type}' but ${info.size} bytes (a '${info.type}' has ${want}); read it raw with readKeyRaw()`,
  );
}

/**
 * Decodes `bytes` (the key's `info.size` bytes) by the key's type code: integers (64-bit
 * ones as bigint), `flt ` and `ioft` as numbers, `flag` as a boolean, `ch8*` as a string up
 * to its first NUL, anything else (`hex_`, unknown codes) as a copy of the bytes.
 *
 * **Errors:** `EIO` when the size does not fit the type, or a key of {@link SmcKnownKeys}
 * decodes to another kind than the table says (the firmware describes it differently).
 */
export function decodeSmcValue(info: SmcKeyInfo, bytes: Uint8Array): SmcValue {
  const v = decodeByType(info, bytes);
  const want = expectedKind(info.key);
  if (want !== null && kindOf(v) !== want) {
    throw new DevrefError(
      "EIO",
      `SMC key '${info.key}' has type '${info.type}', which reads as a ${kindOf(v)}; the driver expects a ${want} (read it raw with readKeyRaw())`,
    );
  }
  return v;
}

function decodeByType(info: SmcKeyInfo, b: Uint8Array): SmcValue {
  const int = INTEGER_TYPES[info.type];
  if (int !== undefined) {
    const [width, signed] = int;
    if (info.size !== width) throw wrongSize(info, width);
    if (width === 8) {
      const u = readBig(b);
      return signed ? BigInt.asIntN(64, u) : u;
    }
    const u = readUint(b, width, isBigEndian(info.key));
    const half = 2 ** (8 * width - 1);
    return signed && u >= half ? u - 2 * half : u;
  }
  switch (info.type) {
    case "flag":
      if (info.size !== 1) throw wrongSize(info, 1);
      return b[0] !== 0;
    case "flt ": {
      if (info.size !== 4) throw wrongSize(info, 4);
      return new DataView(b.buffer, b.byteOffset, 4).getFloat32(0, true);
    }
    case "ioft": {
      if (info.size !== 8) throw wrongSize(info, 8);
      // Unsigned 48.16 fixed point.
      return Number(readBig(b)) / 65536;
    }
    case "ch8*": {
      let end = 0;
      while (end < info.size && b[end] !== 0) end++;
      let s = "";
      for (let i = 0; i < end; i++) s += String.fromCharCode(b[i]!);
      return s;
    }
    default:
      return b.slice(0, info.size);
  }
}

/**
 * Encodes `value` into the key's `info.size` bytes by its type code — the inverse of
 * {@link decodeSmcValue}. A `Uint8Array` is taken as the raw bytes for any type.
 *
 * **Errors:** `EINVAL` for a value of the wrong kind, out of the type's range, or of the
 * wrong length; `EIO` when the key's size does not fit its type.
 */
export function encodeSmcValue(info: SmcKeyInfo, value: SmcValue): Uint8Array {
  const W = "writeKey";
  const out = new Uint8Array(info.size);
  if (value instanceof Uint8Array) {
    if (value.length !== info.size) {
      throw argumentError(W, "value", `${info.size} bytes for '${info.key}'`, value);
    }
    out.set(value);
    return out;
  }
  const int = INTEGER_TYPES[info.type];
  if (int !== undefined) {
    const [width, signed] = int;
    if (info.size !== width) throw wrongSize(info, width);
    if (width === 8) {
      if (typeof value !== "bigint") {
        throw argumentError(W, "value", `a bigint for '${info.key}' (${info.type})`, value);
      }
      const lo = signed ? -(2n ** 63n) : 0n;
      const hi = signed ? 2n ** 63n - 1n : 2n ** 64n - 1n;
      if (value < lo || value > hi) {
        throw argumentError(W, "value", `a ${info.type} for '${info.key}'`, value);
      }
      let u = BigInt.asUintN(64, value);
      for (let i = 0; i < 8; i++) {
        out[i] = Number(u & 0xffn);
        u >>= 8n;
      }
      return out;
    }
    const half = 2 ** (8 * width - 1);
    const n = checkInteger(W, "value", value, signed ? -half : 0, signed ? half - 1 : 2 * half - 1);
    let u = n < 0 ? n + 2 * half : n;
    const be = isBigEndian(info.key);
    for (let i = 0; i < width; i++) {
      out[be ? width - 1 - i : i] = u % 256;
      u = Math.floor(u / 256);
    }
    return out;
  }
  switch (info.type) {
    case "flag":
      if (info.size !== 1) throw wrongSize(info, 1);
      if (typeof value !== "boolean") {
        throw argumentError(W, "value", `true or false for '${info.key}' (flag)`, value);
      }
      out[0] = value ? 1 : 0;
      return out;
    case "flt ":
      if (info.size !== 4) throw wrongSize(info, 4);
      if (typeof value !== "number" || !Number.isFinite(value)) {
        throw argumentError(W, "value", `a finite number for '${info.key}' (flt)`, value);
      }
      new DataView(out.buffer).setFloat32(0, value, true);
      return out;
    case "ch8*": {
      if (typeof value !== "string" || value.length > info.size || !isAscii(value)) {
        throw argumentError(
          W,
          "value",
          `an ASCII string of at most ${info.size} characters for '${info.key}'`,
          value,
        );
      }
      for (let i = 0; i < value.length; i++) out[i] = value.charCodeAt(i);
      return out;
    }
    default:
      throw argumentError(
        W,
        "value",
        `a Uint8Array of ${info.size} bytes for '${info.key}' (type '${info.type}')`,
        value,
      );
  }
}
