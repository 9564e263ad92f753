//! C source: kernel/dma/debug.c (CONFIG_DMA_API_DEBUG: the per-device entry list and the
//! "device driver has pending DMA allocations while released from device" report)

import type { DmaAddr, PhysAddr } from "@devref/raw-device";

/** One outstanding DMA mapping or allocation, as an audit lists it. */
export interface DmaAuditEntry {
  /** `"single"` (dma_map_single/page), `"sg"` (one scatterlist), `"coherent"`. */
  readonly kind: "single" | "sg" | "coherent";
  /** The address the device uses. */
  readonly dmaAddr: DmaAddr;
  readonly size: number;
  /** The direction's kernel name (coherent: DMA_BIDIRECTIONAL). */
  readonly dir: string;
  /** How it reaches memory: `"dma-direct"`, `"swiotlb"` (bounced) or `"iommu-dma"`. */
  readonly via: "dma-direct" | "swiotlb" | "iommu-dma";
  /** The CPU physical address of the buffer (first segment for scatterlists). */
  readonly phys: PhysAddr;
}

/** What a device holds right now through the DMA API. */
export interface DmaDeviceAudit {
  readonly device: string;
  /** The bound driver, if any. */
  readonly driver: string | null;
  /** `"dma-direct"` or `"iommu-dma"`. */
  readonly ops: string;
  /** Streaming mappings and coherent buffers, oldest first. */
  readonly entries: readonly DmaAuditEntry[];
  /** swiotlb slots held by the device's bounced mappings. */
  readonly bounceSlots: number;
  /** Bytes of IOVA space held by the device's mappings (granule-rounded). */
  readonly iovaBytes: number;
}

/**
 * What the DMA layer found when a binding ended: streaming mappings the driver never
 * unmapped (they are unmapped then, without copying back, so no bounce slot or IOVA stays
 * behind) and coherent buffers that devres freed.
 */
export interface DmaUnbindReport extends DmaDeviceAudit {
  /** Streaming mappings leaked by the driver. */
  readonly leaked: readonly DmaAuditEntry[];
  /** Coherent buffers still allocated at unbind, freed and revoked by devres (not leaks). */
  readonly coherentFreed: number;
}

/**
 * A whole-system consistency check ({@link DmaSystem.audit}): every resource the DMA layer
 * hands out is held by exactly the bookkeeping that will give it back.
 */
export interface DmaSystemAudit {
  /** Whether every check below held. */
  readonly ok: boolean;
  /** One line per check that failed, saying what disagrees with what. */
  readonly problems: readonly string[];
  /** RAM bytes the system holds (buffers, coherent blocks, a pool taken from RAM, page tables). */
  readonly ramInUse: number;
  /** The same, by use. */
  readonly ramByUse: Readonly<Record<"buffer" | "coherent" | "swiotlb" | "iommu-pages", number>>;
  /** …of which buffers from `allocBuffer`. */
  readonly bufferBytes: number;
  /** …of which coherent allocations (page-order blocks). */
  readonly coherentBytes: number;
  /** …of which IOMMU page tables (`DmaSystem.iommuPages`). */
  readonly iommuPageBytes: number;
  /** Paging domains allocated and not yet freed. */
  readonly pagingDomains: number;
  /** swiotlb slots in use, and how many of them devices' mappings account for. */
  readonly bounceSlots: number;
  /** Streaming mappings and coherent buffers of every configured device. */
  readonly liveMappings: number;
  /** IOVA bytes allocated in the DMA domains of every registered IOMMU. */
  readonly iovaBytes: number;
}
