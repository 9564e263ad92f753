//! C source: drivers/virtio/virtio_pci_modern.c, virtio_pci_modern_dev.c (the driver side of
//! what this models); QEMU hw/virtio/virtio-pci.c (the BAR layout)
//! Rules: VIRTIO 1.2 §2.1–§2.2, §4.1 (specs/sim-hardware.md §4.1–§4.7).
//!
//! The modern virtio-pci transport as a PCI function: vendor capabilities, the common
//! configuration structure with its status handshake and feature negotiation, queue set-up,
//! notifications, the ISR, MSI-X or INTx, and device-initiated NEEDS_RESET.

import {
  argumentError,
  checkCallback,
  checkCount,
  checkInteger,
  checkObject,
  checkString,
} from "@devref/raw-device";
import type { DmaTranslator } from "../dma.js";
import type { MmioHandler, MmioWidth } from "../fabric.js";
import { PciFunction } from "../pci/function.js";
import { PCI } from "../pci/regs.js";
import type { Soc } from "../soc.js";
import {
  VIRTIO_PCI_COMMON as C,
  VIRTIO_PCI_LAYOUT as L,
  VIRTIO_STATUS as S,
  VIRTIO_F,
  VIRTIO_MSI_NO_VECTOR,
  VIRTIO_PCI_CAP,
  VIRTIO_PCI_DEVICE_ID_BASE,
  VIRTIO_PCI_VENDOR_ID,
} from "./regs.js";
import { Virtqueue } from "./virtqueue.js";

/** What every virtio-pci device model is built with. */
export interface VirtioPciOptions {
  readonly name: string;
  /** Virtio device ID (2 = block). */
  readonly deviceType: number;
  /** Device feature bits 0..31 and 32..63 (the transport adds VERSION_1). */
  readonly features: readonly [number, number];
  /** Number of virtqueues (default 1). */
  readonly numQueues?: number;
  /** Largest queue size offered (a power of two, default 128). */
  readonly queueSize?: number;
  /** Bytes of device-specific configuration. */
  readonly configSize: number;
  /** PCI class code (default 0x010000). */
  readonly classCode?: number;
  /** IOMMU stream for all DMA; then `VIRTIO_F_ACCESS_PLATFORM` is offered by default. */
  readonly iommu?: DmaTranslator;
  readonly streamId?: number;
  /** Offer `VIRTIO_F_ACCESS_PLATFORM` (default: when an IOMMU is given). */
  readonly accessPlatform?: boolean;
  /** Virtual time from writing 0 to `device_status` until it reads 0 (default 0). */
  readonly resetLatencyNs?: number;
  /** Virtual time from a notification until the device looks at the queue (default 0). */
  readonly notifyLatencyNs?: number;
}

class NoRegisters implements MmioHandler {
  mmioRead(): number {
    return 0;
  }
  mmioWrite(): void {}
}

// module-state: privileged-access slots, assigned once by VirtioPciFunction's static block
// (BAR 4's register logic stays off the public surface of every virtio function).
let barRead4: (fn: VirtioPciFunction, offset: number, width: MmioWidth) => number;
let barWrite4: (fn: VirtioPciFunction, offset: number, width: MmioWidth, value: number) => void;

class VirtioBar implements MmioHandler {
  owner: VirtioPciFunction | null = null;
  mmioRead(offset: number, width: MmioWidth): number {
    return this.owner === null ? 0 : barRead4(this.owner, offset, width);
  }
  mmioWrite(offset: number, width: MmioWidth, value: number): void {
    if (this.owner !== null) barWrite4(this.owner, offset, width, value);
  }
}

/** Common-configuration fields: offset and size, in offset order. */
const FIELDS: readonly (readonly [number, number])[] = [
  [C.DFSELECT, 4],
  [C.DF, 4],
  [C.GFSELECT, 4],
  [C.GF, 4],
  [C.MSIX, 2],
  [C.NUMQ, 2],
  [C.STATUS, 1],
  [C.CFGGENERATION, 1],
  [C.Q_SELECT, 2],
  [C.Q_SIZE, 2],
  [C.Q_MSIX, 2],
  [C.Q_ENABLE, 2],
  [C.Q_NOFF, 2],
  [C.Q_DESCLO, 4],
  [C.Q_DESCHI, 4],
  [C.Q_AVAILLO, 4],
  [C.Q_AVAILHI, 4],
  [C.Q_USEDLO, 4],
  [C.Q_USEDHI, 4],
  [C.Q_NDATA, 2],
  [C.Q_RESET, 2],
  [60, 2], // admin_queue_index (VIRTIO 1.3): no admin queues, reads 0
  [62, 2], // admin_queue_num
];

const bit = (n: number): [number, number] =>
  n < 32 ? [(1 << n) >>> 0, 0] : [0, (1 << (n - 32)) >>> 0];

/**
 * The modern virtio-pci transport (VIRTIO 1.2 §4.1) for one device type; subclasses
 * supply the device: its configuration, feature validation and queue processing.
 *
 * Layout (QEMU's): MSI-X table and PBA in BAR1; one 64-bit BAR4 with common configuration
 * at 0x0000, ISR at 0x1000, device configuration at 0x2000 and notifications at 0x3000
 * (multiplier 4, `queue_notify_off` = queue index). Capabilities: MSI-X, then common,
 * notify, ISR, device and PCI-configuration-access vendor capabilities.
 *
 * Device rules it enforces: writing 0 to `device_status` resets (and it reads 0 once
 * done); `FEATURES_OK` stays set only if the accepted features are a subset of the offered
 * ones, include `VERSION_1`, include `ACCESS_PLATFORM` when it was offered, and pass the
 * device's own check; the driver cannot clear status bits except by reset (such a write is
 * ignored and traced); feature writes after `FEATURES_OK` and queue writes to an enabled
 * queue are ignored and traced; a queue enabled with an invalid size or misaligned ring
 * sets `DEVICE_NEEDS_RESET`; notifications before `DRIVER_OK` are ignored. Interrupts use
 * the queue's or configuration's MSI-X vector when MSI-X is enabled (none for
 * `VIRTIO_MSI_NO_VECTOR`), otherwise the ISR and INTx; reading the ISR clears it.
 *
 * **Invariants:** no queue is processed before `DRIVER_OK` or after `DEVICE_NEEDS_RESET`;
 * work scheduled before a reset (or removal) never runs after it.
 *
 * **Errors:** `EINVAL` for bad options, a `needsReset` reason that is not a string, and bad
 * arguments to the subclass helpers (a queue that is not one of this function's, a
 * feature bit outside 0..63, a `later` job that is not a function).
 */
export abstract class VirtioPciFunction extends PciFunction {
  readonly queues: readonly Virtqueue[];
  /** Device feature words offered (bits 0..31, 32..63). */
  readonly deviceFeatures: readonly [number, number];
  private readonly driverFeatures: [number, number] = [0, 0];
  private dfSelect = 0;
  private gfSelect = 0;
  private qSelect = 0;
  private status = 0;
  /** What `device_status` reads while a slow reset is in progress, or -1. */
  private resettingStatus = -1;
  private configVector: number = VIRTIO_MSI_NO_VECTOR;
  private isr = 0;
  private broken = false;
  /** Bumped by every reset and removal: work scheduled earlier is dropped. */
  private generation = 0;
  private readonly serviceScheduled: Uint8Array;
  private readonly configSize: number;
  private readonly resetLatencyNs: number;
  private readonly notifyLatencyNs: number;
  /** Configuration generation (`config_generation`). */
  protected configGeneration = 0;

  constructor(soc: Soc, options: VirtioPciOptions) {
    const w = "new VirtioPciFunction";
    checkObject(w, "options", options);
    const numQueues = checkCount(w, "options.numQueues", options.numQueues ?? 1, 1, 64);
    const qsize = checkCount(w, "options.queueSize", options.queueSize ?? 128, 1, 32768);
    if ((qsize & (qsize - 1)) !== 0)
      throw argumentError(w, "options.queueSize", "a power of two", qsize);
    const deviceType = checkInteger(w, "options.deviceType", options.deviceType, 1, 0x3f);
    const configSize = checkInteger(w, "options.configSize", options.configSize, 0, L.REGION_SIZE);
    const resetLatency = checkInteger(
      w,
      "options.resetLatencyNs",
      options.resetLatencyNs ?? 0,
      0,
      1e15,
    );
    const notifyLatency = checkInteger(
      w,
      "options.notifyLatencyNs",
      options.notifyLatencyNs ?? 0,
      0,
      1e15,
    );
    const f = options.features;
    checkInteger(w, "options.features[0]", f?.[0], 0, 0xffff_ffff);
    checkInteger(w, "options.features[1]", f?.[1], 0, 0xffff_ffff);
    const accessPlatform = options.accessPlatform ?? options.iommu !== undefined;
    const bar4 = new VirtioBar();
    const vectors = numQueues + 1;
    const base = {
      name: options.name,
      vendor: VIRTIO_PCI_VENDOR_ID,
      device: VIRTIO_PCI_DEVICE_ID_BASE + deviceType,
      classCode: options.classCode ?? 0x01_00_00,
      revision: 1,
      subsystemVendor: VIRTIO_PCI_VENDOR_ID,
      subsystemDevice: 0x40,
      interruptPin: 1,
      bars: [
        null,
        { size: L.MSIX_BAR_SIZE, handler: new NoRegisters() },
        null,
        null,
        { size: L.BAR_SIZE, is64: true, handler: bar4 },
      ],
      msix: {
        vectors,
        tableBar: L.MSIX_BAR,
        tableOffset: L.MSIX_TABLE,
        pbaBar: L.MSIX_BAR,
        pbaOffset: L.MSIX_PBA,
      },
    };
    super(
      soc,
      options.iommu === undefined
        ? base
        : { ...base, iommu: options.iommu, streamId: options.streamId ?? 0 },
    );
    bar4.owner = this;
    const version = bit(VIRTIO_F.VERSION_1);
    const ap = accessPlatform ? bit(VIRTIO_F.ACCESS_PLATFORM) : [0, 0];
    this.deviceFeatures = [(f[0] | version[0] | ap[0]!) >>> 0, (f[1] | version[1] | ap[1]!) >>> 0];
    const qs: Virtqueue[] = [];
    for (let i = 0; i < numQueues; i++) qs.push(new Virtqueue(i, qsize));
    this.queues = qs;
    this.serviceScheduled = new Uint8Array(numQueues);
    this.configSize = configSize;
    this.resetLatencyNs = resetLatency;
    this.notifyLatencyNs = notifyLatency;
    this.#addVendorCap(VIRTIO_PCI_CAP.COMMON_CFG, L.COMMON, C.SIZE);
    this.#addVendorCap(
      VIRTIO_PCI_CAP.NOTIFY_CFG,
      L.NOTIFY,
      numQueues * L.NOTIFY_MULTIPLIER,
      L.NOTIFY_MULTIPLIER,
    );
    this.#addVendorCap(VIRTIO_PCI_CAP.ISR_CFG, L.ISR, 1);
    this.#addVendorCap(VIRTIO_PCI_CAP.DEVICE_CFG, L.DEVICE, Math.max(configSize, 4));
    this.#addPciCfgCap();
  }

  // ---------------------------------------------------------------- for device models

  /** Device-specific configuration read (`offset` < configSize). */
  protected abstract readConfig(offset: number, width: MmioWidth): number;
  /** Device-specific configuration write. */
  protected abstract writeConfig(offset: number, width: MmioWidth, value: number): void;
  /** Looks at queue `q` after a notification (in its own event, while the device is live). */
  protected abstract processQueue(q: Virtqueue): void;
  /** Extra feature checks at `FEATURES_OK`: a reason to refuse, or "". */
  protected validateFeatures(): string {
    return "";
  }
  /** Device-specific part of a reset (status 0, re-insertion). */
  protected onDeviceReset(): void {}

  /** Whether feature `n` was negotiated (valid once `FEATURES_OK` is set). */
  protected negotiated(n: number): boolean {
    checkInteger(`${this.name}.negotiated`, "n", n, 0, 63);
    const word = this.driverFeatures[n < 32 ? 0 : 1];
    return ((word >>> (n % 32)) & 1) === 1 && (this.status & S.FEATURES_OK) !== 0;
  }

  /** Whether the device may use its queues: `DRIVER_OK`, no `NEEDS_RESET`, not gone. */
  protected get live(): boolean {
    return (this.status & S.DRIVER_OK) !== 0 && !this.broken && !this.gone;
  }

  /** The `device_status` value (what the driver last wrote, plus NEEDS_RESET). */
  get deviceStatus(): number {
    return this.status;
  }

  /** Runs `fn` after `delayNs` unless the device was reset or removed in between. */
  protected later(delayNs: number, fn: () => void): void {
    checkCallback(`${this.name}.later`, "fn", fn);
    const gen = this.generation;
    this.soc.events.after(delayNs, () => {
      if (gen === this.generation && !this.gone) fn();
    });
  }

  /** Schedules another look at queue `q` (for devices that take one request per event). */
  protected rescheduleQueue(q: Virtqueue): void {
    checkOwnQueue(this, `${this.name}.rescheduleQueue`, q);
    this.#scheduleService(q.index, 0);
  }

  /** Sends the used-buffer notification of `q` (MSI-X vector, or ISR bit 0 and INTx). */
  protected interruptQueue(q: Virtqueue): void {
    checkOwnQueue(this, `${this.name}.interruptQueue`, q);
    if (this.gone) return;
    if (this.msixEnabled) {
      if (q.msixVector !== VIRTIO_MSI_NO_VECTOR) this.signalMsix(q.msixVector);
      return;
    }
    this.isr |= 1;
    this.setIntx(true);
  }

  /** Sends a configuration-change notification and bumps `config_generation`. */
  protected configChanged(): void {
    this.configGeneration = (this.configGeneration + 1) & 0xff;
    if ((this.status & S.DRIVER_OK) !== 0) this.#interruptConfig();
  }

  /**
   * The device gives up: sets `DEVICE_NEEDS_RESET`, stops using its queues, and notifies the
   * driver if it had set `DRIVER_OK` (§4.4).
   */
  needsReset(reason: string): void {
    checkString(`${this.name}.needsReset`, "reason", reason);
    if (this.gone || this.broken) return;
    this.broken = true;
    this.status |= S.DEVICE_NEEDS_RESET;
    this.soc.tracer.fault(this.traceId, `virtio-needs-reset: ${reason}`);
    if ((this.status & S.DRIVER_OK) !== 0) this.#interruptConfig();
  }

  // ---------------------------------------------------------------- BAR 4

  static {
    barRead4 = (fn, offset, width) => fn.#barRead4(offset, width);
    barWrite4 = (fn, offset, width, value) => fn.#barWrite4(offset, width, value);
  }

  #barRead4(offset: number, width: MmioWidth): number {
    if (offset < L.ISR) return offset < C.SIZE ? this.#commonRead(offset, width) : 0;
    if (offset < L.DEVICE) {
      if (offset !== L.ISR) return 0;
      const v = this.isr;
      this.isr = 0;
      this.setIntx(false);
      return v;
    }
    if (offset < L.NOTIFY) {
      const off = offset - L.DEVICE;
      return off + width <= this.configSize ? this.readConfig(off, width) >>> 0 : 0;
    }
    return 0;
  }

  #barWrite4(offset: number, width: MmioWidth, value: number): void {
    if (offset < L.ISR) {
      if (offset < C.SIZE) this.#commonWrite(offset, width, value);
      return;
    }
    if (offset < L.DEVICE) return;
    if (offset < L.NOTIFY) {
      const off = offset - L.DEVICE;
      if (off + width <= this.configSize) this.writeConfig(off, width, value);
      return;
    }
    const off = offset - L.NOTIFY;
    if (off % L.NOTIFY_MULTIPLIER !== 0 || off / L.NOTIFY_MULTIPLIER >= this.queues.length) return;
    this.#notify(off / L.NOTIFY_MULTIPLIER);
  }

  // ---------------------------------------------------------------- common configuration

  #commonRead(offset: number, width: MmioWidth): number {
    let v = 0;
    for (let i = width - 1; i >= 0; i--) {
      const at = offset + i;
      const field = fieldAt(at);
      const [start] = FIELDS[field]!;
      v = (v << 8) | ((this.#fieldValue(field) >>> (8 * (at - start))) & 0xff);
    }
    return v >>> 0;
  }

  #commonWrite(offset: number, width: MmioWidth, value: number): void {
    // Each field touched gets its old value with the written bytes merged in (byte lanes).
    let at = offset;
    const end = offset + width;
    while (at < end) {
      const field = fieldAt(at);
      const [start, size] = FIELDS[field]!;
      let v = this.#fieldValue(field);
      for (let b = Math.max(start, offset); b < Math.min(start + size, end); b++) {
        const shift = 8 * (b - start);
        v = (v & ~(0xff << shift)) | (((value >>> (8 * (b - offset))) & 0xff) << shift);
      }
      this.#setField(field, v >>> 0);
      at = start + size;
    }
  }

  #selected(): Virtqueue | undefined {
    return this.queues[this.qSelect];
  }

  #fieldValue(field: number): number {
    const q = this.#selected();
    switch (FIELDS[field]![0]) {
      case C.DFSELECT:
        return this.dfSelect;
      case C.DF:
        return this.dfSelect < 2 ? this.deviceFeatures[this.dfSelect]! : 0;
      case C.GFSELECT:
        return this.gfSelect;
      case C.GF:
        return this.gfSelect < 2 ? this.driverFeatures[this.gfSelect]! : 0;
      case C.MSIX:
        return this.configVector;
      case C.NUMQ:
        return this.queues.length;
      case C.STATUS:
        return this.resettingStatus >= 0 ? this.resettingStatus : this.status;
      case C.CFGGENERATION:
        return this.configGeneration;
      case C.Q_SELECT:
        return this.qSelect;
      case C.Q_SIZE:
        return q === undefined ? 0 : q.size;
      case C.Q_MSIX:
        return q === undefined ? VIRTIO_MSI_NO_VECTOR : q.msixVector;
      case C.Q_ENABLE:
        return q?.enabled ? 1 : 0;
      case C.Q_NOFF:
      case C.Q_NDATA:
        return q === undefined ? 0 : q.index;
      case C.Q_DESCLO:
        return q?.descLo ?? 0;
      case C.Q_DESCHI:
        return q?.descHi ?? 0;
      case C.Q_AVAILLO:
        return q?.availLo ?? 0;
      case C.Q_AVAILHI:
        return q?.availHi ?? 0;
      case C.Q_USEDLO:
        return q?.usedLo ?? 0;
      case C.Q_USEDHI:
        return q?.usedHi ?? 0;
      default:
        return 0;
    }
  }

  #setField(field: number, v: number): void {
    const off = FIELDS[field]![0];
    switch (off) {
      case C.DFSELECT:
        this.dfSelect = v;
        return;
      case C.GFSELECT:
        this.gfSelect = v;
        return;
      case C.GF:
        if ((this.status & S.FEATURES_OK) !== 0) {
          this.#violation("feature write after FEATURES_OK");
          return;
        }
        if (this.gfSelect < 2) this.driverFeatures[this.gfSelect] = v;
        else if (v !== 0)
          this.#violation(`driver_feature_select ${this.gfSelect} holds no features`);
        return;
      case C.MSIX:
        this.configVector = v < this.msixVectors ? v : VIRTIO_MSI_NO_VECTOR;
        return;
      case C.STATUS:
        this.#writeStatus(v & 0xff);
        return;
      case C.Q_SELECT:
        this.qSelect = v;
        return;
      case C.Q_MSIX: {
        const q = this.#selected();
        if (q !== undefined) q.msixVector = v < this.msixVectors ? v : VIRTIO_MSI_NO_VECTOR;
        return;
      }
      case C.Q_ENABLE:
        this.#writeQueueEnable(v);
        return;
      case C.Q_SIZE:
      case C.Q_DESCLO:
      case C.Q_DESCHI:
      case C.Q_AVAILLO:
      case C.Q_AVAILHI:
      case C.Q_USEDLO:
      case C.Q_USEDHI: {
        const q = this.#selected();
        if (q === undefined) return;
        if (q.enabled) {
          // Linux's read-modify-write of a neighbouring field writes the same value back.
          if (this.#fieldValue(field) !== v)
            this.#violation(`queue ${q.index} changed while enabled`);
          return;
        }
        if (off === C.Q_SIZE) q.size = v;
        else if (off === C.Q_DESCLO) q.descLo = v;
        else if (off === C.Q_DESCHI) q.descHi = v;
        else if (off === C.Q_AVAILLO) q.availLo = v;
        else if (off === C.Q_AVAILHI) q.availHi = v;
        else if (off === C.Q_USEDLO) q.usedLo = v;
        else q.usedHi = v;
        return;
      }
      default:
        return; // read-only fields
    }
  }

  #writeStatus(v: number): void {
    if (this.resettingStatus >= 0) {
      this.#violation("device_status written while a reset is in progress");
      return;
    }
    if (v === 0) {
      this.#reset();
      return;
    }
    const old = this.status;
    const mine = old & S.DEVICE_NEEDS_RESET;
    if ((v & old & ~S.DEVICE_NEEDS_RESET) !== (old & ~S.DEVICE_NEEDS_RESET)) {
      this.#violation(`device_status ${hex(old)} -> ${hex(v)} clears a bit (only a reset may)`);
      return;
    }
    let next = v | mine;
    if ((next & S.FEATURES_OK) !== 0 && (old & S.FEATURES_OK) === 0) {
      const why = this.#featureProblem();
      if (why !== "") {
        next &= ~S.FEATURES_OK;
        this.soc.tracer.fault(this.traceId, `virtio-features-refused: ${why}`);
      }
    }
    if ((next & S.DRIVER_OK) !== 0 && (old & S.DRIVER_OK) === 0 && (next & S.FEATURES_OK) === 0) {
      this.status = next;
      this.needsReset("DRIVER_OK without FEATURES_OK");
      return;
    }
    this.status = next;
  }

  #featureProblem(): string {
    const [dl, dh] = this.driverFeatures;
    const [ol, oh] = this.deviceFeatures;
    if ((dl & ~ol) !== 0 || (dh & ~oh) !== 0)
      return "the driver accepted features that were not offered";
    const v1 = VIRTIO_F.VERSION_1 - 32;
    if (((dh >>> v1) & 1) === 0) return "VIRTIO_F_VERSION_1 not accepted";
    const ap = VIRTIO_F.ACCESS_PLATFORM - 32;
    if (((oh >>> ap) & 1) === 1 && ((dh >>> ap) & 1) === 0) {
      return "VIRTIO_F_ACCESS_PLATFORM offered (the device sits behind an IOMMU) but not accepted";
    }
    return this.validateFeatures();
  }

  #writeQueueEnable(v: number): void {
    const q = this.#selected();
    if (q === undefined) return;
    if (v !== 1) {
      this.#violation(`queue_enable written with ${v} (only 1 is allowed)`);
      return;
    }
    if (q.enabled) return;
    const why = q.configProblem();
    if (why !== "") {
      this.needsReset(`queue ${q.index}: ${why}`);
      return;
    }
    q.enabled = true;
  }

  #notify(index: number): void {
    const q = this.queues[index]!;
    if ((this.status & S.DRIVER_OK) === 0) {
      this.#violation(`queue ${index} notified before DRIVER_OK`);
      return;
    }
    if (!q.enabled) {
      this.#violation(`queue ${index} notified while disabled`);
      return;
    }
    if (this.broken) return;
    this.#scheduleService(index, this.notifyLatencyNs);
  }

  #scheduleService(index: number, delay: number): void {
    if (this.serviceScheduled[index] === 1) return;
    this.serviceScheduled[index] = 1;
    this.later(delay, () => {
      this.serviceScheduled[index] = 0;
      if (this.live) this.processQueue(this.queues[index]!);
    });
  }

  #interruptConfig(): void {
    if (this.gone) return;
    if (this.msixEnabled) {
      if (this.configVector !== VIRTIO_MSI_NO_VECTOR) this.signalMsix(this.configVector);
      return;
    }
    this.isr |= 2;
    this.setIntx(true);
  }

  #violation(what: string): void {
    this.soc.tracer.fault(this.traceId, `virtio-driver-error: ${what}`);
  }

  // ---------------------------------------------------------------- reset

  #reset(): void {
    const old = this.status;
    this.#resetState();
    this.soc.tracer.note(this.traceId, "virtio-reset", old);
    // A reset of a device already at status 0 has nothing to undo: it completes at once
    // (otherwise a driver that reads 0 and goes on would have its next writes ignored).
    if (this.resetLatencyNs > 0 && old !== 0) {
      this.resettingStatus = old;
      this.later(this.resetLatencyNs, () => {
        this.resettingStatus = -1;
      });
    }
  }

  #resetState(): void {
    this.generation++;
    this.status = 0;
    this.resettingStatus = -1;
    this.driverFeatures[0] = 0;
    this.driverFeatures[1] = 0;
    this.dfSelect = this.gfSelect = this.qSelect = 0;
    this.configVector = VIRTIO_MSI_NO_VECTOR;
    this.isr = 0;
    this.broken = false;
    this.serviceScheduled.fill(0);
    for (const q of this.queues) q.reset();
    this.setIntx(false);
    this.onDeviceReset();
  }

  protected override onReset(): void {
    this.#resetState();
  }

  protected override onGone(): void {
    this.generation++;
  }

  // ---------------------------------------------------------------- capabilities

  #addVendorCap(type: number, offset: number, length: number, multiplier?: number): void {
    const body = [multiplier === undefined ? 16 : 20, type, L.BAR, 0, 0, 0];
    for (const v of [offset, length, ...(multiplier === undefined ? [] : [multiplier])]) {
      for (let i = 0; i < 4; i++) body.push((v >>> (8 * i)) & 0xff);
    }
    this.addCapability(PCI.CAP_ID_VNDR, body);
  }

  /** The PCI-configuration-access capability: a window onto the BARs through config space. */
  #addPciCfgCap(): void {
    const body = [20, VIRTIO_PCI_CAP.PCI_CFG, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0];
    const writable = [{ at: 2, mask: 0xff }];
    for (let i = 0; i < 4; i++) {
      writable.push(
        { at: 6 + i, mask: 0xff },
        { at: 10 + i, mask: 0xff },
        { at: 14 + i, mask: 0xff },
      );
    }
    const cap = this.addCapability(PCI.CAP_ID_VNDR, body, writable);
    const data = cap + 16;
    const window = (): { bar: number; offset: number; len: number } => ({
      bar: this.configRead(cap + 4, 1),
      offset: this.configRead(cap + 8, 4),
      len: this.configRead(cap + 12, 4),
    });
    this.addConfigHook({
      start: data,
      end: data + 4,
      read: (reg, width) => {
        const { bar, offset, len } = window();
        if (reg !== data || width !== 4 || bar !== L.BAR || !(len === 1 || len === 2 || len === 4))
          return 0;
        if (offset % len !== 0 || offset + len > L.BAR_SIZE) return 0;
        // SAFETY: len was checked to be 1, 2 or 4 just above.
        return this.#barRead4(offset, len as MmioWidth);
      },
      write: (reg, width, value) => {
        const { bar, offset, len } = window();
        if (reg !== data || width !== 4 || bar !== L.BAR || !(len === 1 || len === 2 || len === 4))
          return;
        if (offset % len !== 0 || offset + len > L.BAR_SIZE) return;
        // SAFETY: len was checked to be 1, 2 or 4 just above.
        this.#barWrite4(
          offset,
          len as MmioWidth,
          len === 4 ? value >>> 0 : value & ((1 << (8 * len)) - 1),
        );
      },
    });
  }
}

/**
 * @internal Throws `EINVAL` unless `q` is one of `fn`'s queues: what the device-model hooks
 * and helpers that take a queue check first.
 */
export function checkOwnQueue(fn: VirtioPciFunction, where: string, q: unknown): Virtqueue {
  if (!(q instanceof Virtqueue) || fn.queues[q.index] !== q) {
    throw argumentError(where, "q", `one of the ${fn.queues.length} queues of ${fn.name}`, q);
  }
  return q;
}

/**
 * @internal Throws `EINVAL` unless `(offset, width)` is an access of 1, 2 or 4 bytes inside a
 * device configuration of `size` bytes.
 */
export function checkConfigAccess(
  where: string,
  size: number,
  offset: unknown,
  width: unknown,
): void {
  if (width !== 1 && width !== 2 && width !== 4) {
    throw argumentError(where, "width", "an access width of 1, 2 or 4", width);
  }
  checkInteger(where, "offset", offset, 0, size - width);
}

function fieldAt(at: number): number {
  for (let i = FIELDS.length - 1; i >= 0; i--) if (at >= FIELDS[i]![0]) return i;
  return 0;
}

function hex(v: number): string {
  return `0x${v.toString(16)}`;
}
