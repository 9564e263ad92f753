//! C source: drivers/mfd/macsmc.c (apple_smc_rtkit_shmem_setup, memcpy_toio/memcpy_fromio
//! on the SRAM), drivers/soc/apple/rtkit.c (the dma_alloc_coherent path of a buffer request)
//!
//! The two kinds of memory the SMC and its RTKit firmware share with the AP: the SMC's SRAM
//! (the command buffer, and the system buffers when the firmware keeps them there), reached
//! through the `sram` register window; and coherent DMA memory the AP allocates for the
//! firmware's crashlog, syslog and IOReport buffers when it asks for them.

import type { Device, Devres, MmioRegion } from "@devref/device-core";
import { type CoherentAllocation, dmaAllocCoherent } from "@devref/dma-iommu";
import { type Bound, DevrefError, type DmaAddr } from "@devref/raw-device";
import type { RtkitDma, RtkitDmaBuffer, RtkitIomem } from "@devref/rtkit";

/**
 * The SMC's SRAM through its register window: byte copies in and out (memcpy_toio and
 * memcpy_fromio, as 32-bit accesses where aligned), and copying views of a part of it.
 *
 * **Invariants:** every access stays inside the window; after the binding ends (the
 * window unmapped) every access throws `ENODEV`.
 *
 * **Errors:** `EINVAL` for a range outside the window; `ENODEV` once unmapped.
 */
export class SramWindow {
  /** Physical address of the window's first byte. */
  readonly start: number;
  readonly size: number;
  private readonly regs: Devres<MmioRegion>;

  constructor(regs: Devres<MmioRegion>, start: number, size: number) {
    this.regs = regs;
    this.start = start;
    this.size = size;
  }

  /** Whether `[addr, addr + size)` lies inside the SRAM (a physical address range). */
  contains(addr: number, size: number): boolean {
    return (
      Number.isSafeInteger(addr) &&
      size > 0 &&
      addr >= this.start &&
      addr + size <= this.start + this.size
    );
  }

  /** memcpy_fromio: `dest.length` bytes at window offset `offset`. */
  read(offset: number, dest: Uint8Array): void {
    const r = this.region(offset, dest.length);
    let i = 0;
    const n = dest.length;
    while (i < n && ((offset + i) & 3) !== 0) dest[i] = r.read8(offset + i++);
    for (; i + 4 <= n; i += 4) {
      const w = r.read32(offset + i);
      dest[i] = w & 0xff;
      dest[i + 1] = (w >>> 8) & 0xff;
      dest[i + 2] = (w >>> 16) & 0xff;
      dest[i + 3] = w >>> 24;
    }
    for (; i < n; i++) dest[i] = r.read8(offset + i);
  }

  /** memcpy_toio: `src` to window offset `offset`. */
  write(offset: number, src: Uint8Array): void {
    const r = this.region(offset, src.length);
    let i = 0;
    const n = src.length;
    while (i < n && ((offset + i) & 3) !== 0) r.write8(offset + i, src[i++]!);
    for (; i + 4 <= n; i += 4) {
      const w = src[i]! | (src[i + 1]! << 8) | (src[i + 2]! << 16) | (src[i + 3]! << 24);
      r.write32(offset + i, w >>> 0);
    }
    for (; i < n; i++) r.write8(offset + i, src[i]!);
  }

  /** A copying view of `size` bytes at window offset `offset`, for RTKit (the kernel's `iomem`). */
  iomem(offset: number, size: number): RtkitIomem {
    this.check(offset, size);
    return {
      readBytes: (o: number, dest: Uint8Array) => {
        if (!(Number.isInteger(o) && o >= 0 && o + dest.length <= size)) {
          throw new DevrefError(
            "EINVAL",
            `SRAM buffer: bytes ${o}..${o + dest.length} are outside its ${size} bytes`,
          );
        }
        this.read(offset + o, dest);
      },
    };
  }

  private check(offset: number, length: number): void {
    if (!(Number.isInteger(offset) && offset >= 0 && offset + length <= this.size)) {
      throw new DevrefError(
        "EINVAL",
        `SRAM: bytes ${offset}..${offset + length} are outside the 0x${this.size.toString(16)}-byte window`,
      );
    }
  }

  private region(offset: number, length: number): MmioRegion {
    this.check(offset, length);
    const r = this.regs.tryAccess();
    if (r === undefined) {
      throw new DevrefError(
        "ENODEV",
        "SRAM: the window was unmapped (the driver unbound); nothing can be read or written",
      );
    }
    return r;
  }
}

/** An {@link RtkitDma} over coherent allocations, with what it has handed out. */
export interface CoherentRtkitDma extends RtkitDma {
  /** Buffers handed out and not yet freed. */
  readonly live: number;
  /** Bytes handed out and not yet freed. */
  readonly bytes: number;
}

/**
 * RTKit's `dma` allocator over `@devref/dma-iommu` coherent allocations of `dev` (the
 * dma_alloc_coherent path of a buffer request): each buffer is a devres-managed
 * `dmaAllocCoherent`, so whatever RTKit has not freed goes at unbind; the CPU reads it
 * through an `iomem` accessor (the allocation's `readBytes`), since simulated RAM has no
 * direct view. Behind an IOMMU the address RTKit sends the firmware is the IOVA.
 *
 * **Invariants:** `alloc` works only while the binding lasts (null afterwards); `free`
 * takes exactly what `alloc` gave.
 *
 * **Errors:** `alloc` returns null when the DMA layer has no memory under the device's
 * coherent mask (`ENOMEM`) and rethrows other errors; `free` throws `EINVAL` for an address
 * it did not hand out.
 *
 * @example
 * ```ts
 * probe(dev) {
 *   dmaSetMaskAndCoherent(dev, 44);
 *   const rtk = devmRtkit(dev, { transport, dma: coherentRtkitDma(dev) });
 * }
 * ```
 */
export function coherentRtkitDma(dev: Device<Bound>): CoherentRtkitDma {
  const live = new Map<number, CoherentAllocation>();
  let bytes = 0;
  const allocBound = dev.devmCallback((d, size: number) => dmaAllocCoherent(d, size), "rtkit dma");
  const alloc = (size: number): RtkitDmaBuffer | null => {
    let a: CoherentAllocation | undefined;
    try {
      a = allocBound(size);
    } catch (e) {
      if (e instanceof DevrefError && e.code === "ENOMEM") return null;
      throw e;
    }
    if (a === undefined) return null;
    const buf = a;
    live.set(buf.dmaAddr, buf);
    bytes += buf.size;
    return {
      iova: buf.dmaAddr,
      iomem: { readBytes: (offset: number, dest: Uint8Array) => buf.readBytes(offset, dest) },
    };
  };
  const free = (iova: DmaAddr, size: number): void => {
    const a = live.get(iova);
    if (a === undefined || a.size !== size) {
      throw new DevrefError(
        "EINVAL",
        `coherent RTKit buffer at 0x${iova.toString(16)} (+${size}) was not handed out by this allocator`,
      );
    }
    live.delete(iova);
    bytes -= size;
    a.free();
  };
  return {
    alloc,
    free,
    get live() {
      return live.size;
    },
    get bytes() {
      return bytes;
    },
  };
}
