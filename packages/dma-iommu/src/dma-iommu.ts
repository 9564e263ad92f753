//! C source: drivers/iommu/dma-iommu.c (iommu_dma_cookie, the flush queue, __iommu_dma_map)

import { IOMMU_CACHE, IOMMU_MMIO, IOMMU_PRIV, IOMMU_READ, IOMMU_WRITE } from "@devref/io-pgtable";
import {
  DMA_ATTR_MMIO,
  DMA_ATTR_PRIVILEGED,
  DMA_BIDIRECTIONAL,
  DMA_FROM_DEVICE,
  DMA_TO_DEVICE,
} from "./constants.js";
import {
  IOMMU_DOMAIN_DMA_FQ_BIT,
  type IommuDomain,
  iommuIotlbSync,
  iommuMap,
  iommuUnmapFast,
  setDmaDomainInit,
} from "./iommu.js";
import { IovaDomain } from "./iova.js";

/** `IOVA_DEFAULT_FQ_SIZE`: entries in a flush queue. */
export const IOVA_DEFAULT_FQ_SIZE = 256;

/**
 * A flush queue (lazy invalidation, `IOMMU_DOMAIN_DMA_FQ`): unmapped IOVAs wait here until
 * the whole IOTLB is flushed, so a freed IOVA is never reused before its stale TLB entries
 * are gone.
 *
 * No wall time: the kernel's 10 ms timer is {@link tick} (call it where time would have
 * passed — a simulation tick, a test step); a full queue flushes at once, as in the kernel;
 * the queue is also flushed when its domain is freed.
 *
 * **Invariants:** every queued IOVA is still allocated in the domain's IOVA space; after a
 * flush the queue is empty.
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

  /** `queue_iova`: a full queue is flushed and emptied first. */
  push(pfn: number, len: number): void {
    if (this.count === this.capacity) this.flush();
    this.pfns[this.count] = pfn;
    this.lens[this.count] = len;
    this.count++;
  }

  /** `fq_flush_iotlb` + `fq_ring_free`: one IOTLB flush, then every queued IOVA is freed. */
  flush(): void {
    if (this.count === 0) return;
    this.flushes++;
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

/**
 * dma-iommu's per-domain state (`struct iommu_dma_cookie`): the IOVA space and, for
 * `DMA_FQ` domains, the flush queue.
 */
export class DmaIommuCookie {
  readonly domain: IommuDomain;
  readonly iovad: IovaDomain;
  readonly fq: FlushQueue | null;
  /** The granule (smallest IOMMU page). */
  readonly granule: number;

  constructor(domain: IommuDomain) {
    this.domain = domain;
    const granule = domain.minPagesz;
    this.granule = granule;
    const shift = Math.log2(granule);
    // iommu_dma_init_domain: IOVA 0 is never handed out, and the aperture's start is honoured.
    const startPfn = Math.max(1, Math.floor(domain.apertureStart / 2 ** shift));
    this.iovad = new IovaDomain(granule, startPfn, { pageSize: Math.max(4096, granule) });
    this.fq =
      (domain.type & IOMMU_DOMAIN_DMA_FQ_BIT) !== 0 ? new FlushQueue(domain, this.iovad) : null;
  }

  /** Flushes a pending queue before the domain goes away. */
  destroy(): void {
    this.fq?.flush();
  }
}

setDmaDomainInit((domain) => {
  domain.cookie = new DmaIommuCookie(domain);
});

/** `dma_info_to_prot`: IOMMU prot bits from a DMA direction and attributes. */
export function dmaInfoToProt(dir: number, coherent: boolean, attrs: number): number {
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

/**
 * `__iommu_dma_unmap` for an IOVA range `[iova, iova + size)` of a DMA domain: unmap into the
 * domain's gather, then either sync and free the IOVA (strict) or queue it (flush queue).
 */
export function iommuDmaUnmapRange(domain: IommuDomain, iova: number, size: number): void {
  const cookie = domain.cookie!;
  const g = domain.gather;
  const fq = cookie.fq;
  g.queued = fq !== null;
  iommuUnmapFast(domain, iova, size, g);
  const pfn = iova / cookie.granule;
  const len = size / cookie.granule;
  if (fq === null) {
    iommuIotlbSync(domain, g);
    cookie.iovad.freeIovaFast(pfn, len);
  } else {
    g.reset();
    fq.push(pfn, len);
  }
}

/**
 * `__iommu_dma_map` after IOVA allocation: maps `[iova, iova + size)` to `phys`; on
 * failure frees the IOVA and rethrows.
 */
export function iommuDmaMapRange(
  domain: IommuDomain,
  iova: number,
  phys: number,
  size: number,
  prot: number,
): void {
  try {
    iommuMap(domain, iova, phys, size, prot);
  } catch (e) {
    const cookie = domain.cookie!;
    cookie.iovad.freeIovaFast(iova / cookie.granule, size / cookie.granule);
    throw e;
  }
}
