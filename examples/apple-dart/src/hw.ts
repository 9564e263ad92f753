//! C source: drivers/iommu/apple-dart.c (the `DART_*` register definitions and the three
//! `struct apple_dart_hw` descriptions: apple_dart_hw_t8103, _t6000, _t8110)
//!
//! What differs between the DART variants, as data: where the registers are, which TCR
//! values select translate, bypass and disabled, how a TTBR is encoded, how ERROR is laid
//! out, and which page-table format the domains use (specs/sim-hardware.md §1.1–§1.6).

import { checkAddress, checkObject } from "@devref/raw-device";

/** The register family and PTE format, chosen by the DT compatible string. */
export type DartType = "t8020" | "t6000" | "t8110";

/** `PARAMS1` (all variants): the page shift. */
export const DART_PARAMS1 = 0x00;
/** `PARAMS1.PAGE_SHIFT` is bits 27:24: its shift… */
export const DART_PARAMS1_PAGE_SHIFT_SHIFT = 24;
/** …and its mask once shifted. */
export const DART_PARAMS1_PAGE_SHIFT_MASK = 0xf;
/** `PARAMS2` (all variants): bypass support. */
export const DART_PARAMS2 = 0x04;
/** `PARAMS2.BYPASS_SUPPORT`: the DART can pass a stream through untranslated. */
export const DART_PARAMS2_BYPASS_SUPPORT = 0x1;
/** T8110 `PARAMS3`: PA width 29:24, VA width 21:16. */
export const DART_T8110_PARAMS3 = 0x08;
/** T8110 `PARAMS4`: `NUM_SIDS` 8:0. */
export const DART_T8110_PARAMS4 = 0x0c;
/** `ERROR.FLAG`: an error is latched (both families). */
export const DART_ERROR_FLAG = 0x8000_0000;
/** The driver's ceiling on streams (`DART_MAX_STREAMS`). */
export const DART_MAX_STREAMS = 256;
/** The kernel refuses a register window smaller than this. */
export const DART_MIN_REGION = 0x4000;
/** Polls of a TLB command before it is declared stuck: one per µs for 100 µs. */
export const DART_STREAM_COMMAND_BUSY_TIMEOUT = 100;

/** T8020/T6000 `STREAM_COMMAND`: the command register. */
export const DART_T8020_STREAM_COMMAND = 0x20;
/** `STREAM_COMMAND.BUSY`: reads 1 while the command runs. */
export const DART_T8020_STREAM_COMMAND_BUSY = 0x4;
/** `STREAM_COMMAND.INVALIDATE`: invalidate the TLB of the selected streams. */
export const DART_T8020_STREAM_COMMAND_INVALIDATE = 0x10_0000;
/** T8020/T6000 `STREAM_SELECT`: one bitmap word per 32 streams from here. */
export const DART_T8020_STREAM_SELECT = 0x34;
/** T8110 `TLB_CMD`: `BUSY` 31, `OP` 10:8, `STREAM` 7:0. */
export const DART_T8110_TLB_CMD = 0x80;
/** `TLB_CMD.BUSY`. */
export const DART_T8110_TLB_CMD_BUSY = 0x8000_0000;
/** `TLB_CMD.OP` = `FLUSH_SID`: invalidate one stream. */
export const DART_T8110_TLB_CMD_OP_FLUSH_SID = 1;
/** T8110 `ERROR_MASK`: a set bit suppresses that error; the driver writes 0. */
export const DART_T8110_ERROR_MASK = 0x104;
/** T8110 per-stream error bits (W1C), one word per 32 streams. */
export const DART_T8110_ERROR_STREAMS = 0x1c0;

/** One decodable `ERROR.CODE` value. */
export interface DartErrorCode {
  /** The single code bit. */
  readonly bit: number;
  /** The kernel's log name, e.g. `"NO PTE FOR IOVA"`. */
  readonly name: string;
  /** Short name, as the simulator's fault kinds spell it. */
  readonly kind: "no-ttbr" | "no-pgd" | "no-pmd" | "no-pte" | "write-fault" | "read-fault";
}

/**
 * One DART variant (`struct apple_dart_hw`): register offsets, TCR values, TTBR encoding,
 * ERROR layout and the domains' page-table format.
 *
 * **Invariants:** every offset lies inside the 0x4000-byte window; exactly one of the TCR
 * values enables translation.
 *
 * @example
 * ```ts
 * const hw: DartHw = DART_HW_T8110;
 * regs.write32(hw.tcrBase + 4 * sid, hw.tcrBypass); // this stream passes through
 * ```
 */
export interface DartHw {
  readonly type: DartType;
  /** The io-pgtable format of paging domains. */
  readonly fmt: "apple-dart" | "apple-dart2";
  /** Input address bits of T8020/T6000 (fixed 32); 0 when PARAMS3 gives them. */
  readonly ias: number;
  /** Output address bits of T8020/T6000 (36 or 42); 0 when PARAMS3 gives them. */
  readonly oas: number;
  /** Streams of T8020/T6000 (fixed 16); 0 when PARAMS4 gives them. */
  readonly maxSidCount: number;
  /** The lock register and its bit (`CONFIG.LOCK` or `PROTECT.PROTECT_TTBR_TCR`). */
  readonly lock: number;
  readonly lockBit: number;
  /** First stream-enable word (`STREAMS_ENABLE` or `ENABLE_STREAMS`). */
  readonly enableStreams: number;
  readonly error: number;
  readonly errorAddrLo: number;
  readonly errorAddrHi: number;
  readonly errorStreamShift: number;
  readonly errorStreamMask: number;
  readonly errorCodeMask: number;
  readonly errorCodes: readonly DartErrorCode[];
  /** `TCR(sid)` = `tcrBase + 4·sid`. */
  readonly tcrBase: number;
  readonly tcrEnabled: number;
  readonly tcrDisabled: number;
  readonly tcrBypass: number;
  /** Added to `tcrEnabled` for a four-level table; 0 where the variant has none. */
  readonly tcrFourLevel: number;
  /** `TTBR(sid, idx)` = `ttbrBase + ttbrStride·sid + 4·idx`. */
  readonly ttbrBase: number;
  readonly ttbrStride: number;
  readonly ttbrCount: number;
  readonly ttbrValid: number;
  /** The table address is shifted right by `ttbrShift`, then left by `ttbrAddrFieldShift`. */
  readonly ttbrShift: number;
  readonly ttbrAddrFieldShift: number;
}

const T8020_CODES: readonly DartErrorCode[] = [
  { bit: 0x10, name: "READ FAULT", kind: "read-fault" },
  { bit: 0x08, name: "WRITE FAULT", kind: "write-fault" },
  { bit: 0x04, name: "NO PTE FOR IOVA", kind: "no-pte" },
  { bit: 0x02, name: "NO PMD FOR IOVA", kind: "no-pmd" },
  { bit: 0x01, name: "NO TTBR FOR IOVA", kind: "no-ttbr" },
];

const T8110_CODES: readonly DartErrorCode[] = [
  { bit: 0x20, name: "READ FAULT", kind: "read-fault" },
  { bit: 0x10, name: "WRITE FAULT", kind: "write-fault" },
  { bit: 0x08, name: "NO PTE FOR IOVA", kind: "no-pte" },
  { bit: 0x04, name: "NO PMD FOR IOVA", kind: "no-pmd" },
  { bit: 0x02, name: "NO PGD FOR IOVA", kind: "no-pgd" },
  { bit: 0x01, name: "NO TTBR FOR IOVA", kind: "no-ttbr" },
];

const T8020_REGS = {
  lock: 0x60,
  lockBit: 0x8000,
  enableStreams: 0xfc,
  error: 0x40,
  errorAddrLo: 0x50,
  errorAddrHi: 0x54,
  errorStreamShift: 24,
  errorStreamMask: 0xf,
  errorCodeMask: 0xfff,
  errorCodes: T8020_CODES,
  tcrBase: 0x100,
  tcrEnabled: 0x80,
  tcrDisabled: 0,
  tcrBypass: 0x1100,
  tcrFourLevel: 0,
  ttbrBase: 0x200,
  ttbrStride: 16,
  ttbrCount: 4,
  ttbrValid: 0x8000_0000,
  ttbrShift: 12,
  ttbrAddrFieldShift: 0,
} as const;

/**
 * `apple_dart_hw_t8103`: M1, DART1 PTEs, 36-bit output (`apple,t8103-dart`).
 *
 * @example
 * ```ts
 * DART_HW_T8103.tcrEnabled; // 0x80, TCR.TRANSLATE_ENABLE
 * ```
 */
export const DART_HW_T8103: DartHw = {
  type: "t8020",
  fmt: "apple-dart",
  ias: 32,
  oas: 36,
  maxSidCount: 16,
  ...T8020_REGS,
};

/** `apple_dart_hw_t6000`: M1 Pro/Max, T8020 registers with DART2 PTEs and 42-bit output (`apple,t6000-dart`). */
export const DART_HW_T6000: DartHw = {
  type: "t6000",
  fmt: "apple-dart2",
  ias: 32,
  oas: 42,
  maxSidCount: 16,
  ...T8020_REGS,
};

/** `apple_dart_hw_t8110`: M2 and later; widths and stream count come from PARAMS3/4 (`apple,t8110-dart`). */
export const DART_HW_T8110: DartHw = {
  type: "t8110",
  fmt: "apple-dart2",
  ias: 0,
  oas: 0,
  maxSidCount: 0,
  lock: 0x200,
  lockBit: 0x1,
  enableStreams: 0xc00,
  error: 0x100,
  errorAddrLo: 0x170,
  errorAddrHi: 0x174,
  errorStreamShift: 20,
  errorStreamMask: 0xff,
  errorCodeMask: 0x7fff,
  errorCodes: T8110_CODES,
  tcrBase: 0x1000,
  tcrEnabled: 0x1,
  tcrDisabled: 0,
  tcrBypass: 0x6,
  tcrFourLevel: 0x8,
  ttbrBase: 0x1400,
  ttbrStride: 4,
  ttbrCount: 1,
  ttbrValid: 0x1,
  ttbrShift: 14,
  ttbrAddrFieldShift: 2,
};

/**
 * The TTBR register value for a table at `pa` (`apple_dart_hw_set_ttbr`): VALID plus the
 * address shifted into its field. Numbers only: `pa` may exceed 2^32.
 *
 * **Invariants:** `pa` is aligned to `2^hw.ttbrShift` (io-pgtable's tables are page-aligned).
 *
 * **Errors:** `EINVAL` for a `hw` that is not an object or `pa` that is not an address.
 *
 * @example
 * ```ts
 * dartTtbrValue(DART_HW_T8103, 0x8_0001_0000); // 0x8080_0010
 * dartTtbrValue(DART_HW_T8110, 0x8_0001_0000); // 0x0080_0011
 * ```
 */
export function dartTtbrValue(hw: DartHw, pa: number): number {
  checkObject("dartTtbrValue", "hw", hw);
  checkAddress("dartTtbrValue", "pa", pa);
  const field = Math.floor(pa / 2 ** hw.ttbrShift) * 2 ** hw.ttbrAddrFieldShift;
  return (hw.ttbrValid | field) >>> 0;
}
