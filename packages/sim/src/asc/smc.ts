//! C source: drivers/mfd/macsmc.c (the AP side this endpoint answers)
//!
//! The Apple SMC as an RTKit application endpoint (sim-hardware.md §2): INITIALIZE answered
//! with the shared buffer's SRAM address, READ_KEY, WRITE_KEY, RW_KEY, GET_KEY_BY_INDEX and
//! GET_KEY_INFO over a sorted key table with `#KEY`, notifications gated by `NTAP`, and
//! injected misbehaviour.

import {
  argumentError,
  checkCallback,
  checkInteger,
  checkObject,
  checkOneOf,
  checkString,
  DevrefError,
} from "@devref/raw-device";
import type { FaultSpec } from "../faults.js";
import type { Tracer } from "../trace.js";
import {
  EP_APP_START,
  SMC_FLAG_FUNCTION,
  SMC_FLAG_READABLE,
  SMC_FLAG_WRITABLE,
  SMC_GET_KEY_BY_INDEX,
  SMC_GET_KEY_INFO,
  SMC_INITIALIZE,
  SMC_NOTIFICATION,
  SMC_READ_KEY,
  SMC_RESULT,
  SMC_RW_KEY,
  SMC_WRITE_KEY,
} from "./constants.js";
import type { SmcFaultMode } from "./faults.js";
import type { RtkitFirmware } from "./firmware.js";
import type { RtkitEndpoint } from "./firmware-types.js";
import { defaultSmcKeys, fourcc, fourccName, SmcKey, type SmcKeyDef } from "./smc-keys.js";

/** What an {@link AppleSmc} is built with. */
export interface AppleSmcOptions {
  /** Physical base of the SMC's SRAM (mapped with `soc.addMemory` beforehand). */
  readonly sramBase: number;
  /** SRAM size in bytes. */
  readonly sramSize: number;
  /** Offset of the shared command buffer in SRAM (default 0; 0x1000 bytes must fit). */
  readonly shmemOffset?: number;
  /** The RTKit endpoint (default 0x20). */
  readonly endpoint?: number;
  /** Keys added to the defaults; a key with a default's name replaces it. */
  readonly keys?: readonly SmcKeyDef[];
  /** Whether to start from {@link defaultSmcKeys} (default true). */
  readonly defaultKeys?: boolean;
  /** Called when the AP writes `MBSE` (its FourCC, e.g. `off1` or `phra`). */
  readonly onSystemEvent?: (event: string) => void;
}

/** @internal Validated {@link AppleSmcOptions}, with the key table built. */
export interface SmcConfig {
  readonly sramBase: number;
  readonly sramSize: number;
  readonly shmemOffset: number;
  readonly endpoint: number;
  readonly keys: SmcKey[];
  readonly onSystemEvent: ((event: string) => void) | null;
}

/**
 * @internal Checks SMC options and builds the sorted key table (with `#KEY`), changing
 * nothing else.
 *
 * **Errors:** `EINVAL` naming the first bad option or key.
 */
export function checkSmcOptions(options: AppleSmcOptions): SmcConfig {
  const W = "new AppleSmc";
  checkObject(W, "options", options);
  const sramSize = checkInteger(W, "options.sramSize", options.sramSize, SHMEM_WINDOW, 2 ** 40);
  const sramBase = checkInteger(W, "options.sramBase", options.sramBase, 0, 2 ** 52 - sramSize);
  const shmemOffset = checkInteger(
    W,
    "options.shmemOffset",
    options.shmemOffset ?? 0,
    0,
    sramSize - SHMEM_WINDOW,
  );
  const endpoint = checkInteger(
    W,
    "options.endpoint",
    options.endpoint ?? EP_APP_START,
    EP_APP_START,
    0xff,
  );
  const onSystemEvent = options.onSystemEvent ?? null;
  if (onSystemEvent !== null) checkCallback(W, "options.onSystemEvent", onSystemEvent);
  const useDefaults = options.defaultKeys ?? true;
  if (typeof useDefaults !== "boolean") {
    throw argumentError(W, "options.defaultKeys", "true or false", useDefaults);
  }
  const extra = options.keys ?? [];
  if (!Array.isArray(extra)) {
    throw argumentError(W, "options.keys", "an array of key definitions", extra);
  }
  const byKey = new Map<number, SmcKey>();
  const defs: readonly SmcKeyDef[] = useDefaults ? [...defaultSmcKeys(), ...extra] : extra;
  for (const d of defs) {
    const k = new SmcKey(d, W);
    if (k.key === KEY_COUNT) {
      throw argumentError(W, "options.keys", "keys other than #KEY (the SMC computes it)", d.key);
    }
    byKey.set(k.key, k);
  }
  const count = new SmcKey({ key: "#KEY", type: "ui32", size: 4 }, W);
  byKey.set(count.key, count);
  const keys = [...byKey.values()].sort((a, b) => a.key - b.key);
  const n = keys.length;
  count.value.set([n >>> 24, (n >>> 16) & 0xff, (n >>> 8) & 0xff, n & 0xff]);
  return { sramBase, sramSize, shmemOffset, endpoint, keys, onSystemEvent };
}

const SMC_FAULT_MODES: readonly SmcFaultMode[] = ["no-reply", "wrong-id", "result", "bad-shmem"];
const SHMEM_WINDOW = 0x1000;
const KEY_COUNT = fourcc("#KEY");
const KEY_NTAP = fourcc("NTAP");
const KEY_MBSE = fourcc("MBSE");

/**
 * The Apple SMC's application protocol on an {@link RtkitFirmware} endpoint.
 *
 * **Commands** (msg0 `DATA` 63:32, `WSIZE` 31:24, `SIZE` 23:16, `ID` 15:12, `MSG` 7:0; the
 * reply echoes `ID`, carries `RESULT` in 7:0, `SIZE` in 23:16 and up to 4 value bytes in
 * `DATA`, byte 0 in bits 39:32): READ_KEY returns the key's real size (a request for fewer
 * bytes fails with kSMCKeySizeMismatch, for more succeeds), values over 4 bytes at offset 0
 * of the shared buffer; WRITE_KEY takes `SIZE` bytes from the buffer (they must equal the
 * key's size); RW_KEY calls a function key with `WSIZE` argument bytes; GET_KEY_BY_INDEX
 * returns the key byte-reversed; GET_KEY_INFO leaves size, type and flags in the buffer.
 * WRITE_KEY, GET_KEY_INFO and GET_KEY_BY_INDEX reply `SIZE` 0. Unknown keys give
 * kSMCKeyNotFound, flags kSMCKeyNotReadable/NotWritable, an index past `#KEY`
 * kSMCKeyIndexRangeError, an unknown command kSMCBadCommand, RW_KEY on a key without a
 * function kSMCBadFuncParameter. INITIALIZE's reply is the whole 64-bit buffer address.
 *
 * **Invariants:** the table stays sorted by packed key; `#KEY` (big-endian) is the number of
 * keys including itself; notifications go out only while `NTAP` is 1 and the endpoint runs.
 *
 * **Errors:** `EINVAL` for bad options or keys, or SRAM that is not mapped memory; `EBUSY`
 * when the endpoint is taken.
 *
 * @example
 * ```ts
 * soc.addMemory("smc-sram", 0x2_3fe0_0000, 0x10_0000);
 * const smc = new AppleSmc(fw, { sramBase: 0x2_3fe0_0000, sramSize: 0x10_0000 });
 * smc.notify(0x7203_0100); // lid closed, if the AP enabled NTAP
 * ```
 */
export class AppleSmc implements RtkitEndpoint {
  readonly firmware: RtkitFirmware;
  readonly endpoint: number;
  /** Address of the shared command buffer. */
  readonly shmemAddress: number;
  readonly sramBase: number;
  readonly sramSize: number;
  /** Commands answered (replies sent, faults included). */
  commands = 0;
  /** Notifications refused because NTAP was 0 or the endpoint was not running. */
  notificationsDropped = 0;
  /** The last `MBSE` event written, or "". */
  lastSystemEvent = "";
  private readonly keys: SmcKey[];
  private readonly onSystemEvent: ((event: string) => void) | null;
  private readonly keyInfo = new Uint8Array(6);
  /** Views of `arg` by length, made on first use, so commands allocate nothing. */
  private readonly argViews: Uint8Array[] = [];
  private readonly arg = new Uint8Array(256);
  private readonly tracer: Tracer;
  private readonly traceId: number;
  private ntap = false;
  private faultMode = 0;
  private faultLeft = 0;
  private faultResult: number = SMC_RESULT.ERROR;
  /** The reply being built: its SIZE and DATA fields. */
  private replySize = 0;
  private replyData = 0;

  constructor(firmware: RtkitFirmware, options: AppleSmcOptions) {
    const W = "new AppleSmc";
    if (typeof firmware?.addEndpoint !== "function") {
      throw argumentError(W, "firmware", "an RtkitFirmware", firmware);
    }
    const cfg = checkSmcOptions(options);
    const soc = firmware.asc.soc;
    const { sramBase, sramSize } = cfg;
    const mapped = soc
      .memoryMap()
      .some(
        (r) =>
          (r.kind === "memory" || r.kind === "ram") &&
          r.base <= sramBase &&
          sramBase + sramSize <= r.base + r.size,
      );
    if (!mapped) {
      throw argumentError(
        W,
        "options.sramBase",
        "the base of memory added with soc.addMemory",
        sramBase,
      );
    }
    firmware.addEndpoint(cfg.endpoint, this);
    this.keys = cfg.keys;
    this.firmware = firmware;
    this.endpoint = cfg.endpoint;
    this.sramBase = sramBase;
    this.sramSize = sramSize;
    this.shmemAddress = sramBase + cfg.shmemOffset;
    this.onSystemEvent = cfg.onSystemEvent;
    this.tracer = soc.tracer;
    this.traceId = soc.tracer.source(`${firmware.asc.name}.smc`);
  }

  /** Number of keys, `#KEY` included. */
  get keyCount(): number {
    return this.keys.length;
  }

  /** Whether notifications are enabled (`NTAP` = 1). */
  get notificationsEnabled(): boolean {
    return this.ntap;
  }

  /** The key names in table order (sorted by packed value). */
  keyNames(): string[] {
    return this.keys.map((k) => k.name);
  }

  /**
   * The stored value of `key` (a copy; for keys with a read handler, what the handler gives
   * now).
   *
   * **Errors:** `ENOENT` for a key the table lacks; `EINVAL` for a bad name.
   */
  keyValue(key: string): Uint8Array {
    const k = this.#mustFind("AppleSmc.keyValue", key);
    return this.#current(k).slice(0, k.size);
  }

  /**
   * Sets the stored value of `key` (as the SMC's own logic would: a sensor, the lid).
   *
   * **Errors:** `ENOENT` for an unknown key; `EINVAL` when `value` is not `size` bytes.
   */
  setKey(key: string, value: Uint8Array | readonly number[]): void {
    const k = this.#mustFind("AppleSmc.setKey", key);
    if (k.key === KEY_COUNT)
      throw argumentError("AppleSmc.setKey", "key", "a key other than #KEY", key);
    if ((!(value instanceof Uint8Array) && !Array.isArray(value)) || value.length !== k.size) {
      throw argumentError("AppleSmc.setKey", "value", `${k.size} bytes`, value);
    }
    const bytes = new Uint8Array(k.size);
    for (let i = 0; i < k.size; i++)
      bytes[i] = checkInteger("AppleSmc.setKey", `value[${i}]`, value[i], 0, 0xff);
    k.value.set(bytes);
  }

  /**
   * Sends a notification (`MSG` 0x18, the event in `DATA`); false when `NTAP` is 0 or the
   * endpoint is not running.
   *
   * **Errors:** `EINVAL` for an event that is not a 32-bit number.
   */
  notify(event: number): boolean {
    checkInteger("AppleSmc.notify", "event", event, 0, 0xffff_ffff);
    if (!this.ntap || !this.firmware.isStarted(this.endpoint)) {
      this.notificationsDropped++;
      return false;
    }
    this.firmware.send(this.endpoint, event, SMC_NOTIFICATION);
    return true;
  }

  /**
   * Makes the next `count` commands misbehave (see {@link SmcFaultMode}); `result` is the
   * code for mode `result` (default 0x01, kSMCError).
   *
   * **Errors:** `EINVAL` for an unknown mode, a bad count, or a result of 0 or 0x18.
   */
  fault(mode: SmcFaultMode, count = 1, result: number = SMC_RESULT.ERROR): void {
    checkOneOf("AppleSmc.fault", "mode", mode, SMC_FAULT_MODES);
    checkInteger("AppleSmc.fault", "count", count, 0, 0x7fff_ffff);
    checkInteger("AppleSmc.fault", "result", result, 1, 0xff);
    if (result === 0x18)
      throw argumentError(
        "AppleSmc.fault",
        "result",
        "a code other than 0x18 (a notification)",
        result,
      );
    this.faultMode = SMC_FAULT_MODES.indexOf(mode) + 1;
    this.faultLeft = count;
    this.faultResult = result;
  }

  // --- RtkitEndpoint -----------------------------------------------------------------------

  /** @internal */
  start(): void {}

  /** @internal */
  stop(): void {}

  /** @internal */
  reset(): void {
    this.ntap = false;
  }

  /** @internal */
  prepareFault(spec: FaultSpec): (() => void) | null {
    checkObject("AppleSmc.prepareFault", "spec", spec);
    if (spec.kind !== "smc-fault") return null;
    const mode = checkOneOf("smc-fault", "mode", spec.mode, SMC_FAULT_MODES);
    const count = checkInteger("smc-fault", "count", spec.count ?? 1, 1, 0x7fff_ffff);
    const result = checkInteger("smc-fault", "result", spec.result ?? SMC_RESULT.ERROR, 1, 0xff);
    if (result === 0x18)
      throw argumentError("smc-fault", "result", "a code other than 0x18", result);
    return () => this.fault(mode, count, result);
  }

  /**
   * A command from the AP (the firmware hands the endpoint's messages here).
   *
   * **Errors:** `EINVAL` for message halves that are not numbers.
   */
  receive(hi: number, lo: number): void {
    if (typeof hi !== "number") checkInteger("AppleSmc.receive", "hi", hi, 0, 0xffff_ffff);
    if (typeof lo !== "number") checkInteger("AppleSmc.receive", "lo", lo, 0, 0xffff_ffff);
    const msg = lo & 0xff;
    const id = (lo >>> 12) & 0xf;
    let mode = 0;
    const fm = this.faultMode;
    // no-reply hits any command; bad-shmem only INITIALIZE; wrong-id and result the others.
    if (this.faultLeft > 0 && (fm === 1 || (fm === 4) === (msg === SMC_INITIALIZE))) {
      mode = fm;
      this.faultLeft--;
      this.tracer.fault(this.traceId, "smc-injected", mode, lo);
    }
    if (mode === 1) return; // no-reply
    this.commands++;
    if (msg === SMC_INITIALIZE) {
      const addr = mode === 4 ? this.sramBase + this.sramSize : this.shmemAddress;
      const alo = addr % 0x1_0000_0000;
      this.firmware.send(this.endpoint, (addr - alo) / 0x1_0000_0000, alo);
      return;
    }
    const size = (lo >>> 16) & 0xff;
    const wsize = lo >>> 24;
    // The reply packs: result | id << 12 | size << 16, and data in the high word.
    this.replySize = 0;
    this.replyData = 0;
    let result: number;
    switch (msg) {
      case SMC_READ_KEY:
        result = this.#read(hi, size);
        break;
      case SMC_WRITE_KEY:
        result = this.#write(hi, size);
        break;
      case SMC_RW_KEY:
        result = this.#rw(hi, wsize, size);
        break;
      case SMC_GET_KEY_BY_INDEX:
        result = this.#byIndex(hi);
        break;
      case SMC_GET_KEY_INFO:
        result = this.#info(hi);
        break;
      default:
        result = SMC_RESULT.BAD_COMMAND;
    }
    if (mode === 3) result = this.faultResult;
    const replyId = mode === 2 ? (id + 1) & 0xf : id;
    const rlo = result === 0 ? (this.replySize << 16) | (replyId << 12) : (replyId << 12) | result;
    this.firmware.send(this.endpoint, result === 0 ? this.replyData : 0, rlo >>> 0);
  }

  #read(key: number, size: number): number {
    const k = this.#find(key);
    if (k === null) return SMC_RESULT.KEY_NOT_FOUND;
    if ((k.flags & SMC_FLAG_READABLE) === 0) return SMC_RESULT.KEY_NOT_READABLE;
    if (size < k.size) return SMC_RESULT.KEY_SIZE_MISMATCH;
    return this.#reply(k, this.#current(k));
  }

  #write(key: number, size: number): number {
    const k = this.#find(key);
    if (k === null) return SMC_RESULT.KEY_NOT_FOUND;
    if ((k.flags & SMC_FLAG_WRITABLE) === 0) return SMC_RESULT.KEY_NOT_WRITABLE;
    if (size !== k.size) return SMC_RESULT.KEY_SIZE_MISMATCH;
    const v = k.scratch;
    if (!this.firmware.asc.localDma.read(this.shmemAddress, v)) return SMC_RESULT.ERROR;
    const now = this.firmware.asc.soc.nowNs;
    const r = k.write === null ? 0 : k.write(v, now);
    if (r !== 0) return r;
    k.value.set(v);
    if (key === KEY_NTAP) this.ntap = v[0] !== 0;
    else if (key === KEY_MBSE) this.#systemEvent(v);
    return 0;
  }

  #rw(key: number, wsize: number, size: number): number {
    const k = this.#find(key);
    if (k === null) return SMC_RESULT.KEY_NOT_FOUND;
    if (k.call === null || (k.flags & SMC_FLAG_FUNCTION) === 0)
      return SMC_RESULT.BAD_FUNC_PARAMETER;
    if (size < k.size) return SMC_RESULT.KEY_SIZE_MISMATCH;
    const a = this.#argView(wsize);
    if (wsize > 0 && !this.firmware.asc.localDma.read(this.shmemAddress, a))
      return SMC_RESULT.ERROR;
    const out = k.scratch;
    out.fill(0);
    const r = k.call(a, out, this.firmware.asc.soc.nowNs);
    return r !== 0 ? r : this.#reply(k, out);
  }

  #byIndex(index: number): number {
    if (index >= this.keys.length) return SMC_RESULT.KEY_INDEX_RANGE;
    const key = this.keys[index]!.key;
    // String order from bits 39:32 upwards: the packed key byte-reversed.
    this.replyData =
      ((key >>> 24) | ((key >>> 8) & 0xff00) | ((key << 8) & 0xff_0000) | (key << 24)) >>> 0;
    return 0;
  }

  #info(key: number): number {
    const k = this.#find(key);
    if (k === null) return SMC_RESULT.KEY_NOT_FOUND;
    const s = this.keyInfo;
    s[0] = k.size;
    s[1] = k.type >>> 24;
    s[2] = (k.type >>> 16) & 0xff;
    s[3] = (k.type >>> 8) & 0xff;
    s[4] = k.type & 0xff;
    s[5] = k.flags;
    return this.firmware.asc.localDma.write(this.shmemAddress, s) ? 0 : SMC_RESULT.ERROR;
  }

  /** Puts a value in the reply (≤ 4 bytes) or the shared buffer. */
  #reply(k: SmcKey, v: Uint8Array): number {
    this.replySize = k.size;
    if (k.size <= 4) {
      let d = 0;
      for (let i = k.size - 1; i >= 0; i--) d = (d << 8) | v[i]!;
      this.replyData = d >>> 0;
      return 0;
    }
    return this.firmware.asc.localDma.write(this.shmemAddress, v) ? 0 : SMC_RESULT.ERROR;
  }

  /** The key's value now: its stored bytes, or what its read handler computes. */
  #current(k: SmcKey): Uint8Array {
    if (k.read === null) return k.value;
    const out = k.scratch;
    out.fill(0);
    k.read(out, this.firmware.asc.soc.nowNs);
    return out;
  }

  #argView(n: number): Uint8Array {
    let v = this.argViews[n];
    if (v === undefined) {
      v = this.arg.subarray(0, n);
      this.argViews[n] = v;
    }
    return v;
  }

  #systemEvent(v: Uint8Array): void {
    // MBSE holds a little-endian u32 whose value is the event's FourCC.
    const code = (v[0]! | (v[1]! << 8) | (v[2]! << 16) | (v[3]! << 24)) >>> 0;
    this.lastSystemEvent = fourccName(code);
    this.tracer.note(this.traceId, "smc-system-event", code);
    this.onSystemEvent?.(this.lastSystemEvent);
  }

  #find(key: number): SmcKey | null {
    const keys = this.keys;
    let lo = 0;
    let hi = keys.length - 1;
    while (lo <= hi) {
      const mid = (lo + hi) >>> 1;
      const k = keys[mid]!;
      if (k.key === key) return k;
      if (k.key < key) lo = mid + 1;
      else hi = mid - 1;
    }
    return null;
  }

  #mustFind(where: string, name: string): SmcKey {
    checkString(where, "key", name);
    const k = name.length === 4 ? this.#find(fourcc(name)) : null;
    if (k === null)
      throw new DevrefError("ENOENT", `${where}: the SMC has no key '${name}' (see keyNames())`);
    return k;
  }
}
