//! C header: include/uapi/linux/virtio_ring.h (the layout), drivers/virtio/virtio_ring.c
//! (the other side)
//!
//! The device side of a split virtqueue (VIRTIO 1.2 §2.7): every access goes through the
//! device's DMA master, so rings behind an IOMMU are read through their IOVAs.

import { argumentError, checkCount, checkInteger } from "@devref/raw-device";
import { DMA_STATUS, DmaPort } from "../dma.js";
import { VIRTIO_MSI_NO_VECTOR, VIRTQ } from "./regs.js";

/** One buffer of a descriptor chain. */
export interface ChainSegment {
  readonly addr: number;
  readonly len: number;
  /** Device-writable. */
  readonly write: boolean;
}

/** Outcome of {@link Virtqueue.pop}. */
export const VQ = {
  OK: 0,
  /** Nothing available. */
  EMPTY: 1,
  /** A ring or descriptor could not be read or written (the DMA status says why). */
  DMA_ERROR: 2,
  /** The driver broke a ring rule (the reason is in `Virtqueue.problem`). */
  MALFORMED: 3,
} as const;

/** A {@link VQ} value. */
export type VqResult = (typeof VQ)[keyof typeof VQ];

const TWO32 = 0x1_0000_0000;
const VQ_DESC = VIRTQ.DESC_SIZE;
const VQ_NEXT = VIRTQ.DESC_F_NEXT;
const VQ_WRITE = VIRTQ.DESC_F_WRITE;
const VQ_INDIRECT = VIRTQ.DESC_F_INDIRECT;

/**
 * State and device-side operations of one split virtqueue.
 *
 * **Invariants:** `lastAvail` and `usedIdx` count modulo 2^16; the device never writes the
 * descriptor table or the available ring; a used entry is written before the used index.
 *
 * **Errors:** `EINVAL` for a bad index or size, and for a `dma` that is not a
 * {@link DmaPort} or ring values that are not numbers (ring faults are results, not errors).
 */
export class Virtqueue {
  readonly index: number;
  /** Largest size the device offers. */
  readonly maxSize: number;
  size: number;
  msixVector: number = VIRTIO_MSI_NO_VECTOR;
  enabled = false;
  descLo = 0;
  descHi = 0;
  availLo = 0;
  availHi = 0;
  usedLo = 0;
  usedHi = 0;
  lastAvail = 0;
  usedIdx = 0;
  /** Head of the chain `pop` returned. */
  head = 0;
  /** Segments of the chain `pop` returned, in order. */
  readonly chain: ChainSegment[] = [];
  /** Why the last `pop` said MALFORMED. */
  problem = "";
  private readonly buf = new Uint8Array(VQ_DESC);

  constructor(index: number, maxSize: number) {
    checkInteger("new Virtqueue", "index", index, 0, 0xffff);
    checkCount("new Virtqueue", "maxSize", maxSize, 1, 32768);
    this.index = index;
    this.maxSize = maxSize;
    this.size = maxSize;
  }

  get desc(): number {
    return this.descHi * TWO32 + this.descLo;
  }
  get avail(): number {
    return this.availHi * TWO32 + this.availLo;
  }
  get used(): number {
    return this.usedHi * TWO32 + this.usedLo;
  }

  /** Back to the state after a device reset. */
  reset(): void {
    this.size = this.maxSize;
    this.msixVector = VIRTIO_MSI_NO_VECTOR;
    this.enabled = false;
    this.descLo = this.descHi = this.availLo = this.availHi = this.usedLo = this.usedHi = 0;
    this.lastAvail = 0;
    this.usedIdx = 0;
    this.chain.length = 0;
    this.problem = "";
  }

  /** Why the configuration cannot be enabled, or "" when it can (§4.3, §4.6). */
  configProblem(): string {
    const n = this.size;
    if (n === 0 || n > this.maxSize || (n & (n - 1)) !== 0) {
      return `queue_size ${n} is not a power of two in [1, ${this.maxSize}]`;
    }
    if (this.descLo % 16 !== 0) return "queue_desc is not 16-byte aligned";
    if (this.availLo % 2 !== 0) return "queue_driver is not 2-byte aligned";
    if (this.usedLo % 4 !== 0) return "queue_device is not 4-byte aligned";
    return "";
  }

  /** Whether the driver has made a chain available that the device has not taken. */
  hasAvailable(dma: DmaPort): VqResult | true {
    if (!(dma instanceof DmaPort)) badDma("hasAvailable", dma);
    const idx = dma.read16(this.avail + 2);
    if (dma.status !== DMA_STATUS.OK) return VQ.DMA_ERROR;
    return idx !== this.lastAvail ? true : VQ.EMPTY;
  }

  /** Takes the next available chain into `head` and `chain`. */
  pop(dma: DmaPort, indirect: boolean): VqResult {
    if (!(dma instanceof DmaPort)) badDma("pop", dma);
    const idx = dma.read16(this.avail + 2);
    if (dma.status !== DMA_STATUS.OK) return VQ.DMA_ERROR;
    if (idx === this.lastAvail) return VQ.EMPTY;
    if (((idx - this.lastAvail) & 0xffff) > this.size) {
      return this.#malformed(
        `available index ${idx} ran more than ${this.size} ahead of ${this.lastAvail}`,
      );
    }
    const head = dma.read16(this.avail + 4 + 2 * (this.lastAvail % this.size));
    if (dma.status !== DMA_STATUS.OK) return VQ.DMA_ERROR;
    this.lastAvail = (this.lastAvail + 1) & 0xffff;
    if (head >= this.size)
      return this.#malformed(`head index ${head} is outside the ring of ${this.size}`);
    this.head = head;
    return this.#readChain(dma, head, indirect);
  }

  #readChain(dma: DmaPort, head: number, indirect: boolean): VqResult {
    const chain = this.chain;
    chain.length = 0;
    let total = 0;
    let seenWrite = false;
    let table = this.desc;
    let limit = this.size;
    let inIndirect = false;
    let i = head;
    for (let count = 0; ; count++) {
      if (count >= limit)
        return this.#malformed("descriptor chain loops or is longer than the ring");
      if (!dma.read(table + i * VQ_DESC, this.buf)) return VQ.DMA_ERROR;
      const b = this.buf;
      const lo = (b[0]! | (b[1]! << 8) | (b[2]! << 16) | (b[3]! << 24)) >>> 0;
      const hi = (b[4]! | (b[5]! << 8) | (b[6]! << 16) | (b[7]! << 24)) >>> 0;
      const len = (b[8]! | (b[9]! << 8) | (b[10]! << 16) | (b[11]! << 24)) >>> 0;
      const flags = b[12]! | (b[13]! << 8);
      const next = b[14]! | (b[15]! << 8);
      const addr = hi * TWO32 + lo;
      if ((flags & VQ_INDIRECT) !== 0) {
        if (!indirect) return this.#malformed("INDIRECT descriptor without VIRTIO_F_INDIRECT_DESC");
        if (inIndirect) return this.#malformed("INDIRECT descriptor inside an indirect table");
        if ((flags & VQ_NEXT) !== 0)
          return this.#malformed("descriptor has both INDIRECT and NEXT");
        if (len === 0 || len % VQ_DESC !== 0)
          return this.#malformed(`indirect table length ${len} is not a multiple of 16`);
        table = addr;
        limit = len / VQ_DESC;
        inIndirect = true;
        i = 0;
        count = -1;
        continue;
      }
      if ((flags & VQ_WRITE) !== 0) seenWrite = true;
      else if (seenWrite)
        return this.#malformed("device-readable descriptor after a device-writable one");
      total += len;
      if (total > TWO32) return this.#malformed("chain is longer than 2^32 bytes");
      chain.push({ addr, len, write: (flags & VQ_WRITE) !== 0 });
      if ((flags & VQ_NEXT) === 0) return VQ.OK;
      if (next >= limit)
        return this.#malformed(`next index ${next} is outside the table of ${limit}`);
      i = next;
    }
  }

  /** Writes the used entry, then the used index. False when a write failed. */
  pushUsed(dma: DmaPort, id: number, len: number): boolean {
    if (!(dma instanceof DmaPort)) badDma("pushUsed", dma);
    if (typeof id !== "number" || typeof len !== "number") {
      checkInteger("Virtqueue.pushUsed", "id", id, 0, 0xffff_ffff);
      checkInteger("Virtqueue.pushUsed", "len", len, 0, 0xffff_ffff);
    }
    const used = this.used;
    const slot = used + 4 + 8 * (this.usedIdx % this.size);
    if (!dma.write32(slot, id) || !dma.write32(slot + 4, len)) return false;
    const next = (this.usedIdx + 1) & 0xffff;
    if (!dma.write16(used + 2, next)) return false;
    this.usedIdx = next;
    return true;
  }

  /**
   * Whether the driver wants an interrupt after the used index moved from `old` to
   * `usedIdx`: `vring_need_event` with EVENT_IDX, the NO_INTERRUPT hint otherwise. A failed
   * read counts as "yes" (an extra interrupt is harmless).
   */
  wantsInterrupt(dma: DmaPort, eventIdx: boolean, old: number): boolean {
    if (!(dma instanceof DmaPort)) badDma("wantsInterrupt", dma);
    if (typeof old !== "number") checkInteger("Virtqueue.wantsInterrupt", "old", old, 0, 0xffff);
    if (eventIdx) {
      const event = dma.read16(this.avail + 4 + 2 * this.size);
      if (dma.status !== DMA_STATUS.OK) return true;
      return ((this.usedIdx - event - 1) & 0xffff) < ((this.usedIdx - old) & 0xffff);
    }
    const flags = dma.read16(this.avail);
    if (dma.status !== DMA_STATUS.OK) return true;
    return (flags & VIRTQ.AVAIL_F_NO_INTERRUPT) === 0;
  }

  /** With EVENT_IDX: asks to be kicked for the next entry after `lastAvail`. */
  publishAvailEvent(dma: DmaPort): boolean {
    if (!(dma instanceof DmaPort)) badDma("publishAvailEvent", dma);
    return dma.write16(this.used + 4 + 8 * this.size, this.lastAvail);
  }

  #malformed(why: string): VqResult {
    this.problem = why;
    return VQ.MALFORMED;
  }
}

function badDma(method: string, dma: unknown): never {
  throw argumentError(`Virtqueue.${method}`, "dma", "the device's DmaPort", dma);
}
