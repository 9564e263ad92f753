//! C source: drivers/mfd/macsmc.c (apple_smc_rw_locked, apple_smc_read/write/rw,
//! apple_smc_get_key_by_index, apple_smc_get_key_info, apple_smc_write_flag)
//!
//! The key operations over the command engine. Each holds the command lock across the
//! shared-buffer copy and the command, as the kernel holds smc->mutex across memcpy_toio,
//! the command and memcpy_fromio.

import { argumentError, DevrefError } from "@devref/raw-device";
import {
  SMC_MAX_SIZE,
  SMC_MSG_GET_KEY_BY_INDEX,
  SMC_MSG_GET_KEY_INFO,
  SMC_MSG_READ_KEY,
  SMC_MSG_RW_KEY,
  SMC_MSG_WRITE_KEY,
  smcKey,
  smcKeyName,
} from "../protocol.js";
import {
  decodeSmcValue,
  encodeSmcValue,
  keyInfoFromBytes,
  type SmcKeyInfo,
  type SmcValue,
} from "../values.js";
import type { SmcCore } from "./core.js";

function checkSize(where: string, param: string, n: number, min: number): void {
  if (!(Number.isInteger(n) && n >= min && n <= SMC_MAX_SIZE)) {
    throw argumentError(where, param, `a size from ${min} to ${SMC_MAX_SIZE} bytes`, n);
  }
}

/** The `n` value bytes of a reply: from `DATA` (byte 0 in bits 39:32) or the shared buffer. */
function replyBytes(core: SmcCore, n: number, data: number): Uint8Array {
  const out = new Uint8Array(n);
  if (n <= 4) {
    for (let i = 0; i < n; i++) out[i] = (data >>> (8 * i)) & 0xff;
  } else {
    core.sram.read(core.shmemOffset, out);
  }
  return out;
}

/**
 * apple_smc_read: `size` bytes of `key` (READ_KEY). The SMC answers with the key's real
 * size; a shorter answer gives fewer bytes.
 */
export function readRaw(core: SmcCore, key: string, size: number): Promise<Uint8Array> {
  const k = smcKey(key);
  checkSize("readKeyRaw", "size", size, 1);
  return core.locked(async () => {
    const r = await core.command(`READ_KEY '${key}'`, SMC_MSG_READ_KEY, k, size, 0);
    return replyBytes(core, Math.min(size, r.size), r.data);
  });
}

/** apple_smc_write: `bytes` to `key` (WRITE_KEY; the length travels in SIZE, WSIZE 0). */
export function writeRaw(core: SmcCore, key: string, bytes: Uint8Array): Promise<void> {
  const k = smcKey(key);
  if (!(bytes instanceof Uint8Array))
    throw argumentError("writeKeyRaw", "bytes", "a Uint8Array", bytes);
  checkSize("writeKeyRaw", "bytes.length", bytes.length, 1);
  const copy = bytes.slice();
  return core.locked(async () => {
    if (!core.canCommand()) throw core.stageError();
    core.sram.write(core.shmemOffset, copy);
    await core.command(`WRITE_KEY '${key}'`, SMC_MSG_WRITE_KEY, k, copy.length, 0);
  });
}

/** apple_smc_rw: a function key (RW_KEY) with `arg` written first and `size` bytes read. */
export function rwRaw(
  core: SmcCore,
  key: string,
  arg: Uint8Array,
  size: number,
): Promise<Uint8Array> {
  const k = smcKey(key);
  if (!(arg instanceof Uint8Array)) throw argumentError("rwKey", "arg", "a Uint8Array", arg);
  checkSize("rwKey", "arg.length", arg.length, 1);
  checkSize("rwKey", "size", size, 1);
  const copy = arg.slice();
  return core.locked(async () => {
    if (!core.canCommand()) throw core.stageError();
    core.sram.write(core.shmemOffset, copy);
    const r = await core.command(`RW_KEY '${key}'`, SMC_MSG_RW_KEY, k, size, copy.length);
    return replyBytes(core, Math.min(size, r.size), r.data);
  });
}

/** apple_smc_get_key_by_index: the key at `index` of the sorted table, packed. */
export function keyByIndex(core: SmcCore, index: number): Promise<number> {
  if (!(Number.isInteger(index) && index >= 0 && index <= 0xffff_ffff)) {
    throw argumentError("keyByIndex", "index", "a whole number from 0 to 2^32 - 1", index);
  }
  return core.locked(async () => {
    const r = await core.command(
      `GET_KEY_BY_INDEX ${index}`,
      SMC_MSG_GET_KEY_BY_INDEX,
      index,
      0,
      0,
    );
    // The four characters come in string order from bits 39:32 up: swab32 gives the key.
    const d = r.data;
    return ((d >>> 24) | ((d >>> 8) & 0xff00) | ((d << 8) & 0xff_0000) | (d << 24)) >>> 0;
  });
}

/** apple_smc_get_key_info: size, type and flags of `key` (cached for the session). */
export function keyInfo(core: SmcCore, key: string): Promise<SmcKeyInfo> {
  return keyInfoOf(core, smcKey(key), key);
}

function keyInfoOf(core: SmcCore, k: number, key: string): Promise<SmcKeyInfo> {
  const cached = core.infoCache.get(key);
  if (cached !== undefined && core.canCommand()) return Promise.resolve(cached);
  return core.locked(async () => {
    await core.command(`GET_KEY_INFO '${key}'`, SMC_MSG_GET_KEY_INFO, k, 0, 0);
    const b = new Uint8Array(6);
    core.sram.read(core.shmemOffset, b);
    const info = keyInfoFromBytes(key, b);
    core.infoCache.set(key, info);
    return info;
  });
}

/** Reads `key` and decodes it by the type its info reports. */
export async function readValue(core: SmcCore, key: string): Promise<SmcValue> {
  const info = await keyInfo(core, key);
  if (info.size === 0) {
    throw new DevrefError("EIO", `${core.name}: the SMC reports key '${key}' with size 0`);
  }
  const bytes = await readRaw(core, key, info.size);
  if (bytes.length !== info.size) {
    throw new DevrefError(
      "EIO",
      `${core.name}: reading '${key}' gave ${bytes.length} bytes; its info says ${info.size}`,
    );
  }
  return decodeSmcValue(info, bytes);
}

/** Encodes `value` by `key`'s type and writes it. */
export async function writeValue(core: SmcCore, key: string, value: SmcValue): Promise<void> {
  const info = await keyInfo(core, key);
  await writeRaw(core, key, encodeSmcValue(info, value));
}

/** `#KEY`: exactly four bytes, big-endian (the probe's "Failed to get key count" check). */
export async function readKeyCount(core: SmcCore): Promise<number> {
  const b = await readRaw(core, "#KEY", 4);
  if (b.length !== 4) {
    throw new DevrefError("EINVAL", `${core.name}: #KEY answered ${b.length} bytes instead of 4`);
  }
  return ((b[0]! << 24) | (b[1]! << 16) | (b[2]! << 8) | b[3]!) >>> 0;
}

/** NTAP = 1 or 0 (apple_smc_write_flag): notifications on or off. */
export async function setNotifications(core: SmcCore, on: boolean): Promise<void> {
  await writeRaw(core, "NTAP", new Uint8Array([on ? 1 : 0]));
  core.notifications = on;
}

/** Every key of the table with its info: GET_KEY_BY_INDEX then GET_KEY_INFO, `#KEY` times. */
export async function listKeys(core: SmcCore): Promise<SmcKeyInfo[]> {
  const out: SmcKeyInfo[] = [];
  const n = core.keyCount;
  for (let i = 0; i < n; i++) {
    const k = await keyByIndex(core, i);
    out.push(await keyInfoOf(core, k, smcKeyName(k)));
  }
  return out;
}
