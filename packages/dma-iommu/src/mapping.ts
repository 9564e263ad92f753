//! C header: include/linux/dma-mapping.h (streaming mappings)
//! C source: kernel/dma/mapping.c (dma_map_page_attrs, dma_unmap_page_attrs, the sync calls:
//! the dispatch between dma-direct and iommu-dma)

import type { Device } from "@devref/device-core";
import {
  type Bound,
  checkAddress,
  checkSize,
  DevrefError,
  type DmaAddr,
  formatAddr,
  PHYS_ADDR_LIMIT,
  type PhysAddr,
} from "@devref/raw-device";
import { DMA_MAPPING_ERROR, type DmaDirection } from "./constants.js";
import { KIND_SINGLE } from "./debug.js";
import { directMap, directSync } from "./direct.js";
import { iommuDmaMapPage } from "./dma-iommu.js";
import { type DmaState, dmaOfArgument, unmapEntry } from "./dma-state.js";
import {
  checkAttrs,
  checkDevice,
  checkDmaHandle,
  checkMapDirection,
  isWhole,
} from "./internal/checks.js";
import { IOMMU_DOMAIN_IDENTITY } from "./iommu.js";

/** The largest physical address (2^52 − 1). */
const PHYS_LAST: number = PHYS_ADDR_LIMIT - 1;

/** @internal Checks a buffer against physical memory (EFAULT: the kernel would fault on it). */
export function checkBuffer(d: DmaState, pa: number, size: number, what: string): void {
  if (pa + size > d.memoryEnd) {
    throw new DevrefError(
      "EFAULT",
      `${what}(${d.device}): buffer ${formatAddr(pa, 1)}+${size} is outside physical memory`,
    );
  }
}

/** Why a device behind an IOMMU cannot map through the DMA API right now. */
function noTranslation(d: DmaState, attrs: number, gone: boolean): number {
  const dom = d.client?.group.domain ?? null;
  return d.mapFailed(
    new DevrefError(
      gone ? "ENODEV" : "EIO",
      gone
        ? `${d.device}: its IOMMU was unregistered; no DMA is possible until it is back and the driver rebinds`
        : `${d.device}: its IOMMU group is attached to a ${dom === null ? "missing" : dom.type === 0 ? "BLOCKED" : "driver-managed"} ` +
            "domain; the DMA API works only on the default domain",
    ),
    attrs,
  );
}

/**
 * @internal Dispatches one checked buffer to dma-direct or iommu-dma (`dma_map_phys`):
 * returns the DMA address, or -1 with the reason recorded. The device's IOMMU data is read
 * from its slot at every call, so an IOMMU that went away is seen at once.
 */
export function mapOne(
  d: DmaState,
  pa: number,
  size: number,
  dir: number,
  attrs: number,
  kind: number,
): number {
  const client = d.client;
  if (client === null) return directMap(d, pa, size, dir, attrs, kind);
  if (client.gone) return noTranslation(d, attrs, true);
  const domain = client.group.domain;
  if (domain !== null && domain.cookie !== null && !domain.freed) {
    return iommuDmaMapPage(d, domain, pa, size, dir, attrs, kind);
  }
  if (domain !== null && domain.type === IOMMU_DOMAIN_IDENTITY) {
    return directMap(d, pa, size, dir, attrs, kind);
  }
  return noTranslation(d, attrs, false);
}

/**
 * `dma_map_single` / `dma_map_page_attrs`: hands `size` bytes at `pa` to the device and
 * returns the address the device must use: the buffer itself (dma-direct, within the
 * mask), a swiotlb bounce slot (above the mask; the data is copied in now), or an IOVA
 * (behind an IOMMU). From now until unmap or `dmaSyncSingleForCpu`, the device owns it.
 *
 * Failures the kernel reports by value come back as {@link DMA_MAPPING_ERROR}; check with
 * {@link dmaMappingError}, and read the reason (device, mask, pool or IOVA state) from
 * {@link dmaLastError}. A warning is logged unless `DMA_ATTR_NO_WARN`.
 *
 * **Errors (thrown, as the kernel's BUG/WARN cases):** `EINVAL` for a bad argument (a
 * non-device, a size that is not a whole number ≥ 1, a direction other than the three a
 * mapping may use, unknown attributes) or a device not configured; `EFAULT` for a buffer
 * outside memory; `ENODEV` on a revoked borrow.
 *
 * @example
 * ```ts
 * const addr = dmaMapSingle(dev, buf, 1500, DMA_TO_DEVICE);
 * if (dmaMappingError(dev, addr)) throw dmaLastError(dev)!;
 * // … the device reads …
 * dmaUnmapSingle(dev, addr, 1500, DMA_TO_DEVICE);
 * ```
 */
export function dmaMapSingle(
  dev: Device<Bound>,
  pa: PhysAddr,
  size: number,
  dir: DmaDirection,
  attrs = 0,
): DmaAddr {
  const where = "dma_map_single";
  const d = dmaOfArgument(where, dev);
  if (!isWhole(pa, 0, PHYS_LAST)) checkAddress(where, "pa", pa);
  if (!isWhole(size, 1, PHYS_ADDR_LIMIT)) checkSize(where, "size", size);
  checkMapDirection(where, dir);
  checkAttrs(where, attrs);
  checkBuffer(d, pa, size, where);
  // SAFETY: a mapped address is a whole number ≥ 0 below 2^53, or the -1 sentinel.
  return mapOne(d, pa, size, dir, attrs, KIND_SINGLE) as DmaAddr;
}

/**
 * `dma_mapping_error`: whether `addr` is {@link DMA_MAPPING_ERROR}.
 *
 * **Errors:** `EINVAL` for a non-device, or an `addr` that is neither the sentinel nor a
 * whole DMA address.
 */
export function dmaMappingError(dev: Device, addr: DmaAddr): boolean {
  const where = "dma_mapping_error";
  checkDevice(where, dev);
  if (addr === DMA_MAPPING_ERROR) return true;
  checkAddress(where, "addr", addr, Number.MAX_SAFE_INTEGER + 1);
  return false;
}

/**
 * Why the device's last mapping failed (the message names the device, mask and pool state).
 *
 * **Errors:** `EINVAL` for a non-device or an unconfigured one; `ENODEV` for a revoked handle.
 */
export function dmaLastError(dev: Device): DevrefError | null {
  return dmaOfArgument("dmaLastError", dev).lastError;
}

/**
 * `dma_unmap_single`: gives the buffer back to the CPU. A bounced `DMA_FROM_DEVICE` or
 * `DMA_BIDIRECTIONAL` mapping is copied back to the buffer first (unless
 * `DMA_ATTR_SKIP_CPU_SYNC`); an IOMMU mapping is unmapped and its IOVA freed (strict) or
 * queued (flush queue).
 *
 * **Errors:** `EINVAL` (dma-debug's checks) for a bad argument, `DMA_MAPPING_ERROR`, an
 * address this device did not map, or a size or direction other than the map call's;
 * nothing changes then. If the IOMMU driver fails, its error is rethrown and the mapping
 * stays tracked (unmap again, or the end of the binding tears it down).
 */
export function dmaUnmapSingle(
  dev: Device<Bound>,
  addr: DmaAddr,
  size: number,
  dir: DmaDirection,
  attrs = 0,
): void {
  const where = "dma_unmap_single";
  const d = dmaOfArgument(where, dev);
  if (!isWhole(addr, 0, Number.MAX_SAFE_INTEGER)) checkDmaHandle(where, d.device, "free", addr);
  if (!isWhole(size, 1, Number.MAX_SAFE_INTEGER))
    checkSize(where, "size", size, 1, Number.MAX_SAFE_INTEGER);
  checkMapDirection(where, dir);
  checkAttrs(where, attrs);
  const e = d.lookup(addr, size, dir, KIND_SINGLE, "free");
  unmapEntry(d, e, attrs);
  d.remove(e);
  d.recycle(e);
}

function syncSingle(
  dev: Device<Bound>,
  addr: DmaAddr,
  size: number,
  dir: DmaDirection,
  forCpu: boolean,
): void {
  const where = forCpu ? "dma_sync_single_for_cpu" : "dma_sync_single_for_device";
  const d = dmaOfArgument(where, dev);
  checkDmaHandle(where, d.device, "sync", addr);
  checkSize(where, "size", size, 1, Number.MAX_SAFE_INTEGER);
  checkMapDirection(where, dir);
  d.lookupSync(addr, size, dir, where);
  directSync(d, addr, size, dir, forCpu);
}

/**
 * `dma_sync_single_for_cpu`: the CPU takes the buffer back while it stays mapped. A bounced
 * `DMA_FROM_DEVICE`/`DMA_BIDIRECTIONAL` mapping is copied back to the buffer now.
 *
 * **Errors:** `EINVAL` for a bad argument, an address this device did not map (including
 * `DMA_MAPPING_ERROR`), more bytes than were mapped, or a direction other than the
 * mapping's.
 */
export function dmaSyncSingleForCpu(
  dev: Device<Bound>,
  addr: DmaAddr,
  size: number,
  dir: DmaDirection,
): void {
  syncSingle(dev, addr, size, dir, true);
}

/**
 * `dma_sync_single_for_device`: gives the buffer back to the device. A bounced mapping is
 * refreshed from the buffer (`DMA_TO_DEVICE`/`DMA_BIDIRECTIONAL`).
 *
 * **Errors:** as {@link dmaSyncSingleForCpu}.
 */
export function dmaSyncSingleForDevice(
  dev: Device<Bound>,
  addr: DmaAddr,
  size: number,
  dir: DmaDirection,
): void {
  syncSingle(dev, addr, size, dir, false);
}
