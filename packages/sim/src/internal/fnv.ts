//! FNV-1a 64 over a byte stream, kept as two 32-bit halves so every step is exact in
//! doubles (no bigint).

const PRIME_LOW = 0x1b3; // FNV 64 prime = 2^40 + 0x1b3

/**
 * An incremental FNV-1a 64-bit hash. Numbers are fed as little-endian 32-bit words (the
 * canonical encoding of the trace), strings as their UTF-16 code units behind a length.
 *
 * **Invariants:** the same sequence of `byte`/`u32`/`num`/`str` calls gives the same
 * digest on every host.
 */
export class Fnv64 {
  // The state as two 32-bit halves in a typed array (no boxed doubles on the hot path);
  // every product stays below 2^53, so the arithmetic is exact.
  private readonly st = new Uint32Array([0xcbf2_9ce4, 0x8422_2325]);

  /** Starts over from the FNV offset basis. */
  reset(): void {
    this.st[0] = 0xcbf2_9ce4;
    this.st[1] = 0x8422_2325;
  }

  byte(b: number): void {
    const st = this.st;
    round(st, st[0]!, st[1]!, b);
  }

  /** Feeds the low 32 bits of `v` as four little-endian bytes. */
  u32(v: number): void {
    const st = this.st;
    let hi = st[0]!;
    let lo = st[1]!;
    for (let i = 0; i < 4; i++) {
      // h ^= byte; h *= 2^40 + 0x1b3 (mod 2^64): the 2^40 term only reaches the high half.
      // The carry out of lo * 0x1b3 is computed from 16-bit halves: all integer arithmetic.
      lo ^= (v >>> (8 * i)) & 0xff;
      const carry = ((lo >>> 16) * PRIME_LOW + (((lo & 0xffff) * PRIME_LOW) >>> 16)) >>> 16;
      hi = (Math.imul(hi, PRIME_LOW) + carry + (lo << 8)) | 0;
      lo = Math.imul(lo, PRIME_LOW);
    }
    st[0] = hi;
    st[1] = lo;
  }

  /** Feeds a non-negative safe integer (or any number, by its truncation) as two words. */
  num(v: number): void {
    const lo = v % 0x1_0000_0000;
    this.u32(lo);
    this.u32((v - lo) / 0x1_0000_0000);
  }

  str(s: string): void {
    this.u32(s.length);
    const st = this.st;
    for (let i = 0; i < s.length; i++) {
      const c = s.charCodeAt(i);
      round(st, st[0]!, st[1]!, c);
      round(st, st[0]!, st[1]!, c >>> 8);
    }
  }

  /** The hash as 16 lowercase hex digits. */
  hex(): string {
    return this.st[0]!.toString(16).padStart(8, "0") + this.st[1]!.toString(16).padStart(8, "0");
  }
}

function round(st: Uint32Array, hi: number, lo: number, b: number): void {
  const x = lo ^ (b & 0xff);
  const carry = ((x >>> 16) * PRIME_LOW + (((x & 0xffff) * PRIME_LOW) >>> 16)) >>> 16;
  st[0] = Math.imul(hi, PRIME_LOW) + carry + (x << 8);
  st[1] = Math.imul(x, PRIME_LOW);
}
