// Type promises of the driver-facing side: the SoC's machine and domains are device-core's
// own types, the described nodes are bus specs, and backends fit the buses' seams.
import type { MsiTarget, PciConfigSpace, PlatformDeviceSpec } from "@devref/bus";
import type { IrqChip, IrqDomain, Machine, MmioBackend } from "@devref/device-core";
import { describe, expectTypeOf, it } from "vitest";
import type {
  DescribedNode,
  describeDart,
  describeSoc,
  EcamConfig,
  FabricBackend,
  LineBridge,
  MmioPort,
  PciHostBridge,
  Soc,
  SocFirmware,
} from "../src/index.js";

describe("sim firmware type promises", () => {
  it("the SoC carries a device-core machine and domains, and settles asynchronously", () => {
    expectTypeOf<Soc["machine"]>().toEqualTypeOf<Machine>();
    expectTypeOf<Soc["aic"]>().toEqualTypeOf<IrqDomain>();
    expectTypeOf<Soc["settle"]>().returns.toEqualTypeOf<Promise<boolean>>();
    expectTypeOf<PciHostBridge["msi"]>().toEqualTypeOf<IrqDomain>();
  });

  it("descriptions are bus specs, and what backs them fits the bus seams", () => {
    expectTypeOf<ReturnType<typeof describeDart>>().toEqualTypeOf<PlatformDeviceSpec>();
    expectTypeOf<DescribedNode["spec"]>().toEqualTypeOf<PlatformDeviceSpec>();
    expectTypeOf<ReturnType<typeof describeSoc>>().toEqualTypeOf<SocFirmware>();
    expectTypeOf<SocFirmware>().toMatchTypeOf<Disposable>();
    expectTypeOf<MmioPort>().toMatchTypeOf<Required<MmioBackend>>();
    expectTypeOf<FabricBackend>().toMatchTypeOf<Required<MmioBackend>>();
    expectTypeOf<EcamConfig>().toMatchTypeOf<PciConfigSpace>();
    expectTypeOf<LineBridge>().toMatchTypeOf<IrqChip>();
    // @ts-expect-error a config space is not an MSI target
    const wrong: MsiTarget = {} as EcamConfig;
    void wrong;
  });
});
