// Item 18: every export — and every public method of the objects the package hands out —
// fed wrong-typed and out-of-range values either succeeds or throws a DevrefError that
// changed nothing, and the system's audit (mappings, IOVAs, bounce slots, RAM; table pages
// at the end) holds after every call. The case table is keyed by the module's exports, so a
// new export (or method) without a case fails here.

import type { Device } from "@devref/device-core";
import { deviceStateOf } from "@devref/device-core/unsafe";
import { IotlbGather } from "@devref/io-pgtable";
import {
  DevrefError,
  type DmaAddr,
  iova,
  type PhysAddr,
  physAddr,
  refcountOf,
  SparseMemory,
} from "@devref/raw-device";
import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { CoherentAllocation } from "../src/coherent.js";
import { DmaIommuCookie, FlushQueue } from "../src/dma-iommu.js";
import { DeviceDma } from "../src/dma-state.js";
import * as api from "../src/index.js";
import { IommuClient, IommuDevice, IommuDomain, IommuGroup } from "../src/iommu.js";
import { IommuPages } from "../src/ram.js";
import {
  addDevice,
  addTestIommu,
  type Env,
  makeEnv,
  type TestDevice,
  type TestIommu,
} from "./dma-helpers.js";

const SEED = 42;
const RUNS = 60;

// ---------------------------------------------------------------------------------------
// The world each case runs in.

/** Stand-ins for a Bound borrow of one of the context's devices, resolved at call time. */
const BOUND = {
  direct: Symbol("bound: direct"),
  behind: Symbol("bound: behind"),
  lazy: Symbol("bound: lazy"),
  vfio: Symbol("bound: vfio"),
} as const;
type DevKey = keyof typeof BOUND;
const DEV_KEYS: readonly DevKey[] = ["direct", "behind", "lazy", "vfio"];

interface LiveMap {
  readonly dev: DevKey;
  readonly pa: PhysAddr;
  addr: DmaAddr;
  readonly size: number;
  readonly dir: api.DmaDirection;
}

interface LiveSg {
  readonly dev: DevKey;
  readonly sg: api.ScatterList;
  readonly dir: api.DmaDirection;
}

interface Ctx {
  readonly env: Env;
  readonly mmu: TestIommu;
  readonly fqmmu: TestIommu;
  readonly devs: Record<DevKey, TestDevice>;
  readonly un: api.IommuDomain;
  readonly high: PhysAddr;
  readonly low: PhysAddr;
  /** Streaming mappings kept live: re-made before each run when a call undid them. */
  readonly maps: LiveMap[];
  readonly sgs: readonly LiveSg[];
  readonly coherent: readonly api.CoherentAllocation[];
  readonly iovad: api.IovaDomain;
  /** IOVA ranges of the standalone domain kept allocated: [pfn, size]. */
  readonly pfns: [number, number][];
  readonly poolMem: SparseMemory;
  readonly pool: api.SwiotlbPool;
  /** Bounce mappings of the standalone pool kept live. */
  readonly bounces: { orig: PhysAddr; bounce: PhysAddr; size: number; dir: api.DmaDirection }[];
  readonly stale: Device;
  /** What successful calls created, given back at teardown. */
  readonly made: {
    domains: api.IommuDomain[];
    buffers: [PhysAddr, number][];
    pages: [PhysAddr, number][];
  };
}

let ctxCount = 0;

function makeCtx(): Ctx {
  ctxCount++;
  const env = makeEnv({ swiotlb: { base: 0x4000_0000, nslabs: 1024 } });
  const mmu = addTestIommu(env, { name: `pmmu${ctxCount}` });
  const fqmmu = addTestIommu(env, {
    name: `fqmmu${ctxCount}`,
    defDomainType: api.IOMMU_DOMAIN_DMA_FQ,
  });
  const devs: Record<DevKey, TestDevice> = {
    direct: addDevice(env, { name: `pdirect${ctxCount}` }),
    behind: addDevice(env, {
      name: `pbehind${ctxCount}`,
      iommus: [{ iommu: mmu.iommu().name, ids: [1] }],
    }),
    lazy: addDevice(env, {
      name: `plazy${ctxCount}`,
      iommus: [{ iommu: fqmmu.iommu().name, ids: [1] }],
    }),
    vfio: addDevice(env, {
      name: `pvfio${ctxCount}`,
      iommus: [{ iommu: mmu.iommu().name, ids: [2] }],
    }),
  };
  const un = devs.vfio.run((d) => api.iommuPagingDomainAlloc(d));
  devs.vfio.run((d) => api.iommuAttachDevice(un, d));
  const sys = env.system;
  const high = sys.allocBuffer(1 << 16, "high");
  const low = sys.allocBuffer(1 << 16, "low");
  const specs: [DevKey, PhysAddr, number, api.DmaDirection][] = [
    ["direct", high, 2048, api.DMA_TO_DEVICE], // bounced: above the 32-bit mask
    ["direct", physAddr(high + 0x1000), 1000, api.DMA_FROM_DEVICE], // bounced, copied back
    ["direct", low, 4096, api.DMA_BIDIRECTIONAL], // direct
    ["behind", high, 4096, api.DMA_FROM_DEVICE], // strict IOMMU
    ["lazy", low, 100, api.DMA_TO_DEVICE], // flush queue
  ];
  const maps: LiveMap[] = specs.map(([dev, pa, size, dir]) => ({
    dev,
    pa,
    size,
    dir,
    addr: devs[dev].run((d) => api.dmaMapSingle(d, pa, size, dir)),
  }));
  const sgs: LiveSg[] = [
    {
      dev: "direct",
      dir: api.DMA_FROM_DEVICE,
      sg: new api.ScatterList([
        { pa: physAddr(high + 0x4000), length: 512 },
        { pa: physAddr(low + 0x4000), length: 3000 },
      ]),
    },
    {
      dev: "behind",
      dir: api.DMA_TO_DEVICE,
      sg: new api.ScatterList([
        { pa: physAddr(high + 0x8000), length: 4096 },
        { pa: physAddr(high + 0x9000), length: 100 },
      ]),
    },
  ];
  for (const l of sgs) devs[l.dev].run((d) => api.dmaMapSg(d, l.sg, l.dir));
  const coherent = [
    devs.direct.run((d) => api.dmaAllocCoherent(d, 4096)),
    devs.behind.run((d) => api.dmaAllocCoherent(d, 8192)),
  ];
  const iovad = new api.IovaDomain(4096, 1);
  const pfns: [number, number][] = [
    [iovad.allocIova(4, 0xfffff, true), 4],
    [iovad.allocIovaFast(2, 0xfffff, true), 2],
  ];
  const poolMem = new SparseMemory(2 ** 36);
  const pool = new api.SwiotlbPool(poolMem, { base: 0x100_0000, nslabs: 256 });
  const bounceSpecs: { orig: PhysAddr; size: number; dir: api.DmaDirection }[] = [
    { orig: physAddr(0x8_0000_0000), size: 1000, dir: api.DMA_FROM_DEVICE },
    { orig: physAddr(0x8_0001_0000), size: 4096, dir: api.DMA_TO_DEVICE },
  ];
  const bounces = bounceSpecs.map((b) => ({ ...b, bounce: pool.map(b.orig, b.size, b.dir) }));
  const stale = devs.direct.run((d) => d as Device);
  return {
    env,
    mmu,
    fqmmu,
    devs,
    un,
    high,
    low,
    maps,
    sgs,
    coherent,
    iovad,
    pfns,
    poolMem,
    pool,
    bounces,
    stale,
    made: { domains: [], buffers: [], pages: [] },
  };
}

/** Re-makes what earlier calls undid, so that every run meets live mappings and ranges. */
function refresh(ctx: Ctx): void {
  for (const m of ctx.maps) {
    const dev = ctx.devs[m.dev];
    const held = api
      .dmaDeviceAudit(dev.ref)
      .entries.some((e) => e.kind === "single" && e.dmaAddr === m.addr && e.size === m.size);
    if (held) continue;
    const a = dev.run((d) => api.dmaMapSingle(d, m.pa, m.size, m.dir, api.DMA_ATTR_NO_WARN));
    if (a !== api.DMA_MAPPING_ERROR) m.addr = a;
  }
  for (const l of ctx.sgs) {
    if (l.sg.nents === 0)
      ctx.devs[l.dev].run((d) => api.dmaMapSg(d, l.sg, l.dir, api.DMA_ATTR_NO_WARN));
  }
  for (const p of ctx.pfns) {
    const r = ctx.iovad.findIova(p[0]);
    if (r === undefined || r.cached || r.pfnLo !== p[0])
      p[0] = ctx.iovad.allocIova(p[1], 0xfffff, true);
  }
  const live = new Set(ctx.pool.mappings().map((m) => m.bounce));
  for (const b of ctx.bounces)
    if (!live.has(b.bounce)) b.bounce = ctx.pool.map(b.orig, b.size, b.dir);
}

/** A value read from the context when the call is made (after {@link refresh}). */
class Live {
  constructor(readonly get: (ctx: Ctx) => unknown) {}
}

/** Every DMA domain of the context (default domains and the unmanaged one). */
function domainsOf(ctx: Ctx): api.IommuDomain[] {
  const out = [ctx.un];
  for (const k of DEV_KEYS) {
    const g = ctx.devs[k].ref.isBound ? api.iommuGroupGet(ctx.devs[k].ref) : null;
    if (g?.defaultDomain) out.push(g.defaultDomain);
  }
  return out;
}

/** What a call that throws must leave exactly as it was. */
function snapshot(ctx: Ctx): string {
  const sys = ctx.env.system;
  const pool = sys.swiotlb.stats();
  return JSON.stringify([
    DEV_KEYS.map((k) => api.dmaDeviceAudit(ctx.devs[k].ref)),
    DEV_KEYS.map((k) => refcountOf(ctx.devs[k].ref)),
    [refcountOf(ctx.mmu.ref), refcountOf(ctx.fqmmu.ref)],
    [pool.usedSlots, pool.mappings],
    sys.audit().ramByUse,
    [...sys.iommus.keys()],
    domainsOf(ctx).map((d) =>
      d.freed ? "freed" : (d.cookie?.iovad.ranges().filter((r) => !r.cached) ?? d.type),
    ),
    ctx.iovad.ranges().filter((r) => !r.cached),
    ctx.pool.mappings(),
    ctx.sgs.map((l) => l.sg.nents),
    ctx.coherent.map((c) => c.isAvailable),
    sys.leakReports.length,
  ]);
}

/** The audits that must hold after every call, successful or not. */
function auditHolds(ctx: Ctx): void {
  expect(ctx.env.system.audit().problems).toEqual([]);
  const s = ctx.iovad.stats();
  const ranges = ctx.iovad.ranges();
  expect(s.ranges).toBe(ranges.length);
  expect(s.pfns).toBe(ranges.reduce((n, r) => n + r.pfnHi - r.pfnLo + 1, 0));
  for (let i = 1; i < ranges.length; i++)
    expect(ranges[i]!.pfnLo).toBeGreaterThan(ranges[i - 1]!.pfnHi);
  const p = ctx.pool.stats();
  const maps = ctx.pool.mappings();
  expect(p.mappings).toBe(maps.length);
  expect(p.usedSlots).toBe(maps.reduce((n, m) => n + m.slots, 0));
}

function teardown(ctx: Ctx): void {
  const sys = ctx.env.system;
  for (const k of DEV_KEYS) {
    const d = ctx.devs[k];
    if (!d.ref.isDead) ctx.env.bus.unplug(d.ref);
  }
  for (const dom of [ctx.un, ...ctx.made.domains]) api.iommuDomainFree(dom);
  ctx.env.bus.unplug(ctx.mmu.ref);
  ctx.env.bus.unplug(ctx.fqmmu.ref);
  for (const [pa, size] of [[ctx.high, 1 << 16], [ctx.low, 1 << 16], ...ctx.made.buffers] as [
    PhysAddr,
    number,
  ][]) {
    try {
      sys.freeBuffer(pa, size);
    } catch {
      // freed by the case itself
    }
  }
  for (const [pa, size] of ctx.made.pages) sys.iommuPages.free(pa, size);
  expect(sys.audit().problems).toEqual([]);
  expect(sys.audit().ramInUse).toBe(0);
  expect(sys.swiotlb.stats().usedSlots).toBe(0);
  expect(ctx.mmu.pages.bytesInUse).toBe(0);
  expect(ctx.fqmmu.pages.bytesInUse).toBe(0);
  for (const k of DEV_KEYS) ctx.devs[k].ref.put();
  ctx.mmu.ref.put();
  ctx.fqmmu.ref.put();
}

// ---------------------------------------------------------------------------------------
// Values.

const hostile = {
  valueOf(): number {
    throw new TypeError("hostile valueOf");
  },
  toString(): string {
    throw new TypeError("hostile toString");
  },
};

/** Wrong types and out-of-range values of every kind. */
function junk(ctx: Ctx): fc.Arbitrary<unknown> {
  return fc.oneof(
    fc.constantFrom<unknown>(
      undefined,
      null,
      Number.NaN,
      Number.POSITIVE_INFINITY,
      Number.NEGATIVE_INFINITY,
      -1,
      -0,
      0,
      0.5,
      1.5,
      2 ** 31,
      2 ** 32,
      2 ** 52,
      2 ** 53,
      2 ** 64,
      -(2 ** 53),
      "",
      "1",
      "0x1000",
      true,
      false,
      [],
      [1],
      {},
      Symbol("junk"),
      () => 0,
      1n,
      2n ** 64n,
      new Float64Array(0),
      new Uint8Array(4),
      hostile,
      api.DMA_MAPPING_ERROR,
      ctx.stale,
      ctx.env.system,
      ctx.iovad,
      new IotlbGather(),
    ),
    fc.integer(),
    fc.double(),
    fc.string(),
    fc.bigInt(),
    fc.object({ maxDepth: 1 }),
  );
}

interface Case {
  /** A valid value for each argument position; the property swaps in junk at random. */
  args(ctx: Ctx): fc.Arbitrary<unknown>[];
  /** Valid argument lists whose positions belong together (a live mapping's address, size, direction). */
  tuples?(ctx: Ctx): fc.Arbitrary<unknown[]>;
  call(ctx: Ctx, args: unknown[]): unknown;
}

const CONSTANT = "constant" as const;
type Entry = Case | typeof CONSTANT;

const k = <T>(v: T): fc.Arbitrary<T> => fc.constant(v);
const bound = (...keys: DevKey[]): fc.Arbitrary<symbol> =>
  fc.constantFrom(...keys.map((x) => BOUND[x]));
const owned = (ctx: Ctx): fc.Arbitrary<unknown> =>
  fc.constantFrom(...DEV_KEYS.map((x) => ctx.devs[x].ref));
const pa = (ctx: Ctx): fc.Arbitrary<PhysAddr> =>
  fc.tuple(fc.constantFrom(ctx.high, ctx.low), fc.nat(15)).map(([b, i]) => physAddr(b + i * 4096));
const size = (): fc.Arbitrary<number> =>
  fc.oneof(fc.constantFrom(1, 100, 2048, 4096, 8192), fc.integer({ min: 1, max: 70000 }));
const dir = (): fc.Arbitrary<number> => fc.constantFrom(0, 1, 2);
const attrs = (): fc.Arbitrary<number> =>
  fc.constantFrom(0, api.DMA_ATTR_SKIP_CPU_SYNC, api.DMA_ATTR_NO_WARN);
const addr = (ctx: Ctx): fc.Arbitrary<Live> =>
  fc.nat(ctx.maps.length - 1).map((i) => new Live((x) => x.maps[i]!.addr));
const io = (): fc.Arbitrary<number> => fc.nat(255).map((n) => iova(0x100_0000 + n * 4096));
const domain = (ctx: Ctx): fc.Arbitrary<api.IommuDomain> => fc.constantFrom(...domainsOf(ctx));
const sg = (ctx: Ctx): fc.Arbitrary<api.ScatterList> =>
  fc.constantFrom(...ctx.sgs.map((l) => l.sg));
const label = (): fc.Arbitrary<string> => fc.constantFrom("prop", "x");
/** A live mapping as (device, address, size, direction), read when the call is made. */
const live = (c: Ctx): fc.Arbitrary<unknown[]> =>
  fc
    .nat(c.maps.length - 1)
    .map((i) => [
      BOUND[c.maps[i]!.dev],
      new Live((x) => x.maps[i]!.addr),
      c.maps[i]!.size,
      c.maps[i]!.dir,
    ]);
const liveSg = (c: Ctx): fc.Arbitrary<unknown[]> =>
  fc.constantFrom(...c.sgs.map((l): unknown[] => [BOUND[l.dev], l.sg, l.sg.origNents, l.dir]));

function testOps(): api.IommuOps {
  return {
    pgsizeBitmap: 0x1000,
    probeDevice: () => {},
    domainAllocPaging: () => {
      throw new DevrefError("ENOMEM", "no tables in this test");
    },
  };
}

/** Calls `fn` with each export's arguments, ARefs kept by the caller put at once. */
function putAll(result: unknown): unknown {
  if (Array.isArray(result)) for (const r of result) putAll(r);
  else if (typeof result === "object" && result !== null && "put" in result) {
    (result as { put(): void }).put();
  }
  return result;
}

const EXPORTS: { readonly [K in keyof typeof api]: Entry } = {
  // constants
  DMA_BIDIRECTIONAL: CONSTANT,
  DMA_TO_DEVICE: CONSTANT,
  DMA_FROM_DEVICE: CONSTANT,
  DMA_NONE: CONSTANT,
  DMA_ATTR_WEAK_ORDERING: CONSTANT,
  DMA_ATTR_WRITE_COMBINE: CONSTANT,
  DMA_ATTR_NO_KERNEL_MAPPING: CONSTANT,
  DMA_ATTR_SKIP_CPU_SYNC: CONSTANT,
  DMA_ATTR_FORCE_CONTIGUOUS: CONSTANT,
  DMA_ATTR_ALLOC_SINGLE_PAGES: CONSTANT,
  DMA_ATTR_NO_WARN: CONSTANT,
  DMA_ATTR_PRIVILEGED: CONSTANT,
  DMA_ATTR_MMIO: CONSTANT,
  DMA_ATTR_KNOWN: CONSTANT,
  IO_TLB_SHIFT: CONSTANT,
  IO_TLB_SIZE: CONSTANT,
  IO_TLB_SEGSIZE: CONSTANT,
  IO_TLB_DEFAULT_SIZE: CONSTANT,
  IOVA_RANGE_CACHE_MAX_SIZE: CONSTANT,
  IOVA_MAG_SIZE: CONSTANT,
  IOVA_DEPOT_DELAY_MS: CONSTANT,
  IOVA_DEFAULT_FQ_SIZE: CONSTANT,
  IOVA_MAX_PFN: CONSTANT,
  IOMMU_DMA_MAX_GRANULE: CONSTANT,
  IOMMU_DOMAIN_BLOCKED: CONSTANT,
  IOMMU_DOMAIN_DMA: CONSTANT,
  IOMMU_DOMAIN_DMA_FQ: CONSTANT,
  IOMMU_DOMAIN_IDENTITY: CONSTANT,
  IOMMU_DOMAIN_UNMANAGED: CONSTANT,
  IOMMU_FAULT_READ: CONSTANT,
  IOMMU_FAULT_WRITE: CONSTANT,
  IOMMU_RESV_TYPES: CONSTANT,
  DMA_DEFAULT_MAX_SEG_SIZE: CONSTANT,
  DMA_MAPPING_ERROR: CONSTANT,
  // constants.ts
  dmaBitMask: {
    args: () => [fc.integer({ min: 0, max: 64 })],
    call: (_c, a) => api.dmaBitMask(a[0] as never),
  },
  isValidDmaDirection: {
    args: () => [dir()],
    call: (_c, a) => api.isValidDmaDirection(a[0] as never),
  },
  dmaDirectionName: { args: () => [dir()], call: (_c, a) => api.dmaDirectionName(a[0] as never) },
  // dma-iommu.ts
  dmaInfoToProt: {
    args: () => [fc.constantFrom(0, 1, 2, 3), fc.boolean(), attrs()],
    call: (_c, a) => api.dmaInfoToProt(a[0] as never, a[1] as never, a[2] as never),
  },
  // iommu.ts
  deviceIommuCapable: {
    args: (c) => [owned(c), fc.constantFrom("cache-coherency", "noexec", "deferred-flush")],
    call: (_c, a) => api.deviceIommuCapable(a[0] as never, a[1] as never),
  },
  iommuAttachDevice: {
    args: (c) => [domain(c), bound("vfio", "behind")],
    call: (_c, a) => api.iommuAttachDevice(a[0] as never, a[1] as never),
  },
  iommuDetachDevice: {
    args: (c) => [domain(c), bound("vfio", "behind")],
    call: (_c, a) => api.iommuDetachDevice(a[0] as never, a[1] as never),
  },
  iommuDeviceRegister: {
    args: (c) => [
      k(c.env.system),
      bound("direct"),
      fc.constant(null).map(testOps),
      fc.record({ name: fc.string({ minLength: 1 }) }),
    ],
    call: (_c, a) =>
      api.iommuDeviceRegister(a[0] as never, a[1] as never, a[2] as never, a[3] as never),
  },
  iommuDeviceUnregister: {
    args: (c) => [k(c.fqmmu.iommu())],
    call: (_c, a) => api.iommuDeviceUnregister(a[0] as never),
  },
  iommuDomainFree: {
    args: (c) => [domain(c)],
    call: (_c, a) => api.iommuDomainFree(a[0] as never),
  },
  iommuDomainTypeName: {
    args: () => [fc.integer({ min: -1, max: 12 })],
    call: (_c, a) => api.iommuDomainTypeName(a[0] as never),
  },
  iommuGetDomainForDev: {
    args: (c) => [owned(c)],
    call: (_c, a) => api.iommuGetDomainForDev(a[0] as never),
  },
  iommuGroupGet: { args: (c) => [owned(c)], call: (_c, a) => api.iommuGroupGet(a[0] as never) },
  iommuPagingDomainAlloc: {
    args: () => [bound("behind", "vfio", "direct")],
    call: (c, a) => {
      const d = api.iommuPagingDomainAlloc(a[0] as never);
      c.made.domains.push(d);
      return d;
    },
  },
  // iommu-map.ts
  iommuIotlbGatherAddPage: {
    args: (c) => [
      domain(c),
      fc.constant(null).map(() => new IotlbGather()),
      io(),
      fc.constantFrom(4096, 0x20_0000),
    ],
    call: (_c, a) =>
      api.iommuIotlbGatherAddPage(a[0] as never, a[1] as never, a[2] as never, a[3] as never),
  },
  iommuIotlbSync: {
    args: (c) => [domain(c), fc.constant(null).map(() => new IotlbGather())],
    call: (_c, a) => api.iommuIotlbSync(a[0] as never, a[1] as never),
  },
  iommuIovaToPhys: {
    args: (c) => [domain(c), io()],
    call: (_c, a) => api.iommuIovaToPhys(a[0] as never, a[1] as never),
  },
  iommuMap: {
    args: (c) => [k(c.un), io(), pa(c), fc.constantFrom(4096, 8192), fc.constantFrom(1, 2, 3)],
    call: (_c, a) =>
      api.iommuMap(a[0] as never, a[1] as never, a[2] as never, a[3] as never, a[4] as never),
  },
  iommuPgsize: {
    args: (c) => [domain(c), io(), pa(c), size(), fc.constant(null).map(() => new Float64Array(1))],
    call: (_c, a) =>
      api.iommuPgsize(a[0] as never, a[1] as never, a[2] as never, a[3] as never, a[4] as never),
  },
  iommuSetFaultHandler: {
    args: (c) => [domain(c), fc.constantFrom(null, () => 0), fc.anything()],
    call: (_c, a) => api.iommuSetFaultHandler(a[0] as never, a[1] as never, a[2]),
  },
  iommuUnmap: {
    args: (c) => [k(c.un), io(), fc.constantFrom(4096, 8192)],
    call: (_c, a) => api.iommuUnmap(a[0] as never, a[1] as never, a[2] as never),
  },
  iommuUnmapFast: {
    args: (c) => [k(c.un), io(), fc.constantFrom(4096, 8192), k(c.un.gather)],
    call: (c, a) => {
      const n = api.iommuUnmapFast(a[0] as never, a[1] as never, a[2] as never, a[3] as never);
      api.iommuIotlbSync(c.un, c.un.gather);
      return n;
    },
  },
  reportIommuFault: {
    args: (c) => [domain(c), fc.oneof(owned(c), k(null)), io(), fc.constantFrom(0, 1)],
    call: (_c, a) =>
      api.reportIommuFault(a[0] as never, a[1] as never, a[2] as never, a[3] as never),
  },
  // classes
  IovaDomain: {
    args: () => [
      fc.constantFrom(4096, 16384, 65536),
      fc.integer({ min: 1, max: 100 }),
      fc.record({ pageSize: fc.constantFrom(4096, 65536) }),
    ],
    call: (_c, a) => new api.IovaDomain(a[0] as never, a[1] as never, a[2] as never),
  },
  SwiotlbPool: {
    args: (c) => [
      k(c.poolMem),
      fc.record({
        base: fc.constantFrom(0x200_0000, 0x201_0000),
        nslabs: fc.constantFrom(128, 256),
      }),
    ],
    call: (_c, a) => new api.SwiotlbPool(a[0] as never, a[1] as never),
  },
  DmaSystem: {
    args: () => [
      fc.record({
        swiotlb: fc.record({ base: fc.constant(0x4000_0000), nslabs: fc.constantFrom(128, 256) }),
        zoneDmaBits: fc.integer({ min: 1, max: 40 }),
      }),
    ],
    call: (_c, a) => new api.DmaSystem(a[0] as never),
  },
  ScatterList: {
    args: (c) => [
      fc.array(fc.record({ pa: pa(c), length: size() }), { minLength: 1, maxLength: 3 }),
    ],
    call: (_c, a) => new api.ScatterList(a[0] as never),
  },
  // mapping.ts
  dmaConfigure: {
    args: (c) => [
      k(c.env.system),
      bound("direct", "behind"),
      fc.record({ forceBounce: fc.boolean() }),
    ],
    call: (_c, a) => api.dmaConfigure(a[0] as never, a[1] as never, a[2] as never),
  },
  dmaConfigureDevice: {
    args: (c) => [
      k(c.env.system),
      fc.constantFrom(...DEV_KEYS.map((x) => deviceStateOf(c.devs[x].ref))),
      k({}),
    ],
    call: (_c, a) => api.dmaConfigureDevice(a[0] as never, a[1] as never, a[2] as never),
  },
  dmaDeviceAudit: { args: (c) => [owned(c)], call: (_c, a) => api.dmaDeviceAudit(a[0] as never) },
  dmaGetMask: { args: (c) => [owned(c)], call: (_c, a) => api.dmaGetMask(a[0] as never) },
  dmaStateOf: { args: (c) => [owned(c)], call: (_c, a) => api.dmaStateOf(a[0] as never) },
  dmaSetMask: {
    args: () => [bound("direct", "vfio"), fc.integer({ min: 1, max: 64 })],
    call: (_c, a) => api.dmaSetMask(a[0] as never, a[1] as never),
  },
  dmaSetCoherentMask: {
    args: () => [bound("direct", "vfio"), fc.integer({ min: 1, max: 64 })],
    call: (_c, a) => api.dmaSetCoherentMask(a[0] as never, a[1] as never),
  },
  dmaSetMaskAndCoherent: {
    args: () => [bound("direct", "vfio"), fc.integer({ min: 1, max: 64 })],
    call: (_c, a) => api.dmaSetMaskAndCoherent(a[0] as never, a[1] as never),
  },
  // coherent.ts
  dmaAllocCoherent: {
    args: () => [bound("direct", "behind", "lazy", "vfio"), fc.integer({ min: 1, max: 65536 })],
    call: (_c, a) => api.dmaAllocCoherent(a[0] as never, a[1] as never),
  },
  // streaming.ts
  dmaLastError: { args: (c) => [owned(c)], call: (_c, a) => api.dmaLastError(a[0] as never) },
  dmaMappingError: {
    args: (c) => [owned(c), addr(c)],
    call: (_c, a) => api.dmaMappingError(a[0] as never, a[1] as never),
  },
  dmaMapSingle: {
    args: (c) => [bound("direct", "behind", "lazy", "vfio"), pa(c), size(), dir(), attrs()],
    call: (_c, a) =>
      api.dmaMapSingle(a[0] as never, a[1] as never, a[2] as never, a[3] as never, a[4] as never),
  },
  dmaUnmapSingle: {
    args: (c) => [
      bound("direct", "behind", "lazy"),
      addr(c),
      fc.constantFrom(100, 2048, 4096),
      dir(),
      attrs(),
    ],
    tuples: (c) => fc.tuple(live(c), attrs()).map(([m, at]) => [...m, at]),
    call: (_c, a) =>
      api.dmaUnmapSingle(a[0] as never, a[1] as never, a[2] as never, a[3] as never, a[4] as never),
  },
  dmaSyncSingleForCpu: {
    args: (c) => [
      bound("direct", "behind", "lazy"),
      addr(c),
      fc.constantFrom(1, 100, 2048, 4096),
      dir(),
    ],
    tuples: live,
    call: (_c, a) =>
      api.dmaSyncSingleForCpu(a[0] as never, a[1] as never, a[2] as never, a[3] as never),
  },
  dmaSyncSingleForDevice: {
    args: (c) => [
      bound("direct", "behind", "lazy"),
      addr(c),
      fc.constantFrom(1, 100, 2048, 4096),
      dir(),
    ],
    tuples: live,
    call: (_c, a) =>
      api.dmaSyncSingleForDevice(a[0] as never, a[1] as never, a[2] as never, a[3] as never),
  },
  dmaMapSg: {
    args: (c) => [
      bound("direct", "behind", "lazy"),
      fc.oneof(
        sg(c),
        fc.constant(null).map(() => new api.ScatterList([{ pa: c.high, length: 300 }])),
      ),
      dir(),
      attrs(),
    ],
    call: (_c, a) => api.dmaMapSg(a[0] as never, a[1] as never, a[2] as never, a[3] as never),
  },
  dmaUnmapSg: {
    args: (c) => [bound("direct", "behind"), sg(c), fc.constantFrom(1, 2), dir(), attrs()],
    tuples: (c) => fc.tuple(liveSg(c), attrs()).map(([m, at]) => [...m, at]),
    call: (_c, a) =>
      api.dmaUnmapSg(a[0] as never, a[1] as never, a[2] as never, a[3] as never, a[4] as never),
  },
  dmaSyncSgForCpu: {
    args: (c) => [bound("direct", "behind"), sg(c), fc.constantFrom(1, 2), dir()],
    tuples: liveSg,
    call: (_c, a) =>
      api.dmaSyncSgForCpu(a[0] as never, a[1] as never, a[2] as never, a[3] as never),
  },
  dmaSyncSgForDevice: {
    args: (c) => [bound("direct", "behind"), sg(c), fc.constantFrom(1, 2), dir()],
    tuples: liveSg,
    call: (_c, a) =>
      api.dmaSyncSgForDevice(a[0] as never, a[1] as never, a[2] as never, a[3] as never),
  },
};

// ---------------------------------------------------------------------------------------
// Methods of the objects the package hands out. Every method on the prototype has a case:
// what the package keeps to itself is #private, out of reach of callers (and of this list).

interface MethodCases {
  /** The object to call on. */
  readonly self: (ctx: Ctx) => object;
  readonly cases: Readonly<Record<string, Case>>;
  /** Valid argument lists that belong together, by method. */
  readonly tuples?: Readonly<Record<string, (ctx: Ctx) => fc.Arbitrary<unknown[]>>>;
}

function method(
  name: string,
  args: (ctx: Ctx) => fc.Arbitrary<unknown>[],
  self: (ctx: Ctx) => object,
): Case {
  return {
    args,
    call: (c, a) => {
      const o = self(c) as Record<string, (...x: unknown[]) => unknown>;
      return putAll(o[name]!(...a));
    },
  };
}

function cases(
  self: (ctx: Ctx) => object,
  table: Record<string, (ctx: Ctx) => fc.Arbitrary<unknown>[]>,
): Record<string, Case> {
  const out: Record<string, Case> = {};
  for (const [name, args] of Object.entries(table)) out[name] = method(name, args, self);
  return out;
}

const none = (): fc.Arbitrary<unknown>[] => [];
const pfn = (c: Ctx): fc.Arbitrary<unknown> =>
  fc.oneof(
    fc.nat(c.pfns.length - 1).map((i) => new Live((x) => x.pfns[i]![0])),
    fc.integer({ min: 0, max: 0xfffff }),
  );
const bounceAddr = (c: Ctx): fc.Arbitrary<Live> =>
  fc.nat(c.bounces.length - 1).map((i) => new Live((x) => x.bounces[i]!.bounce));
const policy = (): fc.Arbitrary<unknown> =>
  fc.record({ prefer32: fc.boolean(), device: fc.string() });

const bounceOf = (c: Ctx): fc.Arbitrary<unknown[]> =>
  fc
    .nat(c.bounces.length - 1)
    .map((i) => [new Live((x) => x.bounces[i]!.bounce), c.bounces[i]!.size, c.bounces[i]!.dir]);
const selfIovad = (c: Ctx): object => c.iovad;
const selfPool = (c: Ctx): object => c.pool;
const selfSystem = (c: Ctx): object => c.env.system;
const selfCoherent = (c: Ctx): object => c.coherent[0]!;
const selfIommu = (c: Ctx): object => c.mmu.iommu();
const selfFq = (c: Ctx): object => api.iommuGetDomainForDev(c.devs.lazy.ref)!.cookie!.fq!;
const selfCookie = (c: Ctx): object => api.iommuGetDomainForDev(c.devs.lazy.ref)!.cookie!;
const selfDma = (c: Ctx): object => api.dmaStateOf(c.devs.direct.ref)!;

const METHODS: ReadonlyMap<abstract new (...a: never[]) => unknown, MethodCases> = new Map<
  abstract new (
    ...a: never[]
  ) => unknown,
  MethodCases
>([
  [
    api.IovaDomain,
    {
      self: selfIovad,
      cases: cases(selfIovad, {
        allocIova: () => [
          fc.integer({ min: 1, max: 64 }),
          fc.constantFrom(0xfffff, 0x1000),
          fc.boolean(),
        ],
        findIova: (c) => [pfn(c)],
        freeIova: (c) => [pfn(c)],
        reserveIova: () => [
          fc.integer({ min: 0, max: 0x200 }),
          fc.integer({ min: 0x200, max: 0x400 }),
        ],
        allocIovaFast: () => [
          fc.integer({ min: 1, max: 64 }),
          fc.constantFrom(0xfffff, 0x1000),
          fc.boolean(),
        ],
        freeIovaFast: (c) => [pfn(c), fc.constantFrom(1, 2, 4)],
        flushRcaches: none,
        trimDepot: none,
        allocForDevice: () => [size(), fc.constantFrom(0xffff_ffff, 2 ** 40 - 1), policy()],
        tryAllocForDevice: () => [size(), fc.constantFrom(0xffff_ffff, 2 ** 40 - 1), policy()],
        stats: none,
        ranges: none,
      }),
      tuples: {
        freeIovaFast: (c) =>
          fc.nat(c.pfns.length - 1).map((i) => [new Live((x) => x.pfns[i]![0]), c.pfns[i]![1]]),
        freeIova: (c) => fc.nat(c.pfns.length - 1).map((i) => [new Live((x) => x.pfns[i]![0])]),
      },
    },
  ],
  [
    api.SwiotlbPool,
    {
      self: selfPool,
      cases: cases(selfPool, {
        map: () => [
          fc.constantFrom(physAddr(0x8_0002_0000), physAddr(0x8_0002_0800)),
          fc.integer({ min: 1, max: 5000 }),
          dir(),
          attrs(),
          fc.record({ minAlignMask: fc.constantFrom(0, 0xfff) }),
        ],
        unmap: (c) => [bounceAddr(c), fc.constantFrom(1000, 4096), dir(), attrs()],
        syncForCpu: (c) => [bounceAddr(c), fc.constantFrom(1, 1000, 4096), dir()],
        syncForDevice: (c) => [bounceAddr(c), fc.constantFrom(1, 1000, 4096), dir()],
        isBounceAddress: (c) => [bounceAddr(c)],
        maxMappingSize: () => [fc.constantFrom(0, 0xfff)],
        stats: none,
        mappings: none,
      }),
      tuples: {
        unmap: (c) => fc.tuple(bounceOf(c), attrs()).map(([b, at]) => [...b, at]),
        syncForCpu: bounceOf,
        syncForDevice: bounceOf,
      },
    },
  ],
  [
    api.DmaSystem,
    {
      self: selfSystem,
      cases: {
        ...cases(selfSystem, {
          freeBuffer: (c) => [
            fc.constantFrom(...c.made.buffers.map((b) => b[0]), c.high, c.low),
            fc.constantFrom(4096, 1 << 16),
          ],
          audit: none,
          ramUseOf: (c) => [pa(c), size()],
        }),
        allocBuffer: {
          args: () => [fc.integer({ min: 1, max: 1 << 20 }), fc.constantFrom("low", "high")],
          call: (c, a) => {
            const b = c.env.system.allocBuffer(a[0] as never, a[1] as never);
            c.made.buffers.push([b, a[0] as number]);
            return b;
          },
        },
      },
    },
  ],
  [
    IommuPages,
    {
      self: (c) => c.env.system.iommuPages,
      cases: {
        alloc: {
          args: () => [fc.constantFrom(4096, 16384), fc.constantFrom(1, 4096, 16384)],
          call: (c, a) => {
            const pa = c.env.system.iommuPages.alloc(a[0] as never, a[1] as never);
            c.made.pages.push([pa, a[0] as number]);
            return pa;
          },
        },
        free: {
          args: (c) => [
            fc.constantFrom(...c.made.pages.map((p) => p[0]), c.high),
            fc.constantFrom(4096, 16384),
          ],
          call: (c, a) => {
            c.env.system.iommuPages.free(a[0] as never, a[1] as never);
            const i = c.made.pages.findIndex((p) => p[0] === a[0]);
            if (i >= 0) c.made.pages.splice(i, 1);
          },
        },
      },
    },
  ],
  [api.ScatterList, { self: (c) => c.sgs[0]!.sg, cases: {} }],
  [
    CoherentAllocation,
    {
      self: selfCoherent,
      cases: cases(selfCoherent, {
        read8: () => [fc.integer({ min: 0, max: 4096 })],
        write8: () => [fc.integer({ min: 0, max: 4096 }), fc.integer({ min: 0, max: 255 })],
        read32: () => [fc.integer({ min: 0, max: 4096 })],
        write32: () => [fc.integer({ min: 0, max: 4096 }), fc.nat()],
        read64: () => [fc.integer({ min: 0, max: 4096 })],
        write64: () => [fc.integer({ min: 0, max: 4096 }), fc.nat(), fc.nat()],
        readBytes: () => [
          fc.integer({ min: 0, max: 4096 }),
          fc.constant(null).map(() => new Uint8Array(16)),
        ],
        writeBytes: () => [
          fc.integer({ min: 0, max: 4096 }),
          fc.constant(null).map(() => new Uint8Array(16)),
        ],
        dmaHandleWithOffset: () => [fc.integer({ min: 0, max: 4096 })],
        free: none,
      }),
    },
  ],
  [
    IommuDevice,
    {
      self: selfIommu,
      cases: cases(selfIommu, { getHwDevice: () => [label()], getClientRefs: () => [label()] }),
    },
  ],
  [
    FlushQueue,
    {
      self: selfFq,
      cases: cases(selfFq, {
        push: () => [fc.integer({ min: 1, max: 0x100000 }), fc.integer({ min: 1, max: 4 })],
        flush: none,
        tick: none,
      }),
    },
  ],
  [DmaIommuCookie, { self: selfCookie, cases: cases(selfCookie, { destroy: none }) }],
  [
    DeviceDma,
    {
      self: selfDma,
      cases: cases(selfDma, {
        cleanup: none,
        maskChanging: () => [
          fc.constant(null),
          fc.integer({ min: 1, max: 64 }),
          fc.boolean(),
          fc.boolean(),
        ],
      }),
    },
  ],
  [IommuDomain, { self: (c) => c.un, cases: {} }],
  [IommuGroup, { self: (c) => api.iommuGroupGet(c.devs.behind.ref)!, cases: {} }],
  [IommuClient, { self: (c) => c.devs.behind.ref.iommu!, cases: {} }],
]);

// ---------------------------------------------------------------------------------------
// The property.

function resolve(ctx: Ctx, args: unknown[], dev: Device | null, key: DevKey | null): unknown[] {
  return args.map((a) => {
    for (const x of DEV_KEYS) if (a === BOUND[x]) return x === key ? dev : ctx.stale;
    return a;
  });
}

function invoke(ctx: Ctx, c: Case, tokens: unknown[]): unknown {
  const args = tokens.map((a) => (a instanceof Live ? a.get(ctx) : a));
  const key = DEV_KEYS.find((x) => args.includes(BOUND[x])) ?? null;
  if (key === null) return c.call(ctx, resolve(ctx, args, null, null));
  return ctx.devs[key].run((dev) => c.call(ctx, resolve(ctx, args, dev, key)));
}

function check(name: string, c: Case): void {
  const ctx = makeCtx();
  try {
    const j = junk(ctx);
    const independent = fc.tuple(...c.args(ctx)) as fc.Arbitrary<unknown[]>;
    const valid = c.tuples === undefined ? independent : fc.oneof(c.tuples(ctx), independent);
    const withJunk = valid.chain((v) =>
      fc.tuple(
        ...v.map((x) =>
          fc.oneof({ arbitrary: fc.constant(x), weight: 3 }, { arbitrary: j, weight: 1 }),
        ),
      ),
    );
    fc.assert(
      fc.property(withJunk, (args) => {
        refresh(ctx);
        const before = snapshot(ctx);
        let threw: unknown = null;
        try {
          invoke(ctx, c, args);
        } catch (e) {
          threw = e;
        }
        if (threw !== null) {
          if (!(threw instanceof DevrefError)) {
            throw new Error(`${name} threw ${String(threw)} (not a DevrefError)`, { cause: threw });
          }
          expect(snapshot(ctx), `${name}: ${threw.message}`).toBe(before);
        }
        auditHolds(ctx);
      }),
      { seed: SEED, numRuns: RUNS },
    );
  } finally {
    teardown(ctx);
  }
}

function protoMethods(C: abstract new (...a: never[]) => unknown): string[] {
  const p = C.prototype as object;
  return Object.getOwnPropertyNames(p).filter((n) => {
    if (n === "constructor") return false;
    return typeof Object.getOwnPropertyDescriptor(p, n)?.value === "function";
  });
}

describe("item 18: every export checks every argument", () => {
  it("item 18: the case table covers every export and every public method", () => {
    expect(Object.keys(EXPORTS).sort()).toEqual(Object.keys(api).sort());
    for (const [name, entry] of Object.entries(EXPORTS)) {
      const v = (api as Record<string, unknown>)[name];
      if (entry === CONSTANT) expect(typeof v, name).not.toBe("function");
      else expect(typeof v, name).toBe("function");
    }
    for (const [name, v] of Object.entries(api)) {
      if (typeof v === "function" && "prototype" in v && /^[A-Z]/.test(name)) {
        expect(METHODS.has(v as never), `methods of ${name}`).toBe(true);
      }
    }
    for (const [C, m] of METHODS) {
      expect(protoMethods(C).sort(), C.name).toEqual(Object.keys(m.cases).sort());
    }
  });

  for (const [name, entry] of Object.entries(EXPORTS)) {
    if (entry === CONSTANT) continue;
    it(`item 18: ${name}`, () => check(name, entry));
  }
  for (const [C, m] of METHODS) {
    for (const [name, c] of Object.entries(m.cases)) {
      const tuples = m.tuples?.[name];
      const withTuples: Case = tuples === undefined ? c : { ...c, tuples };
      it(`item 18: ${C.name}.${name}`, () => check(`${C.name}.${name}`, withTuples));
    }
  }
});
