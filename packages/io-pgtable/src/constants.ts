//! C header: include/linux/iommu.h (IOMMU_* prot flags), include/linux/io-pgtable.h (quirks, formats)

/** Readable mapping. `//! C header: include/linux/iommu.h` */
export const IOMMU_READ = 1; // 1 << 0
/** Writable mapping (on LPAE stage 1 a write-only request gives read/write). */
export const IOMMU_WRITE = 2; // 1 << 1
/** Cache-coherent memory: cacheable and inner shareable. */
export const IOMMU_CACHE = 4; // 1 << 2
/** Not executable: both XN bits on LPAE; ignored by DART. */
export const IOMMU_NOEXEC = 8; // 1 << 3
/** Device memory such as an MSI doorbell; wins over {@link IOMMU_CACHE} for the memory type. */
export const IOMMU_MMIO = 16; // 1 << 4
/** Privileged-only access (LPAE stage 1 clears AP[1]). */
export const IOMMU_PRIV = 32; // 1 << 5
/** Every prot bit the kernel defines today; anything else is rejected with `EINVAL`. */
export const IOMMU_PROT_MASK: number = 0x3f;

/** Stage 1: NS on leaves, NSTable on table descriptors. */
export const IO_PGTABLE_QUIRK_ARM_NS = 1; // 1 << 0
/** Not accepted by the LPAE or DART formats here; allocation fails if set on LPAE. */
export const IO_PGTABLE_QUIRK_NO_PERMS = 2; // 1 << 1
/** Stage 1: the table serves the upper (TTBR1) half of a split address space. */
export const IO_PGTABLE_QUIRK_ARM_TTBR1 = 32; // 1 << 5
/** Stage 1, non-coherent walks only: outer write-back write-allocate walk attributes. */
export const IO_PGTABLE_QUIRK_ARM_OUTER_WBWA = 64; // 1 << 6
/** Stage 1: hardware dirty tracking; DBM is set in every writable leaf. */
export const IO_PGTABLE_QUIRK_ARM_HD = 128; // 1 << 7
/** Stage 2: MemAttr in the FWB encoding for cacheable mappings. */
export const IO_PGTABLE_QUIRK_ARM_S2FWB = 256; // 1 << 8
/** Silences kernel warnings only; no effect on tables or results. */
export const IO_PGTABLE_QUIRK_NO_WARN = 512; // 1 << 9

/**
 * The page-table formats this package builds, named by identifier (the kernel's enum
 * numbers are not stable across releases).
 */
export type IoPgtableFormat = "arm-64-lpae-s1" | "arm-64-lpae-s2" | "apple-dart" | "apple-dart2";

/** Every {@link IoPgtableFormat}, in the kernel's enum order. */
export const IO_PGTABLE_FORMATS: readonly IoPgtableFormat[] = Object.freeze([
  "arm-64-lpae-s1",
  "arm-64-lpae-s2",
  "apple-dart",
  "apple-dart2",
] as const);
