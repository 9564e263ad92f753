//! What both table formats check and keep the same way: argument validation (built on the
//! shared checkers of @devref/raw-device), the errors it raises, and the scratch buffers used
//! for batched descriptor runs.

import {
  argumentError,
  checkBigintOrNumber,
  checkBoolean,
  checkCallback,
  checkCount,
  checkInteger,
  checkObject,
  checkOneOf,
  checkSize,
  DevrefError,
  type PhysAllocator,
  type PhysicalMemory,
} from "@devref/raw-device";
import { IOMMU_PROT_MASK, IOMMU_READ, IOMMU_WRITE } from "../constants.js";
import type { IommuFlushOps, IommuIotlbGather, IoPgtableConfig, IovaArg } from "../types.js";
import { TWO32 } from "./bits.js";

/** The errno codes a page table raises. */
export type TableErrno = "EINVAL" | "ERANGE" | "EEXIST" | "ENOMEM" | "ESHUTDOWN" | "EIO";

/** A {@link DevrefError} with the table's structured details (e.g. `{ mapped: 0 }`). */
export function err(
  code: TableErrno,
  message: string,
  details?: Record<string, unknown>,
): DevrefError {
  return new DevrefError(code, message, details === undefined ? {} : { details });
}

const TWO63 = 2n ** 63n;

/**
 * Checks an input address given as a number (a whole number below 2^53) or a bigint (in
 * [-2^63, 2^64), taken modulo 2^64 so that `-0x1000n` is the last page) and splits it into
 * its high and low 32-bit halves in `out`.
 *
 * **Errors:** `EINVAL` naming `iova` for anything else.
 */
export function checkIova(where: string, iova: unknown, out: Uint32Array): void {
  if (typeof iova === "bigint") {
    const u = iova < 0n && iova >= -TWO63 ? BigInt.asUintN(64, iova) : iova;
    checkBigintOrNumber(where, "iova", u, 64);
    // SAFETY: checkBigintOrNumber returned, so u is a bigint in [0, 2^64).
    const v = u as bigint;
    out[0] = Number(v >> 32n);
    out[1] = Number(v & 0xffff_ffffn);
    return;
  }
  checkBigintOrNumber(where, "iova", iova, 64);
  // SAFETY: a number that passed is a whole number in [0, 2^53).
  const n = iova as number;
  out[0] = (n / TWO32) >>> 0;
  out[1] = n >>> 0;
}

/**
 * Checks a map call's output address: a whole number (EINVAL otherwise), in `[0, paLimit)`
 * (ERANGE otherwise, as the kernel's `paddr >> oas` test).
 */
export function checkPaddr(where: string, paddr: unknown, paLimit: number): number {
  const pa = checkInteger(where, "paddr", paddr, Number.MIN_SAFE_INTEGER, Number.MAX_SAFE_INTEGER);
  if (pa < 0 || pa >= paLimit) {
    throw err(
      "ERANGE",
      `${where}: paddr ${String(pa)} is outside the output range [0, 2^${Math.log2(paLimit)}) (oas)`,
      { parameter: "paddr", mapped: 0 },
    );
  }
  return pa;
}

/**
 * Checks a map call's protection: only `IOMMU_*` bits, and at least READ or WRITE.
 *
 * **Errors:** `EINVAL` naming `prot`.
 */
export function checkProt(where: string, prot: unknown): number {
  const p = checkInteger(where, "prot", prot, 0, IOMMU_PROT_MASK);
  if ((p & (IOMMU_READ | IOMMU_WRITE)) === 0) {
    throw err(
      "EINVAL",
      `${where}: prot 0x${p.toString(16)} grants neither IOMMU_READ nor IOMMU_WRITE: a mapping needs at least one`,
      { parameter: "prot", mapped: 0 },
    );
  }
  return p;
}

/** `pgsize` as a number a table may support: a whole number in [1, 2^52]. */
export function checkPgsize(where: string, pgsize: unknown): number {
  return checkSize(where, "pgsize", pgsize);
}

/**
 * `pgcount` as a whole number in [0, 2^53): 0 is accepted (the kernel maps nothing and, for
 * unmap, returns 0); anything larger than a table is clamped to the table, as in the kernel.
 */
export function checkPgcount(where: string, pgcount: unknown): number {
  return checkCount(where, "pgcount", pgcount, 0, Number.MAX_SAFE_INTEGER);
}

/** A gather is absent (`null`/`undefined`) or an object with a boolean `queued`. */
export function checkGather(
  where: string,
  gather: IommuIotlbGather | null | undefined,
): IommuIotlbGather | null {
  if (gather === undefined || gather === null) return null;
  checkObject(where, "gather", gather);
  checkBoolean(where, "gather.queued", gather.queued);
  return gather;
}

const MEMORY_METHODS = [
  "read8",
  "write8",
  "read32",
  "write32",
  "read64Lo",
  "read64Hi",
  "write64",
  "readBytes",
  "writeBytes",
  "zero",
] as const;

/** A {@link PhysicalMemory}: a size and every method of the interface. */
export function checkMemory(where: string, param: string, memory: PhysicalMemory): PhysicalMemory {
  checkObject(where, param, memory);
  checkSize(where, `${param}.size`, memory.size);
  for (const m of MEMORY_METHODS) checkCallback(where, `${param}.${m}`, memory[m]);
  return memory;
}

/** A {@link PhysAllocator}: `alloc`, `free` and a valid `memory`. */
export function checkAllocator(where: string, allocator: PhysAllocator): PhysAllocator {
  checkObject(where, "allocator", allocator);
  checkCallback(where, "allocator.alloc", allocator.alloc);
  checkCallback(where, "allocator.free", allocator.free);
  checkMemory(where, "allocator.memory", allocator.memory);
  return allocator;
}

const TLB_CALLBACKS = ["tlbFlushAll", "tlbFlushWalk", "tlbAddPage"] as const;

/**
 * Checks the shape of a caller's configuration before any format looks at it: whole numbers
 * where numbers are wanted, booleans, callbacks that are functions, a known host page size.
 *
 * **Errors:** `EINVAL` naming the field, e.g. `cfg.tlb.tlbAddPage`.
 */
export function checkConfig(where: string, cfg: IoPgtableConfig): IoPgtableConfig {
  checkObject(where, "cfg", cfg);
  checkInteger(where, "cfg.pgsizeBitmap", cfg.pgsizeBitmap, 1, Number.MAX_SAFE_INTEGER);
  checkInteger(where, "cfg.ias", cfg.ias, 0, 64);
  checkInteger(where, "cfg.oas", cfg.oas, 0, 64);
  if (cfg.quirks !== undefined) checkInteger(where, "cfg.quirks", cfg.quirks, 0, 0x7fff_ffff);
  if (cfg.coherentWalk !== undefined) checkBoolean(where, "cfg.coherentWalk", cfg.coherentWalk);
  if (cfg.hostPageSize !== undefined)
    checkOneOf(where, "cfg.hostPageSize", cfg.hostPageSize, [0x1000, 0x4000, 0x1_0000]);
  if (cfg.cacheClean !== undefined && cfg.cacheClean !== null)
    checkCallback(where, "cfg.cacheClean", cfg.cacheClean);
  const tlb = cfg.tlb;
  if (tlb !== undefined && tlb !== null) {
    checkObject(where, "cfg.tlb", tlb);
    for (const name of TLB_CALLBACKS) {
      const fn = tlb[name];
      if (fn !== undefined) checkCallback(where, `cfg.tlb.${name}`, fn);
    }
  }
  return cfg;
}

/**
 * The TLB callbacks of a checked configuration, captured once so that a later change to the
 * caller's object cannot turn a call into a `TypeError`.
 */
export class TlbCallbacks {
  readonly flushAll: ((cookie: unknown) => void) | null;
  readonly flushWalk: NonNullable<IommuFlushOps["tlbFlushWalk"]> | null;
  readonly addPage: NonNullable<IommuFlushOps["tlbAddPage"]> | null;
  private readonly ops: IommuFlushOps | null;
  private readonly cookie: unknown;

  constructor(cfg: IoPgtableConfig) {
    const tlb = cfg.tlb ?? null;
    this.ops = tlb;
    this.cookie = cfg.cookie;
    this.flushAll = tlb?.tlbFlushAll ?? null;
    this.flushWalk = tlb?.tlbFlushWalk ?? null;
    this.addPage = tlb?.tlbAddPage ?? null;
  }

  all(): void {
    if (this.flushAll !== null) this.flushAll.call(this.ops, this.cookie);
  }

  walk(iova: IovaArg, size: number, granule: number): void {
    if (this.flushWalk !== null) this.flushWalk.call(this.ops, iova, size, granule, this.cookie);
  }

  page(gather: IommuIotlbGather | null, iova: IovaArg, granule: number): void {
    if (this.addPage !== null) this.addPage.call(this.ops, gather, iova, granule, this.cookie);
  }
}

/**
 * Scratch space for runs of up to `maxRun` descriptors, read or written with one
 * `readBytes`/`writeBytes` call: a byte view and a word view of one buffer, plus zeros. The
 * prefix views are made once per length, so a batched call allocates nothing.
 */
export class DescriptorScratch {
  readonly bytes: Uint8Array;
  readonly words: Uint32Array;
  private readonly zeros: Uint8Array;
  private readonly views: (Uint8Array | undefined)[];
  private readonly zeroViews: (Uint8Array | undefined)[];

  constructor(maxRun: number) {
    this.bytes = new Uint8Array(maxRun * 8);
    this.words = new Uint32Array(this.bytes.buffer);
    this.zeros = new Uint8Array(maxRun * 8);
    this.views = new Array<Uint8Array | undefined>(maxRun + 1).fill(undefined);
    this.zeroViews = new Array<Uint8Array | undefined>(maxRun + 1).fill(undefined);
  }

  /** The first `n` descriptors of the scratch buffer, as bytes. */
  view(n: number): Uint8Array {
    let v = this.views[n];
    if (v === undefined) {
      v = this.bytes.subarray(0, n * 8);
      this.views[n] = v;
    }
    return v;
  }

  /** `n` zero descriptors, as bytes. */
  zeroView(n: number): Uint8Array {
    let v = this.zeroViews[n];
    if (v === undefined) {
      v = this.zeros.subarray(0, n * 8);
      this.zeroViews[n] = v;
    }
    return v;
  }
}

/** `argumentError` re-exported for the package's own checks of the same shape. */
export { argumentError };
