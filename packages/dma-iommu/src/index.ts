//! @devref/dma-iommu: the DMA mapping API, dma-direct with swiotlb, the IOMMU core, dma-iommu
//! and the IOVA allocator, per device.

export type {
  DmaAuditEntry,
  DmaDeviceAudit,
  DmaSystemAudit,
  DmaUnbindReport,
} from "./audit.js";
export { type CoherentAllocation, dmaAllocCoherent } from "./coherent.js";
export {
  type DmaConfigureOptions,
  dmaConfigure,
  dmaConfigureDevice,
  dmaDeviceAudit,
  dmaGetMask,
  dmaSetCoherentMask,
  dmaSetMask,
  dmaSetMaskAndCoherent,
  dmaStateOf,
} from "./configure.js";
export * from "./constants.js";
export {
  type DmaIommuCookie,
  dmaInfoToProt,
  type FlushQueue,
  IOVA_DEFAULT_FQ_SIZE,
} from "./dma-iommu.js";
export type { DeviceDma } from "./dma-state.js";
export {
  IOMMU_DMA_MAX_GRANULE,
  IOMMU_DOMAIN_BLOCKED,
  IOMMU_DOMAIN_DMA,
  IOMMU_DOMAIN_DMA_FQ,
  IOMMU_DOMAIN_IDENTITY,
  IOMMU_DOMAIN_UNMANAGED,
  IOMMU_FAULT_READ,
  IOMMU_FAULT_WRITE,
  IOMMU_RESV_TYPES,
  type IommuCap,
  type IommuClient,
  type IommuDevice,
  type IommuDomain,
  type IommuDomainOps,
  type IommuDomainType,
  type IommuFaultHandler,
  type IommuGroup,
  type IommuOps,
  type IommuResvRegion,
  type IommuResvType,
  iommuDomainTypeName,
} from "./iommu.js";
export {
  deviceIommuCapable,
  type IommuRegisterOptions,
  iommuAttachDevice,
  iommuDetachDevice,
  iommuDeviceRegister,
  iommuDeviceUnregister,
  iommuDomainFree,
  iommuGetDomainForDev,
  iommuGroupGet,
  iommuPagingDomainAlloc,
} from "./iommu-core.js";
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
  dmaLastError,
  dmaMappingError,
  dmaMapSingle,
  dmaSyncSingleForCpu,
  dmaSyncSingleForDevice,
  dmaUnmapSingle,
} from "./mapping.js";
export type { DmaRamUse, IommuPages } from "./ram.js";
export {
  dmaMapSg,
  dmaSyncSgForCpu,
  dmaSyncSgForDevice,
  dmaUnmapSg,
  ScatterList,
  type ScatterSegment,
} from "./scatterlist.js";
export {
  type SwiotlbMapOptions,
  type SwiotlbMapping,
  SwiotlbPool,
  type SwiotlbPoolOptions,
  type SwiotlbStats,
} from "./swiotlb.js";
export { type DmaRegion, DmaSystem, type DmaSystemOptions } from "./system.js";
