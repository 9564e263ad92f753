//! C header: include/linux/mfd/macsmc.h (smc_key, key info, the flags)
//!
//! The SMC's key table: FourCC keys packed big-endian into a u32, kept sorted by that
//! value, each with a type, a size, flags and a stored value or handlers. Also the default
//! keys of a laptop-like SMC (sim-hardware.md §2.7) whose sensors follow the virtual clock.

import { argumentError, checkInteger, checkObject, checkString } from "@devref/raw-device";
import { SMC_FLAG_FUNCTION, SMC_FLAG_READABLE, SMC_FLAG_WRITABLE } from "./constants.js";

/** One key an {@link AppleSmc} exposes. */
export interface SmcKeyDef {
  /** Four ASCII characters, e.g. `TB0T`. */
  readonly key: string;
  /** Four-character type code, spaces significant, e.g. `flt `. */
  readonly type: string;
  /** Value size in bytes, 1–255. */
  readonly size: number;
  /** Key-info flags: 0x80 readable, 0x40 writable, 0x10 function (default 0x80). */
  readonly flags?: number;
  /** Initial stored value, `size` bytes (default zeros). */
  readonly value?: Uint8Array | readonly number[];
  /** Computes the value at each read into `out` (`size` bytes) from the virtual time. */
  readonly read?: (out: Uint8Array, nowNs: number) => void;
  /**
   * Takes a written value (`size` bytes); returns an SMC result code (0 stores it, anything
   * else refuses it and is the reply's result).
   */
  readonly write?: (value: Uint8Array, nowNs: number) => number;
  /**
   * A function key (RW_KEY): `arg` holds what the AP wrote; fill `out` (`size` bytes) and
   * return a result code.
   */
  readonly call?: (arg: Uint8Array, out: Uint8Array, nowNs: number) => number;
}

/** A FourCC as the SMC carries it: the four characters big-endian in a u32. */
export function fourcc(s: string): number {
  return (
    ((s.charCodeAt(0) << 24) |
      (s.charCodeAt(1) << 16) |
      (s.charCodeAt(2) << 8) |
      s.charCodeAt(3)) >>>
    0
  );
}

/** The four characters of a packed FourCC. */
export function fourccName(v: number): string {
  return String.fromCharCode((v >>> 24) & 0xff, (v >>> 16) & 0xff, (v >>> 8) & 0xff, v & 0xff);
}

/** @internal A key in the table. */
export class SmcKey {
  readonly key: number;
  readonly name: string;
  readonly type: number;
  readonly size: number;
  readonly flags: number;
  readonly value: Uint8Array;
  /** Room for a computed or incoming value, so commands allocate nothing. */
  readonly scratch: Uint8Array;
  readonly read: ((out: Uint8Array, nowNs: number) => void) | null;
  readonly write: ((value: Uint8Array, nowNs: number) => number) | null;
  readonly call: ((arg: Uint8Array, out: Uint8Array, nowNs: number) => number) | null;

  constructor(def: SmcKeyDef, where: string) {
    checkObject(where, "key", def);
    const name = checkFourcc(where, "key.key", def.key);
    const type = checkFourcc(where, "key.type", def.type);
    const size = checkInteger(where, `key.size (${name})`, def.size, 1, 0xff);
    const flags = checkInteger(
      where,
      `key.flags (${name})`,
      def.flags ?? SMC_FLAG_READABLE,
      0,
      0xff,
    );
    for (const f of ["read", "write", "call"] as const) {
      if (def[f] !== undefined && typeof def[f] !== "function") {
        throw argumentError(where, `key.${f} (${name})`, "a function", def[f]);
      }
    }
    const value = new Uint8Array(size);
    if (def.value !== undefined) {
      const v = def.value;
      if (!(v instanceof Uint8Array) && !Array.isArray(v)) {
        throw argumentError(where, `key.value (${name})`, `${size} bytes`, v);
      }
      if (v.length !== size) {
        throw argumentError(where, `key.value (${name})`, `exactly ${size} bytes`, v);
      }
      for (let i = 0; i < size; i++) {
        value[i] = checkInteger(where, `key.value[${i}] (${name})`, v[i], 0, 0xff);
      }
    }
    this.key = fourcc(name);
    this.name = name;
    this.type = fourcc(type);
    this.size = size;
    this.flags = flags;
    this.value = value;
    this.scratch = new Uint8Array(size);
    this.read = def.read ?? null;
    this.write = def.write ?? null;
    this.call = def.call ?? null;
  }
}

function checkFourcc(where: string, param: string, s: unknown): string {
  const v = checkString(where, param, s);
  if (v.length !== 4 || !/^[\x20-\x7e]{4}$/.test(v)) {
    throw argumentError(where, param, "four printable ASCII characters", s);
  }
  return v;
}

const RW = SMC_FLAG_READABLE | SMC_FLAG_WRITABLE;
const RWF = SMC_FLAG_READABLE | SMC_FLAG_WRITABLE | SMC_FLAG_FUNCTION;

function le(v: number, n: number): number[] {
  const out: number[] = [];
  for (let i = 0; i < n; i++) out.push(Math.floor(v / 2 ** (8 * i)) & 0xff);
  return out;
}
function putLe(out: Uint8Array, v: number, n: number): void {
  for (let i = 0; i < n; i++) out[i] = Math.floor(v / 2 ** (8 * i)) & 0xff;
}
function str(s: string, n: number): number[] {
  const out = new Array<number>(n).fill(0);
  for (let i = 0; i < s.length && i < n; i++) out[i] = s.charCodeAt(i) & 0x7f;
  return out;
}

/**
 * Battery hot-spot temperature in °C: a deterministic triangle wave between 30 and 40 °C
 * with a 20 s period of virtual time (rises for 10 s, falls for 10 s).
 *
 * **Errors:** `EINVAL` for a `nowNs` that is not a whole number in `[0, 2^53)`.
 */
export function smcTemperature(nowNs: number): number {
  checkInteger("smcTemperature", "nowNs", nowNs, 0, Number.MAX_SAFE_INTEGER);
  const t = nowNs % 20_000_000_000;
  return 30 + (10 * (t < 10_000_000_000 ? t : 20_000_000_000 - t)) / 10_000_000_000;
}

/**
 * State of charge in %: 80 at time 0, one point less per virtual minute, never below 5.
 *
 * **Errors:** `EINVAL` for a `nowNs` that is not a whole number in `[0, 2^53)`.
 */
export function smcChargePercent(nowNs: number): number {
  checkInteger("smcChargePercent", "nowNs", nowNs, 0, Number.MAX_SAFE_INTEGER);
  return Math.max(5, 80 - Math.floor(nowNs / 60_000_000_000));
}

/**
 * The RTC counter `CLKM` at 32 768 Hz for virtual time `nowNs` plus `offset` ticks.
 *
 * **Errors:** `EINVAL` for a `nowNs` that is not a whole number in `[0, 2^53)` or an
 * `offset` that is not a safe integer.
 */
export function smcRtcTicks(nowNs: number, offset: number): number {
  checkInteger("smcRtcTicks", "nowNs", nowNs, 0, Number.MAX_SAFE_INTEGER);
  checkInteger("smcRtcTicks", "offset", offset, Number.MIN_SAFE_INTEGER, Number.MAX_SAFE_INTEGER);
  const s = Math.floor(nowNs / 1_000_000_000);
  return offset + s * 32768 + Math.floor(((nowNs - s * 1_000_000_000) * 32768) / 1_000_000_000);
}

/**
 * The keys a default {@link AppleSmc} has (`#KEY` is added by the SMC itself). Sensors
 * follow the virtual clock; `gP00` and `gP01` are GPIO function keys (RW_KEY with a command
 * in bits 31:24: 1 sets the output to bit 0, 2 reads it back).
 */
export function defaultSmcKeys(): SmcKeyDef[] {
  // One scratch for float conversions per key set, so sensor reads allocate nothing.
  const dv = new DataView(new ArrayBuffer(4));
  const putFloat = (out: Uint8Array, v: number): void => {
    dv.setFloat32(0, v, true);
    for (let i = 0; i < 4; i++) out[i] = dv.getUint8(i);
  };
  const float = (v: number): number[] => {
    dv.setFloat32(0, v, true);
    return [dv.getUint8(0), dv.getUint8(1), dv.getUint8(2), dv.getUint8(3)];
  };
  const gpio = (name: string): SmcKeyDef => {
    let level = 0;
    return {
      key: name,
      type: "ui32",
      size: 4,
      flags: RWF,
      read: (out) => putLe(out, level, 4),
      call: (arg, out) => {
        const cmd = arg.length >= 4 ? arg[3]! : 0xff;
        if (cmd === 1) level = arg[0]! & 1;
        putLe(out, cmd === 2 ? level : 0, 4);
        return 0;
      },
    };
  };
  let rtcOffset = 0;
  let fanTarget = 1200;
  return [
    { key: "ACSt", type: "ui32", size: 4, value: le(6, 4) },
    { key: "B0AC", type: "si16", size: 2, value: le(0x1_0000 - 1200, 2) },
    { key: "B0AP", type: "si32", size: 4, value: le(0x1_0000_0000 - 15_000, 4) },
    { key: "B0AT", type: "ui16", size: 2, value: le(3032, 2) },
    { key: "B0AV", type: "ui16", size: 2, value: le(12_300, 2) },
    { key: "B0CT", type: "ui16", size: 2, value: le(87, 2) },
    { key: "B0DC", type: "ui16", size: 2, value: le(5000, 2) },
    { key: "B0FC", type: "ui16", size: 2, value: le(4500, 2) },
    { key: "B0RM", type: "ui16", size: 2, value: [3600 >> 8, 3600 & 0xff] },
    { key: "BMDN", type: "ch8*", size: 32, value: str("bq40z651", 32) },
    { key: "BUIC", type: "ui8 ", size: 1, read: (out, now) => (out[0] = smcChargePercent(now)) },
    { key: "CHCE", type: "flag", size: 1, value: [1] },
    { key: "CHIS", type: "ui32", size: 4, value: le(1, 4) },
    {
      key: "CLKM",
      type: "hex_",
      size: 6,
      flags: RW,
      read: (out, now) => putLe(out, smcRtcTicks(now, rtcOffset), 6),
      write: (v, now) => {
        let ticks = 0;
        for (let i = 5; i >= 0; i--) ticks = ticks * 256 + v[i]!;
        rtcOffset = ticks - smcRtcTicks(now, 0);
        return 0;
      },
    },
    {
      key: "F0Ac",
      type: "flt ",
      size: 4,
      read: (out, now) =>
        putFloat(out, Math.max(fanTarget, 1200 + (smcTemperature(now) - 30) * 200)),
    },
    { key: "F0Md", type: "ui8 ", size: 1, flags: RW },
    { key: "F0Mn", type: "flt ", size: 4, value: float(1200) },
    { key: "F0Mx", type: "flt ", size: 4, value: float(6000) },
    {
      key: "F0Tg",
      type: "flt ",
      size: 4,
      flags: RW,
      value: float(1200),
      write: (v) => {
        for (let i = 0; i < 4; i++) dv.setUint8(i, v[i]!);
        fanTarget = dv.getFloat32(0, true);
        return 0;
      },
    },
    { key: "MBSE", type: "hex_", size: 4, flags: RW },
    { key: "MSLD", type: "ui8 ", size: 1 },
    { key: "NTAP", type: "flag", size: 1, flags: RW },
    {
      key: "PSTR",
      type: "flt ",
      size: 4,
      read: (out, now) => putFloat(out, 6 + (smcTemperature(now) - 30) / 2),
    },
    { key: "SBAV", type: "flt ", size: 4, value: float(12.3) },
    { key: "TB0T", type: "flt ", size: 4, read: (out, now) => putFloat(out, smcTemperature(now)) },
    {
      key: "TCHP",
      type: "flt ",
      size: 4,
      read: (out, now) => putFloat(out, smcTemperature(now) + 5),
    },
    { key: "TW0P", type: "flt ", size: 4, value: float(38) },
    { key: "bHLD", type: "ui32", size: 4 },
    gpio("gP00"),
    gpio("gP01"),
  ];
}
