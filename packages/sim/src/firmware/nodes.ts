//! C source: arch/arm64/boot/dts/apple/t8103.dtsi (the nodes these stand for),
//! Documentation/devicetree/bindings/iommu/apple,dart.yaml,
//! Documentation/devicetree/bindings/mailbox/apple,mailbox.yaml,
//! Documentation/devicetree/bindings/mfd/apple,smc.yaml,
//! Documentation/devicetree/bindings/pci/host-generic-pci.yaml
//!
//! Device-tree nodes of the simulator's platform models, as `PlatformBus.register` specs:
//! compatible strings as Linux's bindings have them, `reg` resources whose backend is the
//! model's register window, `interrupts` on the `"aic"` domain, `iommus` links.

import type { IommuRefSpec, PlatformDeviceSpec } from "@devref/bus";
import type { IrqSpec } from "@devref/device-core";
import { checkInstance } from "@devref/raw-device";
import { ASC_MBOX_OFFSET, ASC_WINDOW_SIZE } from "../asc/constants.js";
import { RtkitFirmware } from "../asc/firmware.js";
import { AscMailbox } from "../asc/mailbox.js";
import { AppleSmc } from "../asc/smc.js";
import { DART_REGION_SIZE, Dart, type DartVariant } from "../dart/dart.js";
import { DmaPort } from "../dma.js";
import { ECAM_SIZE, PCI_HOTPLUG, PciHost } from "../pci/host.js";
import { Soc } from "../soc.js";
import { FabricBackend } from "./backends.js";
import { AIC_DOMAIN } from "./irq-bridge.js";

/** DT compatible of each DART variant (the kernel's `apple_dart_of_match`). */
export const DART_COMPATIBLE: Readonly<Record<DartVariant, readonly string[]>> = {
  t8020: ["apple,t8103-dart"],
  t6000: ["apple,t6000-dart"],
  t8110: ["apple,t8110-dart"],
};

/** DT compatible of the SMC (t8103 with its generic fallback). */
export const SMC_COMPATIBLE: readonly string[] = ["apple,t8103-smc", "apple,smc"];

/** DT compatible of the PCI host: the generic ECAM host bridge (`pci-host-generic`). */
export const PCI_HOST_COMPATIBLE: readonly string[] = ["pci-host-ecam-generic"];

/** A level interrupt on the `"aic"` domain (DT `<AIC_IRQ n IRQ_TYPE_LEVEL_HIGH>`). */
export function aicLevel(line: number): IrqSpec {
  return { domain: AIC_DOMAIN, hwirq: line, trigger: "level" };
}

/**
 * The `iommus` entry of a DMA master: the DART model its transfers go through, with the
 * stream, or none when it reaches memory directly (or through a translator that is not a
 * model of this SoC).
 *
 * **Errors:** `EINVAL` for a `soc` that is not a {@link Soc} or a `dma` that is not a
 * {@link DmaPort}.
 */
export function iommusOf(soc: Soc, dma: DmaPort): IommuRefSpec[] {
  checkInstance("iommusOf", "soc", soc, Soc);
  checkInstance("iommusOf", "dma", dma, DmaPort);
  const t = dma.iommu;
  if (t === null) return [];
  const model = soc.devices().find((m) => m instanceof Dart && m === t);
  return model === undefined ? [] : [{ iommu: model.name, ids: [dma.streamId] }];
}

/**
 * The DT node of a DART: `compatible` by variant, one `reg` of 0x4000 bytes backed by the
 * model's port, one level interrupt. The platform device is named after the model, which
 * is the name masters give in `iommus`.
 *
 * @example
 * ```ts
 * platform.register(describeDart(dart)); // dart0, "apple,t8110-dart", reg 0x2_8000_0000+0x4000
 * ```
 */
export function describeDart(dart: Dart): PlatformDeviceSpec {
  checkInstance("describeDart", "dart", dart, Dart);
  return {
    name: dart.name,
    compatible: DART_COMPATIBLE[dart.variant],
    mem: [{ name: "dart", start: dart.base, size: DART_REGION_SIZE, backend: dart.port }],
    interrupts: [aicLevel(dart.irqLine)],
  };
}

/**
 * The DT node of an ASC mailbox (`<name>-mbox`): `apple,t8103-asc-mailbox` +
 * `apple,asc-mailbox-v4` (or `apple,t8015-asc-mailbox`), the mailbox window (`base +
 * 0x8000`, 0x4000 bytes) and the four level interrupts in the binding's order:
 * send-empty, send-not-empty, recv-empty, recv-not-empty. Send-empty is asserted whenever
 * the A2I FIFO is empty: a driver requests it only while it waits for room (the kernel
 * keeps it disabled otherwise).
 */
export function describeAscMailbox(asc: AscMailbox): PlatformDeviceSpec {
  checkInstance("describeAscMailbox", "asc", asc, AscMailbox);
  const l = asc.irqLines;
  return {
    name: `${asc.name}-mbox`,
    compatible:
      asc.variant === "t8015"
        ? ["apple,t8015-asc-mailbox"]
        : ["apple,t8103-asc-mailbox", "apple,asc-mailbox-v4"],
    mem: [
      {
        name: "mbox",
        start: asc.base + ASC_MBOX_OFFSET,
        size: ASC_WINDOW_SIZE,
        backend: asc.mboxPort,
      },
    ],
    interrupts: [
      aicLevel(l.sendEmpty),
      aicLevel(l.sendNotEmpty),
      aicLevel(l.recvEmpty),
      aicLevel(l.recvNotEmpty),
    ],
  };
}

/**
 * The DT node of an Apple SMC (named after its ASC model): `apple,t8103-smc` +
 * `apple,smc`, `reg` `smc` (the ASC's CPU-control window, 0x4000 bytes, backed by the
 * model's port) and `sram` (the SRAM through the fabric), and `iommus` when the ASC's DMA
 * goes through a DART. Its `mboxes` link is the node of {@link describeAscMailbox}.
 */
export function describeAppleSmc(smc: AppleSmc): PlatformDeviceSpec {
  checkInstance("describeAppleSmc", "smc", smc, AppleSmc);
  const asc = smc.firmware.asc;
  return {
    name: asc.name,
    compatible: SMC_COMPATIBLE,
    mem: [
      { name: "smc", start: asc.base, size: ASC_WINDOW_SIZE, backend: asc.cpuPort },
      {
        name: "sram",
        start: smc.sramBase,
        size: smc.sramSize,
        backend: new FabricBackend(asc.soc.fabric, smc.sramBase, smc.sramSize),
      },
    ],
    iommus: iommusOf(asc.soc, asc.dma),
  };
}

/**
 * The SMC running on `asc`'s RTKit firmware, if any (the first application endpoint that is one).
 *
 * **Errors:** `EINVAL` for an `asc` that is not an {@link AscMailbox}.
 */
export function smcOf(asc: AscMailbox): AppleSmc | null {
  checkInstance("smcOf", "asc", asc, AscMailbox);
  const cop = asc.coprocessor;
  if (!(cop instanceof RtkitFirmware)) return null;
  for (let ep = 0x20; ep <= 0xff; ep++) {
    const h = cop.endpointHandler(ep);
    if (h instanceof AppleSmc) return h;
  }
  return null;
}

/**
 * The DT node of a PCI host bridge: `pci-host-ecam-generic`, `reg` `ecam` (1 MiB, bus 0)
 * and `hotplug` (the simulator's slot registers), and the hot-plug interrupt. The
 * enumeration and the hot-plug handler are `describeSoc`'s (a host bridge driver's work),
 * so the hot-plug line is taken when a PCI bus is described.
 */
export function describePciHost(host: PciHost): PlatformDeviceSpec {
  checkInstance("describePciHost", "host", host, PciHost);
  return {
    name: host.name,
    compatible: PCI_HOST_COMPATIBLE,
    mem: [
      { name: "ecam", start: host.ecamBase, size: ECAM_SIZE, backend: host.ecamPort },
      {
        name: "hotplug",
        start: host.hotplugBase,
        size: PCI_HOTPLUG.SIZE,
        backend: host.hotplugPort,
      },
    ],
    interrupts: [aicLevel(host.hotplugIrq)],
  };
}
