//! C source: kernel/dma/debug.c (CONFIG_DMA_API_DEBUG: the per-device entry list and the
//! "device driver has pending DMA allocations while released from device" report)

/** One outstanding DMA mapping or allocation, as an audit lists it. */
export interface DmaAuditEntry {
  /** `"single"` (dma_map_single/page), `"sg"` (one scatterlist), `"coherent"`. */
  readonly kind: "single" | "sg" | "coherent";
  /** The address the device uses. */
  readonly dmaAddr: number;
  readonly size: number;
  /** The direction's kernel name (coherent: DMA_BIDIRECTIONAL). */
  readonly dir: string;
  /** How it reaches memory: `"dma-direct"`, `"swiotlb"` (bounced) or `"iommu-dma"`. */
  readonly via: "dma-direct" | "swiotlb" | "iommu-dma";
  /** The CPU physical address of the buffer (first segment for scatterlists). */
  readonly phys: number;
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
