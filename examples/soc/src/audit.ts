//! What a teardown left behind, in words: devices, DMA, interrupts and RAM.

import { auditDevices, IrqDomain } from "@devref/device-core";
import type { DmaSystem } from "@devref/dma-iommu";
import type { Soc } from "@devref/sim";

/**
 * Everything still held after teardown: devices not released (with their holders), DMA
 * buffers, mappings, IOVA space and page tables, requested interrupts, RAM the DMA layer
 * does not account for. Empty when the run left nothing behind.
 */
export function auditSoc(soc: Soc, system: DmaSystem, ramBefore: number): string[] {
  const leaks: string[] = [];
  for (const d of auditDevices(soc.machine)) {
    leaks.push(
      `device ${d.name}: ${d.refcount} refs (${d.holders.join(", ") || "none owned"}), ${d.devres} devres`,
    );
  }
  const a = system.audit();
  leaks.push(...a.problems.map((p) => `DMA audit: ${p}`));
  if (a.bufferBytes > 0) leaks.push(`DMA: ${a.bufferBytes} bytes of buffers`);
  if (a.coherentBytes > 0) leaks.push(`DMA: ${a.coherentBytes} bytes of coherent memory`);
  if (a.liveMappings > 0) leaks.push(`DMA: ${a.liveMappings} live mappings`);
  if (a.bounceSlots > 0) leaks.push(`DMA: ${a.bounceSlots} bounce slots`);
  if (a.iovaBytes > 0) leaks.push(`DMA: ${a.iovaBytes} bytes of IOVA space`);
  if (a.iommuPageBytes > 0) leaks.push(`DMA: ${a.iommuPageBytes} bytes of IOMMU page tables`);
  if (a.pagingDomains > 0) leaks.push(`DMA: ${a.pagingDomains} paging domains`);
  for (const r of system.leakReports) {
    if (r.leaked.length > 0)
      leaks.push(`DMA: ${r.device} left ${r.leaked.length} streaming mappings`);
  }
  for (const name of ["aic", "msi"]) {
    const lines = IrqDomain.find(soc.machine, name)?.interrupts() ?? [];
    leaks.push(...lines.map((l) => `IRQ ${name} ${l}`));
  }
  const ram = soc.ram.bytesInUse - ramBefore;
  if (ram > 0) leaks.push(`RAM: ${ram} bytes still allocated`);
  return leaks;
}
