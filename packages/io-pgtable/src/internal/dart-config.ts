//! The configuration half of drivers/iommu/io-pgtable-dart.c (multi-level revision).

import { DevrefError } from "@devref/raw-device";
import type { DartGeometry, IoPgtableConfig } from "../types.js";
import { checkConfig } from "./args.js";

/** A DART table shape plus the values written back to the caller. */
export interface DartSetup {
  readonly dart2: boolean;
  readonly pgsizeBitmap: number;
  readonly ias: number;
  readonly oas: number;
  readonly quirks: number;
  readonly geometry: DartGeometry;
  readonly nTtbrs: number;
  readonly nLevels: number;
}

function fail(message: string): never {
  throw new DevrefError("EINVAL", message);
}

/**
 * Checks a DART configuration as the kernel's allocation does and derives the shape; throws
 * `EINVAL` wherever the kernel returns null (and for DART2 with 4K pages, see below).
 */
export function setupDart(dart2: boolean, cfg: IoPgtableConfig, where: string): DartSetup {
  checkConfig(where, cfg);
  if (cfg.coherentWalk === false)
    fail("DART tables need coherentWalk true: the format does no cache maintenance");
  if (cfg.oas !== 36 && cfg.oas !== 42)
    fail(`oas ${cfg.oas} must be 36 (T8020) or 42 (T6000, T8110)`);
  if (cfg.ias > cfg.oas) fail(`ias ${cfg.ias} must not exceed oas ${cfg.oas}`);
  const pgsize = cfg.pgsizeBitmap;
  if (pgsize !== 0x1000 && pgsize !== 0x4000) {
    fail(
      `pgsizeBitmap 0x${pgsize.toString(16)} must be exactly 0x1000 (4K) or 0x4000 (16K): DART has no blocks`,
    );
  }
  if (dart2 && pgsize === 0x1000) {
    // The DART2 address field starts at PA bit 14, so 4K pages and 4K-aligned tables lose
    // address bits; the kernel accepts this and then corrupts its own walks.
    fail(
      "apple-dart2 with 4K pages cannot encode PA bits 13:12 in its descriptors: use a 16K pgsizeBitmap",
    );
  }
  const g = pgsize === 0x1000 ? 12 : 14;
  const bpl = g - 3;
  const vaBits = cfg.ias - g;
  const maxTblBits = pgsize === 0x1000 ? 2 : 0;
  const levels = Math.max(2, Math.floor((vaBits - maxTblBits + bpl - 1) / bpl));
  if (levels > 3)
    fail(`ias ${cfg.ias} needs ${levels} table levels below the TTBRs; DART walks at most 3`);
  const tblBits = Math.max(0, vaBits - bpl * levels);
  if (tblBits > maxTblBits) {
    fail(
      `ias ${cfg.ias} needs ${2 ** tblBits} TTBRs; a ${pgsize / 1024}K DART has at most ${2 ** maxTblBits}`,
    );
  }
  return {
    dart2,
    pgsizeBitmap: pgsize,
    ias: cfg.ias,
    oas: cfg.oas,
    quirks: cfg.quirks ?? 0,
    geometry: { pgsize, bitsPerLevel: bpl, levels, tblBits },
    nTtbrs: 2 ** tblBits,
    nLevels: levels + 1,
  };
}
