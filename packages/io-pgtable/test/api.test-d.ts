// Type-level promises of the API.
import type { Iova, PhysAddr, PhysicalMemory } from "@devref/raw-device";
import { describe, expectTypeOf, it } from "vitest";
import {
  type AppleDartIoPgtable,
  type ArmLpaeFormat,
  type ArmLpaeIoPgtable,
  type ArmLpaeS1Cfg,
  type ArmLpaeS2Cfg,
  allocIoPgtable,
  type DecodeOptions,
  decodeIoPgtable,
  type IoPgtableCfg,
  type IoPgtableOps,
  type IoPgtableProblem,
  type IovaArg,
} from "../src/index.js";

declare const pages: Parameters<typeof allocIoPgtable>[2];
declare const iova: Iova;
declare const pa: PhysAddr;
declare const mem: PhysicalMemory;

describe("io-pgtable API types", () => {
  it("allocIoPgtable returns the format's class and cfg", () => {
    const t = allocIoPgtable("arm-64-lpae-s1", { pgsizeBitmap: 0x1000, ias: 48, oas: 48 }, pages);
    expectTypeOf(t).toEqualTypeOf<ArmLpaeIoPgtable<"arm-64-lpae-s1">>();
    // The cfg is the format's: no narrowing needed to read the stage-1 registers.
    expectTypeOf(t.cfg).toEqualTypeOf<ArmLpaeS1Cfg>();
    expectTypeOf(t.cfg.armLpaeS1Cfg.ttbr).toEqualTypeOf<PhysAddr>();
    const s2 = allocIoPgtable("arm-64-lpae-s2", { pgsizeBitmap: 0x1000, ias: 48, oas: 48 }, pages);
    expectTypeOf(s2.cfg).toEqualTypeOf<ArmLpaeS2Cfg>();
    // @ts-expect-error -- a stage-2 table has no stage-1 registers
    s2.cfg.armLpaeS1Cfg;
    // A format known only at run time gives the union, to narrow on cfg.format.
    const stage = "arm-64-lpae-s1" as ArmLpaeFormat;
    expectTypeOf(
      allocIoPgtable(stage, { pgsizeBitmap: 0x1000, ias: 48, oas: 48 }, pages).cfg,
    ).toEqualTypeOf<ArmLpaeS1Cfg | ArmLpaeS2Cfg>();
    expectTypeOf(
      allocIoPgtable("apple-dart", { pgsizeBitmap: 0x4000, ias: 32, oas: 36 }, pages),
    ).toEqualTypeOf<AppleDartIoPgtable>();
    expectTypeOf(t).toMatchTypeOf<IoPgtableOps>();
    expectTypeOf(t).toMatchTypeOf<Disposable>();
    expectTypeOf(t.cfg).toMatchTypeOf<IoPgtableCfg>();
    // @ts-expect-error -- unknown formats are not accepted
    allocIoPgtable("arm-v7s", { pgsizeBitmap: 0x1000, ias: 32, oas: 32 }, pages);
  });

  it("Iova and PhysAddr are not interchangeable in mapPages", () => {
    const t = allocIoPgtable("arm-64-lpae-s2", { pgsizeBitmap: 0x1000, ias: 48, oas: 48 }, pages);
    expectTypeOf(t.mapPages(iova, pa, 0x1000, 1, 3)).toEqualTypeOf<number>();
    // @ts-expect-error -- a physical address is not an IOVA
    t.mapPages(pa, pa, 0x1000, 1, 3);
    // @ts-expect-error -- an IOVA is not a physical address
    t.mapPages(iova, iova, 0x1000, 1, 3);
    // @ts-expect-error -- plain numbers must be branded first (iova(), physAddr())
    t.mapPages(0x1000, pa, 0x1000, 1, 3);
    expectTypeOf(t.iovaToPhys(iova)).toEqualTypeOf<PhysAddr>();
  });

  it("TTBR1 addresses may be bigints", () => {
    expectTypeOf<bigint>().toMatchTypeOf<IovaArg>();
    const t = allocIoPgtable("arm-64-lpae-s1", { pgsizeBitmap: 0x1000, ias: 48, oas: 48 }, pages);
    t.unmapPages(0xffff_ffff_ffff_f000n, 0x1000, 1);
  });

  it("the written-back cfg narrows on format", () => {
    const cfg = {} as IoPgtableCfg;
    if (cfg.format === "arm-64-lpae-s1")
      expectTypeOf(cfg.armLpaeS1Cfg.ttbr).toEqualTypeOf<PhysAddr>();
    if (cfg.format === "apple-dart2")
      expectTypeOf(cfg.appleDartCfg.ttbr).toEqualTypeOf<readonly PhysAddr[]>();
    // @ts-expect-error -- stage-2 fields are not on every cfg
    cfg.armLpaeS2Cfg;
  });

  it("decoder problems are typed, and page views are optional on a memory", () => {
    expectTypeOf<NonNullable<DecodeOptions["onProblem"]>>()
      .parameter(0)
      .toEqualTypeOf<IoPgtableProblem>();
    expectTypeOf<IoPgtableProblem["kind"]>().toEqualTypeOf<"revisit" | "outside" | "invalid">();
    expectTypeOf<PhysicalMemory["pageWords"]>().toEqualTypeOf<
      ((pa: number) => Uint32Array) | undefined
    >();
    // A memory without page views is still a memory (tables use its methods instead).
    type Plain = Omit<PhysicalMemory, "pageWords">;
    expectTypeOf<Plain>().toMatchTypeOf<PhysicalMemory>();
    // @ts-expect-error -- a bigint is not a root table address
    decodeIoPgtable(mem, "arm-64-lpae-s1", { pgsizeBitmap: 0x1000, ias: 48, oas: 48 }, 0x1000n);
  });
});
