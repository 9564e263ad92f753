//! C source: drivers/virtio/virtio_pci_modern_dev.c (vp_modern_probe, virtio_pci_find_capability,
//! vp_modern_get_status/set_status, vp_modern_get_features, vp_modern_queue_address,
//! vp_modern_map_vq_notify), drivers/virtio/virtio_pci_modern.c (setup_vq, vp_reset)
//! Rules: VIRTIO 1.2 §4.1.3–§4.1.5.
//!
//! The modern virtio-pci transport as a driver sees it: the vendor capabilities that say
//! where each structure lives, and register access to the common configuration, the
//! notification area, the ISR byte and the device-specific configuration.

import type { PciDevice } from "@devref/bus";
import type { Devres, MmioRegion } from "@devref/device-core";
import type { Bound } from "@devref/raw-device";
import { DevrefError } from "@devref/raw-device";
import { COMMON, PCI_CFG, VIRTIO_CAP, VIRTIO_MSI_NO_VECTOR, VIRTIO_PCI_CAP } from "./regs.js";

const TWO32 = 0x1_0000_0000;

/** Where one virtio structure lives: a BAR, an offset in it and a length (§4.1.4). */
export interface VirtioCap {
  readonly bar: number;
  readonly offset: number;
  readonly length: number;
}

/** The four structures this driver needs, as the capability list describes them. */
export interface VirtioPciCaps {
  readonly common: VirtioCap;
  readonly notify: VirtioCap & { readonly multiplier: number };
  readonly isr: VirtioCap;
  readonly device: VirtioCap;
}

/** Whether the function implements BAR `index` (a capability naming another is skipped). */
function hasBar(dev: PciDevice, index: number): boolean {
  if (index > 5) return false;
  try {
    dev.bar(index);
    return true;
  } catch (e) {
    if (DevrefError.is(e) && e.code === "ENXIO") return false;
    throw e;
  }
}

/**
 * Walks the capability list for the virtio structures (`virtio_pci_find_capability`): the
 * first capability of each type whose BAR exists, as the device lists them in order of
 * preference.
 *
 * **Errors:** `ENODEV` if the function is gone (config space reads all-ones), has no
 * capability list, or lacks a structure this driver needs (common, notify, ISR, device
 * configuration), or its common configuration is shorter than 56 bytes.
 *
 * @example
 * ```ts
 * const caps = findVirtioCaps(dev); // { common: { bar: 4, offset: 0, length: 64 }, ... }
 * ```
 */
export function findVirtioCaps(dev: PciDevice): VirtioPciCaps {
  if (dev.configRead(PCI_CFG.VENDOR_ID, 2) === 0xffff) {
    throw new DevrefError(
      "ENODEV",
      `virtio-pci ${dev.name}: the function is gone (vendor id reads 0xffff)`,
    );
  }
  if ((dev.configRead(PCI_CFG.STATUS, 2) & PCI_CFG.STATUS_CAP_LIST) === 0) {
    throw new DevrefError(
      "ENODEV",
      `virtio-pci ${dev.name}: no capability list; not a modern virtio device`,
    );
  }
  const found = new Map<number, VirtioCap & { readonly multiplier: number }>();
  let at = dev.configRead(PCI_CFG.CAPABILITY_LIST, 1) & 0xfc;
  for (let n = 0; at !== 0 && n < PCI_CFG.CAP_WALK_LIMIT; n++) {
    if (dev.configRead(at, 1) === PCI_CFG.CAP_ID_VNDR) {
      const type = dev.configRead(at + VIRTIO_CAP.CFG_TYPE, 1);
      const bar = dev.configRead(at + VIRTIO_CAP.BAR, 1);
      if (!found.has(type) && hasBar(dev, bar)) {
        const multiplier =
          type === VIRTIO_PCI_CAP.NOTIFY_CFG
            ? dev.configRead(at + VIRTIO_CAP.NOTIFY_OFF_MULTIPLIER, 4)
            : 0;
        found.set(type, {
          bar,
          offset: dev.configRead(at + VIRTIO_CAP.OFFSET, 4),
          length: dev.configRead(at + VIRTIO_CAP.LENGTH, 4),
          multiplier,
        });
      }
    }
    at = dev.configRead(at + 1, 1) & 0xfc;
  }
  const need = (type: number, what: string): VirtioCap & { readonly multiplier: number } => {
    const cap = found.get(type);
    if (cap === undefined) {
      throw new DevrefError(
        "ENODEV",
        `virtio-pci ${dev.name}: no ${what} capability; the device cannot be driven`,
      );
    }
    return cap;
  };
  const common = need(VIRTIO_PCI_CAP.COMMON_CFG, "common configuration");
  if (common.length < COMMON.MIN_LENGTH) {
    throw new DevrefError(
      "ENODEV",
      `virtio-pci ${dev.name}: common configuration is ${common.length} bytes, fewer than ${COMMON.MIN_LENGTH}`,
    );
  }
  return {
    common,
    notify: need(VIRTIO_PCI_CAP.NOTIFY_CFG, "notification"),
    isr: need(VIRTIO_PCI_CAP.ISR_CFG, "ISR"),
    device: need(VIRTIO_PCI_CAP.DEVICE_CFG, "device configuration"),
  };
}

/** The device-side addresses of one virtqueue's three parts. */
export interface QueueAddresses {
  readonly desc: number;
  readonly driver: number;
  readonly device: number;
}

/**
 * Register access to a modern virtio-pci function through its mapped BARs. Every method
 * takes a Bound borrow of the device: the BAR mappings are the binding's.
 *
 * **Invariants:** each BAR is mapped once for the binding; reads of a removed function
 * return all-ones, which {@link status} reports as `0xff` and callers treat as "gone".
 *
 * **Errors:** methods throw `ENODEV` on a revoked borrow; queue setup throws as documented.
 *
 * @example
 * ```ts
 * const t = new VirtioPciTransport(dev, findVirtioCaps(dev));
 * t.reset(dev); // true once device_status reads 0
 * ```
 */
export class VirtioPciTransport {
  readonly caps: VirtioPciCaps;
  private readonly commonRes: Devres<MmioRegion>;
  private readonly notifyRes: Devres<MmioRegion>;
  private readonly isrRes: Devres<MmioRegion>;
  private readonly deviceRes: Devres<MmioRegion>;
  private readonly c: number;

  /**
   * Maps the BARs the structures live in, for the current binding (`pcim_iomap`).
   *
   * **Errors:** as `PciDevice.iomapBar`.
   */
  constructor(dev: PciDevice<Bound>, caps: VirtioPciCaps) {
    this.caps = caps;
    const mapped = new Map<number, Devres<MmioRegion>>();
    const map = (cap: VirtioCap): Devres<MmioRegion> => {
      let res = mapped.get(cap.bar);
      if (res === undefined) {
        res = dev.iomapBar(cap.bar, { owner: "virtio-pci" });
        mapped.set(cap.bar, res);
      }
      return res;
    };
    this.commonRes = map(caps.common);
    this.notifyRes = map(caps.notify);
    this.isrRes = map(caps.isr);
    this.deviceRes = map(caps.device);
    this.c = caps.common.offset;
  }

  /** `device_status`; `0xff` means the device is gone (a removed function reads all-ones). */
  status(d: PciDevice<Bound>): number {
    return this.commonRes.access(d).read8(this.c + COMMON.DEVICE_STATUS);
  }

  /** Adds `bits` to `device_status` (the driver never clears a bit except by reset). */
  addStatus(d: PciDevice<Bound>, bits: number): void {
    const r = this.commonRes.access(d);
    const old = r.read8(this.c + COMMON.DEVICE_STATUS);
    r.write8(this.c + COMMON.DEVICE_STATUS, (old | bits) & 0xff);
  }

  /**
   * Writes 0 to `device_status` (reset) and says whether it already reads 0. A device that
   * takes time is polled by the caller, on a clock, with a bound.
   *
   * **Errors:** `ENODEV` if the device is gone.
   */
  reset(d: PciDevice<Bound>): boolean {
    const r = this.commonRes.access(d);
    r.write8(this.c + COMMON.DEVICE_STATUS, 0);
    return this.resetDone(d);
  }

  /**
   * Whether a reset has finished (`device_status` reads 0).
   *
   * **Errors:** `ENODEV` if the device is gone (`0xff`).
   */
  resetDone(d: PciDevice<Bound>): boolean {
    const s = this.status(d);
    if (s === 0xff) throw gone(d);
    return s === 0;
  }

  /** The 64 device feature bits as [bits 0..31, bits 32..63]. */
  deviceFeatures(d: PciDevice<Bound>): [number, number] {
    const r = this.commonRes.access(d);
    r.write32(this.c + COMMON.DEVICE_FEATURE_SELECT, 0);
    const lo = r.read32(this.c + COMMON.DEVICE_FEATURE);
    r.write32(this.c + COMMON.DEVICE_FEATURE_SELECT, 1);
    const hi = r.read32(this.c + COMMON.DEVICE_FEATURE);
    return [lo, hi];
  }

  /** Writes the accepted feature bits (select 0, then 1). */
  writeDriverFeatures(d: PciDevice<Bound>, lo: number, hi: number): void {
    const r = this.commonRes.access(d);
    r.write32(this.c + COMMON.DRIVER_FEATURE_SELECT, 0);
    r.write32(this.c + COMMON.DRIVER_FEATURE, lo >>> 0);
    r.write32(this.c + COMMON.DRIVER_FEATURE_SELECT, 1);
    r.write32(this.c + COMMON.DRIVER_FEATURE, hi >>> 0);
  }

  /** `num_queues`. */
  numQueues(d: PciDevice<Bound>): number {
    return this.commonRes.access(d).read16(this.c + COMMON.NUM_QUEUES);
  }

  /** `config_generation`. */
  configGeneration(d: PciDevice<Bound>): number {
    return this.commonRes.access(d).read8(this.c + COMMON.CONFIG_GENERATION);
  }

  /**
   * Routes configuration-change interrupts to MSI-X vector `vector` (or none, with
   * `VIRTIO_MSI_NO_VECTOR`) and reads it back (`vp_modern_config_vector`).
   *
   * **Errors:** `EBUSY` if the device could not map the vector.
   */
  setConfigVector(d: PciDevice<Bound>, vector: number): void {
    const r = this.commonRes.access(d);
    r.write16(this.c + COMMON.CONFIG_MSIX_VECTOR, vector);
    if (
      vector !== VIRTIO_MSI_NO_VECTOR &&
      r.read16(this.c + COMMON.CONFIG_MSIX_VECTOR) !== vector
    ) {
      throw new DevrefError(
        "EBUSY",
        `virtio-pci ${d.name}: the device did not take MSI-X vector ${vector} for configuration changes`,
      );
    }
  }

  /**
   * The largest size of queue `index` (`queue_size` after selecting it), as `setup_vq`
   * checks it.
   *
   * **Errors:** `ENOENT` if the queue does not exist or is already enabled; `EINVAL` if its
   * size is not a power of two.
   */
  queueMaxSize(d: PciDevice<Bound>, index: number): number {
    const r = this.commonRes.access(d);
    if (index >= r.read16(this.c + COMMON.NUM_QUEUES)) {
      throw new DevrefError("ENOENT", `virtio-pci ${d.name}: queue ${index} does not exist`);
    }
    r.write16(this.c + COMMON.QUEUE_SELECT, index);
    const size = r.read16(this.c + COMMON.QUEUE_SIZE);
    if (size === 0 || r.read16(this.c + COMMON.QUEUE_ENABLE) !== 0) {
      throw new DevrefError(
        "ENOENT",
        `virtio-pci ${d.name}: queue ${index} is unavailable (size ${size})`,
      );
    }
    if ((size & (size - 1)) !== 0) {
      throw new DevrefError(
        "EINVAL",
        `virtio-pci ${d.name}: queue ${index} size ${size} is not a power of two`,
      );
    }
    return size;
  }

  /**
   * Programs queue `index` (selected by {@link queueMaxSize}) with `size` entries at
   * `addr`, routes its interrupt to `vector`, and returns the offset of its notification
   * register in the notify structure's BAR.
   *
   * **Errors:** `EINVAL` if the notification address lies outside the notify structure;
   * `EBUSY` if the device did not take the MSI-X vector.
   */
  setupQueue(
    d: PciDevice<Bound>,
    index: number,
    size: number,
    addr: QueueAddresses,
    vector: number,
  ): number {
    const r = this.commonRes.access(d);
    const c = this.c;
    r.write16(c + COMMON.QUEUE_SELECT, index);
    const noff = r.read16(c + COMMON.QUEUE_NOTIFY_OFF);
    const n = this.caps.notify;
    const at = noff * n.multiplier;
    if (at + 2 > n.length) {
      throw new DevrefError(
        "EINVAL",
        `virtio-pci ${d.name}: queue ${index} notifies at ${at}, outside the ${n.length}-byte notify structure`,
      );
    }
    r.write16(c + COMMON.QUEUE_SIZE, size);
    write64(r, c + COMMON.QUEUE_DESC, addr.desc);
    write64(r, c + COMMON.QUEUE_DRIVER, addr.driver);
    write64(r, c + COMMON.QUEUE_DEVICE, addr.device);
    r.write16(c + COMMON.QUEUE_MSIX_VECTOR, vector);
    if (vector !== VIRTIO_MSI_NO_VECTOR && r.read16(c + COMMON.QUEUE_MSIX_VECTOR) !== vector) {
      throw new DevrefError(
        "EBUSY",
        `virtio-pci ${d.name}: the device did not take MSI-X vector ${vector} for queue ${index}`,
      );
    }
    return n.offset + at;
  }

  /** `queue_enable = 1` for queue `index`, after every queue was set up (as Linux does). */
  enableQueue(d: PciDevice<Bound>, index: number): void {
    const r = this.commonRes.access(d);
    r.write16(this.c + COMMON.QUEUE_SELECT, index);
    r.write16(this.c + COMMON.QUEUE_ENABLE, 1);
  }

  /** Notifies the device that queue `index` has new buffers (a 16-bit write of the index). */
  notify(d: PciDevice<Bound>, notifyAt: number, index: number): void {
    this.notifyRes.access(d).write16(notifyAt, index);
  }

  /** Reads (and so clears) the ISR byte; all-ones when the device is gone. */
  readIsr(d: PciDevice<Bound>): number {
    return this.isrRes.access(d).read8(this.caps.isr.offset);
  }

  /** Reads `width` bytes of device-specific configuration at `offset`. */
  readConfig(d: PciDevice<Bound>, offset: number, width: 1 | 2 | 4): number {
    const r = this.deviceRes.access(d);
    const at = this.caps.device.offset + offset;
    return width === 1 ? r.read8(at) : width === 2 ? r.read16(at) : r.read32(at);
  }

  /** Reads a 64-bit configuration field as a number (two 32-bit halves, low first). */
  readConfig64(d: PciDevice<Bound>, offset: number): number {
    const lo = this.readConfig(d, offset, 4);
    const hi = this.readConfig(d, offset + 4, 4);
    return hi * TWO32 + lo;
  }

  /** Whether device-specific configuration offset `offset` + `width` lies inside the structure. */
  hasConfig(offset: number, width: number): boolean {
    return offset + width <= this.caps.device.length;
  }
}

function write64(r: MmioRegion, at: number, value: number): void {
  r.write32(at, value % TWO32);
  r.write32(at + 4, Math.floor(value / TWO32));
}

/** The error of a device that answers all-ones. */
export function gone(d: PciDevice): DevrefError {
  return new DevrefError(
    "ENODEV",
    `virtio-pci ${d.name}: the device is gone (registers read all-ones)`,
  );
}
