//! C source: drivers/virtio/virtio_ring.c (the split ring: vring_size, virtqueue_add_split,
//! virtqueue_kick_prepare_split, virtqueue_get_buf_ctx_split, virtqueue_enable_cb_delayed)
//! Rules: VIRTIO 1.2 §2.7.
//!
//! The driver's side of one split virtqueue, laid out in a coherent DMA buffer: the
//! descriptor table, the available ring (driver area) and the used ring (device area).
//! The device reaches all three at the buffer's DMA address (an IOVA behind an IOMMU).

import type { CoherentAllocation } from "@devref/dma-iommu";
import { VRING } from "./regs.js";

const TWO32 = 0x1_0000_0000;

/** Where the three parts of a split ring of `size` entries sit, from a 16-byte aligned base. */
export interface RingLayout {
  readonly size: number;
  readonly desc: number;
  readonly avail: number;
  readonly used: number;
  /** Bytes the ring takes, event-index fields included. */
  readonly bytes: number;
}

/**
 * Lays a ring of `size` entries out from offset `base` (16-byte aligned): descriptors (16
 * bytes each), the available ring (`6 + 2·size`, 2-aligned) and the used ring
 * (`6 + 8·size`, placed 4-aligned), as §2.7 asks. The caller keeps the bytes up to the
 * next 4-byte boundary free as well ({@link SplitRing.reset} clears whole words).
 */
export function ringLayout(base: number, size: number): RingLayout {
  const desc = base;
  const avail = desc + VRING.DESC_SIZE * size;
  const availBytes = VRING.RING_HEADER + 2 * size + 2;
  const used = align(avail + availBytes, 4);
  const usedBytes = VRING.RING_HEADER + VRING.USED_ELEM_SIZE * size + 2;
  return { size, desc, avail, used, bytes: used + usedBytes - base };
}

/** Rounds `n` up to a multiple of `a` (a power of two). */
export function align(n: number, a: number): number {
  return Math.ceil(n / a) * a;
}

/**
 * One split virtqueue as the driver keeps it.
 *
 * **Invariants:** `availIdx` and `lastUsed` count modulo 2^16 and only go up; the driver
 * never writes the used ring except its `flags` (zero, at reset); a descriptor chain is
 * written before its head is published, and the head before the index.
 *
 * **Errors:** the coherent buffer's accessors throw `ENODEV` once the binding ended.
 *
 * @example
 * ```ts
 * const q = new SplitRing(ring, ringLayout(0, 128), true);
 * q.writeDesc(0, hdrAddr, 16, VRING.DESC_F_NEXT, 1);
 * const old = q.publish(0);
 * if (q.needsKick(old)) notify();
 * ```
 */
export class SplitRing {
  readonly layout: RingLayout;
  /** Entries in the ring. */
  readonly size: number;
  /** Whether `VIRTIO_F_EVENT_IDX` was negotiated. */
  readonly eventIdx: boolean;
  /** The next free slot of the available ring, as the device will see it in `idx`. */
  private availIdx = 0;
  /** How far the driver has consumed the used ring. */
  private lastUsed = 0;
  /** Length of the last used entry {@link popUsed} returned. */
  usedLen = 0;
  private readonly mem: CoherentAllocation;

  constructor(mem: CoherentAllocation, layout: RingLayout, eventIdx: boolean) {
    this.mem = mem;
    this.layout = layout;
    this.size = layout.size;
    this.eventIdx = eventIdx;
  }

  /** Device addresses of the three parts (what `queue_desc`/`queue_driver`/`queue_device` get). */
  get descAddr(): number {
    return this.mem.dmaAddr + this.layout.desc;
  }
  get availAddr(): number {
    return this.mem.dmaAddr + this.layout.avail;
  }
  get usedAddr(): number {
    return this.mem.dmaAddr + this.layout.used;
  }

  /** Back to the state after allocation: zeroed rings (used `flags` 0, §2.7.6), indices 0. */
  reset(): void {
    const l = this.layout;
    // Whole words up to the 4-byte boundary after the ring: the trailing avail_event too.
    const end = l.desc + align(l.bytes, 4);
    for (let off = l.desc; off < end; off += 4) this.mem.write32(off, 0);
    this.availIdx = 0;
    this.lastUsed = 0;
    this.usedLen = 0;
  }

  /** Writes descriptor `i`: a buffer at device address `addr` of `len` bytes. */
  writeDesc(i: number, addr: number, len: number, flags: number, next: number): void {
    const off = this.layout.desc + VRING.DESC_SIZE * i;
    const mem = this.mem;
    mem.write64(off, addr % TWO32, Math.floor(addr / TWO32));
    mem.write32(off + 8, len);
    mem.write32(off + 12, (flags | (next << 16)) >>> 0);
  }

  /**
   * Makes the chain starting at `head` available and returns the old available index (for
   * {@link needsKick}).
   */
  publish(head: number): number {
    const old = this.availIdx;
    const entry = this.layout.avail + VRING.RING_HEADER + 2 * (old % this.size);
    this.mem.write8(entry, head & 0xff);
    this.mem.write8(entry + 1, head >>> 8);
    this.availIdx = (old + 1) & 0xffff;
    // flags (NO_INTERRUPT) stay 0: EVENT_IDX, or every completion, decides interrupts.
    this.mem.write32(this.layout.avail, (this.availIdx << 16) >>> 0);
    return old;
  }

  /**
   * Whether the device wants a notification for the entries published since `old`
   * (`virtqueue_kick_prepare`): with EVENT_IDX `vring_need_event(avail_event, new, old)`,
   * otherwise unless the used ring's `NO_NOTIFY` hint is set.
   */
  needsKick(old: number): boolean {
    const used = this.layout.used;
    if (this.eventIdx) {
      const at = used + VRING.RING_HEADER + VRING.USED_ELEM_SIZE * this.size;
      const event = this.mem.read8(at) | (this.mem.read8(at + 1) << 8);
      return ((this.availIdx - event - 1) & 0xffff) < ((this.availIdx - old) & 0xffff);
    }
    return (this.mem.read32(used) & VRING.USED_F_NO_NOTIFY) === 0;
  }

  /** Whether the device has used entries the driver has not taken. */
  hasUsed(): boolean {
    return this.mem.read32(this.layout.used) >>> 16 !== this.lastUsed;
  }

  /**
   * Takes the next used entry: its head descriptor id (the length is in {@link usedLen}),
   * or -1 when there is none.
   */
  popUsed(): number {
    const used = this.layout.used;
    if (this.mem.read32(used) >>> 16 === this.lastUsed) return -1;
    const elem = used + VRING.RING_HEADER + VRING.USED_ELEM_SIZE * (this.lastUsed % this.size);
    const id = this.mem.read32(elem);
    this.usedLen = this.mem.read32(elem + 4);
    this.lastUsed = (this.lastUsed + 1) & 0xffff;
    return id;
  }

  /**
   * Asks for an interrupt at the next used entry (with EVENT_IDX: `used_event` = what the
   * driver has consumed), and says whether entries arrived meanwhile, which the caller
   * must then take itself (`virtqueue_enable_cb`).
   */
  enableInterrupt(): boolean {
    if (this.eventIdx) {
      const at = this.layout.avail + VRING.RING_HEADER + 2 * this.size;
      this.mem.write8(at, this.lastUsed & 0xff);
      this.mem.write8(at + 1, this.lastUsed >>> 8);
    }
    return this.hasUsed();
  }
}
