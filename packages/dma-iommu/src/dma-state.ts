//! C header: include/linux/device.h (the DMA fields of struct device), include/linux/dma-map-ops.h
//! C source: kernel/dma/mapping.c (the per-device state behind the DMA API)
//!
//! One device's DMA state for one binding: what is mapped and allocated, its IOVA policy,
//! and the facade callers see in the device's `dmaOps` slot. Its IOMMU data is not here: it
//! lives in the device's own slot (`st.iommu`, the kernel's `dev->iommu`).

import type { Device } from "@devref/device-core";
import type { DeviceState } from "@devref/device-core/unsafe";
import {
  checkInteger,
  DevrefError,
  formatAddr,
  type Iova,
  type PhysAddr,
} from "@devref/raw-device";
import { type Lifetime, liveObject, objectIfLive } from "@devref/raw-device/unsafe";
import type { DmaAuditEntry, DmaDeviceAudit } from "./audit.js";
import {
  DMA_ATTR_NO_WARN,
  DMA_ATTR_SKIP_CPU_SYNC,
  DMA_MAPPING_ERROR,
  type DmaDirection,
  dmaDirectionName,
} from "./constants.js";
import {
  auditOf,
  bounceSlotsOf,
  type CoherentRegion,
  DmaDebugEntries,
  entryOf,
  heldIova,
  type MapEntry,
  VIA_BOUNCE,
  VIA_IOMMU,
} from "./debug.js";
import { iommuDmaUnmapRange } from "./dma-iommu.js";
import { checkDevice } from "./internal/checks.js";
import { maskOf } from "./internal/mask.js";
import { IommuClient, type IommuDomain } from "./iommu.js";
import type { IovaDevicePolicy } from "./iova.js";
import {
  type DmaMemoryUser,
  type DmaSystem,
  type DmaUserAudit,
  dmaSystemInternals,
} from "./system.js";

/**
 * @internal The per-device DMA state behind a {@link DeviceDma}: the live mappings and
 * allocations of the current binding, and the bookkeeping the map paths use. Never handed
 * out: callers see the {@link DeviceDma} facade.
 *
 * It keeps a counted reference to its device (held as `"dma"`) from `dmaConfigure` until
 * the binding has ended and nothing it tracks is left (an IOMMU that refused an unmap keeps
 * it, and the device, until the mapping is gone).
 *
 * **Invariants:** `liveCount` is the number of tracked streaming mappings plus coherent
 * buffers; the reference is held exactly while the state is on its system's user list.
 */
export class DmaState extends DmaDebugEntries implements DmaMemoryUser {
  readonly system: DmaSystem;
  readonly st: DeviceState;
  /** The size of the system's memory (a `PhysicalMemory`'s size is fixed), kept at hand. */
  readonly memoryEnd: number;
  /** What callers see. */
  readonly facade: DeviceDma;
  /** dma-iommu's IOVA policy for this device (`prefer32` is cleared on a miss). */
  policy: IovaDevicePolicy;
  /** Bounce every dma-direct mapping (`is_swiotlb_force_bounce`). */
  forceBounce: boolean;
  readonly coherent: Set<CoherentRegion> = new Set();
  /** The error behind the last `DMA_MAPPING_ERROR`, with the kernel's message and the fix. */
  lastError: DevrefError | null = null;
  /** Coherent buffers freed by devres at the end of the binding. */
  coherentFreedAtUnbind = 0;
  /** The binding ended: the state only finishes its teardown. */
  dead = false;
  /** Leaked mappings torn down before the final report (binding end, freed memory). */
  readonly pendingLeaks: DmaAuditEntry[] = [];
  /** What the device held when its binding began to end (for the unbind report). */
  endAudit: DmaDeviceAudit | null = null;
  private held: Lifetime | null;
  private limitBits = -1;
  private limitValue = 0;

  constructor(system: DmaSystem, st: DeviceState, forceBounce: boolean) {
    super(st.name);
    this.system = system;
    this.memoryEnd = system.memory.size;
    this.st = st;
    this.policy = {
      device: st.name,
      prefer32: false,
      busDmaLimit: 0,
      apertureEnd: Number.MAX_SAFE_INTEGER,
    };
    this.forceBounce = forceBounce;
    this.facade = new DeviceDma(this);
    this.held = st.hold("dma");
  }

  /** The device's IOMMU data (its `st.iommu` slot) when it sits behind an IOMMU. */
  get client(): IommuClient | null {
    const c = this.st.iommu;
    // Most devices have none: the class test only for a filled slot.
    return c !== null && c instanceof IommuClient ? c : null;
  }

  /** `"iommu-dma"` behind an IOMMU with a DMA domain, else `"dma-direct"`. */
  get name(): string {
    const c = this.client;
    if (c === null || c.gone) return "dma-direct";
    const dom = c.group.domain;
    return dom !== null && dom.cookie !== null ? "iommu-dma" : "dma-direct";
  }

  /** The streaming mask's inclusive limit, cached per mask width. */
  streamingLimit(): number {
    const bits = this.st.dmaMaskBits ?? 32;
    if (bits !== this.limitBits) {
      this.limitBits = bits;
      this.limitValue = maskOf(bits);
    }
    return this.limitValue;
  }

  /**
   * A mapping failed the way the kernel reports by value: records why (for `dmaLastError`),
   * warns unless `DMA_ATTR_NO_WARN`, and returns `DMA_MAPPING_ERROR`.
   */
  mapFailed(err: DevrefError, attrs: number): number {
    this.lastError = err;
    if ((attrs & DMA_ATTR_NO_WARN) === 0) this.st.log("warn", err.message);
    return DMA_MAPPING_ERROR;
  }

  /** See {@link DeviceDma.cleanup}. */
  cleanup(): void {
    if (this.dead) return;
    this.endAudit ??= auditOf(this.st, this);
    if (this.liveCount === this.coherent.size) return;
    for (const e of this.allEntries()) releaseLeaked(this, e, "a leaked mapping");
  }

  /**
   * Once the binding has ended and nothing is left, leaves the system's user list and puts
   * the device reference. Safe to call at any time.
   */
  retire(): void {
    const held = this.held;
    if (!this.dead || this.liveCount !== 0 || held === null) return;
    this.held = null;
    dmaSystemInternals(this.system).users.delete(this);
    this.st.unhold(held);
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
        bounceSlots += bounceSlotsOf(e);
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
      // A mapping that cannot be torn down keeps its memory: throw before it is freed.
      if (!releaseLeaked(this, e, "a mapping of freed memory")) {
        throw new DevrefError(
          "EBUSY",
          `${this.device}: memory [${formatAddr(pa, 1)}+${size}] is still mapped for DMA at ${formatAddr(e.addr, 1)} ` +
            "and the mapping could not be torn down: the memory stays allocated",
        );
      }
    }
    this.retire();
  }
}

// module-state: a privileged-access slot, assigned once by DeviceDma's static block.
let facadeState: (f: DeviceDma) => DmaState;

/**
 * A device's DMA configuration as callers see it (stored in the device's `dmaOps` slot, so
 * `dev.dmaOps.name` says which implementation serves it): dma-direct or iommu-dma, what is
 * live, the last mapping error, and the `dma_cleanup` step for buses. Only `dmaConfigure`
 * creates one; it holds no reference and no method that could change the DMA state behind
 * the API's back. The device's IOMMU data is in its `iommu` slot, not here.
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
    checkMaskBits("dma_set_mask", bits);
    maskChange(this.#s, bits, "dma_set_mask");
  }

  /**
   * The kernel's `dma_cleanup` step of unbinding, for the bus to call after `remove()` (or
   * a failed or aborted probe) and **before** the driver's devres actions run: streaming
   * mappings the driver leaked are torn down now, so that no devres action can free a
   * buffer the device can still reach. They are reported when the binding's DMA state goes
   * (see `DmaSystem.leakReports`). Coherent buffers stay: they are devres resources and go
   * in their own order. Calling it again, or after the binding ended, does nothing.
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

/** @internal The DMA state behind a facade, dead or alive. */
export function stateOfFacade(f: DeviceDma): DmaState {
  return facadeState(f);
}

/** @internal The live DMA state of a device object, or null. */
export function liveDmaState(st: DeviceState): DmaState | null {
  const f = st.dmaOps;
  if (!(f instanceof DeviceDma)) return null;
  const s = facadeState(f);
  return s.dead ? null : s;
}

/**
 * @internal The DMA state of `dev` for the DMA call `where`, with `dev` checked: what every
 * map, unmap and sync starts with. A live handle whose object holds a live DMA state is a
 * device (only device-core's objects have the slot, and only dma-iommu fills it), so the
 * common case makes no class test of the handle; anything else takes {@link checkDevice}
 * and {@link dmaOf} for the error.
 */
export function dmaOfArgument(where: string, dev: unknown): DmaState {
  // SAFETY: read as a device object; another package's object has no dmaOps (undefined).
  const st = objectIfLive(dev) as DeviceState | null;
  if (st !== null) {
    const f = st.dmaOps;
    if (f instanceof DeviceDma) {
      const s = facadeState(f);
      if (!s.dead) return s;
    }
  }
  return dmaOf(checkDevice(where, dev));
}

/** The device's DMA state; throws when it was not configured in this binding. */
function dmaOf(dev: Device): DmaState {
  // A Device handle is made over its DeviceState only (device-core's own accessors read it
  // so), which spares the map and unmap paths a second class test.
  const st = liveObject<DeviceState>(dev);
  const d = liveDmaState(st);
  if (d !== null) return d;
  const b = st.binding;
  if (b === null || b.phase === "ended") {
    throw new DevrefError(
      "ENODEV",
      `device '${st.name}' has no driver bound: its DMA state went with the binding; keep DMA calls inside the binding's callbacks`,
    );
  }
  throw new DevrefError(
    "EINVAL",
    `device '${st.name}' has no DMA configuration: call dmaConfigure(system, dev) at the start ` +
      "of probe, or create the DmaSystem with { machine } so every probe is configured",
  );
}

/** @internal The checks of a mask width (1 … 64 address bits). */
export function checkMaskBits(where: string, bits: unknown): number {
  return checkInteger(where, "bits", bits, 1, 64);
}

/** @internal The checks of a mask change (`dma_set_mask`): before the device's masks change. */
export function maskChange(d: DmaState, bits: number, what: string): void {
  if (d.liveCount > 0) {
    throw new DevrefError(
      "EBUSY",
      `${what}(${d.device}): the device already has ${d.liveCount} live DMA mapping(s) or ` +
        "allocation(s); set masks in probe before any mapping or allocation",
    );
  }
  // dma_supported: the IOMMU path takes any mask; dma-direct needs the lowest zone reachable.
  if (d.name === "dma-direct" && maskOf(bits) < d.system.minDirectMask) {
    throw new DevrefError(
      "EIO",
      `${what}(${d.device}, ${bits}): dma-direct cannot serve a ${bits}-bit mask: it must reach ` +
        `${formatAddr(d.system.minDirectMask, 1)} (the lowest DMA zone); use a wider mask or an IOMMU`,
    );
  }
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
 * @internal Tears a leaked mapping down without copying back (the driver is not looking any
 * more), records it for the unbind report and unlinks it. Returns false, with the mapping
 * still listed, if the IOMMU driver failed.
 */
export function releaseLeaked(d: DmaState, e: MapEntry, what: string): boolean {
  try {
    unmapEntry(d, e, DMA_ATTR_SKIP_CPU_SYNC);
  } catch (err) {
    d.st.log("err", `DMA-API: tearing down ${what} failed: ${String(err)}`);
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
 * driver fails. A mapping whose domain is gone (its IOMMU went away) has nothing to undo.
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

/**
 * @internal Releases a coherent region: the IOMMU mapping first, then the memory, then the
 * region's reference on the device. If the unmap fails, nothing changes (the region stays
 * listed, its memory allocated, and the end of the binding tries again) and the error is
 * rethrown.
 */
export function coherentRelease(d: DmaState, c: CoherentRegion): void {
  if (!d.coherent.has(c)) return;
  if (c.domain !== null && !c.domain.freed)
    // SAFETY: the IOVA this region was mapped at.
    iommuDmaUnmapRange(c.domain, c.dmaAddr as number as Iova, c.iovaSize);
  coherentForget(d, c);
}

/** @internal Drops a region whose mapping is gone: its memory and its device reference. */
export function coherentForget(d: DmaState, c: CoherentRegion): void {
  d.coherent.delete(c);
  d.liveCount--;
  dmaSystemInternals(d.system).ram.free(c.pa);
  c.release();
  d.retire();
}
