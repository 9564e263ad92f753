//! FNV-1a 64 over a byte stream, kept as four 16-bit limbs so every step stays on small
//! integers (no bigint, no float rounding).

const PRIME_LOW = 0x1b3; // FNV 64 prime = 2^40 + 0x1b3

/**
 * An incremental FNV-1a 64-bit hash. Numbers are fed as little-endian 32-bit words (the
 * canonical encoding of the trace), strings as their UTF-16 code units behind a length.
 *
 * **Invariants:** the same sequence of `byte`/`u32`/`num`/`str` calls gives the same
 * digest on every host.
 */
export class Fnv64 {
  private h0 = 0x2325;
  private h1 = 0x8422;
  private h2 = 0x9ce4;
  private h3 = 0xcbf2;

  /** Starts over from the FNV offset basis. */
  reset(): void {
    this.h0 = 0x2325;
    this.h1 = 0x8422;
    this.h2 = 0x9ce4;
    this.h3 = 0xcbf2;
  }

  byte(b: number): void {
    // h ^= b; h *= 2^40 + 0x1b3 (mod 2^64), limb by limb.
    const x0 = this.h0 ^ (b & 0xff);
    const x1 = this.h1;
    let t0 = x0 * PRIME_LOW;
    let t1 = x1 * PRIME_LOW;
    let t2 = this.h2 * PRIME_LOW + (x0 << 8);
    let t3 = this.h3 * PRIME_LOW + (x1 << 8);
    t1 += t0 >>> 16;
    t0 &= 0xffff;
    t2 += t1 >>> 16;
    t1 &= 0xffff;
    t3 += t2 >>> 16;
    t2 &= 0xffff;
    this.h0 = t0;
    this.h1 = t1;
    this.h2 = t2;
    this.h3 = t3 & 0xffff;
  }

  /** Feeds the low 32 bits of `v` as four little-endian bytes. */
  u32(v: number): void {
    this.byte(v);
    this.byte(v >>> 8);
    this.byte(v >>> 16);
    this.byte(v >>> 24);
  }

  /** Feeds a non-negative safe integer (or any number, by its truncation) as two words. */
  num(v: number): void {
    const lo = v % 0x1_0000_0000;
    this.u32(lo);
    this.u32((v - lo) / 0x1_0000_0000);
  }

  str(s: string): void {
    this.u32(s.length);
    for (let i = 0; i < s.length; i++) {
      const c = s.charCodeAt(i);
      this.byte(c);
      this.byte(c >>> 8);
    }
  }

  /** The hash as 16 lowercase hex digits. */
  hex(): string {
    const part = (n: number): string => n.toString(16).padStart(4, "0");
    return part(this.h3) + part(this.h2) + part(this.h1) + part(this.h0);
  }
}
