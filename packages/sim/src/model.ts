//! C header: include/linux/device.h (what a device is to the hardware side: registers,
//! interrupt wires, a bus-master port)

import {
  argumentError,
  checkCount,
  checkInstance,
  checkObject,
  checkString,
} from "@devref/raw-device";
import type { DmaPort } from "./dma.js";
import type { MmioHandler, MmioPort } from "./fabric.js";
import type { FaultSpec } from "./faults.js";
import { type IrqSource, reviveIrqSource } from "./irq.js";
import { registerDevice, Soc } from "./soc.js";

/**
 * The base of every device model on a {@link Soc}: a unique name, its MMIO ports, DMA
 * masters and interrupt sources, and the generic "device gone" state.
 *
 * Once {@link DeviceModel.unplug} has run, every port reads all-ones and drops writes,
 * every DMA master fails with `DEVICE_GONE`, and every interrupt source is lowered and
 * ignored; the model's own logic is never entered again through them.
 *
 * **Invariants:** the name is unique on its SoC; `gone` only changes through `unplug` and
 * (for hot-pluggable models) {@link DeviceModel.revive}.
 *
 * **Errors:** `EEXIST` from the constructor when the name is taken; `EINVAL` for a bad name
 * or kind, or a `soc` that is not a {@link Soc}. The protected helpers check their
 * arguments as the SoC methods they call do (`newPort`, `dmaMaster`, `irq.source`).
 *
 * @example
 * ```ts
 * class Timer extends DeviceModel implements MmioHandler {
 *   readonly port = this.addPort("timer0", 0x1000, this);
 *   constructor(soc: Soc) { super(soc, "timer0", "timer"); soc.fabric.map(0x2_0000_0000, this.port, this.name); }
 *   mmioRead(offset: number) { return offset === 0 ? this.soc.nowNs >>> 0 : 0; }
 *   mmioWrite() {}
 * }
 * ```
 */
export abstract class DeviceModel {
  readonly soc: Soc;
  readonly name: string;
  /** What sort of model this is (`dart`, `pci-host`, `virtio-blk`, ...). */
  readonly kind: string;
  /** Trace source id of the model itself (faults, notes). */
  protected readonly traceId: number;
  private readonly ports: MmioPort[] = [];
  private readonly masters: DmaPort[] = [];
  private readonly irqs: IrqSource[] = [];
  private isGone = false;

  constructor(soc: Soc, name: string, kind: string) {
    checkString("new DeviceModel", "kind", kind, true);
    checkInstance(`new ${kind}`, "soc", soc, Soc);
    checkString(`new ${kind}`, "name", name, true);
    this.soc = soc;
    this.name = name;
    this.kind = kind;
    registerDevice(soc, this);
    this.traceId = soc.tracer.source(name);
  }

  /** Whether the device is gone (unplugged, surprise-removed). */
  get gone(): boolean {
    return this.isGone;
  }

  /** The model's DMA masters. */
  get dmaMasters(): readonly DmaPort[] {
    return this.masters;
  }

  /** The model's MMIO ports. */
  get mmioPorts(): readonly MmioPort[] {
    return this.ports;
  }

  /**
   * Makes the device gone: MMIO all-ones and writes dropped, DMA fails, interrupt lines
   * low, pending work abandoned (see each model). A no-op when already gone.
   */
  unplug(): void {
    if (this.isGone) return;
    this.isGone = true;
    for (const p of this.ports) p.gone = true;
    for (const m of this.masters) m.gone = true;
    for (const s of this.irqs) s.detach();
    this.soc.tracer.fault(this.traceId, "device-gone");
    this.onGone();
  }

  /**
   * The fault kinds this model accepts in `soc.faults`: validates `spec` and returns the
   * action to run when the fault fires, or `null` when the model does not support it.
   * Subclasses add their own kinds and fall back to `super.prepareFault(spec)`.
   *
   * **Errors:** `EINVAL` for a spec that is not an object, or one the model supports but
   * whose fields are invalid.
   */
  prepareFault(spec: FaultSpec): (() => void) | null {
    checkObject(`${this.name}.prepareFault`, "spec", spec);
    switch (spec.kind) {
      case "unplug":
        return () => this.unplug();
      case "dma-error": {
        const count = checkCount("dma-error fault", "count", spec.count ?? 1);
        if (this.masters.length === 0) {
          throw argumentError("dma-error fault", "target", "a model with a DMA master", this.name);
        }
        return () => {
          for (const m of this.masters) m.injectedErrors += count;
          this.soc.tracer.fault(this.traceId, "inject-dma-error", count);
        };
      }
      default:
        return null;
    }
  }

  /** Called once when the device becomes gone; models drop pending work here. */
  protected onGone(): void {}

  /**
   * Brings a gone device back (a card re-inserted into a hot-plug slot). The model must
   * reset its own state in {@link DeviceModel.onRevive}.
   */
  protected revive(): void {
    if (!this.isGone) return;
    this.isGone = false;
    for (const p of this.ports) p.gone = false;
    for (const m of this.masters) m.gone = false;
    for (const s of this.irqs) reviveIrqSource(s);
    this.onRevive();
  }

  /** Resets the model to power-on state after {@link DeviceModel.revive}. */
  protected onRevive(): void {}

  /** A new MMIO port owned by this model. */
  protected addPort(name: string, size: number, handler: MmioHandler): MmioPort {
    const port = this.soc.newPort(name, size, handler);
    this.ports.push(port);
    return port;
  }

  /** A new DMA master owned by this model. */
  protected addDmaMaster(name: string = this.name): DmaPort {
    const m = this.soc.dmaMaster(name);
    this.masters.push(m);
    return m;
  }

  /** A new interrupt source on `line` owned by this model. */
  protected addIrq(line: number): IrqSource {
    const s = this.soc.irq.source(line, this.name);
    this.irqs.push(s);
    return s;
  }
}
