//! C source: drivers/irqchip/irq-apple-aic.c (a root controller handing each interrupt to
//! its domain), drivers/pci/controller/pcie-apple.c (the MSI domain stacked on it)
//!
//! The seam between the simulator's interrupt controller and device-core interrupt
//! domains: a domain line gets a sim handler while a driver has requested it.

import { type IrqChip, IrqDomain, type IrqTrigger } from "@devref/device-core";
import { checkInstance, checkInteger, DevrefError } from "@devref/raw-device";
import { InterruptController } from "../irq.js";

/** Name of the machine's root interrupt domain (Apple's interrupt controller is the AIC). */
export const AIC_DOMAIN = "aic";

/**
 * An `IrqChip` over a run of the interrupt controller's lines: domain line `h` is sim line
 * `base + h`. `enable` connects the sim line to a handler that calls `domain.handle(h)`,
 * `disable` disconnects it. The sim controller keeps its own semantics: level lines are
 * delivered again while asserted (each delivery runs the domain's handlers once), masking,
 * and storm detection.
 *
 * **Invariants:** a sim line is connected exactly while its domain line has a handler.
 *
 * **Errors:** `enable` throws `EBUSY` when the sim line already has another consumer (for
 * instance the hot-plug handler of a described PCI host), which fails the driver's request.
 */
export class LineBridge implements IrqChip {
  /** The first sim line. */
  readonly base: number;
  private readonly irq: InterruptController;
  private domain: IrqDomain | null = null;
  private readonly deliver: (line: number) => void;

  /** **Errors:** `EINVAL` for a base outside the controller's lines. */
  constructor(irq: InterruptController, base: number) {
    checkInstance("new LineBridge", "irq", irq, InterruptController);
    checkInteger("new LineBridge", "base", base, 0, irq.lines - 1);
    this.irq = irq;
    this.base = base;
    // One handler for every line: the line number says which domain line it is.
    this.deliver = (line: number) => {
      this.domain?.handle(line - this.base);
    };
  }

  /** Ties the bridge to the domain it serves (once, right after the domain is made). */
  bind(domain: IrqDomain): void {
    checkInstance("LineBridge.bind", "domain", domain, IrqDomain);
    if (this.domain !== null) {
      throw new DevrefError("EBUSY", `this interrupt bridge already serves '${this.domain.name}'`);
    }
    this.domain = domain;
  }

  enable(hwirq: number, _trigger: IrqTrigger): void {
    this.irq.connect(this.base + hwirq, this.deliver);
  }

  disable(hwirq: number): void {
    this.irq.disconnect(this.base + hwirq);
  }
}
