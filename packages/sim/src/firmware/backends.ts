//! C header: include/linux/pci.h (pci_ops: config accessors of a host bridge)
//!
//! The MMIO backends a firmware description hands to the buses: a physical range seen
//! through the fabric (a BAR in a host window, an SRAM), and one function's configuration
//! space through its host's ECAM.

import type { PciConfigSpace } from "@devref/bus";
import type { MmioBackend } from "@devref/device-core";
import {
  argumentError,
  checkInstance,
  checkInteger,
  checkOneOf,
  PHYS_ADDR_LIMIT,
} from "@devref/raw-device";
import { MmioFabric } from "../fabric.js";
import { ecamOffset } from "../pci/regs.js";

/**
 * `[base, base + size)` of the physical address space as the CPU reaches it through the
 * fabric (8, 16 and 32 bits): what a BAR mapped in a host window or a memory region is to
 * a driver. Accesses go wherever the fabric routes them now, so a BAR that moved or
 * stopped decoding answers as the window does (a master abort: all-ones).
 *
 * **Invariants:** the backend never reaches outside its range (the bus's region checks
 * offsets first).
 */
export class FabricBackend implements MmioBackend {
  readonly base: number;
  readonly size: number;
  private readonly fabric: MmioFabric;

  /** **Errors:** `EINVAL` for a range that is not below 2^52. */
  constructor(fabric: MmioFabric, base: number, size: number) {
    checkInstance("new FabricBackend", "fabric", fabric, MmioFabric);
    checkInteger("new FabricBackend", "size", size, 1, PHYS_ADDR_LIMIT);
    checkInteger("new FabricBackend", "base", base, 0, PHYS_ADDR_LIMIT - size);
    this.fabric = fabric;
    this.base = base;
    this.size = size;
  }

  read32(offset: number): number {
    return this.fabric.read32(this.base + offset);
  }

  write32(offset: number, value: number): void {
    this.fabric.write32(this.base + offset, value >>> 0);
  }

  read8(offset: number): number {
    return this.fabric.read8(this.base + offset);
  }

  read16(offset: number): number {
    return this.fabric.read16(this.base + offset);
  }

  write8(offset: number, value: number): void {
    this.fabric.write8(this.base + offset, value & 0xff);
  }

  write16(offset: number, value: number): void {
    this.fabric.write16(this.base + offset, value & 0xffff);
  }
}

/**
 * The configuration space of function `fn` of device `dev` on bus 0 of a host whose ECAM
 * window is at `ecamBase`, through the fabric: an empty slot reads all-ones and drops
 * writes, as ECAM does.
 */
export class EcamConfig implements PciConfigSpace {
  private readonly fabric: MmioFabric;
  private readonly base: number;

  /** **Errors:** `EINVAL` for a device outside 0..31, a function outside 0..7, a bad base. */
  constructor(fabric: MmioFabric, ecamBase: number, dev: number, fn: number) {
    checkInstance("new EcamConfig", "fabric", fabric, MmioFabric);
    checkInteger("new EcamConfig", "ecamBase", ecamBase, 0, PHYS_ADDR_LIMIT - 0x10_0000);
    checkInteger("new EcamConfig", "dev", dev, 0, 31);
    checkInteger("new EcamConfig", "fn", fn, 0, 7);
    this.fabric = fabric;
    this.base = ecamBase + ecamOffset(dev, fn);
  }

  read(offset: number, width: 1 | 2 | 4): number {
    const pa = this.at("read", offset, width);
    return width === 4
      ? this.fabric.read32(pa)
      : width === 2
        ? this.fabric.read16(pa)
        : this.fabric.read8(pa);
  }

  write(offset: number, width: 1 | 2 | 4, value: number): void {
    const pa = this.at("write", offset, width);
    if (width === 4) this.fabric.write32(pa, value >>> 0);
    else if (width === 2) this.fabric.write16(pa, value & 0xffff);
    else this.fabric.write8(pa, value & 0xff);
  }

  private at(what: string, offset: number, width: number): number {
    if (!(width === 1 || width === 2 || width === 4)) {
      checkOneOf(`EcamConfig.${what}`, "width", width, [1, 2, 4]);
    }
    if (
      !(Number.isInteger(offset) && offset >= 0 && offset <= 0x1000 - width && offset % width === 0)
    ) {
      throw argumentError(
        `EcamConfig.${what}`,
        "offset",
        `a multiple of ${width} in [0, ${0x1000 - width}]`,
        offset,
      );
    }
    return this.base + offset;
  }
}
