//! C header: include/asm-generic/io.h (readb/readw/readl and the write side)
//!
//! The MMIO fabric: device register windows as MmioBackend ports, and the routing of
//! absolute physical addresses to them (and to memory).

import {
  argumentError,
  checkAddress,
  checkInstance,
  checkObject,
  checkSize,
  checkString,
  DevrefError,
  formatAddr,
  PHYS_ADDR_LIMIT,
  type PhysicalMemory,
} from "@devref/raw-device";
import { StepCounter } from "./steps.js";
import { Tracer } from "./trace.js";

// module-state: privileged-access slots, assigned once by MmioFabric's static block: the
// SoC maps its memories and windows report mapping changes without a public method.
let mapMemoryOf: (
  fabric: MmioFabric,
  name: string,
  base: number,
  size: number,
  kind: "ram" | "memory",
) => void;
let invalidateOf: (fabric: MmioFabric) => void;

/** @internal Maps plain memory (RAM or SRAM) into the routing of `fabric`. */
export function fabricMapMemory(
  fabric: MmioFabric,
  name: string,
  base: number,
  size: number,
  kind: "ram" | "memory",
): void {
  mapMemoryOf(fabric, name, base, size, kind);
}

/**
 * The hardware side of an MMIO region as the driver-model packages see it (the
 * `MmioBackend` of `@devref/device-core`): 32-bit accesses by byte offset. Declared here by
 * shape, so the models need nothing of those packages; ports (which also have the 8- and
 * 16-bit accesses) plug straight into a bus resource.
 */
export interface MmioBackend {
  read32(offset: number): number;
  write32(offset: number, value: number): void;
}

/** An access width in bytes. */
export type MmioWidth = 1 | 2 | 4;

/**
 * The register logic behind a port: what a device model implements. Offsets are from the
 * start of the port's region, aligned to the width; values are unsigned and fit the width.
 */
export interface MmioHandler {
  mmioRead(offset: number, width: MmioWidth): number;
  mmioWrite(offset: number, width: MmioWidth, value: number): void;
}

/** Largest port size: offsets stay small integers. */
const MAX_PORT_SIZE = 0x4000_0000;
const ONES = [0, 0xff, 0xffff, 0, 0xffff_ffff] as const;

/**
 * One MMIO register window of a device model, as an {@link MmioBackend}: every
 * access counts one step, is traced, and reads all-ones (writes dropped) once the device
 * is gone.
 *
 * One concrete class for every model keeps the access path monomorphic.
 *
 * **Invariants:** `size` is fixed; once `gone` is set, the handler is never called again.
 *
 * **Errors:** `EINVAL` for an offset outside the window, misaligned, or not a whole
 * number, and for a value that does not fit the width; from the constructor, for an empty
 * name, a bad size, a handler without `mmioRead`/`mmioWrite`, or a step counter or tracer
 * that is not one (ports come from `soc.newPort` or a model's `addPort`).
 *
 * @example
 * ```ts
 * const port = dart.port; // an MmioPort
 * port.write32(0x34, 1 << 5);
 * port.read32(0x20) & 4; // BUSY
 * ```
 */
export class MmioPort implements MmioBackend {
  /** Name of the window, e.g. `dart0` or `virtio-blk0.bar4`. */
  readonly name: string;
  readonly size: number;
  /** Set when the device is gone: reads all-ones, writes dropped. */
  gone = false;
  private readonly handler: MmioHandler;
  private readonly steps: StepCounter;
  private readonly tracer: Tracer;
  private readonly traceId: number;

  constructor(
    name: string,
    size: number,
    handler: MmioHandler,
    steps: StepCounter,
    tracer: Tracer,
  ) {
    checkString("new MmioPort", "name", name, true);
    if (!(Number.isInteger(size) && size >= 4 && size <= MAX_PORT_SIZE && size % 4 === 0)) {
      throw argumentError("new MmioPort", "size", `a multiple of 4 in [4, ${MAX_PORT_SIZE}]`, size);
    }
    checkObject("new MmioPort", "handler", handler);
    if (typeof handler.mmioRead !== "function" || typeof handler.mmioWrite !== "function") {
      throw argumentError(
        "new MmioPort",
        "handler",
        "an MmioHandler (mmioRead and mmioWrite methods)",
        handler,
      );
    }
    checkInstance("new MmioPort", "steps", steps, StepCounter);
    checkInstance("new MmioPort", "tracer", tracer, Tracer);
    this.name = name;
    this.size = size;
    this.handler = handler;
    this.steps = steps;
    this.tracer = tracer;
    this.traceId = tracer.source(name);
  }

  read8(offset: number): number {
    return this.#read(offset, 1);
  }
  read16(offset: number): number {
    return this.#read(offset, 2);
  }
  read32(offset: number): number {
    return this.#read(offset, 4);
  }
  write8(offset: number, value: number): void {
    this.#write(offset, 1, value);
  }
  write16(offset: number, value: number): void {
    this.#write(offset, 2, value);
  }
  write32(offset: number, value: number): void {
    this.#write(offset, 4, value);
  }

  // #read and #write spell the offset test out: as a shared helper it measured 0.25 ns
  // slower per access (15% of a port read).
  #read(offset: number, width: MmioWidth): number {
    if (
      typeof offset !== "number" ||
      (offset | 0) !== offset ||
      offset < 0 ||
      offset > this.size - width ||
      offset & (width - 1)
    )
      this.#badOffset(offset, width);
    const steps = this.steps;
    if (++steps.count >= steps.trigger) steps.onTrigger(steps.count);
    const value = this.gone ? ONES[width] : this.handler.mmioRead(offset, width) >>> 0;
    if (this.tracer.enabled) this.tracer.mmio(this.traceId, false, offset, width, value);
    return value;
  }

  #write(offset: number, width: MmioWidth, value: number): void {
    if (
      typeof offset !== "number" ||
      (offset | 0) !== offset ||
      offset < 0 ||
      offset > this.size - width ||
      offset & (width - 1)
    )
      this.#badOffset(offset, width);
    if (width === 4) {
      if (typeof value !== "number" || ((value | 0) !== value && value >>> 0 !== value))
        this.#badValue(value, width);
      value >>>= 0;
    } else if (typeof value !== "number" || (value & ONES[width]) !== value) {
      this.#badValue(value, width);
    }
    const steps = this.steps;
    if (++steps.count >= steps.trigger) steps.onTrigger(steps.count);
    if (this.tracer.enabled) this.tracer.mmio(this.traceId, true, offset, width, value);
    if (!this.gone) this.handler.mmioWrite(offset, width, value);
  }

  #badOffset(offset: number, width: number): never {
    throw argumentError(
      `MMIO ${this.name}`,
      "offset",
      `a whole number in [0, ${this.size - width}] aligned to ${width}`,
      offset,
    );
  }

  #badValue(value: number, width: number): never {
    throw argumentError(
      `MMIO ${this.name}`,
      "value",
      `an unsigned ${width * 8}-bit whole number${width === 4 ? " (or a signed 32-bit one)" : ""}`,
      value,
    );
  }
}

/** What an entry of the memory map is. */
export type RegionKind = "ram" | "memory" | "mmio" | "window";

/** One entry of `soc.memoryMap()`. */
export interface MemoryMapEntry {
  readonly name: string;
  readonly base: number;
  readonly size: number;
  readonly kind: RegionKind;
  /** The model that owns it (`soc` for memory). */
  readonly owner: string;
}

/** @internal A routed range of physical addresses. */
export class Region {
  readonly name: string;
  readonly base: number;
  readonly end: number;
  readonly kind: RegionKind;
  readonly owner: string;
  /** The port, or null for memory and windows. */
  readonly port: MmioPort | null;
  /** The window, for kind `window`. */
  readonly window: MmioWindow | null;

  constructor(
    name: string,
    base: number,
    size: number,
    kind: RegionKind,
    owner: string,
    port: MmioPort | null,
    window: MmioWindow | null,
  ) {
    this.name = name;
    this.base = base;
    this.end = base + size;
    this.kind = kind;
    this.owner = owner;
    this.port = port;
    this.window = window;
  }
}

/**
 * A range of physical addresses whose contents move at run time (a PCI host's memory
 * window, where BARs appear when software programs them). Accesses that hit no mapped
 * port go to the window's own `fallback` port (a master abort: all-ones, writes dropped).
 *
 * **Invariants:** mapped ports lie inside the window and do not overlap.
 *
 * **Errors:** `EINVAL` for a range that is not inside the physical address space, a
 * fallback that is not an {@link MmioPort}, or mapping entries that are not `{ base, port,
 * owner }` objects.
 */
export class MmioWindow {
  readonly base: number;
  readonly size: number;
  /** Answers accesses that hit no mapped port. */
  readonly fallback: MmioPort;
  /** @internal Sorted, non-overlapping sub-regions. */
  subs: Region[] = [];
  /** @internal The fabric to tell when the mapping changes. */
  fabric: MmioFabric | null = null;

  constructor(base: number, size: number, fallback: MmioPort) {
    checkSize("new MmioWindow", "size", size);
    checkAddress("new MmioWindow", "base", base, PHYS_ADDR_LIMIT - size + 1);
    checkInstance("new MmioWindow", "fallback", fallback, MmioPort);
    this.base = base;
    this.size = size;
    this.fallback = fallback;
  }

  /**
   * Replaces the set of mapped ports. Entries outside the window or overlapping an earlier
   * entry are left out and returned, so the caller can report them.
   */
  setMappings(
    entries: readonly { readonly base: number; readonly port: MmioPort; readonly owner: string }[],
  ): { base: number; port: MmioPort }[] {
    if (!Array.isArray(entries)) {
      throw argumentError("MmioWindow.setMappings", "entries", "an array", entries);
    }
    entries.forEach((e, i) => {
      const where = "MmioWindow.setMappings";
      checkObject(where, `entries[${i}]`, e);
      checkInstance(where, `entries[${i}].port`, e.port, MmioPort);
      checkAddress(where, `entries[${i}].base`, e.base);
      checkString(where, `entries[${i}].owner`, e.owner);
    });
    const rejected: { base: number; port: MmioPort }[] = [];
    const accepted: Region[] = [];
    const end = this.base + this.size;
    for (const e of entries) {
      const r = new Region(e.port.name, e.base, e.port.size, "mmio", e.owner, e.port, null);
      if (
        !(r.base >= this.base && r.end <= end) ||
        accepted.some((a) => a.base < r.end && r.base < a.end)
      ) {
        rejected.push({ base: e.base, port: e.port });
        continue;
      }
      accepted.push(r);
    }
    accepted.sort((a, b) => a.base - b.base);
    this.subs = accepted;
    if (this.fabric !== null) invalidateOf(this.fabric);
    return rejected;
  }

  /** The ports mapped now, lowest address first. */
  mappings(): MemoryMapEntry[] {
    return this.subs.map((r) => ({
      name: r.name,
      base: r.base,
      size: r.end - r.base,
      kind: r.kind,
      owner: r.owner,
    }));
  }
}

const NO_REGION = new Region("", 0, 0, "mmio", "", null, null);

/**
 * Routes absolute physical addresses to MMIO ports, windows and memory: the CPU's view of
 * the SoC's address map.
 *
 * Memory accesses through the fabric go straight to physical memory (no step, no trace);
 * MMIO accesses go through the port (one step each, traced).
 *
 * **Invariants:** top-level regions never overlap.
 *
 * **Errors:** `EBUSY` when a new region overlaps an existing one; `EFAULT` for an access to
 * an address where nothing is mapped (a real SoC would raise an SError); `EINVAL` for a bad
 * address, offset, value, name or owner, and for a port or window that is not an
 * {@link MmioPort} or {@link MmioWindow}.
 *
 * @example
 * ```ts
 * soc.fabric.write32(0x2_8000_0034, 1 << 3); // DART STREAM_SELECT
 * soc.fabric.read32(0x2_8000_0020);
 * ```
 */
export class MmioFabric {
  private regions: Region[] = [];
  private last: Region = NO_REGION;
  private readonly memory: PhysicalMemory;

  constructor(memory: PhysicalMemory) {
    this.memory = memory;
  }

  /**
   * Throws `EBUSY` if `[base, base + size)` overlaps a mapped region (and `EINVAL` for a bad
   * range), so a model can check its addresses before it changes anything.
   */
  checkFree(name: string, base: number, size: number): void {
    checkRegion("MmioFabric.checkFree", name, base, size);
    this.#clash(new Region(name, base, size, "mmio", "", null, null));
  }

  /** Maps `port` at `base`. */
  map(base: number, port: MmioPort, owner: string): void {
    checkInstance("MmioFabric.map", "port", port, MmioPort);
    checkRegion("MmioFabric.map", port.name, base, port.size);
    checkString("MmioFabric.map", "owner", owner);
    this.#add(new Region(port.name, base, port.size, "mmio", owner, port, null));
  }

  /** Maps a window whose contents the owner manages. */
  mapWindow(name: string, window: MmioWindow, owner: string): void {
    checkString("MmioFabric.mapWindow", "name", name, true);
    checkInstance("MmioFabric.mapWindow", "window", window, MmioWindow);
    checkString("MmioFabric.mapWindow", "owner", owner);
    this.#add(new Region(name, window.base, window.size, "window", owner, null, window));
    window.fabric = this;
  }

  static {
    mapMemoryOf = (fabric, name, base, size, kind) => fabric.#mapMemory(name, base, size, kind);
    invalidateOf = (fabric) => fabric.#invalidate();
  }

  #mapMemory(name: string, base: number, size: number, kind: "ram" | "memory"): void {
    this.#add(new Region(name, base, size, kind, "soc", null, null));
  }

  /** Removes the region that starts at `base`; returns whether there was one. */
  unmap(base: number): boolean {
    const i = this.regions.findIndex((r) => r.base === base);
    if (i < 0) return false;
    this.regions.splice(i, 1);
    this.#invalidate();
    return true;
  }

  /** Forgets the cached last region (after a mapping change). */
  #invalidate(): void {
    this.last = NO_REGION;
  }

  /** The top-level regions and every port mapped inside a window, lowest address first. */
  entries(): MemoryMapEntry[] {
    const out: MemoryMapEntry[] = [];
    for (const r of this.regions) {
      out.push({ name: r.name, base: r.base, size: r.end - r.base, kind: r.kind, owner: r.owner });
      if (r.window !== null) out.push(...r.window.mappings());
    }
    return out;
  }

  read8(pa: number): number {
    const r = this.#find(pa, 1);
    if (r.port !== null) return r.port.read8(pa - r.base);
    if (r.window !== null) return r.window.fallback.read8(pa - r.base);
    return this.memory.read8(pa);
  }

  read16(pa: number): number {
    const r = this.#find(pa, 2);
    if (r.port !== null) return r.port.read16(pa - r.base);
    if (r.window !== null) return r.window.fallback.read16(pa - r.base);
    return this.memory.read8(pa) | (this.memory.read8(pa + 1) << 8);
  }

  read32(pa: number): number {
    const r = this.#find(pa, 4);
    if (r.port !== null) return r.port.read32(pa - r.base);
    if (r.window !== null) return r.window.fallback.read32(pa - r.base);
    return this.memory.read32(pa);
  }

  write8(pa: number, value: number): void {
    const r = this.#find(pa, 1);
    if (r.port !== null) r.port.write8(pa - r.base, value);
    else if (r.window !== null) r.window.fallback.write8(pa - r.base, value);
    else this.memory.write8(pa, value);
  }

  write16(pa: number, value: number): void {
    const r = this.#find(pa, 2);
    if (r.port !== null) r.port.write16(pa - r.base, value);
    else if (r.window !== null) r.window.fallback.write16(pa - r.base, value);
    else {
      this.memory.write8(pa, value);
      this.memory.write8(pa + 1, value >>> 8);
    }
  }

  write32(pa: number, value: number): void {
    const r = this.#find(pa, 4);
    if (r.port !== null) r.port.write32(pa - r.base, value);
    else if (r.window !== null) r.window.fallback.write32(pa - r.base, value);
    else this.memory.write32(pa, value);
  }

  /** The region holding `[pa, pa + width)`; a window's port when one is mapped there. */
  #find(pa: number, width: number): Region {
    const last = this.last;
    if (typeof pa === "number" && pa >= last.base && pa + width <= last.end) return last;
    return this.#lookup(pa, width);
  }

  #lookup(pa: number, width: number): Region {
    if (typeof pa !== "number" || !(pa >= 0 && pa < PHYS_ADDR_LIMIT) || Math.floor(pa) !== pa) {
      throw argumentError("MmioFabric", "pa", "a physical address below 2^52", pa);
    }
    let r = search(this.regions, pa);
    if (r !== null && r.window !== null) {
      const sub = search(r.window.subs, pa);
      if (sub !== null) r = sub;
    }
    if (r === null || pa + width > r.end) {
      throw new DevrefError(
        "EFAULT",
        `no device or memory at ${formatAddr(pa)} (${width}-byte access): check the address ` +
          "against soc.memoryMap(); a real SoC would take an SError here",
      );
    }
    // A window is never cached: a port mapped inside it later must still be found.
    if (r.window === null) this.last = r;
    return r;
  }

  #add(r: Region): void {
    this.#clash(r);
    this.regions.push(r);
    this.regions.sort((a, b) => a.base - b.base);
    this.#invalidate();
  }

  #clash(r: Region): void {
    if (
      !(Number.isSafeInteger(r.base) && r.base >= 0 && r.end <= PHYS_ADDR_LIMIT && r.end > r.base)
    ) {
      throw argumentError(
        "MmioFabric",
        "base",
        "a physical address with the region below 2^52",
        r.base,
      );
    }
    const clash = this.regions.find((o) => o.base < r.end && r.base < o.end);
    if (clash !== undefined) {
      throw new DevrefError(
        "EBUSY",
        `region '${r.name}' at ${formatAddr(r.base)}+0x${(r.end - r.base).toString(16)} overlaps ` +
          `'${clash.name}' at ${formatAddr(clash.base)}: pick a free address (see soc.memoryMap())`,
      );
    }
  }
}

/** A region's name and range, checked before a {@link Region} is made of them. */
function checkRegion(where: string, name: unknown, base: unknown, size: unknown): void {
  checkString(where, "name", name, true);
  checkSize(where, "size", size);
  checkAddress(where, "base", base);
}

function search(list: readonly Region[], pa: number): Region | null {
  let lo = 0;
  let hi = list.length - 1;
  while (lo <= hi) {
    const mid = (lo + hi) >>> 1;
    const r = list[mid]!;
    if (pa < r.base) hi = mid - 1;
    else if (pa >= r.end) lo = mid + 1;
    else return r;
  }
  return null;
}
