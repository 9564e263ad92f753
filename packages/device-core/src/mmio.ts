//! C header: include/asm-generic/io.h (readl/writel), lib/devres.c (devm_ioremap_resource)
//! Rust: rust/kernel/io.rs (Io, IoMem wrapped in Devres)

import {
  argumentError,
  checkInstance,
  checkInteger,
  checkObject,
  DevrefError,
  describeValue,
  PHYS_ADDR_LIMIT,
} from "@devref/raw-device";
import { captureStack, reportDevresMisuse } from "./debug.js";
import { DeviceState } from "./state.js";

/**
 * The hardware side of an MMIO region: what a simulator (or a test) implements. Offsets
 * are bytes from the region's start, aligned to the access width; values are unsigned and
 * fit the width. The 8- and 16-bit accesses are optional: a region whose backend lacks
 * them refuses readb/readw/writeb/writew.
 */
export interface MmioBackend {
  read32(offset: number): number;
  write32(offset: number, value: number): void;
  read8?(offset: number): number;
  read16?(offset: number): number;
  write8?(offset: number, value: number): void;
  write16?(offset: number, value: number): void;
}

const PAGE_WORDS = 1024;

/**
 * A plain register file: memory-like registers that read back what was written, zero until
 * then. The default backend of a resource that names none. Its storage grows with what is
 * written (4 KiB at a time), so a large window costs nothing until used.
 */
export class RegisterFile implements MmioBackend {
  readonly size: number;
  private readonly pages: Map<number, Uint32Array> = new Map();

  constructor(size: number) {
    this.size = checkInteger("new RegisterFile", "size", size, 4, PHYS_ADDR_LIMIT);
  }
  read32(offset: number): number {
    if (typeof offset !== "number" || !(offset >= 0 && offset < this.size)) return 0xffff_ffff;
    const word = Math.floor(offset / 4);
    return this.pages.get(Math.floor(word / PAGE_WORDS))?.[word % PAGE_WORDS] ?? 0;
  }
  read8(offset: number): number {
    return this.#lane(offset, 0xff);
  }
  read16(offset: number): number {
    return this.#lane(offset, 0xffff);
  }
  write8(offset: number, value: number): void {
    this.#merge("write8", offset, 0xff, value);
  }
  write16(offset: number, value: number): void {
    this.#merge("write16", offset, 0xffff, value);
  }
  #lane(offset: number, mask: number): number {
    if (typeof offset !== "number" || !(offset >= 0 && offset < this.size)) return mask;
    const word = offset - (offset % 4);
    return (this.read32(word) >>> (8 * (offset % 4))) & mask;
  }
  #merge(what: string, offset: number, mask: number, value: number): void {
    if (typeof offset !== "number" || !(offset >= 0 && offset < this.size)) return;
    if (typeof value !== "number") {
      throw argumentError(
        `RegisterFile.${what}`,
        "value",
        `a ${mask === 0xff ? 8 : 16}-bit value`,
        value,
      );
    }
    const word = offset - (offset % 4);
    const shift = 8 * (offset % 4);
    const old = this.read32(word);
    this.write32(word, ((old & ~(mask << shift)) | ((value & mask) << shift)) >>> 0);
  }
  write32(offset: number, value: number): void {
    if (typeof offset !== "number" || !(offset >= 0 && offset < this.size)) return;
    if (typeof value !== "number") {
      throw argumentError("RegisterFile.write32", "value", "a 32-bit value", value);
    }
    const word = Math.floor(offset / 4);
    const key = Math.floor(word / PAGE_WORDS);
    let page = this.pages.get(key);
    if (page === undefined) {
      page = new Uint32Array(PAGE_WORDS);
      this.pages.set(key, page);
    }
    page[word % PAGE_WORDS] = value;
  }
}

/** One memory resource of a device (a `struct resource` of type IORESOURCE_MEM). */
export interface MemResource {
  readonly name: string;
  /** Physical start address (a safe integer up to 2^52). */
  readonly start: number;
  readonly size: number;
  readonly backend: MmioBackend;
}

/** What a bus package gives when mapping a region. */
export interface MmioRegionInit {
  readonly resource: MemResource;
  /** The driver whose binding maps it, for reports. */
  readonly driver: string | null;
  /** Who keeps it, for debug-mode reports. */
  readonly owner: string | undefined;
}

/** A 64-bit register value as two unsigned 32-bit halves (no bigint on a driver path). */
export interface U64 {
  readonly lo: number;
  readonly hi: number;
}

// module-state: a privileged-access slot, assigned once by MmioRegion's static block.
let unmap: (region: MmioRegion) => void;

/**
 * A mapped MMIO region (the kernel's `void __iomem *` from devm_ioremap, Rust `IoMem`):
 * typed 32- and 64-bit register access, bounds- and alignment-checked.
 *
 * Drivers get it wrapped in a `Devres` (whose entry keeps a labelled reference to the
 * device, `mmio <name>`), so it is unmapped when the binding ends. One
 * concrete class serves every backend, so call sites stay monomorphic.
 *
 * **Invariants:** once the device's hardware is gone (surprise removal) reads return
 * all-ones and writes are dropped, as on PCI; once unmapped, any access throws.
 *
 * **Errors:** `EINVAL` for an offset outside the region or misaligned; `ENODEV` after
 * unmap (in devres debug mode this is also reported as a use after revocation).
 */
export class MmioRegion {
  readonly name: string;
  readonly start: number;
  readonly size: number;
  private readonly backend: MmioBackend;
  private readonly state: DeviceState;
  private readonly driver: string | null;
  private readonly owner: string | undefined;
  private readonly createdAt: string | undefined;
  private mapped = true;

  constructor(st: DeviceState, init: MmioRegionInit) {
    checkInstance("new MmioRegion", "st", st, DeviceState);
    checkObject("new MmioRegion", "init", init);
    checkObject("new MmioRegion", "init.resource", init.resource);
    checkMemResource("new MmioRegion", init.resource, "init.resource");
    checkMmioBackend("new MmioRegion", "init.resource.backend", init.resource.backend);
    this.name = String(init.resource.name);
    this.start = init.resource.start;
    this.size = init.resource.size;
    this.backend = init.resource.backend;
    this.state = st;
    this.driver = init.driver;
    this.owner = init.owner;
    this.createdAt = st.machine.devresDebug ? captureStack() : undefined;
  }

  /** Whether the region is still mapped. */
  get isMapped(): boolean {
    return this.mapped;
  }

  private check(offset: number, width: number): void {
    if (!this.mapped) this.throwUnmapped();
    if (
      typeof offset !== "number" ||
      !(offset >= 0 && offset + width <= this.size) ||
      offset % width !== 0
    ) {
      throw new DevrefError(
        "EINVAL",
        `MMIO '${this.name}' of '${this.state.name}': offset ${describeValue(offset)} is outside the ${this.size}-byte region or not ${width}-byte aligned`,
      );
    }
  }

  private throwUnmapped(): never {
    if (this.state.machine.devresDebug) {
      reportDevresMisuse(this.state.machine, {
        kind: "use-after-revoke",
        device: this.state.name,
        driver: this.driver,
        resource: `mmio ${this.name}`,
        message: `MMIO region '${this.name}' was used after it was unmapped at unbind: an object that outlives the binding kept it`,
        storedBy: this.owner,
        createdAt: this.createdAt,
        at: captureStack(),
      });
    }
    throw new DevrefError(
      "ENODEV",
      `MMIO region '${this.name}' of device '${this.state.name}' was unmapped when its driver unbound; ` +
        "map it again in the next probe and do not keep it past remove()",
    );
  }

  /** readl. All-ones once the hardware is gone. */
  read32(offset: number): number {
    this.check(offset, 4);
    if (this.state.disconnected) return 0xffff_ffff;
    return this.backend.read32(offset) >>> 0;
  }

  /** writel. Dropped once the hardware is gone. */
  write32(offset: number, value: number): void {
    this.check(offset, 4);
    if (
      typeof value !== "number" ||
      !(value >= -0x8000_0000 && value <= 0xffff_ffff) ||
      Math.floor(value) !== value
    ) {
      throw argumentError(`MMIO '${this.name}' write32`, "value", "a 32-bit value", value);
    }
    if (this.state.disconnected) return;
    this.backend.write32(offset, value >>> 0);
  }

  /** readb. All-ones once the hardware is gone. */
  read8(offset: number): number {
    this.check(offset, 1);
    if (this.state.disconnected) return 0xff;
    const b = this.backend;
    if (b.read8 === undefined) this.noNarrow("read8");
    return b.read8(offset) & 0xff;
  }

  /** readw. All-ones once the hardware is gone. */
  read16(offset: number): number {
    this.check(offset, 2);
    if (this.state.disconnected) return 0xffff;
    const b = this.backend;
    if (b.read16 === undefined) this.noNarrow("read16");
    return b.read16(offset) & 0xffff;
  }

  /** writeb. Dropped once the hardware is gone. */
  write8(offset: number, value: number): void {
    this.check(offset, 1);
    this.checkNarrow("write8", value, 0xff);
    if (this.state.disconnected) return;
    const b = this.backend;
    if (b.write8 === undefined) this.noNarrow("write8");
    b.write8(offset, value);
  }

  /** writew. Dropped once the hardware is gone. */
  write16(offset: number, value: number): void {
    this.check(offset, 2);
    this.checkNarrow("write16", value, 0xffff);
    if (this.state.disconnected) return;
    const b = this.backend;
    if (b.write16 === undefined) this.noNarrow("write16");
    b.write16(offset, value);
  }

  private checkNarrow(what: string, value: number, max: number): void {
    if (typeof value !== "number" || !(value >= 0 && value <= max) || Math.floor(value) !== value) {
      throw argumentError(
        `MMIO '${this.name}' ${what}`,
        "value",
        `an unsigned ${max === 0xff ? 8 : 16}-bit value`,
        value,
      );
    }
  }

  private noNarrow(what: string): never {
    throw new DevrefError(
      "EOPNOTSUPP",
      `MMIO '${this.name}' of '${this.state.name}': its backend has no ${what}; use 32-bit ` +
        `accesses, or give the backend ${what}`,
    );
  }

  /**
   * readq as two 32-bit reads, low word first (lo_hi_readq), as unsigned halves.
   * All-ones once the hardware is gone.
   */
  read64(offset: number): U64 {
    this.check(offset, 8);
    if (this.state.disconnected) return { lo: 0xffff_ffff, hi: 0xffff_ffff };
    const lo = this.backend.read32(offset) >>> 0;
    const hi = this.backend.read32(offset + 4) >>> 0;
    return { lo, hi };
  }

  /** writeq as two 32-bit writes, low word first (lo_hi_writeq). */
  write64(offset: number, lo: number, hi: number): void {
    this.check(offset, 8);
    for (const [param, v] of [
      ["lo", lo],
      ["hi", hi],
    ] as const) {
      if (typeof v !== "number" || !(v >= 0 && v <= 0xffff_ffff) || Math.floor(v) !== v) {
        throw argumentError(`MMIO '${this.name}' write64`, param, "an unsigned 32-bit half", v);
      }
    }
    if (this.state.disconnected) return;
    this.backend.write32(offset, lo);
    this.backend.write32(offset + 4, hi);
  }

  static {
    unmap = (region) => {
      region.mapped = false;
    };
  }
}

/** @internal Unmaps a region: the release of its devres. Not exported from the package. */
export function unmapRegion(region: MmioRegion): void {
  unmap(region);
}

/**
 * Checks a resource description before a device is created.
 *
 * **Errors:** `EINVAL` naming `what` for a start that is not an address below 2^52, a size
 * that is not a positive multiple of 4, or a range that runs past 2^52.
 */
export function checkMemResource(
  owner: string,
  r: { start: number; size: number },
  what: string,
): void {
  if (
    typeof r.start !== "number" ||
    !Number.isSafeInteger(r.start) ||
    r.start < 0 ||
    r.start >= PHYS_ADDR_LIMIT
  ) {
    throw new DevrefError(
      "EINVAL",
      `${owner}: ${what} starts at ${describeValue(r.start)}, not a physical address below 2^52`,
    );
  }
  if (
    typeof r.size !== "number" ||
    !Number.isSafeInteger(r.size) ||
    r.size <= 0 ||
    r.size % 4 !== 0
  ) {
    throw new DevrefError(
      "EINVAL",
      `${owner}: ${what} has size ${String(r.size)}; give a positive multiple of 4 bytes`,
    );
  }
  if (r.start + r.size > PHYS_ADDR_LIMIT) {
    throw new DevrefError("EINVAL", `${owner}: ${what} runs past the 2^52 physical address limit`);
  }
}

/**
 * Checks that `backend` implements {@link MmioBackend} (or is absent).
 *
 * **Errors:** `EINVAL` otherwise.
 */
export function checkMmioBackend(where: string, param: string, backend: unknown): void {
  if (backend === undefined) return;
  // SAFETY: only reads two properties, whose types are checked right here.
  const b = backend as { readonly read32?: unknown; readonly write32?: unknown } | null;
  if (
    typeof backend !== "object" ||
    b === null ||
    typeof b.read32 !== "function" ||
    typeof b.write32 !== "function"
  ) {
    throw argumentError(where, param, "an MMIO backend with read32 and write32", backend);
  }
}
