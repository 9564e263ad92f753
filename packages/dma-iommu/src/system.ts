//! C source: kernel/dma/mapping.c, kernel/dma/swiotlb.c (the system-wide parts: RAM zones,
//! the default io_tlb_mem), drivers/iommu/iommu.c (the list of registered IOMMUs)

import { type DmaLayer, Machine } from "@devref/device-core";
import type { DeviceState } from "@devref/device-core/unsafe";
import {
  BuddyAllocator,
  checkAddress,
  checkBoolean,
  checkCallback,
  checkCount,
  checkInstance,
  checkInteger,
  checkObject,
  checkOneOf,
  checkSize,
  DevrefError,
  formatAddr,
  type PhysAddr,
  SparseMemory,
} from "@devref/raw-device";
import type { DmaSystemAudit } from "./audit.js";
import type { DmaLogSink } from "./constants.js";
import { IO_TLB_DEFAULT_SIZE, IO_TLB_SIZE } from "./constants.js";
import type { IommuDevice, IommuDomain } from "./iommu.js";
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
  /**
   * The machine whose DMA layer this system becomes (one per machine): every probe on it
   * then gets `dma_configure` without asking, and every binding's end tears the streaming
   * mappings its driver left down **before** the driver's devres frees their buffers (the
   * kernel's `dma_cleanup` step). Without it, drivers call `dmaConfigure` in probe and the
   * teardown runs as a devres action.
   */
  readonly machine?: Machine;
}

/** @internal What mapping.ts plugs in for the machine's DMA layer hooks. */
export interface DmaLayerHooks {
  configure(system: DmaSystem, st: DeviceState): void;
  quiesce(st: DeviceState): void;
  deconfigure(st: DeviceState): void;
}

let layerHooks: DmaLayerHooks | null = null;

/** @internal */
export function setDmaLayerHooks(hooks: DmaLayerHooks): void {
  layerHooks = hooks;
}

const GiB = 2 ** 30;
/** The block size of the RAM allocators, and the alignment of every buffer. */
const RAM_BLOCK = 4096;

/**
 * @internal What the system asks of each configured device when a buffer goes back to RAM:
 * streaming mappings of that memory are torn down first, so the device can never reach
 * memory that is no longer the driver's.
 */
export interface DmaMemoryUser {
  /**
   * Tears down (and reports as leaked) every streaming mapping of `[pa, pa + size)`.
   * Throws, with nothing freed by the caller, if a mapping cannot be torn down.
   */
  dropMappingsOf(pa: number, size: number): void;
  /** What the device holds, for {@link DmaSystem.audit}. */
  auditUsage(): DmaUserAudit;
}

/** @internal One device's share of the system's resources. */
export interface DmaUserAudit {
  /** swiotlb slots and mappings held by its bounced mappings. */
  readonly bounceSlots: number;
  readonly bounceMappings: number;
  /** RAM blocks of its coherent buffers. */
  readonly coherentBytes: number;
  /** Its live mappings and buffers. */
  readonly live: number;
  /** IOVA bytes it holds, per domain. */
  readonly iova: ReadonlyMap<IommuDomain, number>;
  /** Disagreements inside its own bookkeeping. */
  readonly problems: readonly string[];
}

let usersOf: (s: DmaSystem) => Set<DmaMemoryUser>;

function checkRegion(where: string, param: string, r: DmaRegion): DmaRegion {
  checkObject(where, param, r);
  checkAddress(where, `${param}.base`, r.base);
  checkSize(where, `${param}.size`, r.size);
  return r;
}

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
  /** The machine this system is the DMA layer of, or null. */
  readonly machine: Machine | null;
  /** Unbind reports that found leaks (see `dmaUnbindReports`). */
  readonly leakReports: import("./audit.js").DmaUnbindReport[] = [];
  /** @internal Group ids, unique per system. */
  nextGroupId = 0;
  /** Configured devices, asked to drop their mappings of memory being freed. */
  readonly #users: Set<DmaMemoryUser> = new Set();
  /** Live buffers from allocBuffer: start → block size. */
  private readonly buffers: Map<number, number> = new Map();

  constructor(options: DmaSystemOptions = {}) {
    const where = "new DmaSystem";
    checkObject(where, "options", options);
    const memorySize =
      options.memorySize === undefined
        ? 2 ** 40
        : checkSize(where, "options.memorySize", options.memorySize, 1, 2 ** 52);
    const low =
      options.lowRam === undefined
        ? { base: 0x8000_0000, size: GiB }
        : checkRegion(where, "options.lowRam", options.lowRam);
    const high =
      options.highRam === undefined
        ? { base: 0x8_0000_0000, size: 4 * GiB }
        : checkRegion(where, "options.highRam", options.highRam);
    if (options.swiotlb !== undefined) {
      checkObject(where, "options.swiotlb", options.swiotlb);
      checkAddress(where, "options.swiotlb.base", options.swiotlb.base);
      checkCount(where, "options.swiotlb.nslabs", options.swiotlb.nslabs, 1, 2 ** 20);
    }
    if (options.swiotlbForce !== undefined)
      checkBoolean(where, "options.swiotlbForce", options.swiotlbForce);
    if (options.zoneDmaBits !== undefined)
      checkInteger(where, "options.zoneDmaBits", options.zoneDmaBits, 1, 52);
    if (options.iommuDefaultDomain !== undefined)
      checkOneOf(where, "options.iommuDefaultDomain", options.iommuDefaultDomain, [
        "strict",
        "lazy",
      ]);
    if (options.iommuPassthrough !== undefined)
      checkBoolean(where, "options.iommuPassthrough", options.iommuPassthrough);
    if (options.warn !== undefined) checkCallback(where, "options.warn", options.warn);
    const machine =
      options.machine === undefined
        ? null
        : checkInstance(where, "options.machine", options.machine, Machine);
    if (machine !== null && machine.dma !== null) {
      throw new DevrefError(
        "EEXIST",
        `machine '${machine.name}' already has a DMA layer: one DmaSystem per machine`,
      );
    }
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
    this.lowRam = new BuddyAllocator(this.memory, low.base, low.size, RAM_BLOCK);
    this.highRam = new BuddyAllocator(this.memory, high.base, high.size, RAM_BLOCK);
    this.warn = options.warn;
    this.swiotlb = new SwiotlbPool(this.memory, {
      base: tlb.base,
      nslabs: tlb.nslabs,
      ...(options.warn === undefined ? {} : { warn: options.warn }),
    });
    this.swiotlbForce = options.swiotlbForce ?? false;
    const zoneBits = options.zoneDmaBits ?? 32;
    this.zoneDmaLimit = 2 ** zoneBits - 1;
    this.iommuDefaultDomain = options.iommuDefaultDomain ?? "strict";
    this.iommuPassthrough = options.iommuPassthrough ?? false;
    this.machine = machine;
    if (machine !== null) machine.dma = this.#layer();
  }

  /** The machine's DMA layer hooks, calling into this system. */
  #layer(): DmaLayer {
    const system = this;
    const quietly = (st: DeviceState, what: string, fn: () => void): void => {
      try {
        fn();
      } catch (e) {
        st.log("err", `DMA-API: ${what} failed: ${String(e)}`);
      }
    };
    return {
      configure(st: DeviceState): void {
        layerHooks?.configure(system, st);
      },
      quiesce(st: DeviceState): void {
        quietly(st, "quiescing DMA at the end of the binding", () => layerHooks?.quiesce(st));
      },
      deconfigure(st: DeviceState): void {
        quietly(st, "tearing DMA down", () => layerHooks?.deconfigure(st));
      },
    };
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
   * (above 4 GiB, what a 32-bit device cannot reach) or `"low"` RAM. The block is rounded up
   * to a power of two of at least 4 KiB.
   *
   * **Errors:** `ENOMEM` when the region is full; `EINVAL` for a bad size or region name.
   */
  allocBuffer(size: number, where: "low" | "high" = "high"): PhysAddr {
    const fn = "DmaSystem.allocBuffer";
    checkSize(fn, "size", size, 1, 2 ** 52);
    checkOneOf(fn, "where", where, ["low", "high"]);
    const block = blockOf(size);
    const pa = (where === "high" ? this.highRam : this.lowRam).alloc(block, RAM_BLOCK);
    this.buffers.set(pa, block);
    return pa;
  }

  /**
   * Frees a buffer from {@link allocBuffer}. A streaming mapping of it that some device still
   * holds is torn down first and reported as that driver's leak (the kernel's dma-debug
   * would warn; here the device simply can no longer reach memory that is given back).
   *
   * **Errors:** `EINVAL`, with nothing freed, for an address that is not a live buffer from
   * {@link allocBuffer} or a size that is not the one it was allocated with; whatever
   * tearing down a mapping of it throws (the buffer then stays allocated).
   */
  freeBuffer(pa: PhysAddr, size: number): void {
    const fn = "DmaSystem.freeBuffer";
    checkAddress(fn, "pa", pa);
    checkSize(fn, "size", size, 1, 2 ** 52);
    const block = this.buffers.get(pa);
    if (block === undefined) {
      throw new DevrefError(
        "EINVAL",
        `${fn}(${formatAddr(pa, 1)}): no buffer from allocBuffer starts there (never allocated, or freed already)`,
      );
    }
    if (blockOf(size) !== block) {
      throw new DevrefError(
        "EINVAL",
        `${fn}(${formatAddr(pa, 1)}, ${size}): the buffer there was allocated with a size that rounds to ${block} bytes; pass that size`,
      );
    }
    for (const u of this.#users) u.dropMappingsOf(pa, block);
    this.buffers.delete(pa);
    (pa >= this.highRam.base && pa < this.highRam.base + this.highRam.length
      ? this.highRam
      : this.lowRam
    ).free(pa, block);
  }

  /**
   * Checks that every resource the DMA layer hands out is held by exactly the bookkeeping
   * that will give it back: RAM in use is the live buffers plus the coherent blocks; the
   * swiotlb slots in use are the devices' bounced mappings; each DMA domain's allocated IOVA
   * space is its devices' mappings plus its flush queue; each device's live count matches
   * its lists. Counts only what went through this system's APIs.
   *
   * @example
   * ```ts
   * const a = system.audit();
   * if (!a.ok) console.error(a.problems.join("\n"));
   * ```
   */
  audit(): DmaSystemAudit {
    const problems: string[] = [];
    let bufferBytes = 0;
    for (const b of this.buffers.values()) bufferBytes += b;
    let coherentBytes = 0;
    let slots = 0;
    let bounceMappings = 0;
    let live = 0;
    const iovaOf = new Map<IommuDomain, number>();
    for (const u of this.#users) {
      const a = u.auditUsage();
      coherentBytes += a.coherentBytes;
      slots += a.bounceSlots;
      bounceMappings += a.bounceMappings;
      live += a.live;
      for (const [dom, bytes] of a.iova) iovaOf.set(dom, (iovaOf.get(dom) ?? 0) + bytes);
      problems.push(...a.problems);
    }
    const ramInUse = this.lowRam.bytesInUse + this.highRam.bytesInUse;
    if (ramInUse !== bufferBytes + coherentBytes) {
      problems.push(
        `RAM: ${ramInUse} bytes in use, but buffers hold ${bufferBytes} and coherent allocations ${coherentBytes}`,
      );
    }
    const pool = this.swiotlb.stats();
    if (pool.usedSlots !== slots || pool.mappings !== bounceMappings) {
      problems.push(
        `swiotlb: ${pool.usedSlots} slots in ${pool.mappings} mapping(s) in use, but devices hold ${slots} in ${bounceMappings}`,
      );
    }
    let iovaBytes = 0;
    for (const iommu of this.iommus.values()) {
      for (const g of iommu.groupList) {
        const dom = g.defaultDomain;
        const cookie = dom?.cookie ?? null;
        if (dom === null || cookie === null || dom.freed) continue;
        let pfns = 0;
        for (const r of cookie.iovad.ranges())
          if (!r.cached && !r.reserved) pfns += r.pfnHi - r.pfnLo + 1;
        const held = pfns * cookie.granule;
        iovaBytes += held;
        const want = (iovaOf.get(dom) ?? 0) + (cookie.fq?.pendingPfns ?? 0) * cookie.granule;
        if (held !== want) {
          problems.push(
            `IOVA: group ${g.id} of '${iommu.name}' has ${held} bytes allocated, but its devices and flush queue hold ${want}`,
          );
        }
      }
    }
    return {
      ok: problems.length === 0,
      problems,
      ramInUse,
      bufferBytes,
      coherentBytes,
      bounceSlots: pool.usedSlots,
      liveMappings: live,
      iovaBytes,
    };
  }

  static {
    usersOf = (s) => s.#users;
  }
}

/** @internal The devices configured on `system` (the package's business only). */
export function dmaMemoryUsers(system: DmaSystem): Set<DmaMemoryUser> {
  return usersOf(system);
}

/** The allocator block behind a buffer of `size` bytes. */
function blockOf(size: number): number {
  let block = RAM_BLOCK;
  while (block < size) block *= 2;
  return block;
}
