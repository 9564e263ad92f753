// What the typed API promises: known keys read and write as their types, any other key as
// an SmcValue; the driver data, stages and events are what the docs say.
import type { PlatformDriver } from "@devref/bus";
import type { Static } from "@devref/raw-device";
import { describe, expectTypeOf, it } from "vitest";
import type {
  AppleSmc,
  AppleSmcBinding,
  AppleSmcDriver,
  SmcEvent,
  SmcKeyInfo,
  SmcStage,
  SmcValue,
  SmcValueOf,
} from "../src/index.js";

declare const smc: AppleSmc;

describe("typed keys", () => {
  it("reads known keys as their types and others as any SmcValue", () => {
    expectTypeOf(smc.readKey("TB0T")).toEqualTypeOf<Promise<number>>();
    expectTypeOf(smc.readKey("NTAP")).toEqualTypeOf<Promise<boolean>>();
    expectTypeOf(smc.readKey("BMDN")).toEqualTypeOf<Promise<string>>();
    expectTypeOf(smc.readKey("CHNC")).toEqualTypeOf<Promise<bigint>>();
    expectTypeOf(smc.readKey("MBSE")).toEqualTypeOf<Promise<Uint8Array>>();
    expectTypeOf(smc.readKey("XYZW")).toEqualTypeOf<Promise<SmcValue>>();
    expectTypeOf<SmcValueOf<string>>().toEqualTypeOf<SmcValue>();
    expectTypeOf(smc.readKeyRaw).returns.toEqualTypeOf<Promise<Uint8Array>>();
  });

  it("writes known keys only with values of their type", () => {
    void smc.writeKey("F0Tg", 2400);
    void smc.writeKey("NTAP", false);
    void smc.writeKey("XYZW", new Uint8Array(4)); // unknown keys take any SmcValue
    // @ts-expect-error NTAP is a flag: a boolean, not a number
    void smc.writeKey("NTAP", 1);
    // @ts-expect-error F0Tg is a float: a number, not a string
    void smc.writeKey("F0Tg", "2400");
    // @ts-expect-error raw writes take bytes
    void smc.writeKeyRaw("NTAP", [1]);
  });
});

describe("the rest of the API", () => {
  it("gives key info, enumeration, events and stages", () => {
    expectTypeOf(smc.keyInfo("TB0T")).toEqualTypeOf<Promise<SmcKeyInfo>>();
    expectTypeOf(smc.listKeys()).toEqualTypeOf<Promise<SmcKeyInfo[]>>();
    expectTypeOf(smc.onEvent).parameter(0).toEqualTypeOf<(event: SmcEvent) => void>();
    expectTypeOf(smc.onEvent).returns.toEqualTypeOf<() => void>();
    expectTypeOf(smc.stage).toEqualTypeOf<SmcStage>();
    // @ts-expect-error the stage is read-only
    smc.stage = "running";
    // @ts-expect-error key info is read-only
    (null as unknown as SmcKeyInfo).size = 4;
  });

  it("the driver is a static platform driver whose data holds the client", () => {
    expectTypeOf<AppleSmcDriver["driver"]>().toEqualTypeOf<
      Static<PlatformDriver<AppleSmcBinding>>
    >();
    expectTypeOf<AppleSmcBinding["smc"]>().toEqualTypeOf<AppleSmc>();
    expectTypeOf<AppleSmcDriver["client"]>().returns.toEqualTypeOf<AppleSmc | null>();
  });
});
