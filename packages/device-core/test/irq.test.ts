// Interrupt domains: level and edge lines, shared handlers, the spurious-interrupt and
// storm detectors, an external controller (IrqChip), MSI-style line allocation, and
// handlers that end with their binding.
import {
  createDevice,
  type Device,
  IRQ_UNHANDLED_LIMIT,
  type IrqChip,
  IrqDomain,
  type IrqLine,
  type LogRecord,
  Machine,
} from "@devref/device-core";
import { type Bound, DevrefError } from "@devref/raw-device";
import { describe, expect, it } from "vitest";
import { bindByHand, unbindByHand } from "./fixture.js";

function setup(trigger: "level" | "edge", chip?: IrqChip) {
  const logs: LogRecord[] = [];
  const machine = new Machine({ name: "irq", logSink: (r) => logs.push(r) });
  const domain = new IrqDomain({ machine, name: "aic", size: 16, ...(chip ? { chip } : {}) });
  const dev = createDevice({
    name: "uart0",
    machine,
    fwnode: { interrupts: [{ domain: "aic", hwirq: 3, trigger }] },
    release: () => {},
  });
  return { machine, domain, dev, logs };
}

describe("interrupt domains", () => {
  it("an edge line delivers once per raise, with a Bound borrow, and never after unbind", () => {
    const { domain, dev } = setup("edge");
    const seen: string[] = [];
    let escaped: unknown;
    bindByHand(dev, "uart", (d) => {
      d.requestIrq(0, (b) => {
        escaped = b;
        seen.push(`${b.name} bound=${b.driverName}`);
        return "handled";
      });
    });
    expect(domain.raise(3)).toBe(true);
    expect(domain.raise(3)).toBe(true);
    expect(seen).toEqual(["uart0 bound=uart", "uart0 bound=uart"]);
    expect(() => (escaped as { name: string }).name).toThrowError(/scope ended/);
    expect(domain.interrupts()).toEqual(["3: 2 uart0"]);
    unbindByHand(dev);
    expect(domain.raise(3)).toBe(false);
    expect(seen).toHaveLength(2);
    expect(domain.interrupts()).toEqual([]);
    dev.put();
  });

  it("a level line is redelivered while asserted, through the scheduler, until lowered", async () => {
    const { domain, dev } = setup("level");
    let n = 0;
    bindByHand(dev, "uart", (d) => {
      d.requestIrq(0, () => {
        n++;
        if (n === 3) domain.lower(3); // the driver acknowledged the device
        return "handled";
      });
    });
    domain.raise(3);
    expect(n).toBe(1);
    for (let i = 0; i < 5; i++) await Promise.resolve();
    expect(n).toBe(3);
    expect(domain.isAsserted(3)).toBe(false);
    unbindByHand(dev);
    dev.put();
  });

  it("a line nobody handles is disabled with a logged error, as the kernel's detector does", () => {
    const { domain, dev, logs } = setup("edge");
    bindByHand(dev, "uart", (d) => {
      d.requestIrq(0, () => "none");
    });
    for (let i = 0; i < IRQ_UNHANDLED_LIMIT + 5; i++) domain.raise(3);
    expect(domain.isDisabled(3)).toBe(true);
    expect(logs.map((r) => r.text)).toEqual([expect.stringMatching(/irq aic:3: nobody cared/)]);
    unbindByHand(dev);
    dev.put();
  });

  it("a shared line with another trigger is refused; an unknown domain is ENXIO", () => {
    const { machine, dev } = setup("edge");
    const other = createDevice({
      name: "uart1",
      machine,
      fwnode: {
        interrupts: [
          { domain: "aic", hwirq: 3, trigger: "level" },
          { domain: "gpio", hwirq: 1, trigger: "edge" },
        ],
      },
      release: () => {},
    });
    bindByHand(dev, "uart", (d) => d.requestIrq(0, () => "handled"));
    bindByHand(other, "uart", (d) => {
      expect(() => d.requestIrq(0, () => "handled")).toThrowError(/requested as edge-triggered/);
      expect(() => d.requestIrq(1, () => "handled")).toThrowError(/domain 'gpio'/);
    });
    unbindByHand(dev);
    unbindByHand(other);
    dev.put();
    other.put();
  });

  it("an external controller is told when a line gains or loses handlers and calls handle()", () => {
    const calls: string[] = [];
    const chip: IrqChip = {
      enable: (hwirq, trigger) => calls.push(`enable ${hwirq} ${trigger}`),
      disable: (hwirq) => calls.push(`disable ${hwirq}`),
    };
    const { domain, dev } = setup("level", chip);
    bindByHand(dev, "uart", (d) => d.requestIrq(0, () => "handled"));
    expect(calls).toEqual(["enable 3 level"]);
    expect(domain.handle(3)).toBe(true);
    unbindByHand(dev);
    expect(calls).toEqual(["enable 3 level", "disable 3"]);
    expect(domain.handle(3)).toBe(false);
    dev.put();
  });

  it("allocates and frees runs of lines for MSI-style vectors", () => {
    const machine = new Machine({ name: "msi" });
    const msi = new IrqDomain({ machine, name: "msi", size: 8 });
    const a = msi.allocLines(4);
    const b = msi.allocLines(2);
    expect([a, b]).toEqual([0, 4]);
    expect(() => msi.allocLines(3)).toThrowError(DevrefError);
    msi.freeLines(a);
    expect(msi.allocLines(3)).toBe(0);
    expect(() => msi.freeLines(1)).toThrowError(/does not start an allocation/);
    expect(() => new IrqDomain({ machine, name: "msi", size: 8 })).toThrowError(/already has/);
  });

  it("disable_irq nests, keeps an edge for enable, and refuses what the kernel would hang or warn on", async () => {
    const { domain, dev } = setup("edge");
    const runs: string[] = [];
    let line: IrqLine | undefined;
    let work: ((fn: (d: Device<Bound>) => void) => void) | undefined;
    bindByHand(dev, "uart", (d) => {
      const irq = d.requestIrq(0, (b) => {
        runs.push("handler");
        // disable_irq would wait for this very handler: refused; the nosync form works.
        expect(() => b.disableIrq(line!)).toThrowError(/disableIrqNosync/);
        b.disableIrqNosync(line!);
        return "handled";
      });
      line = irq.access(d);
      work = d.devmCallback((b, fn: (d: Device<Bound>) => void) => fn(b), "test work");
    });
    const run = (fn: (d: Device<Bound>) => void) => work!(fn);
    run((d) => {
      d.disableIrq(line!);
      d.disableIrq(line!);
    });
    expect(domain.raise(3)).toBe(false);
    run((d) => d.enableIrq(line!));
    expect(domain.raise(3)).toBe(false); // still one disable deep
    expect(runs).toEqual([]);
    run((d) => d.enableIrq(line!));
    // The edges that came while disabled are delivered once, after the last enable.
    for (let i = 0; i < 3; i++) await Promise.resolve();
    expect(runs).toEqual(["handler"]);
    // The handler disabled the line itself (nosync): nothing more until enabled again.
    expect(domain.raise(3)).toBe(false);
    run((d) => d.enableIrq(line!));
    for (let i = 0; i < 3; i++) await Promise.resolve();
    expect(runs).toEqual(["handler", "handler"]);
    run((d) => d.enableIrq(line!));
    run((d) => expect(() => d.enableIrq(line!)).toThrowError(/Unbalanced enable for IRQ aic:3/));
    // Only a line this binding requested; only with a Bound borrow.
    run((d) =>
      expect(() => d.disableIrq({ domain: "aic", hwirq: 4, name: "x" })).toThrowError(
        /not one this binding requested/,
      ),
    );
    expect(() => (dev as unknown as Device<Bound>).disableIrq(line!)).toThrowError(DevrefError);
    unbindByHand(dev);
    dev.put();
  });

  it("a level line disabled while asserted interrupts again at enable", async () => {
    const { domain, dev } = setup("level");
    let n = 0;
    let line: IrqLine | undefined;
    let work: ((fn: (d: Device<Bound>) => void) => void) | undefined;
    bindByHand(dev, "uart", (d) => {
      line = d
        .requestIrq(0, () => {
          n++;
          if (n === 2) domain.lower(3);
          return "handled";
        })
        .access(d);
      work = d.devmCallback((b, fn: (d: Device<Bound>) => void) => fn(b), "test work");
      d.disableIrq(line);
    });
    domain.raise(3);
    for (let i = 0; i < 3; i++) await Promise.resolve();
    expect(n).toBe(0);
    work!((d) => d.enableIrq(line!));
    for (let i = 0; i < 6; i++) await Promise.resolve();
    expect(n).toBe(2);
    unbindByHand(dev);
    dev.put();
  });
});
