//! C source: drivers/soc/apple/rtkit.c (apple_rtkit_common_rx_get_buffer,
//! apple_rtkit_free_buffer)
//!
//! Shared-buffer requests from the crashlog, syslog, IOReport and OSLog endpoints. The sizes
//! and addresses come from the firmware and whatever shmemSetup or the allocator returns is
//! checked before it is kept, so the readers in endpoints.ts can trust `bytes`.

import { DevrefError, type DmaAddr, describeValue } from "@devref/raw-device";
import * as C from "../constants.js";
import type { RtkitDmaBuffer, RtkitShmem } from "../types.js";
import { field36, field44, hex, hexPad, join, TWO32 } from "./bits.js";
import type { RtkitClient } from "./client.js";
import { asDevrefError } from "./errors.js";

/** One of the instance's buffers (the kernel's struct apple_rtkit_shmem member). */
export class ShmemSlot {
  readonly name: string;
  /** The live buffer, or null (the kernel's size == 0). */
  desc: RtkitShmem | null = null;
  /** Allocated through options.dma, so freed there when there is no shmemDestroy. */
  viaDma = false;
  constructor(name: string) {
    this.name = name;
  }
  /** Bytes of the live buffer, 0 without one. */
  get size(): number {
    return this.desc === null ? 0 : this.desc.size;
  }
}

const IOVA_LIMIT = 2 ** 44; // the reply's IOVA field, 43:0
const OSLOG_IOVA_LIMIT = 2 ** 48; // 36 bits of 4 KiB units
const OSLOG_SIZE_MAX = 0xf_ffff;

function replyFor(ep: number, desc: RtkitShmem): bigint {
  if (ep === C.EP_OSLOG) {
    const units = desc.iova / 0x1000;
    const hi = (C.OSLOG_BUFFER_REQUEST << 24) | ((desc.size & OSLOG_SIZE_MAX) << 4);
    return join(hi | ((units / TWO32) & 0xf), units >>> 0);
  }
  const pages = (desc.size / 0x1000) & 0xff;
  const hi = (C.BUFFER_REQUEST << 20) | (pages << 12) | ((desc.iova / TWO32) & 0xfff);
  return join(hi, desc.iova >>> 0);
}

/** Why a buffer from shmemSetup or the allocator cannot be used, or null. */
function problemWith(ep: number, size: number, desc: RtkitShmem, from: string): string | null {
  if (desc.size !== size)
    return `${from} changed size from 0x${hex(size)} to ${describeValue(desc.size)}`;
  if (typeof desc.isMapped !== "boolean") return `${from} set isMapped to a non-boolean`;
  const bytes: unknown = desc.bytes;
  if (bytes !== null) {
    if (!(bytes instanceof Uint8Array)) return `${from} gave bytes that are not a Uint8Array`;
    if (bytes.length < size) {
      return `${from} gave ${bytes.length} bytes for a 0x${hex(size)}-byte buffer`;
    }
  }
  const iomem: unknown = desc.iomem;
  if (iomem !== null) {
    if (
      typeof iomem !== "object" ||
      !("readBytes" in iomem) ||
      typeof iomem.readBytes !== "function"
    ) {
      return `${from} gave an iomem without a readBytes(offset, dest) method`;
    }
  }
  const iova: unknown = desc.iova;
  if (typeof iova !== "number" || !Number.isSafeInteger(iova) || iova < 0) {
    return `${from} gave iova ${describeValue(iova)}, not a whole non-negative number`;
  }
  if (desc.isMapped) return null;
  const limit = ep === C.EP_OSLOG ? OSLOG_IOVA_LIMIT : IOVA_LIMIT;
  if (iova >= limit)
    return `${from} gave iova 0x${hex(iova)}, too wide for the reply (below 0x${hex(limit)})`;
  if (ep === C.EP_OSLOG && iova % 0x1000 !== 0) {
    return `${from} gave iova 0x${hex(iova)}; an OSLog reply carries a 4 KiB-aligned address`;
  }
  return null;
}

/** apple_rtkit_common_rx_get_buffer for `slot`, from the request halves `hi`/`lo`. */
export function getBuffer(
  rtk: RtkitClient,
  slot: ShmemSlot,
  ep: number,
  hi: number,
  lo: number,
): void {
  let size: number;
  let iova: number;
  if (ep === C.EP_OSLOG) {
    size = (hi >>> 4) & OSLOG_SIZE_MAX;
    iova = field36(hi, lo) * 0x1000;
  } else {
    size = ((hi >>> 12) & 0xff) * 0x1000;
    iova = field44(hi, lo);
  }
  rtk.log("dbg", `RTKit: buffer request for 0x${hex(size)} bytes at 0x${hexPad(iova, 16)}`);
  const fail = (err: DevrefError): void => {
    rtk.log("err", `RTKit: failed buffer request for 0x${hex(size)} bytes (-${err.errno})`);
    rtk.log("dbg", `RTKit: ${slot.name} buffer request failed: ${err.message}`);
  };

  const live = slot.desc;
  if (live !== null) {
    // The kernel sets up a new buffer over the old one and leaks it. devref answers an
    // identical request with the live buffer again and refuses a different one.
    if (size === live.size && (iova === 0 || iova === live.iova)) {
      rtk.log(
        "warn",
        `RTKit: repeated ${slot.name} buffer request for 0x${hex(size)} bytes; answering with the live buffer`,
      );
      if (!live.isMapped) rtk.sendIgnoringResult(ep, replyFor(ep, live));
    } else {
      rtk.log(
        "err",
        `RTKit: ${slot.name} buffer request for 0x${hex(size)} bytes at 0x${hex(iova)} while 0x${hex(live.size)} bytes at 0x${hex(live.iova)} are live; refused (reinit() after a firmware restart)`,
      );
    }
    return;
  }
  if (size === 0) {
    fail(new DevrefError("EINVAL", `the ${slot.name} buffer request asks for 0 bytes`));
    return;
  }
  const { shmemSetup, shmemDestroy, dma } = rtk.cfg;
  if (iova !== 0 && (shmemSetup === null || shmemDestroy === null)) {
    fail(
      new DevrefError(
        "EINVAL",
        `the firmware brought its own ${slot.name} buffer at 0x${hex(iova)}; mapping it needs ops.shmemSetup and ops.shmemDestroy`,
      ),
    );
    return;
  }
  let desc: RtkitShmem;
  if (shmemSetup !== null) {
    // SAFETY: iova is the firmware's device address (a whole number below 2^48) or 0.
    desc = {
      size,
      iova: iova as DmaAddr,
      isMapped: false,
      bytes: null,
      iomem: null,
      private: undefined,
    };
    try {
      shmemSetup(desc);
    } catch (e) {
      fail(asDevrefError(e, "EINVAL", "ops.shmemSetup"));
      return;
    }
    const problem = problemWith(ep, size, desc, "ops.shmemSetup");
    if (problem !== null || rtk.freed) {
      if (shmemDestroy !== null) {
        try {
          shmemDestroy(desc);
        } catch (e) {
          rtk.callbackError("shmemDestroy", e);
        }
      }
      if (problem !== null) fail(new DevrefError("EINVAL", problem));
      return;
    }
  } else {
    if (dma === null) {
      fail(new DevrefError("ENOMEM", "no options.dma to allocate from and no ops.shmemSetup"));
      return;
    }
    let got: RtkitDmaBuffer | null;
    try {
      got = dma.alloc(size);
    } catch (e) {
      fail(asDevrefError(e, "ENOMEM", "options.dma.alloc"));
      return;
    }
    if (got === null || typeof got !== "object") {
      fail(new DevrefError("ENOMEM", `options.dma.alloc found no 0x${hex(size)} bytes`));
      return;
    }
    desc = {
      size,
      iova: got.iova,
      isMapped: false,
      bytes: got.bytes ?? null,
      iomem: got.iomem ?? null,
      private: undefined,
    };
    const problem =
      desc.bytes === null && desc.iomem === null
        ? "options.dma.alloc gave neither bytes nor iomem: the CPU needs one view of the buffer"
        : problemWith(ep, size, desc, "options.dma.alloc");
    if (problem !== null || rtk.freed) {
      if (Number.isSafeInteger(desc.iova)) {
        try {
          dma.free(desc.iova, size);
        } catch (e) {
          rtk.log("err", `RTKit: options.dma.free threw: ${String(e)}`);
        }
      }
      if (problem !== null) fail(new DevrefError("EINVAL", problem));
      return;
    }
    slot.viaDma = true;
  }
  slot.desc = desc;
  if (!desc.isMapped) rtk.sendIgnoringResult(ep, replyFor(ep, desc));
}

/** apple_rtkit_free_buffer: shmemDestroy if the driver has one, else back to options.dma. */
export function freeBuffer(rtk: RtkitClient, slot: ShmemSlot): void {
  const desc = slot.desc;
  if (desc === null) return;
  const viaDma = slot.viaDma;
  slot.desc = null;
  slot.viaDma = false;
  const { shmemDestroy, dma } = rtk.cfg;
  if (shmemDestroy !== null) {
    try {
      shmemDestroy(desc);
    } catch (e) {
      rtk.callbackError("shmemDestroy", e);
    }
  } else if (viaDma && dma !== null) {
    try {
      dma.free(desc.iova, desc.size);
    } catch (e) {
      rtk.log("err", `RTKit: options.dma.free threw: ${String(e)}`);
    }
  }
}

/**
 * Copies `dest.length` bytes at `offset` of `desc` into `dest`, from its `bytes` view or
 * through its `iomem` accessor (apple_rtkit_memcpy: memcpy or memcpy_fromio). False, with
 * the reason logged, when the buffer has no CPU view or the accessor fails.
 */
export function readShmem(
  rtk: RtkitClient,
  desc: RtkitShmem,
  offset: number,
  dest: Uint8Array,
): boolean {
  const bytes = desc.bytes;
  if (bytes !== null) {
    dest.set(bytes.subarray(offset, offset + dest.length));
    return true;
  }
  const iomem = desc.iomem;
  if (iomem === null) return false;
  try {
    iomem.readBytes(offset, dest);
    return true;
  } catch (e) {
    const why = e instanceof Error ? e.message : String(e);
    rtk.log("err", `RTKit: reading a shared buffer through its iomem failed: ${why}`);
    return false;
  }
}
