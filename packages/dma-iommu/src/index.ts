//! @devref/dma-iommu: the DMA mapping API, dma-direct with swiotlb, the IOMMU core, dma-iommu
//! and the IOVA allocator, per device.

export type {
  DmaAuditEntry,
  DmaDeviceAudit,
  DmaSystemAudit,
  DmaUnbindReport,
} from "./audit.js";
export { type CoherentAllocation, dmaAllocCoherent } from "./coherent.js";
export * from "./constants.js";
export {
  type DmaIommuCookie,
  dmaInfoToProt,
  type FlushQueue,
  IOVA_DEFAULT_FQ_SIZE,
} from "./dma-iommu.js";
export {
  deviceIommuCapable,
  IOMMU_DMA_MAX_GRANULE,
  IOMMU_DOMAIN_BLOCKED,
  IOMMU_DOMAIN_DMA,
  IOMMU_DOMAIN_DMA_FQ,
  IOMMU_DOMAIN_IDENTITY,
  IOMMU_DOMAIN_UNMANAGED,
  IOMMU_FAULT_READ,
  IOMMU_FAULT_WRITE,
  type IommuCap,
  type IommuClient,
  type IommuDevice,
  type IommuDomain,
  type IommuDomainOps,
  type IommuDomainType,
  type IommuFaultHandler,
  type IommuGroup,
  type IommuOps,
  type IommuRegisterOptions,
  iommuAttachDevice,
  iommuDetachDevice,
  iommuDeviceRegister,
  iommuDeviceUnregister,
  iommuDomainFree,
  iommuDomainTypeName,
  iommuGetDomainForDev,
  iommuGroupGet,
  iommuPagingDomainAlloc,
} from "./iommu.js";
export {
  iommuIotlbGatherAddPage,
  iommuIotlbSync,
  iommuIovaToPhys,
  iommuMap,
  iommuPgsize,
  iommuSetFaultHandler,
  iommuUnmap,
  iommuUnmapFast,
  reportIommuFault,
} from "./iommu-map.js";
export {
  IOVA_MAX_PFN,
  type IovaDevicePolicy,
  IovaDomain,
  type IovaDomainOptions,
  type IovaRange,
  type IovaStats,
} from "./iova.js";
export {
  type DeviceDma,
  DMA_DEFAULT_MAX_SEG_SIZE,
  DMA_MAPPING_ERROR,
  type DmaConfigureOptions,
  dmaConfigure,
  dmaConfigureDevice,
  dmaDeviceAudit,
  dmaGetMask,
  dmaSetCoherentMask,
  dmaSetMask,
  dmaSetMaskAndCoherent,
  dmaStateOf,
} from "./mapping.js";
export {
  dmaLastError,
  dmaMappingError,
  dmaMapSg,
  dmaMapSingle,
  dmaSyncSgForCpu,
  dmaSyncSgForDevice,
  dmaSyncSingleForCpu,
  dmaSyncSingleForDevice,
  dmaUnmapSg,
  dmaUnmapSingle,
  ScatterList,
  type ScatterSegment,
} from "./streaming.js";
export {
  type SwiotlbMapOptions,
  type SwiotlbMapping,
  SwiotlbPool,
  type SwiotlbPoolOptions,
  type SwiotlbStats,
} from "./swiotlb.js";
export { type DmaRegion, DmaSystem, type DmaSystemOptions } from "./system.js";
