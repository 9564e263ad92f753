//! The sorted set of IOVA ranges behind IovaDomain: a skip list over typed arrays.
//
// The kernel keeps its ranges in a red-black tree and walks it with rb_prev/rb_next from
// cached node pointers. A skip list gives the same operations — O(log n) search, insert and
// erase, O(1) predecessor and successor through a back link — with stable integer node
// handles that the domain can cache, and it needs no per-operation allocation: nodes live
// in typed arrays that only grow (doubling) when full. Keys are `pfn_lo` values, which are
// unique because ranges never overlap.

/** Handle of the head sentinel; as a result it means "no node". */
export const NIL = 0;

/** Levels per node; with p = 1/4 this covers 4^16 nodes. */
const MAX_LEVEL = 16;

/** Node flag: the range sits in a range-cache magazine (freed, not yet back in the tree). */
export const FLAG_CACHED = 1;
/** Node flag: the range was made or widened by reserve_iova. */
export const FLAG_RESERVED = 2;
/** Node flag: the node is in the list (cleared on removal, so stale handles can be told). */
export const FLAG_LIVE = 4;

/**
 * Sorted, non-overlapping inclusive ranges `[lo, hi]` keyed by `lo`.
 *
 * **Invariants:** for consecutive nodes a, b: `hi[a] < lo[b]`; `prev` and level-0 `next`
 * links are mutual; node handles stay valid until the node is removed.
 */
export class RangeList {
  lo: Float64Array;
  hi: Float64Array;
  flags: Uint8Array;
  /** Level-0 predecessor of each node; {@link NIL} for the first node. */
  prev: Int32Array;
  private level: Uint8Array;
  /** `next[node * MAX_LEVEL + l]`: successor at level `l`, or {@link NIL}. */
  private next: Int32Array;
  private freeList: Int32Array;
  private freeTop: number;
  private fresh: number;
  private capacity: number;
  private top: number;
  private seed: number;
  private readonly update: Int32Array;
  /** Live nodes, not counting the head. */
  size: number;

  constructor(initialCapacity = 256) {
    const cap = Math.max(16, initialCapacity);
    this.capacity = cap;
    this.lo = new Float64Array(cap);
    this.hi = new Float64Array(cap);
    this.flags = new Uint8Array(cap);
    this.prev = new Int32Array(cap);
    this.level = new Uint8Array(cap);
    this.next = new Int32Array(cap * MAX_LEVEL);
    this.freeList = new Int32Array(cap);
    this.freeTop = 0;
    this.fresh = 1;
    this.top = 1;
    // A fixed seed keeps the shape, and so the timing, identical from run to run.
    this.seed = 0x2545f491;
    this.update = new Int32Array(MAX_LEVEL);
    this.size = 0;
    this.lo[NIL] = Number.NEGATIVE_INFINITY;
    this.hi[NIL] = Number.NEGATIVE_INFINITY;
    this.level[NIL] = MAX_LEVEL;
  }

  /** Level-0 successor, or {@link NIL} after the last node. */
  nextOf(node: number): number {
    return this.next[node * MAX_LEVEL]!;
  }

  /** The first node, or {@link NIL}. */
  first(): number {
    return this.next[0]!;
  }

  /** The last node with `lo <= key`, or {@link NIL}. */
  findLE(key: number): number {
    const next = this.next;
    const lo = this.lo;
    let x = NIL;
    for (let l = this.top - 1; l >= 0; l--) {
      let n = next[x * MAX_LEVEL + l]!;
      while (n !== NIL && lo[n]! <= key) {
        x = n;
        n = next[x * MAX_LEVEL + l]!;
      }
    }
    return x;
  }

  /** The node whose range contains `key`, or {@link NIL}. */
  findContaining(key: number): number {
    const x = this.findLE(key);
    return x !== NIL && this.hi[x]! >= key ? x : NIL;
  }

  /** Inserts `[lo, hi]`; the caller guarantees it overlaps no existing range. */
  insert(lo: number, hi: number, flags: number): number {
    const next = this.next;
    const keys = this.lo;
    const update = this.update;
    let x = NIL;
    for (let l = this.top - 1; l >= 0; l--) {
      let n = next[x * MAX_LEVEL + l]!;
      while (n !== NIL && keys[n]! < lo) {
        x = n;
        n = next[x * MAX_LEVEL + l]!;
      }
      update[l] = x;
    }
    const lvl = this.randomLevel();
    if (lvl > this.top) {
      for (let l = this.top; l < lvl; l++) update[l] = NIL;
      this.top = lvl;
    }
    const node = this.allocNode();
    // allocNode may have grown the arrays: read them again.
    const links = this.next;
    this.lo[node] = lo;
    this.hi[node] = hi;
    this.flags[node] = flags | FLAG_LIVE;
    this.level[node] = lvl;
    for (let l = 0; l < lvl; l++) {
      const before = update[l]! * MAX_LEVEL + l;
      links[node * MAX_LEVEL + l] = links[before]!;
      links[before] = node;
    }
    for (let l = lvl; l < MAX_LEVEL; l++) links[node * MAX_LEVEL + l] = NIL;
    const before0 = update[0]!;
    this.prev[node] = before0;
    const after = links[node * MAX_LEVEL]!;
    if (after !== NIL) this.prev[after] = node;
    this.size++;
    return node;
  }

  /** Removes `node`, which must be live. */
  remove(node: number): void {
    const next = this.next;
    const keys = this.lo;
    const update = this.update;
    const key = keys[node]!;
    let x = NIL;
    for (let l = this.top - 1; l >= 0; l--) {
      let n = next[x * MAX_LEVEL + l]!;
      while (n !== NIL && keys[n]! < key) {
        x = n;
        n = next[x * MAX_LEVEL + l]!;
      }
      update[l] = x;
    }
    const lvl = this.level[node]!;
    for (let l = 0; l < lvl; l++) {
      next[update[l]! * MAX_LEVEL + l] = next[node * MAX_LEVEL + l]!;
    }
    const after = next[node * MAX_LEVEL]!;
    if (after !== NIL) this.prev[after] = this.prev[node]!;
    while (this.top > 1 && next[this.top - 1] === NIL) this.top--;
    this.flags[node] = 0;
    this.freeList[this.freeTop++] = node;
    this.size--;
  }

  private randomLevel(): number {
    // xorshift32: deterministic, allocation-free.
    let s = this.seed;
    s ^= s << 13;
    s ^= s >>> 17;
    s ^= s << 5;
    this.seed = s;
    let lvl = 1;
    while ((s & 3) === 0 && lvl < MAX_LEVEL) {
      lvl++;
      s >>>= 2;
    }
    return lvl;
  }

  private allocNode(): number {
    if (this.freeTop > 0) return this.freeList[--this.freeTop]!;
    if (this.fresh === this.capacity) this.grow();
    return this.fresh++;
  }

  private grow(): void {
    const cap = this.capacity * 2;
    const lo = new Float64Array(cap);
    lo.set(this.lo);
    this.lo = lo;
    const hi = new Float64Array(cap);
    hi.set(this.hi);
    this.hi = hi;
    const flags = new Uint8Array(cap);
    flags.set(this.flags);
    this.flags = flags;
    const prev = new Int32Array(cap);
    prev.set(this.prev);
    this.prev = prev;
    const level = new Uint8Array(cap);
    level.set(this.level);
    this.level = level;
    const next = new Int32Array(cap * MAX_LEVEL);
    next.set(this.next);
    this.next = next;
    const freeList = new Int32Array(cap);
    freeList.set(this.freeList);
    this.freeList = freeList;
    this.capacity = cap;
  }
}
