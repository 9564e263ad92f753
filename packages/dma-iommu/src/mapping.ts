//! C header: include/linux/dma-mapping.h
//! C source: kernel/dma/mapping.c, kernel/dma/direct.c, kernel/dma/direct.h,
//! drivers/iommu/dma-iommu.c (iommu_dma_map_page, iommu_dma_map_sg)

import type { Device } from "@devref/device-core";
import { DeviceScope, type DeviceState, deviceStateOf, emit } from "@devref/device-core/unsafe";
import {
  type Bound,
  type Core,
  DevrefError,
  type DmaAddr,
  formatAddr,
  type PhysAddr,
} from "@devref/raw-device";
import type { DmaAuditEntry, DmaDeviceAudit, DmaUnbindReport } from "./audit.js";
import {
  DMA_ATTR_KNOWN,
  DMA_ATTR_MMIO,
  DMA_ATTR_NO_WARN,
  DMA_ATTR_SKIP_CPU_SYNC,
  type DmaDirection,
  dmaBitMask,
  dmaDirectionName,
  IO_TLB_SIZE,
  isValidDmaDirection,
} from "./constants.js";
import { dmaInfoToProt, iommuDmaMapRange, iommuDmaUnmapRange } from "./dma-iommu.js";
import { AddrTable } from "./internal/addr-table.js";
import {
  IOMMU_DOMAIN_IDENTITY,
  type IommuClient,
  type IommuDomain,
  iommuMap,
  iommuProbeClient,
  iommuReleaseClient,
  iommuUnmap,
  setClientGoneHook,
} from "./iommu.js";
import type { IovaDevicePolicy } from "./iova.js";
import type { DmaSystem } from "./system.js";

/**
 * `DMA_MAPPING_ERROR`: what a failed map returns. The kernel uses all ones (`~0`), which a
 * `number` cannot hold; -1 is its two's-complement reading and is never a valid address.
 */
// SAFETY: a sentinel outside the range of every real DmaAddr (which are ≥ 0).
export const DMA_MAPPING_ERROR: DmaAddr = -1 as DmaAddr;

/** `dma_get_max_seg_size` without `dma_parms`: 64 KiB. */
export const DMA_DEFAULT_MAX_SEG_SIZE = 65536;

const VIA_DIRECT = 0;
const VIA_BOUNCE = 1;
const VIA_IOMMU = 2;
const VIA_NAMES = ["dma-direct", "swiotlb", "iommu-dma"] as const;
const KIND_SINGLE = 0;
const KIND_SG = 1;

/** One tracked streaming mapping (dma-debug's `struct dma_debug_entry`). Pooled. */
class MapEntry {
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
  sg: ScatterList | null = null;
  next: MapEntry | null = null;
}

/** A coherent buffer's bookkeeping, shared by the device state and the allocation object. */
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

/**
 * The per-device DMA state: which implementation serves the device (dma-direct or
 * iommu-dma), the live mappings and allocations of the current binding, and the last
 * mapping error. Stored in the device's `dmaOps` slot, so `dev.dmaOps.name` says which.
 *
 * **Invariants:** exists from `dmaConfigure` (in probe) to the end of that binding;
 * `liveCount` is the number of tracked streaming mappings plus coherent buffers.
 */
export class DeviceDma {
  readonly system: DmaSystem;
  /** @internal */
  readonly st: DeviceState;
  /** The IOMMU data when the device sits behind one. */
  iommuClient: IommuClient | null;
  /** @internal dma-iommu's IOVA policy for this device (`prefer32` is cleared on a miss). */
  policy: IovaDevicePolicy;
  /** Bounce every dma-direct mapping (`is_swiotlb_force_bounce`). */
  readonly forceBounce: boolean;
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
  private seq = 0;
  private pool: MapEntry | null = null;
  private hot: MapEntry | null = null;
  private limitBits = -1;
  private limitValue = 0;

  constructor(system: DmaSystem, st: DeviceState, forceBounce: boolean) {
    this.system = system;
    this.st = st;
    this.iommuClient = null;
    this.policy = {
      device: st.name,
      prefer32: false,
      busDmaLimit: 0,
      apertureEnd: Number.MAX_SAFE_INTEGER,
    };
    this.forceBounce = forceBounce;
  }

  /** `"iommu-dma"` behind an IOMMU with a DMA domain, else `"dma-direct"`. */
  get name(): string {
    const dom = this.iommuClient?.group.domain ?? null;
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

  /** @internal */
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
   * @internal Finds and unlinks the entry for an unmap (dma-debug's check_unmap).
   *
   * **Errors:** `EINVAL` for an address never mapped, or another size, direction or kind.
   */
  take(addr: number, size: number, dir: number, kind: number, what: string): MapEntry {
    const h = this.hot;
    if (h !== null && h.addr === addr) {
      if (h.size === size && h.dir === dir && h.kind === kind) {
        this.hot = null;
        this.liveCount--;
        return h;
      }
      this.spill();
    }
    const head = this.entries.get(addr);
    let prev: MapEntry | null = null;
    for (let e = head ?? null; e !== null; prev = e, e = e.next) {
      if (e.size !== size || e.dir !== dir || e.kind !== kind) continue;
      if (prev === null) {
        if (e.next === null) this.entries.delete(addr);
        else this.entries.set(addr, e.next);
      } else prev.next = e.next;
      this.liveCount--;
      return e;
    }
    if (head === undefined) {
      throw new DevrefError(
        "EINVAL",
        `DMA-API: ${this.st.name}: device driver tries to ${what} DMA memory it has not allocated ` +
          `[device address=${formatAddr(addr, 1)}] [size=${size} bytes]: pass the address the map call returned`,
      );
    }
    throw new DevrefError(
      "EINVAL",
      `DMA-API: ${this.st.name}: ${what} of ${formatAddr(addr, 1)} does not match its mapping ` +
        `[mapped ${head.size} bytes ${dmaDirectionName(head.dir)}${head.kind === KIND_SG ? " as a scatterlist" : ""}] ` +
        `[${what} ${size} bytes ${dmaDirectionName(dir)}]: pass the size and direction given at map time`,
    );
  }

  /** @internal */
  recycle(e: MapEntry): void {
    e.domain = null;
    e.sg = null;
    e.next = this.pool;
    this.pool = e;
  }

  /** @internal */
  find(addr: number): MapEntry | undefined {
    const h = this.hot;
    if (h !== null && h.addr === addr) this.spill();
    return this.entries.get(addr);
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
}

setClientGoneHook((client) => {
  const d = client.st.dmaOps;
  if (d instanceof DeviceDma && d.iommuClient === client) {
    // The domain is about to be freed with the IOMMU: mappings through it are gone too.
    for (const e of d.allEntries()) {
      if (e.via === VIA_IOMMU) e.domain = null;
    }
    d.iommuLost = true;
    d.iommuClient = null;
    d.st.iommu = null;
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

/** The device's firmware IOMMU reference: device-core's `iommu` slot, else a bus's `iommus`. */
function iommuRefOf(st: DeviceState): FirmwareIommuRef | null {
  if (st.iommu !== null) return st.iommu;
  // Platform devices carry the DT `iommus` list on their state object (bus package).
  const list: unknown = (st as { readonly iommus?: unknown }).iommus;
  if (!Array.isArray(list) || list.length === 0) return null;
  const first: unknown = list[0];
  if (typeof first !== "object" || first === null) return null;
  const ref = first as { readonly iommu?: unknown; readonly ids?: unknown };
  if (typeof ref.iommu !== "string") return null;
  const ids = Array.isArray(ref.ids)
    ? ref.ids.filter((x): x is number => typeof x === "number")
    : [];
  return { iommu: ref.iommu, ids };
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
 * (retried when the IOMMU's driver binds); `ENODEV` on a revoked borrow; whatever the IOMMU
 * driver's `probeDevice`/`domainAllocPaging` throws, other than `ENODEV` (declined: the
 * device then uses dma-direct).
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
  const st = deviceStateOf(dev);
  const cur = st.dmaOps;
  if (cur instanceof DeviceDma && !cur.dead) {
    if (cur.system !== system) {
      throw new DevrefError(
        "EINVAL",
        `device '${st.name}' is already configured for another DMA system`,
      );
    }
    return cur;
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
  if (st.dmaMaskBits === null) st.dmaMaskBits = 32;
  if (st.coherentDmaMaskBits === null) st.coherentDmaMaskBits = 32;
  const d = new DeviceDma(system, st, options.forceBounce ?? system.swiotlbForce);
  if (iommu !== null && ref !== null) {
    const client = iommuProbeClient(iommu, st, ref.ids);
    d.iommuClient = client;
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
    if (d.iommuClient !== null) iommuReleaseClient(d.iommuClient);
    throw e;
  }
  st.dmaOps = d;
  if (d.iommuClient !== null)
    st.iommu = { iommu: d.iommuClient.iommu.name, ids: d.iommuClient.ids };
  return d;
}

/**
 * {@link dmaConfigure} for a bus's `dma_configure` hook, which gets the device object at the
 * start of really_probe rather than a borrow: a bus subclass calls it from its
 * `dmaConfigure(st)` override so every driver on that bus gets DMA set up without asking.
 *
 * **Invariants:** call it only while `st` has a binding in its probing phase (what the hook
 * guarantees).
 *
 * **Errors:** as {@link dmaConfigure}; `EINVAL` if `st` is not probing.
 */
export function dmaConfigureDevice(
  system: DmaSystem,
  st: DeviceState,
  options: DmaConfigureOptions = {},
): DeviceDma {
  if (st.binding === null || st.binding.phase !== "probing") {
    throw new DevrefError(
      "EINVAL",
      `device '${st.name}' is not being probed: DMA is configured at the start of really_probe`,
    );
  }
  const scope = new DeviceScope();
  try {
    // SAFETY: a binding in its probing phase is exactly what a Core borrow stands for; the
    // borrow ends with this call.
    const dev = scope.borrow(st, st.Handle) as unknown as Device<Core>;
    return dmaConfigure(system, dev, options);
  } finally {
    scope.close();
  }
}

/** The device's DMA state; throws when `dmaConfigure` was not called in this binding. */
function dmaOf(dev: Device): DeviceDma {
  const st = deviceStateOf(dev);
  const d = st.dmaOps;
  if (d instanceof DeviceDma && !d.dead) return d;
  throw new DevrefError(
    "EINVAL",
    `device '${st.name}' has no DMA configuration: call dmaConfigure(system, dev) at the start ` +
      "of probe (the kernel's really_probe does it through bus->dma_configure)",
  );
}

/** The DMA state of a configured device (for audits and tests), or null. */
export function dmaStateOf(dev: Device): DeviceDma | null {
  const d = deviceStateOf(dev).dmaOps;
  return d instanceof DeviceDma && !d.dead ? d : null;
}

// ---------------------------------------------------------------------------------------
// Masks (§1.3).

function maskLimit(bits: number): number {
  return bits >= 53 ? Number.MAX_SAFE_INTEGER : 2 ** bits - 1;
}

function checkMaskChange(dev: Device<Core>, bits: number, what: string): DeviceDma {
  const d = dmaOf(dev);
  if (!Number.isInteger(bits) || bits < 1 || bits > 64) {
    throw new DevrefError(
      "EINVAL",
      `${what}(${d.st.name}, ${String(bits)}): give the mask as a number of address bits, 1 … 64`,
    );
  }
  if (d.liveCount > 0) {
    throw new DevrefError(
      "EBUSY",
      `${what}(${d.st.name}): the device already has ${d.liveCount} live DMA mapping(s) or ` +
        "allocation(s); set masks in probe before any mapping or allocation",
    );
  }
  // dma_supported: the IOMMU path takes any mask; dma-direct needs the lowest zone reachable.
  if (d.name === "dma-direct" && dmaBitMask(bits) < d.system.minDirectMask) {
    throw new DevrefError(
      "EIO",
      `${what}(${d.st.name}, ${bits}): dma-direct cannot serve a ${bits}-bit mask: it must reach ` +
        `${formatAddr(d.system.minDirectMask, 1)} (the lowest DMA zone); use a wider mask or an IOMMU`,
    );
  }
  return d;
}

/**
 * `dma_set_mask`: the streaming mask, as address bits (64 means every address a `number`
 * holds, up to 2^53 − 1). Only from probe (a Core borrow) and only before the device has
 * any mapping or allocation — the Rust crate marks this `unsafe`; here misuse is an error.
 *
 * **Errors:** `EINVAL` for bits outside 1 … 64 or an unconfigured device; `EBUSY` with live
 * mappings or allocations; `EIO` if dma-direct cannot serve the mask (`dma_supported`).
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

/** `dma_get_mask`: the streaming mask's inclusive limit (32-bit when unset). */
export function dmaGetMask(dev: Device): number {
  return maskLimit(deviceStateOf(dev).dmaMaskBits ?? 32);
}

// ---------------------------------------------------------------------------------------
// Streaming maps (§4, §5).

function checkArgs(
  d: DeviceDma,
  pa: number,
  size: number,
  dir: number,
  attrs: number,
  what: string,
): void {
  if (!(Number.isSafeInteger(size) && size > 0)) {
    throw new DevrefError(
      "EINVAL",
      `${what}(${d.st.name}): size ${String(size)} must be a whole number ≥ 1`,
    );
  }
  if (!isValidDmaDirection(dir)) {
    throw new DevrefError(
      "EINVAL",
      `${what}(${d.st.name}) with ${dmaDirectionName(dir)}: a mapping needs DMA_TO_DEVICE, ` +
        "DMA_FROM_DEVICE or DMA_BIDIRECTIONAL (the kernel BUG()s here)",
    );
  }
  if (!(Number.isInteger(attrs) && attrs >= 0 && (attrs & ~DMA_ATTR_KNOWN) === 0)) {
    throw new DevrefError(
      "EINVAL",
      `${what}(${d.st.name}): unknown DMA attributes ${String(attrs)}`,
    );
  }
  if (!(Number.isSafeInteger(pa) && pa >= 0 && pa + size <= d.system.memory.size)) {
    throw new DevrefError(
      "EFAULT",
      `${what}(${d.st.name}): buffer ${formatAddr(pa, 1)}+${size} is outside physical memory`,
    );
  }
}

function mapError(d: DeviceDma, err: DevrefError, attrs: number): DmaAddr {
  d.lastError = err;
  if ((attrs & DMA_ATTR_NO_WARN) === 0) emit("warn", d.st.name, d.st.driverString(), err.message);
  return DMA_MAPPING_ERROR;
}

/** dma_direct_map_phys: direct if the device can reach the buffer, else bounce. */
function directMap(
  d: DeviceDma,
  pa: number,
  size: number,
  dir: number,
  attrs: number,
  kind: number,
): number {
  const limit = d.streamingLimit();
  if (!d.forceBounce && pa + size - 1 <= limit) {
    d.track(pa, size, dir, VIA_DIRECT, kind, pa);
    return pa;
  }
  if ((attrs & DMA_ATTR_MMIO) !== 0) {
    return mapError(
      d,
      new DevrefError(
        "EIO",
        `DMA addr ${formatAddr(pa, 1)}+${size} overflow (mask ${formatAddr(limit, 1)}, bus limit 0): ` +
          "MMIO is never bounced; widen the mask",
      ),
      attrs,
    );
  }
  const pool = d.system.swiotlb;
  let bounce: number;
  try {
    // SAFETY: pa was checked to be a whole address inside memory.
    bounce = pool.map(pa as PhysAddr, size, dir as DmaDirection, attrs, {
      device: d.st.name,
      dmaMask: limit,
    });
  } catch (e) {
    if (DevrefError.is(e)) return mapError(d, e, attrs);
    throw e;
  }
  if (bounce + size - 1 > limit) {
    // swiotlb_map: the pool itself is out of the device's reach.
    // SAFETY: bounce is the address the pool just returned.
    pool.unmap(bounce as PhysAddr, size, dir as DmaDirection, DMA_ATTR_SKIP_CPU_SYNC);
    return mapError(
      d,
      new DevrefError(
        "EIO",
        `swiotlb addr ${formatAddr(bounce, 1)}+${size} overflow (mask ${formatAddr(limit, 1)}): the ` +
          "bounce pool lies above the device's mask; place the pool lower",
      ),
      attrs,
    );
  }
  d.track(bounce, size, dir, VIA_BOUNCE, kind, pa);
  return bounce;
}

/** iommu_dma_map_page: allocate an IOVA under the mask and map the granules. */
function iommuDmaMap(
  d: DeviceDma,
  domain: IommuDomain,
  pa: number,
  size: number,
  dir: number,
  attrs: number,
  kind: number,
): number {
  const cookie = domain.cookie!;
  const granule = cookie.granule;
  const off = (pa >>> 0) & (granule - 1);
  const len = Math.ceil((off + size) / granule) * granule;
  const limit = d.streamingLimit();
  const iova = cookie.iovad.tryAllocForDevice(len, limit, d.policy);
  if (iova === 0) {
    return mapError(d, iovaExhausted(d, len, limit), attrs);
  }
  try {
    iommuDmaMapRange(domain, iova, pa - off, len, dmaInfoToProt(dir, true, attrs));
  } catch (e) {
    if (DevrefError.is(e)) return mapError(d, e, attrs);
    throw e;
  }
  const e = d.track(iova + off, size, dir, VIA_IOMMU, kind, pa);
  e.iova = iova;
  e.iovaSize = len;
  e.domain = domain;
  return iova + off;
}

function iovaExhausted(d: DeviceDma, len: number, limit: number): DevrefError {
  const s = d.iommuClient!.group.domain!.cookie!.iovad.stats();
  return new DevrefError(
    "ENOMEM",
    `${d.st.name}: no free IOVA range of ${len} bytes below the DMA mask ${formatAddr(limit, 1)} ` +
      `(${s.ranges} range(s) hold ${s.pfns} pfns): unmap finished buffers or widen the mask`,
    { details: { size: len, dmaMask: limit, ranges: s.ranges, pfns: s.pfns } },
  );
}

function noTranslation(d: DeviceDma, attrs: number): DmaAddr {
  const dom = d.iommuClient?.group.domain ?? null;
  return mapError(
    d,
    new DevrefError(
      d.iommuLost ? "ENODEV" : "EIO",
      d.iommuLost
        ? `${d.st.name}: its IOMMU was unregistered; no DMA is possible until it is back and the driver rebinds`
        : `${d.st.name}: its IOMMU group is attached to a ${dom === null ? "missing" : dom.type === 0 ? "BLOCKED" : "driver-managed"} ` +
            "domain; the DMA API works only on the default domain",
    ),
    attrs,
  );
}

/** Dispatches one buffer to dma-direct or iommu-dma; returns the address or -1. */
function mapOne(
  d: DeviceDma,
  pa: number,
  size: number,
  dir: number,
  attrs: number,
  kind: number,
): number {
  const client = d.iommuClient;
  if (client === null) {
    if (d.iommuLost) return noTranslation(d, attrs);
    return directMap(d, pa, size, dir, attrs, kind);
  }
  const domain = client.group.domain;
  if (domain !== null && domain.cookie !== null && !domain.freed) {
    return iommuDmaMap(d, domain, pa, size, dir, attrs, kind);
  }
  if (domain !== null && domain.type === IOMMU_DOMAIN_IDENTITY) {
    return directMap(d, pa, size, dir, attrs, kind);
  }
  return noTranslation(d, attrs);
}

/**
 * `dma_map_single` / `dma_map_page_attrs`: hands `size` bytes at `pa` to the device and
 * returns the address the device must use: the buffer itself (dma-direct, within the
 * mask), a swiotlb bounce slot (above the mask; the data is copied in now), or an IOVA
 * (behind an IOMMU). From now until unmap or `dmaSyncSingleForCpu`, the device owns it.
 *
 * Failures the kernel reports by value come back as {@link DMA_MAPPING_ERROR}; check with
 * {@link dmaMappingError}, and read the reason (device, mask, pool or IOVA state) from
 * {@link dmaLastError}. A warning is logged unless `DMA_ATTR_NO_WARN`.
 *
 * **Errors (thrown, as the kernel's BUG/WARN cases):** `EINVAL` for a bad size, direction
 * (`DMA_NONE` included) or attributes, or a device not configured; `EFAULT` for a buffer
 * outside memory; `ENODEV` on a revoked borrow.
 *
 * @example
 * ```ts
 * const addr = dmaMapSingle(dev, buf, 1500, DMA_TO_DEVICE);
 * if (dmaMappingError(dev, addr)) throw dmaLastError(dev)!;
 * // … the device reads …
 * dmaUnmapSingle(dev, addr, 1500, DMA_TO_DEVICE);
 * ```
 */
export function dmaMapSingle(
  dev: Device<Bound>,
  pa: PhysAddr,
  size: number,
  dir: DmaDirection,
  attrs = 0,
): DmaAddr {
  const d = dmaOf(dev);
  checkArgs(d, pa, size, dir, attrs, "dma_map_single");
  // SAFETY: a mapped address is a whole number ≥ 0 below 2^53, or the -1 sentinel.
  return mapOne(d, pa, size, dir, attrs, KIND_SINGLE) as DmaAddr;
}

/** `dma_mapping_error`: whether `addr` is {@link DMA_MAPPING_ERROR}. */
export function dmaMappingError(_dev: Device, addr: DmaAddr): boolean {
  return addr === DMA_MAPPING_ERROR;
}

/** Why the device's last mapping failed (the message names the device, mask and pool state). */
export function dmaLastError(dev: Device): DevrefError | null {
  return dmaOf(dev).lastError;
}

function unmapEntry(d: DeviceDma, e: MapEntry, attrs: number): void {
  if (e.via === VIA_BOUNCE) {
    // SAFETY: the bounce address and parameters were recorded at map time.
    d.system.swiotlb.unmap(e.addr as PhysAddr, e.size, e.dir as DmaDirection, attrs);
  } else if (e.via === VIA_IOMMU && e.domain !== null && !e.domain.freed) {
    iommuDmaUnmapRange(e.domain, e.iova, e.iovaSize);
  }
}

/**
 * `dma_unmap_single`: gives the buffer back to the CPU. A bounced `DMA_FROM_DEVICE` or
 * `DMA_BIDIRECTIONAL` mapping is copied back to the buffer first (unless
 * `DMA_ATTR_SKIP_CPU_SYNC`); an IOMMU mapping is unmapped and its IOVA freed (strict) or
 * queued (flush queue).
 *
 * **Errors:** `EINVAL` (dma-debug's checks) for an address this device did not map, or a
 * size or direction other than the map call's; nothing changes then.
 */
export function dmaUnmapSingle(
  dev: Device<Bound>,
  addr: DmaAddr,
  size: number,
  dir: DmaDirection,
  attrs = 0,
): void {
  const d = dmaOf(dev);
  const e = d.take(addr, size, dir, KIND_SINGLE, "unmap");
  try {
    unmapEntry(d, e, attrs);
  } finally {
    d.recycle(e);
  }
}

function checkSync(
  d: DeviceDma,
  addr: number,
  size: number,
  dir: number,
  what: string,
): MapEntry | null {
  if (!isValidDmaDirection(dir)) {
    throw new DevrefError(
      "EINVAL",
      `${what}(${d.st.name}) with ${dmaDirectionName(dir)}: use the mapping's direction`,
    );
  }
  const e = d.find(addr) ?? null;
  if (e !== null && e.dir !== dir) {
    throw new DevrefError(
      "EINVAL",
      `DMA-API: ${d.st.name}: ${what} of ${formatAddr(addr, 1)} with ${dmaDirectionName(dir)}, but it was mapped ` +
        `${dmaDirectionName(e.dir)}: pass the mapping's direction`,
    );
  }
  if (!(Number.isSafeInteger(size) && size > 0)) {
    throw new DevrefError(
      "EINVAL",
      `${what}(${d.st.name}): size ${String(size)} must be a whole number ≥ 1`,
    );
  }
  return e;
}

function usesBounce(d: DeviceDma, addr: number): boolean {
  // dma-direct's is_swiotlb_buffer; iommu-dma bounces nothing here (no untrusted devices).
  return d.name === "dma-direct" && d.system.swiotlb.isBounceAddress(addr);
}

/**
 * `dma_sync_single_for_cpu`: the CPU takes the buffer back while it stays mapped. A bounced
 * `DMA_FROM_DEVICE`/`DMA_BIDIRECTIONAL` mapping is copied back to the buffer now.
 *
 * **Errors:** `EINVAL` for a direction other than the mapping's, or an invalid one.
 */
export function dmaSyncSingleForCpu(
  dev: Device<Bound>,
  addr: DmaAddr,
  size: number,
  dir: DmaDirection,
): void {
  const d = dmaOf(dev);
  checkSync(d, addr, size, dir, "dma_sync_single_for_cpu");
  // SAFETY: for dma-direct the DMA address of a bounce slot is its physical address.
  if (usesBounce(d, addr)) d.system.swiotlb.syncForCpu(addr as number as PhysAddr, size, dir);
}

/**
 * `dma_sync_single_for_device`: gives the buffer back to the device. A bounced mapping is
 * refreshed from the buffer (`DMA_TO_DEVICE`/`DMA_BIDIRECTIONAL`).
 *
 * **Errors:** as {@link dmaSyncSingleForCpu}.
 */
export function dmaSyncSingleForDevice(
  dev: Device<Bound>,
  addr: DmaAddr,
  size: number,
  dir: DmaDirection,
): void {
  const d = dmaOf(dev);
  checkSync(d, addr, size, dir, "dma_sync_single_for_device");
  // SAFETY: as in dmaSyncSingleForCpu.
  if (usesBounce(d, addr)) d.system.swiotlb.syncForDevice(addr as number as PhysAddr, size, dir);
}

// ---------------------------------------------------------------------------------------
// Scatter-gather.

/** One CPU-side segment of a {@link ScatterList}. */
export interface ScatterSegment {
  readonly pa: PhysAddr;
  readonly length: number;
}

/**
 * A scatterlist (`struct sg_table`): CPU segments, and after mapping the DMA segments the
 * device must use (`sg_dma_address`/`sg_dma_len`); behind an IOMMU these may be fewer,
 * because adjacent segments merge.
 *
 * **Invariants:** `nents` ≤ `origNents`; `nents` is 0 while unmapped.
 */
export class ScatterList {
  readonly origNents: number;
  /** CPU physical address of each segment. */
  readonly phys: Float64Array;
  readonly length: Float64Array;
  /** DMA address and length of each mapped DMA segment (first `nents` entries). */
  readonly dmaAddress: Float64Array;
  readonly dmaLength: Float64Array;
  /** DMA segments after mapping (`sgt->nents`). */
  nents = 0;
  /** @internal How the list was mapped: 0 direct (one entry per segment), 2 iommu (one entry). */
  mappedVia = -1;

  /** **Errors:** `EINVAL` for an empty list or a segment with a bad address or length. */
  constructor(segments: readonly ScatterSegment[]) {
    if (segments.length === 0)
      throw new DevrefError("EINVAL", "a scatterlist needs at least one segment");
    const n = segments.length;
    this.origNents = n;
    this.phys = new Float64Array(n);
    this.length = new Float64Array(n);
    this.dmaAddress = new Float64Array(n);
    this.dmaLength = new Float64Array(n);
    for (let i = 0; i < n; i++) {
      const s = segments[i]!;
      if (
        !(Number.isSafeInteger(s.pa) && s.pa >= 0 && Number.isSafeInteger(s.length) && s.length > 0)
      ) {
        throw new DevrefError(
          "EINVAL",
          `scatterlist segment ${i} needs a whole address and a length ≥ 1`,
        );
      }
      this.phys[i] = s.pa;
      this.length[i] = s.length;
    }
  }
}

/**
 * `dma_map_sg`: maps every segment; returns the number of DMA segments, **0 on error** (with
 * the reason in {@link dmaLastError}). dma-direct maps one to one (each segment may bounce
 * on its own); iommu-dma lays all segments out in one IOVA range and merges segments that
 * meet on a granule boundary (up to 64 KiB, `dma_get_max_seg_size`).
 *
 * **Errors:** as {@link dmaMapSingle}; `EBUSY` if the list is already mapped.
 */
export function dmaMapSg(
  dev: Device<Bound>,
  sg: ScatterList,
  dir: DmaDirection,
  attrs = 0,
): number {
  const d = dmaOf(dev);
  if (sg.nents !== 0) {
    throw new DevrefError(
      "EBUSY",
      `dma_map_sg(${d.st.name}): the scatterlist is already mapped; unmap it first`,
    );
  }
  const n = sg.origNents;
  for (let i = 0; i < n; i++) checkArgs(d, sg.phys[i]!, sg.length[i]!, dir, attrs, "dma_map_sg");
  const domain = d.iommuClient?.group.domain ?? null;
  if (domain !== null && domain.cookie !== null && !domain.freed)
    return iommuMapSg(d, domain, sg, dir, attrs);
  for (let i = 0; i < n; i++) {
    const addr = mapOne(d, sg.phys[i]!, sg.length[i]!, dir, attrs, KIND_SG);
    if (addr === DMA_MAPPING_ERROR) {
      for (let j = i - 1; j >= 0; j--) {
        unmapEntry(
          d,
          d.take(sg.dmaAddress[j]!, sg.length[j]!, dir, KIND_SG, "unmap"),
          DMA_ATTR_SKIP_CPU_SYNC,
        );
      }
      return 0;
    }
    sg.dmaAddress[i] = addr;
    sg.dmaLength[i] = sg.length[i]!;
  }
  sg.mappedVia = VIA_DIRECT;
  sg.nents = n;
  return n;
}

function iommuMapSg(
  d: DeviceDma,
  domain: IommuDomain,
  sg: ScatterList,
  dir: number,
  attrs: number,
): number {
  const cookie = domain.cookie!;
  const granule = cookie.granule;
  const n = sg.origNents;
  let total = 0;
  for (let i = 0; i < n; i++) {
    const off = sg.phys[i]! % granule;
    total += Math.ceil((off + sg.length[i]!) / granule) * granule;
  }
  const limit = d.streamingLimit();
  const iova = cookie.iovad.tryAllocForDevice(total, limit, d.policy);
  if (iova === 0) {
    mapError(d, iovaExhausted(d, total, limit), attrs);
    return 0;
  }
  const prot = dmaInfoToProt(dir, true, attrs);
  let pos = 0;
  try {
    for (let i = 0; i < n; i++) {
      const pa = sg.phys[i]!;
      const off = pa % granule;
      const len = Math.ceil((off + sg.length[i]!) / granule) * granule;
      iommuMap(domain, iova + pos, pa - off, len, prot);
      pos += len;
    }
  } catch (e) {
    if (pos > 0) iommuUnmap(domain, iova, pos);
    cookie.iovad.freeIovaFast(iova / granule, total / granule);
    if (DevrefError.is(e)) {
      mapError(d, e, attrs);
      return 0;
    }
    throw e;
  }
  // __finalise_sg: merge a segment into the previous DMA segment when they meet exactly on a
  // granule boundary and the result stays within the maximum segment size.
  let out = -1;
  pos = 0;
  let prevEndsAligned = false;
  for (let i = 0; i < n; i++) {
    const pa = sg.phys[i]!;
    const length = sg.length[i]!;
    const off = pa % granule;
    const len = Math.ceil((off + length) / granule) * granule;
    if (
      out >= 0 &&
      prevEndsAligned &&
      off === 0 &&
      sg.dmaLength[out]! + length <= DMA_DEFAULT_MAX_SEG_SIZE
    ) {
      sg.dmaLength[out] = sg.dmaLength[out]! + length;
    } else {
      out++;
      sg.dmaAddress[out] = iova + pos + off;
      sg.dmaLength[out] = length;
    }
    prevEndsAligned = (off + length) % granule === 0;
    pos += len;
  }
  const e = d.track(sg.dmaAddress[0]!, total, dir, VIA_IOMMU, KIND_SG, sg.phys[0]!);
  e.iova = iova;
  e.iovaSize = total;
  e.domain = domain;
  e.sg = sg;
  sg.mappedVia = VIA_IOMMU;
  sg.nents = out + 1;
  return out + 1;
}

/**
 * `dma_unmap_sg`: unmaps a list mapped by {@link dmaMapSg}; `nents` must be the **original**
 * count (`sg.origNents`), not what the map returned.
 *
 * **Errors:** `EINVAL` for another `nents`, a list that is not mapped, or another direction.
 */
export function dmaUnmapSg(
  dev: Device<Bound>,
  sg: ScatterList,
  nents: number,
  dir: DmaDirection,
  attrs = 0,
): void {
  const d = dmaOf(dev);
  if (nents !== sg.origNents) {
    throw new DevrefError(
      "EINVAL",
      `dma_unmap_sg(${d.st.name}) with nents ${String(nents)}: pass the original count ${sg.origNents}, not the mapped one`,
    );
  }
  if (sg.nents === 0)
    throw new DevrefError("EINVAL", `dma_unmap_sg(${d.st.name}): the scatterlist is not mapped`);
  if (sg.mappedVia === VIA_IOMMU) {
    let total = 0;
    const head = d.find(sg.dmaAddress[0]!);
    for (let e = head ?? null; e !== null; e = e.next) if (e.sg === sg) total = e.size;
    const e = d.take(sg.dmaAddress[0]!, total, dir, KIND_SG, "unmap_sg");
    try {
      unmapEntry(d, e, attrs);
    } finally {
      d.recycle(e);
    }
  } else {
    // Check every segment before changing anything.
    for (let i = 0; i < sg.nents; i++) {
      const head = d.find(sg.dmaAddress[i]!);
      if (head === undefined || head.dir !== dir)
        d.take(sg.dmaAddress[i]!, sg.length[i]!, dir, KIND_SG, "unmap_sg");
    }
    for (let i = 0; i < sg.nents; i++) {
      const e = d.take(sg.dmaAddress[i]!, sg.length[i]!, dir, KIND_SG, "unmap_sg");
      unmapEntry(d, e, attrs);
      d.recycle(e);
    }
  }
  sg.nents = 0;
  sg.mappedVia = -1;
}

/** `dma_sync_sg_for_cpu` (pass the original `nents`). Errors as {@link dmaUnmapSg}. */
export function dmaSyncSgForCpu(
  dev: Device<Bound>,
  sg: ScatterList,
  nents: number,
  dir: DmaDirection,
): void {
  syncSg(dev, sg, nents, dir, true);
}

/** `dma_sync_sg_for_device` (pass the original `nents`). Errors as {@link dmaUnmapSg}. */
export function dmaSyncSgForDevice(
  dev: Device<Bound>,
  sg: ScatterList,
  nents: number,
  dir: DmaDirection,
): void {
  syncSg(dev, sg, nents, dir, false);
}

function syncSg(
  dev: Device<Bound>,
  sg: ScatterList,
  nents: number,
  dir: DmaDirection,
  forCpu: boolean,
): void {
  const d = dmaOf(dev);
  if (nents !== sg.origNents || sg.nents === 0) {
    throw new DevrefError(
      "EINVAL",
      `dma_sync_sg(${d.st.name}): pass a mapped list and its original nents ${sg.origNents}`,
    );
  }
  if (sg.mappedVia !== VIA_DIRECT) return;
  for (let i = 0; i < sg.nents; i++) {
    const addr = sg.dmaAddress[i]!;
    checkSync(
      d,
      addr,
      sg.length[i]!,
      dir,
      forCpu ? "dma_sync_sg_for_cpu" : "dma_sync_sg_for_device",
    );
    if (!usesBounce(d, addr)) continue;
    // SAFETY: dma-direct bounce addresses are physical addresses in the pool.
    if (forCpu) d.system.swiotlb.syncForCpu(addr as PhysAddr, sg.length[i]!, dir);
    else d.system.swiotlb.syncForDevice(addr as PhysAddr, sg.length[i]!, dir);
  }
}

// ---------------------------------------------------------------------------------------
// Audit and end of binding.

function entryOf(e: MapEntry): DmaAuditEntry {
  return {
    kind: e.kind === KIND_SG ? "sg" : "single",
    dmaAddr: e.addr,
    size: e.size,
    dir: dmaDirectionName(e.dir),
    via: VIA_NAMES[e.via]!,
    phys: e.phys,
  };
}

/**
 * What `dev` holds through the DMA API right now (dma-debug's view): streaming mappings,
 * coherent buffers, bounce slots and IOVA bytes. An unconfigured device holds nothing.
 */
export function dmaDeviceAudit(dev: Device): DmaDeviceAudit {
  const st = deviceStateOf(dev);
  const d = st.dmaOps instanceof DeviceDma && !st.dmaOps.dead ? st.dmaOps : null;
  return auditOf(st, d);
}

function auditOf(st: DeviceState, d: DeviceDma | null): DmaDeviceAudit {
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
    if (e.via === VIA_IOMMU) iovaBytes += e.iovaSize;
  }
  for (const c of d.coherent) iovaBytes += c.iovaSize;
  return {
    device: st.name,
    driver: st.binding?.driver ?? null,
    ops: d.name,
    entries: entries.map(({ seq: _seq, ...rest }) => rest),
    bounceSlots,
    iovaBytes,
  };
}

/** @internal Releases a coherent region's resources (IOVA mapping, then memory). */
export function coherentRelease(d: DeviceDma, c: CoherentRegion): void {
  if (!d.coherent.delete(c)) return;
  d.liveCount--;
  if (c.domain !== null && !c.domain.freed) iommuDmaUnmapRange(c.domain, c.dmaAddr, c.iovaSize);
  (c.fromLow ? d.system.lowRam : d.system.highRam).free(c.pa, c.blockSize);
}

/**
 * The end of a binding (a devres action registered by dmaConfigure, so it runs after every
 * resource registered later in probe): reports streaming mappings the driver leaked, then
 * unmaps them without copying back — the driver is gone — so no bounce slot or IOVA stays
 * behind; frees what coherent memory is left; and releases the device from its IOMMU.
 */
function dmaUnbind(d: DeviceDma): void {
  if (d.dead) return;
  const st = d.st;
  const audit = auditOf(st, d);
  const leaked = audit.entries.filter((e) => e.kind !== "coherent");
  for (const e of d.allEntries()) {
    d.take(e.addr, e.size, e.dir, e.kind, "unmap");
    try {
      unmapEntry(d, e, DMA_ATTR_SKIP_CPU_SYNC);
    } catch (err) {
      emit(
        "err",
        st.name,
        st.driverString(),
        `DMA-API: tearing down a leaked mapping failed: ${String(err)}`,
      );
    }
    d.recycle(e);
  }
  for (const c of [...d.coherent]) coherentRelease(d, c);
  const client = d.iommuClient;
  d.dead = true;
  if (client !== null) {
    client.group.domain?.cookie?.fq?.flush();
    iommuReleaseClient(client);
  }
  if (st.dmaOps === d) st.dmaOps = null;
  st.iommu = null;
  if (leaked.length > 0) {
    const first = leaked[0]!;
    const report: DmaUnbindReport = { ...audit, leaked, coherentFreed: d.coherentFreedAtUnbind };
    d.system.leakReports.push(report);
    emit(
      "err",
      st.name,
      st.driverString(),
      `DMA-API: device driver has pending DMA allocations while released from device [count=${leaked.length}]; ` +
        `one of leaked entries details: [device address=${formatAddr(first.dmaAddr, 1)}] [size=${first.size} bytes] ` +
        `[mapped as ${first.kind}] [via ${first.via}] [${first.dir}]: unmap every buffer in remove()`,
    );
  }
}
