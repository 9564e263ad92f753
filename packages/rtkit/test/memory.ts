// Coherent DMA memory for tests: buffers by IOVA, so the scripted firmware can read and
// write what the client reads.
import { type DmaAddr, dmaAddr } from "@devref/raw-device";
import type { RtkitDma } from "@devref/rtkit";

export class TestDma implements RtkitDma {
  readonly buffers: Map<number, Uint8Array> = new Map();
  allocs = 0;
  frees = 0;
  /** Fail the next allocations. */
  failNext = 0;
  private next: number;

  constructor(base = 0x1_0000_0000) {
    this.next = base;
  }

  alloc(size: number): { iova: DmaAddr; bytes: Uint8Array } | null {
    if (this.failNext > 0) {
      this.failNext--;
      return null;
    }
    const iova = this.next;
    this.next += Math.ceil(size / 0x4000) * 0x4000 + 0x4000;
    const bytes = new Uint8Array(size);
    this.buffers.set(iova, bytes);
    this.allocs++;
    return { iova: dmaAddr(iova), bytes };
  }

  free(iova: DmaAddr, size: number): void {
    const b = this.buffers.get(iova);
    if (b === undefined || b.length !== size) throw new Error(`bad free of ${iova}/${size}`);
    this.buffers.delete(iova);
    this.frees++;
  }

  get live(): number {
    return this.buffers.size;
  }
}
