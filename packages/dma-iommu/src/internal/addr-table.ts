// An open-addressing hash table keyed by DMA addresses, for the per-device mapping list.
// A Map with number keys hashes addresses above 2^31 as heap numbers and allocates on every
// insert; this table keeps keys in a Float64Array and allocates only when it grows.

const EMPTY = -1;
const TOMBSTONE = -2;

/** Hash of a whole number below 2^53, from both 32-bit halves. */
function hash(addr: number): number {
  const lo = addr >>> 0;
  const hi = (addr / 4294967296) >>> 0;
  return Math.imul(lo ^ (lo >>> 12) ^ Math.imul(hi, 0x85eb_ca6b), 0x9e37_79b1) >>> 0;
}

/**
 * A map from whole-number addresses (≥ 0) to values.
 *
 * **Invariants:** a live key appears once; at most half the slots are used (live plus
 * deleted), so probes stay short.
 */
export class AddrTable<V> {
  private keys: Float64Array;
  private vals: (V | null)[];
  private mask: number;
  private live: number;
  private used: number;

  constructor(capacity = 64) {
    let cap = 16;
    while (cap < capacity) cap *= 2;
    this.keys = new Float64Array(cap).fill(EMPTY);
    this.vals = new Array<V | null>(cap).fill(null);
    this.mask = cap - 1;
    this.live = 0;
    this.used = 0;
  }

  /** Live keys. */
  get size(): number {
    return this.live;
  }

  private slotOf(addr: number): number {
    const keys = this.keys;
    const mask = this.mask;
    let i = hash(addr) & mask;
    for (;;) {
      const k = keys[i]!;
      if (k === addr) return i;
      if (k === EMPTY) return -1;
      i = (i + 1) & mask;
    }
  }

  get(addr: number): V | undefined {
    const i = this.slotOf(addr);
    // SAFETY: a slot with a live key always holds the value set with it (null only when empty).
    return i < 0 ? undefined : (this.vals[i] as V);
  }

  set(addr: number, value: V): void {
    const keys = this.keys;
    const mask = this.mask;
    let i = hash(addr) & mask;
    let free = -1;
    for (;;) {
      const k = keys[i]!;
      if (k === addr) {
        this.vals[i] = value;
        return;
      }
      if (k === TOMBSTONE && free < 0) free = i;
      if (k === EMPTY) break;
      i = (i + 1) & mask;
    }
    if (free >= 0) i = free;
    else this.used++;
    keys[i] = addr;
    this.vals[i] = value;
    this.live++;
    if (this.used * 2 > keys.length) this.rehash();
  }

  delete(addr: number): boolean {
    const i = this.slotOf(addr);
    if (i < 0) return false;
    const keys = this.keys;
    const mask = this.mask;
    this.vals[i] = null;
    this.live--;
    if (keys[(i + 1) & mask] === EMPTY) {
      // The end of a probe run: this slot and any tombstones just before it become empty,
      // so a steady map/unmap cycle never fills the table with tombstones.
      keys[i] = EMPTY;
      this.used--;
      for (let j = (i - 1) & mask; keys[j] === TOMBSTONE; j = (j - 1) & mask) {
        keys[j] = EMPTY;
        this.used--;
      }
    } else {
      keys[i] = TOMBSTONE;
    }
    return true;
  }

  /** Live values in slot order. */
  values(): V[] {
    const out: V[] = [];
    const keys = this.keys;
    for (let i = 0; i < keys.length; i++) {
      // SAFETY: as in get(): a live key's slot holds its value.
      if (keys[i]! >= 0) out.push(this.vals[i] as V);
    }
    return out;
  }

  private rehash(): void {
    const oldKeys = this.keys;
    const oldVals = this.vals;
    let cap = oldKeys.length;
    if (this.live * 4 > cap) cap *= 2;
    this.keys = new Float64Array(cap).fill(EMPTY);
    this.vals = new Array<V | null>(cap).fill(null);
    this.mask = cap - 1;
    this.live = 0;
    this.used = 0;
    for (let i = 0; i < oldKeys.length; i++) {
      const k = oldKeys[i]!;
      // SAFETY: as in get(): a live key's slot holds its value.
      if (k >= 0) this.set(k, oldVals[i] as V);
    }
  }
}
