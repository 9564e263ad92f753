// A register-level virtio-pci driver for the tests: just enough to find the structures,
// negotiate, lay out split virtqueues in memory (at IOVAs when a DART translates) and
// submit descriptor chains by hand.

import type { Dart, Soc } from "../src/index.js";
import { REFERENCE_MAP as M } from "../src/reference.js";
import { attachTranslate, buildTables, tables } from "./dart-helpers.js";

export const BAR1_BUS = 0xc000_0000;
export const BAR4_BUS = 0xc001_0000;
const cpu = (bus: number) => bus - M.WINDOW_BUS_BASE + M.WINDOW_BASE;

/** Memory the driver hands to the device: CPU writes at `pa + off`, the device uses `dev + off`. */
export interface Arena {
  readonly pa: number;
  readonly dev: number;
  readonly size: number;
  next: number;
}

/** Carves `len` bytes aligned to `align` from the arena: [cpu address, device address]. */
export function carve(a: Arena, len: number, align = 16): [number, number] {
  a.next = Math.ceil(a.next / align) * align;
  const off = a.next;
  a.next += len;
  if (a.next > a.size) throw new Error("arena full");
  return [a.pa + off, a.dev + off];
}

export interface VirtioCaps {
  common: number;
  notify: number;
  mult: number;
  isr: number;
  device: number;
  pciCfg: number;
  msix: number;
  types: number[];
}

export class TestVirtio {
  readonly soc: Soc;
  readonly ecam: number;
  caps: VirtioCaps = {
    common: 0,
    notify: 0,
    mult: 0,
    isr: 0,
    device: 0,
    pciCfg: 0,
    msix: 0,
    types: [],
  };

  constructor(soc: Soc, slot = 0) {
    this.soc = soc;
    this.ecam = M.ECAM_BASE + (slot << 15);
  }

  c8 = (reg: number): number => this.soc.fabric.read8(this.ecam + reg);
  c16 = (reg: number): number => this.soc.fabric.read16(this.ecam + reg);
  c32 = (reg: number): number => this.soc.fabric.read32(this.ecam + reg);
  cw16 = (reg: number, v: number): void => this.soc.fabric.write16(this.ecam + reg, v);
  cw32 = (reg: number, v: number): void => this.soc.fabric.write32(this.ecam + reg, v);

  /** Assigns BAR1 and BAR4, enables memory and bus mastering, and parses the capabilities. */
  enable(): void {
    this.cw32(0x14, BAR1_BUS);
    this.cw32(0x20, BAR4_BUS);
    this.cw32(0x24, 0);
    this.cw16(0x04, 0x6);
    let at = this.c8(0x34) & ~3;
    const caps = this.caps;
    for (let n = 0; at !== 0 && n < 48; n++) {
      const id = this.c8(at);
      if (id === 0x11) caps.msix = at;
      if (id === 0x09) {
        const type = this.c8(at + 3);
        const bar = this.c8(at + 4);
        const off = this.c32(at + 8);
        caps.types.push(type);
        const base = cpu(bar === 4 ? BAR4_BUS : BAR1_BUS) + off;
        if (type === 1) caps.common = base;
        if (type === 2) {
          caps.notify = base;
          caps.mult = this.c32(at + 16);
        }
        if (type === 3) caps.isr = base;
        if (type === 4) caps.device = base;
        if (type === 5) caps.pciCfg = at;
      }
      at = this.c8(at + 1) & ~3;
    }
  }

  r8 = (off: number): number => this.soc.fabric.read8(this.caps.common + off);
  r16 = (off: number): number => this.soc.fabric.read16(this.caps.common + off);
  r32 = (off: number): number => this.soc.fabric.read32(this.caps.common + off);
  w8 = (off: number, v: number): void => this.soc.fabric.write8(this.caps.common + off, v);
  w16 = (off: number, v: number): void => this.soc.fabric.write16(this.caps.common + off, v);
  w32 = (off: number, v: number): void => this.soc.fabric.write32(this.caps.common + off, v);

  get status(): number {
    return this.r8(20);
  }

  features(): [number, number] {
    this.w32(0, 0);
    const lo = this.r32(4);
    this.w32(0, 1);
    return [lo, this.r32(4)];
  }

  /** Reset, ACK, DRIVER, accept `accept` (default: everything offered), FEATURES_OK; returns the status. */
  negotiate(accept?: [number, number]): number {
    this.w8(20, 0);
    this.w8(20, 1);
    this.w8(20, 3);
    const [lo, hi] = accept ?? this.features();
    this.w32(8, 0);
    this.w32(12, lo);
    this.w32(8, 1);
    this.w32(12, hi);
    this.w8(20, 0xb);
    return this.status;
  }

  /** Lays out queue `q` of `size` entries in `arena` and enables it. */
  setupQueue(arena: Arena, q: number, size: number, msixVector?: number): Queue {
    this.w16(22, q);
    const max = this.r16(24);
    if (size > max) throw new Error(`queue ${q} max ${max}`);
    const [descPa, descDev] = carve(arena, 16 * size, 16);
    const [availPa, availDev] = carve(arena, 6 + 2 * size, 2);
    const [usedPa, usedDev] = carve(arena, 6 + 8 * size, 4);
    this.w16(24, size);
    const split = (v: number): [number, number] => [v % 2 ** 32, Math.floor(v / 2 ** 32)];
    for (const [off, v] of [
      [32, descDev],
      [40, availDev],
      [48, usedDev],
    ] as const) {
      const [lo, hi] = split(v);
      this.w32(off, lo);
      this.w32(off + 4, hi);
    }
    if (msixVector !== undefined) this.w16(26, msixVector);
    const notifyOff = this.r16(30);
    this.w16(28, 1);
    return new Queue(
      this,
      q,
      size,
      descPa,
      availPa,
      usedPa,
      this.caps.notify + notifyOff * this.caps.mult,
    );
  }

  driverOk(): void {
    this.w8(20, this.status | 4);
  }
}

export interface Seg {
  readonly addr: number;
  readonly len: number;
  readonly write?: boolean;
}

export class Queue {
  private nextDesc = 0;
  private availIdx = 0;
  constructor(
    readonly drv: TestVirtio,
    readonly index: number,
    readonly size: number,
    readonly descPa: number,
    readonly availPa: number,
    readonly usedPa: number,
    readonly notifyAddr: number,
  ) {}

  /** Writes `segs` as a chain and publishes it; returns the head. Does not kick. */
  add(segs: readonly Seg[], flagsOverride?: number[]): number {
    const mem = this.drv.soc.memory;
    const head = this.nextDesc;
    segs.forEach((s, i) => {
      const d = (head + i) % this.size;
      const at = this.descPa + 16 * d;
      mem.write64(at, s.addr % 2 ** 32, Math.floor(s.addr / 2 ** 32));
      mem.write32(at + 8, s.len);
      const last = i === segs.length - 1;
      const flags = flagsOverride?.[i] ?? (last ? 0 : 1) | (s.write ? 2 : 0);
      mem.write8(at + 12, flags);
      mem.write8(at + 13, 0);
      const next = (d + 1) % this.size;
      mem.write8(at + 14, next & 0xff);
      mem.write8(at + 15, next >>> 8);
    });
    this.nextDesc = (head + segs.length) % this.size;
    const slot = this.availPa + 4 + 2 * (this.availIdx % this.size);
    mem.write8(slot, head & 0xff);
    mem.write8(slot + 1, head >>> 8);
    this.availIdx = (this.availIdx + 1) & 0xffff;
    mem.write8(this.availPa + 2, this.availIdx & 0xff);
    mem.write8(this.availPa + 3, this.availIdx >>> 8);
    return head;
  }

  kick(): void {
    this.drv.soc.fabric.write16(this.notifyAddr, this.index);
  }

  get usedIdx(): number {
    const m = this.drv.soc.memory;
    return m.read8(this.usedPa + 2) | (m.read8(this.usedPa + 3) << 8);
  }

  usedElem(i: number): { id: number; len: number } {
    const m = this.drv.soc.memory;
    const at = this.usedPa + 4 + 8 * (i % this.size);
    return { id: m.read32(at), len: m.read32(at + 4) };
  }

  /** Sets `used_event` (EVENT_IDX). */
  setUsedEvent(v: number): void {
    const m = this.drv.soc.memory;
    const at = this.availPa + 4 + 2 * this.size;
    m.write8(at, v & 0xff);
    m.write8(at + 1, v >>> 8);
  }
}

/** A block request header in memory. */
export function header(soc: Soc, pa: number, type: number, sector: number): void {
  soc.memory.write32(pa, type);
  soc.memory.write32(pa + 4, 0);
  soc.memory.write64(pa + 8, sector % 2 ** 32, Math.floor(sector / 2 ** 32));
}

/**
 * A DMA arena for the disk: plain RAM when the device has no IOMMU; otherwise RAM mapped at
 * IOVA 0x100_0000 on the DART's stream 1 (reset done the kernel's way).
 */
export function arenaFor(soc: Soc, dart: Dart | null, size = 0x2_0000): Arena {
  const pa = soc.ram.alloc(size, 0x4000);
  if (dart === null) return { pa, dev: pa, size, next: 0 };
  const iova = 0x100_0000;
  const t = buildTables(tables(soc, dart.variant === "t8020" ? "dart1" : "dart2", dart.pageShift));
  for (let off = 0; off < size; off += dart.pageSize) t.map(iova + off, pa + off);
  attachTranslate(soc, dart, M.PCIE_SID, t.top);
  return { pa, dev: iova, size, next: 0 };
}

/** The kernel's reset of the reference SoC's (t8110) DART, in place. */
export function kernelDartReset(soc: Soc, dart: Dart): void {
  const w = (off: number, v: number) => soc.fabric.write32(M.DART_BASE + off, v);
  for (let sid = 0; sid < dart.numStreams; sid++) {
    w(0x1000 + 4 * sid, 0);
    w(0x1400 + 4 * sid, 0);
  }
  w(0xc00, 0xffff_ffff);
  w(0x104, 0);
  w(0x80, 0);
}
