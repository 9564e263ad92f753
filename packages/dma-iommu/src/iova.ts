//! C header: include/linux/iova.h (drivers/iommu/iova.c; the policy of
//! iommu_dma_alloc_iova in drivers/iommu/dma-iommu.c)

import {
  argumentError,
  checkBoolean,
  checkCallback,
  checkCount,
  checkInteger,
  checkObject,
  checkOneOf,
  checkSize,
  checkString,
  DevrefError,
  describeValue,
  formatAddr,
  type Iova,
  isPowerOfTwo,
} from "@devref/raw-device";
import { type DmaLogSink, IOVA_MAG_SIZE, IOVA_RANGE_CACHE_MAX_SIZE } from "./constants.js";
import { FLAG_CACHED, FLAG_LIVE, FLAG_RESERVED, NIL, RangeList } from "./internal/range-list.js";

/** The anchor's pfn: the kernel's `IOVA_ANCHOR` (~0UL), here the largest safe integer. */
const ANCHOR_PFN = Number.MAX_SAFE_INTEGER;
/** The largest pfn a range may cover (one below the anchor). */
export const IOVA_MAX_PFN: number = ANCHOR_PFN - 1;
/** Sizes below this many granules are rounded up to a power of two by the fast path. */
const RCACHE_ROUND_LIMIT = 1 << (IOVA_RANGE_CACHE_MAX_SIZE - 1);
/** One slot per magazine for its pfns; magazines are laid out at this stride. */
const MAG_STRIDE = IOVA_MAG_SIZE + 1;
/** "No magazine" in the depot links. */
const NO_MAG = -1;
/** The model runs one CPU, so the depot keeps one spare magazine per size class. */
const ONLINE_CPUS = 1;
/**
 * Entries in the table of recently allocated ranges (a power of two). It covers a whole
 * flush queue (256 ranges waiting in a lazy domain) twice over, so the frees of a flush
 * find their ranges without a tree walk.
 */
const RECENT_SLOTS = 512;
/** The first 32-bit-limit boundary: addresses up to 4 GiB − 1. */
const DMA_32BIT_LIMIT = 0xffff_ffff;

const SUPPORTED_PAGE_SIZES: readonly number[] = [4096, 16384, 65536];

/** Options for {@link IovaDomain}. */
export interface IovaDomainOptions {
  /**
   * The CPU page size (`PAGE_SIZE`): 4096, 16384 or 65536; 4096 if omitted. The granule
   * may not exceed it.
   */
  readonly pageSize?: number;
  /** Receives the notices the kernel prints (`dev_notice`); dropped if omitted. */
  readonly log?: DmaLogSink;
}

/**
 * The per-device state of dma-iommu's IOVA policy, kept by the caller and passed to
 * {@link IovaDomain.allocForDevice} on every allocation for that device.
 *
 * `prefer32` is the kernel's `dev->iommu->pci_32bit_workaround`: set it for PCI devices
 * (unless `iommu.forcedac=1`); never for platform devices. The allocator clears it the
 * first time a 32-bit attempt fails, as the kernel does.
 */
export interface IovaDevicePolicy {
  /** Try below 4 GiB first (PCI devices only). Cleared by the allocator on the first miss. */
  prefer32?: boolean;
  /** `dev->bus_dma_limit`, inclusive; 0 or absent means none (`min_not_zero`). */
  readonly busDmaLimit?: number;
  /** `domain->geometry.aperture_end` when the domain forces its aperture, inclusive. */
  readonly apertureEnd?: number;
  /** The device's name, for notices and errors. */
  readonly device?: string;
}

/** One range of an {@link IovaDomain}, as `find_iova` reports it. */
export interface IovaRange {
  /** First pfn, inclusive. */
  readonly pfnLo: number;
  /** Last pfn, inclusive. */
  readonly pfnHi: number;
  /** Made or widened by `reserve_iova`; never handed out. */
  readonly reserved: boolean;
  /** Freed through the fast path and held by a range-cache magazine. */
  readonly cached: boolean;
}

/** Counters of an {@link IovaDomain}, for audits. */
export interface IovaStats {
  /** Ranges in the tree (allocated, reserved and cached), without the anchor. */
  readonly ranges: number;
  /** Pfns covered by those ranges. */
  readonly pfns: number;
  /** Ranges held by the range caches (still in the tree, free for reuse). */
  readonly cachedRanges: number;
  /** Full magazines in the depots of all size classes. */
  readonly depotMagazines: number;
  /** `max32_alloc_size`: the smallest size known to fail below 4 GiB. */
  readonly max32AllocSize: number;
}

/** `roundup_pow_of_two` for 1 … 2^52. */
function roundupPow2(n: number): number {
  if (n <= 2 ** 30) return 2 ** (32 - Math.clz32(n - 1));
  let p = 2 ** 31;
  while (p < n) p *= 2;
  return p;
}

/**
 * @internal The pfns an allocation of `len` pfns through the fast path really holds: sizes
 * below the largest cached one are rounded up to a power of two (so they can be cached).
 */
export function iovaFastRangePfns(len: number): number {
  return len < RCACHE_ROUND_LIMIT ? roundupPow2(len) : len;
}

/** `order_base_2` for sizes that matter to the caches (≤ 2^30); larger gives ≥ 31. */
function orderBase2(n: number): number {
  return n <= 2 ** 30 ? 32 - Math.clz32(n - 1) : 31;
}

/** `bits_per(x)`: how many bits it takes to write `x`. */
function bitsPer(x: number): number {
  let bits = 0;
  for (let v = x; v >= 1; v = Math.floor(v / 2)) bits++;
  return bits;
}

// module-state: a privileged-access slot, assigned once by IovaDomain's static block.
let allocForChecked: (
  d: IovaDomain,
  size: number,
  dmaLimit: number,
  policy: IovaDevicePolicy,
) => Iova;

/**
 * @internal {@link IovaDomain.tryAllocForDevice} for dma-iommu's map paths, whose size, limit
 * and policy object the package builds itself: no checks on the hot path.
 */
export function iovaAllocForDevice(
  d: IovaDomain,
  size: number,
  dmaLimit: number,
  policy: IovaDevicePolicy,
): Iova {
  return allocForChecked(d, size, dmaLimit, policy);
}

/** The checks of a caller's {@link IovaDevicePolicy}. */
function checkPolicy(where: string, policy: IovaDevicePolicy): void {
  checkObject(where, "policy", policy);
  if (policy.prefer32 !== undefined) checkBoolean(where, "policy.prefer32", policy.prefer32);
  if (policy.busDmaLimit !== undefined)
    checkInteger(where, "policy.busDmaLimit", policy.busDmaLimit, 0, Number.MAX_SAFE_INTEGER);
  if (policy.apertureEnd !== undefined)
    checkInteger(where, "policy.apertureEnd", policy.apertureEnd, 0, Number.MAX_SAFE_INTEGER);
  if (policy.device !== undefined) checkString(where, "policy.device", policy.device);
}

/**
 * An IOVA space: the kernel's `iova_domain`, with its top-down allocator, search hints,
 * 32-bit fast failure, reservations and per-size range caches.
 *
 * Pfns are numbers of `granule`-sized frames. Every operation follows `drivers/iommu/iova.c`
 * step for step, so the same sequence of calls hands out the same pfns as the kernel.
 * Ranges live in a skip list (O(log n) find, insert and erase); an allocation walks gaps
 * downwards from a cached hint, like the kernel, which costs one or two steps in the common
 * top-down pattern but can walk many ranges after frees far below the hint.
 *
 * Differences from the kernel, all deliberate:
 * - one CPU: each size class has one `loaded`/`prev` magazine pair and a depot;
 * - no wall time: the depot trim that the kernel runs every 100 ms (`IOVA_DEPOT_DELAY`)
 *   happens when the owner calls {@link trimDepot} — one call stands for one expiry;
 * - misuse is an error, not silent corruption: freeing a pfn that is not allocated,
 *   freeing twice (also through the caches), freeing a reserved range, or a fast free with
 *   a size that does not match the range throws `EINVAL` and changes nothing;
 * - `start_pfn` must be at least 1, so pfn 0 can mean "failed" without ambiguity (dma-iommu
 *   always uses at least 1).
 *
 * **Invariants:** ranges never overlap; every range lies in `[startPfn, IOVA_MAX_PFN]` unless
 * reserved outside it; a pfn in a magazine is the `pfnLo` of a range flagged cached, whose
 * size is the magazine's size class.
 *
 * **Errors:** `EINVAL` for malformed arguments and misuse (above); allocation failure is
 * the return value 0, except {@link allocForDevice}, which throws `ENOMEM`.
 *
 * @example
 * ```ts
 * const iovad = new IovaDomain(4096, 1);
 * const pfn = iovad.allocIovaFast(4, 0xfffff, true); // 4 pages below 4 GiB, top-down
 * iovad.freeIovaFast(pfn, 4);                          // into the range cache
 * ```
 */
export class IovaDomain {
  /** Bytes per pfn; a power of two no larger than the page size. */
  readonly granule: number;
  /** log2 of {@link granule}. */
  readonly shift: number;
  /** The lowest pfn handed out. */
  readonly startPfn: number;
  /** The pfn at 4 GiB (`dma_32bit_pfn`). */
  readonly dma32bitPfn: number;
  private max32: number;
  private readonly tree: RangeList;
  private readonly anchor: number;
  private cachedNode: number;
  private cached32Node: number;
  private usedPfns: number;
  private cachedCount: number;
  private readonly log: DmaLogSink | undefined;
  // Magazines: magazine m holds node handles at magData[m * MAG_STRIDE + i], i < magSize[m].
  private magData: Int32Array;
  private magSize: Int32Array;
  private magNext: Int32Array;
  private magFree: Int32Array;
  private magFreeTop: number;
  private magFresh: number;
  private magCapacity: number;
  private readonly loaded: Int32Array;
  private readonly prevMag: Int32Array;
  private readonly depotHead: Int32Array;
  private readonly depotSize: Int32Array;
  /**
   * Node handles of recent allocations, indexed by the low bits of their start pfn, so a
   * free can skip the search when the range was allocated lately. Entries may be stale;
   * a hit is checked against the node's live flag and start pfn.
   */
  private readonly recent: Int32Array;

  /**
   * `init_iova_domain(iovad, granule, start_pfn)`.
   *
   * **Errors:** `EINVAL` if `granule` is not a power of two no larger than the page size,
   * or `startPfn` is not a whole number in 1 … {@link IOVA_MAX_PFN}.
   */
  constructor(granule: number, startPfn: number, options: IovaDomainOptions = {}) {
    const where = "new IovaDomain";
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
    if (options.log !== undefined) checkCallback(where, "options.log", options.log);
    if (!isPowerOfTwo(granule) || granule > pageSize) {
      throw argumentError(
        where,
        "granule",
        `a power of two no larger than the page size (${pageSize}): use the IOMMU's smallest page size`,
        granule,
      );
    }
    if (
      !(
        typeof startPfn === "number" &&
        Number.isSafeInteger(startPfn) &&
        startPfn >= 1 &&
        startPfn <= IOVA_MAX_PFN
      )
    ) {
      throw argumentError(
        where,
        "startPfn",
        `a whole number ≥ 1 (IOVA 0 is never handed out) and ≤ ${formatAddr(IOVA_MAX_PFN, 1)}`,
        startPfn,
      );
    }
    this.granule = granule;
    this.shift = 31 - Math.clz32(granule);
    this.startPfn = startPfn;
    this.dma32bitPfn = 2 ** (32 - this.shift);
    this.max32 = this.dma32bitPfn;
    this.tree = new RangeList();
    this.anchor = this.tree.insert(ANCHOR_PFN, ANCHOR_PFN, 0);
    this.cachedNode = this.anchor;
    this.cached32Node = this.anchor;
    this.usedPfns = 0;
    this.cachedCount = 0;
    this.log = options.log;
    const mags = 4 * IOVA_RANGE_CACHE_MAX_SIZE;
    this.magCapacity = mags;
    this.magData = new Int32Array(mags * MAG_STRIDE);
    this.magSize = new Int32Array(mags);
    this.magNext = new Int32Array(mags).fill(NO_MAG);
    this.magFree = new Int32Array(mags);
    this.magFreeTop = 0;
    this.magFresh = 0;
    this.loaded = new Int32Array(IOVA_RANGE_CACHE_MAX_SIZE);
    this.prevMag = new Int32Array(IOVA_RANGE_CACHE_MAX_SIZE);
    this.depotHead = new Int32Array(IOVA_RANGE_CACHE_MAX_SIZE).fill(NO_MAG);
    this.depotSize = new Int32Array(IOVA_RANGE_CACHE_MAX_SIZE);
    this.recent = new Int32Array(RECENT_SLOTS);
    for (let c = 0; c < IOVA_RANGE_CACHE_MAX_SIZE; c++) {
      this.loaded[c] = this.#allocMag();
      this.prevMag[c] = this.#allocMag();
    }
  }

  // ---------------------------------------------------------------------------------------
  // Tree path

  /**
   * `alloc_iova`: the highest free range of `size` pfns that ends at or below `limitPfn`
   * (inclusive) and starts at or above {@link startPfn}; with `sizeAligned`, its start is a
   * multiple of `roundup_pow_of_two(size)`.
   *
   * **Errors:** `EINVAL` for a size or limit that is not a whole number in range. Running
   * out of space is not an error: the result is 0.
   *
   * @returns the first pfn of the new range, or 0 if there is no room.
   */
  allocIova(size: number, limitPfn: number, sizeAligned: boolean): number {
    this.#checkAlloc(size, limitPfn, "alloc_iova");
    checkBoolean("alloc_iova", "sizeAligned", sizeAligned);
    const node = this.#allocRange(size, limitPfn + 1, sizeAligned);
    return node === NIL ? 0 : this.tree.lo[node]!;
  }

  /**
   * `find_iova`: the range containing `pfn`.
   *
   * **Errors:** `EINVAL` if `pfn` is not a number; a number that is no pfn (negative,
   * fractional, too large) is simply in no range.
   *
   * @returns the range, or `undefined` if `pfn` is free.
   */
  findIova(pfn: number): IovaRange | undefined {
    if (typeof pfn !== "number") throw argumentError("find_iova", "pfn", "a number", pfn);
    if (!Number.isSafeInteger(pfn) || pfn < 0 || pfn > IOVA_MAX_PFN) return undefined;
    const node = this.tree.findContaining(pfn);
    if (node === NIL) return undefined;
    const flags = this.tree.flags[node]!;
    return {
      pfnLo: this.tree.lo[node]!,
      pfnHi: this.tree.hi[node]!,
      reserved: (flags & FLAG_RESERVED) !== 0,
      cached: (flags & FLAG_CACHED) !== 0,
    };
  }

  /**
   * `free_iova`: frees the allocated range containing `pfn`, moving the search hints above it
   * and resetting the 32-bit fast failure if it reaches below 4 GiB.
   *
   * **Errors:** `EINVAL` if no allocated range contains `pfn` (never allocated or already
   * freed), if the range is in a range cache (freed through {@link freeIovaFast}), or if it
   * is reserved. Nothing changes then.
   */
  freeIova(pfn: number): void {
    checkInteger("free_iova", "pfn", pfn, 0, IOVA_MAX_PFN);
    const node = this.#lookup(pfn);
    this.#checkFreeable(node, pfn, "free_iova");
    this.#freeNode(node);
  }

  /**
   * `reserve_iova`: marks `[pfnLo, pfnHi]` as used so it is never handed out. Ranges it
   * overlaps are widened to cover it, the rest is added as a new range, as the kernel does.
   *
   * **Errors:** `EINVAL` for `pfnLo > pfnHi` or pfns beyond {@link IOVA_MAX_PFN}; `EBUSY`
   * if it overlaps a range that sits in a range cache (call {@link flushRcaches} first).
   *
   * @returns the range that now covers `pfnHi`.
   */
  reserveIova(pfnLo: number, pfnHi: number): IovaRange {
    checkInteger("reserve_iova", "pfnLo", pfnLo, 0, IOVA_MAX_PFN);
    checkInteger("reserve_iova", "pfnHi", pfnHi, pfnLo, IOVA_MAX_PFN);
    const t = this.tree;
    // The kernel scans from rb_first; ranges that end below pfnLo cannot overlap, so
    // starting at the first one that might gives the same result in O(log n).
    let start = t.findLE(pfnLo);
    if (start === NIL || t.hi[start]! < pfnLo) start = t.nextOf(start);
    for (let n = start; n !== NIL && t.lo[n]! <= pfnHi; n = t.nextOf(n)) {
      if ((t.flags[n]! & FLAG_CACHED) !== 0) {
        throw new DevrefError(
          "EBUSY",
          `reserve_iova [${formatAddr(pfnLo, 1)}, ${formatAddr(pfnHi, 1)}] overlaps [${formatAddr(t.lo[n]!, 1)}, ` +
            `${formatAddr(t.hi[n]!, 1)}], which a range cache holds: call flushRcaches() first`,
        );
      }
    }
    let lo = pfnLo;
    let overlap = false;
    // Ranges are sorted, so none after the first one starting above pfnHi can overlap.
    for (let n = start; n !== NIL && t.lo[n]! <= pfnHi; n = t.nextOf(n)) {
      if (lo <= t.hi[n]! && pfnHi >= t.lo[n]!) {
        if (lo < t.lo[n]!) {
          this.usedPfns += t.lo[n]! - lo;
          t.lo[n] = lo;
        }
        t.flags[n] = t.flags[n]! | FLAG_RESERVED;
        if (pfnHi <= t.hi[n]!) return this.#rangeOf(n);
        lo = t.hi[n]! + 1;
        overlap = true;
      } else if (overlap) {
        break;
      }
    }
    const node = t.insert(lo, pfnHi, FLAG_RESERVED);
    this.usedPfns += pfnHi - lo + 1;
    return this.#rangeOf(node);
  }

  // ---------------------------------------------------------------------------------------
  // Range caches

  /**
   * `alloc_iova_fast`: sizes below 32 are rounded up to a power of two; a cached range of
   * that size ending at or below `limitPfn` is reused if one is at hand (loaded magazine,
   * then prev, then a depot magazine); otherwise a size-aligned {@link allocIova}. If that
   * fails and `flushRcache` is set, every cached range goes back to the tree and the
   * allocation is tried once more.
   *
   * **Errors:** `EINVAL` for a size or limit that is not a whole number in range.
   *
   * @returns the first pfn, or 0 if there is no room.
   */
  allocIovaFast(size: number, limitPfn: number, flushRcache: boolean): number {
    this.#checkAlloc(size, limitPfn, "alloc_iova_fast");
    checkBoolean("alloc_iova_fast", "flushRcache", flushRcache);
    return this.#allocFast(size, limitPfn, flushRcache);
  }

  /** {@link allocIovaFast} on checked arguments. */
  #allocFast(size: number, limitPfn: number, flushRcache: boolean): number {
    if (size < RCACHE_ROUND_LIMIT) size = roundupPow2(size);
    const cls = orderBase2(size);
    if (cls < IOVA_RANGE_CACHE_MAX_SIZE) {
      const node = this.#rcacheGet(cls, limitPfn + 1 - size);
      if (node !== NIL) return this.tree.lo[node]!;
    }
    let node = this.#allocRange(size, limitPfn + 1, true);
    if (node === NIL && flushRcache) {
      this.flushRcaches();
      node = this.#allocRange(size, limitPfn + 1, true);
    }
    return node === NIL ? 0 : this.tree.lo[node]!;
  }

  /**
   * `free_iova_fast`: puts the range starting at `pfn` into the cache of its size class
   * (`order_base_2(size)` < 6), or frees it to the tree when it cannot be cached.
   *
   * `size` is what was asked of {@link allocIovaFast} (before its rounding) or the exact
   * size of the range.
   *
   * **Errors:** `EINVAL`, with nothing changed, if no allocated range starts at `pfn`, if it
   * is already freed (cached) or reserved, or if `size` does not match the range.
   */
  freeIovaFast(pfn: number, size: number): void {
    if (!(Number.isSafeInteger(pfn) && pfn >= 0 && Number.isSafeInteger(size) && size >= 1)) {
      checkInteger("free_iova_fast", "pfn", pfn, 0, IOVA_MAX_PFN);
      checkCount("free_iova_fast", "size", size, 1, IOVA_MAX_PFN);
    }
    const t = this.tree;
    const node = this.#lookup(pfn);
    this.#checkFreeable(node, pfn, "free_iova_fast");
    const rangeSize = t.hi[node]! - t.lo[node]! + 1;
    if (t.lo[node] !== pfn || !this.#sizeMatches(size, rangeSize)) {
      throw new DevrefError(
        "EINVAL",
        `free_iova_fast(${formatAddr(pfn, 1)}, ${describeValue(size)}): the range there is ` +
          `[${formatAddr(t.lo[node]!, 1)}, ${formatAddr(t.hi[node]!, 1)}] (${rangeSize} pfns): pass the start pfn ` +
          "and the size that was allocated",
      );
    }
    const cls = orderBase2(size);
    if (cls < IOVA_RANGE_CACHE_MAX_SIZE && rangeSize === 1 << cls) {
      t.flags[node] = t.flags[node]! | FLAG_CACHED;
      this.cachedCount++;
      this.#rcacheInsert(cls, node);
      return;
    }
    this.#freeNode(node);
  }

  /**
   * `free_cpu_cached_iovas` + `free_global_cached_iovas`: returns every cached range to the
   * tree (the loaded and prev magazines of each size class, then its depot).
   *
   * @returns how many ranges went back.
   */
  flushRcaches(): number {
    let freed = 0;
    for (let c = 0; c < IOVA_RANGE_CACHE_MAX_SIZE; c++) {
      freed += this.#magazineFreePfns(this.loaded[c]!);
      freed += this.#magazineFreePfns(this.prevMag[c]!);
    }
    for (let c = 0; c < IOVA_RANGE_CACHE_MAX_SIZE; c++) {
      while (this.depotSize[c]! > 0) {
        const mag = this.#depotPop(c);
        freed += this.#magazineFreePfns(mag);
        this.#freeMag(mag);
      }
    }
    return freed;
  }

  /**
   * One run of the kernel's depot work (`iova_depot_work_func`) on every size class: a depot
   * holding more full magazines than there are CPUs (one here) gives one back, its ranges
   * returning to the tree.
   *
   * The kernel runs this work 100 ms (`IOVA_DEPOT_DELAY`) after a magazine enters a depot and
   * again every 100 ms while it trims. The model has no clock: call this once per elapsed
   * delay — for example from a simulation tick.
   *
   * @returns how many magazines were trimmed.
   */
  trimDepot(): number {
    let trimmed = 0;
    for (let c = 0; c < IOVA_RANGE_CACHE_MAX_SIZE; c++) {
      if (this.depotSize[c]! > ONLINE_CPUS) {
        const mag = this.#depotPop(c);
        this.#magazineFreePfns(mag);
        this.#freeMag(mag);
        trimmed++;
      }
    }
    return trimmed;
  }

  // ---------------------------------------------------------------------------------------
  // dma-iommu policy

  /**
   * dma-iommu's `iommu_dma_alloc_iova`: allocates an IOVA for `size` bytes for a device whose
   * DMA limit is `dmaLimit` (its streaming or coherent mask, inclusive).
   *
   * 1. `size` is rounded up to the granule.
   * 2. The limit is `min_not_zero(dmaLimit, busDmaLimit)`, then clamped to `apertureEnd`.
   * 3. If the limit is above 4 GiB and `policy.prefer32` is set, a fast allocation below
   *    4 GiB is tried without flushing the caches. If it fails, `policy.prefer32` is cleared
   *    (later calls go straight to the full range) and the notice
   *    "Using N-bit DMA addresses" goes to the log.
   * 4. Otherwise, or then, a fast allocation below the limit that may flush the caches.
   *
   * **Errors:** `EINVAL` for a size or limit that is not a positive whole number; `ENOMEM`
   * when no range fits, with the domain's state in the message and `details`.
   *
   * @example
   * ```ts
   * const pci = { prefer32: true, device: "0000:01:00.0" };
   * const iova = iovad.allocForDevice(8192, dmaBitMask(64), pci);
   * ```
   */
  allocForDevice(size: number, dmaLimit: number, policy: IovaDevicePolicy = {}): Iova {
    const where = "IovaDomain.allocForDevice";
    checkSize(where, "size", size, 1, Number.MAX_SAFE_INTEGER);
    checkInteger(where, "dmaLimit", dmaLimit, 1, Number.MAX_SAFE_INTEGER);
    checkPolicy(where, policy);
    const iova = this.#allocFor(size, dmaLimit, policy);
    if (iova === 0) {
      const granules = Math.ceil(size / this.granule);
      const limit = this.#effectiveLimit(dmaLimit, policy);
      const stats = this.stats();
      throw new DevrefError(
        "ENOMEM",
        `${policy.device ?? "device"}: no free IOVA range of ${granules} granule(s) ` +
          `(${size} bytes, granule ${this.granule}) at or below ${formatAddr(limit)}: ` +
          `${stats.ranges} range(s) cover ${stats.pfns} pfns from start pfn ` +
          `${formatAddr(this.startPfn, 1)}; unmap buffers that are no longer in use or raise the ` +
          "device's DMA mask",
        {
          details: {
            size,
            granules,
            dmaLimit: limit,
            startPfn: this.startPfn,
            ranges: stats.ranges,
            pfns: stats.pfns,
          },
        },
      );
    }
    return iova;
  }

  /**
   * {@link allocForDevice} without the exception: 0 when no range fits, as the kernel returns.
   *
   * **Errors:** `EINVAL` for a size or limit that is not a positive whole number.
   */
  tryAllocForDevice(size: number, dmaLimit: number, policy: IovaDevicePolicy = {}): Iova {
    const where = "IovaDomain.tryAllocForDevice";
    checkSize(where, "size", size, 1, Number.MAX_SAFE_INTEGER);
    checkInteger(where, "dmaLimit", dmaLimit, 1, Number.MAX_SAFE_INTEGER);
    checkPolicy(where, policy);
    return this.#allocFor(size, dmaLimit, policy);
  }

  /** {@link tryAllocForDevice} on checked arguments. */
  #allocFor(size: number, dmaLimit: number, policy: IovaDevicePolicy): Iova {
    const limit = this.#effectiveLimit(dmaLimit, policy);
    const len = Math.ceil(size / this.granule);
    let pfn = 0;
    if (limit > DMA_32BIT_LIMIT && policy.prefer32 === true) {
      pfn = this.#allocFast(len, Math.floor(DMA_32BIT_LIMIT / this.granule), false);
      if (pfn === 0) {
        policy.prefer32 = false;
        this.log?.(`${policy.device ?? "device"}: Using ${bitsPer(limit)}-bit DMA addresses`);
      }
    }
    if (pfn === 0) {
      const limitPfn = Math.min(Math.floor(limit / this.granule), IOVA_MAX_PFN);
      pfn = this.#allocFast(len, limitPfn, true);
    }
    // SAFETY: pfn ≤ limit / granule and limit is a safe integer, so the address is too.
    return (pfn * this.granule) as Iova;
  }

  static {
    allocForChecked = (d, size, dmaLimit, policy) => d.#allocFor(size, dmaLimit, policy);
  }

  // ---------------------------------------------------------------------------------------
  // Audit

  /** Counters for audits and tests. */
  stats(): IovaStats {
    let depot = 0;
    for (let c = 0; c < IOVA_RANGE_CACHE_MAX_SIZE; c++) depot += this.depotSize[c]!;
    return {
      ranges: this.tree.size - 1,
      pfns: this.usedPfns,
      cachedRanges: this.cachedCount,
      depotMagazines: depot,
      max32AllocSize: this.max32,
    };
  }

  /** Every range in ascending order, without the anchor (`/proc/iova/<name>/used`). */
  ranges(): IovaRange[] {
    const out: IovaRange[] = [];
    const t = this.tree;
    for (let n = t.first(); n !== NIL && n !== this.anchor; n = t.nextOf(n)) {
      out.push(this.#rangeOf(n));
    }
    return out;
  }

  // ---------------------------------------------------------------------------------------
  // Internals

  #checkAlloc(size: number, limitPfn: number, what: string): void {
    checkCount(what, "size", size, 1, IOVA_MAX_PFN);
    checkInteger(what, "limitPfn", limitPfn, 0, IOVA_MAX_PFN);
  }

  #effectiveLimit(dmaLimit: number, policy: IovaDevicePolicy): number {
    let limit = dmaLimit;
    const bus = policy.busDmaLimit;
    if (bus !== undefined && bus !== 0 && bus < limit) limit = bus;
    const aperture = policy.apertureEnd;
    if (aperture !== undefined && aperture < limit) limit = aperture;
    return limit;
  }

  #sizeMatches(size: number, rangeSize: number): boolean {
    if (!(size >= 1 && Math.floor(size) === size)) return false;
    if (size === rangeSize) return true;
    return size < RCACHE_ROUND_LIMIT && roundupPow2(size) === rangeSize;
  }

  #checkFreeable(node: number, pfn: number, what: string): void {
    if (node === NIL || node === this.anchor) {
      throw new DevrefError(
        "EINVAL",
        `${what}: pfn ${Number.isSafeInteger(pfn) ? formatAddr(pfn, 1) : describeValue(pfn)} is not in any ` +
          "allocated IOVA range: it was never allocated, or it was already freed",
      );
    }
    const flags = this.tree.flags[node]!;
    if ((flags & FLAG_CACHED) !== 0) {
      throw new DevrefError(
        "EINVAL",
        `${what}: the range at pfn ${formatAddr(this.tree.lo[node]!, 1)} was already freed (it is in the ` +
          "IOVA range cache): free each allocation once",
      );
    }
    if ((flags & FLAG_RESERVED) !== 0) {
      throw new DevrefError(
        "EINVAL",
        `${what}: the range [${formatAddr(this.tree.lo[node]!, 1)}, ${formatAddr(this.tree.hi[node]!, 1)}] is ` +
          "reserved (reserve_iova) and stays reserved for the life of the domain",
      );
    }
  }

  #rangeOf(node: number): IovaRange {
    const flags = this.tree.flags[node]!;
    return {
      pfnLo: this.tree.lo[node]!,
      pfnHi: this.tree.hi[node]!,
      reserved: (flags & FLAG_RESERVED) !== 0,
      cached: (flags & FLAG_CACHED) !== 0,
    };
  }

  /**
   * `__alloc_and_insert_iova_range` with an exclusive `limit` (`limit_pfn + 1`).
   * @returns the new node, or NIL.
   */
  #allocRange(size: number, limit: number, sizeAligned: boolean): number {
    const t = this.tree;
    const lo = t.lo;
    const hi = t.hi;
    const prevLink = t.prev;
    const align = sizeAligned ? roundupPow2(size) : 1;
    if (limit <= this.dma32bitPfn && size >= this.max32) return NIL;
    let curr = limit <= this.dma32bitPfn ? this.cached32Node : this.cachedNode;
    const retryPfn = hi[curr]!;
    let highPfn = limit;
    let lowPfn = this.startPfn;
    let retried = false;
    let newPfn = 0;
    for (;;) {
      // Walk gaps downwards: each step lowers the ceiling to the start of the range above.
      do {
        const currLo = lo[curr]!;
        if (currLo < highPfn) highPfn = currLo;
        const raw = highPfn - size;
        newPfn = raw < 0 ? -1 : raw - (raw % align);
        curr = prevLink[curr]!;
      } while (curr !== NIL && newPfn <= hi[curr]! && newPfn >= lowPfn);
      if (highPfn >= size && newPfn >= lowPfn) break;
      // A search that began at a hint failed: look once more between the hint and the limit.
      if (!retried && lowPfn === this.startPfn && retryPfn < limit) {
        retried = true;
        highPfn = limit;
        lowPfn = retryPfn + 1;
        curr = this.#findLimit(limit);
        continue;
      }
      this.max32 = size;
      return NIL;
    }
    const node = t.insert(newPfn, newPfn + size - 1, 0);
    this.recent[newPfn & (RECENT_SLOTS - 1)] = node;
    this.usedPfns += size;
    if (newPfn + size - 1 < this.dma32bitPfn) this.cached32Node = node;
    else this.cachedNode = node;
    return node;
  }

  /** The node whose range contains `pfn` (`private_find_iova`), trying recent ones first. */
  #lookup(pfn: number): number {
    if (!Number.isSafeInteger(pfn)) return NIL;
    const t = this.tree;
    // `& mask` keeps the low bits of any safe integer, which is all the index needs.
    const hint = this.recent[pfn & (RECENT_SLOTS - 1)]!;
    if (hint !== NIL && (t.flags[hint]! & FLAG_LIVE) !== 0 && t.lo[hint] === pfn) return hint;
    return t.findContaining(pfn);
  }

  /** `iova_find_limit`: where a retry below the exclusive `limit` starts walking. */
  #findLimit(limit: number): number {
    if (limit > this.dma32bitPfn) return this.anchor;
    const t = this.tree;
    // The first range that ends at or above the limit: the walk starts below it.
    const x = t.findLE(limit - 1);
    if (x !== NIL && t.hi[x]! >= limit) return x;
    return t.nextOf(x);
  }

  /** `private_free_iova`: hint updates, then erase. */
  #freeNode(node: number): void {
    const t = this.tree;
    const lo = t.lo[node]!;
    const hi = t.hi[node]!;
    const next = t.nextOf(node);
    const c32 = this.cached32Node;
    if (node === c32 || (hi < this.dma32bitPfn && lo >= t.lo[c32]!)) this.cached32Node = next;
    if (lo < this.dma32bitPfn) this.max32 = this.dma32bitPfn;
    if (lo >= t.lo[this.cachedNode]!) this.cachedNode = next;
    this.usedPfns -= hi - lo + 1;
    t.remove(node);
  }

  #allocMag(): number {
    if (this.magFreeTop > 0) {
      const m = this.magFree[--this.magFreeTop]!;
      this.magSize[m] = 0;
      this.magNext[m] = NO_MAG;
      return m;
    }
    if (this.magFresh === this.magCapacity) this.#growMags();
    return this.magFresh++;
  }

  #freeMag(mag: number): void {
    this.magSize[mag] = 0;
    this.magFree[this.magFreeTop++] = mag;
  }

  #growMags(): void {
    const cap = this.magCapacity * 2;
    const data = new Int32Array(cap * MAG_STRIDE);
    data.set(this.magData);
    this.magData = data;
    const size = new Int32Array(cap);
    size.set(this.magSize);
    this.magSize = size;
    const next = new Int32Array(cap).fill(NO_MAG);
    next.set(this.magNext);
    this.magNext = next;
    const free = new Int32Array(cap);
    free.set(this.magFree);
    this.magFree = free;
    this.magCapacity = cap;
  }

  #depotPush(cls: number, mag: number): void {
    this.magNext[mag] = this.depotHead[cls]!;
    this.depotHead[cls] = mag;
    this.depotSize[cls] = this.depotSize[cls]! + 1;
  }

  #depotPop(cls: number): number {
    const mag = this.depotHead[cls]!;
    this.depotHead[cls] = this.magNext[mag]!;
    this.magNext[mag] = NO_MAG;
    this.depotSize[cls] = this.depotSize[cls]! - 1;
    return mag;
  }

  /** `__iova_rcache_get`: a cached node whose start is at most `maxPfn`, or NIL. */
  #rcacheGet(cls: number, maxPfn: number): number {
    let mag = this.loaded[cls]!;
    if (this.magSize[mag] === 0) {
      const prev = this.prevMag[cls]!;
      if (this.magSize[prev] !== 0) {
        this.prevMag[cls] = mag;
        this.loaded[cls] = prev;
        mag = prev;
      } else if (this.depotSize[cls]! > 0) {
        this.#freeMag(mag);
        mag = this.#depotPop(cls);
        this.loaded[cls] = mag;
      } else {
        return NIL;
      }
    }
    // iova_magazine_pop: the newest entry that fits the limit, swapped out with the last.
    const data = this.magData;
    const base = mag * MAG_STRIDE;
    const lo = this.tree.lo;
    let i = this.magSize[mag]! - 1;
    while (lo[data[base + i]!]! > maxPfn) {
      if (i === 0) return NIL;
      i--;
    }
    const node = data[base + i]!;
    const last = this.magSize[mag]! - 1;
    data[base + i] = data[base + last]!;
    this.magSize[mag] = last;
    this.tree.flags[node] = this.tree.flags[node]! & ~FLAG_CACHED;
    this.cachedCount--;
    this.recent[this.tree.lo[node]! & (RECENT_SLOTS - 1)] = node;
    return node;
  }

  /** `__iova_rcache_insert`; never fails here, because a new magazine is always at hand. */
  #rcacheInsert(cls: number, node: number): void {
    let mag = this.loaded[cls]!;
    if (this.magSize[mag] === IOVA_MAG_SIZE) {
      const prev = this.prevMag[cls]!;
      if (this.magSize[prev] !== IOVA_MAG_SIZE) {
        this.prevMag[cls] = mag;
        this.loaded[cls] = prev;
        mag = prev;
      } else {
        this.#depotPush(cls, mag);
        mag = this.#allocMag();
        this.loaded[cls] = mag;
      }
    }
    const size = this.magSize[mag]!;
    this.magData[mag * MAG_STRIDE + size] = node;
    this.magSize[mag] = size + 1;
  }

  /** `iova_magazine_free_pfns`: every range in the magazine back to the tree, in order. */
  #magazineFreePfns(mag: number): number {
    const n = this.magSize[mag]!;
    const base = mag * MAG_STRIDE;
    for (let i = 0; i < n; i++) {
      const node = this.magData[base + i]!;
      this.tree.flags[node] = this.tree.flags[node]! & ~FLAG_CACHED;
      this.cachedCount--;
      this.#freeNode(node);
    }
    this.magSize[mag] = 0;
    return n;
  }
}
