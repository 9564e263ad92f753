//! C header: include/linux/dma-mapping.h (the device side: bus addresses a master emits)
//!
//! The DMA master interface through which device models touch memory: directly (bus
//! address = physical address) or through an IOMMU stream (IOVA → walk → physical).

import {
  argumentError,
  checkInstance,
  checkObject,
  checkString,
  type PhysicalMemory,
} from "@devref/raw-device";
import { Tracer } from "./trace.js";

/** Outcome of a DMA transfer, as `DmaPort.status` and in trace records. */
export const DMA_STATUS = {
  /** The transfer completed. */
  OK: 0,
  /** Bus mastering is off (PCI Command bit 2 clear): the transfer never left the device. */
  MASTER_DISABLED: 1,
  /** The device is gone (surprise removal): nothing reaches memory. */
  DEVICE_GONE: 2,
  /** The IOMMU stream is disabled or blocked (TCR = 0): dropped, memory untouched. */
  IOMMU_BLOCKED: 3,
  /** The IOMMU translation faulted (the IOMMU latched the error). */
  IOMMU_FAULT: 4,
  /** No memory answers at the physical address, or an injected DMA error. */
  BUS_ERROR: 5,
} as const;

/** A {@link DMA_STATUS} value. */
export type DmaStatus = (typeof DMA_STATUS)[keyof typeof DMA_STATUS];

/** Translation result meaning "faulted" (the translator has latched and traced it). */
export const XLATE_FAULT = -1;
/** Translation result meaning "blocked" (stream disabled). */
export const XLATE_BLOCKED = -2;

/**
 * What an IOMMU offers the DMA masters behind it (the simulated DART implements it).
 *
 * **Invariants:** a result ≥ 0 is the physical address of `dva`, valid up to the end of the
 * translation page holding `dva`.
 */
export interface DmaTranslator {
  /** Translation granule in bytes: transfers are split at its boundaries. */
  readonly pageSize: number;
  /** The physical address for `dva` on stream `sid`, or {@link XLATE_FAULT} / {@link XLATE_BLOCKED}. */
  translate(sid: number, dva: number, write: boolean): number;
}

/** Physical ranges that answer DMA: `[base0, end0, base1, end1, ...]`, owned by the SoC. */
export interface DmaRanges {
  readonly list: number[];
  /**
   * RAM whose allocation state is watched: a DMA access to RAM that is not allocated right
   * now is a use after free (the access still happens, as on hardware), reported here.
   */
  watch?: {
    readonly base: number;
    readonly end: number;
    isAllocated(pa: number, length: number): boolean;
    report(master: string, pa: number, length: number, write: boolean): void;
  };
}

/**
 * A DMA master: the one object through which a device model reads and writes memory.
 *
 * Transfers are split at translation-page boundaries and each piece is translated on its
 * own, so a fault in the middle leaves the earlier pieces done (as on hardware). Failures
 * do not throw: the method returns `false` (reads return all-ones) and `status` says why.
 *
 * **Invariants:** nothing reaches memory while the master is `gone`, bus mastering is
 * disabled, or an injected error is pending; `status` always describes the last transfer.
 *
 * **Errors:** `EINVAL` for an address that is not a non-negative number, a buffer that is
 * not a `Uint8Array`, or a value that is not a whole number fitting the access width (a
 * model bug, not a device condition); nothing is transferred then. The constructor throws
 * `EINVAL` for a bad name, memory, ranges or tracer (masters come from `soc.dmaMaster`).
 *
 * @example
 * ```ts
 * const dma = soc.dmaMaster("engine0");
 * dma.write32(0x8_0000_1000, 0xdead_beef); // true
 * dma.attachIommu(dart, 3); // from now on addresses are IOVAs on stream 3
 * if (!dma.read(0x4000, buf)) console.log(dma.status); // DMA_STATUS.IOMMU_FAULT
 * ```
 */
export class DmaPort {
  readonly name: string;
  /** Outcome of the last transfer. */
  status: DmaStatus = DMA_STATUS.OK;
  /** Bus address of the first byte that failed in the last failed transfer. */
  errorAddr = 0;
  /** Set when the device is gone: every transfer fails with `DEVICE_GONE`. */
  gone = false;
  /** Cleared to model PCI bus mastering off: transfers fail with `MASTER_DISABLED`. */
  enabled = true;
  /** The next this-many transfers fail with `BUS_ERROR` (fault injection). */
  injectedErrors = 0;
  private translator: DmaTranslator | null = null;
  private sid = 0;
  private readonly memory: PhysicalMemory;
  private readonly ranges: DmaRanges;
  private readonly tracer: Tracer;
  private readonly traceId: number;
  // Views for the small accessors, made once so no access allocates.
  private readonly s8 = new Uint8Array(8);
  private readonly s1 = this.s8.subarray(0, 1);
  private readonly s2 = this.s8.subarray(0, 2);
  private readonly s4 = this.s8.subarray(0, 4);

  constructor(name: string, memory: PhysicalMemory, ranges: DmaRanges, tracer: Tracer) {
    checkString("new DmaPort", "name", name, true);
    checkObject("new DmaPort", "memory", memory);
    if (typeof memory.readBytes !== "function" || typeof memory.writeBytes !== "function") {
      throw argumentError("new DmaPort", "memory", "a PhysicalMemory", memory);
    }
    checkObject("new DmaPort", "ranges", ranges);
    if (!Array.isArray(ranges.list)) {
      throw argumentError(
        "new DmaPort",
        "ranges.list",
        "an array of [base, end) pairs",
        ranges.list,
      );
    }
    checkInstance("new DmaPort", "tracer", tracer, Tracer);
    this.name = name;
    this.memory = memory;
    this.ranges = ranges;
    this.tracer = tracer;
    this.traceId = tracer.source(name);
  }

  /** Routes this master's transfers through `translator` on stream `sid`. */
  attachIommu(translator: DmaTranslator, sid: number): void {
    if (typeof translator?.translate !== "function") {
      throw argumentError(
        "DmaPort.attachIommu",
        "translator",
        "a DmaTranslator (a Dart)",
        translator,
      );
    }
    if (!(Number.isInteger(sid) && sid >= 0 && sid <= 0xff)) {
      throw argumentError("DmaPort.attachIommu", "sid", "a stream ID in [0, 255]", sid);
    }
    this.translator = translator;
    this.sid = sid;
  }

  /** Bus addresses become physical addresses again. */
  detachIommu(): void {
    this.translator = null;
    this.sid = 0;
  }

  /** The IOMMU this master's transfers go through, or null. */
  get iommu(): DmaTranslator | null {
    return this.translator;
  }

  /** The stream this master uses, or -1 when it has no IOMMU. */
  get streamId(): number {
    return this.translator === null ? -1 : this.sid;
  }

  /** Copies `dest.length` bytes from bus address `addr` into `dest`. */
  read(addr: number, dest: Uint8Array): boolean {
    if (!(dest instanceof Uint8Array)) this.#badBuffer("dest", dest);
    return this.#transfer(addr, dest, false);
  }

  /** Copies `src` to bus address `addr`. */
  write(addr: number, src: Uint8Array): boolean {
    if (!(src instanceof Uint8Array)) this.#badBuffer("src", src);
    return this.#transfer(addr, src, true);
  }

  read8(addr: number): number {
    return this.#transfer(addr, this.s1, false) ? this.s1[0]! : 0xff;
  }

  read16(addr: number): number {
    const s = this.s2;
    return this.#transfer(addr, s, false) ? s[0]! | (s[1]! << 8) : 0xffff;
  }

  read32(addr: number): number {
    const pa = this.#resolve(addr, 4, false);
    if (pa === SPLIT) {
      const s = this.s4;
      if (!this.#transfer(addr, s, false)) return 0xffff_ffff;
      return (s[0]! | (s[1]! << 8) | (s[2]! << 16) | (s[3]! << 24)) >>> 0;
    }
    const v = pa >= 0 ? this.memory.read32(pa) : 0xffff_ffff;
    if (this.tracer.enabled) this.tracer.dma(this.traceId, false, addr, 4, this.status);
    return v;
  }

  /**
   * A 64-bit little-endian value as a number (exact below 2^53). On failure 2^64, which
   * no valid address or length equals.
   */
  read64(addr: number): number {
    const s = this.s8;
    if (!this.#transfer(addr, s, false)) return 2 ** 64;
    const lo = (s[0]! | (s[1]! << 8) | (s[2]! << 16) | (s[3]! << 24)) >>> 0;
    const hi = (s[4]! | (s[5]! << 8) | (s[6]! << 16) | (s[7]! << 24)) >>> 0;
    return hi * 0x1_0000_0000 + lo;
  }

  write8(addr: number, value: number): boolean {
    if (typeof value !== "number" || (value & 0xff) !== value) this.#badValue(value, 8);
    this.s1[0] = value;
    return this.#transfer(addr, this.s1, true);
  }

  write16(addr: number, value: number): boolean {
    if (typeof value !== "number" || (value & 0xffff) !== value) this.#badValue(value, 16);
    const s = this.s2;
    s[0] = value;
    s[1] = value >>> 8;
    return this.#transfer(addr, s, true);
  }

  write32(addr: number, value: number): boolean {
    if (typeof value !== "number" || ((value | 0) !== value && value >>> 0 !== value))
      this.#badValue(value, 32);
    const pa = this.#resolve(addr, 4, true);
    if (pa === SPLIT) {
      const s = this.s4;
      s[0] = value;
      s[1] = value >>> 8;
      s[2] = value >>> 16;
      s[3] = value >>> 24;
      return this.#transfer(addr, s, true);
    }
    if (pa >= 0) this.memory.write32(pa, value >>> 0);
    if (this.tracer.enabled) this.tracer.dma(this.traceId, true, addr, 4, this.status);
    return pa >= 0;
  }

  /** Writes a 64-bit little-endian value given as a number (a safe integer ≥ 0). */
  write64(addr: number, value: number): boolean {
    if (!(Number.isSafeInteger(value) && value >= 0)) this.#badValue(value, 64);
    const lo = value % 0x1_0000_0000;
    const hi = (value - lo) / 0x1_0000_0000;
    const s = this.s8;
    for (let i = 0; i < 4; i++) {
      s[i] = lo >>> (8 * i);
      s[4 + i] = hi >>> (8 * i);
    }
    return this.#transfer(addr, s, true);
  }

  /**
   * The physical address for a small access that stays inside one translation page, or a
   * negative value: FAILED (status set) or SPLIT (the access crosses a page: use the
   * byte path).
   */
  #resolve(addr: number, len: number, write: boolean): number {
    if (typeof addr !== "number" || !(addr >= 0)) this.#badAddr(addr);
    if (this.gone) return this.#fail(DMA_STATUS.DEVICE_GONE, addr);
    if (!this.enabled) return this.#fail(DMA_STATUS.MASTER_DISABLED, addr);
    if (this.injectedErrors > 0) {
      this.injectedErrors--;
      return this.#fail(DMA_STATUS.BUS_ERROR, addr);
    }
    let pa = addr;
    const t = this.translator;
    if (t !== null) {
      const off = addr % t.pageSize;
      if (off + len > t.pageSize) return SPLIT;
      pa = t.translate(this.sid, addr, write);
      if (pa < 0) {
        return this.#fail(
          pa === XLATE_FAULT ? DMA_STATUS.IOMMU_FAULT : DMA_STATUS.IOMMU_BLOCKED,
          addr,
        );
      }
    }
    if (!this.#inMemory(pa, len)) return this.#fail(DMA_STATUS.BUS_ERROR, addr);
    this.#checkFreed(pa, len, write);
    this.status = DMA_STATUS.OK;
    return pa;
  }

  #transfer(addr: number, buf: Uint8Array, write: boolean): boolean {
    if (typeof addr !== "number" || !(addr >= 0)) this.#badAddr(addr);
    const ok = this.#move(addr, buf, write);
    if (this.tracer.enabled) {
      this.tracer.dma(this.traceId, write, addr, buf.length, this.status);
    }
    return ok;
  }

  #move(addr: number, buf: Uint8Array, write: boolean): boolean {
    if (this.gone) return this.#refuse(DMA_STATUS.DEVICE_GONE, addr);
    if (!this.enabled) return this.#refuse(DMA_STATUS.MASTER_DISABLED, addr);
    if (this.injectedErrors > 0) {
      this.injectedErrors--;
      return this.#refuse(DMA_STATUS.BUS_ERROR, addr);
    }
    const t = this.translator;
    const total = buf.length;
    let done = 0;
    while (done < total) {
      const at = addr + done;
      let n = total - done;
      let pa = at;
      if (t !== null) {
        const room = t.pageSize - (at % t.pageSize);
        if (n > room) n = room;
        pa = t.translate(this.sid, at, write);
        if (pa < 0) {
          this.#fail(pa === XLATE_FAULT ? DMA_STATUS.IOMMU_FAULT : DMA_STATUS.IOMMU_BLOCKED, at);
          return false;
        }
      }
      if (!this.#inMemory(pa, n)) {
        this.#fail(DMA_STATUS.BUS_ERROR, at);
        return false;
      }
      this.#checkFreed(pa, n, write);
      const part = done === 0 && n === total ? buf : buf.subarray(done, done + n);
      if (write) this.memory.writeBytes(pa, part);
      else this.memory.readBytes(pa, part);
      done += n;
    }
    this.status = DMA_STATUS.OK;
    return true;
  }

  #inMemory(pa: number, len: number): boolean {
    const list = this.ranges.list;
    for (let i = 0; i < list.length; i += 2) {
      if (pa >= list[i]! && pa + len <= list[i + 1]!) return true;
    }
    return false;
  }

  #checkFreed(pa: number, len: number, write: boolean): void {
    const w = this.ranges.watch;
    if (w === undefined || pa + len <= w.base || pa >= w.end) return;
    if (!w.isAllocated(pa, len)) w.report(this.name, pa, len, write);
  }

  #fail(status: DmaStatus, addr: number): number {
    this.status = status;
    this.errorAddr = addr;
    return FAILED;
  }

  #refuse(status: DmaStatus, addr: number): false {
    this.#fail(status, addr);
    return false;
  }

  #badBuffer(param: string, buf: unknown): never {
    throw argumentError(`DMA ${this.name}`, param, "a Uint8Array", buf);
  }

  #badValue(value: unknown, bits: number): never {
    throw argumentError(
      `DMA ${this.name}`,
      "value",
      bits === 64
        ? "a whole number in [0, 2^53)"
        : `an unsigned ${bits}-bit whole number${bits === 32 ? " (or a signed 32-bit one)" : ""}`,
      value,
    );
  }

  #badAddr(addr: number): never {
    throw argumentError(`DMA ${this.name}`, "addr", "a bus address (a number ≥ 0)", addr);
  }
}

const FAILED = -1;
const SPLIT = -2;
