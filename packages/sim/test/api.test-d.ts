import { describe, expectTypeOf, it } from "vitest";
import type {
  EventQueue,
  FaultSpec,
  MmioBackend,
  MmioPort,
  Scheduler,
  Soc,
  TraceRecord,
} from "../src/index.js";

describe("sim type promises", () => {
  it("the event queue is a Scheduler and a port is an MmioBackend", () => {
    expectTypeOf<EventQueue>().toMatchTypeOf<Scheduler>();
    expectTypeOf<Soc["events"]>().toMatchTypeOf<{
      now(): number;
      queue(job: () => void): void;
      setTimeout(fn: () => void, ms: number): unknown;
      clearTimeout(handle: unknown): void;
    }>();
    // The driver-model packages' MmioBackend, written out by shape.
    expectTypeOf<MmioPort>().toMatchTypeOf<{
      read32(offset: number): number;
      write32(offset: number, value: number): void;
    }>();
    expectTypeOf<MmioPort>().toMatchTypeOf<MmioBackend>();
  });

  it("fault specs are checked per kind", () => {
    expectTypeOf<{ kind: "unplug"; target: string }>().toMatchTypeOf<FaultSpec>();
    // @ts-expect-error iommu-fault needs a stream
    const bad: FaultSpec = { kind: "iommu-fault", target: "dart0" };
    void bad;
    // @ts-expect-error an unknown kind is not a fault
    const unknown: FaultSpec = { kind: "meltdown", target: "x" };
    void unknown;
  });

  it("trace records narrow on kind", () => {
    const r = {} as TraceRecord;
    if (r.kind === "mmio") expectTypeOf(r.width).toEqualTypeOf<1 | 2 | 4>();
    if (r.kind === "iotlb") expectTypeOf(r.action).toEqualTypeOf<"fill" | "flush">();
  });
});
