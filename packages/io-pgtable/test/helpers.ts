// Shared test fixtures: deterministic memory and allocators, and address helpers.
import {
  BuddyAllocator,
  type Iova,
  type PhysAddr,
  type PhysicalMemory,
  SparseMemory,
} from "@devref/raw-device";

export interface Env {
  readonly mem: SparseMemory;
  readonly pages: BuddyAllocator;
}

/** 1 GiB of table memory at 0x8_0000_0000, allocated deterministically. */
export function env(base: number = 0x8_0000_0000, length: number = 2 ** 30): Env {
  const mem = new SparseMemory();
  return { mem, pages: new BuddyAllocator(mem, base, length) };
}

// SAFETY (for the two casts below): tests pass whole numbers in range; the package checks them again.
export const I = (x: number): Iova => x as Iova;
export const P = (x: number): PhysAddr => x as PhysAddr;

/** The 64-bit word at `pa`, read as two 32-bit words (independently of read64Lo/Hi). */
export function word(mem: SparseMemory, pa: number): bigint {
  return (BigInt(mem.read32(pa + 4)) << 32n) | BigInt(mem.read32(pa));
}

export const SZ_4K = 0x1000;
export const SZ_16K = 0x4000;
export const SZ_64K = 0x1_0000;
export const SZ_2M = 0x20_0000;
export const SZ_32M = 0x200_0000;
export const SZ_512M = 0x2000_0000;
export const SZ_1G = 0x4000_0000;
export const SZ_2G = 0x8000_0000;

/**
 * A PhysicalMemory without page views, over a SparseMemory: tables in it take the path
 * through the memory's methods (the fallback), as any caller-supplied memory does.
 */
export class PlainMemory implements PhysicalMemory {
  constructor(readonly inner: SparseMemory = new SparseMemory()) {}
  get size(): number {
    return this.inner.size;
  }
  read8(pa: number): number {
    return this.inner.read8(pa);
  }
  write8(pa: number, v: number): void {
    this.inner.write8(pa, v);
  }
  read32(pa: number): number {
    return this.inner.read32(pa);
  }
  write32(pa: number, v: number): void {
    this.inner.write32(pa, v);
  }
  read64Lo(pa: number): number {
    return this.inner.read64Lo(pa);
  }
  read64Hi(pa: number): number {
    return this.inner.read64Hi(pa);
  }
  write64(pa: number, lo: number, hi: number): void {
    this.inner.write64(pa, lo, hi);
  }
  readBytes(pa: number, dest: Uint8Array): void {
    this.inner.readBytes(pa, dest);
  }
  writeBytes(pa: number, src: Uint8Array): void {
    this.inner.writeBytes(pa, src);
  }
  zero(pa: number, length: number): void {
    this.inner.zero(pa, length);
  }
}
