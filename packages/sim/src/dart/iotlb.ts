//! The DART's translation cache: a bounded, deterministic LRU on typed arrays.

import { checkCount } from "@devref/raw-device";

/** One cached entry, as {@link Iotlb.entries} lists it. */
export interface IotlbEntry {
  /** Tag: the stream in bits 7:0 (the walk cache adds a level above them). */
  readonly tag: number;
  /** Stream of the entry (`tag & 0xff`). */
  readonly sid: number;
  /** Page number (or table prefix) within the tag. */
  readonly n: number;
  readonly value: number;
  readonly flags: number;
}

const EMPTY = -1;

/**
 * A least-recently-used cache of `capacity` entries keyed by a (tag, n) pair of small
 * integers, with a number value and 32 bits of flags per entry. Used for the DART's IOTLB
 * (tag = stream, n = DVA page) and its optional walk cache (tag = stream + 256 × level,
 * n = table prefix).
 *
 * Lookups go through an open-addressing hash on typed arrays (no allocation, no boxed
 * keys); the LRU order is a doubly linked list over slots. Which entry is evicted depends
 * only on the sequence of lookups and inserts, so stale entries survive (or not) the same
 * way on every run.
 *
 * **Invariants:** at most `capacity` entries; a lookup hit makes the entry most recent; an
 * insert into a full cache evicts the least recent entry; nothing but `remove`, `flushSid`,
 * `clear` and eviction drops an entry.
 *
 * **Errors:** `EINVAL` for a capacity outside [1, 2^20].
 */
export class Iotlb {
  readonly capacity: number;
  /** Value of each slot (read after a successful lookup). */
  readonly values: Float64Array;
  /** Flags of each slot (read after a successful lookup). */
  readonly flags: Int32Array;
  private readonly tags: Int32Array;
  private readonly ns: Int32Array;
  private readonly prev: Int32Array;
  private readonly next: Int32Array;
  /** Hash buckets: slot index or EMPTY; linear probing. */
  private readonly buckets: Int32Array;
  private readonly mask: number;
  private readonly freeSlots: Int32Array;
  private freeTop: number;
  private count = 0;
  /** Most recently used slot, or -1. */
  private head = -1;
  /** Least recently used slot, or -1. */
  private tail = -1;

  constructor(capacity: number) {
    this.capacity = checkCount("new Iotlb", "capacity", capacity, 1, 1 << 20);
    this.values = new Float64Array(capacity);
    this.flags = new Int32Array(capacity);
    this.tags = new Int32Array(capacity);
    this.ns = new Int32Array(capacity);
    this.prev = new Int32Array(capacity);
    this.next = new Int32Array(capacity);
    let buckets = 4;
    while (buckets < capacity * 2) buckets *= 2;
    this.buckets = new Int32Array(buckets).fill(EMPTY);
    this.mask = buckets - 1;
    this.freeSlots = new Int32Array(capacity);
    for (let i = 0; i < capacity; i++) this.freeSlots[i] = capacity - 1 - i;
    this.freeTop = capacity;
  }

  /** Entries held. */
  get size(): number {
    return this.count;
  }

  /** The slot holding (tag, n), made most recent, or -1. */
  lookup(tag: number, n: number): number {
    const slot = this.find(tag, n);
    if (slot >= 0 && slot !== this.head) {
      this.unlink(slot);
      this.pushHead(slot);
    }
    return slot;
  }

  /** The slot holding (tag, n) without touching the LRU order, or -1. */
  peek(tag: number, n: number): number {
    return this.find(tag, n);
  }

  /**
   * Stores (tag, n) → (`value`, `flags`) as the most recent entry; returns the slot that
   * was evicted to make room (its tag/n are gone), or -1.
   */
  insert(tag: number, n: number, value: number, flags: number): number {
    let slot = this.find(tag, n);
    let evicted = -1;
    if (slot >= 0) {
      this.unlink(slot);
    } else {
      if (this.freeTop === 0) {
        slot = this.tail;
        evicted = slot;
        this.unlink(slot);
        this.unhash(slot);
        this.count--;
      } else {
        slot = this.freeSlots[--this.freeTop]!;
      }
      this.tags[slot] = tag;
      this.ns[slot] = n;
      this.hash(slot);
      this.count++;
    }
    this.values[slot] = value;
    this.flags[slot] = flags;
    this.pushHead(slot);
    return evicted;
  }

  /** Drops (tag, n); returns whether it was cached. */
  remove(tag: number, n: number): boolean {
    const slot = this.find(tag, n);
    if (slot < 0) return false;
    this.drop(slot);
    return true;
  }

  /** Drops every entry whose tag's low byte is `sid`; returns how many. */
  flushSid(sid: number): number {
    let dropped = 0;
    let slot = this.head;
    while (slot !== -1) {
      const after = this.next[slot]!;
      if ((this.tags[slot]! & 0xff) === sid) {
        this.drop(slot);
        dropped++;
      }
      slot = after;
    }
    return dropped;
  }

  /** Drops everything; returns how many entries there were. */
  clear(): number {
    const n = this.count;
    while (this.head !== -1) this.drop(this.head);
    return n;
  }

  /** The entries, most recent first. */
  entries(): IotlbEntry[] {
    const out: IotlbEntry[] = [];
    for (let slot = this.head; slot !== -1; slot = this.next[slot]!) {
      const tag = this.tags[slot]!;
      out.push({
        tag,
        sid: tag & 0xff,
        n: this.ns[slot]!,
        value: this.values[slot]!,
        flags: this.flags[slot]!,
      });
    }
    return out;
  }

  private bucketOf(tag: number, n: number): number {
    return ((Math.imul(n, 0x9e37_79b1) ^ Math.imul(tag + 1, 0x85eb_ca77)) >>> 0) & this.mask;
  }

  private find(tag: number, n: number): number {
    const buckets = this.buckets;
    const mask = this.mask;
    for (let b = this.bucketOf(tag, n); ; b = (b + 1) & mask) {
      const slot = buckets[b]!;
      if (slot === EMPTY) return -1;
      if (this.ns[slot] === n && this.tags[slot] === tag) return slot;
    }
  }

  private hash(slot: number): void {
    const buckets = this.buckets;
    const mask = this.mask;
    let b = this.bucketOf(this.tags[slot]!, this.ns[slot]!);
    while (buckets[b] !== EMPTY) b = (b + 1) & mask;
    buckets[b] = slot;
  }

  /** Removes `slot` from its bucket, shifting later entries of the run back (no tombstones). */
  private unhash(slot: number): void {
    const buckets = this.buckets;
    const mask = this.mask;
    let b = this.bucketOf(this.tags[slot]!, this.ns[slot]!);
    while (buckets[b] !== slot) b = (b + 1) & mask;
    let hole = b;
    for (let i = (hole + 1) & mask; buckets[i] !== EMPTY; i = (i + 1) & mask) {
      const s = buckets[i]!;
      const home = this.bucketOf(this.tags[s]!, this.ns[s]!);
      // Move s into the hole if its home is not cyclically in (hole, i].
      if (((i - home) & mask) >= ((i - hole) & mask)) {
        buckets[hole] = s;
        hole = i;
      }
    }
    buckets[hole] = EMPTY;
  }

  private drop(slot: number): void {
    this.unlink(slot);
    this.unhash(slot);
    this.count--;
    this.freeSlots[this.freeTop++] = slot;
  }

  private unlink(slot: number): void {
    const p = this.prev[slot]!;
    const n = this.next[slot]!;
    if (p === -1) this.head = n;
    else this.next[p] = n;
    if (n === -1) this.tail = p;
    else this.prev[n] = p;
  }

  private pushHead(slot: number): void {
    this.prev[slot] = -1;
    this.next[slot] = this.head;
    if (this.head !== -1) this.prev[this.head] = slot;
    this.head = slot;
    if (this.tail === -1) this.tail = slot;
  }
}
