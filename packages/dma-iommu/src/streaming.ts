//! C header: include/linux/dma-mapping.h (streaming mappings)
//! C source: kernel/dma/mapping.c, kernel/dma/direct.c, kernel/dma/direct.h,
//! drivers/iommu/dma-iommu.c (iommu_dma_map_page, iommu_dma_map_sg)

import type { Device } from "@devref/device-core";
import {
  argumentError,
  type Bound,
  checkAddress,
  checkCount,
  checkInstance,
  checkSize,
  DevrefError,
  type DmaAddr,
  formatAddr,
  PHYS_ADDR_LIMIT,
  type PhysAddr,
} from "@devref/raw-device";
import {
  DMA_ATTR_MMIO,
  DMA_ATTR_NO_WARN,
  DMA_ATTR_SKIP_CPU_SYNC,
  type DmaDirection,
  dmaDirectionName,
} from "./constants.js";
import { iommuDmaMapRange, protOf } from "./dma-iommu.js";
import {
  checkAttrs,
  checkDevice,
  checkDmaHandle,
  checkMapDirection,
  isWhole,
} from "./internal/checks.js";
import { IOMMU_DOMAIN_IDENTITY, type IommuDomain } from "./iommu.js";
import { checkPaging, mapRange, unmapAndSync } from "./iommu-map.js";
import { iovaAllocForDevice } from "./iova.js";
import {
  DMA_DEFAULT_MAX_SEG_SIZE,
  DMA_MAPPING_ERROR,
  type DmaState,
  dmaDeviceState,
  dmaOf,
  KIND_SG,
  KIND_SINGLE,
  type MapEntry,
  unmapEntry,
  VIA_BOUNCE,
  VIA_DIRECT,
  VIA_IOMMU,
} from "./mapping.js";

/** The largest physical address (2^52 − 1). */
const PHYS_LAST: number = PHYS_ADDR_LIMIT - 1;

// ---------------------------------------------------------------------------------------
// Streaming maps (§4, §5).

/** Checks a buffer against physical memory (EFAULT: the kernel would fault on it). */
function checkBuffer(d: DmaState, pa: number, size: number, what: string): void {
  if (pa + size > d.system.memory.size) {
    throw new DevrefError(
      "EFAULT",
      `${what}(${d.device}): buffer ${formatAddr(pa, 1)}+${size} is outside physical memory`,
    );
  }
}

function mapError(d: DmaState, err: DevrefError, attrs: number): DmaAddr {
  d.lastError = err;
  if ((attrs & DMA_ATTR_NO_WARN) === 0) {
    dmaDeviceState(d).log("warn", err.message);
  }
  return DMA_MAPPING_ERROR;
}

/** dma_direct_map_phys: direct if the device can reach the buffer, else bounce. */
function directMap(
  d: DmaState,
  pa: number,
  size: number,
  dir: number,
  attrs: number,
  kind: number,
): number {
  const limit = d.streamingLimit();
  if (!d.forceBounce && pa + size - 1 <= limit) {
    d.track(pa, size, dir, VIA_DIRECT, kind, pa);
    return pa;
  }
  if ((attrs & DMA_ATTR_MMIO) !== 0) {
    return mapError(
      d,
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
    // SAFETY: pa was checked to be a whole address inside memory.
    bounce = pool.map(pa as PhysAddr, size, dir as DmaDirection, attrs, {
      device: d.device,
      dmaMask: limit,
    });
  } catch (e) {
    if (DevrefError.is(e)) return mapError(d, e, attrs);
    throw e;
  }
  if (bounce + size - 1 > limit) {
    // swiotlb_map: the pool itself is out of the device's reach.
    // SAFETY: bounce is the address the pool just returned.
    pool.unmap(bounce as PhysAddr, size, dir as DmaDirection, DMA_ATTR_SKIP_CPU_SYNC);
    return mapError(
      d,
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

/** iommu_dma_map_page: allocate an IOVA under the mask and map the granules. */
function iommuDmaMap(
  d: DmaState,
  domain: IommuDomain,
  pa: number,
  size: number,
  dir: number,
  attrs: number,
  kind: number,
): number {
  const cookie = domain.cookie!;
  const granule = cookie.granule;
  const off = (pa >>> 0) & (granule - 1);
  const len = Math.ceil((off + size) / granule) * granule;
  const limit = d.streamingLimit();
  const iova = iovaAllocForDevice(cookie.iovad, len, limit, d.policy);
  if (iova === 0) {
    return mapError(d, iovaExhausted(d, len, limit), attrs);
  }
  try {
    // SAFETY: pa − off is the granule-aligned start of a checked buffer.
    iommuDmaMapRange(domain, iova, (pa - off) as PhysAddr, len, protOf(dir, true, attrs));
  } catch (e) {
    if (DevrefError.is(e)) return mapError(d, e, attrs);
    throw e;
  }
  const e = d.track(iova + off, size, dir, VIA_IOMMU, kind, pa);
  e.iova = iova;
  e.iovaSize = len;
  e.domain = domain;
  return iova + off;
}

function iovaExhausted(d: DmaState, len: number, limit: number): DevrefError {
  const s = d.iommuClient!.group.domain!.cookie!.iovad.stats();
  return new DevrefError(
    "ENOMEM",
    `${d.device}: no free IOVA range of ${len} bytes below the DMA mask ${formatAddr(limit, 1)} ` +
      `(${s.ranges} range(s) hold ${s.pfns} pfns): unmap finished buffers or widen the mask`,
    { details: { size: len, dmaMask: limit, ranges: s.ranges, pfns: s.pfns } },
  );
}

function noTranslation(d: DmaState, attrs: number): DmaAddr {
  const dom = d.iommuClient?.group.domain ?? null;
  return mapError(
    d,
    new DevrefError(
      d.iommuLost ? "ENODEV" : "EIO",
      d.iommuLost
        ? `${d.device}: its IOMMU was unregistered; no DMA is possible until it is back and the driver rebinds`
        : `${d.device}: its IOMMU group is attached to a ${dom === null ? "missing" : dom.type === 0 ? "BLOCKED" : "driver-managed"} ` +
            "domain; the DMA API works only on the default domain",
    ),
    attrs,
  );
}

/** Dispatches one buffer to dma-direct or iommu-dma; returns the address or -1. */
function mapOne(
  d: DmaState,
  pa: number,
  size: number,
  dir: number,
  attrs: number,
  kind: number,
): number {
  const client = d.iommuClient;
  if (client === null) {
    if (d.iommuLost) return noTranslation(d, attrs);
    return directMap(d, pa, size, dir, attrs, kind);
  }
  const domain = client.group.domain;
  if (domain !== null && domain.cookie !== null && !domain.freed) {
    return iommuDmaMap(d, domain, pa, size, dir, attrs, kind);
  }
  if (domain !== null && domain.type === IOMMU_DOMAIN_IDENTITY) {
    return directMap(d, pa, size, dir, attrs, kind);
  }
  return noTranslation(d, attrs);
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
  const d = dmaOf(checkDevice(where, dev));
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
  return dmaOf(checkDevice("dmaLastError", dev)).lastError;
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
  const d = dmaOf(checkDevice(where, dev));
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

function usesBounce(d: DmaState, addr: number): boolean {
  // dma-direct's is_swiotlb_buffer; iommu-dma bounces nothing here (no untrusted devices).
  // SAFETY: for dma-direct a DMA address is the physical address (no dma_range_map).
  return d.name === "dma-direct" && d.system.swiotlb.isBounceAddress(addr as PhysAddr);
}

function syncSingle(
  dev: Device<Bound>,
  addr: DmaAddr,
  size: number,
  dir: DmaDirection,
  forCpu: boolean,
): void {
  const where = forCpu ? "dma_sync_single_for_cpu" : "dma_sync_single_for_device";
  const d = dmaOf(checkDevice(where, dev));
  checkDmaHandle(where, d.device, "sync", addr);
  checkSize(where, "size", size, 1, Number.MAX_SAFE_INTEGER);
  checkMapDirection(where, dir);
  d.lookupSync(addr, size, dir, where);
  if (!usesBounce(d, addr)) return;
  // SAFETY: for dma-direct the DMA address of a bounce slot is its physical address.
  if (forCpu) d.system.swiotlb.syncForCpu(addr as number as PhysAddr, size, dir);
  // SAFETY: as above.
  else d.system.swiotlb.syncForDevice(addr as number as PhysAddr, size, dir);
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

// ---------------------------------------------------------------------------------------
// Scatter-gather.

/** One CPU-side segment of a {@link ScatterList}. */
export interface ScatterSegment {
  readonly pa: PhysAddr;
  readonly length: number;
}

/** Segments in one list at most (the kernel's `sg_table` has no smaller practical limit). */
const MAX_SEGMENTS = 1 << 20;

/**
 * A scatterlist (`struct sg_table`): CPU segments, and after mapping the DMA segments the
 * device must use (`sg_dma_address`/`sg_dma_len`); behind an IOMMU these may be fewer,
 * because adjacent segments merge.
 *
 * **Invariants:** `nents` ≤ `origNents`; `nents` is 0 while unmapped.
 *
 * **Errors:** the constructor throws `EINVAL` for a list that is not a non-empty array of
 * segments with a whole address and a length ≥ 1.
 *
 * @example
 * ```ts
 * const sg = new ScatterList([{ pa: buf, length: 4096 }, { pa: buf2, length: 512 }]);
 * const n = dmaMapSg(dev, sg, DMA_FROM_DEVICE); // DMA segments in sg.dmaAddress[0 … n)
 * dmaUnmapSg(dev, sg, sg.origNents, DMA_FROM_DEVICE);
 * ```
 */
export class ScatterList {
  readonly origNents: number;
  /** CPU physical address of each segment. */
  readonly phys: Float64Array;
  readonly length: Float64Array;
  /** DMA address and length of each mapped DMA segment (first `nents` entries). */
  readonly dmaAddress: Float64Array;
  readonly dmaLength: Float64Array;
  /** DMA segments after mapping (`sgt->nents`). */
  nents = 0;
  /** @internal How the list was mapped: 0 direct (one entry per segment), 2 iommu (one entry). */
  mappedVia = -1;

  constructor(segments: readonly ScatterSegment[]) {
    const where = "new ScatterList";
    if (!Array.isArray(segments)) {
      throw argumentError(where, "segments", "an array of { pa, length } segments", segments);
    }
    const n = checkCount(where, "segments.length", segments.length, 1, MAX_SEGMENTS);
    const phys = new Float64Array(n);
    const length = new Float64Array(n);
    for (let i = 0; i < n; i++) {
      const s: unknown = segments[i];
      if (typeof s !== "object" || s === null) {
        throw argumentError(where, `segments[${i}]`, "a { pa, length } segment", s);
      }
      const seg = s as { readonly pa?: unknown; readonly length?: unknown };
      phys[i] = checkAddress(where, `segments[${i}].pa`, seg.pa);
      length[i] = checkSize(where, `segments[${i}].length`, seg.length);
    }
    this.origNents = n;
    this.phys = phys;
    this.length = length;
    this.dmaAddress = new Float64Array(n);
    this.dmaLength = new Float64Array(n);
  }
}

/**
 * `dma_map_sg`: maps every segment; returns the number of DMA segments, **0 on error** (with
 * the reason in {@link dmaLastError}). dma-direct maps one to one (each segment may bounce
 * on its own); iommu-dma lays all segments out in one IOVA range and merges segments that
 * meet on a granule boundary (up to 64 KiB, `dma_get_max_seg_size`).
 *
 * **Errors:** as {@link dmaMapSingle}; `EINVAL` for a list that is not a `ScatterList`;
 * `EBUSY` if the list is already mapped.
 */
export function dmaMapSg(
  dev: Device<Bound>,
  sg: ScatterList,
  dir: DmaDirection,
  attrs = 0,
): number {
  const where = "dma_map_sg";
  const d = dmaOf(checkDevice(where, dev));
  checkInstance(where, "sg", sg, ScatterList);
  checkMapDirection(where, dir);
  checkAttrs(where, attrs);
  if (sg.nents !== 0) {
    throw new DevrefError(
      "EBUSY",
      `dma_map_sg(${d.device}): the scatterlist is already mapped; unmap it first`,
    );
  }
  const n = sg.origNents;
  for (let i = 0; i < n; i++) checkBuffer(d, sg.phys[i]!, sg.length[i]!, where);
  const domain = d.iommuClient?.group.domain ?? null;
  if (domain !== null && domain.cookie !== null && !domain.freed)
    return iommuMapSg(d, domain, sg, dir, attrs);
  for (let i = 0; i < n; i++) {
    const addr = mapOne(d, sg.phys[i]!, sg.length[i]!, dir, attrs, KIND_SG);
    if (addr === DMA_MAPPING_ERROR) {
      for (let j = i - 1; j >= 0; j--) {
        const e = d.lookup(sg.dmaAddress[j]!, sg.length[j]!, dir, KIND_SG, "unmap");
        unmapEntry(d, e, DMA_ATTR_SKIP_CPU_SYNC);
        d.remove(e);
        d.recycle(e);
      }
      return 0;
    }
    sg.dmaAddress[i] = addr;
    sg.dmaLength[i] = sg.length[i]!;
  }
  sg.mappedVia = VIA_DIRECT;
  sg.nents = n;
  return n;
}

function iommuMapSg(
  d: DmaState,
  domain: IommuDomain,
  sg: ScatterList,
  dir: number,
  attrs: number,
): number {
  const cookie = domain.cookie!;
  const granule = cookie.granule;
  const n = sg.origNents;
  let total = 0;
  for (let i = 0; i < n; i++) {
    const off = sg.phys[i]! % granule;
    total += Math.ceil((off + sg.length[i]!) / granule) * granule;
  }
  const limit = d.streamingLimit();
  const iova = iovaAllocForDevice(cookie.iovad, total, limit, d.policy);
  if (iova === 0) {
    mapError(d, iovaExhausted(d, total, limit), attrs);
    return 0;
  }
  const prot = protOf(dir, true, attrs);
  const ops = checkPaging(domain, "iommu_dma_map_sg");
  let pos = 0;
  try {
    for (let i = 0; i < n; i++) {
      const pa = sg.phys[i]!;
      const off = pa % granule;
      const len = Math.ceil((off + sg.length[i]!) / granule) * granule;
      mapRange(domain, ops, iova + pos, pa - off, len, prot);
      pos += len;
    }
  } catch (e) {
    try {
      if (pos > 0) unmapAndSync(domain, iova, pos);
    } finally {
      cookie.iovad.freeIovaFast(iova / granule, total / granule);
    }
    if (DevrefError.is(e)) {
      mapError(d, e, attrs);
      return 0;
    }
    throw e;
  }
  // __finalise_sg: merge a segment into the previous DMA segment when they meet exactly on a
  // granule boundary and the result stays within the maximum segment size.
  let out = -1;
  pos = 0;
  let prevEndsAligned = false;
  for (let i = 0; i < n; i++) {
    const pa = sg.phys[i]!;
    const length = sg.length[i]!;
    const off = pa % granule;
    const len = Math.ceil((off + length) / granule) * granule;
    if (
      out >= 0 &&
      prevEndsAligned &&
      off === 0 &&
      sg.dmaLength[out]! + length <= DMA_DEFAULT_MAX_SEG_SIZE
    ) {
      sg.dmaLength[out] = sg.dmaLength[out]! + length;
    } else {
      out++;
      sg.dmaAddress[out] = iova + pos + off;
      sg.dmaLength[out] = length;
    }
    prevEndsAligned = (off + length) % granule === 0;
    pos += len;
  }
  const e = d.track(sg.dmaAddress[0]!, total, dir, VIA_IOMMU, KIND_SG, sg.phys[0]!);
  e.iova = iova;
  e.iovaSize = total;
  e.domain = domain;
  e.sg = sg;
  sg.mappedVia = VIA_IOMMU;
  sg.nents = out + 1;
  return out + 1;
}

/** The entry of a list mapped through an IOMMU (keyed by its first DMA address). */
function sgEntry(d: DmaState, sg: ScatterList, dir: number, what: string): MapEntry {
  for (let e = d.chainAt(sg.dmaAddress[0]!); e !== null; e = e.next) {
    if (e.sg !== sg) continue;
    if (e.dir !== dir) {
      throw new DevrefError(
        "EINVAL",
        `DMA-API: ${d.device}: ${what} with ${dmaDirectionName(dir)}, but the list was mapped ` +
          `${dmaDirectionName(e.dir)}: pass the mapping's direction`,
      );
    }
    return e;
  }
  throw new DevrefError(
    "EINVAL",
    `DMA-API: ${d.device}: ${what}: this scatterlist is not mapped by this device`,
  );
}

function checkSgCall(
  d: DmaState,
  where: string,
  sg: ScatterList,
  nents: number,
  dir: DmaDirection,
): void {
  checkInstance(where, "sg", sg, ScatterList);
  checkCount(where, "nents", nents, 1, MAX_SEGMENTS);
  checkMapDirection(where, dir);
  if (nents !== sg.origNents) {
    throw new DevrefError(
      "EINVAL",
      `${where}(${d.device}) with nents ${nents}: pass the original count ${sg.origNents}, not the mapped one`,
    );
  }
  if (sg.nents === 0)
    throw new DevrefError("EINVAL", `${where}(${d.device}): the scatterlist is not mapped`);
}

/**
 * `dma_unmap_sg`: unmaps a list mapped by {@link dmaMapSg}; `nents` must be the **original**
 * count (`sg.origNents`), not what the map returned.
 *
 * **Errors:** `EINVAL` for a bad argument, another `nents`, a list that is not mapped (by
 * this device), or another direction; nothing changes then. An IOMMU driver's failure is
 * rethrown with the mapping still tracked.
 */
export function dmaUnmapSg(
  dev: Device<Bound>,
  sg: ScatterList,
  nents: number,
  dir: DmaDirection,
  attrs = 0,
): void {
  const where = "dma_unmap_sg";
  const d = dmaOf(checkDevice(where, dev));
  checkSgCall(d, where, sg, nents, dir);
  checkAttrs(where, attrs);
  if (sg.mappedVia === VIA_IOMMU) {
    const e = sgEntry(d, sg, dir, where);
    unmapEntry(d, e, attrs);
    d.remove(e);
    d.recycle(e);
  } else {
    // Find every segment's entry before changing anything (the same buffer may appear twice).
    const found: MapEntry[] = [];
    for (let i = 0; i < sg.nents; i++) {
      const addr = sg.dmaAddress[i]!;
      d.lookup(addr, sg.length[i]!, dir, KIND_SG, "unmap_sg");
      let e = d.chainAt(addr);
      while (
        e !== null &&
        (found.includes(e) || e.size !== sg.length[i] || e.dir !== dir || e.kind !== KIND_SG)
      )
        e = e.next;
      if (e === null) {
        throw new DevrefError(
          "EINVAL",
          `DMA-API: ${d.device}: ${where}: segment ${i} at ${formatAddr(addr, 1)} is not mapped (any more)`,
        );
      }
      found.push(e);
    }
    // Bounce and direct unmaps cannot fail once every entry is known.
    for (const e of found) {
      unmapEntry(d, e, attrs);
      d.remove(e);
      d.recycle(e);
    }
  }
  sg.nents = 0;
  sg.mappedVia = -1;
}

/** `dma_sync_sg_for_cpu` (pass the original `nents`). Errors as {@link dmaUnmapSg}. */
export function dmaSyncSgForCpu(
  dev: Device<Bound>,
  sg: ScatterList,
  nents: number,
  dir: DmaDirection,
): void {
  syncSg(dev, sg, nents, dir, true);
}

/** `dma_sync_sg_for_device` (pass the original `nents`). Errors as {@link dmaUnmapSg}. */
export function dmaSyncSgForDevice(
  dev: Device<Bound>,
  sg: ScatterList,
  nents: number,
  dir: DmaDirection,
): void {
  syncSg(dev, sg, nents, dir, false);
}

function syncSg(
  dev: Device<Bound>,
  sg: ScatterList,
  nents: number,
  dir: DmaDirection,
  forCpu: boolean,
): void {
  const where = forCpu ? "dma_sync_sg_for_cpu" : "dma_sync_sg_for_device";
  const d = dmaOf(checkDevice(where, dev));
  checkSgCall(d, where, sg, nents, dir);
  if (sg.mappedVia !== VIA_DIRECT) {
    sgEntry(d, sg, dir, where);
    return;
  }
  // Check every segment before copying anything.
  for (let i = 0; i < sg.nents; i++) d.lookupSync(sg.dmaAddress[i]!, sg.length[i]!, dir, where);
  for (let i = 0; i < sg.nents; i++) {
    const addr = sg.dmaAddress[i]!;
    if (!usesBounce(d, addr)) continue;
    // SAFETY: dma-direct bounce addresses are physical addresses in the pool.
    if (forCpu) d.system.swiotlb.syncForCpu(addr as PhysAddr, sg.length[i]!, dir);
    // SAFETY: as above.
    else d.system.swiotlb.syncForDevice(addr as PhysAddr, sg.length[i]!, dir);
  }
}
