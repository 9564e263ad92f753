//! C source: kernel/dma/direct.c, kernel/dma/direct.h (dma_direct_map_phys, the bounce
//! decision, dma_direct_sync_single_for_cpu/device)
//!
//! dma-direct: the device uses the buffer's own address when its mask reaches it, and a
//! swiotlb bounce slot otherwise (or always, when bouncing is forced).

import { DevrefError, formatAddr, type PhysAddr } from "@devref/raw-device";
import { DMA_ATTR_MMIO, DMA_ATTR_SKIP_CPU_SYNC, type DmaDirection } from "./constants.js";
import { VIA_BOUNCE, VIA_DIRECT } from "./debug.js";
import type { DmaState } from "./dma-state.js";
import { swiotlbMapForDevice } from "./swiotlb.js";

/**
 * @internal `dma_direct_map_phys` on checked arguments: direct if the device can reach the
 * buffer, else bounce. Returns the DMA address, or -1 with the reason recorded.
 */
export function directMap(
  d: DmaState,
  pa: number,
  size: number,
  dir: number,
  attrs: number,
  kind: number,
): number {
  if (!d.forceBounce && pa + size - 1 <= d.streamingLimit()) {
    d.track(pa, size, dir, VIA_DIRECT, kind, pa);
    return pa;
  }
  return bounceMap(d, pa, size, dir, attrs, kind);
}

/**
 * The rest of {@link directMap}: a buffer out of the device's reach, bounced through swiotlb
 * (or refused). Kept apart so the in-reach path stays small enough to inline at its caller.
 */
function bounceMap(
  d: DmaState,
  pa: number,
  size: number,
  dir: number,
  attrs: number,
  kind: number,
): number {
  const limit = d.streamingLimit();
  if ((attrs & DMA_ATTR_MMIO) !== 0) {
    return d.mapFailed(
      new DevrefError(
        "EIO",
        `DMA addr ${formatAddr(pa, 1)}+${size} overflow (mask ${formatAddr(limit, 1)}, bus limit 0): ` +
          "MMIO is never bounced; widen the mask",
      ),
      attrs,
    );
  }
  const pool = d.system.swiotlb;
  let bounce: number;
  try {
    bounce = swiotlbMapForDevice(pool, pa, size, dir, attrs, d.device, limit);
  } catch (e) {
    if (DevrefError.is(e)) return d.mapFailed(e, attrs);
    throw e;
  }
  if (bounce + size - 1 > limit) {
    // swiotlb_map: the pool itself is out of the device's reach.
    // SAFETY: bounce is the address the pool just returned.
    pool.unmap(bounce as PhysAddr, size, dir as DmaDirection, DMA_ATTR_SKIP_CPU_SYNC);
    return d.mapFailed(
      new DevrefError(
        "EIO",
        `swiotlb addr ${formatAddr(bounce, 1)}+${size} overflow (mask ${formatAddr(limit, 1)}): the ` +
          "bounce pool lies above the device's mask; place the pool lower",
      ),
      attrs,
    );
  }
  d.track(bounce, size, dir, VIA_BOUNCE, kind, pa);
  return bounce;
}

/**
 * @internal The sync step of dma-direct for a checked, tracked mapping: a bounced one is
 * copied by direction (`is_swiotlb_buffer`); a direct one needs nothing on a coherent
 * system; iommu-dma bounces nothing here (no untrusted devices).
 */
export function directSync(
  d: DmaState,
  addr: number,
  size: number,
  dir: DmaDirection,
  forCpu: boolean,
): void {
  const pool = d.system.swiotlb;
  // SAFETY: for dma-direct a DMA address is the physical address (no dma_range_map).
  const pa = addr as PhysAddr;
  if (d.name !== "dma-direct" || !pool.isBounceAddress(pa)) return;
  if (forCpu) pool.syncForCpu(pa, size, dir);
  else pool.syncForDevice(pa, size, dir);
}
