//! 64-bit quantities as 32-bit halves, so no value above 2^31 ever meets a bitwise operator.

/** 2^32, the weight of a high word. */
export const TWO32 = 4294967296;

/** High word of a non-negative integer below 2^64 (exact below 2^53). */
export function hiOf(x: number): number {
  return (x / TWO32) >>> 0;
}

/** Whether the single-bit `size` is set in `bitmap` (both whole numbers below 2^53). */
export function bitmapHas(bitmap: number, size: number): boolean {
  return Math.floor(bitmap / size) % 2 === 1;
}

/** `a & b` for whole numbers below 2^53. */
export function and53(a: number, b: number): number {
  return ((hiOf(a) & hiOf(b)) >>> 0) * TWO32 + ((a >>> 0) & ((b >>> 0) >>> 0));
}

/** The lowest set bit of a whole number below 2^53, or 0. */
export function lowestBit(n: number): number {
  const lo = n >>> 0;
  if (lo !== 0) return (lo & -lo) >>> 0;
  const hi = hiOf(n);
  return hi === 0 ? 0 : ((hi & -hi) >>> 0) * TWO32;
}

/** The highest set bit of a whole number below 2^53, or 0. */
export function highestBit(n: number): number {
  const hi = hiOf(n);
  if (hi !== 0) return 2 ** (31 - Math.clz32(hi)) * TWO32;
  const lo = n >>> 0;
  return lo === 0 ? 0 : 2 ** (31 - Math.clz32(lo));
}

/** log2 of a power of two below 2^53; -1 for anything else. */
export function log2Exact(n: number): number {
  if (!(n >= 1 && n <= 2 ** 52)) return -1;
  const hi = hiOf(n);
  const lg = hi !== 0 ? 63 - Math.clz32(hi) : 31 - Math.clz32(n >>> 0);
  return 2 ** lg === n ? lg : -1;
}

/** Whether `n` is a whole number in [0, 2^53). */
export function isWhole(n: unknown): n is number {
  return typeof n === "number" && Number.isSafeInteger(n) && n >= 0;
}

/** `0x` and 16 hex digits for a 64-bit word given as halves. */
export function hex64(hi: number, lo: number): string {
  return `0x${(hi >>> 0).toString(16).padStart(8, "0")}_${(lo >>> 0).toString(16).padStart(8, "0")}`;
}

/** `0x` and hex digits, with `_` every four digits for readability. */
export function hexAddr(x: number | bigint, digits = 12): string {
  const s = x.toString(16).padStart(digits, "0");
  let out = "";
  for (let i = 0; i < s.length; i++) {
    if (i > 0 && (s.length - i) % 4 === 0) out += "_";
    out += s[i];
  }
  return `0x${out}`;
}

/** Human size: 4K, 2M, 1G, 4T. */
export function sizeName(size: number): string {
  const units = ["", "K", "M", "G", "T", "P"];
  let u = 0;
  let v = size;
  while (v >= 1024 && v % 1024 === 0 && u < units.length - 1) {
    v /= 1024;
    u++;
  }
  return `${v}${units[u]}`;
}
