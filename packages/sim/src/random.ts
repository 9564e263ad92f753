//! The simulator's only source of randomness: a seeded xoshiro128** generator.

import { argumentError, checkCount, checkInteger } from "@devref/raw-device";

/** splitmix32: spreads one seed word into well-mixed state words. */
function splitmix32(state: { s: number }): number {
  state.s = (state.s + 0x9e37_79b9) | 0;
  let z = state.s;
  z = Math.imul(z ^ (z >>> 16), 0x85eb_ca6b);
  z = Math.imul(z ^ (z >>> 13), 0xc2b2_ae35);
  return (z ^ (z >>> 16)) >>> 0;
}

/**
 * A small deterministic pseudo-random generator (xoshiro128**), seeded in the constructor.
 *
 * Models that want jitter (completion latency, command timing) draw from the SoC's one
 * generator, so a run is fixed by its seed and the order of draws.
 *
 * **Invariants:** the same seed and the same sequence of calls give the same values on
 * every host; nothing reads wall time or `Math.random`.
 *
 * **Errors:** `EINVAL` for a seed that is not a safe integer and for bad bounds.
 *
 * @example
 * ```ts
 * const r = new Prng(42);
 * r.below(10); // 0..9, the same on every run with seed 42
 * ```
 */
export class Prng {
  /** The seed this generator started from. */
  readonly seed: number;
  private a: number;
  private b: number;
  private c: number;
  private d: number;

  constructor(seed: number) {
    checkInteger("new Prng", "seed", seed, Number.MIN_SAFE_INTEGER, Number.MAX_SAFE_INTEGER);
    this.seed = seed;
    const lo = seed % 0x1_0000_0000;
    const hi = (seed - lo) / 0x1_0000_0000;
    const st = { s: (lo ^ Math.imul(hi | 0, 0x2545_f491)) | 0 };
    this.a = splitmix32(st);
    this.b = splitmix32(st);
    this.c = splitmix32(st);
    this.d = splitmix32(st);
    if ((this.a | this.b | this.c | this.d) === 0) this.a = 1;
  }

  /** The next unsigned 32-bit value. */
  nextU32(): number {
    const result = Math.imul(rotl(Math.imul(this.b, 5), 7), 9) >>> 0;
    const t = this.b << 9;
    this.c ^= this.a;
    this.d ^= this.b;
    this.b ^= this.c;
    this.a ^= this.d;
    this.c ^= t;
    this.d = rotl(this.d, 11);
    return result;
  }

  /** A float in [0, 1) with 32 bits of randomness. */
  nextFloat(): number {
    return this.nextU32() / 0x1_0000_0000;
  }

  /**
   * A whole number in `[0, n)` (`n` up to 2^32), without modulo bias.
   *
   * **Errors:** `EINVAL` unless `n` is a whole number in `[1, 2^32]`.
   */
  below(n: number): number {
    checkCount("Prng.below", "n", n, 1, 0x1_0000_0000);
    const limit = 0x1_0000_0000 - (0x1_0000_0000 % n);
    for (;;) {
      const v = this.nextU32();
      if (v < limit) return v % n;
    }
  }

  /**
   * A whole number in `[min, max]`.
   *
   * **Errors:** `EINVAL` unless both are safe integers with `0 <= max - min < 2^32`.
   */
  between(min: number, max: number): number {
    checkInteger("Prng.between", "min", min, Number.MIN_SAFE_INTEGER, Number.MAX_SAFE_INTEGER);
    checkInteger("Prng.between", "max", max, min, min + 0xffff_ffff);
    return min + this.below(max - min + 1);
  }

  /**
   * True with probability `p` (clamped to [0, 1]).
   *
   * **Errors:** `EINVAL` for a `p` that is not a number or is NaN.
   */
  chance(p: number): boolean {
    if (typeof p !== "number" || Number.isNaN(p)) {
      throw argumentError("Prng.chance", "p", "a probability, a number (clamped to [0, 1])", p);
    }
    return this.nextFloat() < p;
  }
}

function rotl(x: number, k: number): number {
  return (x << k) | (x >>> (32 - k));
}
