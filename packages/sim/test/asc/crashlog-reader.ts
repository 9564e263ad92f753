// Reads a crashlog byte by byte, following rtkit.md §9.1 (independent of the builder).

export interface ParsedSection {
  readonly fourcc: string;
  readonly offset: number;
  readonly size: number;
  readonly payload: Uint8Array;
}

export interface ParsedCrashlog {
  readonly magic: string;
  readonly version: number;
  readonly size: number;
  readonly flags: number;
  readonly sections: ParsedSection[];
  readonly footer: boolean;
}

export function u32(b: Uint8Array, at: number): number {
  return (b[at]! | (b[at + 1]! << 8) | (b[at + 2]! << 16) | (b[at + 3]! << 24)) >>> 0;
}

export function u64(b: Uint8Array, at: number): bigint {
  return (BigInt(u32(b, at + 4)) << 32n) | BigInt(u32(b, at));
}

/** A fourcc read as a little-endian u32 and unpacked big-endian ('C','L','H','E' ← 0x434c4845). */
export function fourcc(b: Uint8Array, at: number): string {
  const v = u32(b, at);
  return String.fromCharCode(v >>> 24, (v >>> 16) & 0xff, (v >>> 8) & 0xff, v & 0xff);
}

export function cstring(b: Uint8Array, at: number, end: number = b.length): string {
  let s = "";
  for (let i = at; i < end && b[i] !== 0; i++) s += String.fromCharCode(b[i]!);
  return s;
}

/** Walks the sections like the kernel does, but refuses a zero size instead of looping. */
export function parseCrashlog(b: Uint8Array): ParsedCrashlog {
  const magic = fourcc(b, 0);
  const size = u32(b, 8);
  const sections: ParsedSection[] = [];
  let footer = false;
  let off = 0x20;
  while (off < size && off + 16 <= b.length) {
    const f = fourcc(b, off);
    if (f === "CLHE") {
      footer = true;
      break;
    }
    const s = u32(b, off + 12);
    if (s === 0) throw new Error(`section ${f} at 0x${off.toString(16)} has size 0`);
    sections.push({ fourcc: f, offset: off, size: s, payload: b.subarray(off + 16, off + s) });
    off += s;
  }
  return { magic, version: u32(b, 4), size, flags: u32(b, 12), sections, footer };
}
