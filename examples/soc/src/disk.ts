//! The disk's part of the soc scenario: traffic through the DART, then a surprise removal
//! in the middle of I/O. Every completed write must be on the disk image afterwards.

import type { VirtioBlkDisk } from "@devref/example-virtio-blk";
import { describeException, type ScenarioException } from "@devref/sim";

const BLOCK = 512;

/** Bytes with a pattern that depends on `tag`. */
export function pattern(len: number, tag: number): Uint8Array {
  const a = new Uint8Array(len);
  for (let i = 0; i < len; i++) a[i] = (tag * 31 + i * 7) & 0xff;
  return a;
}

function equal(a: Uint8Array, b: Uint8Array): boolean {
  if (a.length !== b.length) return false;
  for (let i = 0; i < a.length; i++) if (a[i] !== b[i]) return false;
  return true;
}

/**
 * What the disk traffic saw, and what the disk must hold: the image as the completed writes
 * left it. A failed write may or may not have reached the disk (the device can fail after
 * moving the data), so its blocks are not checked until a later write completes.
 */
export class DiskLedger {
  /** Errno names of failed requests, before the planned removal. */
  readonly codes: Set<string> = new Set();
  /** The disk as the completed writes left it. */
  private readonly expected: Uint8Array;
  /** Blocks a failed write may have changed. */
  private readonly unknown: Set<number> = new Set();
  private readonly narrate: (line: string) => void;
  private readonly exceptions: ScenarioException[];
  /** While true, ENODEV is what the scenario itself asked for (the planned unplug). */
  planned = false;

  constructor(image: Uint8Array, narrate: (line: string) => void, exceptions: ScenarioException[]) {
    this.expected = image.slice();
    this.narrate = narrate;
    this.exceptions = exceptions;
  }

  /** Waits for one request; null when it failed (an errno other than ENODEV/EIO is a failure). */
  async request<T>(what: string, p: Promise<T>): Promise<T | null> {
    try {
      const v = await p;
      this.narrate(`  ${what}: done`);
      return v;
    } catch (e) {
      const x = describeException(e);
      if (!this.planned && x.code !== null) this.codes.add(x.code);
      this.narrate(`  ${what}: failed, ${x.code ?? "exception"}`);
      if (!x.devref || (x.code !== "ENODEV" && x.code !== "EIO")) {
        this.exceptions.push({
          devref: false,
          code: x.code,
          message: `${what} failed unexpectedly: ${x.message}`,
        });
      }
      return null;
    }
  }

  /** A write; what the disk must hold follows it when it completes. */
  async write(what: string, disk: VirtioBlkDisk, lba: number, data: Uint8Array): Promise<void> {
    const blocks = data.length / BLOCK;
    if ((await this.request(what, disk.write(lba, data))) !== null) {
      this.expected.set(data, lba * BLOCK);
      for (let b = lba; b < lba + blocks; b++) this.unknown.delete(b);
    } else {
      for (let b = lba; b < lba + blocks; b++) this.unknown.add(b);
    }
  }

  /** A read of `count` blocks that must return what the disk holds, when it completes. */
  async read(what: string, disk: VirtioBlkDisk, lba: number, count: number): Promise<void> {
    const got = await this.request(what, disk.read(lba, count));
    if (got !== null && !this.matches(got, lba)) {
      this.exceptions.push({ devref: false, code: null, message: `${what} returned wrong data` });
    }
  }

  /** Checks the disk image: every completed write is on it, nothing else changed. */
  checkImage(image: Uint8Array): void {
    if (!this.matches(image, 0)) {
      this.exceptions.push({
        devref: false,
        code: null,
        message:
          "the disk image is not what the completed writes left (a completed write was lost)",
      });
    }
  }

  /** Whether `bytes` (from block `lba` on) are what the disk must hold, blocks in doubt aside. */
  private matches(bytes: Uint8Array, lba: number): boolean {
    for (let i = 0; i < bytes.length / BLOCK; i++) {
      if (this.unknown.has(lba + i)) continue;
      const at = (lba + i) * BLOCK;
      const want = this.expected.subarray(at, at + BLOCK);
      if (!equal(bytes.subarray(i * BLOCK, (i + 1) * BLOCK), want)) return false;
    }
    return true;
  }
}
