//! @devref/dma-iommu: the IOVA allocator with range caches and the swiotlb bounce-buffer pool.

export * from "./constants.js";
export {
  IOVA_MAX_PFN,
  type IovaDevicePolicy,
  IovaDomain,
  type IovaDomainOptions,
  type IovaRange,
  type IovaStats,
} from "./iova.js";
export {
  type SwiotlbMapOptions,
  type SwiotlbMapping,
  SwiotlbPool,
  type SwiotlbPoolOptions,
  type SwiotlbStats,
} from "./swiotlb.js";
