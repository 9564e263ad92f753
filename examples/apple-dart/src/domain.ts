//! C source: drivers/iommu/apple-dart.c (struct apple_dart_domain, apple_dart_finalize_domain,
//! apple_dart_attach_dev, map/unmap_pages, the iotlb sync paths, iova_to_phys, domain_free)
//!
//! A paging domain of one DART: an `apple-dart` or `apple-dart2` page table from
//! `@devref/io-pgtable` with the DART's page size and address widths, and the streams that
//! translate through it. Every TLB maintenance call invalidates all of the domain's streams,
//! as the kernel's does; the range of a gather is not used.

import type { Device } from "@devref/device-core";
import { type IommuDomain, type IommuDomainOps, iommuIotlbGatherAddPage } from "@devref/dma-iommu";
import {
  type AppleDartIoPgtable,
  allocIoPgtable,
  type IommuIotlbGather,
  type IotlbGather,
  type IovaArg,
} from "@devref/io-pgtable";
import {
  type Borrowed,
  checkInstance,
  checkObject,
  DevrefError,
  type Iova,
  iova,
  type PhysAddr,
  type PhysAllocator,
} from "@devref/raw-device";
import { AppleDart, STREAM_WORDS } from "./dart.js";

/**
 * A DART paging domain (DMA or unmanaged), finalized when allocated: the table exists from
 * the start, so `mapPages` never sees a domain without one.
 *
 * **Invariants:** the aperture is `0 … 2^ias − 1` of the table, forced; `streams()` lists
 * exactly the streams whose TCR selects this domain's tables; after `free()` no stream
 * points at the tables (they were blocked and invalidated first) and the table pages are
 * back with their allocator.
 *
 * **Errors:** `mapPages` throws what io-pgtable throws (`EINVAL`, `ERANGE`, `EEXIST`,
 * `ENOMEM`); `attachDev` throws `EINVAL` on a DART whose bypass is forced; `ESHUTDOWN`
 * after `free()`.
 *
 * @example
 * ```ts
 * const domain = iommuGetDomainForDev(engine)!; // the core's domain over a DartDomain
 * const ops = domain.ops as DartDomain;
 * ops.table.cfg.appleDartCfg.ttbr; // the table roots the TTBRs hold
 * ops.streams(); // [2]
 * ```
 */
export class DartDomain implements IommuDomainOps {
  readonly apertureStart: Iova = iova(0);
  readonly apertureEnd: Iova;
  readonly forceAperture: boolean = true;
  /** The io-pgtable table; its `cfg` has the TTBR addresses and the level count. */
  readonly table: AppleDartIoPgtable;
  /** Whether the table has four levels (T8110 `FOUR_LEVEL`). */
  readonly fourLevel: boolean;
  /** The core's domain object, once bound. */
  domain: IommuDomain | null = null;
  private readonly dart: AppleDart;
  private readonly sidmap = new Uint32Array(STREAM_WORDS);
  private freed = false;

  /**
   * Allocates the table (`apple_dart_finalize_domain`): format by variant, `pgsize_bitmap`
   * = the DART page, `ias`/`oas` from PARAMS, coherent walk.
   *
   * **Errors:** `EINVAL` where io-pgtable refuses the configuration; `ENOMEM` when no table
   * page is left.
   */
  constructor(dart: AppleDart, pages: PhysAllocator) {
    checkInstance("new DartDomain", "dart", dart, AppleDart);
    checkObject("new DartDomain", "pages", pages);
    const p = dart.params;
    this.dart = dart;
    this.table = allocIoPgtable(
      dart.hw.fmt,
      {
        pgsizeBitmap: p.pgsize,
        ias: p.ias,
        oas: p.oas,
        coherentWalk: true,
        // The core only syncs a gather that recorded a page, so each cleared page is
        // recorded; the DART itself ignores the range and invalidates whole streams.
        tlb: { tlbAddPage: (gather, at, granule) => this.addPage(gather, at, granule) },
      },
      pages,
    );
    const levels = this.table.cfg.appleDartCfg.nLevels;
    if (levels === 4 && !p.fourLevel) {
      this.table[Symbol.dispose]();
      throw new DevrefError(
        "EINVAL",
        `a ${p.ias}-bit input space needs four table levels, which DART '${dart.name}' cannot walk`,
      );
    }
    this.fourLevel = levels === 4;
    this.apertureEnd = iova(2 ** this.table.cfg.ias - 1);
  }

  bindDomain(domain: IommuDomain): void {
    this.domain = domain;
  }

  /** The streams translating through this domain, ascending. */
  streams(): number[] {
    const out: number[] = [];
    for (let sid = 0; sid < this.dart.params.numStreams; sid++) {
      if (((this.sidmap[sid >>> 5]! >>> (sid & 31)) & 1) === 1) out.push(sid);
    }
    return out;
  }

  /** @internal Bookkeeping of the DART: `sid` now translates through this domain. */
  addStream(sid: number): void {
    this.sidmap[sid >>> 5] = (this.sidmap[sid >>> 5]! | (1 << (sid & 31))) >>> 0;
  }

  /** @internal Bookkeeping of the DART: `sid` went elsewhere. */
  dropStream(sid: number): void {
    this.sidmap[sid >>> 5] = (this.sidmap[sid >>> 5]! & ~(1 << (sid & 31))) >>> 0;
  }

  /**
   * `apple_dart_attach_dev` for a paging domain: the device's streams join the domain, get
   * its TTBRs and TCR = translate, and are invalidated.
   */
  attachDev<S>(_dev: Borrowed<Device, S>, ids: readonly number[]): void {
    this.live();
    if (this.dart.params.forceBypass) {
      throw new DevrefError(
        "EINVAL",
        `DART '${this.dart.name}' pages (${this.dart.params.pgsize} bytes) are larger than the CPU's: only bypass works there`,
      );
    }
    this.dart.setupTranslation(this, ids, this.table.cfg.appleDartCfg.ttbr);
  }

  mapPages(at: Iova, paddr: PhysAddr, pgsize: number, pgcount: number, prot: number): number {
    this.live();
    return this.table.mapPages(at, paddr, pgsize, pgcount, prot);
  }

  unmapPages(at: Iova, pgsize: number, pgcount: number, gather: IotlbGather): number {
    if (this.freed) return 0;
    return this.table.unmapPages(at, pgsize, pgcount, gather);
  }

  /** `iotlb_sync`: every stream of the domain, whatever the gather's range. */
  iotlbSync(_gather: IotlbGather): void {
    this.flush();
  }

  /** `flush_iotlb_all`. */
  flushIotlbAll(): void {
    if (!this.freed) this.dart.countFlushAll();
    this.flush();
  }

  /** `iotlb_sync_map`: the kernel invalidates after a map too. */
  iotlbSyncMap(_at: Iova, _size: number): void {
    this.flush();
  }

  iovaToPhys(at: Iova): PhysAddr {
    // SAFETY: 0 is the kernel's "not mapped", a whole address.
    if (this.freed) return 0 as PhysAddr;
    return this.table.iovaToPhys(at);
  }

  /**
   * `domain_free`: streams still pointing at the tables are blocked and invalidated, then
   * the table pages go back. A second call does nothing.
   */
  free(): void {
    if (this.freed) return;
    this.freed = true;
    try {
      this.dart.releaseDomain(this);
    } finally {
      this.table[Symbol.dispose]();
    }
  }

  private flush(): void {
    if (this.freed) return;
    this.dart.invalidate(this.sidmap);
  }

  private addPage(gather: IommuIotlbGather | null, at: IovaArg, granule: number): void {
    const d = this.domain;
    if (d === null || typeof at === "bigint") return;
    iommuIotlbGatherAddPage(d, gather, at, granule);
  }

  private live(): void {
    if (this.freed) {
      throw new DevrefError(
        "ESHUTDOWN",
        `a DART '${this.dart.name}' domain was used after it was freed`,
      );
    }
  }
}
