//! C source: drivers/iommu/dma-iommu.c (iommu_dma_cookie, iommu_dma_init_domain, the flush
//! queue, __iommu_dma_map/unmap, iommu_dma_map_page, iommu_dma_map_sg)

import {
  IOMMU_CACHE,
  IOMMU_MMIO,
  IOMMU_PRIV,
  IOMMU_READ,
  IOMMU_WRITE,
  type IotlbGather,
} from "@devref/io-pgtable";
import {
  checkBoolean,
  checkCount,
  checkInteger,
  checkOneOf,
  DevrefError,
  formatAddr,
  type Iova,
  type PhysAddr,
} from "@devref/raw-device";
import {
  DMA_ATTR_MMIO,
  DMA_ATTR_PRIVILEGED,
  DMA_BIDIRECTIONAL,
  DMA_DEFAULT_MAX_SEG_SIZE,
  DMA_FROM_DEVICE,
  DMA_NONE,
  DMA_TO_DEVICE,
} from "./constants.js";
import { KIND_SG, VIA_IOMMU } from "./debug.js";
import type { DmaState } from "./dma-state.js";
import { checkAttrs } from "./internal/checks.js";
import {
  IOMMU_DMA_MAX_GRANULE,
  IOMMU_DOMAIN_DMA_FQ_BIT,
  type IommuDomain,
  type IommuResvRegion,
} from "./iommu.js";
import { checkPaging, mapRange, syncGather, unmapAndSync, unmapRangeFast } from "./iommu-map.js";
import { IOVA_MAX_PFN, IovaDomain, iovaAllocForDevice, iovaFastRangePfns } from "./iova.js";
import type { ScatterList } from "./scatterlist.js";

// module-state: a privileged-access slot, assigned once by FlushQueue's static block.
let queueReleased: (fq: FlushQueue, pfn: number, len: number) => void;

/** `IOVA_DEFAULT_FQ_SIZE`: entries in a flush queue. */
export const IOVA_DEFAULT_FQ_SIZE = 256;

/**
 * A flush queue (lazy invalidation, `IOMMU_DOMAIN_DMA_FQ`): unmapped IOVAs wait here until
 * the whole IOTLB is flushed, so a freed IOVA is never reused before its stale TLB entries
 * are gone.
 *
 * No wall time: the kernel's 10 ms timer is {@link tick} (call it where time would have
 * passed — a simulation tick, a test step); a full queue flushes at once, as in the kernel;
 * the queue is also flushed when its domain is freed. Only dma-iommu creates queues.
 *
 * **Invariants:** every queued IOVA is still allocated in the domain's IOVA space, and is
 * queued once; after a successful flush the queue is empty; a flush whose IOTLB
 * invalidation fails keeps every entry queued.
 *
 * **Errors:** {@link push} throws `EINVAL` for a range that is not an allocated, unqueued
 * IOVA range of the domain; {@link flush} rethrows the driver's error.
 *
 * @example
 * ```ts
 * const fq = iommuGetDomainForDev(dev)!.cookie!.fq!;
 * fq.tick(); // 10 ms went by: flush the IOTLB, free the queued IOVAs
 * ```
 */
export class FlushQueue {
  readonly capacity: number;
  private readonly pfns: Float64Array;
  private readonly lens: Float64Array;
  private count: number;
  private readonly iovad: IovaDomain;
  private readonly domain: IommuDomain;
  /** `fq_flush_start_cnt` / `fq_flush_finish_cnt` collapse to one counter with one CPU. */
  flushes: number;

  /** @internal Made by {@link DmaIommuCookie} for `DMA_FQ` domains. */
  constructor(domain: IommuDomain, iovad: IovaDomain, capacity: number = IOVA_DEFAULT_FQ_SIZE) {
    this.capacity = capacity;
    this.pfns = new Float64Array(capacity);
    this.lens = new Float64Array(capacity);
    this.count = 0;
    this.iovad = iovad;
    this.domain = domain;
    this.flushes = 0;
  }

  /** IOVAs waiting for a flush. */
  get length(): number {
    return this.count;
  }

  /** Pfns (granules) those IOVAs hold, as allocated (the fast path's rounding included). */
  get pendingPfns(): number {
    let n = 0;
    for (let i = 0; i < this.count; i++) n += iovaFastRangePfns(this.lens[i]!);
    return n;
  }

  /**
   * `queue_iova` for a range `[pfn, pfn + len)` of this domain's IOVA space that is
   * allocated and not yet queued: a full queue is flushed and emptied first.
   *
   * **Errors:** `EINVAL` otherwise; nothing changes then.
   */
  push(pfn: number, len: number): void {
    const where = "FlushQueue.push";
    checkInteger(where, "pfn", pfn, 1, IOVA_MAX_PFN);
    checkCount(where, "len", len, 1, IOVA_MAX_PFN);
    const r = this.iovad.findIova(pfn);
    if (
      r === undefined ||
      r.pfnLo !== pfn ||
      r.cached ||
      r.reserved ||
      r.pfnHi - r.pfnLo + 1 < len
    ) {
      throw new DevrefError(
        "EINVAL",
        `${where}(${pfn}, ${len}): no allocated IOVA range of that size starts there; queue only what an unmap released`,
      );
    }
    for (let i = 0; i < this.count; i++) {
      if (this.pfns[i] === pfn) {
        throw new DevrefError("EINVAL", `${where}(${pfn}, ${len}): that range is already queued`);
      }
    }
    this.#queue(pfn, len);
  }

  /** `queue_iova` for a range an unmap just released (no checks: the unmap's hot path). */
  #queue(pfn: number, len: number): void {
    if (this.count === this.capacity) this.flush();
    this.pfns[this.count] = pfn;
    this.lens[this.count] = len;
    this.count++;
  }

  static {
    queueReleased = (fq, pfn, len) => fq.#queue(pfn, len);
  }

  /** `fq_flush_iotlb` + `fq_ring_free`: one IOTLB flush, then every queued IOVA is freed. */
  flush(): void {
    if (this.count === 0) return;
    this.flushes++;
    // A failed invalidation leaves every entry queued: none may be reused yet.
    this.domain.ops?.flushIotlbAll();
    const n = this.count;
    this.count = 0;
    for (let i = 0; i < n; i++) this.iovad.freeIovaFast(this.pfns[i]!, this.lens[i]!);
  }

  /** The flush timer fired (`fq_flush_timeout`). Returns whether anything was flushed. */
  tick(): boolean {
    if (this.count === 0) return false;
    this.flush();
    return true;
  }
}

/** The CPU page sizes the IOVA allocator supports; the cookie picks the smallest that fits. */
const CPU_PAGE_SIZES: readonly number[] = [4096, 16384, 65536];

/**
 * dma-iommu's per-domain state (`struct iommu_dma_cookie`): the IOVA space and, for
 * `DMA_FQ` domains, the flush queue. Only the DMA layer creates cookies, when a device is
 * first configured behind a DMA domain (`iommu_dma_init_domain`).
 *
 * **Invariants:** the granule is the domain's smallest page, at most 64 KiB; IOVA 0 is
 * never handed out.
 */
export class DmaIommuCookie {
  readonly domain: IommuDomain;
  readonly iovad: IovaDomain;
  readonly fq: FlushQueue | null;
  /** The granule (smallest IOMMU page). */
  readonly granule: number;

  /** @internal */
  constructor(domain: IommuDomain) {
    this.domain = domain;
    const granule = domain.minPagesz;
    if (!(granule >= 1 && granule <= IOMMU_DMA_MAX_GRANULE)) {
      throw new DevrefError(
        "EINVAL",
        `IOMMU '${domain.iommu.name}': a DMA domain needs a smallest page of at most ${IOMMU_DMA_MAX_GRANULE} bytes, not ${granule}`,
      );
    }
    this.granule = granule;
    const shift = Math.log2(granule);
    // iommu_dma_init_domain: IOVA 0 is never handed out, and the aperture's start is honoured.
    const startPfn = Math.max(1, Math.floor(domain.apertureStart / 2 ** shift));
    const pageSize = CPU_PAGE_SIZES.find((p) => p >= granule) ?? IOMMU_DMA_MAX_GRANULE;
    this.iovad = new IovaDomain(granule, startPfn, { pageSize });
    this.fq =
      (domain.type & IOMMU_DOMAIN_DMA_FQ_BIT) !== 0 ? new FlushQueue(domain, this.iovad) : null;
  }

  /** Flushes a pending queue before the domain goes away. */
  destroy(): void {
    this.fq?.flush();
  }
}

/**
 * @internal `iommu_dma_init_domain`: a DMA domain gets its cookie (IOVA space, flush queue)
 * the first time a device is configured behind it, with that device's reserved regions
 * taken out of its IOVA space; other domains need none.
 */
export function iommuDmaInitDomain(
  domain: IommuDomain,
  regions: readonly IommuResvRegion[] = [],
): void {
  if (!domain.isDma || domain.cookie !== null || domain.freed) return;
  const cookie = new DmaIommuCookie(domain);
  // iova_reserve_iommu_regions: what the first device's IOMMU reserves is never handed out
  // (a software-managed MSI window is dma-iommu's own to place, so it is left free).
  const g = cookie.granule;
  for (const r of regions) {
    if (r.type === "sw-msi") continue;
    const lo = Math.floor(r.start / g);
    if (lo > IOVA_MAX_PFN) continue;
    cookie.iovad.reserveIova(lo, Math.min(IOVA_MAX_PFN, Math.floor((r.start + r.length - 1) / g)));
  }
  domain.cookie = cookie;
}

/** @internal `dma_info_to_prot` on checked arguments (the map paths' hot version). */
export function protOf(dir: number, coherent: boolean, attrs: number): number {
  let prot = coherent ? IOMMU_CACHE : 0;
  if ((attrs & DMA_ATTR_PRIVILEGED) !== 0) prot |= IOMMU_PRIV;
  if ((attrs & DMA_ATTR_MMIO) !== 0) prot |= IOMMU_MMIO;
  switch (dir) {
    case DMA_BIDIRECTIONAL:
      return prot | IOMMU_READ | IOMMU_WRITE;
    case DMA_TO_DEVICE:
      return prot | IOMMU_READ;
    case DMA_FROM_DEVICE:
      return prot | IOMMU_WRITE;
    default:
      return 0;
  }
}

const ALL_DIRECTIONS: readonly number[] = [
  DMA_BIDIRECTIONAL,
  DMA_TO_DEVICE,
  DMA_FROM_DEVICE,
  DMA_NONE,
];

/**
 * `dma_info_to_prot`: IOMMU prot bits from a DMA direction and attributes; 0 for `DMA_NONE`.
 *
 * **Errors:** `EINVAL` for a direction outside the enum, a non-boolean `coherent` or unknown
 * attribute bits.
 *
 * @example
 * ```ts
 * dmaInfoToProt(DMA_TO_DEVICE, true, 0); // IOMMU_READ | IOMMU_CACHE
 * ```
 */
export function dmaInfoToProt(dir: number, coherent: boolean, attrs: number): number {
  const where = "dma_info_to_prot";
  checkOneOf(where, "dir", dir, ALL_DIRECTIONS);
  checkBoolean(where, "coherent", coherent);
  return protOf(dir, coherent, checkAttrs(where, attrs));
}

/**
 * @internal `__iommu_dma_unmap` for an IOVA range `[iova, iova + size)` of a DMA domain:
 * unmap into the domain's gather, then either sync and free the IOVA (strict) or queue it
 * (flush queue).
 *
 * It completes or changes nothing the caller tracks: if the driver fails, the error is
 * rethrown with the IOVA still allocated (the caller keeps its record and may retry). A
 * retry that finds the start already cleared — an earlier attempt failed after clearing —
 * invalidates the whole IOTLB before the IOVA can be reused.
 */
export function iommuDmaUnmapRange(domain: IommuDomain, iova: Iova, size: number): void {
  const cookie = domain.cookie!;
  const g = domain.gather;
  const fq = cookie.fq;
  const pfn = iova / cookie.granule;
  const len = size / cookie.granule;
  if (domain.freed) {
    // The domain went with its tables; its IOVA space is gone too.
    return;
  }
  g.queued = fq !== null;
  try {
    const n = unmapRangeFast(domain, iova, size, g);
    if (n < size) {
      // An earlier attempt failed part-way: clear what is left past the hole, then
      // invalidate everything, since what that attempt cleared may never have been synced.
      clearRest(domain, iova + n, iova + size, cookie.granule, g);
      g.reset();
      domain.ops?.flushIotlbAll();
    } else if (fq === null) {
      syncGather(domain, g);
    } else {
      g.reset();
    }
  } catch (e) {
    g.queued = false;
    syncGather(domain, g);
    throw e;
  }
  if (fq === null) cookie.iovad.freeIovaFast(pfn, len);
  else queueReleased(fq, pfn, len);
}

/** Unmaps every still-mapped run in `[from, to)`, stepping over holes a granule at a time. */
function clearRest(
  domain: IommuDomain,
  from: number,
  to: number,
  granule: number,
  g: IotlbGather,
): void {
  const ops = domain.ops!;
  for (let at = from; at < to; ) {
    // SAFETY: inside the range the caller allocated.
    if (ops.iovaToPhys(at as Iova) === 0) {
      at += granule;
      continue;
    }
    const k = unmapRangeFast(domain, at, to - at, g);
    at += k > 0 ? k : granule;
  }
}

/**
 * @internal `__iommu_dma_map` after IOVA allocation: maps `[iova, iova + size)` to `phys`; on
 * failure frees the IOVA and rethrows.
 */
export function iommuDmaMapRange(
  domain: IommuDomain,
  iova: Iova,
  phys: PhysAddr,
  size: number,
  prot: number,
): void {
  try {
    mapRange(domain, checkPaging(domain, "iommu_dma_map"), iova, phys, size, prot);
  } catch (e) {
    const cookie = domain.cookie!;
    cookie.iovad.freeIovaFast(iova / cookie.granule, size / cookie.granule);
    throw e;
  }
}

// ---------------------------------------------------------------------------------------
// The DMA API's iommu-dma path (iommu_dma_map_page, iommu_dma_map_sg).

/** A full IOVA space, as the map paths report it. */
function iovaExhausted(d: DmaState, domain: IommuDomain, len: number, limit: number): DevrefError {
  const s = domain.cookie!.iovad.stats();
  return new DevrefError(
    "ENOMEM",
    `${d.device}: no free IOVA range of ${len} bytes below the DMA mask ${formatAddr(limit, 1)} ` +
      `(${s.ranges} range(s) hold ${s.pfns} pfns): unmap finished buffers or widen the mask`,
    { details: { size: len, dmaMask: limit, ranges: s.ranges, pfns: s.pfns } },
  );
}

/**
 * @internal `iommu_dma_map_page` on checked arguments: allocate an IOVA under the mask, map
 * the granules, track the mapping. Returns the DMA address, or -1 with the reason recorded.
 */
export function iommuDmaMapPage(
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
  if (iova === 0) return d.mapFailed(iovaExhausted(d, domain, len, limit), attrs);
  try {
    // SAFETY: pa − off is the granule-aligned start of a checked buffer.
    iommuDmaMapRange(domain, iova, (pa - off) as PhysAddr, len, protOf(dir, true, attrs));
  } catch (e) {
    if (DevrefError.is(e)) return d.mapFailed(e, attrs);
    throw e;
  }
  const e = d.track(iova + off, size, dir, VIA_IOMMU, kind, pa);
  e.iova = iova;
  e.iovaSize = len;
  e.domain = domain;
  return iova + off;
}

/**
 * @internal `iommu_dma_map_sg` on checked arguments: every segment in one IOVA range,
 * adjacent segments merged (`__finalise_sg`). Returns the DMA segment count, or 0 with the
 * reason recorded; nothing stays mapped on failure.
 */
export function iommuDmaMapSg(
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
    d.mapFailed(iovaExhausted(d, domain, total, limit), attrs);
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
      d.mapFailed(e, attrs);
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
