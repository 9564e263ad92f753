//! C source: drivers/iommu/apple-dart.c (register offsets and fields, `DART_*`)
//!
//! Register map of the Apple DART variants (specs/sim-hardware.md §1.2–§1.6).

/** Register offsets and fields common to every variant. */
export const DART_PARAMS1 = 0x00;
/** `PARAMS1`: bit position of the page shift field. */
export const DART_PARAMS1_PAGE_SHIFT = 24;
/** Offset of the `PARAMS2` register. */
export const DART_PARAMS2 = 0x04;
/** `PARAMS2`: the DART can bypass translation. */
export const DART_PARAMS2_BYPASS_SUPPORT = 0x1;

/** `ERROR.FLAG`: an error is latched (both families). */
export const DART_ERROR_FLAG = 0x8000_0000;

/** T8020 / T6000 register map. */
export const DART_T8020 = {
  STREAM_COMMAND: 0x20,
  STREAM_COMMAND_BUSY: 0x4,
  STREAM_COMMAND_INVALIDATE: 0x100000,
  STREAM_SELECT: 0x34,
  ERROR: 0x40,
  ERROR_STREAM_SHIFT: 24,
  ERROR_STREAM_MASK: 0xf,
  ERROR_CODE_MASK: 0xfff,
  ERROR_ADDR_LO: 0x50,
  ERROR_ADDR_HI: 0x54,
  CONFIG: 0x60,
  CONFIG_LOCK: 0x8000,
  STREAMS_ENABLE: 0xfc,
  TCR: 0x100,
  TCR_TRANSLATE_ENABLE: 0x80,
  TCR_BYPASS_DART: 0x100,
  TCR_BYPASS_DAPF: 0x1000,
  TTBR: 0x200,
  TTBR_VALID: 0x8000_0000,
  TTBR_ADDR_MASK: 0x7fff_ffff,
  TTBR_SHIFT: 12,
  /** Error code bits. */
  ERR_NO_TTBR: 0x1,
  ERR_NO_PMD: 0x2,
  ERR_NO_PTE: 0x4,
  ERR_WRITE_FAULT: 0x8,
  ERR_READ_FAULT: 0x10,
  /** m1n1's name; set only in the model's strict subpage mode. */
  ERR_SUBPAGE_PROT: 0x80,
} as const;

/** T8110 register map. */
export const DART_T8110 = {
  PARAMS3: 0x08,
  PARAMS3_PA_WIDTH_SHIFT: 24,
  PARAMS3_VA_WIDTH_SHIFT: 16,
  PARAMS4: 0x0c,
  PARAMS4_NUM_CLIENTS_SHIFT: 16,
  TLB_CMD: 0x80,
  TLB_CMD_BUSY: 0x8000_0000,
  TLB_CMD_OP_SHIFT: 8,
  TLB_CMD_OP_MASK: 0x7,
  TLB_CMD_OP_FLUSH_ALL: 0,
  TLB_CMD_OP_FLUSH_SID: 1,
  TLB_CMD_STREAM_MASK: 0xff,
  ERROR: 0x100,
  ERROR_STREAM_SHIFT: 20,
  ERROR_STREAM_MASK: 0xff,
  ERROR_CODE_MASK: 0x7fff,
  /** m1n1's `SECONDARY`: another fault arrived while one was latched. */
  ERROR_SECONDARY: 0x80000,
  ERROR_MASK: 0x104,
  ERROR_ADDR_LO: 0x170,
  ERROR_ADDR_HI: 0x174,
  /**
   * Per-stream error indicator bits, W1C, one word per 32 streams (the kernel's
   * `DART_T8110_ERROR_STREAMS`, upstream ecf6508923f8; m1n1's `ERR_SECONDARY`).
   */
  ERROR_STREAMS: 0x1c0,
  PROTECT: 0x200,
  UNPROTECT: 0x204,
  PROTECT_LOCK: 0x208,
  PROTECT_TTBR_TCR: 0x1,
  ENABLE_STREAMS: 0xc00,
  DISABLE_STREAMS: 0xc20,
  TCR: 0x1000,
  TCR_TRANSLATE_ENABLE: 0x1,
  TCR_BYPASS_DART: 0x2,
  TCR_BYPASS_DAPF: 0x4,
  TCR_FOUR_LEVEL: 0x8,
  TCR_REMAP_EN: 0x80,
  TCR_REMAP_MASK: 0xf00,
  TTBR: 0x1400,
  TTBR_VALID: 0x1,
  TTBR_ADDR_SHIFT: 2,
  TTBR_ADDR_MASK: 0x0fff_ffff,
  TTBR_SHIFT: 14,
  ERR_NO_TTBR: 0x1,
  ERR_NO_PGD: 0x2,
  ERR_NO_PMD: 0x4,
  ERR_NO_PTE: 0x8,
  ERR_WRITE_FAULT: 0x10,
  ERR_READ_FAULT: 0x20,
} as const;

/** PTE bits of the two formats (specs/io-pgtable.md §3.3). */
export const DART_PTE = {
  VALID: 0x1,
  /** DART1 */
  DART1_NO_WRITE: 0x80,
  DART1_NO_READ: 0x100,
  /** DART2 */
  DART2_NO_WRITE: 0x4,
  DART2_NO_READ: 0x8,
} as const;
