// Type promises of the example: what the driver hands out is read-only, its domains are
// IOMMU domain ops, and the engine's borrow cannot leave the job it was lent to.
import type { PlatformDevice, PlatformDriver } from "@devref/bus";
import type { IommuDomainOps, IommuOps } from "@devref/dma-iommu";
import type { Borrowed, Bound, Static } from "@devref/raw-device";
import type { Scenario } from "@devref/sim";
import { describe, expectTypeOf, it } from "vitest";
import {
  type AppleDart,
  type AppleDartDriver,
  appleDartScenario,
  createAppleDartDriver,
  createDmaEngineDriver,
  DART_HW_T8110,
  type DartDomain,
  type DartFault,
  type DartHw,
  type DartParams,
  dartIommuOps,
  dartTtbrValue,
  decodeDartError,
} from "../src/index.js";

declare const dart: AppleDart;
declare const drivers: AppleDartDriver;

describe("apple-dart types", () => {
  it("the driver definition is a static platform driver whose data is the DART", () => {
    expectTypeOf(createAppleDartDriver).returns.toEqualTypeOf<AppleDartDriver>();
    expectTypeOf(drivers.driver).toEqualTypeOf<Static<PlatformDriver<AppleDart, DartHw>>>();
    expectTypeOf(drivers.dart).returns.toEqualTypeOf<AppleDart | null>();
  });

  it("what a DART reports is read-only", () => {
    expectTypeOf(dart.params).toEqualTypeOf<DartParams>();
    // @ts-expect-error PARAMS are what probe read; nobody rewrites them
    dart.params.numStreams = 3;
    // @ts-expect-error the counters are the driver's
    dart.stats.faults = 0;
    // @ts-expect-error the fault history is a read-only view
    dart.faults.push(decodeDartError(DART_HW_T8110, 0, 0, 0)!);
    // @ts-expect-error the last command error is set by the driver only
    dart.lastCommandError = null;
    // @ts-expect-error variant descriptions are constants
    DART_HW_T8110.tcrEnabled = 0;
  });

  it("domains are IOMMU domain ops; the IOMMU side is IOMMU ops", () => {
    expectTypeOf<DartDomain>().toExtend<IommuDomainOps>();
    expectTypeOf(dartIommuOps).returns.toEqualTypeOf<IommuOps>();
    expectTypeOf(decodeDartError).returns.toEqualTypeOf<DartFault | null>();
    expectTypeOf(dartTtbrValue).returns.toBeNumber();
  });

  it("the engine's borrow cannot be kept past its job", () => {
    const engines = createDmaEngineDriver();
    expectTypeOf(engines.run("e", () => 1)).toEqualTypeOf<number | undefined>();
    engines.run("e", <S>(dev: Borrowed<PlatformDevice<Bound>, S>) => dev.name);
    // @ts-expect-error returning the borrow would let it escape the job
    engines.run("e", (dev) => dev); // eslint-disable-line @devref/no-stored-borrow -- the point of the test
  });

  it("the scenario is a sim Scenario", () => {
    expectTypeOf(appleDartScenario).toEqualTypeOf<Scenario>();
  });
});
