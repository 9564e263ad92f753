//! `devref pgtable decode|dump <image>`: an I/O page table read back from a memory image.

import { readFile } from "node:fs/promises";
import {
  decodeIoPgtable,
  dumpIoPgtable,
  formatProt,
  type IoPgtableConfig,
  type IoPgtableFormat,
  type IoPgtableProblem,
} from "@devref/io-pgtable";
import { DevrefError, SparseMemory } from "@devref/raw-device";
import { EXIT, fileError } from "../errors.js";
import { type CliContext, Printer } from "../io.js";
import { hex, parseNumber } from "../numbers.js";
import { table } from "../table.js";

export interface PgtableFlags {
  readonly format: IoPgtableFormat;
  readonly ttbr: readonly string[];
  readonly base?: string;
  readonly ias?: string;
  readonly oas?: string;
  readonly granule?: string;
  readonly pgsizeBitmap?: string;
  readonly json?: boolean;
}

/** Input/output address bits and page size of each format when the options do not say. */
const DEFAULTS: Readonly<Record<IoPgtableFormat, { ias: number; oas: number; granule: number }>> =
  Object.freeze({
    "arm-64-lpae-s1": { ias: 48, oas: 48, granule: 0x1000 },
    "arm-64-lpae-s2": { ias: 48, oas: 48, granule: 0x1000 },
    "apple-dart": { ias: 32, oas: 36, granule: 0x1000 },
    "apple-dart2": { ias: 32, oas: 42, granule: 0x4000 },
  });

/** LPAE page and block sizes of each granule, as the kernel's granule choice keeps them. */
const LPAE_SIZES: Readonly<Record<number, number>> = Object.freeze({
  4096: 0x1000 + 0x20_0000 + 0x4000_0000,
  16384: 0x4000 + 0x200_0000,
  65536: 0x1_0000 + 0x2000_0000,
});

/** The configuration the options describe. */
function configOf(flags: PgtableFlags): IoPgtableConfig {
  const d = DEFAULTS[flags.format];
  const ias = flags.ias === undefined ? d.ias : parseNumber("--ias", flags.ias, 1, 64);
  const oas = flags.oas === undefined ? d.oas : parseNumber("--oas", flags.oas, 1, 64);
  const granule =
    flags.granule === undefined
      ? d.granule
      : parseNumber("--granule", flags.granule, 1, 2 ** 30, true);
  if (granule !== 0x1000 && granule !== 0x4000 && granule !== 0x1_0000) {
    throw new DevrefError("EINVAL", `--granule takes 4K, 16K or 64K, not '${flags.granule}'`);
  }
  const lpae = flags.format.startsWith("arm-64-lpae");
  const pgsizeBitmap =
    flags.pgsizeBitmap !== undefined
      ? parseNumber("--pgsize-bitmap", flags.pgsizeBitmap, 1)
      : lpae
        ? LPAE_SIZES[granule]!
        : granule;
  return lpae ? { pgsizeBitmap, ias, oas, hostPageSize: granule } : { pgsizeBitmap, ias, oas };
}

/** The root address(es) the options give: one per `--ttbr`, or comma-separated. */
function rootsOf(flags: PgtableFlags): number[] {
  if (flags.ttbr.length === 0) {
    throw new DevrefError(
      "EINVAL",
      "--ttbr is required: the physical address of the root table (DART: one per TTBR)",
    );
  }
  return flags.ttbr
    .flatMap((t) => t.split(","))
    .filter((t) => t.trim() !== "")
    .map((t) => parseNumber("--ttbr", t, 0, 2 ** 52 - 1));
}

/** Runs `devref pgtable decode` or `dump`. */
export async function pgtableCommand(
  ctx: CliContext,
  what: "decode" | "dump",
  image: string,
  flags: PgtableFlags,
): Promise<number> {
  const cfg = configOf(flags);
  const roots = rootsOf(flags);
  const base = parseNumber("--base", flags.base ?? "0", 0, 2 ** 52 - 1);
  let bytes: Uint8Array;
  try {
    bytes = await readFile(image);
  } catch (e) {
    throw fileError("read", image, e);
  }
  if (bytes.length === 0)
    throw new DevrefError("EINVAL", `${image} is empty: there is no table to read`);
  if (base + bytes.length > 2 ** 52) {
    throw new DevrefError(
      "ERANGE",
      `${image} (${bytes.length} bytes) at --base ${hex(base)} passes the end of the 52-bit physical address space`,
    );
  }
  const memory = new SparseMemory();
  memory.writeBytes(base, bytes);
  const lpae = flags.format.startsWith("arm-64-lpae");
  if (lpae && roots.length !== 1) {
    throw new DevrefError(
      "EINVAL",
      `${flags.format} has one root table: pass one --ttbr, not ${roots.length}`,
    );
  }
  const root: number | readonly number[] = lpae ? roots[0]! : roots;
  const problems: IoPgtableProblem[] = [];
  const options = { onProblem: (pr: IoPgtableProblem) => problems.push(pr) };
  const p = new Printer(ctx.io);
  const header = {
    format: flags.format,
    cfg: { pgsizeBitmap: hex(cfg.pgsizeBitmap), ias: cfg.ias, oas: cfg.oas },
    ttbr: roots.map(hex),
    image: { file: image, base: hex(base), bytes: bytes.length },
  };
  const problemsJson = (): Record<string, unknown>[] =>
    problems.map((pr) => ({
      kind: pr.kind,
      level: pr.level,
      index: pr.index,
      iova: hex(pr.iova),
      table: pr.table < 0 ? null : hex(pr.table),
      desc: hex((BigInt(pr.desc.hi) << 32n) | BigInt(pr.desc.lo)),
    }));
  if (what === "dump") {
    const text = dumpIoPgtable(memory, flags.format, cfg, root, options);
    if (flags.json === true)
      p.json({ ...header, dump: text.split("\n"), problems: problemsJson() });
    else p.line(...text.split("\n"));
    return EXIT.ok;
  }
  const mappings = decodeIoPgtable(memory, flags.format, cfg, root, options);
  if (flags.json === true) {
    p.json({
      ...header,
      mappings: mappings.map((m) => ({
        iova: hex(m.iova),
        size: m.size,
        pa: hex(m.pa),
        level: m.level,
        prot: m.prot,
        perms: formatProt(m.prot),
        desc: hex((BigInt(m.desc.hi) << 32n) | BigInt(m.desc.lo)),
      })),
      problems: problemsJson(),
    });
    return EXIT.ok;
  }
  const { c } = p;
  p.line(
    c.bold(`${flags.format}`) +
      c.dim(
        ` pgsize ${hex(cfg.pgsizeBitmap)} ias ${cfg.ias} oas ${cfg.oas} root ${roots.map(hex).join(", ")}: ${mappings.length} mapping(s)`,
      ),
  );
  if (mappings.length > 0) {
    const rows = mappings.map((m) => {
      const end = typeof m.iova === "bigint" ? m.iova + BigInt(m.size) - 1n : m.iova + m.size - 1;
      return [
        `${hex(m.iova)}..${hex(end)}`,
        sizeName(m.size),
        `-> ${hex(m.pa)}`,
        formatProt(m.prot),
      ];
    });
    p.line(...table([["iova", "size", "pa", "perms"], ...rows], [1]));
  }
  for (const pr of problems) {
    const desc = hex((BigInt(pr.desc.hi) << 32n) | BigInt(pr.desc.lo));
    p.line(
      c.yellow(
        `problem: ${pr.kind} at level ${pr.level} index ${pr.index} (iova ${hex(pr.iova)}) desc ${desc}`,
      ),
    );
  }
  return EXIT.ok;
}

function sizeName(n: number): string {
  if (n >= 2 ** 30 && n % 2 ** 30 === 0) return `${n / 2 ** 30}G`;
  if (n >= 2 ** 20 && n % 2 ** 20 === 0) return `${n / 2 ** 20}M`;
  if (n >= 1024 && n % 1024 === 0) return `${n / 1024}K`;
  return String(n);
}
