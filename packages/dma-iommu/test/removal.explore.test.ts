// Issue 8's removal exploration: one driver scenario — MMIO, an interrupt, a DMA mask,
// coherent and streaming DMA through an IOMMU domain, an asynchronous probe, traffic in which
// the device DMAs through the IOMMU's translation and an interrupt completes the transfer,
// then an orderly teardown — run once to count its steps (every API call and every await),
// then once per (step, action) with one of five removals injected at that step: surprise
// removal of the device, unbind, IOMMU unregister, removal of the IOMMU's device, removal of
// the device's parent. After every run: nothing but DevrefError escaped, no DMA touched
// memory that was not (still) the buffer's, and every audit is back to zero.

import { writeFileSync } from "node:fs";
import { definePlatformDriver, PlatformBus, type PlatformDevice } from "@devref/bus";
import {
  auditDevices,
  type BoundCallback,
  type Device,
  type Devres,
  IrqDomain,
  Machine,
  type MmioBackend,
  type MmioRegion,
} from "@devref/device-core";
import { type ArmLpaeIoPgtable, allocIoPgtable, type IotlbGather } from "@devref/io-pgtable";
import {
  type ARef,
  type Bound,
  BuddyAllocator,
  DevrefError,
  type DmaAddr,
  type Iova,
  iova,
  type PhysAddr,
  SparseMemory,
} from "@devref/raw-device";
import { describe, expect, it } from "vitest";
import {
  type CoherentAllocation,
  DMA_FROM_DEVICE,
  DMA_MAPPING_ERROR,
  DmaSystem,
  dmaAllocCoherent,
  dmaMapSg,
  dmaMapSingle,
  dmaSetMaskAndCoherent,
  dmaUnmapSg,
  dmaUnmapSingle,
  type IommuDevice,
  type IommuDomain,
  type IommuDomainOps,
  type IommuOps,
  iommuDeviceRegister,
  iommuDeviceUnregister,
  iommuIotlbGatherAddPage,
  ScatterList,
} from "../src/index.js";

const ACTIONS = [
  "surprise removal",
  "unbind",
  "IOMMU unregister",
  "IOMMU removal",
  "parent removal",
] as const;
type Action = (typeof ACTIONS)[number];

/** The device's registers. */
const CTRL = 0x00; // bit 0: DMA enabled
const DOORBELL = 0x04; // a write starts one transfer
const STATUS = 0x08; // bit 0: transfer done (write 0 to acknowledge)
const RING_LO = 0x10;
const RING_HI = 0x14;
const DONE = 1;
const LEN = 2048;
const STREAM = 9;
const PATTERN = 0x5a;

/** One run's record: failures are bugs; everything else is an outcome. */
interface RunLog {
  readonly failures: string[];
  readonly codes: Set<string>;
  readonly notes: string[];
  transferred: number;
}

/** The step hook: counts API calls and awaits, and injects the action at the target step. */
class Stepper {
  count = 0;
  readonly labels: string[] = [];
  private done = false;
  constructor(
    private readonly target: number,
    private readonly inject: () => void,
    private readonly queue: (job: () => void) => void,
  ) {}

  /** Before an API call: inject now if this is the step. */
  call(label: string): void {
    this.labels.push(label);
    if (this.count++ === this.target && !this.done) {
      this.done = true;
      this.inject();
    }
  }

  /** Before an await: inject while the awaiting code is suspended. */
  wait<T>(label: string, p: () => Promise<T>): Promise<T> {
    this.labels.push(`await ${label}`);
    if (this.count++ === this.target && !this.done) {
      this.done = true;
      this.queue(() => this.inject());
    }
    return p();
  }
}

/** The IOMMU hardware: stream → domain, walked by the device's DMA. */
class IommuHw {
  gone = false;
  readonly streams: Map<number, TestDomain> = new Map();
  constructor(readonly log: RunLog) {}
}

class TestDomain implements IommuDomainOps {
  readonly table: ArmLpaeIoPgtable;
  readonly apertureEnd: Iova = iova(2 ** 40 - 1);
  readonly forceAperture = true;
  freed = false;
  private core: IommuDomain | null = null;
  constructor(
    private readonly hw: IommuHw,
    pages: DmaSystem["iommuPages"],
  ) {
    this.table = allocIoPgtable(
      "arm-64-lpae-s1",
      {
        pgsizeBitmap: 0x4020_1000,
        ias: 40,
        oas: 48,
        tlb: {
          tlbAddPage: (g, at, granule) =>
            iommuIotlbGatherAddPage(this.core!, g, iova(Number(at)), granule),
        },
      },
      pages,
    );
  }
  bindDomain(d: IommuDomain): void {
    this.core = d;
  }
  attachDev(_dev: Device, ids: readonly number[]): void {
    for (const id of ids) this.hw.streams.set(id, this);
  }
  mapPages(at: Iova, pa: PhysAddr, pgsize: number, n: number, prot: number): number {
    return this.table.mapPages(at, pa, pgsize, n, prot);
  }
  unmapPages(at: Iova, pgsize: number, n: number, g: IotlbGather): number {
    return this.table.unmapPages(at, pgsize, n, g);
  }
  iotlbSync(): void {}
  flushIotlbAll(): void {}
  iovaToPhys(at: Iova): PhysAddr {
    return this.table.iovaToPhys(at);
  }
  free(): void {
    for (const [sid, d] of this.hw.streams) {
      if (d === this && !this.hw.gone) {
        this.hw.log.failures.push(
          `IOMMU core freed a domain whose tables stream ${sid} still walks (release_device was not called)`,
        );
      }
    }
    this.freed = true;
    this.table[Symbol.dispose]();
  }
}

/** The device: registers, and DMA through the IOMMU when its doorbell was rung. */
class DeviceModel implements MmioBackend {
  gone = false;
  private readonly regs = new Uint32Array(8);
  private rung = false;
  private last: [number, number][] = [];
  constructor(
    private readonly system: DmaSystem,
    private readonly iommu: IommuHw,
    private readonly log: RunLog,
    private readonly raise: () => void,
  ) {}
  read32(offset: number): number {
    return this.regs[offset / 4]! >>> 0;
  }
  write32(offset: number, value: number): void {
    if (offset === DOORBELL) this.rung = true;
    else this.regs[offset / 4] = value;
  }

  /** Translates one access through the IOMMU; null on a fault (no memory touched). */
  private translate(addr: number, len: number, want: string, what: string): PhysAddr | null {
    const hw = this.iommu;
    if (hw.gone) return null;
    const dom = hw.streams.get(STREAM);
    if (dom === undefined) return null;
    if (dom.freed) {
      this.log.failures.push(`${what}: the IOMMU walked the freed tables of a domain`);
      return null;
    }
    const pa = dom.iovaToPhys(iova(addr));
    if (pa === 0) return null; // IOMMU fault: nothing mapped there
    if (dom.iovaToPhys(iova(addr + len - 1)) !== pa + len - 1) return null;
    const use = this.system.ramUseOf(pa, len);
    if (use !== want) {
      this.log.failures.push(
        `${what}: DMA to ${pa.toString(16)}+${len}, which is ${use ?? "freed memory"}, not ${want}`,
      );
      return null;
    }
    return pa;
  }

  /**
   * A misbehaving device repeats its last transfer after the driver took the buffers back:
   * the unmap must have taken the IOMMU's translation away, so this faults (or lands in
   * whatever buffer now owns that IOVA), never in freed memory.
   */
  replay(): void {
    if (this.gone || (this.regs[CTRL / 4]! & 1) === 0) return;
    for (const [addr, len] of this.last) {
      const buf = this.translate(addr, len, "buffer", "stale DMA after unmap");
      if (buf !== null) this.system.memory.writeBytes(buf, new Uint8Array(len).fill(0xee));
    }
  }

  /** One transfer, if the driver rang the doorbell and DMA is enabled. */
  run(): void {
    if (this.gone || !this.rung || (this.regs[CTRL / 4]! & 1) === 0) return;
    this.rung = false;
    const ring = this.regs[RING_LO / 4]! + this.regs[RING_HI / 4]! * 2 ** 32;
    const desc = this.translate(ring, 64, "coherent", "descriptor read");
    if (desc === null) return;
    const mem = this.system.memory;
    const count = Math.min(mem.read32(desc), 3);
    this.last = [];
    for (let i = 0; i < count; i++) {
      const at = desc + 8 + 16 * i;
      const addr = mem.read64Lo(at) + mem.read64Hi(at) * 2 ** 32;
      const len = mem.read32(at + 8);
      this.last.push([addr, len]);
      const buf = this.translate(addr, len, "buffer", "packet write");
      if (buf === null) return;
      mem.writeBytes(buf, new Uint8Array(len).fill(PATTERN));
    }
    this.regs[STATUS / 4] = DONE;
    this.raise();
  }
}

interface Outcome {
  readonly failures: readonly string[];
  readonly kind: string;
  readonly steps: number;
  readonly labels: readonly string[];
  readonly notes: readonly string[];
}

/** Records a throw: DevrefError is an outcome, anything else a failure. */
function caught(log: RunLog, where: string, e: unknown): void {
  if (e instanceof DevrefError) {
    // The machine's DMA layer configures every binding: "no DMA configuration" would mean a
    // borrow outlived its binding.
    if (/no DMA configuration/.test(e.message)) log.failures.push(`${where}: ${e.message}`);
    log.codes.add(e.code);
    if (process.env.EXPLORE_DUMP !== undefined) log.notes.push(`${where}: ${e.message}`);
  } else
    log.failures.push(`${where}: ${e instanceof Error ? `${e.name}: ${e.message}` : String(e)}`);
}

async function runScenario(
  target: number,
  action: Action | null,
  mode: "strict" | "lazy",
): Promise<Outcome> {
  const log: RunLog = { failures: [], codes: new Set(), notes: [], transferred: 0 };
  const lines: string[] = [];
  const machine = new Machine({ name: "explore", logSink: (r) => lines.push(r.text) });
  const memory = new SparseMemory();
  const ram = new BuddyAllocator(memory, 0x8_0000_0000, 2 ** 26, 4096);
  const system = new DmaSystem({
    machine,
    memory,
    ram,
    swiotlb: { nslabs: 128 },
    iommuDefaultDomain: mode,
  });
  const bus = new PlatformBus({ machine });
  const aic = new IrqDomain({ machine, name: "aic", size: 16 });
  const hw = new IommuHw(log);
  const model = new DeviceModel(system, hw, log, () => aic.raise(4));
  const refs: {
    iommu: ARef<PlatformDevice> | null;
    parent: ARef<PlatformDevice> | null;
    dev: ARef<PlatformDevice> | null;
  } = { iommu: null, parent: null, dev: null };
  let iommuObj: IommuDevice | null = null;
  const buffers = new Set<PhysAddr>();

  const inject = (): void => {
    try {
      switch (action) {
        case "surprise removal":
          model.gone = true;
          if (refs.dev !== null) bus.unplug(refs.dev);
          break;
        case "unbind":
          if (refs.dev !== null) bus.unbind(refs.dev);
          break;
        case "IOMMU unregister":
          if (iommuObj !== null) iommuDeviceUnregister(iommuObj);
          break;
        case "IOMMU removal":
          hw.gone = true;
          if (refs.iommu !== null) bus.unplug(refs.iommu);
          break;
        case "parent removal":
          model.gone = true;
          if (refs.parent !== null) bus.unplug(refs.parent);
          break;
        case null:
          break;
      }
    } catch (e) {
      caught(log, `injecting ${action}`, e);
    }
  };
  const s = new Stepper(target, inject, (job) => machine.scheduler.queue(job));
  const tick = (): Promise<void> => new Promise((r) => machine.scheduler.queue(r));

  // --- the IOMMU driver (registers the IOMMU; releases streams when asked) --------------
  const iommuOps: IommuOps = {
    pgsizeBitmap: 0x4020_1000,
    probeDevice: () => {},
    releaseDevice: (_dev, ids) => {
      for (const id of ids) hw.streams.delete(id);
    },
    domainAllocPaging: () => new TestDomain(hw, system.iommuPages),
    attachBlocked: (_dev, ids) => {
      for (const id of ids) hw.streams.delete(id);
    },
  };
  bus.registerDriver(
    definePlatformDriver({
      name: "test-iommu",
      ofMatchTable: [{ compatible: "test,iommu" }],
      probe: (dev) => {
        iommuObj = iommuDeviceRegister(system, dev, iommuOps, { name: "mmu" });
        return null;
      },
    }),
  );

  // --- the device's driver ----------------------------------------------------------------
  interface Nic {
    regs: Devres<MmioRegion>;
    ring: CoherentAllocation;
    run: BoundCallback<[(d: Device<Bound>) => void], void>;
    cur: DmaAddr | null;
    sg: ScatterList | null;
    /** The buffers of the transfer in flight: [address, length]. */
    pending: [PhysAddr, number][];
  }
  const filled = (list: readonly [PhysAddr, number][]): boolean =>
    list.every(([b, len]) => {
      const got = new Uint8Array(len);
      system.memory.readBytes(b, got);
      return got.every((x) => x === PATTERN);
    });
  const guard = <R>(where: string, fn: () => R, fallback: R): R => {
    try {
      return fn();
    } catch (e) {
      caught(log, where, e);
      return fallback;
    }
  };
  let nic: Nic | null = null;
  const driver = definePlatformDriver({
    name: "nic",
    ofMatchTable: [{ compatible: "test,nic" }],
    probe: async (dev): Promise<Nic> => {
      try {
        s.call("probe: ioremap");
        const regs = dev.ioremapResource(0);
        s.call("probe: request irq");
        dev.requestIrq(
          0,
          (d) =>
            guard(
              "irq handler",
              () => {
                s.call("irq: read status");
                const st = regs.access(d).read32(STATUS);
                if (st === 0xffff_ffff || (st & DONE) === 0) return "none";
                const n = nic;
                const cur = n?.cur ?? null;
                if (n !== null && cur !== null) {
                  s.call("irq: unmap");
                  dmaUnmapSingle(d, cur, LEN, DMA_FROM_DEVICE);
                  n.cur = null;
                  if (filled(n.pending)) log.transferred++;
                }
                const sg = n?.sg ?? null;
                if (n !== null && sg !== null) {
                  s.call("irq: unmap sg");
                  dmaUnmapSg(d, sg, sg.origNents, DMA_FROM_DEVICE);
                  n.sg = null;
                  if (filled(n.pending)) log.transferred++;
                }
                s.call("irq: ack");
                regs.access(d).write32(STATUS, 0);
                return "handled";
              },
              "handled",
            ),
          "nic",
        );
        s.call("probe: dma mask");
        dmaSetMaskAndCoherent(dev, 40);
        s.call("probe: coherent ring");
        const ring = dmaAllocCoherent(dev, 4096);
        s.call("probe: program ring");
        const r = regs.access(dev);
        r.write32(RING_LO, ring.dmaAddr >>> 0);
        r.write32(RING_HI, Math.floor(ring.dmaAddr / 2 ** 32));
        s.call("probe: enable DMA");
        r.write32(CTRL, 1);
        // Stopped by devres too, so an aborted probe leaves no DMA running.
        dev.devmAddAction(() => regs.tryAccess()?.write32(CTRL, 0), "stop dma");
        await s.wait("probe: reset delay", tick);
        s.call("probe: bound callback");
        const run = dev.devmCallback((d, fn: (d: Device<Bound>) => void) => fn(d), "nic work");
        const n: Nic = { regs, ring, run, cur: null, sg: null, pending: [] };
        nic = n;
        return n;
      } catch (e) {
        if (!(e instanceof DevrefError)) caught(log, "probe", e);
        throw e;
      }
    },
    remove: (dev, n) => {
      guard(
        "remove",
        () => {
          s.call("remove: stop DMA");
          n.regs.access(dev).write32(CTRL, 0);
          const cur = n.cur;
          if (cur !== null) {
            s.call("remove: unmap");
            dmaUnmapSingle(dev, cur, LEN, DMA_FROM_DEVICE);
            n.cur = null;
          }
          const sg = n.sg;
          if (sg !== null) {
            s.call("remove: unmap sg");
            dmaUnmapSg(dev, sg, sg.origNents, DMA_FROM_DEVICE);
            n.sg = null;
          }
        },
        undefined,
      );
    },
  });

  // --- the scenario --------------------------------------------------------------------
  const top = async (label: string, fn: () => unknown): Promise<void> => {
    try {
      s.call(label);
      await fn();
    } catch (e) {
      caught(log, label, e);
    }
    // The DMA layer's bookkeeping holds after every step, not only at the end.
    const a = system.audit();
    for (const p of a.problems) log.failures.push(`after ${label}: DMA audit: ${p}`);
  };
  await top("register IOMMU device", () => {
    refs.iommu = bus.register({ name: "mmu", compatible: ["test,iommu"] });
  });
  await top("register parent", () => {
    refs.parent = bus.register({ name: "bridge" });
  });
  await top("register driver", () => bus.registerDriver(driver));
  await top("register device", () => {
    refs.dev = bus.register({
      name: "nic0",
      compatible: ["test,nic"],
      parent: refs.parent,
      mem: [{ start: 0x2_0000_0000, size: 0x1000, backend: model }],
      interrupts: [{ domain: "aic", hwirq: 4, trigger: "edge" }],
      iommus: [{ iommu: "mmu", ids: [STREAM] }],
    });
  });
  await top("settle", () => s.wait("settle after probe", () => bus.settle()));
  // Traffic: the driver maps buffers, the device DMAs into them through the IOMMU, the
  // interrupt completes the transfer. One single mapping, then one scatterlist of two.
  const ring = (n: Nic, segs: readonly (readonly [number, number])[]): void => {
    n.ring.write32(0, segs.length);
    segs.forEach(([addr, len], i) => {
      n.ring.write64(8 + 16 * i, addr >>> 0, Math.floor(addr / 2 ** 32));
      n.ring.write32(16 + 16 * i, len);
    });
  };
  const alloc = (): PhysAddr => {
    const b = system.allocBuffer(LEN);
    buffers.add(b);
    return b;
  };
  const release = (n: Nic | null): void => {
    // Only once the transfer is complete; else the driver's remove() unmaps it first.
    if (n === null || n.cur !== null || n.sg !== null) return;
    for (const [b] of n.pending) {
      system.freeBuffer(b, LEN);
      buffers.delete(b);
    }
    n.pending = [];
  };
  await top("single: alloc buffer", () => nic?.pending.push([alloc(), LEN]));
  await top("single: map and ring", () =>
    nic?.run((d) => {
      const n = nic!;
      const b = n.pending[0];
      if (b === undefined) return;
      s.call("work: map");
      const addr = dmaMapSingle(d, b[0], LEN, DMA_FROM_DEVICE);
      if (addr === DMA_MAPPING_ERROR) return;
      n.cur = addr;
      s.call("work: descriptor");
      ring(n, [[addr, LEN]]);
      s.call("work: doorbell");
      n.regs.access(d).write32(DOORBELL, 1);
    }),
  );
  await top("single: device runs", () => model.run());
  await top("settle", () => s.wait("settle after interrupt", () => bus.settle()));
  await top("single: free buffer", () => release(nic));
  await top("single: stale DMA", () => model.replay());
  await top("sg: alloc buffers", () => {
    if (nic === null) return;
    nic.pending.push([alloc(), LEN / 2], [alloc(), LEN / 2]);
  });
  await top("sg: map and ring", () =>
    nic?.run((d) => {
      const n = nic!;
      if (n.pending.length !== 2) return;
      const sg = new ScatterList(n.pending.map(([pa, length]) => ({ pa, length })));
      s.call("work: map sg");
      const count = dmaMapSg(d, sg, DMA_FROM_DEVICE);
      if (count === 0) return;
      n.sg = sg;
      s.call("work: sg descriptors");
      const segs: [number, number][] = [];
      for (let i = 0; i < count; i++) segs.push([sg.dmaAddress[i]!, sg.dmaLength[i]!]);
      ring(n, segs);
      s.call("work: doorbell");
      n.regs.access(d).write32(DOORBELL, 1);
    }),
  );
  await top("sg: device runs", () => model.run());
  await top("settle", () => s.wait("settle after sg interrupt", () => bus.settle()));
  await top("sg: free buffers", () => release(nic));
  await top("sg: stale DMA", () => model.replay());
  // Orderly teardown.
  await top("unbind", () => refs.dev !== null && bus.unbind(refs.dev));
  await top("unregister device", () => {
    const r = refs.dev;
    refs.dev = null;
    if (r !== null) bus.unregister(r);
  });
  await top("unregister parent", () => {
    const r = refs.parent;
    refs.parent = null;
    if (r !== null) bus.unregister(r);
  });
  await top("unregister IOMMU device", () => {
    const r = refs.iommu;
    refs.iommu = null;
    if (r !== null) bus.unregister(r);
  });
  await top("settle", () => s.wait("settle after teardown", () => bus.settle()));

  // --- cleanup (not explored): whatever an injection left, and the audits -----------------
  for (const k of ["dev", "parent", "iommu"] as const) {
    const r = refs[k];
    refs[k] = null;
    if (r === null) continue;
    try {
      if (r.isDead) r.put();
      else bus.unregister(r);
    } catch (e) {
      caught(log, `cleanup of ${k}`, e);
    }
  }
  for (let i = 0; i < 4; i++) {
    await machine.waitForDeviceProbe();
    await tick();
  }
  for (const b of buffers) {
    try {
      system.freeBuffer(b, LEN);
    } catch (e) {
      caught(log, "cleanup of a buffer", e);
    }
  }
  const left = auditDevices(machine);
  if (left.length > 0) {
    log.failures.push(
      `devices left: ${left.map((d) => `${d.name} [${d.lifecycle}, holders ${d.holders.join("|")}, devres ${d.devres}]`).join("; ")}`,
    );
  }
  const a = system.audit();
  if (!a.ok) log.failures.push(...a.problems.map((p) => `DMA audit: ${p}`));
  const pool = 128 * 2048;
  const rest = {
    ram: a.ramInUse - pool,
    iova: a.iovaBytes,
    bounce: a.bounceSlots,
    tables: a.iommuPageBytes,
    domains: a.pagingDomains,
    live: a.liveMappings,
    deferred: machine.deferredDevices().length,
  };
  for (const [k, v] of Object.entries(rest))
    if (v !== 0) log.failures.push(`left after teardown: ${k} ${v}`);
  if (ram.bytesInUse !== pool)
    log.failures.push(`RAM: ${ram.bytesInUse - pool} bytes still allocated`);
  for (const l of lines) {
    if (/TypeError|RangeError|ReferenceError|SyntaxError/.test(l))
      log.failures.push(`logged: ${l}`);
  }
  const codes = [...log.codes].sort();
  const kind = `${log.transferred} of 2 transfers${codes.length > 0 ? ` (${codes.join(", ")})` : ""}`;
  return { failures: log.failures, kind, steps: s.count, labels: s.labels, notes: log.notes };
}

describe("item 8: removal injected at every step of a driver scenario", () => {
  for (const mode of ["strict", "lazy"] as const) {
    it(`${mode} IOMMU domain: no escaped exception, no DMA to freed memory, every audit at zero`, {
      timeout: 60_000,
    }, async () => {
      const base = await runScenario(-1, null, mode);
      expect(base.failures).toEqual([]);
      expect(base.kind).toBe("2 of 2 transfers");
      const points = base.steps;
      const outcomes = new Map<string, number>();
      const failures: string[] = [];
      const notes: string[] = [];
      let injections = 0;
      for (let step = 0; step < points; step++) {
        for (const action of ACTIONS) {
          const r = await runScenario(step, action, mode);
          injections++;
          outcomes.set(r.kind, (outcomes.get(r.kind) ?? 0) + 1);
          for (const f of r.failures)
            failures.push(`${action} at step ${step} (${base.labels[step]}): ${f}`);
          if (process.env.EXPLORE_DUMP !== undefined)
            for (const n of r.notes) notes.push(`${action} at ${base.labels[step]}: ${n}`);
        }
      }
      const awaits = base.labels.filter((l) => l.startsWith("await")).length;
      const figures = [
        `removal exploration (${mode}): ${points} points (${awaits} awaits), ${ACTIONS.length} actions, ` +
          `${injections} injections, ${failures.length} failures; outcomes:`,
        ...[...outcomes].sort((x, y) => y[1] - x[1]).map(([k, n]) => `  ${n} × ${k}`),
      ];
      console.log(figures.join("\n"));
      const dump = process.env.EXPLORE_DUMP;
      if (dump !== undefined) writeFileSync(`${dump}.${mode}`, [...failures, ...notes].join("\n"));
      expect(failures.slice(0, 20)).toEqual([]);
      expect(points).toBeGreaterThan(20);
      expect(injections).toBe(points * ACTIONS.length);
    });
  }
});
