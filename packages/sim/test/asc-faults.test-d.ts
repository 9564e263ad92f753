import { describe, expectTypeOf, it } from "vitest";
import type {
  FaultSpec,
  RtkitEndpoint,
  RtkitFirmwareState,
  SmcKeyDef,
  TraceRecord,
} from "../src/index.js";

describe("ASC type promises", () => {
  it("the firmware and SMC fault kinds are FaultSpecs, checked per kind", () => {
    expectTypeOf<{ kind: "rtkit-crash"; target: string }>().toMatchTypeOf<FaultSpec>();
    expectTypeOf<{
      kind: "rtkit-crash";
      target: string;
      corrupt: "zero-section";
    }>().toMatchTypeOf<FaultSpec>();
    expectTypeOf<{
      kind: "rtkit-garbage";
      target: string;
      mode: "wrong-type";
    }>().toMatchTypeOf<FaultSpec>();
    expectTypeOf<{
      kind: "smc-fault";
      target: string;
      mode: "no-reply";
    }>().toMatchTypeOf<FaultSpec>();
    // @ts-expect-error smc-fault needs a mode
    const noMode: FaultSpec = { kind: "smc-fault", target: "smc" };
    // @ts-expect-error an unknown garbage mode
    const badMode: FaultSpec = { kind: "rtkit-garbage", target: "smc", mode: "noise" };
    // @ts-expect-error an unknown crashlog damage
    const badLog: FaultSpec = { kind: "rtkit-crash", target: "smc", corrupt: "melted" };
    void [noMode, badMode, badLog];
  });

  it("mailbox trace records narrow on kind", () => {
    const r = {} as TraceRecord;
    if (r.kind === "mbox") {
      expectTypeOf(r.direction).toEqualTypeOf<"a2i" | "i2a">();
      expectTypeOf(r.msg0Hi).toEqualTypeOf<number>();
    }
  });

  it("states are a closed set and endpoints need every method", () => {
    expectTypeOf<"running">().toMatchTypeOf<RtkitFirmwareState>();
    expectTypeOf<"sleeping">().not.toMatchTypeOf<RtkitFirmwareState>();
    expectTypeOf<{
      start(): void;
      receive(hi: number, lo: number): void;
    }>().not.toMatchTypeOf<RtkitEndpoint>();
    // @ts-expect-error a key needs a type and a size
    const k: SmcKeyDef = { key: "ABCD" };
    void k;
  });
});
