// Every export of the package, and every method of every exported class, fed wrong-typed and
// out-of-range arguments: each call either succeeds or throws DevrefError naming a parameter it
// was given wrong, and afterwards the table still holds exactly what the independent model says.
// A new export or method without a case here fails the first two tests.
import { BuddyAllocator, DevrefError, SparseMemory } from "@devref/raw-device";
import fc from "fast-check";
import { describe, expect, it } from "vitest";
import * as api from "../src/index.js";
import { AppleDartIoPgtable, ArmLpaeIoPgtable, IotlbGather } from "../src/index.js";
import { ALL_SHAPES, type Cmd, commands, ModelTable, type Shape } from "./model.js";

interface Slot {
  readonly name: string;
  readonly valid: (m: ModelTable) => unknown;
  readonly bad: readonly unknown[];
}

interface CallCase {
  /** The shapes this case can run on (a method needs a table of its class). */
  readonly on: (sh: Shape) => boolean;
  readonly slots: readonly Slot[];
  readonly call: (m: ModelTable, args: unknown[]) => unknown;
  /** For calls that end the table (dispose): what to check instead of the model. */
  readonly after?: (m: ModelTable) => void;
}

const f = () => {};
const NOT_A_NUMBER = [Number.NaN, "16", null, undefined, {}, [], true, 16n, Symbol("x")];
const LPAE = (sh: Shape) => sh.fmt.startsWith("arm");
const DART = (sh: Shape) => sh.fmt.startsWith("apple");
const ANY = () => true;

function memoryWithout(method: string): object {
  const m = new SparseMemory();
  const o: Record<string, unknown> = { size: m.size };
  for (const k of [
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
  ])
    if (k !== method) o[k] = f;
  return o;
}

const BAD_MEMORY = [
  null,
  5,
  "mem",
  {},
  memoryWithout("readBytes"),
  memoryWithout("read64Hi"),
  { ...memoryWithout(""), size: "big" },
];
const BAD_ALLOCATOR = [
  null,
  "pages",
  {},
  { alloc: f, free: f },
  { alloc: 1, free: f, memory: new SparseMemory() },
  { alloc: f, free: f, memory: memoryWithout("zero") },
];
const BAD_CFG = [
  null,
  7,
  "cfg",
  {},
  { pgsizeBitmap: "0x1000", ias: 48, oas: 48 },
  { pgsizeBitmap: 0x1000, ias: 65, oas: 48 },
  { pgsizeBitmap: 0x1000, ias: 48, oas: 1.5 },
  { pgsizeBitmap: 0x1000, ias: 48, oas: 48, quirks: -1 },
  { pgsizeBitmap: 0x1000, ias: 48, oas: 48, coherentWalk: "yes" },
  { pgsizeBitmap: 0x1000, ias: 48, oas: 48, hostPageSize: 8192 },
  { pgsizeBitmap: 0x1000, ias: 48, oas: 48, cacheClean: 1 },
  { pgsizeBitmap: 0x1000, ias: 48, oas: 48, tlb: 3 },
  { pgsizeBitmap: 0x1000, ias: 48, oas: 48, tlb: { tlbAddPage: "no" } },
  { pgsizeBitmap: 0x1000, ias: 48, oas: 48, tlb: { tlbFlushAll: {} } },
  { pgsizeBitmap: 2 ** 53, ias: 48, oas: 48 },
];
const BAD_FORMAT = ["arm-v7s", "", 0, null, undefined, {}, "ARM-64-LPAE-S1"];
const BAD_OPTIONS = [
  5,
  "x",
  { maxTables: 0 },
  { maxEntries: -1 },
  { maxMappings: 0.5 },
  { maxChars: 2 ** 30 },
  { onProblem: 5 },
  { maxTables: "many" },
];
const BAD_IOVA = [
  -1,
  0.5,
  Number.NaN,
  Number.POSITIVE_INFINITY,
  2 ** 53,
  "4096",
  null,
  undefined,
  {},
  [],
  true,
  2n ** 64n,
  -(2n ** 63n) - 1n,
];

const rootOf = (m: ModelTable): unknown => (DART(m.sh) ? m.roots : m.roots[0]);
const LPAE_CFG = { pgsizeBitmap: 0x4020_1000, ias: 48, oas: 48 };
const DART_CFG = { pgsizeBitmap: 0x4000, ias: 32, oas: 42 };

const TABLE_METHODS: Record<string, CallCase> = {
  mapPages: {
    on: ANY,
    slots: [
      { name: "iova", valid: (m) => m.arg(0), bad: BAD_IOVA },
      {
        name: "paddr",
        valid: () => 0x9000_0000,
        bad: [-4096, 2 ** 60, 0.5, 4096n, ...NOT_A_NUMBER],
      },
      {
        name: "pgsize",
        valid: (m) => m.sh.granule,
        bad: [0, -4096, 0.5, 2 ** 60, ...NOT_A_NUMBER],
      },
      { name: "pgcount", valid: () => 1, bad: [-1, 0.5, 2 ** 53, ...NOT_A_NUMBER] },
      { name: "prot", valid: () => 3, bad: [-1, 64, 0, 4, 1.5, 2 ** 40, "3", ...NOT_A_NUMBER] },
    ],
    call: (m, a) => m.t.mapPages(...(a as Parameters<ArmLpaeIoPgtable["mapPages"]>)),
  },
  unmapPages: {
    on: ANY,
    slots: [
      { name: "iova", valid: (m) => m.arg(0), bad: BAD_IOVA },
      {
        name: "pgsize",
        valid: (m) => m.sh.granule,
        bad: [0, -4096, 0.5, 2 ** 60, ...NOT_A_NUMBER],
      },
      { name: "pgcount", valid: () => 1, bad: [-1, 0.5, 2 ** 53, ...NOT_A_NUMBER] },
      { name: "gather", valid: () => null, bad: [{}, { queued: 1 }, 5, "g", true, []] },
    ],
    call: (m, a) => m.t.unmapPages(...(a as Parameters<ArmLpaeIoPgtable["unmapPages"]>)),
  },
  iovaToPhys: {
    on: ANY,
    slots: [{ name: "iova", valid: (m) => m.arg(0x123), bad: BAD_IOVA }],
    call: (m, a) => m.t.iovaToPhys(a[0] as never),
  },
  mappings: {
    on: ANY,
    slots: [{ name: "options", valid: () => undefined, bad: BAD_OPTIONS }],
    call: (m, a) => m.t.mappings(a[0] as never),
  },
  dump: {
    on: ANY,
    slots: [{ name: "options", valid: () => undefined, bad: BAD_OPTIONS }],
    call: (m, a) => m.t.dump(a[0] as never),
  },
  tableBytes: { on: ANY, slots: [], call: (m) => m.t.tableBytes },
  disposed: { on: ANY, slots: [], call: (m) => m.t.disposed },
  [Symbol.dispose as unknown as string]: {
    on: ANY,
    slots: [{ name: "nothing", valid: () => undefined, bad: [1, "x", null] }],
    call: (m, a) => (m.t[Symbol.dispose] as (...x: unknown[]) => void)(...a),
    after: (m) => {
      expect(m.t.disposed).toBe(true);
      expect(m.pages.bytesInUse).toBe(0);
    },
  },
};

const GATHER_METHODS: Record<string, CallCase> = {
  addRange: {
    on: ANY,
    slots: [
      { name: "iova", valid: () => 0x1000, bad: [-1, 0.5, 2 ** 53, ...NOT_A_NUMBER] },
      { name: "size", valid: () => 0x1000, bad: [0, -1, 0.5, 2 ** 53 + 2, ...NOT_A_NUMBER] },
    ],
    call: (_m, a) => new IotlbGather().addRange(a[0] as never, a[1] as never),
  },
  isDisjoint: {
    on: ANY,
    slots: [
      { name: "iova", valid: () => 0x1000, bad: [-1, 0.5, 2 ** 53, ...NOT_A_NUMBER] },
      { name: "size", valid: () => 0x1000, bad: [0, -1, 0.5, 2 ** 53 + 2, ...NOT_A_NUMBER] },
    ],
    call: (_m, a) => new IotlbGather().isDisjoint(a[0] as never, a[1] as never),
  },
  reset: { on: ANY, slots: [], call: () => new IotlbGather().reset() },
};

const decodeSlots: Slot[] = [
  { name: "memory", valid: (m) => m.mem, bad: BAD_MEMORY },
  { name: "format", valid: (m) => m.sh.fmt, bad: BAD_FORMAT },
  { name: "cfg", valid: (m) => m.sh.cfg, bad: BAD_CFG },
  { name: "root", valid: rootOf, bad: [-8, 3, 2 ** 60, "0x1000", null, {}, [1, 2, 3], [0.5], 8n] },
  { name: "options", valid: () => undefined, bad: BAD_OPTIONS },
];

/** A case for every runtime export; constants need none beyond being immutable. */
const EXPORT_CASES: Record<string, CallCase | "constant"> = {
  allocIoPgtable: {
    on: ANY,
    slots: [
      { name: "format", valid: (m) => m.sh.fmt, bad: BAD_FORMAT },
      { name: "cfg", valid: (m) => m.sh.cfg, bad: BAD_CFG },
      { name: "allocator", valid: (m) => m.pages, bad: BAD_ALLOCATOR },
    ],
    call: (_m, a) => api.allocIoPgtable(...(a as Parameters<typeof api.allocIoPgtable>)),
  },
  ArmLpaeIoPgtable: {
    on: ANY,
    slots: [
      { name: "format", valid: () => "arm-64-lpae-s2", bad: [...BAD_FORMAT, "apple-dart"] },
      { name: "cfg", valid: () => LPAE_CFG, bad: BAD_CFG },
      { name: "allocator", valid: (m) => m.pages, bad: BAD_ALLOCATOR },
    ],
    call: (_m, a) => new ArmLpaeIoPgtable(...(a as ConstructorParameters<typeof ArmLpaeIoPgtable>)),
  },
  AppleDartIoPgtable: {
    on: ANY,
    slots: [
      { name: "format", valid: () => "apple-dart2", bad: [...BAD_FORMAT, "arm-64-lpae-s1"] },
      { name: "cfg", valid: () => DART_CFG, bad: BAD_CFG },
      { name: "allocator", valid: (m) => m.pages, bad: BAD_ALLOCATOR },
    ],
    call: (_m, a) =>
      new AppleDartIoPgtable(...(a as ConstructorParameters<typeof AppleDartIoPgtable>)),
  },
  IotlbGather: {
    on: ANY,
    slots: [{ name: "queued", valid: () => false, bad: [1, "yes", null, {}, 0n] }],
    call: (_m, a) => new IotlbGather(a[0] as never),
  },
  decodeIoPgtable: {
    on: ANY,
    slots: decodeSlots,
    call: (_m, a) => api.decodeIoPgtable(...(a as Parameters<typeof api.decodeIoPgtable>)),
  },
  dumpIoPgtable: {
    on: ANY,
    slots: decodeSlots,
    call: (_m, a) => api.dumpIoPgtable(...(a as Parameters<typeof api.dumpIoPgtable>)),
  },
  formatProt: {
    on: ANY,
    slots: [{ name: "prot", valid: () => 7, bad: [-1, 0.5, 2 ** 31, ...NOT_A_NUMBER] }],
    call: (_m, a) => api.formatProt(a[0] as never),
  },
  IOMMU_READ: "constant",
  IOMMU_WRITE: "constant",
  IOMMU_CACHE: "constant",
  IOMMU_NOEXEC: "constant",
  IOMMU_MMIO: "constant",
  IOMMU_PRIV: "constant",
  IOMMU_PROT_MASK: "constant",
  IO_PGTABLE_QUIRK_ARM_NS: "constant",
  IO_PGTABLE_QUIRK_NO_PERMS: "constant",
  IO_PGTABLE_QUIRK_ARM_TTBR1: "constant",
  IO_PGTABLE_QUIRK_ARM_OUTER_WBWA: "constant",
  IO_PGTABLE_QUIRK_ARM_HD: "constant",
  IO_PGTABLE_QUIRK_ARM_S2FWB: "constant",
  IO_PGTABLE_QUIRK_NO_WARN: "constant",
  IO_PGTABLE_FORMATS: "constant",
};

const CLASS_METHODS: [string, object, Record<string, CallCase>, (sh: Shape) => boolean][] = [
  ["ArmLpaeIoPgtable", ArmLpaeIoPgtable.prototype, TABLE_METHODS, LPAE],
  ["AppleDartIoPgtable", AppleDartIoPgtable.prototype, TABLE_METHODS, DART],
  ["IotlbGather", IotlbGather.prototype, GATHER_METHODS, ANY],
];

function ownMembers(proto: object): string[] {
  const names: string[] = Object.getOwnPropertyNames(proto).filter((n) => n !== "constructor");
  for (const s of Object.getOwnPropertySymbols(proto)) names.push(s as unknown as string);
  return names.map(String).sort();
}

const NOT_BAD = Symbol("not corrupted");

/**
 * Builds a table for `sh`, runs `setup`, then calls the case with the arguments `choose` picks
 * (NOT_BAD keeps the slot's valid value) and checks the outcome and the model.
 */
function attempt(
  label: string,
  c: CallCase,
  sh: Shape,
  setup: readonly Cmd[],
  choose: (slot: Slot, i: number) => unknown,
): void {
  const m = new ModelTable(sh);
  for (const cmd of setup) m.run(cmd);
  // A leaf next to IOVA 0, so calls there find the walk cache warm and take any fast path.
  m.run({ op: "map", iova: sh.granule, level: sh.leafLevel, count: 1, pa: 2 ** 31, prot: 3 });
  m.run({ op: "phys", iova: sh.granule });
  const held = m.pages.bytesInUse;
  const corrupted = new Set<string>();
  const args = c.slots.map((slot, i) => {
    const v = choose(slot, i);
    if (v === NOT_BAD) return slot.valid(m);
    corrupted.add(slot.name);
    return v;
  });
  let result: unknown;
  let error: unknown;
  try {
    result = c.call(m, args);
  } catch (e) {
    error = e;
  }
  const what = `${label} on ${sh.name} with ${[...corrupted].join(", ") || "nothing"} wrong (${args.map((a) => (typeof a === "symbol" ? "symbol" : typeof a === "bigint" ? `${a}n` : (JSON.stringify(a) ?? String(a)))).join(", ")})`;
  if (error !== undefined) {
    expect(error, what).toBeInstanceOf(DevrefError);
    const e = error as DevrefError;
    const named = String(e.details.parameter ?? "");
    const hit = [...corrupted].some(
      (p) => named === p || named.startsWith(`${p}.`) || named.startsWith(`${p}[`),
    );
    expect(hit, `${what}: ${e.message}`).toBe(true);
  } else {
    if (result instanceof ArmLpaeIoPgtable || result instanceof AppleDartIoPgtable)
      result[Symbol.dispose]();
    // Every value in the pools is wrong: only a call that ignores its arguments may succeed.
    expect(corrupted.size === 0 || c.after !== undefined, `${what} succeeded`).toBe(true);
  }
  if (c.after !== undefined) {
    c.after(m);
    return;
  }
  expect(m.pages.bytesInUse, `${what}: table memory leaked`).toBe(held);
  m.check();
  m.dispose();
}

describe("item 18: every export validates every argument before changing anything", () => {
  it("every runtime export has a case", () => {
    expect(Object.keys(api).sort()).toEqual(Object.keys(EXPORT_CASES).sort());
    for (const [name, c] of Object.entries(EXPORT_CASES)) {
      if (c !== "constant") continue;
      const v = (api as Record<string, unknown>)[name];
      // A constant is a primitive or frozen: no module state a caller could change.
      expect(typeof v !== "object" || Object.isFrozen(v), name).toBe(true);
    }
  });

  it("every method and accessor of every exported class has a case", () => {
    for (const [name, proto, cases] of CLASS_METHODS) {
      const keys = [...Object.keys(cases), ...Object.getOwnPropertySymbols(cases)].map(String);
      expect(ownMembers(proto), name).toEqual(keys.sort());
    }
  });

  // Every (case, shape) pair the property draws from.
  const targets: { label: string; c: CallCase; ok: (sh: Shape) => boolean }[] = [];
  for (const [name, c] of Object.entries(EXPORT_CASES))
    if (c !== "constant") targets.push({ label: name, c, ok: c.on });
  for (const [cls, , cases, ok] of CLASS_METHODS) {
    for (const k of [...Object.keys(cases), ...Object.getOwnPropertySymbols(cases)]) {
      const c = cases[k as string]!;
      targets.push({ label: `${cls}.${String(k)}`, c, ok });
    }
  }

  it("wrong or out-of-range arguments: DevrefError naming one of them, and the model still holds", () => {
    const arb = fc
      .record({
        target: fc.nat({ max: targets.length - 1 }),
        shape: fc.nat({ max: ALL_SHAPES.length - 1 }),
        mask: fc.nat({ max: 31 }),
        picks: fc.array(fc.nat(), { minLength: 5, maxLength: 5 }),
      })
      .chain((r) => {
        // The first shape the target accepts, starting from the drawn one.
        const ok = targets[r.target]!.ok;
        let k = r.shape;
        while (!ok(ALL_SHAPES[k]!)) k = (k + 1) % ALL_SHAPES.length;
        return commands(ALL_SHAPES[k]!, 6).map((setup) => ({ ...r, shape: k, setup }));
      });
    let calls = 0;
    fc.assert(
      fc.property(arb, ({ target, shape, mask, picks, setup }) => {
        const { label, c } = targets[target]!;
        const sh = ALL_SHAPES[shape]!;
        attempt(label, c, sh, setup, (slot, i) => {
          // At least one argument is wrong when there are any.
          return ((mask >> i) & 1) === 1 || mask % c.slots.length === i
            ? slot.bad[picks[i]! % slot.bad.length]
            : NOT_BAD;
        });
        calls++;
      }),
      { seed: 18, numRuns: 600 },
    );
    expect(calls).toBe(600);
  }, 60_000);

  it("every wrong value of every parameter, alone, on an LPAE, a TTBR1 and a DART table", () => {
    let calls = 0;
    for (const { label, c, ok } of targets) {
      for (const sh of ALL_SHAPES.filter(
        (x) => ok(x) && /S1 4K ias 48|TTBR1|DART2 16K ias 32/.test(x.name),
      )) {
        c.slots.forEach((slot, i) => {
          for (const bad of slot.bad) {
            attempt(label, c, sh, [], (_s, j) => (j === i ? bad : NOT_BAD));
            calls++;
          }
        });
      }
    }
    expect(calls).toBeGreaterThan(500);
  }, 60_000);

  it("a caller's allocator returning a bad address is refused, and nothing leaks", () => {
    const mem = new SparseMemory();
    const real = new BuddyAllocator(mem, 0x8000_0000, 1 << 24);
    for (const bad of [-4096, 0x1234, "x", 2 ** 60, Number.NaN]) {
      const pages = {
        memory: mem,
        get bytesInUse() {
          return real.bytesInUse;
        },
        alloc: () => bad as never,
        free: () => {},
      };
      expect(() => api.allocIoPgtable("arm-64-lpae-s1", LPAE_CFG, pages)).toThrow(DevrefError);
      expect(() => api.allocIoPgtable("apple-dart2", DART_CFG, pages)).toThrow(DevrefError);
    }
  });
});
