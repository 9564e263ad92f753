//! C source: kernel/dma/mapping.c, kernel/dma/swiotlb.c (the system-wide parts: RAM zones,
//! the default io_tlb_mem), drivers/iommu/iommu.c (the list of registered IOMMUs)

import {
  BuddyAllocator,
  DevrefError,
  formatAddr,
  type PhysAddr,
  SparseMemory,
} from "@devref/raw-device";
import type { DmaLogSink } from "./constants.js";
import { IO_TLB_DEFAULT_SIZE, IO_TLB_SIZE } from "./constants.js";
import type { IommuDevice } from "./iommu.js";
import { SwiotlbPool } from "./swiotlb.js";

/** A memory region: physical base and length in bytes. */
export interface DmaRegion {
  readonly base: number;
  readonly size: number;
}

/** What a {@link DmaSystem} is built from. Every field has a default. */
export interface DmaSystemOptions {
  /** Size of the physical address space; default 2^40. */
  readonly memorySize?: number;
  /** RAM below 4 GiB (the kernel's ZONE_DMA32); default 1 GiB at 0x8000_0000. */
  readonly lowRam?: DmaRegion;
  /** RAM above 4 GiB (ZONE_NORMAL); default 4 GiB at 0x8_0000_0000. */
  readonly highRam?: DmaRegion;
  /**
   * The default swiotlb pool, placed low as the kernel does (memblock below 4 GiB); default
   * 64 MiB (`IO_TLB_DEFAULT_SIZE`) at 0x4000_0000. `nslabs` is in 2 KiB slots.
   */
  readonly swiotlb?: { readonly base: number; readonly nslabs: number };
  /**
   * `swiotlb=force`: every dma-direct mapping bounces (confidential-computing guests).
   * Default false.
   */
  readonly swiotlbForce?: boolean;
  /**
   * Address bits of the lowest DMA zone: dma-direct refuses masks that cannot reach it
   * (`dma_direct_supported`). Platform-specific in the kernel; default 32.
   */
  readonly zoneDmaBits?: number;
  /**
   * The default domain type of IOMMU groups when the driver does not force one:
   * `"strict"` (`IOMMU_DOMAIN_DMA`, `iommu.strict=1`) or `"lazy"` (`IOMMU_DOMAIN_DMA_FQ`).
   * Default `"strict"`.
   */
  readonly iommuDefaultDomain?: "strict" | "lazy";
  /** `iommu.passthrough=1`: default domains are IDENTITY. Default false. */
  readonly iommuPassthrough?: boolean;
  /** Receives the warnings the kernel would print; dropped if omitted. */
  readonly warn?: DmaLogSink;
}

const GiB = 2 ** 30;

/**
 * One machine's DMA world: physical memory, the RAM allocators, the default swiotlb pool
 * and the registered IOMMUs. An explicit object, not a global, so that two systems (two
 * tests) never see each other's state.
 *
 * Devices join a system when their probe calls `dmaConfigure(system, dev)` — the kernel's
 * `really_probe` → `bus->dma_configure` step.
 *
 * **Invariants:** the swiotlb pool and both RAM regions lie inside `memory` and do not
 * overlap; `iommus` holds only registered IOMMUs.
 *
 * **Errors:** the constructor throws `EINVAL` for regions that overlap or leave memory.
 *
 * @example
 * ```ts
 * const system = new DmaSystem();
 * const buf = system.allocBuffer(4096, "high"); // RAM above 4 GiB, for a test buffer
 * system.memory.write32(buf, 0xdead_beef);
 * ```
 */
export class DmaSystem {
  /** Physical memory as CPU and devices see it (no DMA offsets: phys_to_dma is identity). */
  readonly memory: SparseMemory;
  /** RAM below 4 GiB. */
  readonly lowRam: BuddyAllocator;
  /** RAM above 4 GiB. */
  readonly highRam: BuddyAllocator;
  /** The default swiotlb pool. */
  readonly swiotlb: SwiotlbPool;
  /** `swiotlb=force`. */
  readonly swiotlbForce: boolean;
  /** The inclusive limit of the lowest DMA zone. */
  readonly zoneDmaLimit: number;
  /** Default domain type for groups the driver does not decide. */
  readonly iommuDefaultDomain: "strict" | "lazy";
  readonly iommuPassthrough: boolean;
  /** Registered IOMMUs by the name of their hardware device (the `iommus` phandle target). */
  readonly iommus: Map<string, IommuDevice> = new Map();
  /** Where warnings go. */
  readonly warn: DmaLogSink | undefined;
  /** Unbind reports that found leaks (see `dmaUnbindReports`). */
  readonly leakReports: import("./audit.js").DmaUnbindReport[] = [];
  /** @internal Group ids, unique per system. */
  nextGroupId = 0;

  constructor(options: DmaSystemOptions = {}) {
    const memorySize = options.memorySize ?? 2 ** 40;
    const low = options.lowRam ?? { base: 0x8000_0000, size: GiB };
    const high = options.highRam ?? { base: 0x8_0000_0000, size: 4 * GiB };
    const tlb = options.swiotlb ?? { base: 0x4000_0000, nslabs: IO_TLB_DEFAULT_SIZE / IO_TLB_SIZE };
    const regions: [string, number, number][] = [
      ["lowRam", low.base, low.size],
      ["highRam", high.base, high.size],
      ["swiotlb", tlb.base, tlb.nslabs * IO_TLB_SIZE],
    ];
    for (const [name, base, size] of regions) {
      if (!(Number.isSafeInteger(base) && Number.isSafeInteger(size) && base >= 0 && size > 0)) {
        throw new DevrefError(
          "EINVAL",
          `DMA system region ${name} must have a whole base and size`,
        );
      }
      if (base + size > memorySize) {
        throw new DevrefError(
          "EINVAL",
          `DMA system region ${name} [${formatAddr(base)}, ${formatAddr(base + size)}) leaves ` +
            `memory of ${formatAddr(memorySize)} bytes: enlarge memorySize or move the region`,
        );
      }
    }
    for (let i = 0; i < regions.length; i++) {
      for (let j = i + 1; j < regions.length; j++) {
        const [a, ab, as] = regions[i]!;
        const [b, bb, bs] = regions[j]!;
        if (ab < bb + bs && bb < ab + as) {
          throw new DevrefError("EINVAL", `DMA system regions ${a} and ${b} overlap: move one`);
        }
      }
    }
    this.memory = new SparseMemory(memorySize);
    this.lowRam = new BuddyAllocator(this.memory, low.base, low.size, 4096);
    this.highRam = new BuddyAllocator(this.memory, high.base, high.size, 4096);
    this.warn = options.warn;
    this.swiotlb = new SwiotlbPool(this.memory, {
      base: tlb.base,
      nslabs: tlb.nslabs,
      ...(options.warn === undefined ? {} : { warn: options.warn }),
    });
    this.swiotlbForce = options.swiotlbForce ?? false;
    const zoneBits = options.zoneDmaBits ?? 32;
    if (!Number.isInteger(zoneBits) || zoneBits < 1 || zoneBits > 52) {
      throw new DevrefError("EINVAL", `zoneDmaBits ${String(zoneBits)} must be 1 … 52`);
    }
    this.zoneDmaLimit = 2 ** zoneBits - 1;
    this.iommuDefaultDomain = options.iommuDefaultDomain ?? "strict";
    this.iommuPassthrough = options.iommuPassthrough ?? false;
  }

  /**
   * The smallest mask dma-direct accepts (`dma_direct_supported`): the lower of the last RAM
   * page and the end of the lowest DMA zone.
   */
  get minDirectMask(): number {
    const ramEnd = Math.max(
      this.lowRam.base + this.lowRam.length,
      this.highRam.base + this.highRam.length,
    );
    return Math.min(this.zoneDmaLimit, ramEnd - 4096);
  }

  /**
   * Allocates a zeroed, page-aligned buffer for tests and example drivers: `"high"` RAM
   * (above 4 GiB, what a 32-bit device cannot reach) or `"low"` RAM.
   *
   * **Errors:** `ENOMEM` when the region is full; `EINVAL` for a bad size.
   */
  allocBuffer(size: number, where: "low" | "high" = "high"): PhysAddr {
    return (where === "high" ? this.highRam : this.lowRam).alloc(size, 4096);
  }

  /** Frees a buffer from {@link allocBuffer}. **Errors:** `EINVAL` for an unknown buffer. */
  freeBuffer(pa: PhysAddr, size: number): void {
    (pa >= this.highRam.base && pa < this.highRam.base + this.highRam.length
      ? this.highRam
      : this.lowRam
    ).free(pa, size);
  }
}
