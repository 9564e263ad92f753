//! C source: drivers/block/virtio_blk.c (the driver this device serves)
//! Rules: VIRTIO 1.2 §5.2 (specs/sim-hardware.md §4.8–§4.10).
//!
//! virtio-blk on the modern virtio-pci transport, serving requests from a disk image held
//! in memory. Each request takes two events: one reads the chain and moves the data, the
//! next (after the service latency) writes the status byte and the used entry and
//! interrupts, so a removal in between leaves it partly done, as on hardware.

import {
  argumentError,
  checkBoolean,
  checkCount,
  checkInstance,
  checkInteger,
  checkObject,
  checkString,
} from "@devref/raw-device";
import type { DmaTranslator } from "../dma.js";
import type { MmioWidth } from "../fabric.js";
import type { Soc } from "../soc.js";
import { checkConfigAccess, checkOwnQueue, VirtioPciFunction } from "./pci.js";
import {
  VIRTIO_BLK_CFG as CFG,
  VIRTIO_BLK_F,
  VIRTIO_BLK_HEADER_SIZE,
  VIRTIO_BLK_ID_BYTES,
  VIRTIO_BLK_S,
  VIRTIO_BLK_SECTOR_SIZE,
  VIRTIO_BLK_T,
  VIRTIO_F,
  VIRTIO_ID_BLOCK,
} from "./regs.js";
import { type ChainSegment, type Virtqueue, VQ } from "./virtqueue.js";

/** How a {@link VirtioBlk} is built. Every field but `name` has a default. */
export interface VirtioBlkOptions {
  readonly name: string;
  /** The disk contents (used in place; length a multiple of 512). Default: zeroes. */
  readonly image?: Uint8Array;
  /** Capacity in 512-byte sectors when no image is given (default 2048, 1 MiB). */
  readonly capacity?: number;
  /** Offer `VIRTIO_BLK_F_RO`: writes fail with `IOERR` (default false). */
  readonly readOnly?: boolean;
  /** `GET_ID` string, at most 20 ASCII characters (default `devref-sim-blk`). */
  readonly serial?: string;
  /** Request queues (default 1; more offers `VIRTIO_BLK_F_MQ`). */
  readonly numQueues?: number;
  /** Largest queue size (default 128). */
  readonly queueSize?: number;
  /** `seg_max`: data segments per request (default 126). */
  readonly segMax?: number;
  /** `size_max`, offered when given: bytes per segment. */
  readonly sizeMax?: number;
  /** `blk_size`: logical block size, a power of two ≥ 512 (default 512). */
  readonly blkSize?: number;
  /** Offer `VIRTIO_BLK_F_FLUSH` (default true). */
  readonly flush?: boolean;
  /** Offer `VIRTIO_BLK_F_CONFIG_WCE` (writable `writeback`, default false). */
  readonly configWce?: boolean;
  /** Offer `VIRTIO_F_INDIRECT_DESC` (default true). */
  readonly indirect?: boolean;
  /** Offer `VIRTIO_F_EVENT_IDX` (default true). */
  readonly eventIdx?: boolean;
  /** Service time of a request in virtual ns (default 20000). */
  readonly latencyNs?: number;
  /** Extra random service time in [0, jitter] from the SoC's generator (default 0). */
  readonly jitterNs?: number;
  /** DMA through this IOMMU (a Dart) on `streamId`; `ACCESS_PLATFORM` is then offered. */
  readonly iommu?: DmaTranslator;
  readonly streamId?: number;
  readonly accessPlatform?: boolean;
  readonly resetLatencyNs?: number;
  readonly notifyLatencyNs?: number;
}

interface Request {
  readonly head: number;
  readonly type: number;
  readonly sector: number;
  readonly statusAddr: number;
  status: number;
  /** Bytes written into device-writable buffers (for the used entry). */
  written: number;
  /** OUT data, applied to the image when the request completes. */
  staging: Uint8Array | null;
}

const SECTOR = VIRTIO_BLK_SECTOR_SIZE;

/**
 * A virtio-blk device (virtio device ID 2, PCI 0x1af4:0x1042) serving `IN`, `OUT`,
 * `FLUSH` and `GET_ID` from an in-memory image; other request types get `UNSUPP`.
 *
 * Rules: `IN`/`OUT` data must be a multiple of 512 bytes inside the capacity (`IOERR`
 * otherwise); an `OUT` on a read-only device gets `IOERR` and writes nothing; `FLUSH`
 * without `VIRTIO_BLK_F_FLUSH` gets `UNSUPP`; more data segments than `seg_max` get
 * `IOERR`; a data transfer that fails by DMA gets `IOERR`. A request without a readable
 * 16-byte header or a writable status byte, a broken ring, or a failed ring/status write
 * sets `DEVICE_NEEDS_RESET`. `used.len` counts the bytes written into device-writable
 * buffers, status byte included.
 *
 * **Invariants:** a request's data moves before its used entry is written; the image is
 * only modified by completed `OUT` requests; nothing happens after removal or reset.
 *
 * **Errors:** `EINVAL` for bad options, and for device-configuration accesses or queues
 * that are not this device's (the transport's hooks called directly).
 *
 * @example
 * ```ts
 * const blk = new VirtioBlk(soc, { name: "vblk0", capacity: 4096, iommu: dart, streamId: 1 });
 * host.insert(0, blk);
 * ```
 */
export class VirtioBlk extends VirtioPciFunction {
  /** The disk image (what `IN` reads and a completed `OUT` writes). */
  image: Uint8Array;
  readonly serial: string;
  readonly readOnly: boolean;
  private readonly config = new Uint8Array(CFG.SIZE);
  private readonly latencyNs: number;
  private readonly jitterNs: number;
  private readonly segMax: number;
  private readonly offersWce: boolean;
  private flushes = 0;
  private unflushed = 0;
  private completed = 0;
  private readonly hdr = new Uint8Array(VIRTIO_BLK_HEADER_SIZE);

  constructor(soc: Soc, options: VirtioBlkOptions) {
    checkObject("new VirtioBlk", "options", options);
    const w = "new VirtioBlk";
    checkString(w, "options.name", options.name, true);
    let image = options.image;
    if (image !== undefined) {
      checkInstance(w, "options.image", image, Uint8Array);
      if (image.length === 0 || image.length % SECTOR !== 0) {
        throw argumentError(
          w,
          "options.image",
          "a non-empty Uint8Array whose length is a multiple of 512",
          image,
        );
      }
    } else {
      image = new Uint8Array(
        checkCount(w, "options.capacity", options.capacity ?? 2048, 1, 2 ** 22) * SECTOR,
      );
    }
    const readOnly = checkBoolean(w, "options.readOnly", options.readOnly ?? false);
    const serial = checkString(w, "options.serial", options.serial ?? "devref-sim-blk");
    if (serial.length > VIRTIO_BLK_ID_BYTES || !/^[\x20-\x7e]*$/.test(serial)) {
      throw argumentError(w, "options.serial", "at most 20 printable ASCII characters", serial);
    }
    const numQueues = checkCount(w, "options.numQueues", options.numQueues ?? 1, 1, 64);
    const segMax = checkCount(w, "options.segMax", options.segMax ?? 126, 1, 0xffff_ffff);
    const sizeMax = checkInteger(w, "options.sizeMax", options.sizeMax ?? 0, 0, 0xffff_ffff);
    const blkSize = checkInteger(w, "options.blkSize", options.blkSize ?? 512, 512, 1 << 16);
    if ((blkSize & (blkSize - 1)) !== 0)
      throw argumentError(w, "options.blkSize", "a power of two", blkSize);
    const flush = checkBoolean(w, "options.flush", options.flush ?? true);
    const wce = checkBoolean(w, "options.configWce", options.configWce ?? false);
    const indirect = checkBoolean(w, "options.indirect", options.indirect ?? true);
    const eventIdx = checkBoolean(w, "options.eventIdx", options.eventIdx ?? true);
    const latency = checkInteger(w, "options.latencyNs", options.latencyNs ?? 20_000, 0, 1e15);
    const jitter = checkInteger(w, "options.jitterNs", options.jitterNs ?? 0, 0, 0xffff_ffff);
    let lo = (1 << VIRTIO_BLK_F.SEG_MAX) | (1 << VIRTIO_BLK_F.BLK_SIZE);
    if (sizeMax > 0) lo |= 1 << VIRTIO_BLK_F.SIZE_MAX;
    if (readOnly) lo |= 1 << VIRTIO_BLK_F.RO;
    if (flush) lo |= 1 << VIRTIO_BLK_F.FLUSH;
    if (wce) lo |= 1 << VIRTIO_BLK_F.CONFIG_WCE;
    if (numQueues > 1) lo |= 1 << VIRTIO_BLK_F.MQ;
    if (indirect) lo |= 1 << VIRTIO_F.INDIRECT_DESC;
    if (eventIdx) lo |= 1 << VIRTIO_F.EVENT_IDX;
    const transport = {
      name: options.name,
      deviceType: VIRTIO_ID_BLOCK,
      features: [lo >>> 0, 0] as const,
      numQueues,
      queueSize: options.queueSize ?? 128,
      configSize: CFG.SIZE,
      resetLatencyNs: options.resetLatencyNs ?? 0,
      notifyLatencyNs: options.notifyLatencyNs ?? 0,
      ...(options.accessPlatform === undefined ? {} : { accessPlatform: options.accessPlatform }),
    };
    super(
      soc,
      options.iommu === undefined
        ? transport
        : { ...transport, iommu: options.iommu, streamId: options.streamId ?? 0 },
    );
    this.image = image;
    this.serial = serial;
    this.readOnly = readOnly;
    this.latencyNs = latency;
    this.jitterNs = jitter;
    this.segMax = segMax;
    this.offersWce = wce;
    const v = new DataView(this.config.buffer);
    v.setUint32(CFG.SIZE_MAX, sizeMax, true);
    v.setUint32(CFG.SEG_MAX, segMax, true);
    v.setUint32(CFG.BLK_SIZE, blkSize, true);
    v.setUint16(CFG.NUM_QUEUES, numQueues > 1 ? numQueues : 0, true);
    this.#setCapacityBytes();
  }

  /** Capacity in 512-byte sectors. */
  get capacity(): number {
    return this.image.length / SECTOR;
  }

  /** `FLUSH` requests completed. */
  get flushCount(): number {
    return this.flushes;
  }

  /** `OUT` requests completed since the last `FLUSH`. */
  get unflushedWrites(): number {
    return this.unflushed;
  }

  /** Requests completed (used entries written). */
  get requestsCompleted(): number {
    return this.completed;
  }

  /**
   * Changes the capacity (contents are kept up to the smaller size) and sends a
   * configuration-change notification, as a host resizing the disk does.
   */
  resize(sectors: number): void {
    checkCount("VirtioBlk.resize", "sectors", sectors, 1, 2 ** 22);
    const next = new Uint8Array(sectors * SECTOR);
    next.set(this.image.subarray(0, Math.min(next.length, this.image.length)));
    this.image = next;
    this.#setCapacityBytes();
    this.configChanged();
  }

  #setCapacityBytes(): void {
    const v = new DataView(this.config.buffer);
    v.setUint32(CFG.CAPACITY, this.capacity % 0x1_0000_0000, true);
    v.setUint32(CFG.CAPACITY + 4, Math.floor(this.capacity / 0x1_0000_0000), true);
  }

  // ---------------------------------------------------------------- configuration

  protected readConfig(offset: number, width: MmioWidth): number {
    checkConfigAccess(`${this.name}.readConfig`, CFG.SIZE, offset, width);
    let v = 0;
    for (let i = width - 1; i >= 0; i--) v = (v << 8) | this.config[offset + i]!;
    return v >>> 0;
  }

  protected writeConfig(offset: number, width: MmioWidth, value: number): void {
    checkConfigAccess(`${this.name}.writeConfig`, CFG.SIZE, offset, width);
    checkInteger(`${this.name}.writeConfig`, "value", value, 0, 2 ** (8 * width) - 1);
    if (
      offset === CFG.WRITEBACK &&
      width === 1 &&
      this.offersWce &&
      this.negotiated(VIRTIO_BLK_F.CONFIG_WCE)
    ) {
      this.config[CFG.WRITEBACK] = value === 0 ? 0 : 1;
      return;
    }
    this.soc.tracer.fault(
      this.traceId,
      "virtio-driver-error: write to read-only configuration",
      offset,
      value,
    );
  }

  protected override onDeviceReset(): void {
    this.config[CFG.WRITEBACK] = this.offersWce ? 1 : 0;
  }

  // ---------------------------------------------------------------- requests

  protected processQueue(q: Virtqueue): void {
    checkOwnQueue(this, `${this.name}.processQueue`, q);
    const dma = this.dma;
    const r = q.pop(dma, this.negotiated(VIRTIO_F.INDIRECT_DESC));
    if (r === VQ.EMPTY) return;
    if (r === VQ.DMA_ERROR) {
      this.needsReset(`queue ${q.index}: ring access failed (DMA status ${dma.status})`);
      return;
    }
    if (r === VQ.MALFORMED) {
      this.needsReset(`queue ${q.index}: ${q.problem}`);
      return;
    }
    if (this.negotiated(VIRTIO_F.EVENT_IDX) && !q.publishAvailEvent(dma)) {
      this.needsReset(`queue ${q.index}: avail_event write failed`);
      return;
    }
    const req = this.#start(q.head, q.chain);
    if (req === null) {
      this.needsReset(`queue ${q.index}: request without a 16-byte header or a status byte`);
      return;
    }
    const delay =
      this.latencyNs + (this.jitterNs > 0 ? this.soc.random.below(this.jitterNs + 1) : 0);
    this.later(delay, () => this.#complete(q, req));
    this.rescheduleQueue(q);
  }

  /** Reads the header and moves the data; null when the chain is not a request at all. */
  #start(head: number, chain: readonly ChainSegment[]): Request | null {
    const reads: ChainSegment[] = [];
    const writes: ChainSegment[] = [];
    for (const s of chain) (s.write ? writes : reads).push(s);
    const readTotal = total(reads);
    const writeTotal = total(writes);
    if (readTotal < VIRTIO_BLK_HEADER_SIZE || writeTotal < 1) return null;
    const last = writes[writes.length - 1]!;
    const req: Request = {
      head,
      type: -1,
      sector: 0,
      statusAddr: last.addr + last.len - 1,
      status: VIRTIO_BLK_S.IOERR,
      written: 1,
      staging: null,
    };
    if (!this.#gather(reads, 0, this.hdr)) return this.#dmaFailed(req, "header");
    const h = new DataView(this.hdr.buffer);
    const type = h.getUint32(0, true);
    const sector = h.getUint32(12, true) * 0x1_0000_0000 + h.getUint32(8, true);
    const out: Request = { ...req, type, sector };
    this.soc.tracer.note(this.traceId, "virtio-blk-request", type, sector);
    switch (type) {
      case VIRTIO_BLK_T.IN:
        return this.#doIn(out, writes, writeTotal - 1);
      case VIRTIO_BLK_T.OUT:
        return this.#doOut(out, reads, readTotal - VIRTIO_BLK_HEADER_SIZE);
      case VIRTIO_BLK_T.FLUSH:
      case VIRTIO_BLK_T.FLUSH_OUT:
        out.status = this.negotiated(VIRTIO_BLK_F.FLUSH) ? VIRTIO_BLK_S.OK : VIRTIO_BLK_S.UNSUPP;
        return out;
      case VIRTIO_BLK_T.GET_ID: {
        const n = Math.min(VIRTIO_BLK_ID_BYTES, writeTotal - 1);
        const id = new Uint8Array(n);
        for (let i = 0; i < n && i < this.serial.length; i++) id[i] = this.serial.charCodeAt(i);
        if (!this.#scatter(writes, id)) return this.#dmaFailed(out, "GET_ID data");
        out.status = VIRTIO_BLK_S.OK;
        out.written = n + 1;
        return out;
      }
      default:
        out.status = VIRTIO_BLK_S.UNSUPP;
        return out;
    }
  }

  #doIn(req: Request, writes: readonly ChainSegment[], len: number): Request {
    if (!this.#rangeOk(req, len, dataSegments(writes, len))) return req;
    const off = req.sector * SECTOR;
    if (!this.#scatter(writes, this.image.subarray(off, off + len)))
      return this.#dmaFailed(req, "IN data");
    req.status = VIRTIO_BLK_S.OK;
    req.written = len + 1;
    return req;
  }

  #doOut(req: Request, reads: readonly ChainSegment[], len: number): Request {
    if (this.readOnly) return req;
    if (!this.#rangeOk(req, len, dataSegmentsAfter(reads, VIRTIO_BLK_HEADER_SIZE))) return req;
    const staging = new Uint8Array(len);
    if (!this.#gather(reads, VIRTIO_BLK_HEADER_SIZE, staging))
      return this.#dmaFailed(req, "OUT data");
    req.status = VIRTIO_BLK_S.OK;
    req.staging = staging;
    return req;
  }

  #rangeOk(req: Request, len: number, segments: number): boolean {
    if (
      len % SECTOR !== 0 ||
      req.sector * SECTOR + len > this.image.length ||
      segments > this.segMax
    ) {
      this.soc.tracer.fault(this.traceId, "virtio-blk-bad-request", req.sector, len);
      return false;
    }
    return true;
  }

  #complete(q: Virtqueue, req: Request): void {
    if (!this.live) return;
    if (req.staging !== null && req.status === VIRTIO_BLK_S.OK) {
      this.image.set(req.staging, req.sector * SECTOR);
      this.unflushed++;
    }
    if (
      (req.type === VIRTIO_BLK_T.FLUSH || req.type === VIRTIO_BLK_T.FLUSH_OUT) &&
      req.status === VIRTIO_BLK_S.OK
    ) {
      this.flushes++;
      this.unflushed = 0;
    }
    const dma = this.dma;
    if (!dma.write8(req.statusAddr, req.status)) {
      this.needsReset(`queue ${q.index}: status byte write failed (DMA status ${dma.status})`);
      return;
    }
    const old = q.usedIdx;
    if (!q.pushUsed(dma, req.head, req.written)) {
      this.needsReset(`queue ${q.index}: used ring write failed (DMA status ${dma.status})`);
      return;
    }
    this.completed++;
    this.soc.tracer.note(this.traceId, "virtio-blk-complete", req.head, req.status);
    if (q.wantsInterrupt(dma, this.negotiated(VIRTIO_F.EVENT_IDX), old)) this.interruptQueue(q);
  }

  #dmaFailed(req: Request, what: string): Request {
    this.soc.tracer.fault(
      this.traceId,
      `virtio-blk-dma-error: ${what}`,
      this.dma.status,
      this.dma.errorAddr,
    );
    req.status = VIRTIO_BLK_S.IOERR;
    req.written = 1;
    return req;
  }

  /** Copies from the readable stream, starting `skip` bytes in, into `dest`. */
  #gather(segs: readonly ChainSegment[], skip: number, dest: Uint8Array): boolean {
    let done = 0;
    let pos = 0;
    for (const s of segs) {
      if (done === dest.length) break;
      const from = Math.max(skip - pos, 0);
      pos += s.len;
      if (from >= s.len) continue;
      const n = Math.min(s.len - from, dest.length - done);
      if (!this.dma.read(s.addr + from, dest.subarray(done, done + n))) return false;
      done += n;
    }
    return done === dest.length;
  }

  /** Copies `src` into the writable stream from its start. */
  #scatter(segs: readonly ChainSegment[], src: Uint8Array): boolean {
    let done = 0;
    for (const s of segs) {
      if (done === src.length) break;
      const n = Math.min(s.len, src.length - done);
      if (!this.dma.write(s.addr, src.subarray(done, done + n))) return false;
      done += n;
    }
    return done === src.length;
  }
}

function total(segs: readonly ChainSegment[]): number {
  let n = 0;
  for (const s of segs) n += s.len;
  return n;
}

/** Segments that carry the first `len` bytes of a stream. */
function dataSegments(segs: readonly ChainSegment[], len: number): number {
  let n = 0;
  let pos = 0;
  for (const s of segs) {
    if (pos >= len) break;
    if (s.len > 0) n++;
    pos += s.len;
  }
  return n;
}

/** Segments that carry bytes after the first `skip` bytes of a stream. */
function dataSegmentsAfter(segs: readonly ChainSegment[], skip: number): number {
  let n = 0;
  let pos = 0;
  for (const s of segs) {
    if (pos + s.len > skip) n++;
    pos += s.len;
  }
  return n;
}
