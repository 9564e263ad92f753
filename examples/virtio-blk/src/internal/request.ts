//! C source: drivers/block/virtio_blk.c (struct virtblk_req, virtblk_setup_cmd,
//! virtblk_map_data / virtblk_unmap_data, virtblk_add_req, virtblk_result)
//!
//! One block request and the slot that carries it to the device: a fixed block of
//! descriptors, a header and a status byte in coherent memory, and data pages of the
//! driver's own that are handed to the device by streaming DMA for the request's lifetime.

import type { PciDevice } from "@devref/bus";
import {
  DMA_FROM_DEVICE,
  DMA_MAPPING_ERROR,
  DMA_TO_DEVICE,
  type DmaDirection,
  dmaLastError,
  dmaMappingError,
  dmaMapSg,
  dmaMapSingle,
  dmaUnmapSg,
  dmaUnmapSingle,
  ScatterList,
} from "@devref/dma-iommu";
import type { Bound, DmaAddr, PhysAddr, PhysicalMemory } from "@devref/raw-device";
import { DevrefError } from "@devref/raw-device";
import { BLK_S, BLK_T } from "./regs.js";

/** Bytes of one data page. */
export const PAGE_SIZE = 4096;

/** One request of the block API, as the queue holds it until it completes. */
export class BlkRequest {
  /** `VIRTIO_BLK_T_*`. */
  readonly type: number;
  /** First 512-byte sector. */
  readonly sector: number;
  /** Data bytes (0 for a flush). */
  readonly bytes: number;
  /** OUT: the data to write (the caller's bytes, copied when the request was made). */
  readonly out: Uint8Array | null;
  /** IN / GET_ID: where the data goes, from `intoOffset`. */
  readonly into: Uint8Array | null;
  readonly intoOffset: number;
  readonly resolve: () => void;
  readonly reject: (e: DevrefError) => void;

  constructor(
    type: number,
    sector: number,
    bytes: number,
    out: Uint8Array | null,
    into: Uint8Array | null,
    intoOffset: number,
    resolve: () => void,
    reject: (e: DevrefError) => void,
  ) {
    this.type = type;
    this.sector = sector;
    this.bytes = bytes;
    this.out = out;
    this.into = into;
    this.intoOffset = intoOffset;
    this.resolve = resolve;
    this.reject = reject;
  }

  /** Words for messages: `read of sectors 8+8`. */
  describe(): string {
    const what =
      this.type === BLK_T.IN
        ? "read"
        : this.type === BLK_T.OUT
          ? "write"
          : this.type === BLK_T.FLUSH
            ? "flush"
            : "get-id";
    return this.bytes === 0 || this.type === BLK_T.GET_ID
      ? what
      : `${what} of sectors ${this.sector}+${this.bytes / 512}`;
  }
}

const NOT_MAPPED = 0;
const MAPPED_SINGLE = 1;
const MAPPED_SG = 2;

/**
 * A request slot: descriptors `head .. head + descriptors - 1`, the header and status byte
 * at fixed offsets of the coherent ring buffer, and the data pages.
 *
 * **Invariants:** a slot carries at most one request; its data is mapped exactly while
 * the request is in flight (from {@link mapData} to {@link unmapData}); DMA segments never
 * exceed `segLimit` bytes per descriptor.
 */
export class Slot {
  readonly index: number;
  /** First descriptor of the slot: the chain's head, which the used ring returns. */
  readonly head: number;
  readonly pages: readonly PhysAddr[];
  req: BlkRequest | null = null;
  private mapped = NOT_MAPPED;
  private dir: DmaDirection = DMA_TO_DEVICE;
  private single: DmaAddr = DMA_MAPPING_ERROR;
  private singleLen = 0;
  private sg: ScatterList | null = null;
  /** Device addresses and lengths of the data descriptors {@link mapData} produced. */
  readonly segAddr: Float64Array;
  readonly segLen: Float64Array;
  segCount = 0;

  constructor(index: number, head: number, pages: readonly PhysAddr[], maxSegs: number) {
    this.index = index;
    this.head = head;
    this.pages = pages;
    this.segAddr = new Float64Array(maxSegs);
    this.segLen = new Float64Array(maxSegs);
  }

  /** Whether the slot's data pages are handed to the device. */
  get isMapped(): boolean {
    return this.mapped !== NOT_MAPPED;
  }

  /**
   * Copies OUT data into the pages, hands `req.bytes` of them to the device
   * (`dma_map_single` for one page, `dma_map_sg` for more), and fills the data segments,
   * split at `segLimit` bytes.
   *
   * **Errors:** the DMA API's mapping error (`ENOMEM`, `EIO`, ...) when the mapping fails;
   * `EIO` if the mapped list needs more descriptors than the slot has.
   */
  mapData(d: PciDevice<Bound>, req: BlkRequest, memory: PhysicalMemory, segLimit: number): void {
    const bytes = req.bytes;
    const toDevice = req.type === BLK_T.OUT;
    this.dir = toDevice ? DMA_TO_DEVICE : DMA_FROM_DEVICE;
    const npages = Math.ceil(bytes / PAGE_SIZE);
    if (toDevice && req.out !== null) {
      for (let i = 0; i < npages; i++) {
        const from = i * PAGE_SIZE;
        memory.writeBytes(
          this.pages[i]!,
          req.out.subarray(from, Math.min(bytes, from + PAGE_SIZE)),
        );
      }
    }
    this.segCount = 0;
    if (npages === 1) {
      const addr = dmaMapSingle(d, this.pages[0]!, bytes, this.dir);
      if (dmaMappingError(d, addr)) throw mappingFailed(d, req);
      this.single = addr;
      this.singleLen = bytes;
      this.mapped = MAPPED_SINGLE;
      this.addSegments(addr, bytes, segLimit);
      return;
    }
    const segments = [];
    for (let i = 0; i < npages; i++) {
      segments.push({ pa: this.pages[i]!, length: Math.min(PAGE_SIZE, bytes - i * PAGE_SIZE) });
    }
    const sg = new ScatterList(segments);
    const n = dmaMapSg(d, sg, this.dir);
    if (n === 0) throw mappingFailed(d, req);
    this.sg = sg;
    this.mapped = MAPPED_SG;
    for (let i = 0; i < n; i++) this.addSegments(sg.dmaAddress[i]!, sg.dmaLength[i]!, segLimit);
  }

  private addSegments(addr: number, len: number, segLimit: number): void {
    for (let off = 0; off < len; off += segLimit) {
      if (this.segCount === this.segAddr.length) {
        throw new DevrefError(
          "EIO",
          `virtio-blk: a request needs more than the ${this.segAddr.length} data descriptors of its slot`,
        );
      }
      this.segAddr[this.segCount] = addr + off;
      this.segLen[this.segCount] = Math.min(segLimit, len - off);
      this.segCount++;
    }
  }

  /**
   * Takes the pages back from the device (`dma_unmap_*`, which copies a bounced read back)
   * and, for a completed IN or GET_ID, copies the data out. Does nothing if nothing is
   * mapped.
   */
  unmapData(d: PciDevice<Bound>, memory: PhysicalMemory, copyOut: boolean): void {
    const mapped = this.mapped;
    if (mapped === NOT_MAPPED) return;
    this.mapped = NOT_MAPPED;
    if (mapped === MAPPED_SINGLE) {
      dmaUnmapSingle(d, this.single, this.singleLen, this.dir);
    } else {
      const sg = this.sg!;
      this.sg = null;
      dmaUnmapSg(d, sg, sg.origNents, this.dir);
    }
    const req = this.req;
    if (!copyOut || req === null || req.into === null) return;
    const into = req.into;
    const want = Math.min(req.bytes, into.length - req.intoOffset);
    for (let i = 0; i * PAGE_SIZE < want; i++) {
      const from = i * PAGE_SIZE;
      const to = req.intoOffset + from;
      memory.readBytes(this.pages[i]!, into.subarray(to, to + Math.min(PAGE_SIZE, want - from)));
    }
  }
}

function mappingFailed(d: PciDevice<Bound>, req: BlkRequest): DevrefError {
  const why = dmaLastError(d);
  return new DevrefError(
    why?.code ?? "EIO",
    `virtio-blk ${d.name}: cannot map the data of a ${req.describe()} for DMA${why === null ? "" : `: ${why.message}`}`,
    why === null ? {} : { cause: why },
  );
}

/** The error for a request the device completed with `status`, or null for success. */
export function statusError(name: string, req: BlkRequest, status: number): DevrefError | null {
  if (status === BLK_S.OK) return null;
  if (status === BLK_S.UNSUPP) {
    return new DevrefError(
      "EOPNOTSUPP",
      `virtio-blk ${name}: the device does not support ${req.describe()}`,
    );
  }
  const text = status === BLK_S.IOERR ? "an I/O error" : `status ${status}`;
  return new DevrefError(
    "EIO",
    `virtio-blk ${name}: the device reported ${text} for the ${req.describe()}`,
  );
}
