//! C source: drivers/block/virtio_blk.c (virtio_queue_rq, virtblk_add_req, virtblk_done,
//! virtblk_request_done), drivers/virtio/virtio_pci_modern.c (setup_vq)
//!
//! The request queue of one disk: requests waiting in order, slots in flight on the split
//! ring, submission with a kick when the device asks for one, completion from the used
//! ring, and failing what is left when the device resets or goes away.

import type { PciDevice } from "@devref/bus";
import { devWarn } from "@devref/device-core";
import type { CoherentAllocation } from "@devref/dma-iommu";
import type { Bound, PhysicalMemory } from "@devref/raw-device";
import { DevrefError } from "@devref/raw-device";
import { BLK_T, VRING } from "./regs.js";
import { type BlkRequest, type Slot, statusError } from "./request.js";
import type { VirtioPciTransport } from "./transport.js";
import type { SplitRing } from "./virtqueue.js";

const TWO32 = 0x1_0000_0000;

/** What a queue is built from (the probe's layout of the coherent buffer and the slots). */
export interface QueueSetup {
  readonly transport: VirtioPciTransport;
  /** The CPU's view of RAM, where the data pages are. */
  readonly memory: PhysicalMemory;
  /** The coherent buffer: the ring, then headers (16 bytes a slot), then status bytes. */
  readonly mem: CoherentAllocation;
  readonly ring: SplitRing;
  readonly slots: readonly Slot[];
  readonly descPerSlot: number;
  readonly hdrBase: number;
  readonly statusBase: number;
  /** Bytes per data descriptor at most (`size_max`). */
  readonly segLimit: number;
  readonly configVector: number;
  readonly queueVector: number;
}

/** {@link BlkQueue.harvest}'s answer when a used entry named no request in flight. */
export const BAD_USED_ENTRY = -1;

/**
 * The request queue of one disk.
 *
 * **Invariants:** a request is either waiting, in exactly one slot, or settled; a slot's
 * data is mapped exactly while it holds a request; the device is notified only after
 * every chain of a batch is published.
 *
 * **Errors:** methods that touch the device take a Bound borrow and throw `ENODEV` on a
 * revoked one; request failures go to the requests, not to the caller.
 */
export class BlkQueue {
  readonly setup: QueueSetup;
  private readonly name: string;
  private readonly free: Slot[];
  private readonly pending: BlkRequest[] = [];
  private notifyAt = 0;
  submitted = 0;
  completed = 0;
  failed = 0;
  kicks = 0;

  constructor(name: string, setup: QueueSetup) {
    this.name = name;
    this.setup = setup;
    this.free = [...setup.slots].reverse();
  }

  /** Requests the device holds. */
  get inFlight(): number {
    return this.setup.slots.length - this.free.length;
  }

  /** Requests waiting for a slot. */
  get queued(): number {
    return this.pending.length;
  }

  /** Adds a request at the end of the waiting line. */
  push(req: BlkRequest): void {
    this.pending.push(req);
  }

  /**
   * Programs queue 0 (`setup_vq` + `queue_enable`): the configuration vector, a size check,
   * a clean ring, its three device addresses and its vector.
   *
   * **Errors:** `EIO` if the device now offers a smaller queue; as the transport says.
   */
  program(d: PciDevice<Bound>): void {
    const s = this.setup;
    const t = s.transport;
    t.setConfigVector(d, s.configVector);
    const max = t.queueMaxSize(d, 0);
    if (max < s.ring.size) {
      throw new DevrefError(
        "EIO",
        `virtio-pci ${d.name}: queue 0 now holds ${max} entries, fewer than ${s.ring.size}`,
      );
    }
    s.ring.reset();
    const ring = s.ring;
    const addr = { desc: ring.descAddr, driver: ring.availAddr, device: ring.usedAddr };
    this.notifyAt = t.setupQueue(d, 0, ring.size, addr, s.queueVector);
    t.enableQueue(d, 0);
  }

  /** Moves waiting requests into free slots and notifies the device (virtio_queue_rq). */
  dispatch(d: PciDevice<Bound>): void {
    const ring = this.setup.ring;
    let old = -1;
    while (this.pending.length > 0 && this.free.length > 0) {
      const req = this.pending.shift()!;
      const slot = this.free.pop()!;
      try {
        this.start(d, slot, req);
      } catch (e) {
        this.release(d, slot);
        this.fail(req, asDevrefError(e));
        continue;
      }
      this.submitted++;
      const o = ring.publish(slot.head);
      if (old < 0) old = o;
    }
    if (old >= 0 && ring.needsKick(old)) {
      this.kicks++;
      this.setup.transport.notify(d, this.notifyAt, 0);
    }
  }

  /** Builds the descriptor chain of `req` in `slot`: header, data, status. */
  private start(d: PciDevice<Bound>, slot: Slot, req: BlkRequest): void {
    const s = this.setup;
    const mem = s.mem;
    const ring = s.ring;
    const hdr = s.hdrBase + 16 * slot.index;
    const status = s.statusBase + slot.index;
    slot.req = req;
    mem.write32(hdr, req.type);
    mem.write32(hdr + 4, 0);
    mem.write64(hdr + 8, req.sector % TWO32, Math.floor(req.sector / TWO32));
    mem.write8(status, 0xff); // what is left when the device never answers
    let i = slot.head;
    ring.writeDesc(i, mem.dmaAddr + hdr, 16, VRING.DESC_F_NEXT, i + 1);
    if (req.bytes > 0) {
      slot.mapData(d, req, s.memory, s.segLimit);
      const flags = VRING.DESC_F_NEXT | (req.type === BLK_T.OUT ? 0 : VRING.DESC_F_WRITE);
      for (let k = 0; k < slot.segCount; k++) {
        i++;
        ring.writeDesc(i, slot.segAddr[k]!, slot.segLen[k]!, flags, i + 1);
      }
    }
    i++;
    ring.writeDesc(i, mem.dmaAddr + status, 1, VRING.DESC_F_WRITE, 0);
  }

  /** Gives a slot back: its data unmapped (without copying out) and no request. */
  private release(d: PciDevice<Bound>, slot: Slot): void {
    try {
      slot.unmapData(d, this.setup.memory, false);
    } catch (e) {
      // The DMA layer keeps a mapping it could not tear down and ends it at unbind.
      devWarn(d, `virtio-blk: unmapping a request's data failed: ${asDevrefError(e).message}`);
    }
    slot.req = null;
    this.free.push(slot);
  }

  /** Rejects `req` with `e`, counted. */
  fail(req: BlkRequest, e: DevrefError): void {
    this.failed++;
    req.reject(e);
  }

  /**
   * Takes every used entry, and with `rearm` re-enables interrupts and takes what arrived
   * meanwhile (virtblk_done's loop). Returns how many it took, or {@link BAD_USED_ENTRY} at
   * an entry that names no request in flight (the ring can no longer be trusted).
   */
  harvest(d: PciDevice<Bound>, rearm: boolean): number {
    const ring = this.setup.ring;
    let n = 0;
    for (;;) {
      for (let id = ring.popUsed(); id !== -1; id = ring.popUsed()) {
        if (!this.complete(d, id)) return BAD_USED_ENTRY;
        n++;
      }
      if (!rearm || !ring.enableInterrupt()) return n;
    }
  }

  /** Completes the request whose chain starts at descriptor `id`; false if there is none. */
  private complete(d: PciDevice<Bound>, id: number): boolean {
    const s = this.setup;
    const k = s.descPerSlot;
    const slot = id % k === 0 ? s.slots[id / k] : undefined;
    const req = slot?.req ?? null;
    if (slot === undefined || req === null) return false;
    const err = statusError(this.name, req, s.mem.read8(s.statusBase + slot.index));
    let unmapError: DevrefError | null = null;
    try {
      slot.unmapData(d, s.memory, err === null);
    } catch (e) {
      unmapError = asDevrefError(e);
    }
    slot.req = null;
    this.free.push(slot);
    this.completed++;
    const why = unmapError ?? err;
    if (why === null) req.resolve();
    else this.fail(req, why);
    return true;
  }

  /** Rejects and unmaps every request in flight (the device no longer touches them). */
  failInFlight(d: PciDevice<Bound>, e: DevrefError): void {
    for (const slot of this.setup.slots) {
      const req = slot.req;
      if (req === null) continue;
      this.release(d, slot);
      this.fail(req, e);
    }
  }

  /** Rejects everything, in flight and waiting. */
  failAll(d: PciDevice<Bound>, e: DevrefError): void {
    this.failInFlight(d, e);
    this.failWaiting(e);
  }

  /** Rejects the waiting requests. */
  failWaiting(e: DevrefError): void {
    for (const req of this.pending.splice(0)) this.fail(req, e);
  }

  /**
   * Rejects what is still in a slot once there is no binding to unmap with: the DMA layer
   * tears such mappings down at the end of the binding (a probe abandoned mid-way).
   */
  abandon(e: DevrefError): void {
    this.failWaiting(e);
    for (const slot of this.setup.slots) {
      const req = slot.req;
      if (req === null) continue;
      slot.req = null;
      this.fail(req, e);
    }
  }
}

/** Any thrown value as a DevrefError (unexpected ones as EIO with the cause). */
export function asDevrefError(e: unknown): DevrefError {
  if (e instanceof DevrefError) return e;
  return new DevrefError(
    "EIO",
    `virtio-blk: unexpected failure: ${e instanceof Error ? e.message : String(e)}`,
    { cause: e },
  );
}
