//! Reading tables back: a decoder for memory images and a readable dump. Table contents are
//! untrusted here, so every walk is bounded and every address is checked before it is read.

import {
  argumentError,
  checkAddress,
  checkCallback,
  checkCount,
  checkInteger,
  checkObject,
  checkOneOf,
  DevrefError,
  type Iova,
  type PhysAddr,
  type PhysicalMemory,
} from "@devref/raw-device";
import {
  IO_PGTABLE_FORMATS,
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
import { checkMemory } from "./internal/args.js";
import { hex64, hexAddr, sizeName, TWO32 } from "./internal/bits.js";
import { setupDart } from "./internal/dart-config.js";
import { setupLpae } from "./internal/lpae-config.js";
import type { IoPgtableConfig, IoPgtableMapping, IovaArg, Word64 } from "./types.js";

/** Limits for walking a table whose contents may be garbage, and where to report what is wrong. */
export interface DecodeOptions {
  /** Most tables to visit, roots included; default 65536. */
  readonly maxTables?: number;
  /** Most descriptors to examine, empty ones included; default 2^24. */
  readonly maxEntries?: number;
  /** Most mappings to report; default 2^20. */
  readonly maxMappings?: number;
  /** Most characters of dump text (`dumpIoPgtable`, `dump()` only); default 2^26. */
  readonly maxChars?: number;
  /**
   * Called for every descriptor the walk cannot follow: a table visited before (a cycle or a
   * table shared by two parents: walked once, reported at every later parent), a table outside
   * memory, or a descriptor that is neither table nor leaf. Default: none.
   */
  readonly onProblem?: ((problem: IoPgtableProblem) => void) | null;
}

/** A descriptor the decoder found but did not follow. See {@link DecodeOptions.onProblem}. */
export interface IoPgtableProblem {
  /** `revisit`: the table was visited before; `outside`: it lies outside memory; `invalid`: neither table nor leaf. */
  readonly kind: "revisit" | "outside" | "invalid";
  /** Level of the table holding the descriptor (LPAE absolute level; DART depth from 1). */
  readonly level: number;
  /** Index of the descriptor in its table. */
  readonly index: number;
  /** First input address the descriptor covers. */
  readonly iova: IovaArg;
  /** The table address the descriptor names (`revisit`, `outside`), else -1. */
  readonly table: number;
  /** The raw descriptor. */
  readonly desc: Word64;
}

interface Visitor {
  table(level: number, index: number, iova: IovaArg, span: number, pa: number, depth: number): void;
  leaf(m: IoPgtableMapping, index: number, depth: number): void;
  problem(p: IoPgtableProblem, depth: number): void;
}

/** What the walk has used so far, against its limits. */
class Budget {
  tables = 0;
  entries = 0;
  mappings = 0;
  chars = 0;
  readonly visited: Set<number> = new Set();
  readonly maxTables: number;
  readonly maxEntries: number;
  readonly maxMappings: number;
  readonly maxChars: number;
  /** One scratch buffer per depth, reused for every table read at that depth. */
  private readonly bufs: (Uint8Array | undefined)[] = [];

  constructor(where: string, options: DecodeOptions | undefined) {
    if (options !== undefined && options !== null) checkObject(where, "options", options);
    this.maxTables = checkCount(where, "options.maxTables", options?.maxTables ?? 65536, 1, MAX);
    this.maxEntries = checkCount(
      where,
      "options.maxEntries",
      options?.maxEntries ?? 2 ** 24,
      1,
      MAX,
    );
    this.maxMappings = checkCount(
      where,
      "options.maxMappings",
      options?.maxMappings ?? 2 ** 20,
      0,
      MAX,
    );
    // V8 strings stop near 2^29 characters: a larger limit could only end in a RangeError.
    this.maxChars = checkCount(where, "options.maxChars", options?.maxChars ?? 2 ** 26, 1, 2 ** 28);
    const cb = options?.onProblem;
    if (cb !== undefined && cb !== null) checkCallback(where, "options.onProblem", cb);
  }

  #over(limit: string, max: number, what: string): never {
    throw new DevrefError(
      "E2BIG",
      `the walk ${what} more than ${max}: the image is corrupt or larger than expected; raise ${limit} to walk it`,
      { details: { limit, max } },
    );
  }

  /** Counts a table of `entries` descriptors and reads it into the scratch buffer of `depth`. */
  read(mem: PhysicalMemory, pa: number, entries: number, depth: number): Uint32Array {
    if (++this.tables > this.maxTables) this.#over("maxTables", this.maxTables, "reached tables");
    this.entries += entries;
    if (this.entries > this.maxEntries)
      this.#over("maxEntries", this.maxEntries, "examined descriptors");
    this.visited.add(pa);
    let buf = this.bufs[depth];
    if (buf === undefined || buf.length < entries * 8) {
      buf = new Uint8Array(entries * 8);
      this.bufs[depth] = buf;
    }
    const view = buf.subarray(0, entries * 8);
    mem.readBytes(pa, view);
    return new Uint32Array(buf.buffer, 0, entries * 2);
  }

  mapping(): void {
    if (++this.mappings > this.maxMappings)
      this.#over("maxMappings", this.maxMappings, "found mappings");
  }

  text(n: number): void {
    this.chars += n;
    if (this.chars > this.maxChars) this.#over("maxChars", this.maxChars, "printed characters");
  }
}

const MAX = Number.MAX_SAFE_INTEGER;

function checkRoot(
  where: string,
  param: string,
  mem: PhysicalMemory,
  pa: unknown,
  bytes: number,
): number {
  const at = checkAddress(where, param, pa, mem.size);
  if (at % 8 !== 0 || at + bytes > mem.size) {
    throw argumentError(
      where,
      param,
      `an 8-byte aligned table address with ${bytes} bytes inside memory of size ${mem.size}`,
      pa,
    );
  }
  return at;
}

function walkLpae(
  where: string,
  mem: PhysicalMemory,
  format: "arm-64-lpae-s1" | "arm-64-lpae-s2",
  cfg: IoPgtableConfig,
  root: unknown,
  v: Visitor,
  b: Budget,
): void {
  const stage = format === "arm-64-lpae-s1" ? 1 : 2;
  const setup = setupLpae(stage, cfg, where);
  const g = setup.geometry;
  const rootPa = checkRoot(where, "root", mem, root, g.rootEntries * 8);
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
    const words = b.read(mem, pa, entries, depth);
    const shift = (4 - level) * bpl + 3;
    const block = 2 ** shift;
    for (let i = 0; i < entries; i++) {
      const lo = words[2 * i]!;
      const hi = words[2 * i + 1]!;
      if (lo === 0 && hi === 0) continue;
      const off = base + i * block;
      const type = lo & 3;
      if (level === 3 ? type === 3 : type === 1) {
        b.mapping();
        // SAFETY: a decoded LPAE address is below 2^52.
        const out = decode(hi, lo) as PhysAddr;
        v.leaf(
          { iova: addr(off), size: block, pa: out, level, prot: protOf(hi, lo), desc: { lo, hi } },
          i,
          depth,
        );
      } else if (level < 3 && type === 3) {
        const next = decode(hi, lo);
        const desc = { lo, hi };
        if (next + g.granule > mem.size) {
          v.problem(
            { kind: "outside", level, index: i, iova: addr(off), table: next, desc },
            depth,
          );
        } else if (b.visited.has(next)) {
          v.problem(
            { kind: "revisit", level, index: i, iova: addr(off), table: next, desc },
            depth,
          );
        } else {
          v.table(level, i, addr(off), block, next, depth);
          walk(next, level + 1, g.granule / 8, off, depth + 1);
        }
      } else {
        v.problem(
          { kind: "invalid", level, index: i, iova: addr(off), table: -1, desc: { lo, hi } },
          depth,
        );
      }
    }
  };
  walk(rootPa, g.startLevel, g.rootEntries, 0, 0);
}

function walkDart(
  where: string,
  mem: PhysicalMemory,
  format: "apple-dart" | "apple-dart2",
  cfg: IoPgtableConfig,
  roots: unknown,
  v: Visitor,
  b: Budget,
): void {
  const dart2 = format === "apple-dart2";
  const setup = setupDart(dart2, cfg, where);
  const geo = setup.geometry;
  const g = Math.log2(geo.pgsize);
  const ept = geo.pgsize / 8;
  if (!Array.isArray(roots) || roots.length !== setup.nTtbrs) {
    throw argumentError(
      where,
      "root",
      `an array of ${setup.nTtbrs} TTBR table address(es), as this configuration has`,
      roots,
    );
  }
  const rootPas = roots.map((r: unknown, i) => checkRoot(where, `root[${i}]`, mem, r, geo.pgsize));
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
    const words = b.read(mem, pa, ept, depth - 1);
    const span = 2 ** (g + (geo.levels - depth) * geo.bitsPerLevel);
    for (let i = 0; i < ept; i++) {
      const lo = words[2 * i]!;
      const hi = words[2 * i + 1]!;
      if (lo === 0 && hi === 0) continue;
      const off = base + i * span;
      // SAFETY: DART input addresses below 2^(ias rounded to its index fields) are below 2^53.
      const at = off as Iova;
      if (depth === geo.levels) {
        b.mapping();
        // SAFETY: a decoded DART address is below 2^42.
        const out = decode(hi, lo) as PhysAddr;
        v.leaf(
          { iova: at, size: geo.pgsize, pa: out, level: depth, prot: protOf(lo), desc: { lo, hi } },
          i,
          depth - 1,
        );
      } else {
        const next = decode(hi, lo);
        const desc = { lo, hi };
        if (next + geo.pgsize > mem.size) {
          v.problem(
            { kind: "outside", level: depth, index: i, iova: at, table: next, desc },
            depth - 1,
          );
        } else if (b.visited.has(next)) {
          v.problem(
            { kind: "revisit", level: depth, index: i, iova: at, table: next, desc },
            depth - 1,
          );
        } else {
          v.table(depth, i, at, span, next, depth - 1);
          walk(next, depth + 1, off);
        }
      }
    }
  };
  const ttbrSpan = 2 ** (g + geo.levels * geo.bitsPerLevel);
  rootPas.forEach((root, t) => {
    if (b.visited.has(root)) {
      // SAFETY: as above, a TTBR base address.
      const at = (t * ttbrSpan) as Iova;
      v.problem(
        { kind: "revisit", level: 0, index: t, iova: at, table: root, desc: { lo: 0, hi: 0 } },
        0,
      );
    } else walk(root, 1, t * ttbrSpan);
  });
}

function walkAny(
  where: string,
  mem: PhysicalMemory,
  format: IoPgtableFormat,
  cfg: IoPgtableConfig,
  root: number | readonly number[],
  v: Visitor,
  b: Budget,
): void {
  const f = checkOneOf(where, "format", format, IO_PGTABLE_FORMATS);
  switch (f) {
    case "arm-64-lpae-s1":
    case "arm-64-lpae-s2":
      walkLpae(where, mem, f, cfg, root, v, b);
      break;
    case "apple-dart":
    case "apple-dart2":
      walkDart(where, mem, f, cfg, root, v, b);
      break;
  }
}

/**
 * Lists the mappings of a table found in a memory image, given its format, configuration
 * (as passed to `allocIoPgtable`, or the written-back `cfg`) and root address(es): the TTBR or
 * VTTBR for LPAE, the array of TTBR table addresses for DART.
 *
 * **Invariants:** never writes memory. The image is untrusted, so the work is bounded by the
 * image, not only by the limits: every table address is read at most once (a table reached
 * again, through a cycle or from a second parent, is reported to `onProblem` as a `revisit`
 * and not walked again), so the walk reads at most one table per distinct table address, and
 * at most `maxTables` tables, `maxEntries` descriptors and `maxMappings` mappings in all
 * (defaults 65536, 2^24 and 2^20). Descriptors that are neither table nor leaf are reported
 * and skipped.
 *
 * **Errors:** `E2BIG` (with `details.limit` naming it) as soon as a limit is passed: the result
 * is never silently truncated; `EINVAL` naming the argument for a malformed memory, format,
 * configuration, root or option, or for a configuration the format rejects; `EFAULT` (from the
 * memory) for reads outside it.
 *
 * //! C source: drivers/iommu/io-pgtable-arm.c, io-pgtable-dart.c (their walkers)
 *
 * @example
 * ```ts
 * const maps = decodeIoPgtable(memory, "arm-64-lpae-s1", { pgsizeBitmap: 0x40201000, ias: 48, oas: 48 }, ttbr, {
 *   onProblem: (p) => console.warn(p.kind, p.level, p.index),
 * });
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
  return decodeAs("decodeIoPgtable", memory, format, cfg, root, options);
}

/** {@link decodeIoPgtable}, naming `where` in its errors (a table's `mappings()`). */
export function decodeAs(
  where: string,
  memory: PhysicalMemory,
  format: IoPgtableFormat,
  cfg: IoPgtableConfig,
  root: number | readonly number[],
  options: DecodeOptions | undefined,
): IoPgtableMapping[] {
  checkMemory(where, "memory", memory);
  const b = new Budget(where, options);
  const onProblem = options?.onProblem ?? null;
  const out: IoPgtableMapping[] = [];
  walkAny(
    where,
    memory,
    format,
    cfg,
    root,
    {
      table() {},
      problem: (p) => {
        if (onProblem !== null) onProblem(p);
      },
      leaf: (m) => {
        out.push(m);
      },
    },
    b,
  );
  return out;
}

/**
 * `IOMMU_*` bits as text, e.g. `RW- cache`.
 *
 * **Errors:** `EINVAL` naming `prot` unless it is a whole number in [0, 2^31).
 *
 * @example
 * ```ts
 * formatProt(IOMMU_READ | IOMMU_CACHE); // "R-X cache"
 * ```
 */
export function formatProt(prot: number): string {
  checkInteger("formatProt", "prot", prot, 0, 0x7fff_ffff);
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
 * with the input range, output address, size and decoded permissions, and one line per
 * descriptor the walk did not follow (`already visited (cycle or shared table)`, `invalid`).
 *
 * **Invariants:** as {@link decodeIoPgtable}, and the text is at most `maxChars` characters
 * (default 2^26).
 *
 * **Errors:** as {@link decodeIoPgtable}; `E2BIG` with `details.limit` `maxChars` when the text
 * would be longer (never a truncated dump).
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
  return dumpAs("dumpIoPgtable", memory, format, cfg, root, options);
}

/** {@link dumpIoPgtable}, naming `where` in its errors (a table's `dump()`). */
export function dumpAs(
  where: string,
  memory: PhysicalMemory,
  format: IoPgtableFormat,
  cfg: IoPgtableConfig,
  root: number | readonly number[],
  options: DecodeOptions | undefined,
): string {
  checkMemory(where, "memory", memory);
  const b = new Budget(where, options);
  const onProblem = options?.onProblem ?? null;
  const lines: string[] = [];
  const push = (line: string): void => {
    b.text(line.length + 1);
    lines.push(line);
  };
  const range = (iova: IovaArg, span: number): string => {
    const end = typeof iova === "bigint" ? iova + BigInt(span) - 1n : iova + span - 1;
    return `${hexAddr(iova)}..${hexAddr(end)}`;
  };
  const pad = (depth: number): string => "  ".repeat(depth);
  let header = "";
  walkAny(
    where,
    memory,
    format,
    cfg,
    root,
    {
      table(level, index, iova, span, pa, depth) {
        push(`${pad(depth)}L${level}[${index}] ${range(iova, span)} table ${hexAddr(pa)}`);
      },
      leaf(m, index, depth) {
        push(
          `${pad(depth)}L${m.level}[${index}] ${range(m.iova, m.size)} ${sizeName(m.size)} -> ${hexAddr(m.pa)} ` +
            `${formatProt(m.prot)} desc ${hex64(m.desc.hi, m.desc.lo)}`,
        );
      },
      problem(p, depth) {
        if (onProblem !== null) onProblem(p);
        const at = `${pad(depth)}L${p.level}[${p.index}] ${hexAddr(p.iova)}`;
        const d = hex64(p.desc.hi, p.desc.lo);
        if (p.kind === "revisit")
          push(`${at} table ${hexAddr(p.table)} already visited (cycle or shared table) desc ${d}`);
        else if (p.kind === "outside") push(`${at} invalid (table outside memory) desc ${d}`);
        else push(`${at} invalid (neither table nor leaf) desc ${d}`);
      },
    },
    b,
  );
  // The walk checked format, cfg and roots, so the header can print them.
  const roots = typeof root === "number" ? [root] : root;
  header = `${format} pgsize 0x${cfg.pgsizeBitmap.toString(16)} ias ${cfg.ias} oas ${cfg.oas} root ${roots.map((r) => hexAddr(r)).join(", ")}`;
  b.text(header.length);
  return lines.length === 0 ? header : `${header}\n${lines.join("\n")}`;
}
