//! C header: include/linux/scatterlist.h, include/linux/dma-mapping.h (dma_map_sg and friends)
//! C source: kernel/dma/mapping.c (dma_map_sg_attrs), kernel/dma/direct.c (dma_direct_map_sg)

import type { Device } from "@devref/device-core";
import {
  argumentError,
  type Bound,
  checkAddress,
  checkCount,
  checkInstance,
  checkSize,
  DevrefError,
  formatAddr,
  type PhysAddr,
} from "@devref/raw-device";
import {
  DMA_ATTR_SKIP_CPU_SYNC,
  DMA_MAPPING_ERROR,
  type DmaDirection,
  dmaDirectionName,
} from "./constants.js";
import { KIND_SG, type MapEntry, VIA_DIRECT, VIA_IOMMU } from "./debug.js";
import { directSync } from "./direct.js";
import { iommuDmaMapSg } from "./dma-iommu.js";
import { type DmaState, dmaOfArgument, unmapEntry } from "./dma-state.js";
import { checkAttrs, checkMapDirection } from "./internal/checks.js";
import { checkBuffer, mapOne } from "./mapping.js";

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
      // SAFETY: an object (checked above) whose fields are read as unknown and checked below.
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
  const d = dmaOfArgument(where, dev);
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
  const client = d.client;
  const domain = client === null || client.gone ? null : client.group.domain;
  if (domain !== null && domain.cookie !== null && !domain.freed)
    return iommuDmaMapSg(d, domain, sg, dir, attrs);
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
  const d = dmaOfArgument(where, dev);
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
  const d = dmaOfArgument(where, dev);
  checkSgCall(d, where, sg, nents, dir);
  if (sg.mappedVia !== VIA_DIRECT) {
    sgEntry(d, sg, dir, where);
    return;
  }
  // Check every segment before copying anything.
  for (let i = 0; i < sg.nents; i++) d.lookupSync(sg.dmaAddress[i]!, sg.length[i]!, dir, where);
  for (let i = 0; i < sg.nents; i++) directSync(d, sg.dmaAddress[i]!, sg.length[i]!, dir, forCpu);
}
