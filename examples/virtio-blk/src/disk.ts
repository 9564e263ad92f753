//! C source: drivers/block/virtio_blk.c (virtio_queue_rq, virtblk_done, virtblk_request_done,
//! virtblk_config_changed_work, virtblk_remove), drivers/virtio/virtio_pci_common.c
//! (vp_interrupt, vp_vring_interrupt, vp_config_changed)
//!
//! The block device a bound virtio-blk function becomes: `read`, `write`, `flush` and
//! `getId` as promises, a small queue depth with the excess queued in order, completion
//! by interrupt, recovery from DEVICE_NEEDS_RESET, and removal at any moment.

import type { PciDevice } from "@devref/bus";
import { type BoundCallback, devInfo, devWarn, type IrqReturn } from "@devref/device-core";
import type { Bound } from "@devref/raw-device";
import { checkCount, checkInstance, checkInteger, DevrefError } from "@devref/raw-device";
import { asDevrefError, BAD_USED_ENTRY, type BlkQueue, type QueueSetup } from "./internal/queue.js";
import {
  BLK_CFG,
  BLK_ID_BYTES,
  BLK_T,
  FEATURE,
  ISR,
  SECTOR_SIZE,
  STATUS,
} from "./internal/regs.js";
import { BlkRequest } from "./internal/request.js";
import {
  type DriverTimers,
  negotiate,
  RESET_POLL_LIMIT,
  RESET_POLL_MS,
  readGeometry,
} from "./internal/setup.js";
import type { VirtioPciTransport } from "./internal/transport.js";

/** Where a disk stands: serving requests, resetting after an error, given up, or removed. */
export type VirtioBlkState = "live" | "resetting" | "failed" | "gone";

/** How completions reach the driver. */
export type VirtioBlkIrqMode = "msix" | "intx";

/** Counters of a disk, for tests and the narrator. */
export interface VirtioBlkStats {
  /** Requests handed to the device. */
  readonly submitted: number;
  /** Requests the device completed (any status). */
  readonly completed: number;
  /** Requests that failed (device status, reset, removal, mapping). */
  readonly failed: number;
  /** Notifications written to the device. */
  readonly kicks: number;
  /** Interrupts that found work. */
  readonly interrupts: number;
  /** Device resets after DEVICE_NEEDS_RESET (or a broken used ring). */
  readonly resets: number;
}

/** @internal What the probe hands a new disk. */
export interface DiskSetup {
  readonly queue: QueueSetup;
  readonly timers: DriverTimers;
  readonly features: readonly [number, number];
  readonly behindIommu: boolean;
  readonly capacitySectors: number;
  readonly blockSize: number;
  readonly maxTransfer: number;
  readonly irqMode: VirtioBlkIrqMode;
  /** Called once when the disk goes away (the driver's list of bound disks). */
  readonly onDetach: (disk: VirtioBlkDisk) => void;
}

const GENERATION_TRIES = 16;

const has = (f: readonly [number, number], bit: number): boolean =>
  ((f[bit < 32 ? 0 : 1]! >>> (bit % 32)) & 1) === 1;

/**
 * A virtio-blk disk: the block API of one bound function.
 *
 * Requests are split into chunks of at most {@link maxTransfer} bytes; at most
 * {@link queueDepth} are in flight and the rest wait in order. Logical blocks are
 * {@link blockSize} bytes; the protocol's sectors stay 512 bytes.
 *
 * **Invariants:** a request's promise settles exactly once: resolved only after the
 * device wrote its used entry with status OK (so a completed write is in the device's
 * image), rejected with `ENODEV` once the disk is removed, `EIO` for a device error or
 * reset, `EOPNOTSUPP` for an unsupported request. Data pages are mapped for DMA exactly
 * while their request is in flight; after removal nothing is mapped and nothing touches
 * the device.
 *
 * **Errors:** (as rejections) `EINVAL` for bad arguments or a range beyond the disk;
 * `EPERM` for a write to a read-only disk; `ENODEV` once removed; `EIO` once failed.
 *
 * @example
 * ```ts
 * const disk = vblk.disk("0000:00:00.0");
 * const p = disk.write(8, new Uint8Array(4096).fill(7));
 * await soc.settle();
 * await p;
 * ```
 */
export class VirtioBlkDisk {
  /** The PCI function's name (`0000:00:00.0`). */
  readonly name: string;
  /** Logical block size in bytes (`blk_size`, default 512). */
  readonly blockSize: number;
  /** Whether the device is read-only (`VIRTIO_BLK_F_RO`). */
  readonly readOnly: boolean;
  /** Whether writes need a flush to be stable (`VIRTIO_BLK_F_FLUSH` negotiated). */
  readonly writeCache: boolean;
  /** Requests in flight at most. */
  readonly queueDepth: number;
  /** Ring entries. */
  readonly ringSize: number;
  /** Bytes per request at most (larger calls are split). */
  readonly maxTransfer: number;
  /** MSI-X vectors, or the INTx line with the ISR. */
  readonly irqMode: VirtioBlkIrqMode;
  /** Negotiated feature bits: [0..31, 32..63]. */
  readonly features: readonly [number, number];
  private capacitySectors: number;
  private diskState: VirtioBlkState = "live";
  private readonly setup: DiskSetup;
  private readonly transport: VirtioPciTransport;
  private readonly queue: BlkQueue;
  private timer: unknown = null;
  private readonly dispatchCb: BoundCallback<[], void>;
  private readonly pollCb: BoundCallback<[], void>;
  private resetWhy = "";
  private resetPolls = 0;
  private nInterrupts = 0;
  private nResets = 0;
  private detached = false;

  /**
   * @internal Made by the driver's probe once the queue is programmed; the probe then
   * requests the interrupts and sets DRIVER_OK.
   */
  constructor(dev: PciDevice<Bound>, setup: DiskSetup, queue: BlkQueue) {
    this.name = dev.name;
    this.setup = setup;
    this.transport = setup.queue.transport;
    this.queue = queue;
    this.blockSize = setup.blockSize;
    this.readOnly = has(setup.features, FEATURE.BLK_RO);
    this.writeCache = has(setup.features, FEATURE.BLK_FLUSH);
    this.queueDepth = setup.queue.slots.length;
    this.ringSize = setup.queue.ring.size;
    this.maxTransfer = setup.maxTransfer;
    this.irqMode = setup.irqMode;
    this.features = setup.features;
    this.capacitySectors = setup.capacitySectors;
    this.dispatchCb = dev.devmCallback((d) => this.dispatch(d), "virtio-blk dispatch");
    this.pollCb = dev.devmCallback((d) => this.pollReset(d), "virtio-blk reset poll");
  }

  /** Where the disk stands. */
  get state(): VirtioBlkState {
    return this.diskState;
  }

  /** Capacity in logical blocks (follows configuration changes). */
  get capacity(): number {
    return Math.floor((this.capacitySectors * SECTOR_SIZE) / this.blockSize);
  }

  /** Requests the device holds now. */
  get inFlight(): number {
    return this.queue.inFlight;
  }

  /** Requests waiting for a free slot (or for a reset to finish). */
  get queued(): number {
    return this.queue.queued;
  }

  /** Counters since probe. */
  get stats(): VirtioBlkStats {
    return {
      submitted: this.queue.submitted,
      completed: this.queue.completed,
      failed: this.queue.failed,
      kicks: this.queue.kicks,
      interrupts: this.nInterrupts,
      resets: this.nResets,
    };
  }

  // ------------------------------------------------------------------ the block API

  /**
   * Reads `count` logical blocks from block `lba`.
   *
   * **Errors:** (rejections) as the class says.
   */
  read(lba: number, count: number): Promise<Uint8Array> {
    try {
      this.checkRange("VirtioBlkDisk.read", lba, count);
    } catch (e) {
      return Promise.reject(e);
    }
    const buf = new Uint8Array(count * this.blockSize);
    return this.submitChunks(BLK_T.IN, lba, count, null, buf).then(() => buf);
  }

  /**
   * Writes `data` (a whole number of logical blocks) from block `lba`. The bytes are copied
   * when the call is made; the promise resolves once the device reported the write done.
   *
   * **Errors:** (rejections) as the class says.
   */
  write(lba: number, data: Uint8Array): Promise<void> {
    try {
      checkInstance("VirtioBlkDisk.write", "data", data, Uint8Array);
      if (data.length === 0 || data.length % this.blockSize !== 0) {
        throw new DevrefError(
          "EINVAL",
          `VirtioBlkDisk.write: data must be a whole number of ${this.blockSize}-byte blocks, not ${data.length} bytes`,
        );
      }
      this.checkRange("VirtioBlkDisk.write", lba, data.length / this.blockSize);
      if (this.readOnly) {
        throw new DevrefError("EPERM", `virtio-blk ${this.name} is read-only; it takes no writes`);
      }
    } catch (e) {
      return Promise.reject(e);
    }
    return this.submitChunks(BLK_T.OUT, lba, data.length / this.blockSize, data.slice(), null);
  }

  /**
   * Makes every write completed before the call stable (`VIRTIO_BLK_T_FLUSH`); resolves at
   * once on a disk without a write cache.
   *
   * **Errors:** (rejections) `ENODEV` once removed, `EIO` on a device error.
   */
  flush(): Promise<void> {
    if (!this.writeCache && this.diskState === "live") return Promise.resolve();
    return this.enqueue(BLK_T.FLUSH, 0, 0, null, null, 0);
  }

  /**
   * The device's serial string (`VIRTIO_BLK_T_GET_ID`), up to 20 characters.
   *
   * **Errors:** (rejections) `EOPNOTSUPP` if the device does not answer it; otherwise as
   * {@link flush}.
   */
  getId(): Promise<string> {
    const buf = new Uint8Array(BLK_ID_BYTES);
    return this.enqueue(BLK_T.GET_ID, 0, BLK_ID_BYTES, null, buf, 0).then(() => {
      let s = "";
      for (const b of buf) {
        if (b === 0) break;
        s += String.fromCharCode(b);
      }
      return s;
    });
  }

  private checkRange(where: string, lba: number, count: number): void {
    checkInteger(where, "lba", lba, 0, Number.MAX_SAFE_INTEGER);
    checkCount(where, "count", count, 1, Number.MAX_SAFE_INTEGER);
    if (lba + count > this.capacity) {
      throw new DevrefError(
        "EINVAL",
        `${where}: blocks ${lba}..${lba + count - 1} lie beyond the end of ${this.name} (${this.capacity} blocks of ${this.blockSize} bytes)`,
      );
    }
  }

  private submitChunks(
    type: number,
    lba: number,
    count: number,
    out: Uint8Array | null,
    into: Uint8Array | null,
  ): Promise<void> {
    const bs = this.blockSize;
    const per = Math.floor(this.maxTransfer / bs);
    const spb = bs / SECTOR_SIZE;
    if (count <= per) {
      return this.enqueue(type, lba * spb, count * bs, out, into, 0);
    }
    const parts: Promise<void>[] = [];
    for (let done = 0; done < count; done += per) {
      const n = Math.min(per, count - done);
      const from = done * bs;
      parts.push(
        this.enqueue(
          type,
          (lba + done) * spb,
          n * bs,
          out === null ? null : out.subarray(from, from + n * bs),
          into,
          from,
        ),
      );
    }
    return Promise.all(parts).then(() => undefined);
  }

  private enqueue(
    type: number,
    sector: number,
    bytes: number,
    out: Uint8Array | null,
    into: Uint8Array | null,
    intoOffset: number,
  ): Promise<void> {
    return new Promise<void>((resolve, reject) => {
      const req = new BlkRequest(type, sector, bytes, out, into, intoOffset, resolve, reject);
      if (this.diskState === "gone") {
        this.queue.fail(req, this.goneError());
        return;
      }
      if (this.diskState === "failed") {
        this.queue.fail(req, this.failedError());
        return;
      }
      this.queue.push(req);
      if (this.diskState === "live") this.dispatchCb();
    });
  }

  // ------------------------------------------------------------------ submission, completion

  private dispatch(d: PciDevice<Bound>): void {
    if (this.diskState === "live") this.queue.dispatch(d);
  }

  /** The queue's interrupt (vring_interrupt): takes every used entry, then refills. */
  onQueueInterrupt(d: PciDevice<Bound>): IrqReturn {
    if (this.diskState !== "live") return "handled";
    const n = this.queue.harvest(d, true);
    if (n === BAD_USED_ENTRY) {
      this.startRecovery(d, "the device returned a used entry that is not a request in flight");
      return "handled";
    }
    this.queue.dispatch(d);
    if (n === 0) return "none";
    this.nInterrupts++;
    return "handled";
  }

  /** The configuration-change interrupt (vp_config_changed). */
  onConfigInterrupt(d: PciDevice<Bound>): IrqReturn {
    if (this.diskState !== "live") return "handled";
    const s = this.transport.status(d);
    if (s === 0xff) return "handled"; // gone: the hot-plug removal follows
    if ((s & STATUS.DEVICE_NEEDS_RESET) !== 0) {
      this.startRecovery(d, "the device set DEVICE_NEEDS_RESET");
      return "handled";
    }
    this.refreshCapacity(d);
    return "handled";
  }

  /** INTx (vp_interrupt): the ISR byte says which; reading it clears it. */
  onIntx(d: PciDevice<Bound>): IrqReturn {
    const isr = this.transport.readIsr(d);
    if (isr === 0 || isr === 0xff) return "none";
    if ((isr & ISR.CONFIG) !== 0) this.onConfigInterrupt(d);
    if ((isr & ISR.QUEUE) !== 0) this.onQueueInterrupt(d);
    return "handled";
  }

  /** Re-reads the capacity after a configuration change (virtblk_config_changed_work). */
  private refreshCapacity(d: PciDevice<Bound>): void {
    const t = this.transport;
    for (let i = 0; i < GENERATION_TRIES; i++) {
      const gen = t.configGeneration(d);
      const cap = t.readConfig64(d, BLK_CFG.CAPACITY);
      if (t.configGeneration(d) !== gen) continue;
      if (cap !== this.capacitySectors && cap < 2 ** 53 - 1) {
        devInfo(d, `virtio-blk: capacity changed from ${this.capacitySectors} to ${cap} sectors`);
        this.capacitySectors = cap;
      }
      return;
    }
  }

  // ------------------------------------------------------------------ reset and removal

  /**
   * Starts a device reset after an error. Everything runs in interrupt or timer context,
   * never in a promise continuation, so the device is back before anyone waits for it.
   */
  private startRecovery(d: PciDevice<Bound>, why: string): void {
    if (this.diskState !== "live") return;
    this.diskState = "resetting";
    this.resetWhy = why;
    this.resetPolls = 0;
    devWarn(d, `virtio-blk: ${why}; failing the requests in flight and resetting the device`);
    let done: boolean;
    try {
      done = this.transport.reset(d);
    } catch (e) {
      this.resetFailed(d, asDevrefError(e));
      return;
    }
    if (done) this.afterReset(d);
    else this.timer = this.setup.timers.setTimeout(() => this.pollCb(), RESET_POLL_MS);
  }

  /** A timer tick while the device resets: polls `device_status`, with a bound. */
  private pollReset(d: PciDevice<Bound>): void {
    this.timer = null;
    if (this.diskState !== "resetting") return;
    let done: boolean;
    try {
      done = this.transport.resetDone(d);
    } catch (e) {
      this.resetFailed(d, asDevrefError(e));
      return;
    }
    if (done) {
      this.afterReset(d);
    } else if (++this.resetPolls >= RESET_POLL_LIMIT) {
      this.resetFailed(
        d,
        new DevrefError(
          "ETIMEDOUT",
          `virtio-blk ${this.name}: device_status did not read 0 within ${RESET_POLL_LIMIT * RESET_POLL_MS} ms of a reset`,
        ),
      );
    } else {
      this.timer = this.setup.timers.setTimeout(() => this.pollCb(), RESET_POLL_MS);
    }
  }

  /** The reset did not finish: the device is gone (ENODEV) or given up (EIO for callers). */
  private resetFailed(d: PciDevice<Bound>, e: DevrefError): void {
    if (e.code === "ENODEV") {
      this.diskState = "gone";
      this.queue.failAll(d, this.goneError());
      return;
    }
    this.giveUp(d, e);
  }

  private giveUp(d: PciDevice<Bound>, cause: DevrefError): void {
    this.diskState = "failed";
    devWarn(d, `virtio-blk: giving the device up: ${cause.message}`);
    try {
      if (this.transport.status(d) !== 0xff) this.transport.addStatus(d, STATUS.FAILED);
    } catch {
      // the registers are out of reach: nothing more to tell the device
    }
    this.queue.failAll(
      d,
      new DevrefError(
        "EIO",
        `virtio-blk ${this.name}: the device failed and could not be brought back`,
        {
          cause,
        },
      ),
    );
  }

  /** The device is quiet: fail what was in flight with EIO, bring the queue back, go on. */
  private afterReset(d: PciDevice<Bound>): void {
    this.queue.failInFlight(
      d,
      new DevrefError(
        "EIO",
        `virtio-blk ${this.name}: ${this.resetWhy}; the request was lost in the device reset`,
      ),
    );
    try {
      this.reinit(d);
    } catch (e) {
      this.giveUp(d, asDevrefError(e));
      return;
    }
    this.nResets++;
    this.diskState = "live";
    devInfo(d, "virtio-blk: device reset done; the queue is running again");
    this.queue.dispatch(d);
  }

  /** The handshake and queue set-up again, after a reset, with the features of the probe. */
  private reinit(d: PciDevice<Bound>): void {
    const t = this.transport;
    const s = this.setup;
    t.addStatus(d, STATUS.ACKNOWLEDGE);
    const f = negotiate(d, t, s.behindIommu);
    if (f[0] !== s.features[0] || f[1] !== s.features[1]) {
      throw new DevrefError(
        "EIO",
        `virtio-blk ${this.name}: the device offers other features after its reset`,
      );
    }
    readGeometry(d, t, f);
    this.queue.program(d);
    t.addStatus(d, STATUS.DRIVER_OK);
  }

  /**
   * @internal The driver's remove(): completes what the device finished, stops a device
   * that still answers, fails the rest with ENODEV and gives every mapping back.
   */
  shutdown(d: PciDevice<Bound>): void {
    const was = this.diskState;
    this.diskState = "gone";
    if (this.timer !== null) {
      this.setup.timers.clearTimeout(this.timer);
      this.timer = null;
    }
    let present = false;
    try {
      present = this.transport.status(d) !== 0xff;
    } catch {
      present = false;
    }
    if (was === "live") {
      // Entries the device wrote before it went are real completions: deliver them.
      try {
        this.queue.harvest(d, false);
      } catch {
        // the ring is unreadable: everything left fails below
      }
    }
    if (present) {
      try {
        this.transport.reset(d);
      } catch {
        present = false;
      }
    }
    this.diskState = "gone";
    this.queue.failAll(d, this.goneError());
  }

  /** @internal The driver data's disposal: last bookkeeping once the binding ended. */
  [Symbol.dispose](): void {
    this.diskState = "gone";
    this.queue.abandon(this.goneError());
    if (this.detached) return;
    this.detached = true;
    this.setup.onDetach(this);
  }

  private goneError(): DevrefError {
    return new DevrefError(
      "ENODEV",
      `virtio-blk ${this.name} was removed; the request did not complete`,
    );
  }

  private failedError(): DevrefError {
    return new DevrefError(
      "EIO",
      `virtio-blk ${this.name} failed and was given up; rebind the driver to use it again`,
    );
  }
}
