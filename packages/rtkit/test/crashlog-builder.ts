// Builds crashlogs in the layout of rtkit.md §9.1, independently of the parser.

const fourccLE = (s: string): number =>
  ((s.charCodeAt(0) << 24) | (s.charCodeAt(1) << 16) | (s.charCodeAt(2) << 8) | s.charCodeAt(3)) >>>
  0;

export interface RawSection {
  readonly fourcc: string;
  readonly payload: Uint8Array;
  /** Overrides the size field (header included). */
  readonly size?: number;
}

export function section(fourcc: string, payload: Uint8Array, size?: number): RawSection {
  return size === undefined ? { fourcc, payload } : { fourcc, payload, size };
}

export function strSection(id: number, text: string): RawSection {
  const t = new TextEncoder().encode(text);
  const p = new Uint8Array(4 + t.length + 1);
  new DataView(p.buffer).setUint32(0, id, true);
  p.set(t, 4);
  return section("Cstr", p);
}

export function versionSection(version: string): RawSection {
  const t = new TextEncoder().encode(version);
  const p = new Uint8Array(16 + t.length + 1);
  p.fill(0xaa, 0, 16);
  p.set(t, 16);
  return section("Cver", p);
}

export function timeSection(time: bigint): RawSection {
  const p = new Uint8Array(8);
  new DataView(p.buffer).setBigUint64(0, time, true);
  return section("Ctim", p);
}

export function mailboxSection(
  type: number,
  index: number,
  entries: readonly [bigint, bigint, number][],
): RawSection {
  const p = new Uint8Array(28 + entries.length * 0x18);
  const v = new DataView(p.buffer);
  v.setUint32(16, type, true);
  v.setUint32(24, index, true);
  entries.forEach(([m0, m1, ts], i) => {
    const at = 28 + i * 0x18;
    v.setBigUint64(at, m0, true);
    v.setBigUint64(at + 8, m1, true);
    v.setUint32(at + 16, ts, true);
  });
  return section("Cmbx", p);
}

export function regsSection(fill: (i: number) => bigint, psr: bigint, pc: bigint): RawSection {
  const p = new Uint8Array(0x350);
  const v = new DataView(p.buffer);
  for (let i = 0; i < 31; i++) v.setBigUint64(8 + i * 8, fill(i), true);
  v.setBigUint64(0x100, 0x5_0000n, true); // sp
  v.setBigUint64(0x108, pc, true);
  v.setBigUint64(0x110, psr, true);
  v.setBigUint64(0x330, 0xdead_0000n, true); // far
  v.setBigUint64(0x340, 0x9600_0045n, true); // esr
  return section("Crg8", p);
}

/** A crashlog in a buffer of `bufferSize` bytes (at least what it needs). */
export function buildCrashlog(
  sections: readonly RawSection[],
  opts: { footer?: boolean; bufferSize?: number; headerSize?: number } = {},
): Uint8Array {
  const footer = opts.footer ?? true;
  let length = 0x20;
  for (const s of sections) length += 16 + s.payload.length;
  if (footer) length += 16;
  const out = new Uint8Array(Math.max(length, opts.bufferSize ?? 0));
  const v = new DataView(out.buffer);
  v.setUint32(0, fourccLE("CLHE"), true);
  v.setUint32(4, 2, true);
  v.setUint32(8, opts.headerSize ?? length, true);
  v.setUint32(12, 0x10, true);
  let at = 0x20;
  for (const s of sections) {
    v.setUint32(at, fourccLE(s.fourcc), true);
    v.setUint32(at + 12, s.size ?? 16 + s.payload.length, true);
    out.set(s.payload, at + 16);
    at += 16 + s.payload.length;
  }
  if (footer) {
    v.setUint32(at, fourccLE("CLHE"), true);
    v.setUint32(at + 12, 16, true);
  }
  return out;
}
