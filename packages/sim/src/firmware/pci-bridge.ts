//! C source: drivers/pci/probe.c (pci_scan_slot, pci_setup_device, __pci_read_base),
//! drivers/pci/setup-bus.c (BARs assigned in the host window), drivers/pci/msi/msi.c
//! (msix_capability_init: the MSI-X table written through the BAR),
//! drivers/pci/hotplug/pciehp_ctrl.c (presence and attention events)
//!
//! The software side of a simulated PCI host: what a host bridge driver and pciehp do to
//! bring the host's functions to a devref `PciBus`. Enumeration reads configuration space
//! through ECAM as the PCI core does; hot-plug runs from the host's interrupt.

import {
  type HotplugSlot,
  type PciBarSpec,
  PciBus,
  type PciDevice,
  type PciDeviceSpec,
} from "@devref/bus";
import { type Device, IrqDomain } from "@devref/device-core";
import type { ARef } from "@devref/raw-device";
import { checkInstance, DevrefError } from "@devref/raw-device";
import { PCI_HOTPLUG, PciHost } from "../pci/host.js";
import { PCI } from "../pci/regs.js";
import type { Soc } from "../soc.js";
import { EcamConfig, FabricBackend } from "./backends.js";
import { LineBridge } from "./irq-bridge.js";
import { aicLevel, iommusOf } from "./nodes.js";
import { MsixTable } from "./pci-msix.js";

/** Name of the machine's MSI domain (the one `msiDomainOf` of `@devref/bus` finds). */
export const MSI_DOMAIN = "msi";

/** What enumeration learnt about one function. */
interface FunctionInfo {
  readonly fn: number;
  readonly config: EcamConfig;
  readonly vendor: number;
  readonly device: number;
  readonly classCode: number;
  readonly subsystemVendor: number;
  readonly subsystemDevice: number;
  readonly multiFunction: boolean;
  readonly pin: number;
  readonly bars: { index: number; size: number; is64: boolean }[];
  readonly msix: { cap: number; vectors: number; bir: number; offset: number } | null;
}

/** @internal One registered function of a slot. */
export interface FunctionRecord {
  readonly fn: number;
  /** The function's reference, for functions other than 0 (the hot-plug slot holds 0's). */
  ref: ARef<PciDevice> | null;
  /** False once the function was taken out: late MSI-X updates are then dropped. */
  attached: boolean;
}

interface SlotRecord {
  readonly functions: FunctionRecord[];
  /** Bus-address ranges given to the slot's BARs: start, end, start, end, ... */
  readonly ranges: number[];
}

/**
 * The host bridge driver and hot-plug controller of one {@link PciHost}, working on a
 * devref {@link PciBus} (domain 0, bus 0). `start()` enumerates the slots that hold a card
 * and takes the host's hot-plug interrupt; from then on, a presence change (a card pulled,
 * a surprise `unplug` fault, a card inserted) or an attention request reaches the bus
 * through the slot's `HotplugSlot`, in the interrupt's event, as pciehp does.
 *
 * Enumeration, per function (all through ECAM, so it is traced and counts steps): vendor
 * and device ID, class, header type (functions 1–7 when function 0 says multi-function),
 * subsystem IDs, interrupt pin, BAR sizes by writing all-ones and reading back (with
 * memory decoding off meanwhile), the MSI-X capability. BARs get naturally aligned bus
 * addresses in the host window, largest first, and are registered at their CPU address
 * with a backend that goes through the fabric. Memory decoding and bus mastering are left
 * off: the driver's `enableDevice()` and `setMaster()` turn them on through the function's
 * config space. The MSI-X target writes the table entry through the BAR (doorbell
 * address, data = the `"msi"` domain line, unmasked) and sets MSI-X enable; a freed vector
 * is masked, and MSI-X is disabled with the last one.
 *
 * Removal: a presence event on an occupied slot is a surprise removal (`surpriseRemove`:
 * the driver's remove sees all-ones), followed by enumeration if a card is present again;
 * an attention request is an orderly removal (`remove`, with working hardware) followed
 * by powering the slot off.
 *
 * **Invariants:** a slot's devref functions exist exactly while the bridge believes the
 * slot holds a card; BAR ranges of removed cards are free again.
 *
 * **Errors:** the constructor throws `EINVAL` for a bus of another machine or with a bus
 * number other than 0, `EEXIST` when the machine's `"msi"` domain belongs to something
 * else or the bus already has the slots, `EBUSY` when the hot-plug line has a consumer.
 */
export class PciHostBridge {
  readonly soc: Soc;
  readonly host: PciHost;
  readonly bus: PciBus;
  /** The machine's `"msi"` domain: line `h` is interrupt line `host.msiBase + h`. */
  readonly msi: IrqDomain;
  /** The hot-plug slots, by device number. */
  readonly slots: readonly HotplugSlot[];
  private readonly parent: Device | null;
  private readonly records: (SlotRecord | null)[];
  /** Allocated bus-address ranges in the window, sorted: start, end, start, end, ... */
  private readonly used: number[] = [];
  private readonly onInterrupt: () => void;
  private running = false;

  constructor(soc: Soc, host: PciHost, bus: PciBus, parent: Device | null = null) {
    const existing = PciHostBridge.check(soc, host, bus);
    this.soc = soc;
    this.host = host;
    this.bus = bus;
    this.parent = parent;
    this.records = new Array<SlotRecord | null>(host.slotCount).fill(null);
    if (existing === undefined) {
      const bridge = new LineBridge(soc.irq, host.msiBase);
      this.msi = new IrqDomain({
        machine: soc.machine,
        name: MSI_DOMAIN,
        size: host.msiCount,
        chip: bridge,
      });
      bridge.bind(this.msi);
    } else {
      this.msi = existing;
    }
    const slots: HotplugSlot[] = [];
    for (let s = 0; s < host.slotCount; s++) slots.push(bus.addSlot(String(s), s));
    this.slots = slots;
    this.onInterrupt = () => this.service();
  }

  /**
   * Checks what the constructor needs without changing anything; returns the machine's
   * `"msi"` domain when one serving this host exists already.
   *
   * **Errors:** as the constructor.
   */
  static check(soc: Soc, host: PciHost, bus: PciBus): IrqDomain | undefined {
    const W = "new PciHostBridge";
    checkInstance(W, "host", host, PciHost);
    checkInstance(W, "bus", bus, PciBus);
    if (host.soc !== soc || bus.machine !== soc.machine) {
      throw new DevrefError(
        "EINVAL",
        `${W}: the host and the bus must belong to the SoC (bus '${bus.name}' is on machine ` +
          `'${bus.machine.name}', the SoC's is '${soc.machine.name}')`,
      );
    }
    if (bus.domain !== 0 || bus.busNumber !== 0) {
      throw new DevrefError("EINVAL", `${W}: the host models bus 0 of domain 0 only`);
    }
    if (soc.irq.isConnected(host.hotplugIrq)) {
      throw new DevrefError(
        "EBUSY",
        `${W}: the hot-plug line ${host.hotplugIrq} of '${host.name}' already has a handler`,
      );
    }
    const existing = IrqDomain.find(soc.machine, MSI_DOMAIN);
    if (existing !== undefined) {
      const chip = existing.chip;
      if (!(chip instanceof LineBridge) || chip.base !== host.msiBase) {
        throw new DevrefError(
          "EEXIST",
          `machine '${soc.machine.name}' already has an "msi" domain that is not host ` +
            `'${host.name}''s: describe one PCI host per machine`,
        );
      }
    }
    return existing;
  }

  /** Whether the bridge is running (enumerated, hot-plug interrupt taken). */
  get isRunning(): boolean {
    return this.running;
  }

  /** Enumerates every slot holding a card and takes the hot-plug interrupt. */
  start(): void {
    if (this.running) return;
    this.running = true;
    const present = this.hpRead(PCI_HOTPLUG.SLOT_PRESENT);
    for (let s = 0; s < this.records.length; s++) {
      if (((present >>> s) & 1) === 1) this.enumerate(s);
    }
    // What was just enumerated is what the pending presence events announced.
    const events = this.hpRead(PCI_HOTPLUG.SLOT_EVENTS);
    if (events !== 0) this.hpWrite(PCI_HOTPLUG.SLOT_EVENTS, events);
    this.soc.irq.connect(this.host.hotplugIrq, this.onInterrupt);
  }

  /** Releases the hot-plug interrupt and removes every function (orderly, hardware left as is). */
  stop(): void {
    if (!this.running) return;
    this.running = false;
    this.soc.irq.disconnect(this.host.hotplugIrq);
    for (let s = this.records.length - 1; s >= 0; s--) {
      if (this.records[s] !== null) this.takeOut(s, false);
    }
  }

  /** The hot-plug interrupt (pciehp_ist): acknowledge, then handle each slot's events. */
  private service(): void {
    const events = this.hpRead(PCI_HOTPLUG.SLOT_EVENTS);
    const attention = this.hpRead(PCI_HOTPLUG.SLOT_ATTENTION);
    if (events !== 0) this.hpWrite(PCI_HOTPLUG.SLOT_EVENTS, events);
    if (attention !== 0) this.hpWrite(PCI_HOTPLUG.SLOT_ATTENTION, attention);
    const present = this.hpRead(PCI_HOTPLUG.SLOT_PRESENT);
    for (let s = 0; s < this.records.length; s++) {
      const bit = 1 << s;
      if ((events & bit) !== 0) {
        // A presence change on an occupied slot means the card went away (perhaps to be
        // replaced already): its software goes first, as pciehp does on a link change.
        if (this.records[s] !== null) this.takeOut(s, true);
        if ((present & bit) !== 0) this.enumerate(s);
      } else if ((attention & bit) !== 0 && this.records[s] !== null) {
        this.takeOut(s, false);
        this.hpWrite(PCI_HOTPLUG.SLOT_POWER_OFF, bit);
      }
    }
  }

  // ------------------------------------------------------------------ enumeration

  private enumerate(s: number): void {
    const first = this.probe(s, 0);
    if (first === null) return;
    const infos = [first];
    if (first.multiFunction) {
      for (let f = 1; f < 8; f++) {
        const info = this.probe(s, f);
        if (info !== null) infos.push(info);
      }
    }
    const rec: SlotRecord = { functions: [], ranges: [] };
    this.records[s] = rec;
    for (const info of infos) {
      const record: FunctionRecord = { fn: info.fn, ref: null, attached: true };
      const spec = this.specOf(s, info, rec, record);
      try {
        if (info.fn === 0) this.slots[s]!.insert(spec);
        else record.ref = this.bus.register({ ...spec, slot: s }, `host ${this.host.name}`);
        rec.functions.push(record);
      } catch (e) {
        this.soc.machine.log(
          "err",
          `${this.host.name}:${s}.${info.fn}`,
          null,
          `could not add the PCI function: ${String(e)}`,
        );
      }
    }
  }

  /** pci_scan_device + pci_setup_device for one function; null when nothing answers. */
  private probe(s: number, fn: number): FunctionInfo | null {
    const cfg = new EcamConfig(this.soc.fabric, this.host.ecamBase, s, fn);
    const id = cfg.read(PCI.VENDOR_ID, 4);
    const vendor = id & 0xffff;
    if (vendor === 0xffff || vendor === 0) return null;
    const header = cfg.read(PCI.HEADER_TYPE, 1);
    if ((header & 0x7f) !== 0) return null; // bridges are not modelled
    const sub = cfg.read(PCI.SUBSYSTEM_VENDOR_ID, 4);
    return {
      fn,
      config: cfg,
      vendor,
      device: id >>> 16,
      classCode: cfg.read(PCI.REVISION_ID, 4) >>> 8,
      subsystemVendor: sub & 0xffff,
      subsystemDevice: sub >>> 16,
      multiFunction: (header & PCI.HEADER_TYPE_MULTI_FUNCTION) !== 0,
      pin: cfg.read(PCI.INTERRUPT_PIN, 1),
      bars: sizeBars(cfg),
      msix: findMsix(cfg),
    };
  }

  /** Assigns the function's BARs and builds its bus description. */
  private specOf(
    s: number,
    info: FunctionInfo,
    rec: SlotRecord,
    record: FunctionRecord,
  ): PciDeviceSpec {
    const host = this.host;
    const bars: (PciBarSpec | null)[] = [null, null, null, null, null, null];
    const cpuOf = (bus: number): number => bus - host.windowBusBase + host.windowBase;
    const order = [...info.bars].sort((a, b) => b.size - a.size || a.index - b.index);
    const barCpu: number[] = [-1, -1, -1, -1, -1, -1];
    for (const b of order) {
      const at = this.allocate(b.size);
      if (at < 0) {
        this.soc.note("pci-bar-no-space", (s << 3) | info.fn, b.index);
        continue;
      }
      rec.ranges.push(at, at + b.size);
      const reg = PCI.BASE_ADDRESS_0 + 4 * b.index;
      info.config.write(reg, 4, at % 0x1_0000_0000);
      if (b.is64) info.config.write(reg + 4, 4, Math.floor(at / 0x1_0000_0000));
      const cpu = cpuOf(at);
      barCpu[b.index] = cpu;
      bars[b.index] = {
        size: b.size,
        start: cpu,
        backend: new FabricBackend(this.soc.fabric, cpu, b.size),
      };
    }
    while (bars.length > 0 && bars[bars.length - 1] === null) bars.pop();
    const m = info.msix;
    const tableCpu = m === null ? -1 : barCpu[m.bir]!;
    const fnModel = host.functionAt(s, info.fn);
    const iommus = fnModel === undefined ? [] : iommusOf(this.soc, fnModel.dma);
    return {
      vendor: info.vendor,
      device: info.device,
      subsystemVendor: info.subsystemVendor,
      subsystemDevice: info.subsystemDevice,
      classCode: info.classCode,
      func: info.fn,
      bars,
      config: info.config,
      ...(this.parent === null ? {} : { parent: this.parent }),
      ...(info.pin === 0 ? {} : { interrupt: aicLevel(host.intxBase + s) }),
      ...(m === null || tableCpu < 0
        ? {}
        : {
            msiVectors: m.vectors,
            msiTarget: new MsixTable(
              this.soc.fabric,
              info.config,
              record,
              m.cap,
              tableCpu + m.offset,
              m.vectors,
              host.msiDoorbell,
            ),
          }),
      iommus,
    };
  }

  /** First fit of a naturally aligned range of `size` bytes in the window (bus addresses). */
  private allocate(size: number): number {
    const start = this.host.windowBusBase;
    const end = start + this.host.windowSize;
    const used = this.used;
    let at = alignUp(start, size);
    let i = 0;
    for (; i < used.length; i += 2) {
      if (at + size <= used[i]!) break;
      if (used[i + 1]! > at) at = alignUp(used[i + 1]!, size);
    }
    if (at + size > end) return -1;
    used.splice(i, 0, at, at + size);
    return at;
  }

  private free(start: number): void {
    const used = this.used;
    for (let i = 0; i < used.length; i += 2) {
      if (used[i] === start) {
        used.splice(i, 2);
        return;
      }
    }
  }

  // ------------------------------------------------------------------ removal

  /** Removes slot `s`'s functions, highest function first, and frees their BAR ranges. */
  private takeOut(s: number, surprise: boolean): void {
    const rec = this.records[s]!;
    this.records[s] = null;
    // After a surprise removal nothing reaches the card: late MSI-X updates are dropped.
    if (surprise) for (const f of rec.functions) f.attached = false;
    for (let i = rec.functions.length - 1; i >= 0; i--) {
      const f = rec.functions[i]!;
      try {
        const ref = f.ref;
        if (ref === null) {
          const slot = this.slots[s]!;
          if (slot.occupied) {
            if (surprise) slot.surpriseRemove();
            else slot.remove();
          }
        } else {
          f.ref = null;
          if (surprise) {
            if (ref.isRegistered) this.bus.unplug(ref);
            ref.put();
          } else {
            this.bus.unregister(ref);
          }
        }
      } catch (e) {
        this.soc.machine.log(
          "err",
          `${this.host.name}:${s}.${f.fn}`,
          null,
          `removing the PCI function failed: ${String(e)}`,
        );
      }
      f.attached = false;
    }
    for (let i = 0; i < rec.ranges.length; i += 2) this.free(rec.ranges[i]!);
  }

  private hpRead(reg: number): number {
    return this.soc.fabric.read32(this.host.hotplugBase + reg);
  }

  private hpWrite(reg: number, value: number): void {
    this.soc.fabric.write32(this.host.hotplugBase + reg, value);
  }
}

function alignUp(x: number, align: number): number {
  return Math.ceil(x / align) * align;
}

/**
 * __pci_read_base for every BAR: all-ones written, the size mask read back, the original
 * value restored, with memory and I/O decoding off meanwhile. I/O BARs are skipped (not
 * modelled).
 */
function sizeBars(cfg: EcamConfig): { index: number; size: number; is64: boolean }[] {
  const out: { index: number; size: number; is64: boolean }[] = [];
  const cmd = cfg.read(PCI.COMMAND, 2);
  const decode = PCI.COMMAND_MEMORY | PCI.COMMAND_IO;
  if ((cmd & decode) !== 0) cfg.write(PCI.COMMAND, 2, cmd & ~decode);
  for (let i = 0; i < 6; i++) {
    const reg = PCI.BASE_ADDRESS_0 + 4 * i;
    const orig = cfg.read(reg, 4);
    cfg.write(reg, 4, 0xffff_ffff);
    const mask = cfg.read(reg, 4);
    cfg.write(reg, 4, orig);
    if (mask === 0 || (mask & 1) === 1) continue;
    const is64 = ((mask >>> 1) & 3) === 2;
    const lo = (mask & 0xffff_fff0) >>> 0;
    let size = 0x1_0000_0000 - lo;
    if (is64) {
      const hiOrig = cfg.read(reg + 4, 4);
      cfg.write(reg + 4, 4, 0xffff_ffff);
      const hi = cfg.read(reg + 4, 4);
      cfg.write(reg + 4, 4, hiOrig);
      if (lo === 0) size = (0x1_0000_0000 - hi) * 0x1_0000_0000;
    }
    if (lo !== 0 || is64) out.push({ index: i, size, is64 });
    if (is64) i++;
  }
  if ((cmd & decode) !== 0) cfg.write(PCI.COMMAND, 2, cmd);
  return out;
}

/** The MSI-X capability (pci_find_capability), or null. */
function findMsix(
  cfg: EcamConfig,
): { cap: number; vectors: number; bir: number; offset: number } | null {
  if ((cfg.read(PCI.STATUS, 2) & PCI.STATUS_CAP_LIST) === 0) return null;
  let at = cfg.read(PCI.CAPABILITY_LIST, 1) & 0xfc;
  for (let n = 0; at >= 0x40 && n < 48; n++) {
    if (cfg.read(at, 1) === PCI.CAP_ID_MSIX) {
      const ctrl = cfg.read(at + PCI.MSIX_FLAGS, 2);
      const table = cfg.read(at + PCI.MSIX_TABLE, 4);
      return {
        cap: at,
        vectors: (ctrl & PCI.MSIX_FLAGS_QSIZE) + 1,
        bir: table & 7,
        offset: (table & ~7) >>> 0,
      };
    }
    at = cfg.read(at + 1, 1) & 0xfc;
  }
  return null;
}
