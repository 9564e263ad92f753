//! C header: include/linux/dma-mapping.h
//! C source: kernel/dma/mapping.c (dma_set_mask, the per-device state), kernel/dma/debug.c
//! (the per-device entry list, check_unmap, the unbind report), drivers/base/dd.c
//! (really_probe → dma_configure, dma_cleanup)

import type { Device } from "@devref/device-core";
import { DeviceScope, DeviceState, deviceStateOf } from "@devref/device-core/unsafe";
import {
  type Core,
  checkBoolean,
  checkInstance,
  checkInteger,
  checkObject,
  DevrefError,
  type DmaAddr,
  formatAddr,
  type Iova,
  type PhysAddr,
} from "@devref/raw-device";
import { CONTEXT_CORE } from "@devref/raw-device/unsafe";
import type { DmaAuditEntry, DmaDeviceAudit, DmaUnbindReport } from "./audit.js";
import {
  DMA_ATTR_SKIP_CPU_SYNC,
  type DmaDirection,
  dmaBitMask,
  dmaDirectionName,
  IO_TLB_SIZE,
} from "./constants.js";
import { iommuDmaUnmapRange } from "./dma-iommu.js";
import { AddrTable } from "./internal/addr-table.js";
import { checkDevice } from "./internal/checks.js";
import {
  clientStateOf,
  type IommuClient,
  type IommuDomain,
  iommuProbeClient,
  iommuReleaseClient,
  setClientGoneHook,
} from "./iommu.js";
import { type IovaDevicePolicy, iovaFastRangePfns } from "./iova.js";
import {
  type DmaMemoryUser,
  DmaSystem,
  type DmaUserAudit,
  dmaMemoryUsers,
  setDmaLayerHooks,
} from "./system.js";

/**
 * `DMA_MAPPING_ERROR`: what a failed map returns. The kernel uses all ones (`~0`), which a
 * `number` cannot hold; -1 is its two's-complement reading and is never a valid address.
 */
// SAFETY: a sentinel outside the range of every real DmaAddr (which are ≥ 0).
export const DMA_MAPPING_ERROR: DmaAddr = -1 as DmaAddr;

/** `dma_get_max_seg_size` without `dma_parms`: 64 KiB. */
export const DMA_DEFAULT_MAX_SEG_SIZE = 65536;

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

/** @internal The scatterlist fields the teardown paths read (see streaming.ts). */
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

/** @internal A coherent buffer's bookkeeping, shared by the device state and the allocation. */
export class CoherentRegion {
  readonly pa: PhysAddr;
  readonly dmaAddr: DmaAddr;
  readonly size: number;
  /** Bytes actually allocated (page-order rounded). */
  readonly blockSize: number;
  readonly fromLow: boolean;
  /** The domain and IOVA range when mapped through an IOMMU. */
  readonly domain: IommuDomain | null;
  readonly iovaSize: number;
  readonly seq: number;
  constructor(
    pa: PhysAddr,
    dmaAddr: DmaAddr,
    size: number,
    blockSize: number,
    fromLow: boolean,
    domain: IommuDomain | null,
    iovaSize: number,
    seq: number,
  ) {
    this.pa = pa;
    this.dmaAddr = dmaAddr;
    this.size = size;
    this.blockSize = blockSize;
    this.fromLow = fromLow;
    this.domain = domain;
    this.iovaSize = iovaSize;
    this.seq = seq;
  }
}

/** @internal The device object behind a DMA state (the package's business only). */
export function dmaDeviceState(d: DmaState): DeviceState {
  return d.st;
}

/**
 * @internal The per-device DMA state behind a {@link DeviceDma}: the live mappings and
 * allocations of the current binding, and the bookkeeping the map paths use. Never handed
 * out: callers see the {@link DeviceDma} facade.
 *
 * **Invariants:** exists from `dmaConfigure` (in probe) to the end of that binding;
 * `liveCount` is the number of tracked streaming mappings plus coherent buffers.
 */
export class DmaState implements DmaMemoryUser {
  readonly system: DmaSystem;
  /** The device's name. */
  readonly device: string;
  readonly st: DeviceState;
  client: IommuClient | null;
  /** What callers see. */
  readonly facade: DeviceDma;
  /** @internal dma-iommu's IOVA policy for this device (`prefer32` is cleared on a miss). */
  policy: IovaDevicePolicy;
  /** Bounce every dma-direct mapping (`is_swiotlb_force_bounce`). */
  forceBounce: boolean;
  /** @internal */
  readonly entries: AddrTable<MapEntry> = new AddrTable();
  /** @internal */
  readonly coherent: Set<CoherentRegion> = new Set();
  /** Streaming mappings plus coherent buffers that are live. */
  liveCount = 0;
  /** The error behind the last `DMA_MAPPING_ERROR`, with the kernel's message and the fix. */
  lastError: DevrefError | null = null;
  /** Coherent buffers freed by devres at the end of the binding. */
  coherentFreedAtUnbind = 0;
  /** @internal The IOMMU went away: DMA through it fails. */
  iommuLost = false;
  /** @internal */
  dead = false;
  /** @internal Leaked mappings torn down before the final report (binding end, freed memory). */
  readonly pendingLeaks: DmaAuditEntry[] = [];
  /** @internal What the device held when its binding began to end (for the unbind report). */
  endAudit: DmaDeviceAudit | null = null;
  private seq = 0;
  private pool: MapEntry | null = null;
  private hot: MapEntry | null = null;
  private limitBits = -1;
  private limitValue = 0;

  /** @internal */
  constructor(system: DmaSystem, st: DeviceState, forceBounce: boolean) {
    this.system = system;
    this.device = st.name;
    this.st = st;
    this.client = null;
    this.policy = {
      device: st.name,
      prefer32: false,
      busDmaLimit: 0,
      apertureEnd: Number.MAX_SAFE_INTEGER,
    };
    this.forceBounce = forceBounce;
    this.facade = new DeviceDma(this);
  }

  /** The IOMMU data when the device sits behind one. */
  get iommuClient(): IommuClient | null {
    return this.client;
  }

  /** `"iommu-dma"` behind an IOMMU with a DMA domain, else `"dma-direct"`. */
  get name(): string {
    const dom = this.client?.group.domain ?? null;
    return dom !== null && dom.cookie !== null ? "iommu-dma" : "dma-direct";
  }

  /** @internal The streaming mask's inclusive limit, cached per mask width. */
  streamingLimit(): number {
    const bits = this.st.dmaMaskBits ?? 32;
    if (bits !== this.limitBits) {
      this.limitBits = bits;
      this.limitValue = maskLimit(bits);
    }
    return this.limitValue;
  }

  /** @internal */
  nextSeq(): number {
    return this.seq++;
  }

  /** @internal Records a new streaming mapping. */
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
    // The newest mapping waits in `hot`; most are unmapped before the next map, and then
    // never touch the table.
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
   * @internal The entry an unmap names (dma-debug's check_unmap), left in place: the caller
   * unlinks it with {@link remove} once the unmap has succeeded. `addr` must be a checked,
   * whole address.
   *
   * **Errors:** `EINVAL` for an address never mapped, or another size, direction or kind.
   */
  lookup(addr: number, size: number, dir: number, kind: number, what: string): MapEntry {
    const h = this.hot;
    if (h !== null && h.addr === addr) {
      if (h.size === size && h.dir === dir && h.kind === kind) return h;
      this.spill();
    }
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
   * @internal The entry a sync names (dma-debug's check_sync): one mapped at `addr` with
   * direction `dir` and at least `size` bytes.
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

  /** @internal The chain of entries mapped at `addr` (the newest mapping moved into it). */
  chainAt(addr: number): MapEntry | null {
    const h = this.hot;
    if (h !== null && h.addr === addr) this.spill();
    return this.entries.get(addr) ?? null;
  }

  /** @internal Unlinks an entry found by {@link lookup} (or listed by allEntries). */
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

  /** @internal */
  recycle(e: MapEntry): void {
    e.domain = null;
    e.sg = null;
    e.next = this.pool;
    this.pool = e;
  }

  /** @internal All live entries, oldest first. */
  allEntries(): MapEntry[] {
    this.spill();
    const out: MapEntry[] = [];
    for (const head of this.entries.values()) {
      for (let e: MapEntry | null = head; e !== null; e = e.next) out.push(e);
    }
    return out.sort((a, b) => a.seq - b.seq);
  }

  /** See {@link DeviceDma.cleanup}. */
  cleanup(): void {
    if (this.dead) return;
    this.endAudit ??= auditOf(this.st, this);
    if (this.liveCount === this.coherent.size) return;
    for (const e of this.allEntries()) releaseLeaked(this, e, "a leaked mapping");
  }

  /** See {@link DmaMemoryUser}. */
  auditUsage(): DmaUserAudit {
    let bounceSlots = 0;
    let bounceMappings = 0;
    let coherentBytes = 0;
    const iova = new Map<IommuDomain, number>();
    const list = this.allEntries();
    for (const e of list) {
      if (e.via === VIA_BOUNCE) {
        bounceSlots += Math.ceil(((e.addr % IO_TLB_SIZE) + e.size) / IO_TLB_SIZE);
        bounceMappings++;
      } else if (e.via === VIA_IOMMU && e.domain !== null && !e.domain.freed) {
        iova.set(e.domain, (iova.get(e.domain) ?? 0) + heldIova(e.domain, e.iovaSize));
      }
    }
    for (const c of this.coherent) {
      coherentBytes += c.blockSize;
      if (c.domain !== null && !c.domain.freed)
        iova.set(c.domain, (iova.get(c.domain) ?? 0) + heldIova(c.domain, c.iovaSize));
    }
    const live = list.length + this.coherent.size;
    const problems =
      live === this.liveCount
        ? []
        : [`${this.device}: ${this.liveCount} live by count, but ${live} listed`];
    return { bounceSlots, bounceMappings, coherentBytes, live, iova, problems };
  }

  /** See {@link DmaMemoryUser}. */
  dropMappingsOf(pa: number, size: number): void {
    if (this.liveCount === this.coherent.size) return;
    const hit: MapEntry[] = [];
    for (const e of this.allEntries()) if (entryOverlaps(e, pa, size)) hit.push(e);
    for (const e of hit) {
      this.st.log(
        "err",
        `DMA-API: device driver frees memory [${formatAddr(pa, 1)}+${size}] that is still mapped for DMA ` +
          `[device address=${formatAddr(e.addr, 1)}] [size=${e.size} bytes] [${dmaDirectionName(e.dir)}]: ` +
          "the mapping is torn down first; unmap before freeing",
      );
      // A mapping that cannot be torn down keeps its memory: rethrow before it is freed.
      if (!releaseLeaked(this, e, "a mapping of freed memory")) {
        throw new DevrefError(
          "EBUSY",
          `${this.device}: memory [${formatAddr(pa, 1)}+${size}] is still mapped for DMA at ${formatAddr(e.addr, 1)} ` +
            "and the mapping could not be torn down: the memory stays allocated",
        );
      }
    }
  }
}

let facadeState: (f: DeviceDma) => DmaState;

/**
 * A device's DMA configuration as callers see it (stored in the device's `dmaOps` slot, so
 * `dev.dmaOps.name` says which implementation serves it): dma-direct or iommu-dma, what is
 * live, the last mapping error, and the `dma_cleanup` step for buses. Only
 * {@link dmaConfigure} creates one; it holds no reference and no method that could change
 * the DMA state behind the API's back.
 *
 * **Invariants:** describes one binding; after the binding ends it reads as empty.
 *
 * **Errors:** none.
 *
 * @example
 * ```ts
 * const d = dmaConfigure(system, dev);
 * d.name; // "iommu-dma" behind an IOMMU with a DMA domain
 * ```
 */
export class DeviceDma {
  readonly #s: DmaState;

  /** @internal Made with its {@link DmaState}. */
  constructor(s: DmaState) {
    this.#s = s;
  }

  /** `"iommu-dma"` behind an IOMMU with a DMA domain, else `"dma-direct"`. */
  get name(): string {
    return this.#s.name;
  }
  /** The DMA system the device joined. */
  get system(): DmaSystem {
    return this.#s.system;
  }
  /** The device's name. */
  get device(): string {
    return this.#s.device;
  }
  /** The IOMMU data when the device sits behind one. */
  get iommuClient(): IommuClient | null {
    return this.#s.client;
  }
  /** Streaming mappings plus coherent buffers that are live. */
  get liveCount(): number {
    return this.#s.liveCount;
  }
  /** The error behind the last `DMA_MAPPING_ERROR`, with the kernel's message and the fix. */
  get lastError(): DevrefError | null {
    return this.#s.lastError;
  }
  /** Whether every dma-direct mapping bounces (`is_swiotlb_force_bounce`). */
  get forceBounce(): boolean {
    return this.#s.forceBounce;
  }
  /** Coherent buffers freed by devres at the end of the binding. */
  get coherentFreedAtUnbind(): number {
    return this.#s.coherentFreedAtUnbind;
  }

  /**
   * device-core's hook before a driver changes the device's masks (however it does it):
   * refuses with `EBUSY` while anything is mapped or allocated, and with `EIO` for a mask
   * dma-direct cannot serve (`dma_supported`), before anything changes.
   *
   * **Errors:** as said; `EINVAL` for bits outside 1 … 64.
   */
  maskChanging(_st: unknown, bits: number, _streaming?: boolean, _coherent?: boolean): void {
    checkInteger("dma_set_mask", "bits", bits, 1, 64);
    maskChange(this.#s, bits, "dma_set_mask");
  }

  /**
   * The kernel's `dma_cleanup` step of unbinding, for the bus to call after `remove()` (or
   * a failed or aborted probe) and **before** the driver's devres actions run: streaming
   * mappings the driver leaked are torn down now, so that no devres action can free a
   * buffer the device can still reach. They are reported when the binding's DMA state goes
   * (see {@link DmaSystem.leakReports}). Coherent buffers stay: they are devres resources
   * and go in their own order. Calling it again, or after the binding ended, does nothing.
   *
   * **Errors:** none; a teardown the IOMMU driver fails is logged, and the mapping stays
   * listed so the end of the binding tries again.
   */
  cleanup(): void {
    this.#s.cleanup();
  }

  static {
    facadeState = (f) => f.#s;
  }
}

/** @internal The live DMA state of a device object, or null. */
export function liveDmaState(st: DeviceState): DmaState | null {
  const f = st.dmaOps;
  if (!(f instanceof DeviceDma)) return null;
  const s = facadeState(f);
  return s.dead ? null : s;
}

/** IOVA bytes an allocation of `size` bytes in `domain` holds (the fast path rounds up). */
function heldIova(domain: IommuDomain, size: number): number {
  const g = domain.cookie?.granule ?? 1;
  return iovaFastRangePfns(size / g) * g;
}

function entryOverlaps(e: MapEntry, pa: number, size: number): boolean {
  const sg = e.sg;
  if (sg === null) return e.phys < pa + size && pa < e.phys + e.size;
  for (let i = 0; i < sg.origNents; i++) {
    const p = sg.phys[i]!;
    if (p < pa + size && pa < p + sg.length[i]!) return true;
  }
  return false;
}

/**
 * Tears a leaked mapping down without copying back (the driver is not looking any more),
 * records it for the unbind report and unlinks it. Returns false, with the mapping still
 * listed, if the IOMMU driver failed.
 */
function releaseLeaked(d: DmaState, e: MapEntry, what: string): boolean {
  try {
    unmapEntry(d, e, DMA_ATTR_SKIP_CPU_SYNC);
  } catch (err) {
    const st = dmaDeviceState(d);
    st.log("err", `DMA-API: tearing down ${what} failed: ${String(err)}`);
    return false;
  }
  d.pendingLeaks.push(entryOf(e));
  d.remove(e);
  d.recycle(e);
  return true;
}

/**
 * @internal Undoes one mapping in the hardware and the pools: bounce slots go back (copying
 * to the buffer as `attrs` and the direction say), IOMMU mappings are unmapped and their
 * IOVA freed or queued. Throws, having changed nothing the entry tracks, if the IOMMU
 * driver fails.
 */
export function unmapEntry(d: DmaState, e: MapEntry, attrs: number): void {
  if (e.via === VIA_BOUNCE) {
    // SAFETY: the bounce address and parameters were recorded at map time.
    d.system.swiotlb.unmap(e.addr as PhysAddr, e.size, e.dir as DmaDirection, attrs);
  } else if (e.via === VIA_IOMMU && e.domain !== null && !e.domain.freed) {
    // SAFETY: recorded from the IOVA allocated at map time.
    iommuDmaUnmapRange(e.domain, e.iova as Iova, e.iovaSize);
  }
}

setDmaLayerHooks({
  configure: (system, st) => {
    dmaConfigureDevice(system, st);
  },
  quiesce: (st) => {
    liveDmaState(st)?.cleanup();
  },
  deconfigure: (st) => {
    const f = st.dmaOps;
    if (f instanceof DeviceDma) dmaUnbind(facadeState(f));
  },
});

setClientGoneHook((client) => {
  const st = clientStateOf(client);
  const d = liveDmaState(st);
  if (d !== null && d.client === client) {
    // The domain is about to be freed with the IOMMU: mappings through it are gone too.
    for (const e of d.allEntries()) {
      if (e.via === VIA_IOMMU) e.domain = null;
    }
    d.iommuLost = true;
    d.client = null;
    st.iommu = null;
  }
});

// ---------------------------------------------------------------------------------------
// Configuration (really_probe → bus->dma_configure).

/** Options of {@link dmaConfigure}. */
export interface DmaConfigureOptions {
  /** Bounce every dma-direct mapping (a restricted-DMA or forced-swiotlb device). */
  readonly forceBounce?: boolean;
  /**
   * dma-iommu's `pci_32bit_workaround`: try IOVAs below 4 GiB first. Set it for PCI devices
   * (unless `iommu.forcedac=1`); platform devices never use it.
   */
  readonly pci32bitWorkaround?: boolean;
}

interface FirmwareIommuRef {
  readonly iommu: string;
  readonly ids: readonly number[];
}

/** The device's firmware IOMMU reference (`iommus`, the first entry: one IOMMU per device). */
function iommuRefOf(st: DeviceState): FirmwareIommuRef | null {
  return st.fwnode.iommus[0] ?? null;
}

function checkConfigureOptions(where: string, options: DmaConfigureOptions): void {
  checkObject(where, "options", options);
  if (options.forceBounce !== undefined)
    checkBoolean(where, "options.forceBounce", options.forceBounce);
  if (options.pci32bitWorkaround !== undefined)
    checkBoolean(where, "options.pci32bitWorkaround", options.pci32bitWorkaround);
}

/**
 * Sets up DMA for `dev` at the start of its probe — the kernel's `dma_configure` step of
 * `really_probe`: default 32-bit masks if the bus set none, the IOMMU named in its
 * `iommus` (probe into it, join a group, attach the default domain), and the DMA
 * implementation (iommu-dma for a DMA domain, dma-direct otherwise). Also registers the
 * end-of-binding action that audits and tears down the binding's DMA state.
 *
 * Call it first thing in probe (before registering resources that use DMA, so that it is
 * torn down after them). Calling it again in the same binding returns the same state.
 *
 * **Errors:** `EPROBE_DEFER` if the device names an IOMMU that is not registered yet
 * (retried when the IOMMU's driver binds); `ENODEV` on a revoked borrow; `EINVAL` for a bad
 * argument, or an IOMMU that cannot give the device a DMA domain; whatever the IOMMU
 * driver's `probeDevice`/`domainAllocPaging` throws, other than `ENODEV` (declined: the
 * device then uses dma-direct). Nothing stays behind on error.
 *
 * @example
 * ```ts
 * probe(dev) {
 *   dmaConfigure(system, dev);
 *   dmaSetMaskAndCoherent(dev, 64);
 *   const ring = dmaAllocCoherent(dev, 4096);
 *   return { ring };
 * }
 * ```
 */
export function dmaConfigure(
  system: DmaSystem,
  dev: Device<Core>,
  options: DmaConfigureOptions = {},
): DeviceDma {
  const where = "dma_configure";
  checkInstance(where, "system", system, DmaSystem);
  const st = deviceStateOf(checkDevice(where, dev));
  checkConfigureOptions(where, options);
  const cur = liveDmaState(st);
  if (cur !== null) {
    if (cur.system !== system) {
      throw new DevrefError(
        "EINVAL",
        `device '${st.name}' is already configured for another DMA system`,
      );
    }
    // Configured already (by the machine's DMA layer at the start of probe): the driver's
    // options apply while nothing is mapped yet.
    const bounce = options.forceBounce;
    const pci = options.pci32bitWorkaround;
    if ((bounce !== undefined || pci !== undefined) && cur.liveCount > 0) {
      throw new DevrefError(
        "EBUSY",
        `dma_configure(${st.name}): options change how mappings are made; give them before the first mapping`,
      );
    }
    if (bounce !== undefined) cur.forceBounce = bounce;
    if (pci !== undefined && cur.client !== null) cur.policy.prefer32 = pci;
    return cur.facade;
  }
  const ref = iommuRefOf(st);
  let iommu = null;
  if (ref !== null) {
    iommu = system.iommus.get(ref.iommu) ?? null;
    if (iommu === null) {
      throw new DevrefError(
        "EPROBE_DEFER",
        `device '${st.name}' is behind IOMMU '${ref.iommu}', which is not registered yet: ` +
          "probe is retried when the IOMMU's driver binds",
      );
    }
  }
  const d = new DmaState(system, st, options.forceBounce ?? system.swiotlbForce);
  if (iommu !== null && ref !== null) {
    const client = iommuProbeClient(iommu, st, ref.ids);
    d.client = client;
    const dom = client?.group.defaultDomain ?? null;
    // One object shape for every device (an unforced aperture is "no limit"), so the IOVA
    // allocator's reads of it stay monomorphic.
    d.policy = {
      device: st.name,
      prefer32: options.pci32bitWorkaround ?? false,
      busDmaLimit: 0,
      apertureEnd: dom?.forceAperture === true ? dom.apertureEnd : Number.MAX_SAFE_INTEGER,
    };
  }
  try {
    dev.devmAddAction(() => dmaUnbind(d), "dma");
  } catch (e) {
    if (d.client !== null) iommuReleaseClient(d.client);
    throw e;
  }
  if (st.dmaMaskBits === null) st.dmaMaskBits = 32;
  if (st.coherentDmaMaskBits === null) st.coherentDmaMaskBits = 32;
  st.dmaOps = d.facade;
  dmaMemoryUsers(system).add(d);
  if (d.client !== null) st.iommu = { iommu: d.client.iommu.name, ids: d.client.ids };
  return d.facade;
}

/**
 * {@link dmaConfigure} for a bus's `dma_configure` hook, which gets the device object at the
 * start of really_probe rather than a borrow: a bus subclass calls it from its
 * `dmaConfigure(st)` override so every driver on that bus gets DMA set up without asking.
 *
 * **Invariants:** call it only while `st` has a binding in its probing phase (what the hook
 * guarantees).
 *
 * **Errors:** as {@link dmaConfigure}; `EINVAL` if `st` is not a device object or not probing.
 */
export function dmaConfigureDevice(
  system: DmaSystem,
  st: DeviceState,
  options: DmaConfigureOptions = {},
): DeviceDma {
  const where = "dma_configure";
  checkInstance(where, "system", system, DmaSystem);
  checkInstance(where, "st", st, DeviceState);
  checkConfigureOptions(where, options);
  if (st.binding === null || st.binding.phase !== "probing") {
    throw new DevrefError(
      "EINVAL",
      `device '${st.name}' is not being probed: DMA is configured at the start of really_probe`,
    );
  }
  const scope = new DeviceScope(CONTEXT_CORE);
  try {
    // SAFETY: a binding in its probing phase is exactly what a Core borrow stands for; the
    // borrow ends with this call.
    const dev = scope.borrow(st, st.Handle) as unknown as Device<Core>;
    return dmaConfigure(system, dev, options);
  } finally {
    scope.close();
  }
}

/**
 * @internal The device's DMA state; throws when `dmaConfigure` was not called in this
 * binding. `dev` must have been checked to be a device.
 */
export function dmaOf(dev: Device): DmaState {
  const st = deviceStateOf(dev);
  const d = liveDmaState(st);
  if (d !== null) return d;
  throw new DevrefError(
    "EINVAL",
    `device '${st.name}' has no DMA configuration: call dmaConfigure(system, dev) at the start ` +
      "of probe (the kernel's really_probe does it through bus->dma_configure)",
  );
}

/**
 * The DMA state of a configured device (for audits and tests), or null.
 *
 * **Errors:** `EINVAL` for a non-device; `ENODEV` for a revoked handle.
 */
export function dmaStateOf(dev: Device): DeviceDma | null {
  return liveDmaState(deviceStateOf(checkDevice("dmaStateOf", dev)))?.facade ?? null;
}

// ---------------------------------------------------------------------------------------
// Masks (§1.3).

/** @internal The inclusive limit of a mask of `bits` address bits. */
export function maskLimit(bits: number): number {
  return bits >= 53 ? Number.MAX_SAFE_INTEGER : 2 ** bits - 1;
}

/** The checks of a mask change (`dma_set_mask`): before the device's masks change. */
function maskChange(d: DmaState, bits: number, what: string): void {
  if (d.liveCount > 0) {
    throw new DevrefError(
      "EBUSY",
      `${what}(${d.device}): the device already has ${d.liveCount} live DMA mapping(s) or ` +
        "allocation(s); set masks in probe before any mapping or allocation",
    );
  }
  // dma_supported: the IOMMU path takes any mask; dma-direct needs the lowest zone reachable.
  if (d.name === "dma-direct" && dmaBitMask(bits) < d.system.minDirectMask) {
    throw new DevrefError(
      "EIO",
      `${what}(${d.device}, ${bits}): dma-direct cannot serve a ${bits}-bit mask: it must reach ` +
        `${formatAddr(d.system.minDirectMask, 1)} (the lowest DMA zone); use a wider mask or an IOMMU`,
    );
  }
}

function checkMaskChange(dev: Device<Core>, bits: number, what: string): void {
  dmaOf(checkDevice(what, dev));
  checkInteger(what, "bits", bits, 1, 64);
}

/**
 * `dma_set_mask`: the streaming mask, as address bits (64 means every address a `number`
 * holds, up to 2^53 − 1). Only from probe (a Core borrow) and only before the device has
 * any mapping or allocation — the Rust crate marks this `unsafe`; here misuse is an error.
 *
 * **Errors:** `EINVAL` for bits outside 1 … 64, a non-device or an unconfigured device;
 * `EBUSY` with live mappings or allocations; `EIO` if dma-direct cannot serve the mask
 * (`dma_supported`).
 */
export function dmaSetMask(dev: Device<Core>, bits: number): void {
  checkMaskChange(dev, bits, "dma_set_mask");
  dev.setDmaMask(bits);
}

/** `dma_set_coherent_mask`. Errors as {@link dmaSetMask}. */
export function dmaSetCoherentMask(dev: Device<Core>, bits: number): void {
  checkMaskChange(dev, bits, "dma_set_coherent_mask");
  dev.setCoherentDmaMask(bits);
}

/** `dma_set_mask_and_coherent`. Errors as {@link dmaSetMask}; nothing changes on error. */
export function dmaSetMaskAndCoherent(dev: Device<Core>, bits: number): void {
  checkMaskChange(dev, bits, "dma_set_mask_and_coherent");
  dev.setDmaMaskAndCoherent(bits);
}

/**
 * `dma_get_mask`: the streaming mask's inclusive limit (32-bit when unset).
 *
 * **Errors:** `EINVAL` for a non-device; `ENODEV` for a revoked handle.
 */
export function dmaGetMask(dev: Device): number {
  return maskLimit(deviceStateOf(checkDevice("dma_get_mask", dev)).dmaMaskBits ?? 32);
}

// ---------------------------------------------------------------------------------------
// Audit and end of binding.

function entryOf(e: MapEntry): DmaAuditEntry {
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

/**
 * What `dev` holds through the DMA API right now (dma-debug's view): streaming mappings,
 * coherent buffers, bounce slots and IOVA bytes. An unconfigured device holds nothing.
 *
 * **Errors:** `EINVAL` for a non-device; `ENODEV` for a revoked handle.
 */
export function dmaDeviceAudit(dev: Device): DmaDeviceAudit {
  const st = deviceStateOf(checkDevice("dmaDeviceAudit", dev));
  return auditOf(st, liveDmaState(st));
}

function auditOf(st: DeviceState, d: DmaState | null): DmaDeviceAudit {
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
    if (e.via === VIA_BOUNCE)
      bounceSlots += Math.ceil(((e.addr % IO_TLB_SIZE) + e.size) / IO_TLB_SIZE);
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

/**
 * @internal Releases a coherent region: the IOMMU mapping first, then the memory. If the
 * unmap fails, nothing changes (the region stays listed, its memory allocated, and the end
 * of the binding tries again) and the error is rethrown.
 */
export function coherentRelease(d: DmaState, c: CoherentRegion): void {
  if (!d.coherent.has(c)) return;
  // SAFETY: the IOVA this region was mapped at.
  if (c.domain !== null && !c.domain.freed)
    iommuDmaUnmapRange(c.domain, c.dmaAddr as number as Iova, c.iovaSize);
  d.coherent.delete(c);
  d.liveCount--;
  (c.fromLow ? d.system.lowRam : d.system.highRam).free(c.pa, c.blockSize);
}

/** Runs one teardown step; a failure is logged and the rest of the teardown goes on. */
function step(st: DeviceState, what: string, fn: () => void): void {
  try {
    fn();
  } catch (err) {
    st.log("err", `DMA-API: ${what} failed: ${String(err)}`);
  }
}

/**
 * The end of a binding (a devres action registered by dmaConfigure, so it runs after every
 * resource registered later in probe): tears down the streaming mappings the driver leaked
 * (unless the bus's dma_cleanup step did already) and reports them; frees what coherent
 * memory is left; and releases the device from its IOMMU. Each step runs even if one
 * before it fails; memory still mapped through an IOMMU that refused to unmap it is freed
 * only once the domain that mapped it is gone.
 */
function dmaUnbind(d: DmaState): void {
  if (d.dead) return;
  const st = dmaDeviceState(d);
  d.cleanup();
  const audit = d.endAudit ?? auditOf(st, d);
  for (const c of [...d.coherent])
    step(st, "freeing a coherent buffer", () => coherentRelease(d, c));
  const client = d.client;
  d.dead = true;
  if (client !== null) {
    step(st, "flushing the IOTLB", () => client.group.domain?.cookie?.fq?.flush());
    step(st, "releasing the device from its IOMMU", () => iommuReleaseClient(client));
  }
  // What an IOMMU would not unmap can be freed once its domain (and tables) are gone.
  for (const c of [...d.coherent]) {
    if (c.domain === null || c.domain.freed) {
      d.coherent.delete(c);
      d.liveCount--;
      (c.fromLow ? d.system.lowRam : d.system.highRam).free(c.pa, c.blockSize);
    } else {
      st.log(
        "err",
        `DMA-API: coherent buffer ${formatAddr(c.dmaAddr, 1)}+${c.size} is still mapped and stays allocated`,
      );
    }
  }
  if (st.dmaOps === d.facade) st.dmaOps = null;
  st.iommu = null;
  // A state that still holds something (an IOMMU refused to unmap) stays on the system's
  // list, so that audits count it and freeing its memory still tears its mappings down.
  if (d.liveCount === 0) dmaMemoryUsers(d.system).delete(d);
  const leaked = d.pendingLeaks.slice();
  d.pendingLeaks.length = 0;
  for (const e of d.allEntries()) leaked.push(entryOf(e));
  if (leaked.length > 0) {
    const first = leaked[0]!;
    const report: DmaUnbindReport = { ...audit, leaked, coherentFreed: d.coherentFreedAtUnbind };
    d.system.leakReports.push(report);
    st.log(
      "err",
      `DMA-API: device driver has pending DMA allocations while released from device [count=${leaked.length}]; ` +
        `one of leaked entries details: [device address=${formatAddr(first.dmaAddr, 1)}] [size=${first.size} bytes] ` +
        `[mapped as ${first.kind}] [via ${first.via}] [${first.dir}]: unmap every buffer in remove()`,
    );
  }
}
