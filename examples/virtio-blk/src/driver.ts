//! C source: drivers/virtio/virtio_pci_common.c (virtio_pci_probe, vp_find_vqs_msix,
//! vp_find_vqs_intx, virtio_pci_remove), drivers/block/virtio_blk.c (virtblk_probe,
//! init_vq, virtblk_remove)
//!
//! The virtio-blk PCI driver: probe brings a modern virtio-pci function up (capabilities,
//! reset, handshake, features, configuration, one request queue in coherent DMA, data pages,
//! MSI-X or INTx) and publishes the disk; remove takes it down whether or not the hardware
//! still answers.

import { definePciDriver, type PciDevice, type PciDriver } from "@devref/bus";
import { devErrProbe, devInfo } from "@devref/device-core";
import {
  type DmaSystem,
  dmaAllocCoherent,
  dmaSetMaskAndCoherent,
  dmaStateOf,
} from "@devref/dma-iommu";
import type { Core, PhysAddr, Static } from "@devref/raw-device";
import {
  checkCallback,
  checkCount,
  checkObject,
  checkOneOf,
  checkString,
  DevrefError,
} from "@devref/raw-device";
import { type DiskSetup, VirtioBlkDisk, type VirtioBlkIrqMode } from "./disk.js";
import { BlkQueue } from "./internal/queue.js";
import {
  FEATURE,
  STATUS,
  VIRTIO_MSI_NO_VECTOR,
  VIRTIO_PCI_DEVICE_BLK,
  VIRTIO_PCI_VENDOR,
} from "./internal/regs.js";
import { PAGE_SIZE, Slot } from "./internal/request.js";
import { type DriverTimers, negotiate, readGeometry, waitForReset } from "./internal/setup.js";
import { findVirtioCaps, VirtioPciTransport } from "./internal/transport.js";
import { align, ringLayout, SplitRing } from "./internal/virtqueue.js";

/** How a {@link VirtioBlkDriver} drives its disks. Only `timers` is required. */
export interface VirtioBlkDriverOptions {
  /** Virtual-time timers for bounded waits (device resets): the simulator's `soc.events`. */
  readonly timers: DriverTimers;
  /** The driver's name on the PCI bus (default `virtio_blk`). */
  readonly name?: string;
  /** Requests in flight at most, per disk (default 4, 1..64). */
  readonly queueDepth?: number;
  /** Ring entries at most (a power of two, default 128; the device may offer fewer). */
  readonly ringSize?: number;
  /** Bytes per request at most, a multiple of 4096 (default 65536); larger calls are split. */
  readonly maxTransfer?: number;
  /** `msix` (default: MSI-X, INTx if the function has too few vectors) or `intx` (as `pci=nomsi`). */
  readonly irq?: VirtioBlkIrqMode;
}

const MAX_DEPTH = 64;

/**
 * The virtio-blk driver (Linux `virtio_blk` over `virtio_pci`, modern transport only) and
 * the disks it has bound: one object per use, so two machines (or two tests) never share
 * one.
 *
 * **Invariants:** a disk is listed exactly while its function is bound to this driver.
 *
 * **Errors:** the constructor throws `EINVAL` for bad options; {@link disk} throws `ENODEV`
 * for a function that is not bound.
 *
 * @example
 * ```ts
 * const vblk = new VirtioBlkDriver({ timers: soc.events });
 * pci.registerDriver(vblk.driver);
 * using fw = describeSoc(soc, { platform, pci });
 * await soc.settle();
 * const disk = vblk.disk("0000:00:00.0");
 * ```
 */
export class VirtioBlkDriver {
  /** The PCI driver definition to register on a bus. */
  readonly driver: Static<PciDriver<VirtioBlkDisk>>;
  readonly queueDepth: number;
  readonly ringSize: number;
  readonly maxTransfer: number;
  readonly irq: VirtioBlkIrqMode;
  private readonly timers: DriverTimers;
  private readonly bound = new Map<string, VirtioBlkDisk>();

  constructor(options: VirtioBlkDriverOptions) {
    const w = "new VirtioBlkDriver";
    checkObject(w, "options", options);
    checkObject(w, "options.timers", options.timers);
    checkCallback(w, "options.timers.setTimeout", options.timers.setTimeout);
    checkCallback(w, "options.timers.clearTimeout", options.timers.clearTimeout);
    const name = checkString(w, "options.name", options.name ?? "virtio_blk", true);
    this.queueDepth = checkCount(w, "options.queueDepth", options.queueDepth ?? 4, 1, MAX_DEPTH);
    const ring = checkCount(w, "options.ringSize", options.ringSize ?? 128, 4, 32768);
    if ((ring & (ring - 1)) !== 0) {
      throw new DevrefError("EINVAL", `${w}: options.ringSize must be a power of two, not ${ring}`);
    }
    this.ringSize = ring;
    const max = checkCount(
      w,
      "options.maxTransfer",
      options.maxTransfer ?? 65536,
      PAGE_SIZE,
      1 << 24,
    );
    if (max % PAGE_SIZE !== 0) {
      throw new DevrefError(
        "EINVAL",
        `${w}: options.maxTransfer must be a multiple of ${PAGE_SIZE}, not ${max}`,
      );
    }
    this.maxTransfer = max;
    this.irq = checkOneOf(w, "options.irq", options.irq ?? "msix", ["msix", "intx"] as const);
    this.timers = options.timers;
    this.driver = definePciDriver<VirtioBlkDisk>({
      name,
      idTable: [{ vendor: VIRTIO_PCI_VENDOR, device: VIRTIO_PCI_DEVICE_BLK }],
      probe: (dev) => this.probe(dev),
      remove: (dev, disk) => disk.shutdown(dev),
    });
  }

  /**
   * The disk of bound function `name`.
   *
   * **Errors:** `ENODEV` if no such function is bound to this driver.
   */
  disk(name: string): VirtioBlkDisk {
    checkString("VirtioBlkDriver.disk", "name", name);
    const d = this.bound.get(name);
    if (d === undefined) {
      throw new DevrefError(
        "ENODEV",
        `virtio-blk: no disk '${name}' is bound (bound: ${[...this.bound.keys()].join(", ") || "none"})`,
      );
    }
    return d;
  }

  /** Names of the bound disks, in bind order. */
  diskNames(): string[] {
    return [...this.bound.keys()];
  }

  private async probe(dev: PciDevice<Core>): Promise<VirtioBlkDisk> {
    dev.enableDevice();
    dev.setMaster();
    const system = dmaStateOf(dev)?.system;
    if (system === undefined) {
      throw devErrProbe(
        dev,
        "ENODEV",
        "virtio-blk: the machine has no DMA layer; create a DmaSystem({ machine }) first",
      );
    }
    const caps = findVirtioCaps(dev);
    const t = new VirtioPciTransport(dev, caps);
    // vp_modern_probe: 64-bit DMA, else 32.
    try {
      dmaSetMaskAndCoherent(dev, 64);
    } catch (e) {
      if (!DevrefError.is(e, "EIO")) throw e;
      dmaSetMaskAndCoherent(dev, 32);
    }
    try {
      await waitForReset(dev, t, this.timers);
    } catch (e) {
      const err = asError(e);
      throw devErrProbe(dev, err, `virtio-blk: the device did not reset: ${reason(err)}`);
    }
    t.addStatus(dev, STATUS.ACKNOWLEDGE);
    try {
      return this.bringUp(dev, t, system);
    } catch (e) {
      // virtio_dev_probe: a driver that gives up says so.
      if (t.status(dev) !== 0xff) t.addStatus(dev, STATUS.FAILED);
      const err = asError(e);
      throw devErrProbe(dev, err, `virtio-blk: probe failed: ${reason(err)}`);
    }
  }

  private bringUp(dev: PciDevice<Core>, t: VirtioPciTransport, system: DmaSystem): VirtioBlkDisk {
    const behindIommu = dev.firmware.iommus.length > 0;
    const features = negotiate(dev, t, behindIommu);
    const geo = readGeometry(dev, t, features);
    const ringSize = Math.min(t.queueMaxSize(dev, 0), this.ringSize);
    // Each slot owns a block of descriptors: header, data, status.
    const depth = Math.max(1, Math.min(this.queueDepth, Math.floor(ringSize / 3)));
    const descPerSlot = Math.floor(ringSize / depth);
    if (descPerSlot < 3) {
      throw new DevrefError(
        "ENODEV",
        `virtio-blk ${dev.name}: a ring of ${ringSize} cannot hold a request`,
      );
    }
    const segLimit = geo.sizeMax > 0 ? geo.sizeMax : 0x8000_0000;
    const dataDescs = Math.min(descPerSlot - 2, geo.segMax);
    const pages = Math.min(
      this.maxTransfer / PAGE_SIZE,
      Math.floor(dataDescs / Math.ceil(PAGE_SIZE / segLimit)),
    );
    if (pages < 1 || geo.blockSize > pages * PAGE_SIZE) {
      throw new DevrefError(
        "ENODEV",
        `virtio-blk ${dev.name}: seg_max ${geo.segMax}, size_max ${geo.sizeMax} and block size ${geo.blockSize} leave no room for a request`,
      );
    }
    const layout = ringLayout(0, ringSize);
    const hdrBase = align(layout.bytes, 16);
    const statusBase = hdrBase + 16 * depth;
    const mem = dmaAllocCoherent(dev, statusBase + depth);
    const ring = new SplitRing(mem, layout, ((features[0] >>> FEATURE.EVENT_IDX) & 1) === 1);
    const owned: PhysAddr[] = [];
    dev.devmAddAction(() => {
      for (const pa of owned.splice(0)) system.freeBuffer(pa, PAGE_SIZE);
    }, "virtio-blk data pages");
    const slots: Slot[] = [];
    for (let s = 0; s < depth; s++) {
      const list: PhysAddr[] = [];
      for (let p = 0; p < pages; p++) {
        const pa = system.allocBuffer(PAGE_SIZE);
        owned.push(pa);
        list.push(pa);
      }
      slots.push(new Slot(s, s * descPerSlot, list, dataDescs));
    }
    const vectors = this.irq === "msix" ? allocVectors(dev) : 0;
    const msix = vectors === 2;
    const queue = new BlkQueue(dev.name, {
      transport: t,
      memory: system.memory,
      mem,
      ring,
      slots,
      descPerSlot,
      hdrBase,
      statusBase,
      segLimit,
      configVector: msix ? 0 : VIRTIO_MSI_NO_VECTOR,
      queueVector: msix ? 1 : VIRTIO_MSI_NO_VECTOR,
    });
    queue.program(dev);
    const setup: DiskSetup = {
      queue: queue.setup,
      timers: this.timers,
      features,
      behindIommu,
      capacitySectors: geo.capacitySectors,
      blockSize: geo.blockSize,
      maxTransfer: pages * PAGE_SIZE,
      irqMode: msix ? "msix" : "intx",
      onDetach: (disk) => {
        if (this.bound.get(disk.name) === disk) this.bound.delete(disk.name);
      },
    };
    const disk = new VirtioBlkDisk(dev, setup, queue);
    if (msix) {
      dev.requestIrq(0, (d) => disk.onConfigInterrupt(d), `virtio-blk config`);
      dev.requestIrq(1, (d) => disk.onQueueInterrupt(d), `virtio-blk req.0`);
    } else {
      dev.requestIrq(0, (d) => disk.onIntx(d), "virtio-blk");
    }
    t.addStatus(dev, STATUS.DRIVER_OK);
    devInfo(
      dev,
      `virtio-blk: ${disk.capacity} ${disk.blockSize}-byte blocks, ${disk.irqMode}, ` +
        `queue depth ${depth} of a ${ringSize}-entry ring, up to ${disk.maxTransfer} bytes a request`,
    );
    this.bound.set(dev.name, disk);
    return disk;
  }
}

/** One MSI-X vector for configuration changes and one for the queue, or none (INTx). */
function allocVectors(dev: PciDevice<Core>): number {
  try {
    return dev.allocIrqVectors(2, 2);
  } catch (e) {
    if (DevrefError.is(e, "ENOSPC")) return 0;
    throw e;
  }
}

function asError(e: unknown): DevrefError {
  return e instanceof DevrefError
    ? e
    : new DevrefError("EIO", `unexpected failure: ${e instanceof Error ? e.message : String(e)}`, {
        cause: e,
      });
}

/** An error's message without its errno prefix. */
function reason(e: DevrefError): string {
  const prefix = `${e.code}: `;
  return e.message.startsWith(prefix) ? e.message.slice(prefix.length) : e.message;
}
