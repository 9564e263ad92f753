//! C header: include/uapi/linux/pci_regs.h (the subset a type-0 endpoint model needs)

import { checkInteger } from "@devref/raw-device";

/** Type-0 configuration header offsets and fields (specs/sim-hardware.md §3.1). */
export const PCI = {
  VENDOR_ID: 0x00,
  DEVICE_ID: 0x02,
  COMMAND: 0x04,
  COMMAND_IO: 0x1,
  COMMAND_MEMORY: 0x2,
  COMMAND_MASTER: 0x4,
  COMMAND_PARITY: 0x40,
  COMMAND_SERR: 0x100,
  COMMAND_INTX_DISABLE: 0x400,
  STATUS: 0x06,
  STATUS_INTERRUPT: 0x08,
  STATUS_CAP_LIST: 0x10,
  REVISION_ID: 0x08,
  CLASS_PROG: 0x09,
  CACHE_LINE_SIZE: 0x0c,
  HEADER_TYPE: 0x0e,
  HEADER_TYPE_MULTI_FUNCTION: 0x80,
  BASE_ADDRESS_0: 0x10,
  BASE_ADDRESS_MEM_TYPE_64: 0x04,
  BASE_ADDRESS_MEM_PREFETCH: 0x08,
  SUBSYSTEM_VENDOR_ID: 0x2c,
  SUBSYSTEM_ID: 0x2e,
  ROM_ADDRESS: 0x30,
  CAPABILITY_LIST: 0x34,
  INTERRUPT_LINE: 0x3c,
  INTERRUPT_PIN: 0x3d,
  /** Capability IDs. */
  CAP_ID_MSI: 0x05,
  CAP_ID_VNDR: 0x09,
  CAP_ID_EXP: 0x10,
  CAP_ID_MSIX: 0x11,
  /** MSI-X capability fields (§3.4). */
  MSIX_FLAGS: 2,
  MSIX_FLAGS_QSIZE: 0x07ff,
  MSIX_FLAGS_MASKALL: 0x4000,
  MSIX_FLAGS_ENABLE: 0x8000,
  MSIX_TABLE: 4,
  MSIX_PBA: 8,
  MSIX_ENTRY_SIZE: 16,
  MSIX_ENTRY_VECTOR_CTRL: 12,
  MSIX_ENTRY_CTRL_MASKBIT: 0x1,
  /** Configuration space of a PCI Express function. */
  CFG_SPACE_EXP_SIZE: 4096,
} as const;

/**
 * The ECAM offset of a function's configuration space on bus 0.
 *
 * **Errors:** `EINVAL` for a device outside 0..31, a function outside 0..7 or a register
 * outside 0..0xfff.
 *
 * @example
 * ```ts
 * ecamOffset(1, 0, PCI.COMMAND); // 0x8004
 * ```
 */
export function ecamOffset(device: number, fn: number, reg = 0): number {
  checkInteger("ecamOffset", "device", device, 0, 31);
  checkInteger("ecamOffset", "fn", fn, 0, 7);
  checkInteger("ecamOffset", "reg", reg, 0, 0xfff);
  return (device << 15) | (fn << 12) | reg;
}
