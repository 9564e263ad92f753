//! C header: include/linux/io-pgtable.h (struct io_pgtable_cfg, struct iommu_flush_ops)

import type { Iova, PhysAddr } from "@devref/raw-device";
import type { IoPgtableFormat } from "./constants.js";

/**
 * An input address: a branded number, or a `bigint` for addresses a number cannot hold
 * exactly (the sign-extended upper half used with `IO_PGTABLE_QUIRK_ARM_TTBR1`).
 *
 * A `bigint` is taken modulo 2^64, so `-0x1000n` names the last 4 KiB page of the space.
 */
export type IovaArg = Iova | bigint;

/** A 64-bit value as two unsigned 32-bit halves. */
export interface Word64 {
  /** Bits 31:0. */
  readonly lo: number;
  /** Bits 63:32. */
  readonly hi: number;
}

/**
 * What io-pgtable needs of the driver's TLB gather: whether invalidations are deferred to a
 * flush queue (then io-pgtable skips `tlbAddPage`).
 *
 * //! C header: include/linux/iommu.h (struct iommu_iotlb_gather)
 */
export interface IommuIotlbGather {
  readonly queued: boolean;
}

/**
 * The driver's TLB maintenance callbacks. Every one is optional, as in the kernel, where a
 * missing callback is skipped.
 *
 * **Invariants:** `iova` is a number except for tables with `IO_PGTABLE_QUIRK_ARM_TTBR1`,
 * where it is the full 64-bit `bigint`. Every callback receives the `cookie` given in the
 * configuration.
 *
 * //! C header: include/linux/io-pgtable.h (struct iommu_flush_ops)
 */
export interface IommuFlushOps {
  /** Invalidate everything for this context (called when the table is disposed). */
  tlbFlushAll?(cookie: unknown): void;
  /** Invalidate walk-cache state for `[iova, iova + size)` before tables there are freed. */
  tlbFlushWalk?(iova: IovaArg, size: number, granule: number, cookie: unknown): void;
  /** Queue the invalidation of one leaf of `granule` bytes at `iova`. */
  tlbAddPage?(
    gather: IommuIotlbGather | null,
    iova: IovaArg,
    granule: number,
    cookie: unknown,
  ): void;
}

/**
 * The caller's side of `struct io_pgtable_cfg`: what to build.
 *
 * **Invariants:** all numbers are whole; `pgsizeBitmap` is a set of power-of-two sizes.
 *
 * **Errors:** `allocIoPgtable` fails with `EINVAL` where the kernel's allocation returns null.
 */
export interface IoPgtableConfig {
  /** Page and block sizes the caller supports; the format narrows it. */
  readonly pgsizeBitmap: number;
  /** Input (IOVA) address bits. */
  readonly ias: number;
  /** Output (physical) address bits. */
  readonly oas: number;
  /** `IO_PGTABLE_QUIRK_*` bits; default 0. */
  readonly quirks?: number;
  /** Whether the walker snoops CPU caches; default `true`. DART requires `true`. */
  readonly coherentWalk?: boolean;
  /** TLB callbacks; none by default (the Apple DART driver passes none). */
  readonly tlb?: IommuFlushOps | null;
  /** Passed to every TLB callback; default `undefined`. */
  readonly cookie?: unknown;
  /** The CPU page size the LPAE granule choice prefers (the kernel's PAGE_SIZE); default 4096. */
  readonly hostPageSize?: number;
  /**
   * Models the cache clean a non-coherent walk needs after each table write; called with the
   * first byte and length written. Only used when `coherentWalk` is `false`.
   */
  readonly cacheClean?: ((pa: PhysAddr, bytes: number) => void) | null;
}

/** The fields every format writes back, as `alloc_io_pgtable_ops` does to the caller's cfg. */
export interface IoPgtableCfgBase {
  readonly format: IoPgtableFormat;
  /** The narrowed page-size bitmap. */
  readonly pgsizeBitmap: number;
  /** The (possibly clamped) input address size. */
  readonly ias: number;
  /** The (possibly clamped) output address size. */
  readonly oas: number;
  readonly quirks: number;
  readonly coherentWalk: boolean;
}

/** The LPAE table shape derived from the configuration. */
export interface LpaeGeometry {
  /** 4096, 16384 or 65536. */
  readonly granule: number;
  readonly bitsPerLevel: number;
  /** Levels walked, counting from `startLevel` to 3. */
  readonly levels: number;
  /** The level of the root table (0–3), after any stage-2 concatenation. */
  readonly startLevel: number;
  /** Index bits at the root level. */
  readonly pgdBits: number;
  /** Entries in the root table. */
  readonly rootEntries: number;
  /** Bytes allocated for the root: `max(8 · rootEntries, 64)`. */
  readonly rootBytes: number;
  /** Whether the stage-2 root is a concatenation of tables. */
  readonly concatenated: boolean;
}

/** Stage-1 TCR fields (a record of fields, not a register), as `arm_lpae_s1_cfg.tcr`. */
export interface ArmLpaeTcr {
  readonly ips: number;
  readonly tg: number;
  readonly sh: number;
  readonly orgn: number;
  readonly irgn: number;
  readonly tsz: number;
}

/** Stage-2 VTCR fields, as `arm_lpae_s2_cfg.vtcr`. */
export interface ArmLpaeVtcr {
  readonly ps: number;
  readonly tg: number;
  readonly sh: number;
  readonly orgn: number;
  readonly irgn: number;
  readonly sl: number;
  readonly tsz: number;
}

/** The written-back configuration of an `arm-64-lpae-s1` table. */
export interface ArmLpaeS1Cfg extends IoPgtableCfgBase {
  readonly format: "arm-64-lpae-s1";
  readonly geometry: LpaeGeometry;
  readonly armLpaeS1Cfg: {
    /** Physical address of the root table; no ASID. */
    readonly ttbr: PhysAddr;
    readonly tcr: ArmLpaeTcr;
    /** `0xFFFF_FFFF_F404_FF44`: sign-extended, as the kernel computes it. */
    readonly mair: Word64;
  };
}

/** The written-back configuration of an `arm-64-lpae-s2` table. */
export interface ArmLpaeS2Cfg extends IoPgtableCfgBase {
  readonly format: "arm-64-lpae-s2";
  readonly geometry: LpaeGeometry;
  readonly armLpaeS2Cfg: {
    /** Physical address of the (possibly concatenated) root table. */
    readonly vttbr: PhysAddr;
    readonly vtcr: ArmLpaeVtcr;
  };
}

/** The DART table shape derived from the configuration. */
export interface DartGeometry {
  /** The DART page size: 4096 or 16384. */
  readonly pgsize: number;
  readonly bitsPerLevel: number;
  /** Table levels below the TTBR level (2 or 3). */
  readonly levels: number;
  /** Bits of the TTBR index (0–2). */
  readonly tblBits: number;
}

/** The written-back configuration of an `apple-dart` or `apple-dart2` table. */
export interface AppleDartCfg extends IoPgtableCfgBase {
  readonly format: "apple-dart" | "apple-dart2";
  readonly geometry: DartGeometry;
  readonly appleDartCfg: {
    /** Physical address of each top-level table, one page each. */
    readonly ttbr: readonly PhysAddr[];
    readonly nTtbrs: number;
    /** Levels including the TTBR level: 3 or 4. */
    readonly nLevels: number;
  };
}

/** The two ARM LPAE formats. */
export type ArmLpaeFormat = "arm-64-lpae-s1" | "arm-64-lpae-s2";

/**
 * The written-back configuration of an LPAE table of format `F`: `ArmLpaeS1Cfg` for stage 1,
 * `ArmLpaeS2Cfg` for stage 2, their union when the format is not known statically.
 */
export type ArmLpaeCfgOf<F extends ArmLpaeFormat> = F extends "arm-64-lpae-s1"
  ? ArmLpaeS1Cfg
  : ArmLpaeS2Cfg;

/** Any written-back configuration; narrow on `format`. */
export type IoPgtableCfg = ArmLpaeS1Cfg | ArmLpaeS2Cfg | AppleDartCfg;

/** One mapping found in a table: a leaf descriptor and what it means. */
export interface IoPgtableMapping {
  /** First input address; a `bigint` for TTBR1 tables. */
  readonly iova: IovaArg;
  /** Bytes covered by the leaf. */
  readonly size: number;
  /** First output address. */
  readonly pa: PhysAddr;
  /** Absolute level of the leaf (LPAE 1–3; DART counts the leaf level as `levels`). */
  readonly level: number;
  /** The permissions and attributes decoded back into `IOMMU_*` bits. */
  readonly prot: number;
  /** The raw descriptor. */
  readonly desc: Word64;
}
