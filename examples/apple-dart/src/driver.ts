//! C source: drivers/iommu/apple-dart.c (apple_dart_probe, apple_dart_remove,
//! apple_dart_of_match, apple_dart_driver)
//!
//! The platform driver: matches the three DART compatibles, reads PARAMS, resets the DART,
//! requests its fault interrupt and registers it with the IOMMU core; on removal — orderly
//! or by surprise — it blocks every stream (when the hardware is still there) and
//! unregisters, which takes every client off its domains and gives every reference back.

import { definePlatformDriver, type PlatformDriver } from "@devref/bus";
import { devInfo } from "@devref/device-core";
import { DmaSystem, iommuDeviceRegister, iommuDeviceUnregister } from "@devref/dma-iommu";
import {
  checkInstance,
  checkInteger,
  checkObject,
  checkString,
  DevrefError,
  type PhysAllocator,
  type Static,
} from "@devref/raw-device";
import { AppleDart, readDartParams } from "./dart.js";
import { DART_HW_T6000, DART_HW_T8103, DART_HW_T8110, DART_MIN_REGION, type DartHw } from "./hw.js";
import { dartIommuOps } from "./iommu-ops.js";

/**
 * How {@link createAppleDartDriver} builds the driver.
 *
 * @example
 * ```ts
 * createAppleDartDriver({ system, hostPageSize: 4096 }); // a 16 KiB DART then only bypasses
 * ```
 */
export interface AppleDartDriverOptions {
  /** The DMA system the DARTs register with (the machine's DMA layer). */
  readonly system: DmaSystem;
  /**
   * Where paging domains get their table pages; default `system.iommuPages` (the kernel's
   * `iommu_alloc_pages`), which the DART reaches because it is the system's RAM.
   */
  readonly pages?: PhysAllocator;
  /**
   * The CPU page size (`PAGE_SIZE`), default 16384 as Apple silicon kernels run. A DART
   * with larger pages is forced to bypass.
   */
  readonly hostPageSize?: 4096 | 16384 | 65536;
  /**
   * The PCIe MSI doorbell (`CONFIG_PCIE_APPLE_MSI_DOORBELL_ADDR`, default 0xffff_f000, the
   * reference SoC's): its CPU page is reserved in the DMA domains of PCI devices. `null`
   * reserves nothing (a kernel without the Apple PCIe driver).
   */
  readonly msiDoorbell?: number | null;
  /** The driver's name; default `apple-dart`. */
  readonly name?: string;
}

/**
 * The driver definition and the DARTs it has bound, by device name.
 *
 * **Invariants:** `dart(name)` is non-null exactly while that device is bound; the
 * {@link AppleDart} it returns stays readable after unbind (its registers are not).
 *
 * @example
 * ```ts
 * platform.registerDriver(darts.driver);
 * darts.names; // ["dart0"]
 * ```
 */
export interface AppleDartDriver {
  /** Register this on the platform bus. */
  readonly driver: Static<PlatformDriver<AppleDart, DartHw>>;
  /** The bound DART named `name`, or null. */
  dart(name: string): AppleDart | null;
  /** Names of the bound DARTs. */
  readonly names: readonly string[];
  /** How many probes of this driver have succeeded so far. */
  readonly bindings: number;
}

/** `apple_dart_of_match`. */
const OF_MATCH = Object.freeze([
  { compatible: "apple,t8103-dart", data: DART_HW_T8103 },
  { compatible: "apple,t6000-dart", data: DART_HW_T6000 },
  { compatible: "apple,t8110-dart", data: DART_HW_T8110 },
]);

/**
 * Makes the Apple DART platform driver for one DMA system (one machine).
 *
 * **Invariants:** a bound DART is registered as the IOMMU named after its device; when its
 * binding ends it is unregistered, its streams blocked if the hardware is still there.
 * `suppressBindAttrs`, as the kernel's.
 *
 * **Errors:** `EINVAL` for bad options. Probe fails with `ENODEV` (no interrupt, no
 * DART behind the registers, a system of another machine), `EINVAL` (a region smaller
 * than 0x4000 bytes, a locked DART, too many streams, an unknown page size) or
 * `ETIMEDOUT` (the reset's TLB invalidation stuck).
 *
 * @example
 * ```ts
 * const system = new DmaSystem({ machine: soc.machine, memory: soc.memory, ram: soc.ram });
 * const darts = createAppleDartDriver({ system });
 * platform.registerDriver(darts.driver);
 * using fw = describeSoc(soc, { platform }); // dart0 binds and registers its IOMMU
 * darts.dart("dart0")?.params.numStreams; // 16
 * ```
 */
export function createAppleDartDriver(options: AppleDartDriverOptions): AppleDartDriver {
  const where = "createAppleDartDriver";
  checkObject(where, "options", options);
  const system = checkInstance(where, "options.system", options.system, DmaSystem);
  if (options.pages !== undefined) checkObject(where, "options.pages", options.pages);
  const pages = options.pages ?? system.iommuPages;
  const hostPageSize =
    options.hostPageSize === undefined
      ? 16384
      : checkInteger(where, "options.hostPageSize", options.hostPageSize, 4096, 65536);
  if (![4096, 16384, 65536].includes(hostPageSize)) {
    throw new DevrefError(
      "EINVAL",
      `${where}: options.hostPageSize must be 4096, 16384 or 65536, not ${hostPageSize}`,
    );
  }
  const name =
    options.name === undefined
      ? "apple-dart"
      : checkString(where, "options.name", options.name, true);
  const msiDoorbell =
    options.msiDoorbell === null
      ? null
      : checkInteger(
          where,
          "options.msiDoorbell",
          options.msiDoorbell ?? 0xffff_f000,
          0,
          2 ** 52 - 1,
        );
  const bound = new Map<string, AppleDart>();
  let bindings = 0;

  const driver = definePlatformDriver<AppleDart, DartHw>({
    name,
    ofMatchTable: OF_MATCH,
    suppressBindAttrs: true,
    probe: (dev, hw) => {
      if (hw === undefined) throw new DevrefError("ENODEV", `'${dev.name}' is not a known DART`);
      if (system.machine !== dev.machine) {
        throw new DevrefError(
          "ENODEV",
          `'${dev.name}' is on machine '${dev.machine.name}', the driver's DMA system on another`,
        );
      }
      const res = dev.resource(0);
      if (res.size < DART_MIN_REGION) {
        throw new DevrefError(
          "EINVAL",
          `MMIO region too small (${res.size} bytes at 0x${res.start.toString(16)}; a DART needs 0x4000)`,
        );
      }
      try {
        dev.irq(0);
      } catch (e) {
        throw new DevrefError("ENODEV", `'${dev.name}' has no interrupt`, { cause: e });
      }
      const regs = dev.ioremapResource(0);
      const r = regs.access(dev);
      const params = readDartParams(hw, (off) => r.read32(off), hostPageSize);
      const dart = new AppleDart(dev.name, dev.machine, hw, params, regs);
      dart.reset(r);
      dev.requestIrq(
        0,
        (d) => (dart.handleFault(regs.access(d)) ? "handled" : "none"),
        "apple-dart fault handler",
      );
      // The DART's own reference for its masters' device links, kept for the binding.
      const self = dev.get("apple-dart: device links");
      dev.devmAddAction(() => self.put(), "apple-dart device reference");
      dart.iommu = iommuDeviceRegister(
        system,
        dev,
        dartIommuOps(dart, { pages, hostPageSize, msiDoorbell, device: self }),
      );
      bound.set(dev.name, dart);
      bindings++;
      dev.devmAddAction(() => {
        if (bound.get(dart.name) === dart) bound.delete(dart.name);
      }, "apple-dart bound list");
      devInfo(
        dev,
        `DART [pagesize ${params.pgsize.toString(16)}, ${params.numStreams} streams, bypass support: ${Number(params.supportsBypass)}, bypass forced: ${Number(params.forceBypass)}, ias ${params.ias}, oas ${params.oas}] initialized`,
      );
      return dart;
    },
    remove: (dev, dart) => {
      // apple_dart_remove: reset (every stream blocked) before the IOMMU goes, so nothing
      // walks the tables the unregistration frees. Pulled hardware has nothing to reset.
      if (!dev.isDisconnected) {
        const r = dart.regsOrNull();
        if (r !== null) {
          try {
            dart.reset(r);
          } catch (e) {
            dart.log(
              "err",
              `reset at removal failed: ${e instanceof Error ? e.message : String(e)}`,
            );
          }
        }
      }
      if (dart.iommu !== null) iommuDeviceUnregister(dart.iommu);
    },
  });

  return {
    driver,
    dart: (n: string) => bound.get(checkString("AppleDartDriver.dart", "name", n)) ?? null,
    get names(): readonly string[] {
      return [...bound.keys()];
    },
    get bindings(): number {
      return bindings;
    },
  };
}
