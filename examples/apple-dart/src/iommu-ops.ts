//! C source: drivers/iommu/apple-dart.c (apple_dart_iommu_ops: of_xlate + probe_device,
//! release_device, device_group, domain_alloc_paging, def_domain_type, identity and
//! blocked attach)
//!
//! The IOMMU core's view of one DART. Every callback gets a borrow of the client device
//! that ends with the call and the device's `iommus` stream IDs; nothing here keeps a
//! device.

import { PciDevice } from "@devref/bus";
import {
  Device,
  DL_FLAG_AUTOREMOVE_SUPPLIER,
  DL_FLAG_PM_RUNTIME,
  deviceLinkAdd,
} from "@devref/device-core";
import {
  IOMMU_DOMAIN_DMA,
  IOMMU_DOMAIN_IDENTITY,
  type IommuDomainType,
  type IommuOps,
  type IommuResvRegion,
} from "@devref/dma-iommu";
import { IOMMU_MMIO, IOMMU_NOEXEC, IOMMU_WRITE } from "@devref/io-pgtable";
import {
  argumentError,
  type Borrowed,
  checkAddress,
  checkInstance,
  checkInteger,
  checkObject,
  DevrefError,
  describeValue,
  isPowerOfTwo,
  type PhysAllocator,
} from "@devref/raw-device";
import { AppleDart } from "./dart.js";
import { DartDomain } from "./domain.js";

/**
 * What the IOMMU side of the driver needs besides the DART.
 *
 * **Invariants:** `hostPageSize` is a power of two; the doorbell page lies below 2^52.
 */
export interface DartIommuConfig {
  /** Where paging domains get their table pages. */
  readonly pages: PhysAllocator;
  /** The CPU page size: the doorbell reservation is one such page. */
  readonly hostPageSize: number;
  /** The PCIe MSI doorbell address (`CONFIG_PCIE_APPLE_MSI_DOORBELL_ADDR`), or null for none. */
  readonly msiDoorbell: number | null;
  /**
   * The DART's own device. When given, every master gets a device link to it
   * (`DL_FLAG_PM_RUNTIME | DL_FLAG_AUTOREMOVE_SUPPLIER`, as apple_dart_probe_device adds),
   * so the DART's unbind unbinds its masters first.
   */
  readonly device?: Device;
}

/**
 * The `IommuOps` of `dart`, with paging-domain tables from `cfg.pages`, and the MSI doorbell
 * page reserved for PCI devices.
 *
 * **Invariants:** devices with the same stream set share a group; a device whose streams
 * overlap another's without being the same set gets its own group (the kernel would merge
 * them or refuse).
 *
 * **Errors:** `probeDevice` throws `EINVAL` for an `iommus` entry without a stream cell, or
 * a stream the DART does not have; `domainAllocPaging` throws `EINVAL` when bypass is
 * forced; identity attach throws `EINVAL` without bypass support.
 *
 * @example
 * ```ts
 * iommuDeviceRegister(system, dev, dartIommuOps(dart, { pages, hostPageSize: 16384, msiDoorbell: 0xffff_f000 }));
 * ```
 */
export function dartIommuOps(dart: AppleDart, cfg: DartIommuConfig): IommuOps {
  const where = "dartIommuOps";
  checkInstance(where, "dart", dart, AppleDart);
  checkObject(where, "cfg", cfg);
  checkObject(where, "cfg.pages", cfg.pages);
  checkInteger(where, "cfg.hostPageSize", cfg.hostPageSize, 4096, 65536);
  if (!isPowerOfTwo(cfg.hostPageSize)) {
    throw argumentError(where, "cfg.hostPageSize", "a power of two", cfg.hostPageSize);
  }
  if (cfg.msiDoorbell !== null) checkAddress(where, "cfg.msiDoorbell", cfg.msiDoorbell);
  if (cfg.device !== undefined) checkInstance(where, "cfg.device", cfg.device, Device);
  const p = dart.params;
  const pages = cfg.pages;
  const doorbell: readonly IommuResvRegion[] =
    cfg.msiDoorbell === null
      ? []
      : [
          {
            // DOORBELL_ADDR: the doorbell's CPU page. The PCIe controller catches MSI writes
            // there before the DART, so no DMA may ever be given an IOVA in it.
            start: cfg.msiDoorbell - (cfg.msiDoorbell % cfg.hostPageSize),
            length: cfg.hostPageSize,
            prot: IOMMU_WRITE | IOMMU_NOEXEC | IOMMU_MMIO,
            type: "msi",
          },
        ];
  return {
    pgsizeBitmap: p.pgsize,
    probeDevice<S>(dev: Borrowed<Device, S>, ids: readonly number[]): void {
      // of_xlate: one cell per entry, the stream ID.
      if (ids.length === 0) {
        throw new DevrefError(
          "EINVAL",
          `'${dev.name}' names DART '${dart.name}' in iommus without a stream ID; give one cell per stream`,
        );
      }
      for (const sid of ids) {
        if (!Number.isInteger(sid) || sid < 0 || sid >= p.numStreams) {
          throw new DevrefError(
            "EINVAL",
            `'${dev.name}': stream ${describeValue(sid)} is not a stream of DART '${dart.name}' (it has ${p.numStreams})`,
          );
        }
      }
      if (
        cfg.device !== undefined &&
        deviceLinkAdd(dev, cfg.device, DL_FLAG_PM_RUNTIME | DL_FLAG_AUTOREMOVE_SUPPLIER) === null
      ) {
        throw new DevrefError(
          "EINVAL",
          `'${dev.name}' cannot be linked to DART '${dart.name}' (a dependency cycle, or the DART is gone)`,
        );
      }
      dart.claim(dev.name, ids);
    },
    releaseDevice<S>(dev: Borrowed<Device, S>, ids: readonly number[]): void {
      dart.unclaim(dev.name, ids);
    },
    deviceGroup<S>(_dev: Borrowed<Device, S>, ids: readonly number[]): string {
      return `${dart.name}:${[...ids].sort((a, b) => a - b).join(",")}`;
    },
    domainAllocPaging<S>(_dev: Borrowed<Device, S>): DartDomain {
      if (p.forceBypass) {
        throw new DevrefError(
          "EINVAL",
          `DART '${dart.name}' has ${p.pgsize}-byte pages, larger than the CPU's: it can only bypass`,
        );
      }
      return new DartDomain(dart, pages);
    },
    defDomainType<S>(_dev: Borrowed<Device, S>): IommuDomainType | null {
      if (p.forceBypass) return IOMMU_DOMAIN_IDENTITY;
      if (!p.supportsBypass) return IOMMU_DOMAIN_DMA;
      return null;
    },
    attachIdentity<S>(dev: Borrowed<Device, S>, ids: readonly number[]): void {
      if (!p.supportsBypass) {
        throw new DevrefError(
          "EINVAL",
          `DART '${dart.name}' cannot bypass (PARAMS2.BYPASS_SUPPORT is clear): no identity domain for '${dev.name}'`,
        );
      }
      dart.enableBypass(ids);
    },
    attachBlocked<S>(_dev: Borrowed<Device, S>, ids: readonly number[]): void {
      dart.disableDma(ids);
    },
    getResvRegions<S>(dev: Borrowed<Device, S>): readonly IommuResvRegion[] {
      return dev instanceof PciDevice ? doorbell : [];
    },
  };
}
