//! C source: drivers/pci/msi/msi.c (msix_capability_init, pci_msix_write_vector_ctrl,
//! __pci_write_msi_msg)
//!
//! The MSI-X target a described PCI function gets: the PCI core's writes into the
//! function's MSI-X table and capability, done through the BAR and ECAM as on hardware.

import type { MsiTarget } from "@devref/bus";
import type { MmioFabric } from "../fabric.js";
import { PCI } from "../pci/regs.js";
import type { EcamConfig } from "./backends.js";
import type { FunctionRecord } from "./pci-bridge.js";

/**
 * Programs one function's MSI-X vectors for the bus: vector `i` raising line `h` of the
 * `"msi"` domain means table entry `i` = { doorbell address, data `h`, unmasked }, which
 * the host turns into interrupt line `msiBase + h`. The first programmed vector sets
 * MSI-X enable (with the function mask held while the entry is written, as
 * msix_capability_init does); a freed vector is masked; the last one freed clears enable.
 * Table writes need memory decoding (`enableDevice()` first, as in the kernel): otherwise
 * they end in the host window's master abort, which the trace shows.
 *
 * **Invariants:** nothing is written once the function was taken out of its slot.
 */
export class MsixTable implements MsiTarget {
  private readonly fabric: MmioFabric;
  private readonly config: EcamConfig;
  private readonly record: FunctionRecord;
  private readonly cap: number;
  private readonly table: number;
  private readonly doorbell: number;
  private readonly programmed: Uint8Array;
  private live = 0;

  constructor(
    fabric: MmioFabric,
    config: EcamConfig,
    record: FunctionRecord,
    cap: number,
    tableCpu: number,
    vectors: number,
    doorbell: number,
  ) {
    this.fabric = fabric;
    this.config = config;
    this.record = record;
    this.cap = cap;
    this.table = tableCpu;
    this.doorbell = doorbell;
    this.programmed = new Uint8Array(vectors);
  }

  setVector(index: number, hwirq: number | null): void {
    if (!this.record.attached || !(index >= 0 && index < this.programmed.length)) return;
    const entry = this.table + PCI.MSIX_ENTRY_SIZE * index;
    const flags = this.cap + PCI.MSIX_FLAGS;
    if (hwirq === null) {
      if (this.programmed[index] === 0) return;
      this.programmed[index] = 0;
      this.fabric.write32(entry + PCI.MSIX_ENTRY_VECTOR_CTRL, PCI.MSIX_ENTRY_CTRL_MASKBIT);
      if (--this.live === 0) {
        const ctl = this.config.read(flags, 2);
        this.config.write(flags, 2, ctl & ~PCI.MSIX_FLAGS_ENABLE);
      }
      return;
    }
    const first = this.live === 0;
    if (first) {
      const ctl = this.config.read(flags, 2);
      this.config.write(flags, 2, ctl | PCI.MSIX_FLAGS_ENABLE | PCI.MSIX_FLAGS_MASKALL);
    }
    this.fabric.write32(entry, this.doorbell % 0x1_0000_0000);
    this.fabric.write32(entry + 4, Math.floor(this.doorbell / 0x1_0000_0000));
    this.fabric.write32(entry + 8, hwirq >>> 0);
    this.fabric.write32(entry + PCI.MSIX_ENTRY_VECTOR_CTRL, 0);
    if (this.programmed[index] === 0) {
      this.programmed[index] = 1;
      this.live++;
    }
    if (first) {
      const ctl = this.config.read(flags, 2);
      this.config.write(flags, 2, ctl & ~PCI.MSIX_FLAGS_MASKALL);
    }
  }
}
