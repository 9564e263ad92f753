//! C source: drivers/virtio/virtio.c (virtio_dev_probe, virtio_features_ok),
//! drivers/virtio/virtio_pci_modern.c (vp_reset, vp_finalize_features),
//! drivers/block/virtio_blk.c (virtblk_probe: the configuration it reads)
//! Rules: VIRTIO 1.2 §3.1.1 (driver initialisation), §5.2.4–§5.2.5.
//!
//! The steps of bringing a virtio-blk function up that the probe and a reset share:
//! waiting for a reset on a clock with a bound, the status handshake with feature
//! negotiation, and the device configuration.

import type { PciDevice } from "@devref/bus";
import type { Bound } from "@devref/raw-device";
import { DevrefError } from "@devref/raw-device";
import { BLK_CFG, FEATURE, SECTOR_SIZE, STATUS } from "./regs.js";
import type { VirtioPciTransport } from "./transport.js";

/**
 * Virtual-time timers the driver waits on: the shape of the simulator's `soc.events` (or of
 * `globalThis`'s `setTimeout`/`clearTimeout` on real time), in milliseconds.
 *
 * **Invariants:** a cleared timer never fires; a timer fires once.
 *
 * @example
 * ```ts
 * const vblk = new VirtioBlkDriver({ timers: soc.events });
 * ```
 */
export interface DriverTimers {
  setTimeout(fn: () => void, ms: number): unknown;
  clearTimeout(handle: unknown): void;
}

/** Milliseconds between polls of a device that is still resetting, and how many polls. */
export const RESET_POLL_MS = 1;
export const RESET_POLL_LIMIT = 1000;

/**
 * Resets the device and waits until `device_status` reads 0, polling every millisecond
 * on `timers` for at most a second (Linux's `vp_reset` polls without a bound; a device that
 * never finishes must not hang the driver). For the probe, which may await; a reset after
 * probe polls from timer callbacks instead (see the disk's recovery).
 *
 * **Errors:** `ENODEV` if the device is gone (its status reads all-ones) or the borrow was
 * revoked meanwhile; `ETIMEDOUT` if the reset does not finish.
 */
export async function waitForReset(
  d: PciDevice<Bound>,
  t: VirtioPciTransport,
  timers: DriverTimers,
): Promise<void> {
  if (t.reset(d)) return;
  for (let i = 0; i < RESET_POLL_LIMIT; i++) {
    await new Promise<void>((resolve) => {
      timers.setTimeout(resolve, RESET_POLL_MS);
    });
    if (t.resetDone(d)) return;
  }
  throw new DevrefError(
    "ETIMEDOUT",
    `virtio-pci ${d.name}: device_status did not read 0 within ${RESET_POLL_LIMIT * RESET_POLL_MS} ms of a reset`,
  );
}

/**
 * Feature bits this driver accepts when offered, as [bits 0..31, bits 32..63] (§5.2.3, §6):
 * `SIZE_MAX`, `SEG_MAX`, `RO`, `BLK_SIZE`, `FLUSH`, `EVENT_IDX`, `VERSION_1`,
 * `ACCESS_PLATFORM`.
 *
 * @example
 * ```ts
 * const negotiated = (offered[1] & DRIVER_FEATURES[1]) >>> 0; // VERSION_1 | ACCESS_PLATFORM
 * ```
 */
export const DRIVER_FEATURES: readonly [number, number] = [
  ((1 << FEATURE.BLK_SIZE_MAX) |
    (1 << FEATURE.BLK_SEG_MAX) |
    (1 << FEATURE.BLK_RO) |
    (1 << FEATURE.BLK_BLK_SIZE) |
    (1 << FEATURE.BLK_FLUSH) |
    (1 << FEATURE.EVENT_IDX)) >>>
    0,
  ((1 << (FEATURE.VERSION_1 - 32)) | (1 << (FEATURE.ACCESS_PLATFORM - 32))) >>> 0,
];

/**
 * `DRIVER`, then feature negotiation (virtio_dev_probe + vp_finalize_features): reads the
 * device's 64 bits, keeps the ones in {@link DRIVER_FEATURES}, requires `VERSION_1`, and
 * `ACCESS_PLATFORM` when the function's DMA goes through an IOMMU; writes them, sets
 * `FEATURES_OK` and checks that the device kept it. The device must have been reset and
 * acknowledged.
 *
 * **Errors:** `ENODEV` if the device is gone, lacks `ACCESS_PLATFORM` behind an IOMMU, or
 * refuses the features; `EINVAL` without `VERSION_1` (a legacy device).
 */
export function negotiate(
  d: PciDevice<Bound>,
  t: VirtioPciTransport,
  behindIommu: boolean,
): [number, number] {
  t.addStatus(d, STATUS.DRIVER);
  const [lo, hi] = t.deviceFeatures(d);
  if (t.status(d) === 0xff) {
    throw new DevrefError(
      "ENODEV",
      `virtio-pci ${d.name}: the device went away during negotiation`,
    );
  }
  if ((hi & (1 << (FEATURE.VERSION_1 - 32))) === 0) {
    throw new DevrefError(
      "EINVAL",
      `virtio-pci ${d.name}: the device does not offer VIRTIO_F_VERSION_1; legacy devices are not driven`,
    );
  }
  const ap = 1 << (FEATURE.ACCESS_PLATFORM - 32);
  if (behindIommu && (hi & ap) === 0) {
    throw new DevrefError(
      "ENODEV",
      `virtio-pci ${d.name}: its DMA goes through an IOMMU but it does not offer VIRTIO_F_ACCESS_PLATFORM, so the addresses it would use are wrong`,
    );
  }
  const accept: [number, number] = [
    (lo & DRIVER_FEATURES[0]!) >>> 0,
    (hi & DRIVER_FEATURES[1]!) >>> 0,
  ];
  t.writeDriverFeatures(d, accept[0], accept[1]);
  t.addStatus(d, STATUS.FEATURES_OK);
  if ((t.status(d) & STATUS.FEATURES_OK) === 0 || t.status(d) === 0xff) {
    throw new DevrefError(
      "ENODEV",
      `virtio-pci ${d.name}: the device refuses features 0x${accept[1].toString(16)}_${accept[0].toString(16).padStart(8, "0")}`,
    );
  }
  return accept;
}

/** What the driver takes from `struct virtio_blk_config`. */
export interface BlkGeometry {
  /** 512-byte sectors. */
  readonly capacitySectors: number;
  /** Logical block size (512 unless `BLK_SIZE`). */
  readonly blockSize: number;
  /** Data segments per request (`seg_max`, or 1). */
  readonly segMax: number;
  /** Bytes per segment at most (`size_max`, or 0 for no limit). */
  readonly sizeMax: number;
}

const GENERATION_TRIES = 16;

/**
 * Reads the device configuration under `config_generation` (a read that straddles a
 * change is repeated), as `virtblk_probe` uses it.
 *
 * **Errors:** `ENODEV` if the device is gone or its block size is not a power of two in
 * [512, 65536], or the configuration keeps changing.
 */
export function readGeometry(
  d: PciDevice<Bound>,
  t: VirtioPciTransport,
  features: readonly [number, number],
): BlkGeometry {
  const has = (bit: number): boolean => ((features[0]! >>> bit) & 1) === 1;
  for (let i = 0; i < GENERATION_TRIES; i++) {
    const gen = t.configGeneration(d);
    const capacitySectors = t.readConfig64(d, BLK_CFG.CAPACITY);
    const blockSize =
      has(FEATURE.BLK_BLK_SIZE) && t.hasConfig(BLK_CFG.BLK_SIZE, 4)
        ? t.readConfig(d, BLK_CFG.BLK_SIZE, 4)
        : SECTOR_SIZE;
    const seg = has(FEATURE.BLK_SEG_MAX) ? t.readConfig(d, BLK_CFG.SEG_MAX, 4) : 1;
    const sizeMax = has(FEATURE.BLK_SIZE_MAX) ? t.readConfig(d, BLK_CFG.SIZE_MAX, 4) : 0;
    if (t.configGeneration(d) !== gen) continue;
    if (t.status(d) === 0xff || capacitySectors >= 2 ** 53) {
      throw new DevrefError(
        "ENODEV",
        `virtio-blk ${d.name}: the device is gone (configuration reads all-ones)`,
      );
    }
    if (blockSize < 512 || blockSize > 65536 || (blockSize & (blockSize - 1)) !== 0) {
      throw new DevrefError("ENODEV", `virtio-blk ${d.name}: invalid block size ${blockSize}`);
    }
    return {
      capacitySectors,
      blockSize,
      segMax: seg === 0 ? 1 : Math.min(seg, 32766),
      sizeMax,
    };
  }
  throw new DevrefError(
    "ENODEV",
    `virtio-blk ${d.name}: the configuration kept changing while read`,
  );
}
