//! C source: kernel/dma/debug.c (CONFIG_DMA_API_DEBUG: the per-device entry list,
//! check_unmap, check_sync, the "pending DMA allocations while released" report)
//!
//! Every streaming mapping is tracked, so an unmap or sync that names something the device
//! did not map is an error that changes nothing, and what a driver leaves behind is found
//! and torn down when its binding ends.

import type { DeviceState } from "@devref/device-core/unsafe";
import { DevrefError, type DmaAddr, formatAddr, type PhysAddr } from "@devref/raw-device";
import type { Lifetime } from "@devref/raw-device/unsafe";
import type { DmaAuditEntry, DmaDeviceAudit } from "./audit.js";
import { dmaDirectionName, IO_TLB_SIZE } from "./constants.js";
import { AddrTable } from "./internal/addr-table.js";
import type { IommuDomain } from "./iommu.js";
import { iovaFastRangePfns } from "./iova.js";

/** @internal How a mapping reaches memory. */
export const VIA_DIRECT = 0;
/** @internal */
export const VIA_BOUNCE = 1;
/** @internal */
export const VIA_IOMMU = 2;
const VIA_NAMES = ["dma-direct", "swiotlb", "iommu-dma"] as const;
/** @internal What kind of map call made a mapping. */
export const KIND_SINGLE = 0;
/** @internal */
export const KIND_SG = 1;

/** @internal The scatterlist fields the teardown paths read (see scatterlist.ts). */
export interface MappedList {
  readonly origNents: number;
  readonly phys: Float64Array;
  readonly length: Float64Array;
}

/** @internal One tracked streaming mapping (dma-debug's `struct dma_debug_entry`). Pooled. */
export class MapEntry {
  addr = 0;
  size = 0;
  dir = 0;
  via = 0;
  kind = 0;
  phys = 0;
  iova = 0;
  iovaSize = 0;
  seq = 0;
  domain: IommuDomain | null = null;
  sg: MappedList | null = null;
  next: MapEntry | null = null;
}

/**
 * @internal A coherent buffer's bookkeeping, shared by the device state and the allocation.
 * It keeps a counted reference to its device (held as `"coherent <size>"`) until its memory
 * is given back, which may be after the driver's devres entry for it is gone (an IOMMU that
 * refused the unmap keeps the memory, and the device, until the mapping goes).
 */
export class CoherentRegion {
  readonly pa: PhysAddr;
  readonly dmaAddr: DmaAddr;
  readonly size: number;
  /** Bytes actually allocated (page-order rounded). */
  readonly blockSize: number;
  /** The domain and IOVA range when mapped through an IOMMU. */
  readonly domain: IommuDomain | null;
  readonly iovaSize: number;
  readonly seq: number;
  private readonly st: DeviceState;
  private held: Lifetime | null;
  constructor(
    st: DeviceState,
    pa: PhysAddr,
    dmaAddr: DmaAddr,
    size: number,
    blockSize: number,
    domain: IommuDomain | null,
    iovaSize: number,
    seq: number,
  ) {
    this.pa = pa;
    this.dmaAddr = dmaAddr;
    this.size = size;
    this.blockSize = blockSize;
    this.domain = domain;
    this.iovaSize = iovaSize;
    this.seq = seq;
    this.st = st;
    this.held = st.hold(`coherent ${size}`);
  }

  /** Puts the device reference (once). */
  release(): void {
    const held = this.held;
    this.held = null;
    if (held !== null) this.st.unhold(held);
  }
}

/**
 * @internal dma-debug's entry list of one device: the live streaming mappings by DMA
 * address. The newest mapping waits outside the table (most are unmapped before the next
 * map, and then never touch it); older ones chain per address, newest first.
 *
 * **Invariants:** `liveCount` is the number of tracked mappings plus the coherent buffers
 * the subclass counts in.
 */
export class DmaDebugEntries {
  /** The device's name, for messages. */
  readonly device: string;
  /** Streaming mappings plus coherent buffers that are live. */
  liveCount = 0;
  private readonly entries: AddrTable<MapEntry> = new AddrTable();
  private seq = 0;
  private pool: MapEntry | null = null;
  private hot: MapEntry | null = null;

  constructor(device: string) {
    this.device = device;
  }

  /** The next sequence number (audit order). */
  nextSeq(): number {
    return this.seq++;
  }

  /** Records a new streaming mapping. */
  track(
    addr: number,
    size: number,
    dir: number,
    via: number,
    kind: number,
    phys: number,
  ): MapEntry {
    let e = this.pool;
    if (e === null) e = new MapEntry();
    else this.pool = e.next;
    e.addr = addr;
    e.size = size;
    e.dir = dir;
    e.via = via;
    e.kind = kind;
    e.phys = phys;
    e.seq = this.seq++;
    e.next = null;
    if (this.hot !== null) this.spill();
    this.hot = e;
    this.liveCount++;
    return e;
  }

  /** Moves the newest mapping into the table, at the head of its address's chain. */
  private spill(): void {
    const h = this.hot;
    if (h === null) return;
    this.hot = null;
    const prev = this.entries.get(h.addr);
    h.next = prev === undefined ? null : prev;
    this.entries.set(h.addr, h);
  }

  /**
   * The entry an unmap names (check_unmap), left in place: the caller unlinks it with
   * {@link remove} once the unmap has succeeded. `addr` must be a checked, whole address.
   *
   * **Errors:** `EINVAL` for an address never mapped, or another size, direction or kind.
   */
  lookup(addr: number, size: number, dir: number, kind: number, what: string): MapEntry {
    const h = this.hot;
    if (h !== null && h.addr === addr && h.size === size && h.dir === dir && h.kind === kind) {
      return h;
    }
    return this.lookupTable(addr, size, dir, kind, what);
  }

  /** {@link lookup} past the newest mapping: kept apart so lookup inlines at its callers. */
  private lookupTable(
    addr: number,
    size: number,
    dir: number,
    kind: number,
    what: string,
  ): MapEntry {
    if (this.hot?.addr === addr) this.spill();
    const head = this.entries.get(addr);
    for (let e = head ?? null; e !== null; e = e.next) {
      if (e.size === size && e.dir === dir && e.kind === kind) return e;
    }
    if (head === undefined) {
      throw new DevrefError(
        "EINVAL",
        `DMA-API: ${this.device}: device driver tries to ${what} DMA memory it has not allocated ` +
          `[device address=${formatAddr(addr, 1)}] [size=${size} bytes]: pass the address the map call returned`,
      );
    }
    throw new DevrefError(
      "EINVAL",
      `DMA-API: ${this.device}: ${what} of ${formatAddr(addr, 1)} does not match its mapping ` +
        `[mapped ${head.size} bytes ${dmaDirectionName(head.dir)}${head.kind === KIND_SG ? " as a scatterlist" : ""}] ` +
        `[${what} ${size} bytes ${dmaDirectionName(dir)}]: pass the size and direction given at map time`,
    );
  }

  /**
   * The entry a sync names (check_sync): one mapped at `addr` with direction `dir` and at
   * least `size` bytes.
   *
   * **Errors:** `EINVAL` otherwise.
   */
  lookupSync(addr: number, size: number, dir: number, what: string): MapEntry {
    const h = this.hot;
    if (h !== null && h.addr === addr) {
      if (h.dir === dir && size <= h.size) return h;
      this.spill();
    }
    const head = this.entries.get(addr);
    for (let e = head ?? null; e !== null; e = e.next) {
      if (e.dir === dir && size <= e.size) return e;
    }
    if (head === undefined) {
      throw new DevrefError(
        "EINVAL",
        `DMA-API: ${this.device}: device driver tries to sync DMA memory it has not allocated ` +
          `[device address=${formatAddr(addr, 1)}] [size=${size} bytes]: pass the address the map call returned`,
      );
    }
    if (head.dir !== dir) {
      throw new DevrefError(
        "EINVAL",
        `DMA-API: ${this.device}: ${what} of ${formatAddr(addr, 1)} with ${dmaDirectionName(dir)}, but it was mapped ` +
          `${dmaDirectionName(head.dir)}: pass the mapping's direction`,
      );
    }
    throw new DevrefError(
      "EINVAL",
      `DMA-API: ${this.device}: ${what} of ${size} bytes at ${formatAddr(addr, 1)} goes past its ` +
        `${head.size}-byte mapping: sync at most what was mapped`,
    );
  }

  /** The chain of entries mapped at `addr` (the newest mapping moved into it). */
  chainAt(addr: number): MapEntry | null {
    const h = this.hot;
    if (h !== null && h.addr === addr) this.spill();
    return this.entries.get(addr) ?? null;
  }

  /** Unlinks an entry found by {@link lookup} (or listed by {@link allEntries}). */
  remove(e: MapEntry): void {
    if (this.hot === e) {
      this.hot = null;
      this.liveCount--;
      return;
    }
    const head = this.entries.get(e.addr);
    if (head === e) {
      if (e.next === null) this.entries.delete(e.addr);
      else this.entries.set(e.addr, e.next);
    } else {
      let p = head ?? null;
      while (p !== null && p.next !== e) p = p.next;
      if (p === null) return;
      p.next = e.next;
    }
    this.liveCount--;
  }

  /** Returns an unlinked entry to the pool. */
  recycle(e: MapEntry): void {
    e.domain = null;
    e.sg = null;
    e.next = this.pool;
    this.pool = e;
  }

  /** All live entries, oldest first. */
  allEntries(): MapEntry[] {
    this.spill();
    const out: MapEntry[] = [];
    for (const head of this.entries.values()) {
      for (let e: MapEntry | null = head; e !== null; e = e.next) out.push(e);
    }
    return out.sort((a, b) => a.seq - b.seq);
  }
}

/** @internal A tracked mapping as an audit lists it. */
export function entryOf(e: MapEntry): DmaAuditEntry {
  return {
    kind: e.kind === KIND_SG ? "sg" : "single",
    // SAFETY: recorded from the address the map call returned.
    dmaAddr: e.addr as DmaAddr,
    size: e.size,
    dir: dmaDirectionName(e.dir),
    via: VIA_NAMES[e.via]!,
    // SAFETY: recorded from the checked buffer address at map time.
    phys: e.phys as PhysAddr,
  };
}

/** @internal swiotlb slots a bounced mapping holds. */
export function bounceSlotsOf(e: MapEntry): number {
  return Math.ceil(((e.addr % IO_TLB_SIZE) + e.size) / IO_TLB_SIZE);
}

/** @internal IOVA bytes an allocation of `size` bytes in `domain` holds (the fast path rounds up). */
export function heldIova(domain: IommuDomain, size: number): number {
  const g = domain.cookie?.granule ?? 1;
  return iovaFastRangePfns(size / g) * g;
}

/** @internal What the audit reads of a device's DMA state. */
export interface AuditedState {
  readonly name: string;
  readonly coherent: ReadonlySet<CoherentRegion>;
  allEntries(): MapEntry[];
}

/** @internal What `st` holds through the DMA API (dma-debug's view); an empty audit for null. */
export function auditOf(st: DeviceState, d: AuditedState | null): DmaDeviceAudit {
  if (d === null) {
    return {
      device: st.name,
      driver: st.binding?.driver ?? null,
      ops: "none",
      entries: [],
      bounceSlots: 0,
      iovaBytes: 0,
    };
  }
  const list = d.allEntries();
  const entries: (DmaAuditEntry & { seq: number })[] = list.map((e) => ({
    ...entryOf(e),
    seq: e.seq,
  }));
  for (const c of d.coherent) {
    entries.push({
      kind: "coherent",
      dmaAddr: c.dmaAddr,
      size: c.size,
      dir: "DMA_BIDIRECTIONAL",
      via: c.domain === null ? "dma-direct" : "iommu-dma",
      phys: c.pa,
      seq: c.seq,
    });
  }
  entries.sort((a, b) => a.seq - b.seq);
  let bounceSlots = 0;
  let iovaBytes = 0;
  for (const e of list) {
    if (e.via === VIA_BOUNCE) bounceSlots += bounceSlotsOf(e);
    if (e.via === VIA_IOMMU && e.domain !== null && !e.domain.freed) iovaBytes += e.iovaSize;
  }
  for (const c of d.coherent) if (c.domain !== null && !c.domain.freed) iovaBytes += c.iovaSize;
  return {
    device: st.name,
    driver: st.binding?.driver ?? null,
    ops: d.name,
    entries: entries.map(({ seq: _seq, ...rest }) => rest),
    bounceSlots,
    iovaBytes,
  };
}
