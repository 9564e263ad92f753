//! C header: include/linux/swiotlb.h (kernel/dma/swiotlb.c)

import {
  argumentError,
  checkAddress,
  checkCallback,
  checkInteger,
  checkObject,
  checkOneOf,
  checkSize,
  checkString,
  DevrefError,
  type DmaAddr,
  describeValue,
  formatAddr,
  isPowerOfTwo,
  PHYS_ADDR_LIMIT,
  type PhysAddr,
  type PhysicalMemory,
} from "@devref/raw-device";
import {
  DMA_ATTR_MMIO,
  DMA_ATTR_NO_WARN,
  DMA_ATTR_SKIP_CPU_SYNC,
  DMA_BIDIRECTIONAL,
  DMA_FROM_DEVICE,
  DMA_TO_DEVICE,
  type DmaDirection,
  type DmaLogSink,
  dmaDirectionName,
  IO_TLB_SEGSIZE,
  IO_TLB_SHIFT,
  IO_TLB_SIZE,
} from "./constants.js";
import { checkAttrs, checkMapDirection, isWhole } from "./internal/checks.js";

/** Slot-offset bits of an address. */
const SLOT_MASK = IO_TLB_SIZE - 1;
/** `INVALID_PHYS_ADDR`: a slot with no original address. */
const NO_ADDR = -1;
/** The largest pool this model accepts: 2^20 slots (2 GiB), so slot maths stays in int32. */
const MAX_SLABS = 1 << 20;
/** Masks are held in int32 bit operations. */
const MAX_MASK = 2 ** 31 - 1;
/** The page a `pageWords` view covers. */
const PAGE_SHIFT = 12;
const PAGE = 1 << PAGE_SHIFT;
/** The largest physical address (2^52 − 1). */
const PHYS_LAST: number = PHYS_ADDR_LIMIT - 1;

// module-state: a privileged-access slot, assigned once by SwiotlbPool's static block.
let mapForDevice: typeof swiotlbMapForDevice;

/**
 * @internal {@link SwiotlbPool.map} for dma-direct, whose caller checked the buffer (inside
 * memory), size, direction and attributes (no `DMA_ATTR_MMIO`), with no alignment masks and
 * no segment boundary: throws as `map` does when the pool is full.
 */
export function swiotlbMapForDevice(
  pool: SwiotlbPool,
  orig: number,
  size: number,
  dir: number,
  attrs: number,
  device: string,
  dmaMask: number,
): PhysAddr {
  return mapForDevice(pool, orig, size, dir, attrs, device, dmaMask);
}

const SUPPORTED_PAGE_SIZES: readonly number[] = [4096, 16384, 65536];

/** Options for {@link SwiotlbPool}. */
export interface SwiotlbPoolOptions {
  /** Physical address of slot 0; a multiple of the page size. */
  readonly base: number;
  /** Slots in the pool: a positive multiple of `IO_TLB_SEGSIZE` (128), at most 2^20. */
  readonly nslabs: number;
  /** The CPU page size (`PAGE_SIZE`): 4096, 16384 or 65536; 4096 if omitted. */
  readonly pageSize?: number;
  /** Receives the kernel's warnings ("swiotlb buffer is full …"); dropped if omitted. */
  readonly warn?: DmaLogSink;
}

/** The device-side constraints of one mapping (what the kernel reads from `dev`). */
export interface SwiotlbMapOptions {
  /** `dma_get_min_align_mask(dev)`: low address bits the bounce address must keep (2^k − 1). */
  readonly minAlignMask?: number;
  /** Required alignment of the allocated space, as a mask (2^k − 1); 0 for streaming maps. */
  readonly allocAlignMask?: number;
  /** `dma_get_seg_boundary(dev)` (2^k − 1, at least 2047); absent means no boundary. */
  readonly segmentBoundaryMask?: number;
  /** The device's name, for warnings and errors. */
  readonly device?: string;
  /** The device's DMA mask, for errors. */
  readonly dmaMask?: number;
}

/** Slot usage of a {@link SwiotlbPool}. */
export interface SwiotlbStats {
  /** Slots in the pool (`nslabs`). */
  readonly totalSlots: number;
  /** Slots held by live mappings, padding included. */
  readonly usedSlots: number;
  /** The most slots ever used at once. */
  readonly highWater: number;
  /** Live mappings. */
  readonly mappings: number;
}

/** One live bounce mapping, for audits. */
export interface SwiotlbMapping {
  /** The bounce address {@link SwiotlbPool.map} returned. */
  readonly bounce: PhysAddr;
  /** The original buffer. */
  readonly orig: PhysAddr;
  /** Mapping size in bytes. */
  readonly size: number;
  /** Direction given at map time. */
  readonly dir: DmaDirection;
  /** Slots held, padding included. */
  readonly slots: number;
}

const EMPTY_MAP_OPTIONS: SwiotlbMapOptions = {};

function checkMask(where: string, name: string, mask: number, min: number): void {
  checkInteger(where, name, mask, 0, MAX_MASK);
  if ((mask & (mask + 1)) !== 0) {
    throw argumentError(where, name, "of the form 2^k − 1 below 2^31 (for example 0xfff)", mask);
  }
  if (mask !== 0 && mask < min) {
    throw new DevrefError(
      "EINVAL",
      `${where}: ${name} ${formatAddr(mask, 1)} must be at least ${min}`,
    );
  }
}

/**
 * A swiotlb bounce-buffer pool: `nslabs` slots of 2 KiB at a physical address of `memory`,
 * handed out in contiguous runs that never cross a 128-slot segment.
 *
 * The slot search, the rotating search cursor, the
 * `min_align_mask` and allocation-alignment rules, the page alignment of page-sized and
 * larger streaming mappings, the per-slot original address and the copy rules follow
 * `kernel/dma/swiotlb.c` (v6.9 and later), so a sequence of maps gets the kernel's
 * bounce addresses.
 *
 * Copies, as in the kernel:
 * - map: original → bounce, whatever the direction (a device that writes only part of the
 *   buffer must not expose stale pool contents);
 * - unmap: bounce → original for `DMA_FROM_DEVICE` and `DMA_BIDIRECTIONAL`, unless
 *   `DMA_ATTR_SKIP_CPU_SYNC`;
 * - {@link syncForCpu}: bounce → original for `DMA_FROM_DEVICE` and `DMA_BIDIRECTIONAL`;
 * - {@link syncForDevice}: original → bounce for `DMA_TO_DEVICE` and `DMA_BIDIRECTIONAL`.
 *
 * Modelled with one CPU and one area, one static pool (no `CONFIG_SWIOTLB_DYNAMIC`),
 * identity physical-to-DMA translation, and no rate limit on warnings.
 *
 * **Invariants:** a slot belongs to at most one mapping; a mapping's slots lie in one
 * 128-slot segment; `usedSlots` counts the busy slots.
 *
 * **Errors:** `EINVAL` for bad arguments and for unmap or sync of an address that is not a
 * live mapping, or with another size or direction (nothing changes); `ENOMEM` when no slot
 * run fits (the kernel's `DMA_MAPPING_ERROR`); `EFAULT` for buffers outside memory.
 *
 * @example
 * ```ts
 * const mem = new SparseMemory();
 * const pool = new SwiotlbPool(mem, { base: 0x8000_0000, nslabs: 1024 });
 * const bounce = pool.map(physAddr(0x1_2345_6000), 1500, DMA_FROM_DEVICE);
 * // … the device writes at `bounce` …
 * pool.unmap(bounce, 1500, DMA_FROM_DEVICE); // copied back to 0x1_2345_6000
 * ```
 */
export class SwiotlbPool {
  /** The memory the pool and the buffers live in. */
  readonly memory: PhysicalMemory;
  /** Physical address of slot 0. */
  readonly base: number;
  /** Slots in the pool. */
  readonly nslabs: number;
  /** The CPU page size. */
  readonly pageSize: number;
  private readonly end: number;
  private readonly warn: DmaLogSink | undefined;
  // The kernel's per-slot state (struct io_tlb_slot). The kernel also keeps `list`, the
  // free-run length from each slot to the end of its segment, and rewrites it backwards over
  // the whole preceding free run on every map and unmap. The search only ever asks whether
  // `nslots` slots from a candidate are free inside its segment, so a used flag per slot
  // answers the same question — same decisions, same addresses — without those O(segment)
  // walks.
  private readonly busy: Uint8Array;
  private readonly origAddr: Float64Array;
  private readonly allocSize: Int32Array;
  private readonly padSlots: Int32Array;
  // struct io_tlb_area, for the one area.
  private index: number;
  private used: number;
  private hiwater: number;
  // Bookkeeping the kernel leaves to CONFIG_DMA_API_DEBUG, indexed by first data slot:
  // owner[i] is that slot + 1 for every data slot of a live mapping (0: none).
  private readonly owner: Int32Array;
  private readonly mapSize: Int32Array;
  private readonly mapOffset: Int32Array;
  private readonly mapDir: Uint8Array;
  private mappingCount: number;
  private readonly scratch: Uint8Array;
  private view: Uint8Array;
  // Live byte views of the pool's own memory, so a bounce copies straight between the
  // buffer and the pool page: the words of each pool page (from `pageWords`, on first use;
  // null for a memory without page views) and, per first data slot, the view of the last
  // mapping made there and its offset in the pool.
  private pageViews: (Uint32Array | null)[] | null;
  private readonly slotViews: (Uint8Array | null)[];
  private readonly slotViewAt: Int32Array;

  /**
   * `swiotlb_init_io_tlb_pool`: every slot free, the pool's memory zeroed.
   *
   * **Errors:** `EINVAL` for a base that is not page-aligned or a slot count that is not a
   * positive multiple of 128 (at most 2^20); `EFAULT` if the pool does not fit in memory.
   */
  constructor(memory: PhysicalMemory, options: SwiotlbPoolOptions) {
    const where = "new SwiotlbPool";
    checkObject(where, "memory", memory);
    if (typeof memory.size !== "number" || typeof memory.readBytes !== "function") {
      throw argumentError(
        where,
        "memory",
        "a PhysicalMemory (size, readBytes, writeBytes, zero)",
        memory,
      );
    }
    checkObject(where, "options", options);
    const pageSize =
      options.pageSize === undefined
        ? 4096
        : checkOneOf(
            where,
            "options.pageSize (the CPU page size)",
            options.pageSize,
            SUPPORTED_PAGE_SIZES,
          );
    if (options.warn !== undefined) checkCallback(where, "options.warn", options.warn);
    const { base, nslabs } = options;
    const b = checkAddress(where, "options.base", base);
    if (b % pageSize !== 0) {
      throw argumentError(where, "options.base", `a page-aligned (${pageSize}) address`, base);
    }
    const n = checkInteger(where, "options.nslabs", nslabs, 1, MAX_SLABS);
    if (n % IO_TLB_SEGSIZE !== 0) {
      throw argumentError(
        where,
        "options.nslabs",
        `a positive multiple of ${IO_TLB_SEGSIZE} no larger than ${MAX_SLABS} (the kernel aligns swiotlb=<nslabs> the same way)`,
        nslabs,
      );
    }
    const bytes = nslabs * IO_TLB_SIZE;
    if (base + bytes > memory.size) {
      throw new DevrefError(
        "EFAULT",
        `swiotlb pool [${formatAddr(base)}, ${formatAddr(base + bytes)}) does not fit in ` +
          `memory of size ${formatAddr(memory.size)}`,
      );
    }
    this.memory = memory;
    this.base = base;
    this.nslabs = nslabs;
    this.pageSize = pageSize;
    this.end = base + bytes;
    this.warn = options.warn;
    this.busy = new Uint8Array(nslabs);
    this.origAddr = new Float64Array(nslabs).fill(NO_ADDR);
    this.allocSize = new Int32Array(nslabs);
    this.padSlots = new Int32Array(nslabs);
    this.index = 0;
    this.used = 0;
    this.hiwater = 0;
    this.owner = new Int32Array(nslabs);
    this.mapSize = new Int32Array(nslabs);
    this.mapOffset = new Int32Array(nslabs);
    this.mapDir = new Uint8Array(nslabs);
    this.mappingCount = 0;
    this.scratch = new Uint8Array(IO_TLB_SEGSIZE * IO_TLB_SIZE);
    this.view = this.scratch.subarray(0, 0);
    memory.zero(base, bytes);
    this.pageViews =
      typeof memory.pageWords === "function"
        ? new Array<Uint32Array | null>(Math.ceil(bytes / PAGE)).fill(null)
        : null;
    this.slotViews = new Array<Uint8Array | null>(nslabs).fill(null);
    this.slotViewAt = new Int32Array(nslabs).fill(-1);
  }

  /**
   * `swiotlb_tbl_map_single`: takes a run of slots for `size` bytes of the buffer at `orig`,
   * records the original address of each slot, and copies the buffer into it.
   *
   * The returned address keeps the bits of `orig` under `minAlignMask`; allocations of a page
   * or more with neither mask are page-aligned.
   *
   * **Errors:** `EINVAL` for a size that is not a positive whole number, an invalid
   * direction (including `DMA_NONE`), unknown attribute bits, `DMA_ATTR_MMIO` (MMIO is never
   * bounced), malformed masks, or a mapping larger than {@link maxMappingSize};
   * `EFAULT` for a buffer outside memory; `ENOMEM` when the pool has no fitting run — the
   * message names the pool state, the device and its mask. The warning "swiotlb buffer is
   * full" also goes to the pool's warn sink unless `DMA_ATTR_NO_WARN`.
   *
   * @returns the bounce address the device is to use.
   */
  map(
    orig: PhysAddr,
    size: number,
    dir: DmaDirection,
    attrs = 0,
    options: SwiotlbMapOptions = EMPTY_MAP_OPTIONS,
  ): PhysAddr {
    const where = "swiotlb_map";
    if (!isWhole(orig, 0, PHYS_LAST)) checkAddress(where, "orig", orig);
    if (!isWhole(size, 1, PHYS_ADDR_LIMIT)) checkSize(where, "size", size);
    if (dir !== 0 && dir !== 1 && dir !== 2) checkMapDirection(where, dir);
    if (attrs !== 0) checkAttrs(where, attrs);
    if ((attrs & DMA_ATTR_MMIO) !== 0) {
      throw new DevrefError(
        "EINVAL",
        "DMA_ATTR_MMIO mappings are never bounced: map the MMIO address directly",
      );
    }
    checkObject(where, "options", options);
    const minAlign = options.minAlignMask ?? 0;
    const allocAlign = options.allocAlignMask ?? 0;
    const boundary = options.segmentBoundaryMask;
    if (minAlign !== 0) checkMask(where, "minAlignMask", minAlign, 0);
    if (allocAlign !== 0) checkMask(where, "allocAlignMask", allocAlign, 0);
    if (options.device !== undefined) checkString(where, "options.device", options.device);
    if (options.dmaMask !== undefined)
      checkInteger(where, "options.dmaMask", options.dmaMask, 0, Number.MAX_SAFE_INTEGER);
    if (boundary !== undefined && boundary !== Number.MAX_SAFE_INTEGER) {
      checkInteger(where, "options.segmentBoundaryMask", boundary, 0, Number.MAX_SAFE_INTEGER);
      if (!isPowerOfTwo(boundary + 1)) {
        throw argumentError(where, "options.segmentBoundaryMask", "of the form 2^k − 1", boundary);
      }
      if (boundary < SLOT_MASK) {
        throw new DevrefError(
          "EINVAL",
          `segment boundary mask ${formatAddr(boundary, 1)} is smaller than a swiotlb slot`,
        );
      }
    }
    if (orig + size > this.memory.size) {
      throw new DevrefError(
        "EFAULT",
        `buffer [${formatAddr(orig, 1)}, +${size}) is outside physical memory ` +
          `[0, ${formatAddr(this.memory.size)})`,
      );
    }
    return this.#map(
      orig,
      size,
      dir,
      attrs,
      minAlign,
      allocAlign,
      boundary,
      options.device,
      options.dmaMask,
    );
  }

  /** {@link map} on checked arguments (a buffer inside memory, valid masks). */
  #map(
    orig: number,
    size: number,
    dir: number,
    attrs: number,
    minAlign: number,
    allocAlign: number,
    boundary: number | undefined,
    device: string | undefined,
    dmaMask: number | undefined,
  ): PhysAddr {
    // swiotlb_align_offset(dev, alloc_align_mask, orig): low bits kept in the bounce address.
    const offset = orig & minAlign & (allocAlign | SLOT_MASK);
    const alignUnit = allocAlign + 1;
    const total = Math.ceil((size + offset) / alignUnit) * alignUnit;
    if (total > IO_TLB_SEGSIZE * IO_TLB_SIZE) {
      throw new DevrefError(
        "EINVAL",
        `swiotlb cannot bounce ${size} bytes in one mapping (${total} with alignment padding): ` +
          `the largest is ${this.maxMappingSize(minAlign)} bytes; split the transfer`,
        { details: { size, total } },
      );
    }
    const index = this.#findSlots(orig, total, minAlign, allocAlign, boundary);
    if (index < 0) this.#full(total, attrs, device, dmaMask);
    const pad = offset >>> IO_TLB_SHIFT;
    const slotOffset = offset & SLOT_MASK;
    const first = index + pad;
    this.padSlots[first] = pad;
    const dataSlots = Math.ceil(total / IO_TLB_SIZE) - pad;
    for (let i = 0; i < dataSlots; i++) {
      this.origAddr[first + i] = orig + i * IO_TLB_SIZE;
      this.owner[first + i] = first + 1;
    }
    this.mapSize[first] = size;
    this.mapOffset[first] = slotOffset;
    this.mapDir[first] = dir;
    this.mappingCount++;
    const tlb = this.base + first * IO_TLB_SIZE + slotOffset;
    const view = this.#bounceBytes(tlb, size);
    if (view !== null) this.memory.readBytes(orig, view);
    else this.#copy(orig, tlb, size);
    // SAFETY: tlb lies inside the pool, which was checked to fit in memory.
    return tlb as PhysAddr;
  }

  /** The pool is full: warns (unless `DMA_ATTR_NO_WARN`) and throws `ENOMEM`. */
  #full(
    total: number,
    attrs: number,
    device: string | undefined,
    dmaMask: number | undefined,
  ): never {
    const name = device ?? "swiotlb";
    if ((attrs & DMA_ATTR_NO_WARN) === 0) {
      this.warn?.(
        `${name}: swiotlb buffer is full (sz: ${total} bytes), total ${this.nslabs} ` +
          `(slots), used ${this.used} (slots)`,
      );
    }
    const mask = dmaMask === undefined ? "" : ` (DMA mask ${formatAddr(dmaMask, 1)})`;
    throw new DevrefError(
      "ENOMEM",
      `${name}${mask}: swiotlb buffer is full: no run of ${Math.ceil(total / IO_TLB_SIZE)} ` +
        `free slot(s) for ${total} bytes; the pool has ${this.nslabs} slots, ${this.used} used ` +
        `by ${this.mappingCount} mapping(s): unmap finished buffers or enlarge the pool ` +
        "(this is the kernel's DMA_MAPPING_ERROR)",
      {
        details: {
          size: total,
          totalSlots: this.nslabs,
          usedSlots: this.used,
          mappings: this.mappingCount,
          ...(device === undefined ? {} : { device }),
          ...(dmaMask === undefined ? {} : { dmaMask }),
        },
      },
    );
  }

  static {
    mapForDevice = (pool, orig, size, dir, attrs, device, dmaMask) =>
      pool.#map(orig, size, dir, attrs, 0, 0, undefined, device, dmaMask);
  }

  /**
   * `swiotlb_tbl_unmap_single`: copies the bounce buffer back for `DMA_FROM_DEVICE` and
   * `DMA_BIDIRECTIONAL` (unless `DMA_ATTR_SKIP_CPU_SYNC`), then releases the slots.
   *
   * **Errors:** `EINVAL`, with nothing changed, if `bounce` is not the address of a live
   * mapping, or `size` or `dir` differ from the map call.
   */
  unmap(bounce: PhysAddr, size: number, dir: DmaDirection, attrs = 0): void {
    const where = "swiotlb_unmap";
    if (!isWhole(size, 1, PHYS_ADDR_LIMIT)) checkSize(where, "size", size);
    if (dir !== 0 && dir !== 1 && dir !== 2) checkMapDirection(where, dir);
    if (attrs !== 0) checkAttrs(where, attrs);
    const first = this.#mappingAt(bounce, "unmap");
    if (this.mapOffset[first] !== bounce - this.#slotAddr(first)) {
      this.#mismatch("unmap", bounce, first, "is inside a mapping, not its start");
    }
    if (size !== this.mapSize[first]) {
      this.#mismatch("unmap", bounce, first, `has size ${this.mapSize[first]}, not ${size}`);
    }
    if (dir !== this.mapDir[first]) {
      this.#mismatch(
        "unmap",
        bounce,
        first,
        `was mapped ${dmaDirectionName(this.mapDir[first]!)}, not ${dmaDirectionName(dir)}`,
      );
    }
    if (
      (attrs & DMA_ATTR_SKIP_CPU_SYNC) === 0 &&
      (dir === DMA_FROM_DEVICE || dir === DMA_BIDIRECTIONAL)
    ) {
      // The first data slot records the original address that the bounce address stands for.
      const view = this.#bounceBytes(bounce, size);
      if (view !== null) this.memory.writeBytes(this.origAddr[first]!, view);
      else this.#copy(bounce, this.origAddr[first]!, size);
    }
    this.#release(first);
  }

  /**
   * `swiotlb_sync_single_for_cpu`: hands `size` bytes at `bounce` (inside a live mapping)
   * back to the CPU, copying bounce → original for `DMA_FROM_DEVICE` and `DMA_BIDIRECTIONAL`.
   *
   * **Errors:** `EINVAL` if the range is not inside one live mapping or `dir` is not the
   * mapping's direction.
   */
  syncForCpu(bounce: PhysAddr, size: number, dir: DmaDirection): void {
    checkSize("swiotlb_sync_for_cpu", "size", size);
    checkMapDirection("swiotlb_sync_for_cpu", dir);
    const origin = this.#syncTarget(bounce, size, dir, "sync_for_cpu");
    if (dir === DMA_FROM_DEVICE || dir === DMA_BIDIRECTIONAL) this.#copy(bounce, origin, size);
  }

  /**
   * `swiotlb_sync_single_for_device`: hands `size` bytes at `bounce` back to the device,
   * copying original → bounce for `DMA_TO_DEVICE` and `DMA_BIDIRECTIONAL`.
   *
   * **Errors:** as {@link syncForCpu}.
   */
  syncForDevice(bounce: PhysAddr, size: number, dir: DmaDirection): void {
    checkSize("swiotlb_sync_for_device", "size", size);
    checkMapDirection("swiotlb_sync_for_device", dir);
    const origin = this.#syncTarget(bounce, size, dir, "sync_for_device");
    if (dir === DMA_TO_DEVICE || dir === DMA_BIDIRECTIONAL) this.#copy(origin, bounce, size);
  }

  /**
   * `is_swiotlb_buffer`: whether `addr` lies in the pool. A dma-direct DMA address of a
   * bounce slot is its physical address, so either may be asked about.
   *
   * **Errors:** `EINVAL` if `addr` is not a whole address.
   */
  isBounceAddress(addr: PhysAddr | DmaAddr): boolean {
    checkInteger("is_swiotlb_buffer", "addr", addr, 0, Number.MAX_SAFE_INTEGER);
    return addr >= this.base && addr < this.end;
  }

  /**
   * `swiotlb_max_mapping_size`: the largest mapping for a device with this
   * `min_align_mask`: one segment (256 KiB) less the mask rounded up to a slot.
   */
  maxMappingSize(minAlignMask = 0): number {
    checkMask("swiotlb_max_mapping_size", "minAlignMask", minAlignMask, 0);
    const minAlign = minAlignMask === 0 ? 0 : Math.ceil(minAlignMask / IO_TLB_SIZE) * IO_TLB_SIZE;
    return IO_TLB_SIZE * IO_TLB_SEGSIZE - minAlign;
  }

  /** Slot usage, for audits. */
  stats(): SwiotlbStats {
    return {
      totalSlots: this.nslabs,
      usedSlots: this.used,
      highWater: this.hiwater,
      mappings: this.mappingCount,
    };
  }

  /** Every live mapping in slot order, for audits ("what is still bounced?"). */
  mappings(): SwiotlbMapping[] {
    const out: SwiotlbMapping[] = [];
    for (let i = 0; i < this.nslabs; i++) {
      if (this.owner[i] !== i + 1) continue;
      const start = i - this.padSlots[i]!;
      const slotOffset = this.mapOffset[i]!;
      const nslots = Math.ceil((this.allocSize[start]! + slotOffset) / IO_TLB_SIZE);
      out.push({
        // SAFETY: inside the pool, which lies in memory.
        bounce: (this.#slotAddr(i) + slotOffset) as PhysAddr,
        // SAFETY: recorded from a checked PhysAddr at map time.
        orig: this.origAddr[i]! as PhysAddr,
        size: this.mapSize[i]!,
        // SAFETY: only valid directions are stored at map time.
        dir: this.mapDir[i]! as DmaDirection,
        slots: nslots,
      });
    }
    return out;
  }

  // ---------------------------------------------------------------------------------------

  #slotAddr(slot: number): number {
    return this.base + slot * IO_TLB_SIZE;
  }

  /**
   * The `n` bytes of the pool at `tlb` as a live byte view of the pool's memory, or null
   * when they cross a page or the memory has no page views (then {@link #copy} is the way).
   * A mapping's view is kept per first slot and made again only when its offset or length
   * changes, so the steady state allocates nothing.
   */
  #bounceBytes(tlb: number, n: number): Uint8Array | null {
    const rel = tlb - this.base;
    const slot = rel >>> IO_TLB_SHIFT;
    const v = this.slotViews[slot]!;
    if (v !== null && v.length === n && this.slotViewAt[slot] === rel) return v;
    return this.#makeBounceBytes(slot, rel, n);
  }

  #makeBounceBytes(slot: number, rel: number, n: number): Uint8Array | null {
    const pages = this.pageViews;
    const inPage = rel & (PAGE - 1);
    if (pages === null || inPage + n > PAGE) return null;
    let w = pages[rel >>> PAGE_SHIFT]!;
    if (w === null) {
      // SAFETY: pageViews is non-null only when the memory has pageWords.
      const pageWords = this.memory.pageWords as (pa: number) => Uint32Array;
      const got: unknown = pageWords.call(this.memory, this.base + rel - inPage);
      if (!(got instanceof Uint32Array) || got.length < PAGE / 4) {
        // A memory whose pageWords is not what the interface promises: copy through it.
        this.pageViews = null;
        return null;
      }
      w = got;
      pages[rel >>> PAGE_SHIFT] = w;
    }
    const v = new Uint8Array(w.buffer, w.byteOffset + inPage, n);
    this.slotViews[slot] = v;
    this.slotViewAt[slot] = rel;
    return v;
  }

  /** Copies `n` bytes between two physical addresses through the reusable scratch buffer. */
  #copy(from: number, to: number, n: number): void {
    let view = this.view;
    if (view.length !== n) {
      view = this.scratch.subarray(0, n);
      this.view = view;
    }
    this.memory.readBytes(from, view);
    this.memory.writeBytes(to, view);
  }

  /** The first data slot of the live mapping containing `addr`; throws `EINVAL` otherwise. */
  #mappingAt(addr: number, what: string): number {
    if (!(addr >= this.base && addr < this.end && Number.isSafeInteger(addr))) {
      throw new DevrefError(
        "EINVAL",
        `swiotlb ${what} of ${Number.isSafeInteger(addr) ? formatAddr(addr) : describeValue(addr)}: ` +
          `not a bounce address (the pool is [${formatAddr(this.base)}, ${formatAddr(this.end)})); ` +
          "pass the address map() returned",
      );
    }
    const slot = Math.floor((addr - this.base) / IO_TLB_SIZE);
    const owner = this.owner[slot]! - 1;
    if (owner < 0) {
      throw new DevrefError(
        "EINVAL",
        `swiotlb ${what} of ${formatAddr(addr)}: no live mapping there (never mapped, or ` +
          "already unmapped)",
      );
    }
    return owner;
  }

  #mismatch(what: string, addr: number, first: number, problem: string): never {
    throw new DevrefError(
      "EINVAL",
      `swiotlb ${what} of ${formatAddr(addr)}: the mapping at ` +
        `${formatAddr(this.#slotAddr(first) + this.mapOffset[first]!)} ${problem}; unmap and ` +
        "sync with the address, size and direction of the map call",
    );
  }

  /** Validates a sync and returns the original address matching `bounce`. */
  #syncTarget(bounce: number, size: number, dir: number, what: string): number {
    const first = this.#mappingAt(bounce, what);
    const start = this.#slotAddr(first) + this.mapOffset[first]!;
    const mapEnd = start + this.mapSize[first]!;
    if (!(Number.isSafeInteger(size) && size >= 1 && bounce >= start && bounce + size <= mapEnd)) {
      this.#mismatch(
        what,
        bounce,
        first,
        `covers [${formatAddr(start)}, ${formatAddr(mapEnd)}); ${size} byte(s) from ` +
          `${formatAddr(bounce)} do not fit`,
      );
    }
    if (dir !== this.mapDir[first]) {
      this.#mismatch(
        what,
        bounce,
        first,
        `was mapped ${dmaDirectionName(this.mapDir[first]!)}, not ${dmaDirectionName(dir)}`,
      );
    }
    return this.origAddr[first]! + (bounce - start);
  }

  /** `swiotlb_search_pool_area` for the one area; returns the first slot or -1. */
  #findSlots(
    orig: number,
    allocSize: number,
    minAlign: number,
    allocAlignIn: number,
    boundary: number | undefined,
  ): number {
    const nslots = Math.ceil(allocSize / IO_TLB_SIZE);
    const offset = orig & minAlign & SLOT_MASK;
    let allocAlign = allocAlignIn;
    let iotlbAlign = minAlign;
    // Streaming mappings of a page or more stay page-aligned when nothing else is asked.
    if (allocAlign === 0 && iotlbAlign === 0 && allocSize >= this.pageSize) {
      allocAlign = this.pageSize - 1;
    }
    allocAlign |= SLOT_MASK;
    iotlbAlign &= ~allocAlign;
    const stride = (Math.max(allocAlign, iotlbAlign) >>> IO_TLB_SHIFT) + 1;
    if (nslots > this.nslabs - this.used) return -1;
    // Without a boundary the span check can never fail (the kernel's ULONG_MAX mask).
    const boundarySlots =
      boundary === undefined || boundary >= 2 ** 53 - 1 ? 0 : (boundary + 1) / IO_TLB_SIZE;
    const tblDma = boundarySlots === 0 ? this.base : this.base % (boundary! + 1);
    const tblSlots = Math.ceil(tblDma / IO_TLB_SIZE);
    const origBits = orig & iotlbAlign;
    let index = this.index;
    let found = -1;
    for (let checked = 0; checked < this.nslabs; ) {
      const tlb = tblDma + index * IO_TLB_SIZE;
      if ((tlb & allocAlign) !== 0 || (orig !== 0 && (tlb & iotlbAlign) !== origBits)) {
        index = index + 1 >= this.nslabs ? 0 : index + 1;
        checked++;
        continue;
      }
      const spans =
        boundarySlots !== 0 && ((tblSlots + index) % boundarySlots) + nslots > boundarySlots;
      if (!spans && this.#runFree(index, nslots)) {
        found = index;
        break;
      }
      index = index + stride >= this.nslabs ? 0 : index + stride;
      checked += stride;
    }
    if (found < 0) return -1;
    for (let i = found; i < found + nslots; i++) {
      this.busy[i] = 1;
      this.allocSize[i] = allocSize - (offset + (i - found) * IO_TLB_SIZE);
    }
    this.index = found + nslots >= this.nslabs ? 0 : found + nslots;
    this.used += nslots;
    if (this.used > this.hiwater) this.hiwater = this.used;
    return found;
  }

  /** The kernel's `list[index] >= nslots`: `nslots` free slots from `index`, in one segment. */
  #runFree(index: number, nslots: number): boolean {
    if ((index & (IO_TLB_SEGSIZE - 1)) + nslots > IO_TLB_SEGSIZE) return false;
    const busy = this.busy;
    for (let i = index; i < index + nslots; i++) if (busy[i] !== 0) return false;
    return true;
  }

  /** `swiotlb_release_slots` for the mapping whose first data slot is `first`. */
  #release(first: number): void {
    const slotOffset = this.mapOffset[first]!;
    const index = first - this.padSlots[first]!;
    const nslots = Math.ceil((this.allocSize[index]! + slotOffset) / IO_TLB_SIZE);
    for (let i = index; i < index + nslots; i++) {
      this.busy[i] = 0;
      this.origAddr[i] = NO_ADDR;
      this.allocSize[i] = 0;
      this.padSlots[i] = 0;
      this.owner[i] = 0;
    }
    this.mapSize[first] = 0;
    this.mapOffset[first] = 0;
    this.mapDir[first] = 0;
    this.used -= nslots;
    this.mappingCount--;
  }
}
