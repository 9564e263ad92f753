//! The simulated SoC: virtual clock and event queue, seeded randomness, sparse physical
//! memory with a RAM allocator, the MMIO fabric, the interrupt controller, DMA masters,
//! fault injection and the trace, and the device-core Machine its drivers run on (whose
//! work queue is the event queue). No wall time anywhere.

import { IrqDomain, type LogSink, Machine } from "@devref/device-core";
import {
  argumentError,
  BuddyAllocator,
  checkCallback,
  checkInteger,
  checkObject,
  checkString,
  DevrefError,
  PHYS_ADDR_LIMIT,
  SparseMemory,
} from "@devref/raw-device";
import { EventQueue } from "./clock.js";
import { DmaPort, type DmaRanges } from "./dma.js";
import {
  fabricMapMemory,
  type MemoryMapEntry,
  MmioFabric,
  type MmioHandler,
  MmioPort,
} from "./fabric.js";
import { FaultInjector } from "./faults.js";
import { AIC_DOMAIN, LineBridge } from "./firmware/irq-bridge.js";
import { InterruptController } from "./irq.js";
import type { DeviceModel } from "./model.js";
import { Prng } from "./random.js";
import { StepCounter } from "./steps.js";
import { type TraceMode, type TraceRecord, Tracer } from "./trace.js";

/** What a {@link Soc} is built with. Every field has a default. */
export interface SocOptions {
  /** Name of the SoC's {@link Machine}, shown in driver-core messages (default `soc`). */
  readonly name?: string;
  /** Where the machine's log records go (default device-core's console sink). */
  readonly logSink?: LogSink;
  /** Seed of the random source (default 1). */
  readonly seed?: number;
  /** Physical base of RAM (default 0x8_0000_0000, as on Apple M1). */
  readonly ramBase?: number;
  /** RAM size in bytes, a power of two ≥ 64 KiB (default 256 MiB; sparse, so cheap). */
  readonly ramSize?: number;
  /** Number of interrupt lines (default 256). */
  readonly irqLines?: number;
  /** Deliveries in a row of a still-asserted level line before it is masked (default 10000). */
  readonly irqStormLimit?: number;
  /** Trace mode (default `full`). */
  readonly trace?: TraceMode;
  /** Records kept in `full` mode, the most recent ones (default 100000). */
  readonly traceLimit?: number;
}

/** Limits for {@link Soc.run}, {@link Soc.runUntil} and {@link Soc.settle}. */
export interface RunOptions {
  /** Most events to run before giving up (default 10 million). */
  readonly maxEvents?: number;
  /** Stop once the clock would pass this many nanoseconds from now. */
  readonly timeoutNs?: number;
}

/** One DMA access to RAM that was not allocated at the time (see {@link Soc.dmaUseAfterFree}). */
export interface DmaUseAfterFree {
  /** The DMA master's name. */
  readonly master: string;
  readonly pa: number;
  readonly length: number;
  readonly write: boolean;
  readonly step: number;
  readonly timeNs: number;
}

// module-state: a privileged-access slot, assigned once by Soc's static block.
let registerDeviceOf: (soc: Soc, model: DeviceModel) => void;

/** @internal Adds `model` to `soc` (the DeviceModel constructor). */
export function registerDevice(soc: Soc, model: DeviceModel): void {
  registerDeviceOf(soc, model);
}

const DEFAULT_MAX_EVENTS = 10_000_000;
/** Microtask turns given to promise continuations after each event while the machine is busy. */
const SETTLE_TURNS = 8;
/** Microtask turns to wait, with no event left, before a busy machine counts as stuck. */
const SETTLE_STUCK_TURNS = 10_000;

/**
 * A deterministic simulated SoC. Device models attach to it; drivers (or tests) drive them
 * through the fabric or their ports, and time moves only when events run.
 *
 * **Steps.** Every event run and every MMIO access (through any port or the fabric) is one
 * step, numbered from 1; `stepCount` is the number of the last step. DMA transfers,
 * memory accesses and IOTLB lookups are not steps. Fault injection (`faults.schedule({
 * step })`) and exploration tools address a run by these numbers.
 *
 * **Time.** Virtual nanoseconds (`nowNs`), integers; `events.now()` gives milliseconds for
 * the scheduler seam. MMIO accesses take no virtual time.
 *
 * **Drivers.** `machine` is a device-core {@link Machine} whose scheduler is the event
 * queue: driver-core work (deferred probes, level-interrupt redelivery of self-driven
 * domains, queued surprise removals) runs as events, in virtual time. `aic` is the machine's
 * `"aic"` interrupt domain over the interrupt controller's lines (hwirq = line). Buses made
 * on `machine` are described to with `describeSoc`. Wait with {@link Soc.settle} (or `run`,
 * `runUntil`), never `machine.waitForDeviceProbe()`, which would wait for work only the
 * simulator runs.
 *
 * **Invariants:** two SoCs built with the same options and driven by the same calls produce
 * the same trace and digest; nothing is shared between SoCs.
 *
 * **Errors:** `EINVAL` for bad options; `EEXIST` for a duplicate model name; `EBUSY` when
 * `run` hits its event limit (the queue never drains: a periodic timer or an interrupt
 * storm).
 *
 * @example
 * ```ts
 * const soc = new Soc({ seed: 7 });
 * const dart = new Dart(soc, { name: "dart0", variant: "t8110", base: 0x2_8000_0000, irq: 10 });
 * soc.fabric.write32(0x2_8000_0000 + 0xc00, 0xffff_ffff); // enable streams
 * soc.run();
 * console.log(soc.memoryMap(), soc.traceDigest());
 * ```
 */
export class Soc {
  readonly seed: number;
  /** The step counter (shared with ports and the event queue). */
  readonly steps: StepCounter;
  /** The event queue; implements the `Scheduler` seam. */
  readonly events: EventQueue;
  /** The only source of randomness. */
  readonly random: Prng;
  /** Physical memory (sparse, 2^52 bytes). */
  readonly memory: SparseMemory;
  /** Allocator over RAM (zeroed, naturally aligned blocks). */
  readonly ram: BuddyAllocator;
  readonly ramBase: number;
  readonly ramSize: number;
  readonly fabric: MmioFabric;
  readonly irq: InterruptController;
  readonly faults: FaultInjector;
  readonly tracer: Tracer;
  /** The machine drivers of this SoC run on; its scheduler is {@link Soc.events}. */
  readonly machine: Machine;
  /** The machine's `"aic"` interrupt domain: hwirq `n` is interrupt line `n`. */
  readonly aic: IrqDomain;
  private readonly models = new Map<string, DeviceModel>();
  private readonly dmaRanges: DmaRanges = { list: [] };
  private readonly freedAccesses: DmaUseAfterFree[] = [];
  private readonly traceId: number;

  constructor(options: SocOptions = {}) {
    checkObject("new Soc", "options", options);
    const machineName = checkString("new Soc", "options.name", options.name ?? "soc", true);
    if (options.logSink !== undefined) checkCallback("new Soc", "options.logSink", options.logSink);
    const seed = options.seed ?? 1;
    checkInteger("new Soc", "options.seed", seed, Number.MIN_SAFE_INTEGER, Number.MAX_SAFE_INTEGER);
    const ramBase = options.ramBase ?? 0x8_0000_0000;
    const ramSize = options.ramSize ?? 256 * 1024 * 1024;
    checkInteger("new Soc", "options.ramSize", ramSize, 0x1_0000, 2 ** 40);
    if (!Number.isInteger(Math.log2(ramSize))) {
      throw argumentError("new Soc", "options.ramSize", "a power of two", ramSize);
    }
    checkInteger("new Soc", "options.ramBase", ramBase, 0, PHYS_ADDR_LIMIT - ramSize);
    if (ramBase % ramSize !== 0) {
      throw argumentError(
        "new Soc",
        "options.ramBase",
        `a multiple of the RAM size (${ramSize})`,
        ramBase,
      );
    }
    this.seed = seed;
    this.steps = new StepCounter();
    const steps = this.steps;
    this.events = new EventQueue({
      onStep() {
        if (++steps.count >= steps.trigger) steps.onTrigger(steps.count);
      },
    });
    const events = this.events;
    this.tracer = new Tracer(
      {
        get stepCount() {
          return steps.count;
        },
        get nowNs() {
          return events.nowNs;
        },
      },
      options.trace ?? "full",
      options.traceLimit ?? 100_000,
    );
    this.traceId = this.tracer.source("soc");
    this.random = new Prng(seed);
    this.memory = new SparseMemory();
    this.ramBase = ramBase;
    this.ramSize = ramSize;
    this.ram = new BuddyAllocator(this.memory, ramBase, ramSize, 64);
    this.fabric = new MmioFabric(this.memory);
    fabricMapMemory(this.fabric, "ram", ramBase, ramSize, "ram");
    this.dmaRanges.list.push(ramBase, ramBase + ramSize);
    const ram = this.ram;
    const uaf = this.freedAccesses;
    // The last block found allocated, trusted while the allocator's generation is unchanged:
    // a device streaming through one buffer is checked once, not on every transfer.
    let seenGen = -1;
    let seenStart = 0;
    let seenEnd = 0;
    this.dmaRanges.watch = {
      base: ramBase,
      end: ramBase + ramSize,
      isAllocated: (pa, length) => {
        const gen = ram.generation;
        if (gen === seenGen && pa >= seenStart && pa + length <= seenEnd) return true;
        if (!ram.isAllocated(pa, length)) return false;
        seenGen = gen;
        // Remember the whole block, so the next word of the same buffer is a hit.
        const block = ram.blockAt(pa);
        if (block !== null && pa + length <= block.start + block.size) {
          seenStart = block.start;
          seenEnd = block.start + block.size;
        } else {
          seenStart = pa;
          seenEnd = pa + length;
        }
        return true;
      },
      report: (master, pa, length, write) => {
        uaf.push({ master, pa, length, write, step: this.steps.count, timeNs: this.events.nowNs });
        this.tracer.note(this.traceId, `dma-use-after-free ${master}`, pa, length);
      },
    };
    this.irq = new InterruptController(
      this.events,
      this.tracer,
      options.irqLines ?? 256,
      options.irqStormLimit ?? 10_000,
    );
    this.faults = new FaultInjector(this.steps, this.events, this.tracer, (name) =>
      this.models.get(name),
    );
    this.machine = new Machine({
      name: machineName,
      scheduler: this.events,
      ...(options.logSink === undefined ? {} : { logSink: options.logSink }),
    });
    const bridge = new LineBridge(this.irq, 0);
    this.aic = new IrqDomain({
      machine: this.machine,
      name: AIC_DOMAIN,
      size: this.irq.lines,
      chip: bridge,
    });
    bridge.bind(this.aic);
  }

  /** Number of the last step taken (0 before the first). */
  get stepCount(): number {
    return this.steps.count;
  }

  /** Current virtual time in nanoseconds. */
  get nowNs(): number {
    return this.events.nowNs;
  }

  /** Runs the next event; false when there is none. */
  step(): boolean {
    return this.events.runNext();
  }

  /**
   * Runs events until the queue is empty; returns how many ran.
   *
   * **Errors:** `EBUSY` after `maxEvents` events (the queue never drains).
   */
  run(options: RunOptions = {}): number {
    const max = this.#limit("run", options);
    const deadline = this.#deadline("run", options);
    let n = 0;
    for (;;) {
      const next = this.events.nextTimeNs();
      if (next === Number.POSITIVE_INFINITY || next > deadline) break;
      if (n >= max) {
        throw new DevrefError(
          "EBUSY",
          `soc.run: ${max} events ran and the queue is not empty (at ${this.nowNs} ns, step ` +
            `${this.stepCount}): a periodic timer or an interrupt storm keeps it busy; use ` +
            "runFor() or runUntil() for open-ended runs",
        );
      }
      this.events.runNext();
      n++;
    }
    if (deadline !== Number.POSITIVE_INFINITY && deadline > this.nowNs)
      this.events.advanceTo(deadline);
    return n;
  }

  /** Runs every event due in the next `ns` nanoseconds, then sets the clock to that time. */
  runFor(ns: number): number {
    checkInteger("Soc.runFor", "ns", ns, 0, Number.MAX_SAFE_INTEGER - this.nowNs);
    const end = this.nowNs + ns;
    let n = 0;
    while (this.events.nextTimeNs() <= end) {
      this.events.runNext();
      n++;
    }
    this.events.advanceTo(end);
    return n;
  }

  /**
   * Runs events until `cond()` is true (checked before each event and once more at the
   * end); returns whether it became true. Stops early when the queue is empty, the time
   * limit is reached (the clock is then at the limit), or after `maxEvents` events.
   */
  runUntil(cond: () => boolean, options: RunOptions = {}): boolean {
    checkCallback("Soc.runUntil", "cond", cond);
    const max = this.#limit("runUntil", options);
    const deadline = this.#deadline("runUntil", options);
    let n = 0;
    while (!cond()) {
      if (n >= max) return false;
      const next = this.events.nextTimeNs();
      if (next === Number.POSITIVE_INFINITY) return false;
      if (next > deadline) {
        if (deadline !== Number.POSITIVE_INFINITY) this.events.advanceTo(deadline);
        return cond();
      }
      this.events.runNext();
      n++;
    }
    return true;
  }

  /**
   * Runs the simulation until the machine is idle: no probe in flight, no driver-core work
   * queued, and no event pending. Promise continuations of asynchronous probes get their
   * microtask turns between events, so a probe that awaits something the hardware does
   * (a firmware's reply, an interrupt) goes on as soon as it happened. Resolves to true
   * when idle; false at the time limit, or when the machine is still busy with no event
   * left (a probe waits for something that will never happen).
   *
   * **Errors:** `EBUSY` after `maxEvents` events (a periodic timer or an interrupt storm
   * keeps the queue busy; use `runFor` or `runUntil` then).
   *
   * @example
   * ```ts
   * platform.registerDriver(myDriver);
   * expect(await soc.settle()).toBe(true); // the probe and everything it started are done
   * ```
   */
  async settle(options: RunOptions = {}): Promise<boolean> {
    const max = this.#limit("settle", options);
    const deadline = this.#deadline("settle", options);
    const machine = this.machine;
    const events = this.events;
    let n = 0;
    for (;;) {
      // Promise continuations are what a busy machine waits for; give them their turns.
      for (let i = 0; i < SETTLE_TURNS && machine.busy; i++) await null;
      let next = events.nextTimeNs();
      if (next === Number.POSITIVE_INFINITY) {
        for (let i = 0; i < SETTLE_STUCK_TURNS && machine.busy; i++) {
          await null;
          if (events.nextTimeNs() !== Number.POSITIVE_INFINITY) break;
        }
        next = events.nextTimeNs();
        if (next === Number.POSITIVE_INFINITY) return !machine.busy;
      }
      if (next > deadline) {
        events.advanceTo(deadline);
        return false;
      }
      if (n >= max) {
        throw new DevrefError(
          "EBUSY",
          `soc.settle: ${max} events ran and the queue is not empty (at ${this.nowNs} ns, ` +
            `step ${this.stepCount}): a periodic timer or an interrupt storm keeps it busy; ` +
            "use runFor() or runUntil() for open-ended runs",
        );
      }
      events.runNext();
      n++;
    }
  }

  /**
   * DMA accesses to RAM that was not allocated (from `soc.ram`) when they happened: uses
   * after free by a device. A driver that frees a buffer before the device stops using it
   * shows up here. Empty in a correct run.
   */
  dmaUseAfterFree(): readonly DmaUseAfterFree[] {
    return [...this.freedAccesses];
  }

  /** The memory map: RAM, extra memories, MMIO regions and windows (with the BARs mapped in them). */
  memoryMap(): MemoryMapEntry[] {
    return this.fabric.entries();
  }

  /** The kept trace records, oldest first (mode `full`). */
  trace(): TraceRecord[] {
    return this.tracer.records();
  }

  /** FNV-1a 64 over the canonical encoding of every record so far (16 hex digits). */
  traceDigest(): string {
    return this.tracer.digest();
  }

  /** The model called `name`. */
  device(name: string): DeviceModel | undefined {
    return this.models.get(name);
  }

  /** Every model, in the order they were created. */
  devices(): DeviceModel[] {
    return [...this.models.values()];
  }

  /**
   * Adds plain memory outside RAM (an SRAM, a shared-memory window) at `[base, base+size)`:
   * mapped in the fabric, and DMA may reach it.
   *
   * **Errors:** `EBUSY` if it overlaps a mapped region; `EINVAL` for a bad range.
   */
  addMemory(name: string, base: number, size: number): void {
    checkString("Soc.addMemory", "name", name, true);
    checkInteger("Soc.addMemory", "size", size, 1, PHYS_ADDR_LIMIT);
    checkInteger("Soc.addMemory", "base", base, 0, PHYS_ADDR_LIMIT - size);
    fabricMapMemory(this.fabric, name, base, size, "memory");
    this.dmaRanges.list.push(base, base + size);
  }

  /** A new DMA master, bus address = physical address until `attachIommu`. */
  dmaMaster(name: string): DmaPort {
    checkString("Soc.dmaMaster", "name", name, true);
    return new DmaPort(name, this.memory, this.dmaRanges, this.tracer);
  }

  /** A new MMIO port for `handler` (models use `addPort`, which also tracks it). */
  newPort(name: string, size: number, handler: MmioHandler): MmioPort {
    checkString("Soc.newPort", "name", name, true);
    checkObject("Soc.newPort", "handler", handler);
    return new MmioPort(name, size, handler, this.steps, this.tracer);
  }

  /**
   * Records a note in the trace on behalf of the SoC (or of a test driving it).
   *
   * **Errors:** `EINVAL` for a `text` that is not a string or `a`/`b` that are not safe
   * integers.
   */
  note(text: string, a = 0, b = 0): void {
    checkString("Soc.note", "text", text);
    checkInteger("Soc.note", "a", a, Number.MIN_SAFE_INTEGER, Number.MAX_SAFE_INTEGER);
    checkInteger("Soc.note", "b", b, Number.MIN_SAFE_INTEGER, Number.MAX_SAFE_INTEGER);
    this.tracer.note(this.traceId, text, a, b);
  }

  static {
    registerDeviceOf = (soc, model) => soc.#registerDevice(model);
  }

  #registerDevice(model: DeviceModel): void {
    if (this.models.has(model.name)) {
      throw new DevrefError(
        "EEXIST",
        `a device model named '${model.name}' already exists on this SoC: give each model a unique name`,
      );
    }
    this.models.set(model.name, model);
  }

  #limit(where: string, o: RunOptions): number {
    checkObject(`Soc.${where}`, "options", o);
    return checkInteger(
      `Soc.${where}`,
      "options.maxEvents",
      o.maxEvents ?? DEFAULT_MAX_EVENTS,
      0,
      Number.MAX_SAFE_INTEGER,
    );
  }

  #deadline(where: string, o: RunOptions): number {
    if (o.timeoutNs === undefined) return Number.POSITIVE_INFINITY;
    checkInteger(
      `Soc.${where}`,
      "options.timeoutNs",
      o.timeoutNs,
      0,
      Number.MAX_SAFE_INTEGER - this.nowNs,
    );
    return this.nowNs + o.timeoutNs;
  }
}
