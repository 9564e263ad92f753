import {
  configureDevresDebug,
  createDevice,
  Devres,
  type DevresMisuse,
  devresLabels,
  Revocable,
} from "@devref/device-core";
import { DevrefError } from "@devref/raw-device";
import { describe, expect, it } from "vitest";
import { bindByHand, captureLog, makeDevice, unbindByHand } from "./fixture.js";

describe("devres", () => {
  it("releases every resource of a binding in reverse order, after remove", () => {
    const { dev } = makeDevice("nic0");
    const order: string[] = [];
    bindByHand(dev, "nic", (d) => {
      d.devmAddAction(() => order.push("clk"), "clk");
      d.devmAddAction(() => order.push("irq"), "irq");
      d.devmAddAction(() => order.push("regs"), "regs");
    });
    expect(devresLabels(dev)).toEqual(["clk", "irq", "regs"]);
    unbindByHand(dev, () => order.push("remove"));
    expect(order).toEqual(["remove", "regs", "irq", "clk"]);
    expect(devresLabels(dev)).toEqual([]);
    dev.put();
  });

  it("remove and release of single actions", () => {
    const { dev } = makeDevice("nic1");
    const order: string[] = [];
    bindByHand(dev, "nic", (d) => {
      const a = d.devmAddAction(() => order.push("a"), "a");
      const b = d.devmAddAction(() => order.push("b"), "b");
      d.devmRemoveAction(a);
      d.devmReleaseAction(b);
      expect(() => d.devmReleaseAction(b)).toThrowError(/not registered on device 'nic1'/);
    });
    expect(order).toEqual(["b"]);
    unbindByHand(dev);
    expect(order).toEqual(["b"]);
    dev.put();
  });

  it("devmAddActionOrReset runs the action when registration fails", () => {
    const { dev } = makeDevice("nic2");
    const ran: string[] = [];
    let smuggled: { devmAddActionOrReset(a: () => void, l: string): unknown } | undefined;
    bindByHand(dev, "nic", (d) => {
      smuggled = d;
    });
    expect(() => smuggled?.devmAddActionOrReset(() => ran.push("reset"), "late")).toThrowError(
      /borrowed reference was used after its scope ended/,
    );
    expect(ran).toEqual(["reset"]);
    unbindByHand(dev);
    dev.put();
  });

  it("groups: release only a group, nested, newest first; remove keeps the resources", () => {
    const { dev } = makeDevice("gpu0");
    const order: string[] = [];
    bindByHand(dev, "gpu", (d) => {
      d.devmAddAction(() => order.push("base"), "base");
      const outer = d.devresOpenGroup("outer");
      d.devmAddAction(() => order.push("o1"), "o1");
      const inner = d.devresOpenGroup("inner");
      d.devmAddAction(() => order.push("i1"), "i1");
      d.devresCloseGroup(); // the latest open group: inner
      d.devmAddAction(() => order.push("o2"), "o2");
      d.devresCloseGroup(outer);
      expect(devresLabels(d)).toEqual([
        "base",
        "<outer>",
        "o1",
        "<inner>",
        "i1",
        "</inner>",
        "o2",
        "</outer>",
      ]);
      d.devresRemoveGroup(inner);
      expect(devresLabels(d)).toEqual(["base", "<outer>", "o1", "i1", "o2", "</outer>"]);
      expect(d.devresReleaseGroup(outer)).toBe(3);
      expect(order).toEqual(["o2", "i1", "o1"]);
      expect(() => d.devresReleaseGroup(outer)).toThrowError(/not on device 'gpu0'/);
      expect(() => d.devresCloseGroup()).toThrowError(/no open devres group/);
      const g = d.devresOpenGroup("probe-step");
      d.devmAddAction(() => order.push("p"), "p");
      expect(d.devresReleaseGroup(g)).toBe(1); // an open group releases to the end
    });
    unbindByHand(dev);
    expect(order).toEqual(["o2", "i1", "o1", "p", "base"]);
    dev.put();
  });

  it("a failing release action does not stop the others; it is logged", () => {
    const { dev } = makeDevice("nic3");
    const order: string[] = [];
    bindByHand(dev, "nic", (d) => {
      d.devmAddAction(() => order.push("a"), "a");
      d.devmAddAction(() => {
        throw new Error("boom");
      }, "bad");
    });
    const { records } = captureLog(() => unbindByHand(dev));
    expect(order).toEqual(["a"]);
    expect(records[0]?.text).toMatch(/nic nic3: devres 'bad' release failed: Error: boom/);
    dev.put();
  });
});

describe("Revocable and Devres", () => {
  it("Revocable: access until revoked, release once", () => {
    const released: number[] = [];
    const r = new Revocable(41, { release: (v) => released.push(v), label: "answer" });
    expect(r.tryAccess()).toBe(41);
    expect(r.tryAccessWith((v) => v + 1)).toBe(42);
    expect(r.accessChecked()).toBe(41);
    expect(r.revoke()).toBe(true);
    expect(r.revoke()).toBe(false);
    r[Symbol.dispose]();
    expect(released).toEqual([41]);
    expect(r.tryAccess()).toBeUndefined();
    expect(r.tryAccessWith((v) => v)).toBeUndefined();
    expect(() => r.accessChecked()).toThrowError(/'answer' was revoked/);
  });

  it("Devres: access succeeds while bound and fails clearly after unbind", () => {
    const { dev } = makeDevice("mmio0");
    const unmapped: string[] = [];
    const kept = bindByHand(dev, "regs-driver", (d) => {
      const regs = new Devres(
        d,
        { base: 0x1000 },
        { label: "regs", release: () => unmapped.push("regs") },
      );
      expect(regs.access(d).base).toBe(0x1000);
      expect(regs.deviceName).toBe("mmio0");
      return regs;
    });
    expect(kept.tryAccess()?.base).toBe(0x1000);
    unbindByHand(dev);
    expect(unmapped).toEqual(["regs"]);
    expect(kept.isAvailable).toBe(false);
    expect(kept.tryAccess()).toBeUndefined();
    expect(() => kept.accessChecked()).toThrowError(
      /Devres 'regs' of device 'mmio0' was revoked \(unbind of driver 'regs-driver'\).*valid only while the driver is bound/,
    );
    try {
      kept.accessChecked();
    } catch (e) {
      expect(DevrefError.is(e, "ENODEV")).toBe(true);
    }
    dev.put();
  });

  it("Devres.access checks the device; dispose releases early and unregisters", () => {
    const a = makeDevice("a0");
    const b = makeDevice("b0");
    const released: string[] = [];
    bindByHand(a.dev, "drv", (da) => {
      const res = new Devres(da, 1, { label: "one", release: () => released.push("one") });
      bindByHand(b.dev, "drv", (db) => {
        expect(() => res.access(db)).toThrowError(/belongs to device 'a0', not 'b0'/);
      });
      // The fast path's one liveness test: anything but a live handle of a0 takes the checks.
      expect(res.access(da)).toBe(1);
      for (const bad of [null, {}, { lifetime: {}, object: undefined }]) {
        expect(() => res.access(bad as never)).toThrowError(DevrefError);
      }
      res[Symbol.dispose]();
      expect(devresLabels(da)).toEqual([]);
      expect(() => res.access(da)).toThrowError(/explicit revoke/);
    });
    expect(released).toEqual(["one"]);
    let kept: unknown;
    bindByHand(a.dev, "drv2", (da) => {
      const res = new Devres(da, 2, { label: "two" });
      kept = { res, da };
    });
    const { res: stale, da: staleDev } = kept as { res: Devres<number>; da: never };
    // The borrow's scope ended with the callback: refused as dead, not served.
    expect(() => stale.access(staleDev)).toThrowError(/scope ended/);
    unbindByHand(a.dev);
    unbindByHand(b.dev);
    expect(released).toEqual(["one"]);
    a.dev.put();
    b.dev.put();
  });

  it("a Devres cannot be created with a revoked borrow", () => {
    const { dev } = makeDevice("late0");
    let smuggled: unknown;
    bindByHand(dev, "drv", (d) => {
      smuggled = d;
    });
    // SAFETY: bypasses the compile-time rule to show the run-time one.
    expect(() => new Devres(smuggled as Parameters<typeof bindByHand>[0] as never, 1)).toThrowError(
      /used after its scope ended/,
    );
    unbindByHand(dev);
    dev.put();
  });
});

describe("devres misuse debug mode", () => {
  function withDebug(fn: (reports: DevresMisuse[]) => void): DevresMisuse[] {
    const reports: DevresMisuse[] = [];
    const previous = configureDevresDebug({ debug: true, onMisuse: (m) => reports.push(m) });
    try {
      fn(reports);
    } finally {
      configureDevresDebug(previous);
    }
    return reports;
  }

  it("reports a managed resource used after its binding ended, with who stored it", () => {
    const reports = withDebug(() => {
      const { dev } = makeDevice("eth0");
      const cache = bindByHand(dev, "eth", (d) => ({
        ring: new Devres(d, [1, 2, 3], { label: "rx ring", owner: "netdev stats cache" }),
      }));
      unbindByHand(dev);
      expect(cache.ring.tryAccess()).toBeUndefined();
      dev.put();
    });
    expect(reports).toHaveLength(1);
    expect(reports[0]).toMatchObject({
      kind: "use-after-revoke",
      device: "eth0",
      driver: "eth",
      resource: "rx ring",
      storedBy: "netdev stats cache",
    });
    expect(reports[0]?.createdAt).toMatch(/devres\.test\.ts/);
    expect(reports[0]?.at).toMatch(/devres\.test\.ts/);
  });

  it("reports devres registered from remove()", () => {
    const reports = withDebug(() => {
      const { dev } = makeDevice("eth1");
      bindByHand(dev, "eth", () => {});
      unbindByHand(dev, (d) => {
        d.devmAddAction(() => {}, "too-late");
      });
      dev.put();
    });
    expect(reports.map((r) => [r.kind, r.resource, r.driver])).toEqual([
      ["registered-during-remove", "too-late", "eth"],
    ]);
  });

  it("reports devres released from a release callback", () => {
    let res: Devres<number> | undefined;
    const reports = withDebug(() => {
      const dev = makeDevice("eth2").dev;
      // A second device whose release callback drops a resource of the first.
      const other = createDevice({ name: "eth2-child", release: () => res?.revoke() });
      bindByHand(dev, "eth", (d) => {
        res = new Devres(d, 5, { label: "stats" });
      });
      other.put(); // release callback runs, revokes a resource that is still live
      unbindByHand(dev);
      dev.put();
    });
    expect(reports.map((r) => [r.kind, r.resource])).toEqual([
      ["released-from-release-callback", "stats"],
    ]);
    expect(reports[0]?.message).toMatch(/release callback of 'eth2-child'/);
  });

  it("item 9: an owned reference cast to Bound cannot register devres; nothing is left", () => {
    const reports = withDebug(() => {
      const { dev, releases } = makeDevice("eth5");
      // SAFETY: deliberately defeats the Bound requirement, as a C caller of devm_* on the
      // wrong device would, to show the run-time refusal.
      const forged = dev as unknown as Parameters<Parameters<typeof bindByHand>[2]>[0];
      expect(() => forged.devmAddAction(() => {}, "child buffer")).toThrowError(
        /needs a Bound borrow .* but was given an owned reference/,
      );
      expect(devresLabels(dev)).toEqual([]);
      dev.put();
      expect(releases()).toBe(1);
    });
    expect(reports).toEqual([]);
  });

  it("is silent when off", () => {
    const { records } = captureLog(() => {
      const { dev } = makeDevice("eth3");
      const kept = bindByHand(dev, "eth", (d) => new Devres(d, 1, { label: "x" }));
      unbindByHand(dev);
      kept.tryAccess();
      dev.put();
    });
    expect(records).toEqual([]);
  });

  it("by default reports through the log sink", () => {
    const previous = configureDevresDebug({ debug: true });
    try {
      const { records } = captureLog(() => {
        const { dev } = makeDevice("eth4");
        const kept = bindByHand(
          dev,
          "eth",
          (d) => new Devres(d, 1, { label: "x", owner: "cache" }),
        );
        unbindByHand(dev);
        kept.tryAccess();
        dev.put();
      });
      expect(records.map((r) => r.text)).toEqual([
        "eth eth4: devres misuse (use-after-revoke): 'x' was used after unbind of driver 'eth': an object that outlives the binding kept it. Drop it in remove(), or re-acquire it at the next probe [stored by cache]",
      ]);
    } finally {
      configureDevresDebug(previous);
    }
  });
});
