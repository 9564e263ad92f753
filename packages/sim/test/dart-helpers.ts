// Hand-built DART page tables for the tests (specs/io-pgtable.md §3.3), written word by word
// so the tests share no code with io-pgtable or with the model's walker.
import type { PhysicalMemory } from "@devref/raw-device";
import { Dart, type DartVariant, type Soc } from "../src/index.js";

export const DART_BASE = 0x2_8000_0000;
export const DART_IRQ = 10;

export interface Tables {
  readonly format: "dart1" | "dart2";
  readonly pageShift: number;
  readonly mem: PhysicalMemory;
  /** Allocates a zeroed, page-aligned table page. */
  alloc(): number;
}

export function tables(soc: Soc, format: "dart1" | "dart2", pageShift = 14): Tables {
  const size = 2 ** pageShift;
  return { format, pageShift, mem: soc.memory, alloc: () => soc.ram.alloc(size, size) };
}

/** A table entry (next-level pointer) for `next`. */
export function tableEntry(format: "dart1" | "dart2", next: number): [number, number] {
  return outputBits(format, next, 1);
}

/** A leaf for `pa` with R/W permissions and the full subpage range. */
export function leafEntry(
  format: "dart1" | "dart2",
  pa: number,
  perms: LeafPerms = {},
): [number, number] {
  const read = perms.read ?? true;
  const write = perms.write ?? true;
  let flags = 1;
  if (format === "dart1") {
    flags |= 2; // SP_DIS
    if (!write) flags |= 1 << 7;
    if (!read) flags |= 1 << 8;
  } else {
    if (!write) flags |= 1 << 2;
    if (!read) flags |= 1 << 3;
  }
  const [lo, hi] = outputBits(format, pa, flags);
  const spEnd = perms.spEnd ?? 0xfff;
  const spStart = perms.spStart ?? 0;
  return [lo, (hi | (spEnd << 8) | (spStart << 20)) >>> 0];
}

function outputBits(format: "dart1" | "dart2", pa: number, flags: number): [number, number] {
  if (format === "dart1") {
    // PA[35:12] in place.
    const lo = (pa % 0x1_0000_0000) & 0xffff_f000;
    const hi = Math.floor(pa / 0x1_0000_0000) & 0xf;
    return [(lo | flags) >>> 0, hi];
  }
  // PA[41:14] stored from bit 10: (pa >> 4) & [37:10].
  const v = pa / 16;
  const lo = (v % 0x1_0000_0000) & 0xffff_fc00;
  const hi = Math.floor(v / 0x1_0000_0000) & 0x3f;
  return [(lo | flags) >>> 0, hi];
}

export function put(mem: PhysicalMemory, at: number, [lo, hi]: [number, number]): void {
  mem.write64(at, lo, hi);
}

/**
 * A two-level table (three with the TTBR) for one stream: returns the top table, and
 * `map(dva, pa)` / `unmap(dva)` that fill or clear leaves (allocating leaf tables).
 * With `fourLevel`, a level-0 table sits on top.
 */
export interface LeafPerms {
  read?: boolean;
  write?: boolean;
  spStart?: number;
  spEnd?: number;
}

export interface BuiltTables {
  readonly top: number;
  readonly l1: number;
  leafTableOf(dva: number): number | undefined;
  map(dva: number, pa: number, perms?: LeafPerms): void;
  unmap(dva: number): void;
  dropLeafTable(dva: number): void;
}

export function buildTables(t: Tables, fourLevel = false): BuiltTables {
  const g = t.pageShift;
  const bpl = g - 3;
  const mask = (1 << bpl) - 1;
  const top = t.alloc();
  const l1 = fourLevel ? t.alloc() : top;
  if (fourLevel) put(t.mem, top, tableEntry(t.format, l1)); // L0 index 0 → l1
  const leafTables = new Map<number, number>();
  const leafSlot = (dva: number): number => {
    const i1 = Math.floor(dva / 2 ** (g + bpl)) & mask;
    let leaf = leafTables.get(i1);
    if (leaf === undefined) {
      leaf = t.alloc();
      leafTables.set(i1, leaf);
      put(t.mem, l1 + i1 * 8, tableEntry(t.format, leaf));
    }
    return leaf + (Math.floor(dva / 2 ** g) & mask) * 8;
  };
  return {
    top,
    l1,
    leafTableOf: (dva: number) => leafTables.get(Math.floor(dva / 2 ** (g + bpl)) & mask),
    map(dva: number, pa: number, perms?: LeafPerms): void {
      put(t.mem, leafSlot(dva), leafEntry(t.format, pa, perms));
    },
    unmap(dva: number): void {
      t.mem.write64(leafSlot(dva), 0, 0);
    },
    /** Clears the level-1 entry that points at the leaf table of `dva`. */
    dropLeafTable(dva: number): void {
      const i1 = Math.floor(dva / 2 ** (g + bpl)) & mask;
      t.mem.write64(l1 + i1 * 8, 0, 0);
    },
  };
}

/** A DART at DART_BASE with the kernel's reset sequence done (§1.8.2). */
export function resetDart(
  soc: Soc,
  variant: DartVariant,
  extra: Partial<ConstructorParameters<typeof Dart>[1]> = {},
): Dart {
  const dart = new Dart(soc, { name: "dart0", variant, base: DART_BASE, irq: DART_IRQ, ...extra });
  const w = (off: number, v: number) => soc.fabric.write32(DART_BASE + off, v);
  const r = (off: number) => soc.fabric.read32(DART_BASE + off);
  if (variant === "t8110") {
    for (let sid = 0; sid < dart.numStreams; sid++) {
      w(0x1000 + 4 * sid, 0);
      w(0x1400 + 4 * sid, 0);
    }
    for (let i = 0; i < Math.ceil(dart.numStreams / 32); i++) w(0xc00 + 4 * i, 0xffff_ffff);
    w(0x100, r(0x100));
    w(0x104, 0);
    for (let sid = 0; sid < dart.numStreams; sid++) w(0x80, (1 << 8) | sid);
  } else {
    for (let sid = 0; sid < 16; sid++) {
      w(0x100 + 4 * sid, 0);
      for (let i = 0; i < 4; i++) w(0x200 + 16 * sid + 4 * i, 0);
    }
    w(0xfc, 0xffff_ffff);
    w(0x40, r(0x40));
    w(0x34, 0xffff);
    w(0x20, 1 << 20);
  }
  return dart;
}

/** Attaches a paging domain to `sid` the way the kernel does: TTBRs, then TCR, then invalidate. */
export function attachTranslate(
  soc: Soc,
  dart: Dart,
  sid: number,
  top: number,
  fourLevel = false,
): void {
  const w = (off: number, v: number) => soc.fabric.write32(DART_BASE + off, v);
  if (dart.variant === "t8110") {
    w(0x1400 + 4 * sid, (1 | ((top / 2 ** 14) << 2)) >>> 0);
    w(0x1000 + 4 * sid, fourLevel ? 0x9 : 0x1);
  } else {
    w(0x200 + 16 * sid, (0x8000_0000 | (top / 2 ** 12)) >>> 0);
    for (let i = 1; i < 4; i++) w(0x200 + 16 * sid + 4 * i, 0);
    w(0x100 + 4 * sid, 0x80);
  }
  invalidate(soc, dart, sid);
}

/** The kernel's per-stream TLB invalidation (§1.8.5). */
export function invalidate(soc: Soc, dart: Dart, sid: number): void {
  if (dart.variant === "t8110") soc.fabric.write32(DART_BASE + 0x80, (1 << 8) | sid);
  else {
    soc.fabric.write32(DART_BASE + 0x34, 1 << sid);
    soc.fabric.write32(DART_BASE + 0x20, 1 << 20);
  }
}

export function errorRegs(dart: Dart): { error: number; addrLo: number; addrHi: number } {
  const t8110 = dart.variant === "t8110";
  return {
    error: dart.port.read32(t8110 ? 0x100 : 0x40),
    addrLo: dart.port.read32(t8110 ? 0x170 : 0x50),
    addrHi: dart.port.read32(t8110 ? 0x174 : 0x54),
  };
}
