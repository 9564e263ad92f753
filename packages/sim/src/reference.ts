//! The reference SoC: one fixed memory map with a DART in front of a PCIe host whose first
//! slot holds a virtio-blk disk, and an Apple SMC on its ASC coprocessor. Examples, tests
//! and tools share it so their addresses agree.

import { checkBoolean, checkObject } from "@devref/raw-device";
import { type AppleSmcParts, type AppleSmcSetup, createAppleSmc } from "./asc/setup.js";
import { Dart } from "./dart/dart.js";
import { PciHost } from "./pci/host.js";
import { Soc, type SocOptions } from "./soc.js";
import { VirtioBlk, type VirtioBlkOptions } from "./virtio/blk.js";

/** Addresses and lines of the reference SoC (see the package README's memory map). */
export const REFERENCE_MAP = {
  RAM_BASE: 0x8_0000_0000,
  DART_BASE: 0x2_8000_0000,
  DART_IRQ: 10,
  /** Stream of the PCIe port's DMA on the DART. */
  PCIE_SID: 1,
  ECAM_BASE: 0x6_0000_0000,
  HOTPLUG_BASE: 0x6_0010_0000,
  HOTPLUG_IRQ: 40,
  /** CPU address of the BAR window; BAR (bus) addresses start at WINDOW_BUS_BASE. */
  WINDOW_BASE: 0x6_c000_0000,
  WINDOW_BUS_BASE: 0xc000_0000,
  WINDOW_SIZE: 0x1000_0000,
  INTX_BASE: 32,
  MSI_BASE: 64,
  MSI_COUNT: 32,
  MSI_DOORBELL: 0xffff_f000,
  SLOTS: 4,
  /** The SMC's ASC (CPU-control window; the mailbox is at +0x8000) and its SRAM, as on t8103. */
  SMC_BASE: 0x2_3e40_0000,
  SMC_MBOX_BASE: 0x2_3e40_8000,
  SMC_SRAM_BASE: 0x2_3fe0_0000,
  SMC_SRAM_SIZE: 0x10_0000,
  /** First of the SMC mailbox's four lines: send-empty, send-not-empty, recv-empty, recv-not-empty. */
  SMC_IRQ: 48,
} as const;

/** How {@link createReferenceSoc} builds the SoC. */
export interface ReferenceSocOptions extends SocOptions {
  /** Put a virtio-blk disk in slot 0 (default true); fields override its defaults. */
  readonly blk?: boolean | Partial<VirtioBlkOptions>;
  /** Route the disk's DMA through the DART on stream PCIE_SID (default true). */
  readonly iommu?: boolean;
  /** DART variant (default `t8110`). */
  readonly dartVariant?: "t8020" | "t6000" | "t8110";
  /**
   * Put an Apple SMC (`smc`) on the SoC (default true); fields override `createAppleSmc`'s
   * setup (`irq`, `base`, the SRAM range and the name are the reference's unless given).
   */
  readonly smc?: boolean | Partial<AppleSmcSetup>;
}

/** What {@link createReferenceSoc} returns. */
export interface ReferenceSoc {
  readonly soc: Soc;
  readonly dart: Dart;
  readonly pcie: PciHost;
  /** The disk in slot 0, or null. */
  readonly blk: VirtioBlk | null;
  /** The SMC's ASC, firmware and endpoint, or null. */
  readonly smc: AppleSmcParts | null;
}

/**
 * Builds the reference SoC: RAM at 0x8_0000_0000, a DART (`dart0`) at 0x2_8000_0000 on
 * line 10, a PCIe host (`pcie0`) with ECAM at 0x6_0000_0000, hot-plug registers at
 * 0x6_0010_0000 (line 40), a 256 MiB BAR window at 0x6_c000_0000 (bus 0xc000_0000), INTx
 * of slot s on line 32 + s, MSIs on lines 64..95 through doorbell 0xffff_f000, and a
 * virtio-blk disk (`vblk0`) in slot 0 whose DMA uses DART stream 1, and an Apple SMC
 * (`smc`: ASC at 0x2_3e40_0000 with its mailbox at +0x8000 on lines 48..51, SRAM at
 * 0x2_3fe0_0000) whose coprocessor is running, as the bootloader leaves it. The SMC keeps
 * its buffers in SRAM and uses no DART, as on t8103.
 *
 * **Errors:** `EINVAL` for bad options.
 *
 * @example
 * ```ts
 * const { soc, dart, pcie, blk } = createReferenceSoc({ seed: 3 });
 * soc.fabric.read32(REFERENCE_MAP.ECAM_BASE); // 0x10421af4
 * ```
 */
export function createReferenceSoc(options: ReferenceSocOptions = {}): ReferenceSoc {
  checkObject("createReferenceSoc", "options", options);
  const iommu = checkBoolean("createReferenceSoc", "options.iommu", options.iommu ?? true);
  const M = REFERENCE_MAP;
  const soc = new Soc({ ...options, ramBase: options.ramBase ?? M.RAM_BASE });
  const dart = new Dart(soc, {
    name: "dart0",
    variant: options.dartVariant ?? "t8110",
    base: M.DART_BASE,
    irq: M.DART_IRQ,
  });
  const pcie = new PciHost(soc, {
    name: "pcie0",
    ecamBase: M.ECAM_BASE,
    hotplugBase: M.HOTPLUG_BASE,
    hotplugIrq: M.HOTPLUG_IRQ,
    windowBase: M.WINDOW_BASE,
    windowBusBase: M.WINDOW_BUS_BASE,
    windowSize: M.WINDOW_SIZE,
    slots: M.SLOTS,
    intxBase: M.INTX_BASE,
    msiBase: M.MSI_BASE,
    msiCount: M.MSI_COUNT,
    msiDoorbell: M.MSI_DOORBELL,
  });
  let blk: VirtioBlk | null = null;
  const want = options.blk ?? true;
  if (want !== false) {
    const extra = want === true ? {} : checkObject("createReferenceSoc", "options.blk", want);
    blk = new VirtioBlk(soc, {
      name: "vblk0",
      ...(iommu ? { iommu: dart, streamId: M.PCIE_SID } : {}),
      ...extra,
    });
    pcie.insert(0, blk);
  }
  let smc: AppleSmcParts | null = null;
  const wantSmc = options.smc ?? true;
  if (wantSmc !== false) {
    const extra = wantSmc === true ? {} : checkObject("createReferenceSoc", "options.smc", wantSmc);
    smc = createAppleSmc(soc, {
      irq: M.SMC_IRQ,
      base: M.SMC_BASE,
      sramBase: M.SMC_SRAM_BASE,
      sramSize: M.SMC_SRAM_SIZE,
      ...extra,
    });
  }
  return { soc, dart, pcie, blk, smc };
}
