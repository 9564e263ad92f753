//! C header: include/linux/iommu.h
//! C source: drivers/iommu/iommu.c (iommu_map, iommu_pgsize, iommu_unmap, the IOTLB gather,
//! iommu_iova_to_phys, report_iommu_fault)

import type { Device } from "@devref/device-core";
import type { IommuIotlbGather, IotlbGather } from "@devref/io-pgtable";
import {
  argumentError,
  checkAddress,
  checkCallback,
  checkInstance,
  checkInteger,
  checkOneOf,
  checkSize,
  DevrefError,
  type DmaAddr,
  ERRNO,
  formatAddr,
  type Iova,
  type PhysAddr,
} from "@devref/raw-device";
import { checkDevice, DMA_ADDR_LIMIT, isWhole } from "./internal/checks.js";
import {
  checkDomain,
  checkGather,
  IOMMU_DOMAIN_IDENTITY,
  IOMMU_FAULT_READ,
  IOMMU_FAULT_WRITE,
  type IommuDomain,
  type IommuDomainOps,
  type IommuFaultHandler,
  installFaultHandler,
  iommuDomainTypeName,
} from "./iommu.js";

/** Every `IOMMU_*` prot bit (READ, WRITE, CACHE, NOEXEC, MMIO, PRIV). */
const PROT_ALL = 63;

// ---------------------------------------------------------------------------------------
// Page-size selection (§7.6).

/**
 * `x % size` for a power-of-two `size`. Addresses above 2^31 are doubles, and `%` on doubles
 * is a slow library call in V8; for sizes that divide 2^32 the low 32 bits decide.
 */
function rem(x: number, size: number): number {
  return size <= 0x4000_0000 ? (x >>> 0) & (size - 1) : x % size;
}

/** @internal `iommu_pgsize` on checked arguments. */
export function pgsizeFor(
  domain: IommuDomain,
  iova: number,
  paddr: number,
  size: number,
  out: Float64Array,
): number {
  if (size === domain.minPagesz && rem(iova, size) === 0 && rem(paddr, size) === 0) {
    // One smallest page (the common streaming case): no other size can fit.
    out[0] = 1;
    return size;
  }
  const sizes = domain.pgsizes;
  let idx = -1;
  for (let i = 0; i < sizes.length; i++) {
    const s = sizes[i]!;
    if (s > size) break;
    if ((iova === 0 && paddr === 0) || (rem(iova, s) === 0 && rem(paddr, s) === 0)) idx = i;
  }
  if (idx < 0) {
    out[0] = 0;
    return 0;
  }
  const pgsize = sizes[idx]!;
  const next = sizes[idx + 1];
  if (next !== undefined) {
    const r = rem(iova, next);
    if (r === rem(paddr, next)) {
      const offset = next - r;
      if (offset + next <= size) size = offset;
    }
  }
  out[0] = Math.floor(size / pgsize);
  return pgsize;
}

/**
 * `iommu_pgsize`: the page size to use for the next run and how many pages of it. Writes
 * the count to `out[0]` and returns the page size; 0 when nothing fits.
 *
 * **Errors:** `EINVAL` for a bad argument (`out` must be a `Float64Array` of at least one
 * element).
 */
export function iommuPgsize(
  domain: IommuDomain,
  iova: Iova,
  paddr: PhysAddr,
  size: number,
  out: Float64Array,
): number {
  const where = "iommu_pgsize";
  checkDomain(where, domain);
  checkAddress(where, "iova", iova, DMA_ADDR_LIMIT);
  checkAddress(where, "paddr", paddr);
  checkSize(where, "size", size, 1, Number.MAX_SAFE_INTEGER);
  if (checkInstance(where, "out", out, Float64Array).length < 1) {
    throw argumentError(where, "out", "a Float64Array of at least one element", out);
  }
  return pgsizeFor(domain, iova, paddr, size, out);
}

const pgCount = new Float64Array(1);

/** @internal The driver's ops of a live paging domain, or `EINVAL`. */
export function checkPaging(domain: IommuDomain, what: string): IommuDomainOps {
  const ops = domain.ops;
  if (ops === null || domain.freed) {
    throw new DevrefError(
      "EINVAL",
      `${what} on a ${domain.freed ? "freed" : iommuDomainTypeName(domain.type)} domain: only paging domains have page tables`,
    );
  }
  return ops;
}

/**
 * @internal The mapping loop of `iommu_map` on checked, aligned arguments. On failure
 * everything this call mapped is unmapped again and the error is rethrown.
 */
export function mapRange(
  domain: IommuDomain,
  ops: IommuDomainOps,
  iova: number,
  paddr: number,
  size: number,
  prot: number,
): void {
  let mapped = 0;
  try {
    while (mapped < size) {
      const pgsize = pgsizeFor(domain, iova + mapped, paddr + mapped, size - mapped, pgCount);
      // SAFETY: both sums stay inside ranges the caller checked as whole addresses.
      const n = ops.mapPages(
        (iova + mapped) as Iova,
        (paddr + mapped) as PhysAddr,
        pgsize,
        pgCount[0]!,
        prot,
      );
      if (!(n > 0)) {
        throw new DevrefError("EIO", `map_pages mapped nothing at ${formatAddr(iova + mapped, 1)}`);
      }
      mapped += n;
    }
    // SAFETY: iova was checked by the caller.
    ops.iotlbSyncMap?.(iova as Iova, size);
  } catch (e) {
    if (mapped > 0) unmapAndSync(domain, iova, mapped);
    throw e;
  }
}

/**
 * `iommu_map`: maps `[iova, iova + size)` to `paddr` with `prot` (`IOMMU_READ` …), choosing
 * the largest page sizes that fit (`iommu_pgsize`), then `iotlb_sync_map`. On failure
 * everything this call mapped is unmapped again and the error is thrown.
 *
 * **Errors:** `EINVAL` for a non-paging or freed domain, a bad argument, or `iova`, `paddr`,
 * `size` not aligned to the smallest page size ("unaligned: …"); whatever the driver's
 * `mapPages` throws (`EEXIST` for a double map, `ENOMEM`, `ERANGE`).
 *
 * @example
 * ```ts
 * iommuMap(domain, iova(0x20_0000), physAddr(0x4020_0000), 0x40_1000, IOMMU_READ | IOMMU_WRITE);
 * // 2M × 2 + 4K × 1
 * ```
 */
export function iommuMap(
  domain: IommuDomain,
  iova: Iova,
  paddr: PhysAddr,
  size: number,
  prot: number,
): void {
  const where = "iommu_map";
  checkDomain(where, domain);
  checkAddress(where, "iova", iova, DMA_ADDR_LIMIT);
  checkAddress(where, "paddr", paddr);
  checkSize(where, "size", size, 1, Number.MAX_SAFE_INTEGER);
  checkInteger(where, "prot", prot, 0, PROT_ALL);
  const ops = checkPaging(domain, where);
  const min = domain.minPagesz;
  if (
    rem(iova, min) !== 0 ||
    rem(paddr, min) !== 0 ||
    rem(size, min) !== 0 ||
    !Number.isSafeInteger(iova + size)
  ) {
    throw new DevrefError(
      "EINVAL",
      `unaligned: iova ${formatAddr(iova, 1)} pa ${formatAddr(paddr, 1)} size ${formatAddr(size, 1)} min_pagesz ${formatAddr(min, 1)}`,
    );
  }
  mapRange(domain, ops, iova, paddr, size, prot);
}

// ---------------------------------------------------------------------------------------
// Unmap and the IOTLB gather (§7.6, §7.7).

/** @internal `iommu_unmap_fast` on checked arguments. */
export function unmapRangeFast(
  domain: IommuDomain,
  iova: number,
  size: number,
  gather: IotlbGather,
): number {
  const ops = domain.ops;
  if (ops === null || domain.freed) return 0;
  const min = domain.minPagesz;
  if (rem(iova, min) !== 0 || rem(size, min) !== 0) {
    domain.iommu.machine.log(
      "err",
      domain.iommu.name,
      null,
      `unaligned: iova ${formatAddr(iova, 1)} size ${formatAddr(size, 1)} min_pagesz ${formatAddr(min, 1)}`,
    );
    return 0;
  }
  let unmapped = 0;
  while (unmapped < size) {
    const at = iova + unmapped;
    const pgsize = pgsizeFor(domain, at, at, size - unmapped, pgCount);
    // SAFETY: inside the range the caller checked.
    const n = ops.unmapPages(at as Iova, pgsize, pgCount[0]!, gather);
    if (!(n > 0)) break;
    unmapped += n;
  }
  return unmapped;
}

function checkUnmap(where: string, domain: IommuDomain, iova: Iova, size: number): void {
  checkDomain(where, domain);
  checkAddress(where, "iova", iova, DMA_ADDR_LIMIT);
  checkSize(where, "size", size, 1, Number.MAX_SAFE_INTEGER);
}

/**
 * `iommu_unmap_fast`: unmaps `[iova, iova + size)` into `gather` without syncing; the caller
 * calls {@link iommuIotlbSync}. Returns the bytes unmapped (stops at the first hole; 0 for
 * unaligned input, which is logged).
 *
 * **Errors:** `EINVAL` for a bad argument; whatever the driver's `unmapPages` throws.
 */
export function iommuUnmapFast(
  domain: IommuDomain,
  iova: Iova,
  size: number,
  gather: IotlbGather,
): number {
  const where = "iommu_unmap_fast";
  checkUnmap(where, domain, iova, size);
  return unmapRangeFast(domain, iova, size, checkGather(where, gather));
}

/** @internal Unmap into the domain's gather and sync what was gathered, even on failure. */
export function unmapAndSync(domain: IommuDomain, iova: number, size: number): number {
  const g = domain.gather;
  g.queued = false;
  try {
    return unmapRangeFast(domain, iova, size, g);
  } finally {
    syncGather(domain, g);
  }
}

/**
 * `iommu_unmap`: unmap, then `iotlb_sync`. Returns the bytes unmapped; 0 for unaligned input.
 * What was cleared is invalidated even if the driver fails part-way.
 *
 * **Errors:** `EINVAL` for a bad argument; whatever the driver throws.
 */
export function iommuUnmap(domain: IommuDomain, iova: Iova, size: number): number {
  checkUnmap("iommu_unmap", domain, iova, size);
  return unmapAndSync(domain, iova, size);
}

/** @internal `iommu_iotlb_sync` on checked arguments; the gather is reset even on failure. */
export function syncGather(domain: IommuDomain, gather: IotlbGather): void {
  try {
    if (gather.pgsize !== 0 && domain.ops !== null && !domain.freed) {
      domain.iotlbSyncs++;
      domain.ops.iotlbSync(gather);
    }
  } finally {
    gather.reset();
  }
}

/**
 * `iommu_iotlb_sync`: sends the gathered invalidation to the driver (if any) and resets.
 *
 * **Errors:** `EINVAL` for a bad argument; whatever the driver's `iotlbSync` throws.
 */
export function iommuIotlbSync(domain: IommuDomain, gather: IotlbGather): void {
  const where = "iommu_iotlb_sync";
  checkDomain(where, domain);
  syncGather(domain, checkGather(where, gather));
}

/**
 * `iommu_iotlb_gather_add_page`: called by a driver's `tlbAddPage` for each cleared page.
 * A page of another size, or one disjoint from the gathered range, first syncs what was
 * gathered.
 *
 * **Errors:** `EINVAL` if `gather` is not the core's gather, or for a bad argument.
 */
export function iommuIotlbGatherAddPage(
  domain: IommuDomain,
  gather: IommuIotlbGather | null,
  iova: Iova,
  size: number,
): void {
  const where = "iommu_iotlb_gather_add_page";
  checkDomain(where, domain);
  const g = checkGather(where, gather);
  if (!isWhole(iova, 0, Number.MAX_SAFE_INTEGER)) checkAddress(where, "iova", iova, DMA_ADDR_LIMIT);
  if (!isWhole(size, 1, Number.MAX_SAFE_INTEGER))
    checkSize(where, "size", size, 1, Number.MAX_SAFE_INTEGER);
  if ((g.pgsize !== 0 && g.pgsize !== size) || g.isDisjoint(iova, size)) {
    syncGather(domain, g);
  }
  g.pgsize = size;
  g.addRange(iova, size);
}

/**
 * `iommu_iova_to_phys`: identity domains translate 1:1; others ask the driver (0 = none).
 * Like the kernel's, it takes an IOVA or the DMA address a map call returned for a device
 * behind the domain (which is an IOVA) — never a physical address.
 *
 * **Errors:** `EINVAL` for a bad argument.
 */
export function iommuIovaToPhys(domain: IommuDomain, iova: Iova | DmaAddr): PhysAddr {
  const where = "iommu_iova_to_phys";
  checkDomain(where, domain);
  checkAddress(where, "iova", iova, DMA_ADDR_LIMIT);
  // SAFETY: pass-through maps each IOVA to the same physical address.
  if (domain.type === IOMMU_DOMAIN_IDENTITY) return iova as number as PhysAddr;
  // SAFETY: 0 is the kernel's "not mapped", a whole address.
  if (domain.ops === null || domain.freed) return 0 as PhysAddr;
  // SAFETY: behind an IOMMU a device's DMA address is an IOVA of its domain.
  return domain.ops.iovaToPhys(iova as number as Iova);
}

// ---------------------------------------------------------------------------------------
// Faults (§7.8).

/**
 * `iommu_set_fault_handler`: installs (or with null removes) the domain's fault handler.
 *
 * **Errors:** `EINVAL` for a non-domain or a handler that is neither a function nor null.
 */
export function iommuSetFaultHandler(
  domain: IommuDomain,
  handler: IommuFaultHandler | null,
  token?: unknown,
): void {
  const where = "iommu_set_fault_handler";
  checkDomain(where, domain);
  if (handler !== null) checkCallback(where, "handler", handler);
  installFaultHandler(domain, handler, token);
}

/**
 * `report_iommu_fault`: called by IOMMU drivers. Returns the handler's result, or `-ENOSYS`
 * when no handler is installed. The fault is logged either way (the `io_page_fault` trace
 * event).
 *
 * **Errors:** `EINVAL` for a bad argument (`flags` is `IOMMU_FAULT_READ` or `_WRITE`).
 */
export function reportIommuFault(
  domain: IommuDomain,
  dev: Device | null,
  iova: Iova,
  flags: number,
): number {
  const where = "report_iommu_fault";
  checkDomain(where, domain);
  const name = dev === null ? domain.iommu.name : checkDevice(where, dev).name;
  checkAddress(where, "iova", iova, DMA_ADDR_LIMIT);
  checkOneOf(where, "flags", flags, [IOMMU_FAULT_READ, IOMMU_FAULT_WRITE]);
  domain.iommu.machine.log(
    "dbg",
    name,
    null,
    `io_page_fault: iova=${formatAddr(iova, 1)} flags=${flags === IOMMU_FAULT_WRITE ? "write" : "read"}`,
  );
  const h = domain.handler;
  if (h === null) return -ERRNO.ENOSYS;
  return h(domain, dev, iova, flags, domain.handlerToken);
}
