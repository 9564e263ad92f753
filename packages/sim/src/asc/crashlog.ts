//! C source: drivers/soc/apple/rtkit-crashlog.c (the format the AP decodes)
//!
//! Builds the crashlog an RTKit firmware leaves in its crashlog buffer before it reports a
//! crash (rtkit.md §9.1): a `CLHE` header, then `Cver`, `Cstr`, `Ctim`, `Cmbx` and `Crg8`
//! sections, then a `CLHE` footer section. Built once per crash, so it may allocate.

/** How a crashlog may be damaged on purpose, to test the AP's decoder. */
export type CrashlogCorruption =
  /** A well-formed crashlog. */
  | "none"
  /** The header fourcc is not `CLHE`. */
  | "bad-magic"
  /** The header's total size exceeds the buffer. */
  | "too-large"
  /** The `Cstr` section claims size 0 (a decoder without a guard loops forever). */
  | "zero-section"
  /** No footer: the decoder runs to the end of the declared size. */
  | "no-footer";

/** What goes into a crashlog. */
export interface CrashlogInput {
  readonly reason: string;
  readonly firmwareVersion: string;
  readonly timeNs: number;
  /** Mailbox history, oldest first: [msg0 hi, msg0 lo, msg1, time µs, 1 if A2I], 5 words each. */
  readonly history: Uint32Array;
  readonly historyCount: number;
  /** Index the history ring would write next (the `Cmbx` index field). */
  readonly historyIndex: number;
  readonly corrupt: CrashlogCorruption;
  /** Bytes of the buffer the crashlog goes to. */
  readonly capacity: number;
}

/** Fourccs, packed big-endian into a u32 and stored little-endian. */
export const FOURCC_CLHE = 0x434c_4845;
export const FOURCC_CSTR = 0x4373_7472;
export const FOURCC_CVER = 0x4376_6572;
export const FOURCC_CTIM = 0x4374_696d;
export const FOURCC_CMBX = 0x436d_6278;
export const FOURCC_CRG8 = 0x4372_6738;

const HEADER = 0x20;
const SECTION = 0x10;
const CRG8_PAYLOAD = 0x350;
const MBOX_ENTRY = 0x18;
/** The model's crashlog header version (the field's meaning is unknown, rtkit.md §18). */
const CRASHLOG_VERSION = 1;

/** The exception the register dump reports: a BRK (what a firmware panic executes). */
const ESR_BRK = 0xf200_0001;
/** PSR with mode EL1h (`psr & 0xf == 5`). */
const PSR_EL1H = 0x6000_0005;

/**
 * The crashlog bytes (at most `capacity` long; sections that do not fit are left out).
 *
 * **Invariants:** with `corrupt: "none"`, every section size covers its 16-byte header,
 * sizes are multiples of 8, and the header's total size is the offset just past the footer.
 */
export function buildCrashlog(input: CrashlogInput): Uint8Array {
  const text = ascii(`${input.reason}\nfirmware panic at ${input.timeNs} ns`);
  const ver = ascii(input.firmwareVersion);
  const n = input.historyCount;
  const sizes = [
    pad8(SECTION + 16 + ver.length + 1), // Cver
    pad8(SECTION + 4 + text.length + 1), // Cstr
    SECTION + 8, // Ctim
    pad8(SECTION + 28 + n * MBOX_ENTRY), // Cmbx
    SECTION + CRG8_PAYLOAD, // Crg8
  ];
  const total = HEADER + sizes.reduce((a, b) => a + b, 0) + SECTION;
  const out = new Uint8Array(Math.min(total, input.capacity));
  const view = new DataView(out.buffer);
  const fits = (off: number, len: number): boolean => off + len <= out.length;

  let off = HEADER;
  const section = (fourcc: number, size: number): number => {
    const at = off;
    if (fits(at, SECTION)) {
      view.setUint32(at, fourcc, true);
      view.setUint32(at + 12, size, true);
    }
    off += size;
    return at + SECTION;
  };

  // Cver: 16 identifier bytes, then the NUL-terminated version string.
  let p = section(FOURCC_CVER, sizes[0]!);
  if (fits(p, 16 + ver.length)) {
    for (let i = 0; i < 16; i++) out[p + i] = 0x51 + i;
    out.set(ver, p + 16);
  }
  // Cstr: a message id, then the text.
  const cstrAt = off;
  p = section(FOURCC_CSTR, sizes[1]!);
  if (fits(p, 4 + text.length)) {
    view.setUint32(p, 1, true);
    out.set(text, p + 4);
  }
  // Ctim: the crash time, in virtual nanoseconds.
  p = section(FOURCC_CTIM, sizes[2]!);
  if (fits(p, 8)) setU64(view, p, input.timeNs);
  // Cmbx: type at +16, index at +24, entries from +28.
  p = section(FOURCC_CMBX, sizes[3]!);
  if (fits(p, 28 + n * MBOX_ENTRY)) {
    view.setUint32(p + 16, 0, true);
    view.setUint32(p + 24, input.historyIndex, true);
    for (let i = 0; i < n; i++) {
      const h = i * 5;
      const e = p + 28 + i * MBOX_ENTRY;
      view.setUint32(e, input.history[h + 1]!, true);
      view.setUint32(e + 4, input.history[h]!, true);
      view.setUint32(e + 8, input.history[h + 2]!, true);
      view.setUint32(e + 16, input.history[h + 3]!, true);
      view.setUint32(e + 20, input.history[h + 4]!, true);
    }
  }
  // Crg8: the register dump of the panicking thread.
  p = section(FOURCC_CRG8, sizes[4]!);
  if (fits(p, CRG8_PAYLOAD)) {
    for (let i = 0; i < 31; i++) setU64(view, p + 0x8 + i * 8, 0xa000_0000 + i);
    view.setUint32(p + 0x100, 0x0800_4000, true); // sp
    view.setUint32(p + 0x104, 0xffff_fe00, true);
    view.setUint32(p + 0x108, 0x0700_1234, true); // pc
    view.setUint32(p + 0x10c, 0xffff_fe00, true);
    setU64(view, p + 0x110, PSR_EL1H);
    setU64(view, p + 0x118, 0x0030_0000); // cpacr
    setU64(view, p + 0x340, ESR_BRK);
  }
  let end = off;
  if (input.corrupt !== "no-footer") {
    section(FOURCC_CLHE, SECTION);
    end = off;
  }

  if (fits(0, HEADER)) {
    view.setUint32(0, input.corrupt === "bad-magic" ? 0x4b43_5546 : FOURCC_CLHE, true);
    view.setUint32(4, CRASHLOG_VERSION, true);
    view.setUint32(8, input.corrupt === "too-large" ? input.capacity + 0x1000 : end, true);
    view.setUint32(12, 0, true);
  }
  if (input.corrupt === "zero-section" && fits(cstrAt, SECTION)) {
    view.setUint32(cstrAt + 12, 0, true);
  }
  return input.corrupt === "no-footer" ? out.subarray(0, Math.min(end, out.length)) : out;
}

function pad8(n: number): number {
  return (n + 7) & ~7;
}

function setU64(view: DataView, at: number, v: number): void {
  const lo = v % 0x1_0000_0000;
  view.setUint32(at, lo, true);
  view.setUint32(at + 4, (v - lo) / 0x1_0000_0000, true);
}

/** ASCII bytes of `s` (other characters become '?'). */
export function ascii(s: string): Uint8Array {
  const out = new Uint8Array(s.length);
  for (let i = 0; i < s.length; i++) {
    const c = s.charCodeAt(i);
    out[i] = c < 0x80 ? c : 0x3f;
  }
  return out;
}
