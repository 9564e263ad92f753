//! C header: include/linux/irqdomain.h, include/linux/interrupt.h (request_irq, irqreturn_t)
//! C source: kernel/irq/irqdomain.c, kernel/irq/manage.c, kernel/irq/spurious.c
//!
//! Interrupt domains: the bus-neutral seam between interrupt controllers (a simulator, or
//! a test) and drivers. A controller raises and lowers numbered lines; drivers request a
//! line of their device (from its firmware description) for the length of their binding.

import {
  type Borrowed,
  type Bound,
  checkCallback,
  checkInstance,
  checkInteger,
  checkObject,
  checkOneOf,
  checkString,
  DevrefError,
  describeValue,
} from "@devref/raw-device";
import { CONTEXT_BOUND, type HandleConstructor } from "@devref/raw-device/unsafe";
import type { Device } from "./device.js";
import { coreOf, defaultMachine, Machine } from "./machine.js";
import { DeviceScope } from "./scope.js";
import type { DeviceState, IrqTrigger } from "./state.js";

/** What an interrupt handler returns (irqreturn_t). */
export type IrqReturn = "handled" | "none";

/**
 * An interrupt handler: runs with a Bound borrow of its device, valid during the call. It
 * may run until the binding's devres is released, which includes during `remove()`, as in
 * the kernel: quiesce the device (or release the line) first in remove.
 */
export type IrqHandler<H extends Device<Bound> = Device<Bound>> = <S>(
  dev: Borrowed<H, S>,
) => IrqReturn;

/** A requested interrupt line (what the `Devres` from `requestIrq` holds). */
export interface IrqLine {
  /** The interrupt domain's name. */
  readonly domain: string;
  readonly hwirq: number;
  /** The name given at request, as /proc/interrupts shows it. */
  readonly name: string;
}

/** @internal One requested handler. */
export class IrqAction {
  readonly st: DeviceState;
  readonly Handle: HandleConstructor<Device>;
  readonly handler: IrqHandler<Device<Bound>>;
  readonly line: IrqLine;
  active = true;
  constructor(
    st: DeviceState,
    Handle: HandleConstructor<Device>,
    handler: IrqHandler<Device<Bound>>,
    line: IrqLine,
  ) {
    this.st = st;
    this.Handle = Handle;
    this.handler = handler;
    this.line = line;
  }
}

/** Consecutive unhandled deliveries after which a line is disabled ("nobody cared"). */
export const IRQ_UNHANDLED_LIMIT = 100;
/** Consecutive redeliveries of a level line that stays asserted before it is disabled. */
export const IRQ_STORM_LIMIT = 10_000;

class LineState {
  readonly actions: IrqAction[] = [];
  trigger: IrqTrigger = "level";
  asserted = false;
  delivering = false;
  pendingEdge = false;
  redeliveryQueued = false;
  disabled = false;
  /**
   * Nesting depth of disable_irq on the line; nothing is delivered while above zero, and an
   * edge that comes meanwhile stays in `pendingEdge` for enable (IRQS_PENDING).
   */
  depth = 0;
  unhandled = 0;
  storm = 0;
  count = 0;
}

/**
 * The interrupt controller behind a domain (the kernel's `irq_chip`): told when a line gets
 * its first handler and loses its last, so it can route (unmask) or stop (mask) the
 * hardware line. A controller with its own delivery then calls {@link IrqDomain.handle}
 * for each interrupt.
 */
export interface IrqChip {
  /** Line `hwirq` has a handler now (irq_startup / unmask). */
  enable(hwirq: number, trigger: IrqTrigger): void;
  /** Line `hwirq` has no handler any more (irq_shutdown / mask). */
  disable(hwirq: number): void;
}

/** What {@link IrqDomain} is created from. */
export interface IrqDomainOptions {
  /** The domain's name, unique per machine; devices name it in their `interrupts`. */
  readonly name: string;
  /** The number of lines (hwirq 0 … size − 1). */
  readonly size: number;
  /** The machine; the default machine when omitted. */
  readonly machine?: Machine;
  /**
   * The controller, when the lines belong to one with its own delivery (a simulator's);
   * without one the domain is its own controller, driven by {@link IrqDomain.raise}.
   */
  readonly chip?: IrqChip;
}

/**
 * An interrupt domain (the kernel's `irq_domain` and the lines behind it): an interrupt
 * controller raises and lowers lines; drivers request them with `dev.requestIrq(index,
 * handler)`, which looks the line up in the device's firmware description.
 *
 * Edge lines deliver one interrupt per {@link raise}; level lines deliver while asserted
 * (from {@link raise} until {@link lower}), redelivered through the machine's scheduler
 * after each round of handlers while still asserted. A line whose handlers all say
 * `"none"` {@link IRQ_UNHANDLED_LIMIT} times in a row, or that stays asserted through
 * {@link IRQ_STORM_LIMIT} rounds, is disabled with a logged error, as the kernel's
 * spurious-interrupt detector does.
 *
 * **Invariants:** a handler never runs after its binding ended; handlers of one line never
 * nest (a raise during delivery is delivered after it).
 *
 * **Errors:** the constructor throws `EINVAL` for a bad name or size and `EEXIST` if the
 * machine has a domain of that name.
 *
 * @example
 * ```ts
 * const aic = new IrqDomain({ machine, name: "aic", size: 256 });
 * // a device described with interrupts: [{ domain: "aic", hwirq: 5, trigger: "level" }]
 * // probe: dev.requestIrq(0, (d) => "handled");
 * aic.raise(5);
 * ```
 */
export class IrqDomain {
  readonly name: string;
  readonly size: number;
  readonly machine: Machine;
  /** The controller behind the lines, or null when the domain is its own. */
  readonly chip: IrqChip | null;
  private readonly lines: Map<number, LineState> = new Map();
  /** Lines handed out by {@link allocLines} (irq_domain_alloc_irqs), by first line. */
  private readonly allocated: Map<number, number> = new Map();

  constructor(options: IrqDomainOptions) {
    checkObject("new IrqDomain", "options", options);
    this.name = checkString("new IrqDomain", "options.name", options.name, true);
    this.size = checkInteger("new IrqDomain", "options.size", options.size, 1, 1 << 20);
    const machine = options.machine ?? defaultMachine();
    if (!(machine instanceof Machine)) {
      throw new DevrefError("EINVAL", "new IrqDomain: options.machine must be a Machine");
    }
    const chip = options.chip ?? null;
    if (chip !== null) {
      checkObject("new IrqDomain", "options.chip", chip);
      checkCallback("new IrqDomain", "options.chip.enable", chip.enable);
      checkCallback("new IrqDomain", "options.chip.disable", chip.disable);
    }
    this.chip = chip;
    this.machine = machine;
    coreOf(machine).claimName("irq domain", this);
  }

  /** The domain named `name` on `machine`, or undefined. */
  static find(machine: Machine, name: string): IrqDomain | undefined {
    const d = coreOf(machine).lookup("irq domain", name);
    return d instanceof IrqDomain ? d : undefined;
  }

  /**
   * Raises line `hwirq`: one interrupt on an edge line, the line asserted on a level line.
   * Returns whether a handler said `"handled"` in the delivery this call made.
   *
   * **Errors:** `EINVAL` for a line outside the domain.
   */
  raise(hwirq: number): boolean {
    checkInteger("IrqDomain.raise", "hwirq", hwirq, 0, this.size - 1);
    const line = this.lines.get(hwirq);
    if (line === undefined) return false;
    if (line.trigger === "edge") {
      line.pendingEdge = true;
    } else {
      if (line.asserted) return false;
      line.asserted = true;
    }
    return deliver(this, hwirq, line);
  }

  /**
   * Deasserts level line `hwirq` (the device acknowledged its interrupt); no effect on an
   * edge line.
   *
   * **Errors:** `EINVAL` for a line outside the domain.
   */
  lower(hwirq: number): void {
    checkInteger("IrqDomain.lower", "hwirq", hwirq, 0, this.size - 1);
    const line = this.lines.get(hwirq);
    if (line === undefined) return;
    line.asserted = false;
    line.storm = 0;
  }

  /**
   * Allocates `count` consecutive free lines (irq_domain_alloc_irqs, e.g. for MSI vectors)
   * and returns the first.
   *
   * **Errors:** `ENOSPC` if no run of `count` free lines is left; `EINVAL` for a bad count.
   */
  allocLines(count: number): number {
    checkInteger("IrqDomain.allocLines", "count", count, 1, this.size);
    const taken = [...this.allocated.entries()].sort(([a], [b]) => a - b);
    let start = 0;
    for (const [first, n] of taken) {
      if (first - start >= count) break;
      start = Math.max(start, first + n);
    }
    if (start + count > this.size) {
      throw new DevrefError(
        "ENOSPC",
        `interrupt domain '${this.name}' has no ${count} free consecutive lines left (of ${this.size}); free some first`,
      );
    }
    this.allocated.set(start, count);
    return start;
  }

  /**
   * Frees lines from {@link allocLines} (irq_domain_free_irqs).
   *
   * **Errors:** `EINVAL` if `first` does not start an allocation.
   */
  freeLines(first: number): void {
    if (!this.allocated.delete(first)) {
      throw new DevrefError(
        "EINVAL",
        `interrupt domain '${this.name}': line ${describeValue(first)} does not start an allocation`,
      );
    }
  }

  /**
   * Runs the handlers of line `hwirq` once, for an interrupt its controller delivered
   * (generic_handle_domain_irq); returns whether one said `"handled"`. Lines whose
   * handlers keep saying `"none"` are disabled as for {@link raise}.
   *
   * **Errors:** `EINVAL` for a line outside the domain.
   */
  handle(hwirq: number): boolean {
    checkInteger("IrqDomain.handle", "hwirq", hwirq, 0, this.size - 1);
    const line = this.lines.get(hwirq);
    if (line === undefined) return false;
    line.pendingEdge = true;
    return deliverOnce(this, hwirq, line);
  }

  /** Whether level line `hwirq` is asserted. */
  isAsserted(hwirq: number): boolean {
    checkInteger("IrqDomain.isAsserted", "hwirq", hwirq, 0, this.size - 1);
    return this.lines.get(hwirq)?.asserted ?? false;
  }

  /** Whether line `hwirq` was disabled by the spurious-interrupt detector. */
  isDisabled(hwirq: number): boolean {
    checkInteger("IrqDomain.isDisabled", "hwirq", hwirq, 0, this.size - 1);
    return this.lines.get(hwirq)?.disabled ?? false;
  }

  /** The requested lines, as /proc/interrupts lists them: `"<hwirq>: <count> <name>, <name>"`. */
  interrupts(): string[] {
    return [...this.lines.entries()]
      .filter(([, l]) => l.actions.length > 0)
      .sort(([a], [b]) => a - b)
      .map(([n, l]) => `${n}: ${l.count} ${l.actions.map((a) => a.line.name).join(", ")}`);
  }

  /**
   * @internal Adds a handler (request_irq). A line's trigger is set by its first request;
   * a shared request with another trigger is refused.
   *
   * **Errors:** `EBUSY` for a trigger mismatch; `EINVAL` for a line outside the domain.
   */
  request(action: IrqAction, trigger: IrqTrigger): void {
    checkInstance("IrqDomain.request", "action", action, IrqAction);
    checkOneOf("IrqDomain.request", "trigger", trigger, ["level", "edge"]);
    checkInteger("requestIrq", "hwirq", action.line.hwirq, 0, this.size - 1);
    checkCallback("requestIrq", "handler", action.handler);
    let line = this.lines.get(action.line.hwirq);
    if (line === undefined) {
      line = new LineState();
      line.trigger = trigger;
      this.lines.set(action.line.hwirq, line);
    } else if (line.actions.length > 0 && line.trigger !== trigger) {
      throw new DevrefError(
        "EBUSY",
        `IRQ ${this.name}:${action.line.hwirq} is requested as ${line.trigger}-triggered; '${action.line.name}' asks for ${trigger}`,
      );
    } else {
      line.trigger = trigger;
    }
    // An edge that came while the line had no handler is lost, as in the kernel.
    if (line.actions.length === 0) line.pendingEdge = false;
    line.actions.push(action);
    if (line.actions.length === 1 && this.chip !== null) {
      try {
        this.chip.enable(action.line.hwirq, trigger);
      } catch (e) {
        line.actions.pop();
        throw e;
      }
    }
    // A level line already asserted interrupts the new handler at once.
    if (line.trigger === "level" && line.asserted && !line.delivering) {
      queueRedelivery(this, action.line.hwirq, line);
    }
  }

  /**
   * @internal disable_irq (`disable` true) or enable_irq on line `hwirq`, for `st`, whose
   * binding must have a handler there. Disabling nests; the first masks the line at the
   * controller. The last enable unmasks it and delivers what waited: an edge that came
   * meanwhile, or a level line still asserted.
   *
   * **Errors:** `EINVAL` if `st` has no active handler on the line, or for an enable
   * without a disable ("Unbalanced enable"); `EBUSY` for a synchronous disable from the
   * line's own handler (disable_irq waits for running handlers: use the nosync form).
   */
  changeDepth(st: object, hwirq: number, disable: boolean, sync: boolean, where: string): void {
    checkString("IrqDomain.changeDepth", "where", where);
    checkInteger(where, "hwirq", hwirq, 0, this.size - 1);
    const line = this.lines.get(hwirq);
    if (line === undefined || !line.actions.some((a) => a.st === st && a.active)) {
      throw new DevrefError(
        "EINVAL",
        `${where}: IRQ ${this.name}:${hwirq} is not one this binding requested; pass the line requestIrq returned`,
      );
    }
    if (disable) {
      if (sync && line.delivering) {
        throw new DevrefError(
          "EBUSY",
          `${where}: IRQ ${this.name}:${hwirq} is being handled right now, and disable_irq waits for its handlers: from a handler, use disableIrqNosync`,
        );
      }
      if (line.depth++ === 0) this.chip?.disable(hwirq);
      return;
    }
    if (line.depth === 0) {
      throw new DevrefError(
        "EINVAL",
        `${where}: Unbalanced enable for IRQ ${this.name}:${hwirq}: every enableIrq must follow a disableIrq`,
      );
    }
    if (--line.depth > 0) return;
    this.chip?.enable(hwirq, line.trigger);
    if (line.pendingEdge) {
      // check_irq_resend: the edge that came while disabled is delivered now.
      if (!line.delivering) queueResend(this, hwirq, line);
    } else if (line.trigger === "level" && line.asserted && !line.delivering) {
      queueRedelivery(this, hwirq, line);
    }
  }

  /** @internal Removes a handler (free_irq); it never runs again. */
  free(action: IrqAction): void {
    checkInstance("IrqDomain.free", "action", action, IrqAction);
    action.active = false;
    const line = this.lines.get(action.line.hwirq);
    if (line === undefined) return;
    const i = line.actions.indexOf(action);
    if (i >= 0) line.actions.splice(i, 1);
    if (line.actions.length === 0) {
      line.disabled = false;
      line.depth = 0;
      line.pendingEdge = false;
      line.unhandled = 0;
      line.storm = 0;
      if (i >= 0) this.chip?.disable(action.line.hwirq);
    }
  }
}

/** Runs the handlers of a line until nothing is pending; returns whether one handled it. */
/** One delivery for an external controller: no redelivery, which is the controller's job. */
function deliverOnce(domain: IrqDomain, hwirq: number, line: LineState): boolean {
  if (line.delivering || line.disabled || line.depth > 0 || line.actions.length === 0) return false;
  line.delivering = true;
  try {
    line.pendingEdge = false;
    line.count++;
    const handled = runHandlers(domain, line);
    if (handled) line.unhandled = 0;
    else if (++line.unhandled >= IRQ_UNHANDLED_LIMIT) {
      disable(domain, line, hwirq, "nobody cared (no handler returned handled)");
      domain.chip?.disable(hwirq);
    }
    return handled;
  } finally {
    line.delivering = false;
  }
}

function deliver(domain: IrqDomain, hwirq: number, line: LineState): boolean {
  if (line.delivering || line.disabled || line.depth > 0 || line.actions.length === 0) return false;
  line.delivering = true;
  let handled = false;
  try {
    do {
      line.pendingEdge = false;
      line.count++;
      const round = runHandlers(domain, line);
      handled ||= round;
      if (round) line.unhandled = 0;
      else if (++line.unhandled >= IRQ_UNHANDLED_LIMIT) {
        disable(domain, line, hwirq, "nobody cared (no handler returned handled)");
        break;
      }
    } while (line.pendingEdge && !line.disabled && line.depth === 0 && line.actions.length > 0);
  } finally {
    line.delivering = false;
  }
  if (line.trigger === "level" && line.asserted && !line.disabled && line.depth === 0)
    queueRedelivery(domain, hwirq, line);
  return handled;
}

function queueRedelivery(domain: IrqDomain, hwirq: number, line: LineState): void {
  if (line.redeliveryQueued) return;
  if (++line.storm >= IRQ_STORM_LIMIT) {
    disable(domain, line, hwirq, "interrupt storm (the line stayed asserted)");
    return;
  }
  line.redeliveryQueued = true;
  domain.machine.scheduler.queue(() => {
    line.redeliveryQueued = false;
    if (line.asserted && line.depth === 0) deliver(domain, hwirq, line);
  });
}

/** An edge that waited for enable_irq, delivered from the machine's scheduler. */
function queueResend(domain: IrqDomain, hwirq: number, line: LineState): void {
  domain.machine.scheduler.queue(() => {
    if (line.pendingEdge && line.depth === 0) deliver(domain, hwirq, line);
  });
}

function disable(domain: IrqDomain, line: LineState, hwirq: number, why: string): void {
  line.disabled = true;
  const names = line.actions.map((a) => a.st.name).join(", ") || "no device";
  domain.machine.log("err", `irq ${domain.name}:${hwirq}`, null, `${why}; disabling it (${names})`);
}

function runHandlers(domain: IrqDomain, line: LineState): boolean {
  let handled = false;
  for (const action of [...line.actions]) {
    if (!action.active) continue;
    const scope = new DeviceScope(CONTEXT_BOUND);
    // Lent for the binding while the handler runs: a removal from inside the handler ends
    // the binding, and the borrow with it, at once.
    const binding = action.st.binding;
    binding?.addScope(scope);
    try {
      // SAFETY: the action is active only while its binding holds the devres, so the device
      // is bound (or unbinding) when the call starts; the borrow dies with the call or the
      // binding, whichever ends first.
      const dev = scope.borrow(action.st, action.Handle) as Borrowed<Device<Bound>, never>;
      if (action.handler(dev) === "handled") handled = true;
    } catch (e) {
      action.st.log("err", `IRQ ${domain.name}:${action.line.hwirq} handler failed: ${String(e)}`);
    } finally {
      binding?.dropScope(scope);
      scope.close();
    }
  }
  return handled;
}
