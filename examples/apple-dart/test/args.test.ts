// Wrong arguments to every export: a DevrefError (EINVAL), never a TypeError, and nothing
// changed.
import { DevrefError } from "@devref/raw-device";
import { describe, expect, it } from "vitest";
import {
  createAppleDartDriver,
  createDmaEngineDriver,
  DART_HW_T8110,
  DartDomain,
  dartIommuOps,
  dartTtbrValue,
  decodeDartError,
  readDartParams,
} from "../src/index.js";
import { rig } from "./helpers.js";

function einval(fn: () => unknown): void {
  let caught: unknown = null;
  try {
    fn();
  } catch (e) {
    caught = e;
  }
  expect(caught).toBeInstanceOf(DevrefError);
  expect((caught as DevrefError).code).toBe("EINVAL");
}

// SAFETY (test): every call below passes a wrong type on purpose.
const bad = <T>(v: unknown): T => v as T;

describe("wrong arguments", () => {
  it("to the pure helpers", () => {
    einval(() => decodeDartError(bad(null), 0, 0, 0));
    einval(() => decodeDartError(DART_HW_T8110, -1, 0, 0));
    einval(() => decodeDartError(DART_HW_T8110, 0, bad("0"), 0));
    einval(() => decodeDartError(DART_HW_T8110, 0, 0, 2 ** 32));
    einval(() => dartTtbrValue(bad(undefined), 0));
    einval(() => dartTtbrValue(DART_HW_T8110, -4));
    einval(() => dartTtbrValue(DART_HW_T8110, bad(1n)));
    einval(() => readDartParams(bad(null), () => 0, 16384));
    einval(() => readDartParams(DART_HW_T8110, bad(0), 16384));
    einval(() => readDartParams(DART_HW_T8110, () => 0, bad("16K")));
  });

  it("to the driver factories", async () => {
    einval(() => createAppleDartDriver(bad(null)));
    einval(() => createAppleDartDriver(bad({ system: {} })));
    const r = await rig({ engine: false });
    einval(() => createAppleDartDriver({ system: r.system, hostPageSize: bad(8192) }));
    einval(() => createAppleDartDriver({ system: r.system, msiDoorbell: -1 }));
    einval(() => createAppleDartDriver({ system: r.system, name: "" }));
    einval(() => createAppleDartDriver({ system: r.system, pages: bad(7) }));
    einval(() => createDmaEngineDriver({ maskBits: 0 }));
    einval(() => createDmaEngineDriver(bad(3)));
    einval(() => r.engines.run(bad(5), () => 1));
    einval(() => r.engines.run("engine0", bad(null)));
    einval(() => r.engines.isBound(bad(null)));
    einval(() => r.darts.dart(bad({})));
    expect(r.teardown()).toEqual([]);
  });

  it("to a bound DART and its building blocks", async () => {
    const r = await rig();
    const d = r.dart();
    einval(() => d.streamMode(16));
    einval(() => d.domainOf(-1));
    einval(() => d.streamMode(bad("2")));
    einval(() => d.disableDma([99]));
    einval(() => d.enableBypass(bad(2)));
    expect(d.streamMode(2)).toBe("translate"); // nothing changed
    einval(() => new DartDomain(bad(null), r.system.iommuPages));
    einval(() => new DartDomain(d, bad(null)));
    einval(() =>
      dartIommuOps(bad({}), { pages: r.system.iommuPages, hostPageSize: 16384, msiDoorbell: null }),
    );
    einval(() =>
      dartIommuOps(d, { pages: r.system.iommuPages, hostPageSize: 12288, msiDoorbell: null }),
    );
    einval(() =>
      dartIommuOps(d, { pages: r.system.iommuPages, hostPageSize: 16384, msiDoorbell: -5 }),
    );
    einval(() => dartIommuOps(d, bad(null)));
    expect(r.teardown()).toEqual([]);
  });
});

describe("wrong arguments to the hardware sequences", () => {
  it("invalidate, reset and handleFault check what they are given", async () => {
    const r = await rig({ engine: false });
    const d = r.dart();
    const before = d.stats.invalidations;
    einval(() => d.invalidate(bad(new Uint32Array(2))));
    einval(() => d.invalidate(bad([1])));
    einval(() => d.reset(bad({})));
    einval(() => d.handleFault(bad(null)));
    expect(d.stats.invalidations).toBe(before);
    expect(d.invalidate(new Uint32Array(8))).toBeNull(); // no stream: nothing sent
    expect(d.stats.invalidations).toBe(before);
    expect(r.teardown()).toEqual([]);
  });
});
