// The argument kinds of the DMA API, checked with raw-device's shared checkers: a device
// handle, a mapping direction, DMA_ATTR_* bits. Each throws EINVAL before any state changes.

import { Device } from "@devref/device-core";
import {
  argumentError,
  checkAddress,
  checkInteger,
  DevrefError,
  type DmaAddr,
  formatAddr,
} from "@devref/raw-device";
import { DMA_ATTR_KNOWN, DMA_MAPPING_ERROR, type DmaDirection } from "../constants.js";

/**
 * A device handle (owned or borrowed); a revoked one fails later with ENODEV. The test is
 * checkInstance's, written out: on the map and unmap paths a shared `instanceof` site that
 * sees many classes costs about 15 ns, this one under 1 ns.
 */
export function checkDevice(where: string, dev: unknown): Device {
  if (!(dev instanceof Device)) throw argumentError(where, "dev", "a Device", dev);
  return dev;
}

/**
 * A direction a mapping may use: DMA_BIDIRECTIONAL (0), DMA_TO_DEVICE (1) or
 * DMA_FROM_DEVICE (2). DMA_NONE is for debugging only; mapping with it is a kernel BUG().
 */
export function checkMapDirection(where: string, dir: unknown): DmaDirection {
  if (dir !== 0 && dir !== 1 && dir !== 2) {
    throw argumentError(
      where,
      "dir",
      "DMA_TO_DEVICE, DMA_FROM_DEVICE or DMA_BIDIRECTIONAL (DMA_NONE is for debugging only; the kernel BUG()s on it)",
      dir,
    );
  }
  return dir;
}

/** `DMA_ATTR_*` bits this package knows (a whole number, no unknown bit). */
export function checkAttrs(where: string, attrs: unknown): number {
  if (attrs === 0) return 0;
  const a = checkInteger(where, "attrs", attrs, 0, DMA_ATTR_KNOWN);
  if ((a & ~DMA_ATTR_KNOWN) !== 0) {
    throw argumentError(where, "attrs", "a combination of known DMA_ATTR_* bits", attrs);
  }
  return a;
}

/**
 * Whether `x` is a whole number in `[min, max]`: the test raw-device's checkers make, for
 * hot paths to call the shared checker only when it will throw (each checker call costs
 * a few ns, and a map + unmap makes half a dozen of them).
 */
export function isWhole(x: unknown, min: number, max: number): boolean {
  return typeof x === "number" && x >= min && x <= max && Math.floor(x) === x;
}

/** One past the largest DMA address a `number` holds exactly. */
export const DMA_ADDR_LIMIT: number = Number.MAX_SAFE_INTEGER + 1;

/**
 * A DMA address a driver hands back (unmap, sync): a whole number below 2^53. The
 * `DMA_MAPPING_ERROR` sentinel gets dma-debug's words, since using it is the classic bug of
 * not checking `dma_mapping_error`.
 */
export function checkDmaHandle(
  where: string,
  device: string,
  what: string,
  addr: unknown,
): DmaAddr {
  if (addr === DMA_MAPPING_ERROR) {
    throw new DevrefError(
      "EINVAL",
      `DMA-API: ${device}: device driver tries to ${what} DMA memory it has not allocated ` +
        "[device address=DMA_MAPPING_ERROR]: the map call failed; check dmaMappingError() before using its result",
    );
  }
  // SAFETY: checkAddress returns a whole number in [0, 2^53), which is what a DmaAddr holds.
  return checkAddress(where, "addr", addr, DMA_ADDR_LIMIT) as DmaAddr;
}

/** For messages: an address that may be anything. */
export function showAddr(addr: number): string {
  return Number.isSafeInteger(addr) && addr >= 0 ? formatAddr(addr, 1) : String(addr);
}
