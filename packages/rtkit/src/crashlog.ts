//! C source: drivers/soc/apple/rtkit-crashlog.c
//!
//! The crashlog a coprocessor leaves in its crashlog buffer: a `CLHE` header, then sections
//! until a `CLHE` footer. Every length in it comes from the firmware, so every one is checked
//! against its section and the buffer before anything is read.

import {
  checkArray,
  checkBigintOrNumber,
  checkBoolean,
  checkInstance,
  checkInteger,
  checkObject,
  checkOneOf,
  checkString,
  DevrefError,
} from "@devref/raw-device";
import { hex, hexPad } from "./internal/bits.js";
import { cString } from "./internal/text.js";

/** Packs four characters big-endian into a u32, as the kernel's FOURCC macro does. */
const fourcc = (s: string): number =>
  ((s.charCodeAt(0) << 24) | (s.charCodeAt(1) << 16) | (s.charCodeAt(2) << 8) | s.charCodeAt(3)) >>>
  0;

/** `CLHE`, the header and footer fourcc (bytes 45 48 4c 43 in memory). */
export const CRASHLOG_HEADER_FOURCC: number = fourcc("CLHE");
const STR = fourcc("Cstr");
const VERSION = fourcc("Cver");
const MBOX = fourcc("Cmbx");
const TIME = fourcc("Ctim");
const REGS = fourcc("Crg8");

/** Bytes in the header and in each section header. */
export const CRASHLOG_HEADER_SIZE = 0x20;
const SECTION_HEADER_SIZE = 0x10;
const MBOX_ENTRY_SIZE = 0x18;
const MBOX_ENTRIES_AT = 28;
/** Bytes in a `Crg8` register dump. */
export const CRASHLOG_REGS_SIZE = 0x350;

/** The crashlog header. */
export interface CrashlogHeader {
  readonly version: number;
  /** Bytes covered by the crashlog, header included (at most the buffer's size). */
  readonly size: number;
  readonly flags: number;
  /** Header bytes 0x10–0x1f, meaning unknown. */
  readonly unknown: Uint8Array;
}

/** One mailbox message in a `Cmbx` section. */
export interface CrashlogMailboxEntry {
  readonly msg0: bigint;
  readonly msg1: bigint;
  readonly timestamp: number;
  readonly unknown: Uint8Array;
}

/** The `Crg8` register dump. */
export interface CrashlogRegisters {
  readonly unk0: number;
  readonly unk4: number;
  /** x0 … x30. */
  readonly x: readonly bigint[];
  readonly sp: bigint;
  readonly pc: bigint;
  readonly psr: bigint;
  readonly cpacr: bigint;
  readonly fpsr: bigint;
  readonly fpcr: bigint;
  readonly unk: readonly bigint[];
  readonly far: bigint;
  readonly unkX: bigint;
  readonly esr: bigint;
  readonly unkZ: bigint;
  /** The exception level from `psr & 0xf`: EL0t, EL1t, EL1h, EL2t, EL2h or "unknown". */
  readonly exceptionLevel: string;
}

interface SectionBase {
  /** Offset of the section header in the crashlog. */
  readonly offset: number;
  /** The section's size field: bytes including the 16-byte section header. */
  readonly size: number;
  /** The fourcc as text (e.g. "Cstr"), or as hex when not printable. */
  readonly fourcc: string;
  /** The fourcc as the kernel compares it: the little-endian u32 at the section start. */
  readonly fourccValue: number;
  /** Section header bytes 4–11, meaning unknown. */
  readonly headerUnknown: Uint8Array;
  /** The section's payload (after its header), copied. */
  readonly payload: Uint8Array;
}

/** A decoded section; unknown and malformed sections are kept raw in `payload`. */
export type CrashlogSection =
  | (SectionBase & { readonly kind: "str"; readonly id: number; readonly lines: readonly string[] })
  | (SectionBase & { readonly kind: "version"; readonly version: string })
  | (SectionBase & { readonly kind: "time"; readonly time: bigint })
  | (SectionBase & {
      readonly kind: "mailbox";
      readonly type: number;
      readonly index: number;
      readonly entries: readonly CrashlogMailboxEntry[];
    })
  | (SectionBase & { readonly kind: "registers"; readonly registers: CrashlogRegisters })
  | (SectionBase & { readonly kind: "unknown" })
  | (SectionBase & { readonly kind: "malformed"; readonly reason: string });

/** A parsed crashlog. */
export interface Crashlog {
  readonly header: CrashlogHeader;
  readonly sections: readonly CrashlogSection[];
  /** Whether the walk ended at a `CLHE` footer. */
  readonly footer: boolean;
  /** Why the walk stopped early (a section that does not fit), or null. */
  readonly error: string | null;
}

const EL_NAMES: Readonly<Record<number, string>> = {
  0: "EL0t",
  4: "EL1t",
  5: "EL1h",
  8: "EL2t",
  9: "EL2h",
};

function fourccText(value: number): string {
  let s = "";
  for (let shift = 24; shift >= 0; shift -= 8) {
    const c = (value >>> shift) & 0xff;
    if (c < 0x20 || c > 0x7e) return `0x${hexPad(value, 8)}`;
    s += String.fromCharCode(c);
  }
  return s;
}

function decodeSection(
  view: DataView,
  bytes: Uint8Array,
  offset: number,
  size: number,
): CrashlogSection {
  const value = view.getUint32(offset, true);
  const p = offset + SECTION_HEADER_SIZE;
  const len = size - SECTION_HEADER_SIZE;
  const base: SectionBase = {
    offset,
    size,
    fourcc: fourccText(value),
    fourccValue: value,
    headerUnknown: bytes.slice(offset + 4, offset + 12),
    payload: bytes.slice(p, p + len),
  };
  const malformed = (need: number): CrashlogSection => ({
    ...base,
    kind: "malformed",
    reason: `${base.fourcc} section payload is 0x${hex(len)} bytes, needs at least 0x${hex(need)}`,
  });
  const u64 = (at: number): bigint => view.getBigUint64(at, true);
  switch (value) {
    case STR: {
      if (len < 4) return malformed(4);
      // As the kernel: split on newlines first, each piece printed up to its first NUL.
      const lines: string[] = [];
      const end = p + len;
      let at = p + 4;
      while (at < end) {
        const nl = bytes.indexOf(0x0a, at);
        const stop = nl < 0 || nl >= end ? end : nl;
        lines.push(cString(bytes, at, stop));
        if (stop === end) break;
        at = stop + 1;
      }
      return { ...base, kind: "str", id: view.getUint32(p, true), lines };
    }
    case VERSION:
      if (len < 16) return malformed(16);
      return { ...base, kind: "version", version: cString(bytes, p + 16, p + len) };
    case TIME:
      if (len < 8) return malformed(8);
      return { ...base, kind: "time", time: u64(p) };
    case MBOX: {
      if (len < MBOX_ENTRIES_AT) return malformed(MBOX_ENTRIES_AT);
      const count = Math.floor((len - MBOX_ENTRIES_AT) / MBOX_ENTRY_SIZE);
      const entries: CrashlogMailboxEntry[] = [];
      for (let i = 0; i < count; i++) {
        const e = p + MBOX_ENTRIES_AT + i * MBOX_ENTRY_SIZE;
        entries.push({
          msg0: u64(e),
          msg1: u64(e + 8),
          timestamp: view.getUint32(e + 16, true),
          unknown: bytes.slice(e + 20, e + 24),
        });
      }
      const type = view.getUint32(p + 16, true);
      return { ...base, kind: "mailbox", type, index: view.getUint32(p + 24, true), entries };
    }
    case REGS: {
      if (len < CRASHLOG_REGS_SIZE) return malformed(CRASHLOG_REGS_SIZE);
      const x: bigint[] = [];
      for (let i = 0; i < 31; i++) x.push(u64(p + 8 + i * 8));
      const unk: bigint[] = [];
      for (let i = 0; i < 64; i++) unk.push(u64(p + 0x130 + i * 8));
      const psr = u64(p + 0x110);
      const registers: CrashlogRegisters = {
        unk0: view.getUint32(p, true),
        unk4: view.getUint32(p + 4, true),
        x,
        sp: u64(p + 0x100),
        pc: u64(p + 0x108),
        psr,
        cpacr: u64(p + 0x118),
        fpsr: u64(p + 0x120),
        fpcr: u64(p + 0x128),
        unk,
        far: u64(p + 0x330),
        unkX: u64(p + 0x338),
        esr: u64(p + 0x340),
        unkZ: u64(p + 0x348),
        exceptionLevel: EL_NAMES[Number(psr & 0xfn)] ?? "unknown",
      };
      return { ...base, kind: "registers", registers };
    }
    default:
      return { ...base, kind: "unknown" };
  }
}

/** @internal Why a header cannot be parsed, in the kernel's words, or null. */
export function crashlogHeaderProblem(bytes: Uint8Array): string | null {
  if (bytes.length < CRASHLOG_HEADER_SIZE) {
    return `RTKit: Crashlog buffer (0x${hex(bytes.length)} bytes) is smaller than its header`;
  }
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const magic = view.getUint32(0, true);
  if (magic !== CRASHLOG_HEADER_FOURCC) {
    return `RTKit: Expected crashlog header but got ${hex(magic)}`;
  }
  const size = view.getUint32(8, true);
  if (size > bytes.length) return `RTKit: Crashlog size (${hex(size)}) is too large`;
  return null;
}

/**
 * Parses a crashlog (the bytes of the crashlog buffer, e.g. the copy `ops.crashed`
 * receives): the header, then each section until the `CLHE` footer or the header's size.
 *
 * Lengths are checked where the kernel trusts them: a section must have a whole header,
 * a size of at least 16 and end inside the crashlog, or the walk stops with `error` set
 * (the kernel loops forever on a size of 0); a known section whose payload is too short for
 * its fields is kept as `malformed`. Counts use the payload (section size − 16), where the
 * kernel uses the section size and reads up to 16 bytes past the section.
 *
 * **Invariants:** never reads outside `bytes`; every section lies inside `header.size`.
 *
 * **Errors:** `EINVAL` if `bytes` is not a Uint8Array; `EPROTO` if the header is missing,
 * has the wrong magic, or claims more bytes than the buffer has (`details.reason`).
 *
 * @example
 * ```ts
 * const log = parseCrashlog(copy);
 * for (const s of log.sections) if (s.kind === "str") console.log(s.lines.join("\n"));
 * ```
 */
export function parseCrashlog(bytes: Uint8Array): Crashlog {
  checkInstance("parseCrashlog", "bytes", bytes, Uint8Array);
  const problem = crashlogHeaderProblem(bytes);
  if (problem !== null) {
    throw new DevrefError("EPROTO", `parseCrashlog: ${problem.slice("RTKit: ".length)}`, {
      details: { reason: problem },
    });
  }
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const size = view.getUint32(8, true);
  const header: CrashlogHeader = {
    version: view.getUint32(4, true),
    size,
    flags: view.getUint32(12, true),
    unknown: bytes.slice(16, 32),
  };
  const sections: CrashlogSection[] = [];
  let offset = CRASHLOG_HEADER_SIZE;
  let footer = false;
  let error: string | null = null;
  while (offset < size) {
    if (offset + 4 <= size && view.getUint32(offset, true) === CRASHLOG_HEADER_FOURCC) {
      footer = true;
      break;
    }
    if (offset + SECTION_HEADER_SIZE > size) {
      error = `section header at 0x${hex(offset)} runs past the end of the crashlog (0x${hex(size)} bytes)`;
      break;
    }
    const sectionSize = view.getUint32(offset + 12, true);
    if (sectionSize < SECTION_HEADER_SIZE) {
      error = `section at 0x${hex(offset)} has size 0x${hex(sectionSize)}, less than its own header`;
      break;
    }
    if (sectionSize > size - offset) {
      error = `section at 0x${hex(offset)} (0x${hex(sectionSize)} bytes) runs past the end of the crashlog (0x${hex(size)} bytes)`;
      break;
    }
    sections.push(decodeSection(view, bytes, offset, sectionSize));
    offset += sectionSize;
  }
  return { header, sections, footer, error };
}

/** A log line: the level the kernel prints it at, and its text. */
export interface CrashlogLine {
  readonly level: "warn" | "dbg";
  readonly text: string;
}

const x16 = (v: bigint): string => hexPad(v, 16);

function regsLines(r: CrashlogRegisters): string[] {
  const out = [
    "RTKit: Exception dump:",
    `  == Exception taken from ${r.exceptionLevel} ==`,
    `  PSR    = 0x${hex(r.psr)}`,
    `  PC     = 0x${hex(r.pc)}`,
    `  ESR    = 0x${hex(r.esr)}`,
    `  FAR    = 0x${hex(r.far)}`,
    `  SP     = 0x${hex(r.sp)}`,
    "",
  ];
  for (let i = 0; i < 31; i += 4) {
    const regs = r.x.slice(i, Math.min(i + 4, 31)).map(x16);
    const from = String(i).padStart(2, "0");
    out.push(`  x${from}-x${String(i + 3).padStart(2, "0")} = ${regs.join(" ")}`);
  }
  out.push("");
  return out;
}

const SECTION_KINDS = [
  "str",
  "version",
  "time",
  "mailbox",
  "registers",
  "malformed",
  "unknown",
] as const;

/**
 * Checks every field of `log` that {@link formatCrashlog} reads: a crashlog built by hand (or
 * edited) is refused with the path of the first wrong field, never half-formatted. The 64-bit
 * fields may be safe integers as well as bigints.
 */
function checkCrashlog(where: string, log: Crashlog): void {
  checkObject(where, "log", log);
  const sections = log.sections;
  checkArray(where, "log.sections", sections);
  checkBoolean(where, "log.footer", log.footer);
  if (log.error !== null) checkString(where, "log.error", log.error);
  for (let i = 0; i < sections.length; i++) {
    const at = `log.sections[${i}]`;
    const s = checkObject(where, at, sections[i]!);
    checkOneOf(where, `${at}.kind`, s.kind, SECTION_KINDS);
    switch (s.kind) {
      case "str":
        checkInteger(where, `${at}.id`, s.id, 0, 0xffff_ffff);
        checkArray(where, `${at}.lines`, s.lines);
        for (let j = 0; j < s.lines.length; j++) {
          checkString(where, `${at}.lines[${j}]`, s.lines[j]);
        }
        break;
      case "version":
        checkString(where, `${at}.version`, s.version);
        break;
      case "time":
        checkBigintOrNumber(where, `${at}.time`, s.time, 64);
        break;
      case "mailbox":
        checkInteger(where, `${at}.type`, s.type, 0, 0xffff_ffff);
        checkInteger(where, `${at}.index`, s.index, 0, 0xffff_ffff);
        checkArray(where, `${at}.entries`, s.entries);
        for (let j = 0; j < s.entries.length; j++) {
          const e = checkObject(where, `${at}.entries[${j}]`, s.entries[j]!);
          checkBigintOrNumber(where, `${at}.entries[${j}].timestamp`, e.timestamp, 64);
          checkBigintOrNumber(where, `${at}.entries[${j}].msg0`, e.msg0, 64);
          checkBigintOrNumber(where, `${at}.entries[${j}].msg1`, e.msg1, 64);
        }
        break;
      case "registers": {
        const r = checkObject(where, `${at}.registers`, s.registers);
        checkString(where, `${at}.registers.exceptionLevel`, r.exceptionLevel);
        for (const name of ["psr", "pc", "esr", "far", "sp"] as const) {
          checkBigintOrNumber(where, `${at}.registers.${name}`, r[name], 64);
        }
        checkArray(where, `${at}.registers.x`, r.x);
        for (let j = 0; j < Math.min(r.x.length, 31); j++) {
          checkBigintOrNumber(where, `${at}.registers.x[${j}]`, r.x[j], 64);
        }
        break;
      }
      case "malformed":
        checkString(where, `${at}.fourcc`, s.fourcc);
        checkString(where, `${at}.reason`, s.reason);
        checkInteger(where, `${at}.size`, s.size, 0, 0xffff_ffff);
        break;
      case "unknown":
        checkInteger(where, `${at}.fourccValue`, s.fourccValue, 0, 0xffff_ffff);
        break;
    }
  }
}

/**
 * The lines the kernel logs for a crashlog (`apple_rtkit_crashlog_dump`), at its levels,
 * plus a line for a walk that stopped early.
 *
 * **Errors:** `EINVAL` naming the first field of `log` that is not what
 * {@link parseCrashlog} produces (a crashlog built or edited by hand).
 *
 * @example
 * ```ts
 * for (const line of formatCrashlog(parseCrashlog(copy))) console.warn(line.text);
 * ```
 */
export function formatCrashlog(log: Crashlog): CrashlogLine[] {
  checkCrashlog("formatCrashlog", log);
  const out: CrashlogLine[] = [];
  const warn = (text: string) => out.push({ level: "warn", text });
  for (const s of log.sections) {
    switch (s.kind) {
      case "str":
        for (const line of s.lines) warn(`RTKit: Message (id=${hex(s.id)}): ${line}`);
        break;
      case "version":
        warn(`RTKit: Version: ${s.version}`);
        break;
      case "time":
        warn(`RTKit: Crash time: ${BigInt.asIntN(64, BigInt(s.time))}`);
        break;
      case "mailbox":
        warn(`RTKit: Mailbox history (type = ${s.type | 0}, index = ${s.index | 0})`);
        s.entries.forEach((e, i) => {
          warn(
            `RTKit:  #${String(i).padStart(3, "0")}@${hexPad(e.timestamp, 8)}: ${x16(e.msg0)} ${x16(e.msg1)}`,
          );
        });
        break;
      case "registers":
        for (const line of regsLines(s.registers)) warn(line);
        break;
      case "malformed":
        if (s.fourcc === "Crg8") warn(`RTKit: Regs section too small: 0x${hex(s.size)}`);
        else warn(`RTKit: Malformed crashlog section: ${s.reason}`);
        break;
      case "unknown":
        warn(`RTKit: Unknown crashlog section: ${hex(s.fourccValue)}`);
        break;
    }
  }
  if (log.footer) out.push({ level: "dbg", text: "RTKit: End of crashlog reached" });
  else if (log.error !== null) warn(`RTKit: Crashlog walk stopped: ${log.error}`);
  else warn("RTKit: End of crashlog reached but no footer present");
  return out;
}
