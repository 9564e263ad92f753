// Model-based test of the driver model: random sequences of device registration, driver
// registration and unregistration, bind, unbind, unplug, get, put and async-probe
// completion, against a reference model of the counts, registration and releases. After
// every step: counts never below zero and equal to their holders, no driver callback
// after remove, release exactly once, no devres when no driver is bound, no live device
// without a holder.
import { definePlatformDriver, PlatformBus, type PlatformDevice } from "@devref/bus";
import { auditDevices, devErrProbe, Machine, setLogSink } from "@devref/device-core";
import type { ARef } from "@devref/raw-device";
import fc from "fast-check";
import { describe, expect, it } from "vitest";

interface Model {
  /** Per device: registered, released, test-held refs, parent index. */
  devices: { registered: boolean; released: boolean; refs: number; parent: number | null }[];
  drivers: boolean[];
}

/** One binding's driver-side history, to check the order of callbacks. */
interface Token {
  events: string[];
}

interface Real {
  bus: PlatformBus;
  prefix: string;
  drivers: ReturnType<typeof makeDrivers>;
  refs: { dev: number; handle: ARef<PlatformDevice>; live: boolean }[];
  releases: number[];
  gates: (() => void)[];
  tokens: Token[];
}

const COMPATS = ["m,a", "m,b", "m,c"] as const;

function makeDrivers(r: () => Real) {
  const start = (): Token => {
    const t: Token = { events: ["probe"] };
    r().tokens.push(t);
    return t;
  };
  const data = (t: Token) => {
    t.events.push("bound-data");
    return {
      t,
      [Symbol.dispose]: () => {
        t.events.push("dispose");
      },
    };
  };
  const remove = (_dev: unknown, d: { t: Token }): void => {
    d.t.events.push("remove");
  };
  // Synchronous driver for m,a.
  const syncDrv = definePlatformDriver({
    name: `${r().prefix}-sync`,
    ofMatchTable: [{ compatible: "m,a" }],
    probe: (dev) => {
      const t = start();
      dev.devmAddAction(() => t.events.push("devres"), "sync res");
      return data(t);
    },
    remove,
  });
  // Asynchronous driver for m,a and m,b: waits for a gate the test opens.
  const asyncDrv = definePlatformDriver({
    name: `${r().prefix}-async`,
    ofMatchTable: [{ compatible: "m,b" }, { compatible: "m,a" }],
    probe: async (dev) => {
      const t = start();
      dev.devmAddAction(() => t.events.push("devres"), "async res 1");
      await new Promise<void>((resolve) => r().gates.push(resolve));
      // Touching the borrow after an abort throws ENODEV and fails the probe.
      dev.devmAddAction(() => t.events.push("devres"), "async res 2");
      return data(t);
    },
    remove,
  });
  // A driver for m,c that defers until some device is bound to the sync driver.
  const deferDrv = definePlatformDriver({
    name: `${r().prefix}-defer`,
    ofMatchTable: [{ compatible: "m,c" }],
    probe: (dev) => {
      if (syncDrv.boundDevices().length === 0) {
        throw devErrProbe(dev, "EPROBE_DEFER", "waiting for a sync device");
      }
      const t = start();
      dev.devmAddAction(() => t.events.push("devres"), "defer res");
      return data(t);
    },
    remove,
  });
  return [syncDrv, asyncDrv, deferDrv] as const;
}

/** The allowed orders of one binding's callbacks, as a regular expression over events. */
const TOKEN_ORDER = /^probe( devres)*( bound-data( remove)?( dispose)?( devres)*)?$/;

function refsExpected(m: Model, i: number): number {
  const d = m.devices[i]!;
  let n = d.refs + (d.registered ? 1 : 0);
  m.devices.forEach((c) => {
    if (c.parent === i && c.registered) n++;
  });
  return n;
}

function verify(m: Model, r: Real): void {
  const audit = new Map(
    auditDevices(r.bus.machine)
      .filter((a) => a.name.startsWith(`${r.prefix}d`))
      .map((a) => [a.name, a]),
  );
  m.devices.forEach((d, i) => {
    const name = `${r.prefix}d${i}`;
    const a = audit.get(name);
    if (d.released) {
      expect(r.releases[i]).toBe(1);
      expect(a).toBeUndefined();
      return;
    }
    expect(r.releases[i]).toBe(0);
    expect(a).toBeDefined();
    const expected = refsExpected(m, i);
    expect(expected).toBeGreaterThan(0); // no live device without a holder
    // Each managed resource keeps a counted, labelled reference to its device.
    expect(a!.refcount).toBe(expected + a!.devres);
    expect(a!.holders.length).toBe(expected + a!.devres);
    expect(a!.lifecycle === "deleted").toBe(!d.registered);
    if (!["probing", "bound", "unbinding"].includes(a!.lifecycle)) expect(a!.devres).toBe(0);
  });
  for (const t of r.tokens) expect(t.events.join(" ")).toMatch(TOKEN_ORDER);
}

function liveDevice(
  m: Model,
  r: Real,
  pick: number,
): { i: number; ref: ARef<PlatformDevice> } | null {
  const live = r.refs.filter((x) => x.live && m.devices[x.dev]!.registered);
  if (live.length === 0) return null;
  const x = live[pick % live.length]!;
  return { i: x.dev, ref: x.handle };
}

type Cmd = fc.AsyncCommand<Model, Real>;

class RegisterCmd implements Cmd {
  constructor(
    readonly compat: number,
    readonly parentPick: number | null,
  ) {}
  check(): boolean {
    return true;
  }
  async run(m: Model, r: Real): Promise<void> {
    const i = m.devices.length;
    const parent = this.parentPick === null ? null : liveDevice(m, r, this.parentPick);
    r.releases.push(0);
    const handle = r.bus.register({
      name: `${r.prefix}d${i}`,
      compatible: [COMPATS[this.compat % COMPATS.length]!],
      parent: parent?.ref ?? null,
      release: () => {
        r.releases[i]!++;
      },
    });
    m.devices.push({ registered: true, released: false, refs: 1, parent: parent?.i ?? null });
    r.refs.push({ dev: i, handle, live: true });
    verify(m, r);
  }
  toString(): string {
    return `register(${COMPATS[this.compat % COMPATS.length]}, parent ${this.parentPick})`;
  }
}

class DriverCmd implements Cmd {
  constructor(readonly which: number) {}
  check(): boolean {
    return true;
  }
  async run(m: Model, r: Real): Promise<void> {
    const k = this.which % r.drivers.length;
    const drv = r.drivers[k]!;
    if (m.drivers[k]) r.bus.unregisterDriver(drv);
    else r.bus.registerDriver(drv);
    m.drivers[k] = !m.drivers[k];
    verify(m, r);
  }
  toString(): string {
    return `toggleDriver(${this.which % 3})`;
  }
}

class BindCmd implements Cmd {
  constructor(
    readonly pick: number,
    readonly which: number,
  ) {}
  check(m: Model): boolean {
    return m.devices.some((d) => d.registered);
  }
  async run(m: Model, r: Real): Promise<void> {
    const d = liveDevice(m, r, this.pick);
    if (d === null) return;
    const drv = r.drivers[this.which % r.drivers.length]!;
    // The bind may fail (no match, busy, deferred, not registered): only its effects matter.
    r.bus.bind(d.ref, drv).catch(() => {});
    verify(m, r);
  }
  toString(): string {
    return `bind(${this.pick}, ${this.which % 3})`;
  }
}

class UnbindCmd implements Cmd {
  constructor(readonly pick: number) {}
  check(m: Model): boolean {
    return m.devices.some((d) => d.registered);
  }
  async run(m: Model, r: Real): Promise<void> {
    const d = liveDevice(m, r, this.pick);
    if (d === null) return;
    r.bus.unbind(d.ref);
    verify(m, r);
  }
  toString(): string {
    return `unbind(${this.pick})`;
  }
}

class OverrideCmd implements Cmd {
  constructor(
    readonly pick: number,
    readonly which: number | null,
  ) {}
  check(m: Model): boolean {
    return m.devices.some((d) => d.registered);
  }
  async run(m: Model, r: Real): Promise<void> {
    const d = liveDevice(m, r, this.pick);
    if (d === null) return;
    const name = this.which === null ? null : r.drivers[this.which % r.drivers.length]!.name;
    r.bus.setDriverOverride(d.ref, name);
    expect(d.ref.driverOverride).toBe(name);
    verify(m, r);
  }
  toString(): string {
    return `override(${this.pick}, ${this.which})`;
  }
}

class UnplugCmd implements Cmd {
  constructor(readonly pick: number) {}
  check(m: Model): boolean {
    return m.devices.some((d) => d.registered);
  }
  async run(m: Model, r: Real): Promise<void> {
    const d = liveDevice(m, r, this.pick);
    if (d === null) return;
    r.bus.unplug(d.ref);
    const gone = (i: number): void => {
      m.devices[i]!.registered = false;
      m.devices.forEach((c, j) => {
        if (c.parent === i && c.registered) gone(j);
      });
    };
    gone(d.i);
    settleReleases(m);
    verify(m, r);
  }
  toString(): string {
    return `unplug(${this.pick})`;
  }
}

class GetCmd implements Cmd {
  constructor(readonly pick: number) {}
  check(m: Model): boolean {
    return m.devices.some((d) => !d.released);
  }
  async run(m: Model, r: Real): Promise<void> {
    const live = r.refs.filter((x) => x.live);
    if (live.length === 0) return;
    const x = live[this.pick % live.length]!;
    r.refs.push({ dev: x.dev, handle: x.handle.clone("model user"), live: true });
    m.devices[x.dev]!.refs++;
    verify(m, r);
  }
  toString(): string {
    return `get(${this.pick})`;
  }
}

class PutCmd implements Cmd {
  constructor(readonly pick: number) {}
  check(m: Model): boolean {
    return m.devices.some((d) => d.refs > 0);
  }
  async run(m: Model, r: Real): Promise<void> {
    const live = r.refs.filter((x) => x.live);
    if (live.length === 0) return;
    const x = live[this.pick % live.length]!;
    x.handle.put();
    x.live = false;
    m.devices[x.dev]!.refs--;
    settleReleases(m);
    verify(m, r);
  }
  toString(): string {
    return `put(${this.pick})`;
  }
}

class CompleteProbeCmd implements Cmd {
  check(): boolean {
    return true;
  }
  async run(m: Model, r: Real): Promise<void> {
    r.gates.shift()?.();
    await Promise.resolve();
    await Promise.resolve();
    verify(m, r);
  }
  toString(): string {
    return "completeOneProbe";
  }
}

class SettleCmd implements Cmd {
  check(): boolean {
    return true;
  }
  async run(m: Model, r: Real): Promise<void> {
    while (r.gates.length > 0) r.gates.shift()?.();
    await r.bus.settle();
    verify(m, r);
  }
  toString(): string {
    return "settle";
  }
}

/** A device is released once nothing counts on it: no refs, not registered, no registered child. */
function settleReleases(m: Model): void {
  let changed = true;
  while (changed) {
    changed = false;
    m.devices.forEach((d, i) => {
      if (!d.released && refsExpected(m, i) === 0) {
        d.released = true;
        changed = true;
      }
    });
  }
}

describe("the driver model against a reference model", () => {
  it("keeps counts, bindings, devres and releases consistent under any sequence", async () => {
    const previous = setLogSink(() => {});
    let run = 0;
    try {
      const commands = [
        fc
          .tuple(fc.nat(2), fc.option(fc.nat(), { nil: null }))
          .map(([c, p]) => new RegisterCmd(c, p) as Cmd),
        fc.nat(2).map((k) => new DriverCmd(k) as Cmd),
        fc.tuple(fc.nat(), fc.nat(2)).map(([p, k]) => new BindCmd(p, k) as Cmd),
        fc.nat().map((p) => new UnbindCmd(p) as Cmd),
        fc
          .tuple(fc.nat(), fc.option(fc.nat(2), { nil: null }))
          .map(([p, k]) => new OverrideCmd(p, k) as Cmd),
        fc.nat().map((p) => new UnplugCmd(p) as Cmd),
        fc.nat().map((p) => new GetCmd(p) as Cmd),
        fc.nat().map((p) => new PutCmd(p) as Cmd),
        fc.constant(new CompleteProbeCmd() as Cmd),
        fc.constant(new SettleCmd() as Cmd),
      ];
      await fc.assert(
        fc.asyncProperty(fc.commands(commands, { maxCommands: 60, size: "max" }), async (cmds) => {
          run++;
          const prefix = `m${run}`;
          const real: Real = {
            bus: new PlatformBus({ machine: new Machine({ logSink: () => {} }) }),
            prefix,
            drivers: undefined as unknown as Real["drivers"],
            refs: [],
            releases: [],
            gates: [],
            tokens: [],
          };
          real.drivers = makeDrivers(() => real);
          const model: Model = { devices: [], drivers: [false, false, false] };
          await fc.asyncModelRun(() => ({ model, real }), cmds);
          // Tear down and check that nothing is left behind.
          while (real.gates.length > 0) real.gates.shift()?.();
          await real.bus.settle();
          model.drivers.forEach((on, k) => {
            if (on) real.bus.unregisterDriver(real.drivers[k]!);
          });
          for (const name of real.bus.deviceNames().reverse()) {
            const d = real.bus.findDevice(name, "teardown");
            if (d?.isRegistered === true) real.bus.unplug(d);
            d?.put();
          }
          for (const x of real.refs) if (x.live) x.handle.put();
          await real.bus.settle();
          expect(real.releases.every((n) => n === 1)).toBe(true);
          expect(
            auditDevices(real.bus.machine).filter((a) => a.name.startsWith(`${prefix}d`)),
          ).toEqual([]);
          for (const t of real.tokens) {
            expect(t.events.join(" ")).toMatch(TOKEN_ORDER);
            // Every binding's resources were released.
            const added = t.events.includes("bound-data") ? 1 : 0;
            expect(t.events.filter((e) => e === "devres").length).toBeGreaterThanOrEqual(added);
          }
        }),
        { seed: 0x0de_a11, numRuns: 250 },
      );
    } finally {
      setLogSink(previous);
    }
  }, 60_000);
});
