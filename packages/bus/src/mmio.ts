//! C header: include/asm-generic/io.h (readl/writel), lib/devres.c (devm_ioremap_resource)
//! Rust: rust/kernel/io.rs (Io, IoMem wrapped in Devres)

import {
  captureStack,
  type DeviceState,
  devresDebugEnabled,
  reportDevresMisuse,
} from "@devref/device-core/unsafe";
import { DevrefError } from "@devref/raw-device";

/**
 * The hardware side of an MMIO region: what a simulator (or a test) implements. Offsets
 * are bytes from the region's start, 4-byte aligned; values are unsigned 32-bit.
 */
export interface MmioBackend {
  read32(offset: number): number;
  write32(offset: number, value: number): void;
}

/**
 * A plain register file: memory-like registers that read back what was written. The
 * default backend of a resource that names none.
 */
export class RegisterFile implements MmioBackend {
  private readonly words: Uint32Array;
  constructor(size: number) {
    this.words = new Uint32Array(Math.ceil(size / 4));
  }
  read32(offset: number): number {
    return this.words[offset >>> 2] ?? 0xffff_ffff;
  }
  write32(offset: number, value: number): void {
    this.words[offset >>> 2] = value;
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

/** @internal The bus's part of a device release when the creator gave none (shared, so it costs nothing per device). */
export function noRelease(): void {}

let unmap: (region: MmioRegion) => void;

/**
 * A mapped MMIO region (the kernel's `void __iomem *` from devm_ioremap, Rust `IoMem`):
 * typed 32- and 64-bit register access, bounds- and alignment-checked.
 *
 * Drivers get it wrapped in a `Devres`, so it is unmapped when the binding ends. One
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
    this.name = init.resource.name;
    this.start = init.resource.start;
    this.size = init.resource.size;
    this.backend = init.resource.backend;
    this.state = st;
    this.driver = init.driver;
    this.owner = init.owner;
    this.createdAt = devresDebugEnabled() ? captureStack() : undefined;
  }

  /** Whether the region is still mapped. */
  get isMapped(): boolean {
    return this.mapped;
  }

  private check(offset: number, width: number): void {
    if (!this.mapped) this.throwUnmapped();
    if (
      !Number.isInteger(offset) ||
      offset < 0 ||
      offset + width > this.size ||
      offset % width !== 0
    ) {
      throw new DevrefError(
        "EINVAL",
        `MMIO '${this.name}' of '${this.state.name}': offset ${String(offset)} is outside the ${this.size}-byte region or not ${width}-byte aligned`,
      );
    }
  }

  private throwUnmapped(): never {
    if (devresDebugEnabled()) {
      reportDevresMisuse({
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
    if (!Number.isInteger(value) || value < -0x8000_0000 || value > 0xffff_ffff) {
      throw new DevrefError("EINVAL", `MMIO write of ${String(value)}: not a 32-bit value`);
    }
    if (this.state.disconnected) return;
    this.backend.write32(offset, value >>> 0);
  }

  /**
   * readq as two 32-bit reads, low word first (lo_hi_readq). A bigint: a 64-bit register
   * need not fit a safe integer. All-ones once the hardware is gone.
   */
  read64(offset: number): bigint {
    this.check(offset, 8);
    if (this.state.disconnected) return 0xffff_ffff_ffff_ffffn;
    const lo = this.backend.read32(offset) >>> 0;
    const hi = this.backend.read32(offset + 4) >>> 0;
    return (BigInt(hi) << 32n) | BigInt(lo);
  }

  /** writeq as two 32-bit writes, low word first (lo_hi_writeq). */
  write64(offset: number, value: bigint): void {
    this.check(offset, 8);
    if (value < 0n || value > 0xffff_ffff_ffff_ffffn) {
      throw new DevrefError("EINVAL", `MMIO write of ${value}: not a 64-bit value`);
    }
    if (this.state.disconnected) return;
    this.backend.write32(offset, Number(value & 0xffff_ffffn));
    this.backend.write32(offset + 4, Number(value >> 32n));
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

/** @internal Checks a resource description before a device is created. */
export function checkMemResource(
  owner: string,
  r: { start: number; size: number },
  what: string,
): void {
  if (!Number.isSafeInteger(r.start) || r.start < 0 || r.start >= 2 ** 52) {
    throw new DevrefError(
      "EINVAL",
      `${owner}: ${what} starts at ${String(r.start)}, not a physical address below 2^52`,
    );
  }
  if (!Number.isSafeInteger(r.size) || r.size <= 0 || r.size % 4 !== 0) {
    throw new DevrefError(
      "EINVAL",
      `${owner}: ${what} has size ${String(r.size)}; give a positive multiple of 4 bytes`,
    );
  }
}
