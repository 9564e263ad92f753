//! C header: include/linux/dma-mapping.h (dma_alloc_attrs, dmam_alloc_coherent)
//! Rust: rust/kernel/dma.rs (CoherentAllocation)

import { type Device, Devres, type U64 } from "@devref/device-core";
import {
  type Bound,
  checkInstance,
  checkInteger,
  checkSize,
  DevrefError,
  type DmaAddr,
  describeValue,
  formatAddr,
  type Iova,
  type PhysAddr,
  type PhysicalMemory,
} from "@devref/raw-device";
import { DMA_BIDIRECTIONAL } from "./constants.js";
import { CoherentRegion } from "./debug.js";
import { iommuDmaMapRange, protOf } from "./dma-iommu.js";
import { coherentRelease, type DmaState, dmaOfArgument } from "./dma-state.js";
import { maskOf } from "./internal/mask.js";
import { IOMMU_DOMAIN_IDENTITY } from "./iommu.js";
import { iovaAllocForDevice } from "./iova.js";
import { ramBlockOf } from "./ram.js";
import { dmaSystemInternals } from "./system.js";

/** The largest coherent allocation: 1 GiB. */
const MAX_COHERENT = 2 ** 30;
/** The largest value of a 32-bit word. */
const U32_MAX = 0xffff_ffff;

/**
 * A coherent DMA buffer (`dma_alloc_coherent`, managed like `dmam_alloc_coherent`): memory
 * both CPU and device see without sync calls, with typed CPU access.
 *
 * It is tied to the binding that allocated it: at unbind it is freed (and its IOMMU mapping
 * removed) by devres, and every later access throws `ENODEV` instead of touching memory
 * that may belong to someone else — the gap the Rust `CoherentAllocation` still has.
 *
 * **Invariants:** `dmaAddr` and the CPU memory are aligned to the page order of `size`;
 * behind an IOMMU the memory is a whole number of the domain's granules, granule-aligned,
 * and the mapping covers exactly that memory; the memory is zeroed at allocation; after
 * {@link free} or unbind no access succeeds.
 *
 * **Errors:** `ENODEV` on any access after free or unbind; `EINVAL` for an offset outside
 * the buffer, a value that does not fit the access width, or a byte array that is not a
 * `Uint8Array`; {@link free} rethrows an IOMMU driver's unmap failure (the memory then stays
 * allocated until the binding ends and the unmap succeeds).
 *
 * @example
 * ```ts
 * const ring = dmaAllocCoherent(dev, 4096);
 * ring.write32(0, 0x1234);
 * device.startDma(ring.dmaAddr);
 * ```
 */
export class CoherentAllocation {
  /** The address the device uses. */
  readonly dmaAddr: DmaAddr;
  /** Bytes requested. */
  readonly size: number;
  /** The device's name. */
  readonly device: string;
  private readonly res: Devres<CoherentRegion>;
  private readonly mem: PhysicalMemory;
  private freedExplicitly = false;

  /** @internal Use {@link dmaAllocCoherent}. */
  constructor(dev: Device<Bound>, d: DmaState, region: CoherentRegion) {
    this.dmaAddr = region.dmaAddr;
    this.size = region.size;
    this.device = d.device;
    this.mem = d.system.memory;
    this.res = new Devres(dev, region, {
      label: `dma coherent ${formatAddr(region.dmaAddr, 1)}+${region.size}`,
      release: (r) => {
        if (!this.freedExplicitly) d.coherentFreedAtUnbind++;
        coherentRelease(d, r);
      },
    });
  }

  /** Whether the buffer can still be used (not freed, binding not ended). */
  get isAvailable(): boolean {
    return this.res.isAvailable;
  }

  #region(offset: number, width: number): CoherentRegion {
    checkInteger("CoherentAllocation", "offset", offset, 0, this.size);
    const r = this.res.tryAccess();
    if (r === undefined) {
      throw new DevrefError(
        "ENODEV",
        `coherent buffer ${formatAddr(this.dmaAddr, 1)}+${this.size} of '${this.device}' was freed ` +
          "(its driver unbound, or free() was called): it can no longer be used; allocate a new one in the new binding",
      );
    }
    if (!(Number.isInteger(offset) && offset >= 0 && offset + width <= this.size)) {
      throw new DevrefError(
        "EINVAL",
        `offset ${describeValue(offset)} (+${width}) is outside the ${this.size}-byte coherent buffer`,
      );
    }
    return r;
  }

  /** The physical address of the CPU side (for tests that play the device). */
  get phys(): PhysAddr {
    return this.#region(0, 0).pa;
  }
  read8(offset: number): number {
    return this.mem.read8(this.#region(offset, 1).pa + offset);
  }
  write8(offset: number, value: number): void {
    checkInteger("CoherentAllocation.write8", "value", value, 0, 0xff);
    this.mem.write8(this.#region(offset, 1).pa + offset, value);
  }
  read32(offset: number): number {
    return this.mem.read32(this.#region(offset, 4).pa + offset);
  }
  write32(offset: number, value: number): void {
    checkInteger("CoherentAllocation.write32", "value", value, 0, U32_MAX);
    this.mem.write32(this.#region(offset, 4).pa + offset, value);
  }
  /** The 64-bit word at `offset` as halves (the project's one 64-bit convention). */
  read64(offset: number): U64 {
    const pa = this.#region(offset, 8).pa + offset;
    const mem = this.mem;
    return { lo: mem.read64Lo(pa), hi: mem.read64Hi(pa) };
  }
  write64(offset: number, lo: number, hi: number): void {
    checkInteger("CoherentAllocation.write64", "lo", lo, 0, U32_MAX);
    checkInteger("CoherentAllocation.write64", "hi", hi, 0, U32_MAX);
    this.mem.write64(this.#region(offset, 8).pa + offset, lo, hi);
  }
  readBytes(offset: number, dest: Uint8Array): void {
    checkInstance("CoherentAllocation.readBytes", "dest", dest, Uint8Array);
    this.mem.readBytes(this.#region(offset, dest.length).pa + offset, dest);
  }
  writeBytes(offset: number, src: Uint8Array): void {
    checkInstance("CoherentAllocation.writeBytes", "src", src, Uint8Array);
    this.mem.writeBytes(this.#region(offset, src.length).pa + offset, src);
  }
  /**
   * `dma_handle_with_offset`: the device address of byte `offset`.
   *
   * **Errors:** `EINVAL` out of bounds; `ENODEV` after free.
   */
  dmaHandleWithOffset(offset: number): DmaAddr {
    this.#region(offset, 1);
    // SAFETY: inside the buffer, whose device address range is valid.
    return (this.dmaAddr + offset) as DmaAddr;
  }
  /**
   * `dma_free_coherent`: frees now; later accesses throw. A second call does nothing. The
   * IOMMU mapping goes before the memory: if the IOMMU driver fails to unmap, its error is
   * rethrown and the memory stays allocated (and listed in the device's audit) until the
   * end of the binding retries.
   */
  free(): void {
    if (!this.res.isAvailable) return;
    this.freedExplicitly = true;
    this.res.revoke();
  }
}

/**
 * `dma_alloc_coherent` (devres-managed): `size` zeroed bytes the device can reach under its
 * **coherent** mask. dma-direct takes RAM above 4 GiB if the mask allows, else retries below
 * 4 GiB (the kernel's `GFP_DMA32` retry) and never bounces; behind an IOMMU the memory is
 * mapped at an IOVA under the coherent mask.
 *
 * Needs a Bound borrow: only a bound driver (probe, or code it calls while bound) allocates.
 *
 * **Errors:** `ENOMEM` when no memory (or IOVA) fits under the mask — the message says which;
 * `EINVAL` for a bad size or an unconfigured device; `ENODEV` on a revoked borrow.
 *
 * @example
 * ```ts
 * probe(dev) {
 *   dmaConfigure(system, dev);
 *   const ring = dmaAllocCoherent(dev, 16 * 1024);
 *   return { ring }; // freed and revoked when the driver unbinds
 * }
 * ```
 */
export function dmaAllocCoherent(dev: Device<Bound>, size: number): CoherentAllocation {
  const where = "dma_alloc_coherent";
  const d = dmaOfArgument(where, dev);
  checkSize(where, "size", size, 1, MAX_COHERENT);
  const st = d.st;
  const limit = maskOf(st.coherentDmaMaskBits ?? 32);
  const client = d.client;
  if (client?.gone === true) {
    throw new DevrefError(
      "ENODEV",
      `${where}(${d.device}): its IOMMU was unregistered; no DMA is possible until the driver rebinds`,
    );
  }
  const domain = client === null ? null : client.group.domain;
  const translated = domain !== null && domain.cookie !== null && !domain.freed;
  if (client !== null && !translated && domain?.type !== IOMMU_DOMAIN_IDENTITY) {
    throw new DevrefError(
      "ENODEV",
      `${where}(${d.device}): its IOMMU domain does not allow DMA API use`,
    );
  }
  // Behind an IOMMU the mapping covers whole granules, so the RAM must too (the kernel's
  // iova_align before iommu_dma_alloc_remap): a block of at least a granule, aligned to its
  // size, so the mapping is exactly this allocation's memory and nobody else's.
  const block = translated ? ramBlockOf(Math.max(size, domain.cookie!.granule)) : ramBlockOf(size);
  const ram = dmaSystemInternals(d.system).ram;
  // High RAM first, then lower (the kernel's GFP_DMA32 retry); an IOMMU reaches any of it.
  const pa = ram.alloc(block, block, 0, translated ? Number.MAX_SAFE_INTEGER : limit, "coherent");
  if (pa === null) {
    throw new DevrefError(
      "ENOMEM",
      `${where}(${d.device}, ${size}): no free memory of ${block} bytes under the coherent mask ${formatAddr(limit, 1)}`,
    );
  }
  let dma: number = pa;
  let iovaSize = 0;
  if (translated) {
    const cookie = domain.cookie!;
    // A power of two of at least a granule is a whole number of granules.
    iovaSize = block;
    const iova: Iova = iovaAllocForDevice(cookie.iovad, iovaSize, limit, d.policy);
    if (iova === 0) {
      ram.free(pa);
      throw new DevrefError(
        "ENOMEM",
        `${where}(${d.device}, ${size}): no IOVA space under the coherent mask ${formatAddr(limit, 1)}`,
      );
    }
    try {
      iommuDmaMapRange(domain, iova, pa, iovaSize, protOf(DMA_BIDIRECTIONAL, true, 0));
    } catch (e) {
      ram.free(pa);
      throw e;
    }
    dma = iova;
  }
  // SAFETY: dma is a physical address or an IOVA just allocated, both whole and ≥ 0.
  const addr = dma as DmaAddr;
  const region = new CoherentRegion(
    st,
    pa,
    addr,
    size,
    block,
    translated ? domain : null,
    iovaSize,
    d.nextSeq(),
  );
  d.coherent.add(region);
  d.liveCount++;
  try {
    return new CoherentAllocation(dev, d, region);
  } catch (e) {
    try {
      coherentRelease(d, region);
    } catch {
      // Still mapped: the end of the binding retries; the first error is the one to report.
    }
    throw e;
  }
}
