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
  type PhysAllocator,
  type PhysicalMemory,
  SparseMemory,
} from "@devref/raw-device";
import type { DmaSystemAudit, DmaUnbindReport } from "./audit.js";
import { layerConfigure, layerDeconfigure, layerQuiesce } from "./configure.js";
import type { DmaLogSink } from "./constants.js";
import { IO_TLB_DEFAULT_SIZE, IO_TLB_SIZE } from "./constants.js";
import type { IommuDevice, IommuDomain } from "./iommu.js";
import { DmaRam, type DmaRamUse, IommuPages, RAM_BLOCK, RAM_USES, ramBlockOf } from "./ram.js";
import { SwiotlbPool } from "./swiotlb.js";

/** A memory region: physical base and length in bytes. */
export interface DmaRegion {
  readonly base: number;
  readonly size: number;
}

/** What a {@link DmaSystem} is built from. Every field has a default. */
export interface DmaSystemOptions {
  /**
   * The physical memory CPU and devices share (a simulator's, say). Default a new
   * `SparseMemory` of `memorySize` bytes.
   */
  readonly memory?: PhysicalMemory;
  /** Size of the physical address space when the system makes its memory; default 2^40. */
  readonly memorySize?: number;
  /**
   * The RAM allocator(s) over `memory` the DMA layer takes buffers, coherent memory, IOMMU
   * page tables and (without a `swiotlb.base`) the bounce pool from, tried in order: a
   * block outside a device's reach goes back and the next allocator is asked (the kernel's
   * retry in a lower zone). Default two buddy allocators over `highRam` and `lowRam`.
   */
  readonly ram?: PhysAllocator | readonly PhysAllocator[];
  /** RAM below 4 GiB (the kernel's ZONE_DMA32) when the system makes its RAM; default 1 GiB at 0x8000_0000. */
  readonly lowRam?: DmaRegion;
  /** RAM above 4 GiB (ZONE_NORMAL) when the system makes its RAM; default 4 GiB at 0x8_0000_0000. */
  readonly highRam?: DmaRegion;
  /**
   * The default swiotlb pool of `nslabs` 2 KiB slots (default 64 MiB, `IO_TLB_DEFAULT_SIZE`).
   * Placed at `base` when given; else taken from the caller's `ram` (below 4 GiB when it
   * can, as the kernel's memblock allocation), or at 0x4000_0000 beside the system's own RAM.
   */
  readonly swiotlb?: { readonly base?: number; readonly nslabs: number };
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

const GiB = 2 ** 30;
const FOUR_GIB = 2 ** 32;

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

/** @internal What the package reaches inside a system. */
export interface DmaSystemInternals {
  readonly ram: DmaRam;
  /** Configured devices, asked to drop their mappings of memory being freed. */
  readonly users: Set<DmaMemoryUser>;
  /** Paging domains allocated and not yet freed (their tables are in `iommu-pages`). */
  pagingDomains: number;
}

// module-state: a privileged-access slot, assigned once by DmaSystem's static block.
let internalsOf: (s: DmaSystem) => DmaSystemInternals;

function checkRegion(where: string, param: string, r: DmaRegion): DmaRegion {
  checkObject(where, param, r);
  checkAddress(where, `${param}.base`, r.base);
  checkSize(where, `${param}.size`, r.size);
  return r;
}

function checkAllocators(
  where: string,
  ram: PhysAllocator | readonly PhysAllocator[],
): readonly PhysAllocator[] {
  const list: readonly PhysAllocator[] = Array.isArray(ram) ? ram : [ram];
  if (list.length === 0) {
    throw new DevrefError("EINVAL", `${where}: options.ram must name at least one allocator`);
  }
  return list.map((alloc, i) => {
    const p = Array.isArray(ram) ? `options.ram[${i}]` : "options.ram";
    checkObject(where, p, alloc);
    checkCallback(where, `${p}.alloc`, alloc.alloc);
    checkCallback(where, `${p}.free`, alloc.free);
    checkObject(where, `${p}.memory`, alloc.memory);
    return alloc;
  });
}

/**
 * One machine's DMA world: physical memory, the RAM the DMA layer allocates from, the
 * default swiotlb pool, memory for IOMMU page tables, and the registered IOMMUs. An explicit
 * object, not a global, so that two systems (two tests, two simulated SoCs) never see each
 * other's state. A simulator hands over its own memory and RAM allocator.
 *
 * **Invariants:** the swiotlb pool and every RAM allocator lie in `memory`; the pool does
 * not overlap RAM the system made itself; every block of RAM the system holds is recorded
 * with its use (buffer, coherent, swiotlb, iommu-pages); `iommus` holds only registered
 * IOMMUs.
 *
 * **Errors:** the constructor throws `EINVAL` for a bad option, regions that overlap or
 * leave memory, or an allocator over another memory; `ENOMEM` when the pool does not fit
 * in the caller's RAM; `EEXIST` for a machine that has a DMA layer.
 *
 * @example
 * ```ts
 * const system = new DmaSystem({ machine: soc.machine, memory: soc.memory, ram: soc.ram });
 * const buf = system.allocBuffer(4096); // RAM of the SoC, for a test buffer
 * system.memory.write32(buf, 0xdead_beef);
 * ```
 */
export class DmaSystem {
  /** Physical memory as CPU and devices see it (no DMA offsets: phys_to_dma is identity). */
  readonly memory: PhysicalMemory;
  /** The RAM allocators, in the order they are tried. */
  readonly ram: readonly PhysAllocator[];
  /** Memory for IOMMU page tables (`iommu_alloc_pages`): give it to io-pgtable. */
  readonly iommuPages: IommuPages;
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
  /** Unbind reports that found leaks. */
  readonly leakReports: DmaUnbindReport[] = [];
  /** @internal Group ids, unique per system. */
  nextGroupId = 0;
  readonly #internals: DmaSystemInternals;
  /** Whether the system made its allocators (so their totals are all its own). */
  readonly #ownsRam: boolean;
  /** One past the last byte of RAM (for `dma_direct_supported`). */
  readonly #ramEnd: number;

  constructor(options: DmaSystemOptions = {}) {
    const where = "new DmaSystem";
    checkObject(where, "options", options);
    if (options.memory !== undefined && options.memorySize !== undefined) {
      throw new DevrefError(
        "EINVAL",
        `${where}: give options.memory or options.memorySize, not both`,
      );
    }
    if (
      options.ram !== undefined &&
      (options.lowRam !== undefined || options.highRam !== undefined)
    ) {
      throw new DevrefError(
        "EINVAL",
        `${where}: options.lowRam/highRam describe RAM the system makes itself; with options.ram give neither`,
      );
    }
    const given = options.ram === undefined ? null : checkAllocators(where, options.ram);
    let memory: PhysicalMemory;
    if (options.memory !== undefined) {
      checkObject(where, "options.memory", options.memory);
      checkCallback(where, "options.memory.readBytes", options.memory.readBytes);
      checkCallback(where, "options.memory.writeBytes", options.memory.writeBytes);
      checkCallback(where, "options.memory.zero", options.memory.zero);
      checkSize(where, "options.memory.size", options.memory.size, 1, 2 ** 52);
      memory = options.memory;
    } else if (given !== null) {
      memory = given[0]!.memory;
    } else {
      const size =
        options.memorySize === undefined
          ? 2 ** 40
          : checkSize(where, "options.memorySize", options.memorySize, 1, 2 ** 52);
      memory = new SparseMemory(size);
    }
    if (given?.some((a) => a.memory !== memory)) {
      throw new DevrefError(
        "EINVAL",
        `${where}: every RAM allocator must hand out blocks of options.memory (the memory devices reach)`,
      );
    }
    if (options.swiotlb !== undefined) {
      checkObject(where, "options.swiotlb", options.swiotlb);
      if (options.swiotlb.base !== undefined)
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
    const nslabs = options.swiotlb?.nslabs ?? IO_TLB_DEFAULT_SIZE / IO_TLB_SIZE;
    let allocators: readonly PhysAllocator[];
    let poolBase = options.swiotlb?.base;
    if (given === null) {
      const low =
        options.lowRam === undefined
          ? { base: 0x8000_0000, size: GiB }
          : checkRegion(where, "options.lowRam", options.lowRam);
      const high =
        options.highRam === undefined
          ? { base: 0x8_0000_0000, size: 4 * GiB }
          : checkRegion(where, "options.highRam", options.highRam);
      poolBase ??= 0x4000_0000;
      checkLayout(memory.size, [
        ["lowRam", low.base, low.size],
        ["highRam", high.base, high.size],
        ["swiotlb", poolBase, nslabs * IO_TLB_SIZE],
      ]);
      allocators = [
        new BuddyAllocator(memory, high.base, high.size, RAM_BLOCK),
        new BuddyAllocator(memory, low.base, low.size, RAM_BLOCK),
      ];
    } else {
      allocators = given;
    }
    const ram = new DmaRam(memory, allocators);
    if (poolBase === undefined) {
      // From the caller's RAM, low when it can be (swiotlb_init's memblock_alloc_low).
      const block = ramBlockOf(nslabs * IO_TLB_SIZE);
      const pa =
        ram.alloc(block, block, 0, FOUR_GIB - 1, "swiotlb") ??
        ram.alloc(block, block, 0, Number.MAX_SAFE_INTEGER, "swiotlb");
      if (pa === null) {
        throw new DevrefError(
          "ENOMEM",
          `${where}: no ${block} bytes of RAM for the swiotlb pool of ${nslabs} slots: give options.swiotlb a smaller nslabs or a base`,
        );
      }
      poolBase = pa;
    }
    this.memory = memory;
    this.ram = allocators;
    this.#ownsRam = given === null;
    this.#internals = { ram, users: new Set(), pagingDomains: 0 };
    this.#ramEnd = ramEndOf(memory, allocators);
    this.iommuPages = new IommuPages(ram);
    this.warn = options.warn;
    this.swiotlb = new SwiotlbPool(memory, {
      base: poolBase,
      nslabs,
      ...(options.warn === undefined ? {} : { warn: options.warn }),
    });
    this.swiotlbForce = options.swiotlbForce ?? false;
    this.zoneDmaLimit = 2 ** (options.zoneDmaBits ?? 32) - 1;
    this.iommuDefaultDomain = options.iommuDefaultDomain ?? "strict";
    this.iommuPassthrough = options.iommuPassthrough ?? false;
    this.machine = machine;
    if (machine !== null) machine.dma = this.#layer();
  }

  /** The machine's DMA layer, calling into this system. */
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
        layerConfigure(system, st);
      },
      quiesce(st: DeviceState): void {
        quietly(st, "quiescing DMA at the end of the binding", () => layerQuiesce(st));
      },
      deconfigure(st: DeviceState): void {
        quietly(st, "tearing DMA down", () => layerDeconfigure(st));
      },
    };
  }

  /**
   * The smallest mask dma-direct accepts (`dma_direct_supported`): the lower of the last RAM
   * page and the end of the lowest DMA zone.
   */
  get minDirectMask(): number {
    return Math.min(this.zoneDmaLimit, this.#ramEnd - 4096);
  }

  /**
   * Allocates a zeroed, page-aligned buffer for tests and example drivers: `"high"` RAM
   * (above 4 GiB, what a 32-bit device cannot reach, when the system has any; else any RAM)
   * or `"low"` RAM (below 4 GiB). The block is rounded up to a power of two of at least 4 KiB.
   *
   * **Errors:** `ENOMEM` when no such RAM is free; `EINVAL` for a bad size or region name.
   */
  allocBuffer(size: number, where: "low" | "high" = "high"): PhysAddr {
    const fn = "DmaSystem.allocBuffer";
    checkSize(fn, "size", size, 1, 2 ** 52);
    checkOneOf(fn, "where", where, ["low", "high"]);
    const block = ramBlockOf(size);
    const ram = this.#internals.ram;
    const pa =
      where === "low"
        ? ram.alloc(block, RAM_BLOCK, 0, FOUR_GIB - 1, "buffer")
        : (ram.alloc(block, RAM_BLOCK, FOUR_GIB, Number.MAX_SAFE_INTEGER, "buffer") ??
          ram.alloc(block, RAM_BLOCK, 0, Number.MAX_SAFE_INTEGER, "buffer"));
    if (pa === null) {
      throw new DevrefError(
        "ENOMEM",
        `${fn}(${size}, "${where}"): no free ${where === "low" ? "RAM below 4 GiB" : "RAM"} of ${block} bytes`,
      );
    }
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
    const ram = this.#internals.ram;
    const block = ram.sizeAt(pa, "buffer");
    if (block === undefined) {
      throw new DevrefError(
        "EINVAL",
        `${fn}(${formatAddr(pa, 1)}): no buffer from allocBuffer starts there (never allocated, or freed already)`,
      );
    }
    if (ramBlockOf(size) !== block) {
      throw new DevrefError(
        "EINVAL",
        `${fn}(${formatAddr(pa, 1)}, ${size}): the buffer there was allocated with a size that rounds to ${block} bytes; pass that size`,
      );
    }
    for (const u of [...this.#internals.users]) u.dropMappingsOf(pa, block);
    ram.free(pa);
  }

  /**
   * What the system's RAM holding all of `[pa, pa + size)` is in use for — a `"buffer"`, a
   * `"coherent"` allocation, the `"swiotlb"` pool or `"iommu-pages"` — or null when no live
   * block holds it (freed memory, or memory the system never handed out). A device model
   * asks before each DMA access, so a use after free is caught where it happens.
   *
   * **Errors:** `EINVAL` for an address or size that is not a whole number.
   *
   * @example
   * ```ts
   * if (system.ramUseOf(pa, 64) === null) throw new Error("DMA into freed memory");
   * ```
   */
  ramUseOf(pa: number, size = 1): DmaRamUse | null {
    checkAddress("DmaSystem.ramUseOf", "pa", pa);
    checkSize("DmaSystem.ramUseOf", "size", size, 1, 2 ** 52);
    const use = this.#internals.ram.useOf(pa, size);
    if (use !== null) return use;
    const pool = this.swiotlb;
    return pa >= pool.base && pa + size <= pool.base + pool.nslabs * IO_TLB_SIZE ? "swiotlb" : null;
  }

  /**
   * Checks that every resource the DMA layer hands out is held by exactly the bookkeeping
   * that will give it back: the RAM the system holds is its buffers, the devices' coherent
   * blocks, the pool and the IOMMU page tables (and, for RAM the system made, all its
   * allocators hand out); table pages are held only while a paging domain lives; the swiotlb
   * slots in use are the devices' bounced mappings; each DMA domain's allocated IOVA space
   * is its devices' mappings plus its flush queue; each device's live count matches its
   * lists. Counts only what went through this system's APIs.
   *
   * @example
   * ```ts
   * const a = system.audit();
   * if (!a.ok) console.error(a.problems.join("\n"));
   * ```
   */
  audit(): DmaSystemAudit {
    const problems: string[] = [];
    const { ram, users, pagingDomains } = this.#internals;
    let coherentBytes = 0;
    let slots = 0;
    let bounceMappings = 0;
    let live = 0;
    const iovaOf = new Map<IommuDomain, number>();
    for (const u of users) {
      const a = u.auditUsage();
      coherentBytes += a.coherentBytes;
      slots += a.bounceSlots;
      bounceMappings += a.bounceMappings;
      live += a.live;
      for (const [dom, bytes] of a.iova) iovaOf.set(dom, (iovaOf.get(dom) ?? 0) + bytes);
      problems.push(...a.problems);
    }
    const ramInUse = ram.total;
    if (this.#ownsRam) {
      let handedOut = 0;
      for (const a of this.ram) handedOut += a.bytesInUse;
      if (handedOut !== ramInUse) {
        problems.push(
          `RAM: the allocators hand out ${handedOut} bytes, but the system holds ${ramInUse}`,
        );
      }
    }
    if (ram.bytes("coherent") !== coherentBytes) {
      problems.push(
        `RAM: ${ram.bytes("coherent")} bytes held for coherent allocations, but devices list ${coherentBytes}`,
      );
    }
    const tableBytes = ram.bytes("iommu-pages");
    if (pagingDomains === 0 && tableBytes > 0) {
      problems.push(
        `RAM: ${tableBytes} bytes of IOMMU page tables held with no paging domain alive`,
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
    const byUse: Record<DmaRamUse, number> = {
      buffer: 0,
      coherent: 0,
      swiotlb: 0,
      "iommu-pages": 0,
    };
    for (const u of RAM_USES) byUse[u] = ram.bytes(u);
    return {
      ok: problems.length === 0,
      problems,
      ramInUse,
      ramByUse: byUse,
      bufferBytes: byUse.buffer,
      coherentBytes: byUse.coherent,
      iommuPageBytes: tableBytes,
      bounceSlots: pool.usedSlots,
      liveMappings: live,
      iovaBytes,
      pagingDomains,
    };
  }

  static {
    internalsOf = (s) => s.#internals;
  }
}

/** @internal The parts of `system` only the package reaches. */
export function dmaSystemInternals(system: DmaSystem): DmaSystemInternals {
  return internalsOf(system);
}

/** Fails for default regions that leave memory or overlap. */
function checkLayout(memorySize: number, regions: readonly [string, number, number][]): void {
  for (const [name, base, size] of regions) {
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
}

/** One past the last RAM byte: a buddy allocator's region end, else the end of memory. */
function ramEndOf(memory: PhysicalMemory, allocators: readonly PhysAllocator[]): number {
  let end = 0;
  for (const a of allocators) {
    end = Math.max(end, a instanceof BuddyAllocator ? a.base + a.length : memory.size);
  }
  return end;
}
