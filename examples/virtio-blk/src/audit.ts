//! What a teardown may leave behind, in words: the check a scenario (and a test) runs
//! after every driver and device is gone.

import { auditDevices, IrqDomain, type Machine } from "@devref/device-core";
import type { DmaSystem } from "@devref/dma-iommu";

/**
 * Lists everything left on `machine` and in `system`: devices still alive (with their
 * holders and devres), the DMA layer's audit problems, buffers, coherent memory, mappings,
 * bounce slots, IOVA space and IOMMU page tables still held, streaming mappings a driver
 * leaked at unbind, requested interrupt lines of the `aic` and `msi` domains, and RAM still
 * allocated beyond what the caller owns (`extraRam` bytes).
 *
 * **Invariants:** an empty list means nothing was left.
 *
 * @example
 * ```ts
 * const ramBefore = soc.ram.bytesInUse; // after the DmaSystem took its bounce pool
 * // ... run, tear down ...
 * auditLeaks(soc.machine, system, soc.ram.bytesInUse - ramBefore); // []
 * ```
 */
export function auditLeaks(machine: Machine, system: DmaSystem, extraRam: number): string[] {
  const leaks: string[] = [];
  for (const d of auditDevices(machine)) {
    leaks.push(
      `device ${d.name}: ${d.refcount} refs (${d.holders.join(", ")}), ${d.devres} devres`,
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
  for (const r of system.leakReports) {
    if (r.leaked.length > 0)
      leaks.push(`DMA: ${r.device} left ${r.leaked.length} streaming mappings`);
  }
  for (const name of ["aic", "msi"]) {
    const irqs = IrqDomain.find(machine, name)?.interrupts() ?? [];
    leaks.push(...irqs.map((l) => `IRQ ${name} ${l}`));
  }
  if (extraRam > 0) leaks.push(`RAM: ${extraRam} bytes still allocated`);
  return leaks;
}
