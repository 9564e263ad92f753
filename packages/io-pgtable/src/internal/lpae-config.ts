//! The configuration half of drivers/iommu/io-pgtable-arm.c: granule choice, clamping,
//! geometry, stage-2 concatenation and the register fields.

import { DevrefError } from "@devref/raw-device";
import {
  IO_PGTABLE_QUIRK_ARM_HD,
  IO_PGTABLE_QUIRK_ARM_NS,
  IO_PGTABLE_QUIRK_ARM_OUTER_WBWA,
  IO_PGTABLE_QUIRK_ARM_S2FWB,
  IO_PGTABLE_QUIRK_ARM_TTBR1,
  IO_PGTABLE_QUIRK_NO_WARN,
} from "../constants.js";
import type { ArmLpaeTcr, ArmLpaeVtcr, IoPgtableConfig, LpaeGeometry } from "../types.js";
import { checkConfig } from "./args.js";
import { and53, bitmapHas, highestBit, lowestBit } from "./bits.js";

const SZ_4K = 0x1000;
const SZ_16K = 0x4000;
const SZ_64K = 0x1_0000;
const SZ_2M = 0x20_0000;
const SZ_32M = 0x200_0000;
const SZ_512M = 0x2000_0000;
const SZ_1G = 0x4000_0000;
const SZ_4T = 2 ** 42;

const S1_QUIRKS =
  IO_PGTABLE_QUIRK_ARM_NS |
  IO_PGTABLE_QUIRK_ARM_TTBR1 |
  IO_PGTABLE_QUIRK_ARM_OUTER_WBWA |
  IO_PGTABLE_QUIRK_ARM_HD |
  IO_PGTABLE_QUIRK_NO_WARN;
const S2_QUIRKS = IO_PGTABLE_QUIRK_ARM_S2FWB | IO_PGTABLE_QUIRK_NO_WARN;

/** PS/IPS encoding by output size; any other oas is rejected. */
const PS_BY_OAS: Readonly<Record<number, number>> = {
  32: 0,
  36: 1,
  40: 2,
  42: 3,
  44: 4,
  48: 5,
  52: 6,
};

/** Everything an LPAE table needs to know, computed without touching memory. */
export interface LpaeSetup {
  readonly stage: 1 | 2;
  readonly pgsizeBitmap: number;
  readonly ias: number;
  readonly oas: number;
  readonly quirks: number;
  readonly coherentWalk: boolean;
  readonly geometry: LpaeGeometry;
  readonly tcr: ArmLpaeTcr | null;
  readonly vtcr: ArmLpaeVtcr | null;
}

function fail(message: string): never {
  throw new DevrefError("EINVAL", message);
}

/**
 * Normalises an LPAE configuration as the kernel's allocation does and derives the table
 * shape; throws `EINVAL` wherever the kernel's allocation returns null.
 */
export function setupLpae(stage: 1 | 2, cfg: IoPgtableConfig, where: string): LpaeSetup {
  checkConfig(where, cfg);
  const quirks = cfg.quirks ?? 0;
  const coherentWalk = cfg.coherentWalk ?? true;
  const allowed = stage === 1 ? S1_QUIRKS : S2_QUIRKS;
  if ((quirks & ~allowed) !== 0) {
    fail(
      `quirks 0x${quirks.toString(16)} include bits stage ${stage} does not accept ` +
        `(0x${(quirks & ~allowed).toString(16)}); stage ${stage} accepts 0x${allowed.toString(16)}`,
    );
  }

  // Granule: the host page size if offered, else the largest smaller size, else the next larger.
  const page = cfg.hostPageSize ?? SZ_4K;
  const bitmap = cfg.pgsizeBitmap;
  let granule: number;
  if (bitmapHas(bitmap, page)) granule = page;
  else if (bitmap % page !== 0) granule = highestBit(bitmap % page);
  else granule = lowestBit(bitmap);

  let sizes: number;
  let maxBits = 48;
  if (granule === SZ_4K) sizes = SZ_4K + SZ_2M + SZ_1G;
  else if (granule === SZ_16K) sizes = SZ_16K + SZ_32M;
  else if (granule === SZ_64K) {
    maxBits = 52;
    sizes = SZ_64K + SZ_512M + (cfg.oas > 48 ? SZ_4T : 0);
  } else sizes = 0;

  const pgsizeBitmap = and53(bitmap, sizes);
  const ias = Math.min(cfg.ias, maxBits);
  const oas = Math.min(cfg.oas, maxBits);
  if (
    !(
      bitmapHas(pgsizeBitmap, SZ_4K) ||
      bitmapHas(pgsizeBitmap, SZ_16K) ||
      bitmapHas(pgsizeBitmap, SZ_64K)
    )
  ) {
    fail(
      `pgsizeBitmap 0x${bitmap.toString(16)} narrows to 0x${pgsizeBitmap.toString(16)}, which holds no ` +
        "4K, 16K or 64K granule: include one of them",
    );
  }

  const pgShift = Math.log2(lowestBit(pgsizeBitmap));
  const bpl = pgShift - 3;
  const vaBits = ias - pgShift;
  if (vaBits < 1) {
    fail(
      `ias ${ias} leaves no index bits above the ${2 ** pgShift}-byte granule: use ias > ${pgShift}`,
    );
  }
  const levels = Math.ceil(vaBits / bpl);
  if (levels > 4) fail(`ias ${ias} needs ${levels} levels; LPAE walks at most 4`);
  let startLevel = 4 - levels;
  let pgdBits = vaBits - bpl * (levels - 1);
  let concatenated = false;

  if (stage === 2) {
    let mandatory = false;
    if (granule === SZ_16K && startLevel === 0) mandatory = oas === 48 || ias === 48;
    else if (granule === SZ_4K && startLevel === 0) mandatory = oas === 40 || oas === 42;
    else mandatory = granule === SZ_16K && startLevel === 1 && oas === 40;
    if (mandatory) {
      if (2 ** pgdBits > 16) {
        fail(
          `stage 2 with a ${granule / 1024}K granule, ias ${ias} and oas ${oas} needs a concatenated root, ` +
            `but ${2 ** pgdBits} tables exceed the architectural limit of 16: lower ias`,
        );
      }
      pgdBits += bpl;
      startLevel++;
      concatenated = true;
    }
  }

  let sh: number;
  let irgn: number;
  let orgn: number;
  if (coherentWalk) {
    if (stage === 1 && (quirks & IO_PGTABLE_QUIRK_ARM_OUTER_WBWA) !== 0) {
      fail(
        "IO_PGTABLE_QUIRK_ARM_OUTER_WBWA only applies to non-coherent walks: drop it or set coherentWalk false",
      );
    }
    sh = 3;
    irgn = 1;
    orgn = 1;
  } else {
    sh = 2;
    irgn = 0;
    orgn = stage === 1 && (quirks & IO_PGTABLE_QUIRK_ARM_OUTER_WBWA) !== 0 ? 1 : 0;
  }

  const tg0 = granule === SZ_4K ? 0 : granule === SZ_64K ? 1 : 2;
  const tg1 = granule === SZ_16K ? 1 : granule === SZ_4K ? 2 : 3;
  const ps = PS_BY_OAS[oas];
  if (ps === undefined) fail(`oas ${oas} must be one of 32, 36, 40, 42, 44, 48 or 52`);
  const tsz = 64 - ias;

  const rootEntries = 2 ** pgdBits;
  const geometry: LpaeGeometry = {
    granule,
    bitsPerLevel: bpl,
    levels: 4 - startLevel,
    startLevel,
    pgdBits,
    rootEntries,
    rootBytes: Math.max(rootEntries * 8, 64),
    concatenated,
  };

  let tcr: ArmLpaeTcr | null = null;
  let vtcr: ArmLpaeVtcr | null = null;
  if (stage === 1) {
    const tg = (quirks & IO_PGTABLE_QUIRK_ARM_TTBR1) !== 0 ? tg1 : tg0;
    tcr = { ips: ps, tg, sh, orgn, irgn, tsz };
  } else {
    // SL0 counts differently for the 4K granule; the two-bit field wraps for a level-3 start.
    const s = granule === SZ_4K ? startLevel + 1 : startLevel;
    vtcr = { ps, tg: tg0, sh, orgn, irgn, sl: ~s & 3, tsz };
  }
  return { stage, pgsizeBitmap, ias, oas, quirks, coherentWalk, geometry, tcr, vtcr };
}

/** The S1 MAIR value, sign-extended as the kernel's int arithmetic leaves it. */
export const LPAE_MAIR: { readonly lo: number; readonly hi: number } = Object.freeze({
  lo: 0xf404ff44,
  hi: 0xffffffff,
});
