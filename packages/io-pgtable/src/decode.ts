//! Reading tables back: a decoder for memory images and a readable dump. Table contents are
//! untrusted here, so every walk is bounded and every address is checked before it is read.

import { DevrefError, type Iova, type PhysAddr, type PhysicalMemory } from "@devref/raw-device";
import {
  IO_PGTABLE_QUIRK_ARM_S2FWB,
  IO_PGTABLE_QUIRK_ARM_TTBR1,
  IOMMU_CACHE,
  IOMMU_MMIO,
  IOMMU_NOEXEC,
  IOMMU_PRIV,
  IOMMU_READ,
  IOMMU_WRITE,
  type IoPgtableFormat,
} from "./constants.js";
import { hex64, hexAddr, sizeName, TWO32 } from "./internal/bits.js";
import { setupDart } from "./internal/dart-config.js";
import { setupLpae } from "./internal/lpae-config.js";
import type { IoPgtableConfig, IoPgtableMapping, IovaArg } from "./types.js";

/** Limits for walking a table whose contents may be garbage. */
export interface DecodeOptions {
  /** Most tables to visit, root included; default 65536. */
  readonly maxTables?: number;
  /** Most mappings to report; default 2^22. */
  readonly maxMappings?: number;
}

interface Visitor {
  table(level: number, index: number, iova: IovaArg, span: number, pa: number, depth: number): void;
  leaf(m: IoPgtableMapping, index: number, depth: number): void;
  invalid(
    level: number,
    index: number,
    iova: IovaArg,
    hi: number,
    lo: number,
    why: string,
    depth: number,
  ): void;
}

interface Budget {
  tables: number;
  mappings: number;
  readonly maxTables: number;
  readonly maxMappings: number;
}

function budgetOf(options: DecodeOptions | undefined): Budget {
  const maxTables = options?.maxTables ?? 65536;
  const maxMappings = options?.maxMappings ?? 2 ** 22;
  if (
    !(
      Number.isSafeInteger(maxTables) &&
      maxTables > 0 &&
      Number.isSafeInteger(maxMappings) &&
      maxMappings >= 0
    )
  ) {
    throw new DevrefError(
      "EINVAL",
      "maxTables must be a positive whole number and maxMappings a whole number",
    );
  }
  return { tables: 0, mappings: 0, maxTables, maxMappings };
}

function countTable(b: Budget): void {
  if (++b.tables > b.maxTables) {
    throw new DevrefError(
      "E2BIG",
      `the walk reached more than ${b.maxTables} tables: the image is corrupt or larger than expected; raise maxTables to walk it`,
    );
  }
}

function countMapping(b: Budget): void {
  if (++b.mappings > b.maxMappings) {
    throw new DevrefError(
      "E2BIG",
      `more than ${b.maxMappings} mappings: raise maxMappings to list them all`,
    );
  }
}

function readTable(mem: PhysicalMemory, pa: number, bytes: number): Uint32Array {
  const buf = new Uint8Array(bytes);
  mem.readBytes(pa, buf);
  return new Uint32Array(buf.buffer);
}

function checkRoot(mem: PhysicalMemory, pa: unknown, bytes: number): number {
  if (
    typeof pa !== "number" ||
    !Number.isSafeInteger(pa) ||
    pa < 0 ||
    pa % 8 !== 0 ||
    pa + bytes > mem.size
  ) {
    throw new DevrefError(
      "EINVAL",
      `root table address ${String(pa)} must be a whole, 8-byte aligned address with ${bytes} bytes inside memory of size ${mem.size}`,
    );
  }
  return pa;
}

function walkLpae(
  mem: PhysicalMemory,
  format: IoPgtableFormat,
  cfg: IoPgtableConfig,
  root: unknown,
  v: Visitor,
  b: Budget,
): void {
  const stage = format === "arm-64-lpae-s1" ? 1 : 2;
  const setup = setupLpae(stage, cfg);
  const g = setup.geometry;
  const bpl = g.bitsPerLevel;
  const big64K = g.granule === 0x1_0000;
  const ttbr1 = stage === 1 && (setup.quirks & IO_PGTABLE_QUIRK_ARM_TTBR1) !== 0;
  const fwb = (setup.quirks & IO_PGTABLE_QUIRK_ARM_S2FWB) !== 0;
  const upper = ttbr1 ? 2n ** 64n - 2n ** BigInt(setup.ias) : 0n;
  // SAFETY: without TTBR1 an offset into the walked range is an input address below 2^ias.
  const addr = (off: number): IovaArg => (ttbr1 ? upper + BigInt(off) : (off as Iova));
  const decode = (hi: number, lo: number): number => {
    const xlo = (lo & 0xffff_f000) >>> 0;
    const xhi = hi & 0xffff;
    if (!big64K) return xhi * TWO32 + xlo;
    return (xhi | (((xlo >>> 12) & 0xf) << 16)) * TWO32 + ((xlo & 0xffff_0000) >>> 0);
  };
  const protOf = (hi: number, lo: number): number => {
    let prot = 0;
    const sh = (lo >>> 8) & 3;
    if (stage === 1) {
      prot |= IOMMU_READ;
      if ((lo & (1 << 7)) === 0) prot |= IOMMU_WRITE;
      if ((lo & (1 << 6)) === 0) prot |= IOMMU_PRIV;
      const idx = (lo >>> 2) & 7;
      if (idx === 2) prot |= IOMMU_MMIO;
      if (idx === 1 || (idx === 2 && sh === 3)) prot |= IOMMU_CACHE;
    } else {
      if ((lo & (1 << 6)) !== 0) prot |= IOMMU_READ;
      if ((lo & (1 << 7)) !== 0) prot |= IOMMU_WRITE;
      const attr = (lo >>> 2) & 0xf;
      if (attr === 1) prot |= IOMMU_MMIO;
      if (attr === (fwb ? 0x6 : 0xf) || (attr === 1 && sh === 3)) prot |= IOMMU_CACHE;
    }
    if (((hi >>> 21) & 3) === 3) prot |= IOMMU_NOEXEC;
    return prot;
  };

  const walk = (pa: number, level: number, entries: number, base: number, depth: number): void => {
    countTable(b);
    const words = readTable(mem, pa, entries * 8);
    const shift = (4 - level) * bpl + 3;
    const block = 2 ** shift;
    for (let i = 0; i < entries; i++) {
      const lo = words[2 * i]!;
      const hi = words[2 * i + 1]!;
      if (lo === 0 && hi === 0) continue;
      const off = base + i * block;
      const type = lo & 3;
      if (level === 3 ? type === 3 : type === 1) {
        countMapping(b);
        // SAFETY: a decoded LPAE address is below 2^52.
        const out = decode(hi, lo) as PhysAddr;
        v.leaf(
          { iova: addr(off), size: block, pa: out, level, prot: protOf(hi, lo), desc: { lo, hi } },
          i,
          depth,
        );
      } else if (level < 3 && type === 3) {
        const next = decode(hi, lo);
        if (next + g.granule > mem.size) {
          v.invalid(level, i, addr(off), hi, lo, "table outside memory", depth);
          continue;
        }
        v.table(level, i, addr(off), block, next, depth);
        walk(next, level + 1, g.granule / 8, off, depth + 1);
      } else {
        v.invalid(level, i, addr(off), hi, lo, "neither table nor leaf", depth);
      }
    }
  };
  walk(checkRoot(mem, root, g.rootEntries * 8), g.startLevel, g.rootEntries, 0, 0);
}

function walkDart(
  mem: PhysicalMemory,
  format: IoPgtableFormat,
  cfg: IoPgtableConfig,
  roots: unknown,
  v: Visitor,
  b: Budget,
): void {
  const dart2 = format === "apple-dart2";
  const setup = setupDart(dart2, cfg);
  const geo = setup.geometry;
  const g = Math.log2(geo.pgsize);
  const ept = geo.pgsize / 8;
  if (!Array.isArray(roots) || roots.length !== setup.nTtbrs) {
    throw new DevrefError(
      "EINVAL",
      `a DART table with this configuration has ${setup.nTtbrs} TTBR table(s): pass that many root addresses`,
    );
  }
  const decode = (hi: number, lo: number): number =>
    dart2
      ? ((hi & 0x3f) * TWO32 + ((lo & 0xffff_fc00) >>> 0)) * 16
      : (hi & 0xf) * TWO32 + ((lo & 0xffff_f000) >>> 0);
  const protOf = (lo: number): number => {
    let prot = 0;
    if (dart2) {
      if ((lo & (1 << 3)) === 0) prot |= IOMMU_READ;
      if ((lo & (1 << 2)) === 0) prot |= IOMMU_WRITE;
      if ((lo & (1 << 1)) === 0) prot |= IOMMU_CACHE;
    } else {
      if ((lo & (1 << 8)) === 0) prot |= IOMMU_READ;
      if ((lo & (1 << 7)) === 0) prot |= IOMMU_WRITE;
    }
    return prot;
  };
  // Depth 1 is a top (TTBR) table; depth `levels` holds the leaves.
  const walk = (pa: number, depth: number, base: number): void => {
    countTable(b);
    const words = readTable(mem, pa, geo.pgsize);
    const span = 2 ** (g + (geo.levels - depth) * geo.bitsPerLevel);
    for (let i = 0; i < ept; i++) {
      const lo = words[2 * i]!;
      const hi = words[2 * i + 1]!;
      if (lo === 0 && hi === 0) continue;
      const off = base + i * span;
      // SAFETY: DART input addresses below 2^(ias rounded to its index fields) are below 2^53.
      const at = off as Iova;
      if (depth === geo.levels) {
        countMapping(b);
        // SAFETY: a decoded DART address is below 2^42.
        const out = decode(hi, lo) as PhysAddr;
        v.leaf(
          { iova: at, size: geo.pgsize, pa: out, level: depth, prot: protOf(lo), desc: { lo, hi } },
          i,
          depth - 1,
        );
      } else {
        const next = decode(hi, lo);
        if (next + geo.pgsize > mem.size) {
          v.invalid(depth, i, at, hi, lo, "table outside memory", depth - 1);
          continue;
        }
        v.table(depth, i, at, span, next, depth - 1);
        walk(next, depth + 1, off);
      }
    }
  };
  const ttbrSpan = 2 ** (g + geo.levels * geo.bitsPerLevel);
  roots.forEach((root: unknown, t: number) => {
    walk(checkRoot(mem, root, geo.pgsize), 1, t * ttbrSpan);
  });
}

function walkAny(
  mem: PhysicalMemory,
  format: IoPgtableFormat,
  cfg: IoPgtableConfig,
  root: number | readonly number[],
  v: Visitor,
  options: DecodeOptions | undefined,
): void {
  const b = budgetOf(options);
  if (format === "arm-64-lpae-s1" || format === "arm-64-lpae-s2")
    walkLpae(mem, format, cfg, root, v, b);
  else if (format === "apple-dart" || format === "apple-dart2")
    walkDart(mem, format, cfg, root, v, b);
  else
    throw new DevrefError(
      "EINVAL",
      `unknown format ${String(format)}: use one of arm-64-lpae-s1, arm-64-lpae-s2, apple-dart, apple-dart2`,
    );
}

/**
 * Lists the mappings of a table found in a memory image, given its format, configuration
 * (as passed to `allocIoPgtable`, or the written-back `cfg`) and root address(es): the TTBR or
 * VTTBR for LPAE, the array of TTBR table addresses for DART.
 *
 * **Invariants:** never writes memory; visits at most `maxTables` tables, so garbage cannot
 * make it loop or run away. Entries that are neither tables nor leaves are skipped.
 *
 * **Errors:** `EINVAL` for a configuration the format rejects or a bad root; `E2BIG` when a
 * limit is reached; `EFAULT` (from the memory) for reads outside it.
 *
 * //! C source: drivers/iommu/io-pgtable-arm.c, io-pgtable-dart.c (their walkers)
 *
 * @example
 * ```ts
 * const maps = decodeIoPgtable(memory, "arm-64-lpae-s1", { pgsizeBitmap: 0x40201000, ias: 48, oas: 48 }, ttbr);
 * for (const m of maps) console.log(m.iova, m.size, m.pa);
 * ```
 */
export function decodeIoPgtable(
  memory: PhysicalMemory,
  format: IoPgtableFormat,
  cfg: IoPgtableConfig,
  root: number | readonly number[],
  options?: DecodeOptions,
): IoPgtableMapping[] {
  const out: IoPgtableMapping[] = [];
  walkAny(
    memory,
    format,
    cfg,
    root,
    { table() {}, invalid() {}, leaf: (m) => out.push(m) },
    options,
  );
  return out;
}

/** `IOMMU_*` bits as text, e.g. `RW- cache`. */
export function formatProt(prot: number): string {
  const parts = [
    `${prot & IOMMU_READ ? "R" : "-"}${prot & IOMMU_WRITE ? "W" : "-"}${prot & IOMMU_NOEXEC ? "-" : "X"}`,
  ];
  if (prot & IOMMU_CACHE) parts.push("cache");
  if (prot & IOMMU_MMIO) parts.push("mmio");
  if (prot & IOMMU_PRIV) parts.push("priv");
  return parts.join(" ");
}

/**
 * A readable listing of a table in memory: one line per table and leaf, indented by level,
 * with the input range, output address, size and decoded permissions.
 *
 * **Invariants / Errors:** as {@link decodeIoPgtable}.
 *
 * @example
 * ```ts
 * console.log(dumpIoPgtable(memory, "apple-dart2", { pgsizeBitmap: 0x4000, ias: 32, oas: 42 }, [ttbr0]));
 * ```
 */
export function dumpIoPgtable(
  memory: PhysicalMemory,
  format: IoPgtableFormat,
  cfg: IoPgtableConfig,
  root: number | readonly number[],
  options?: DecodeOptions,
): string {
  const lines: string[] = [];
  const roots = typeof root === "number" ? [root] : root;
  lines.push(
    `${format} pgsize 0x${cfg.pgsizeBitmap.toString(16)} ias ${cfg.ias} oas ${cfg.oas} root ${roots.map((r) => hexAddr(r)).join(", ")}`,
  );
  const range = (iova: IovaArg, span: number): string => {
    const end = typeof iova === "bigint" ? iova + BigInt(span) - 1n : iova + span - 1;
    return `${hexAddr(iova)}..${hexAddr(end)}`;
  };
  const pad = (depth: number): string => "  ".repeat(depth);
  walkAny(
    memory,
    format,
    cfg,
    root,
    {
      table(level, index, iova, span, pa, depth) {
        lines.push(`${pad(depth)}L${level}[${index}] ${range(iova, span)} table ${hexAddr(pa)}`);
      },
      leaf(m, index, depth) {
        lines.push(
          `${pad(depth)}L${m.level}[${index}] ${range(m.iova, m.size)} ${sizeName(m.size)} -> ${hexAddr(m.pa)} ` +
            `${formatProt(m.prot)} desc ${hex64(m.desc.hi, m.desc.lo)}`,
        );
      },
      invalid(level, index, iova, hi, lo, why, depth) {
        lines.push(
          `${pad(depth)}L${level}[${index}] ${hexAddr(iova)} invalid (${why}) desc ${hex64(hi, lo)}`,
        );
      },
    },
    options,
  );
  return lines.join("\n");
}
