//! The DART's translation cache: a bounded, deterministic LRU.

import { checkCount } from "@devref/raw-device";

/** Keys are `sid * 2^32 + n`: one stream's keys form one contiguous range. */
export const SID_KEY = 0x1_0000_0000;

/** One cached entry, as {@link Iotlb.entries} lists it. */
export interface IotlbEntry {
  readonly key: number;
  /** Stream of the entry (`floor(key / 2^32)`). */
  readonly sid: number;
  readonly value: number;
  readonly flags: number;
}

/**
 * A least-recently-used cache of `capacity` entries keyed by numbers, with a number value
 * and 32 bits of flags per entry. Used for the DART's IOTLB (leaf translations) and its
 * optional walk cache (table entries).
 *
 * Which entry is evicted depends only on the sequence of lookups and inserts, so stale
 * entries survive (or not) the same way on every run.
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
  private readonly keys: Float64Array;
  private readonly prev: Int32Array;
  private readonly next: Int32Array;
  private readonly slots = new Map<number, number>();
  private readonly freeSlots: Int32Array;
  private freeTop: number;
  /** Most recently used slot, or -1. */
  private head = -1;
  /** Least recently used slot, or -1. */
  private tail = -1;

  constructor(capacity: number) {
    this.capacity = checkCount("new Iotlb", "capacity", capacity, 1, 1 << 20);
    this.values = new Float64Array(capacity);
    this.flags = new Int32Array(capacity);
    this.keys = new Float64Array(capacity);
    this.prev = new Int32Array(capacity);
    this.next = new Int32Array(capacity);
    this.freeSlots = new Int32Array(capacity);
    for (let i = 0; i < capacity; i++) this.freeSlots[i] = capacity - 1 - i;
    this.freeTop = capacity;
  }

  /** Entries held. */
  get size(): number {
    return this.slots.size;
  }

  /** The slot holding `key` (made most recent), or -1. */
  lookup(key: number): number {
    const slot = this.slots.get(key);
    if (slot === undefined) return -1;
    if (slot !== this.head) {
      this.unlink(slot);
      this.pushHead(slot);
    }
    return slot;
  }

  /** The slot holding `key` without touching the LRU order, or -1. */
  peek(key: number): number {
    return this.slots.get(key) ?? -1;
  }

  /**
   * Stores `key` → (`value`, `flags`) as the most recent entry; returns the key evicted
   * to make room, or -1.
   */
  insert(key: number, value: number, flags: number): number {
    let slot = this.slots.get(key);
    let evicted = -1;
    if (slot !== undefined) {
      this.unlink(slot);
    } else {
      if (this.freeTop === 0) {
        slot = this.tail;
        evicted = this.keys[slot]!;
        this.unlink(slot);
        this.slots.delete(evicted);
      } else {
        slot = this.freeSlots[--this.freeTop]!;
      }
      this.keys[slot] = key;
      this.slots.set(key, slot);
    }
    this.values[slot] = value;
    this.flags[slot] = flags;
    this.pushHead(slot);
    return evicted;
  }

  /** Drops `key`; returns whether it was cached. */
  remove(key: number): boolean {
    const slot = this.slots.get(key);
    if (slot === undefined) return false;
    this.drop(slot);
    return true;
  }

  /** Drops every entry of stream `sid`; returns how many. */
  flushSid(sid: number): number {
    const lo = sid * SID_KEY;
    const hi = lo + SID_KEY;
    let n = 0;
    let slot = this.head;
    while (slot !== -1) {
      const after = this.next[slot]!;
      const k = this.keys[slot]!;
      if (k >= lo && k < hi) {
        this.drop(slot);
        n++;
      }
      slot = after;
    }
    return n;
  }

  /** Drops everything; returns how many entries there were. */
  clear(): number {
    const n = this.slots.size;
    while (this.head !== -1) this.drop(this.head);
    return n;
  }

  /** The entries, most recent first. */
  entries(): IotlbEntry[] {
    const out: IotlbEntry[] = [];
    for (let slot = this.head; slot !== -1; slot = this.next[slot]!) {
      const key = this.keys[slot]!;
      out.push({
        key,
        sid: Math.floor(key / SID_KEY),
        value: this.values[slot]!,
        flags: this.flags[slot]!,
      });
    }
    return out;
  }

  private drop(slot: number): void {
    this.unlink(slot);
    this.slots.delete(this.keys[slot]!);
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
