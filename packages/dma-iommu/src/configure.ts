//! C header: include/linux/dma-mapping.h (dma_set_mask and friends)
//! C source: drivers/base/dd.c (really_probe → dma_configure, dma_cleanup),
//! drivers/iommu/iommu.c (iommu_probe_device at configure time), kernel/dma/mapping.c
//! (dma_set_mask), kernel/dma/debug.c (the unbind report)

import type { Device } from "@devref/device-core";
import { DeviceScope, DeviceState, deviceStateOf } from "@devref/device-core/unsafe";
import {
  type Core,
  checkBoolean,
  checkInstance,
  checkObject,
  DevrefError,
  formatAddr,
} from "@devref/raw-device";
import { CONTEXT_CORE } from "@devref/raw-device/unsafe";
import type { DmaDeviceAudit, DmaUnbindReport } from "./audit.js";
import { auditOf, entryOf } from "./debug.js";
import { iommuDmaInitDomain } from "./dma-iommu.js";
import {
  checkMaskBits,
  coherentForget,
  coherentRelease,
  DeviceDma,
  DmaState,
  dmaOfArgument,
  liveDmaState,
  stateOfFacade,
} from "./dma-state.js";
import { checkDevice } from "./internal/checks.js";
import { maskOf } from "./internal/mask.js";
import { clientOfState } from "./iommu.js";
import { iommuProbeClient, iommuReleaseClient, iommuResvRegionsOf } from "./iommu-core.js";
import { DmaSystem, dmaSystemInternals } from "./system.js";

/** Options of {@link dmaConfigure}. */
export interface DmaConfigureOptions {
  /** Bounce every dma-direct mapping (a restricted-DMA or forced-swiotlb device). */
  readonly forceBounce?: boolean;
  /**
   * dma-iommu's `pci_32bit_workaround`: try IOVAs below 4 GiB first. Set it for PCI devices
   * (unless `iommu.forcedac=1`); platform devices never use it.
   */
  readonly pci32bitWorkaround?: boolean;
}

function checkConfigureOptions(where: string, options: DmaConfigureOptions): void {
  checkObject(where, "options", options);
  if (options.forceBounce !== undefined)
    checkBoolean(where, "options.forceBounce", options.forceBounce);
  if (options.pci32bitWorkaround !== undefined)
    checkBoolean(where, "options.pci32bitWorkaround", options.pci32bitWorkaround);
}

/**
 * Sets up DMA for `dev` at the start of its probe — the kernel's `dma_configure` step of
 * `really_probe`: default 32-bit masks if the bus set none, the IOMMU named in the device's
 * firmware `iommus` whatever its bus (probe into it, join a group, attach the default
 * domain, give a DMA domain its IOVA space — `iommu_dma_init_domain`), and the DMA
 * implementation (iommu-dma for a DMA domain, dma-direct otherwise). The device's IOMMU
 * data goes into its `iommu` slot.
 *
 * On a machine whose DMA layer is `system`, every probe is configured before it starts and
 * torn down at the end of its binding; a driver calls this only to pass options (before the
 * first mapping). Otherwise call it first thing in probe: it registers the teardown as a
 * devres action, so it runs after every resource registered later in probe. Calling it
 * again in the same binding returns the same state.
 *
 * **Errors:** `EPROBE_DEFER` if the device names an IOMMU that is not registered yet
 * (retried when the IOMMU's driver binds); `ENODEV` on a revoked borrow; `EINVAL` for a bad
 * argument, or an IOMMU that cannot give the device a DMA domain; `EBUSY` for options after
 * the first mapping; whatever the IOMMU driver's `probeDevice`/`domainAllocPaging` throws,
 * other than `ENODEV` (declined: the device then uses dma-direct). Nothing stays behind on
 * error.
 *
 * @example
 * ```ts
 * probe(dev) {
 *   dmaConfigure(system, dev);
 *   dmaSetMaskAndCoherent(dev, 64);
 *   const ring = dmaAllocCoherent(dev, 4096);
 *   return { ring };
 * }
 * ```
 */
export function dmaConfigure(
  system: DmaSystem,
  dev: Device<Core>,
  options: DmaConfigureOptions = {},
): DeviceDma {
  const where = "dma_configure";
  checkInstance(where, "system", system, DmaSystem);
  const st = deviceStateOf(checkDevice(where, dev));
  checkConfigureOptions(where, options);
  const cur = liveDmaState(st);
  if (cur !== null) {
    if (cur.system !== system) {
      throw new DevrefError(
        "EINVAL",
        `device '${st.name}' is already configured for another DMA system`,
      );
    }
    // Configured already (by the machine's DMA layer at the start of probe): the driver's
    // options apply while nothing is mapped yet.
    const bounce = options.forceBounce;
    const pci = options.pci32bitWorkaround;
    if ((bounce !== undefined || pci !== undefined) && cur.liveCount > 0) {
      throw new DevrefError(
        "EBUSY",
        `dma_configure(${st.name}): options change how mappings are made; give them before the first mapping`,
      );
    }
    if (bounce !== undefined) cur.forceBounce = bounce;
    if (pci !== undefined && cur.client !== null) cur.policy.prefer32 = pci;
    return cur.facade;
  }
  return configureNew(system, st, options, (d) => {
    // Without the machine's layer nobody else ends the binding's DMA: devres does.
    if (system.machine !== st.machine) dev.devmAddAction(() => dmaUnbind(d), "dma teardown");
  });
}

/** A fresh DMA state for `st`; `register` ties its end to the binding. Nothing stays on error. */
function configureNew(
  system: DmaSystem,
  st: DeviceState,
  options: DmaConfigureOptions,
  register: (d: DmaState) => void,
): DeviceDma {
  const ref = st.fwnode.iommus[0] ?? null;
  const iommu = ref === null ? null : (system.iommus.get(ref.iommu) ?? null);
  if (ref !== null && iommu === null) {
    throw new DevrefError(
      "EPROBE_DEFER",
      `device '${st.name}' is behind IOMMU '${ref.iommu}', which is not registered yet: ` +
        "probe is retried when the IOMMU's driver binds",
    );
  }
  const d = new DmaState(system, st, options.forceBounce ?? system.swiotlbForce);
  try {
    if (iommu !== null && ref !== null) {
      const client = iommuProbeClient(iommu, st, ref.ids);
      const dom = client?.group.defaultDomain ?? null;
      if (dom?.isDma && dom.cookie === null) {
        iommuDmaInitDomain(dom, iommuResvRegionsOf(iommu, st, ref.ids));
      }
      // One object shape for every device (an unforced aperture is "no limit"), so the IOVA
      // allocator's reads of it stay monomorphic.
      d.policy = {
        device: st.name,
        prefer32: client !== null && (options.pci32bitWorkaround ?? false),
        busDmaLimit: 0,
        apertureEnd: dom?.forceAperture === true ? dom.apertureEnd : Number.MAX_SAFE_INTEGER,
      };
    }
    register(d);
  } catch (e) {
    const client = clientOfState(st);
    if (client !== null) {
      if (st.iommu === client) st.iommu = null;
      iommuReleaseClient(client);
    }
    d.dead = true;
    d.retire();
    throw e;
  }
  if (st.dmaMaskBits === null) st.dmaMaskBits = 32;
  if (st.coherentDmaMaskBits === null) st.coherentDmaMaskBits = 32;
  st.dmaOps = d.facade;
  dmaSystemInternals(system).users.add(d);
  return d.facade;
}

/**
 * {@link dmaConfigure} for a bus's own `dma_configure` step, which has the device object at
 * the start of really_probe rather than a borrow. The machine's DMA layer calls it for every
 * probe; a bus outside a machine layer may call it from its own hook.
 *
 * **Invariants:** call it only while `st` has a binding in its probing phase (what the hook
 * guarantees).
 *
 * **Errors:** as {@link dmaConfigure}; `EINVAL` if `st` is not a device object or not probing.
 */
export function dmaConfigureDevice(
  system: DmaSystem,
  st: DeviceState,
  options: DmaConfigureOptions = {},
): DeviceDma {
  const where = "dma_configure";
  checkInstance(where, "system", system, DmaSystem);
  checkInstance(where, "st", st, DeviceState);
  checkConfigureOptions(where, options);
  if (st.binding === null || st.binding.phase !== "probing") {
    throw new DevrefError(
      "EINVAL",
      `device '${st.name}' is not being probed: DMA is configured at the start of really_probe`,
    );
  }
  const scope = new DeviceScope(CONTEXT_CORE);
  try {
    // SAFETY: a binding in its probing phase is exactly what a Core borrow stands for; the
    // borrow ends with this call.
    const dev = scope.borrow(st, st.Handle) as unknown as Device<Core>;
    return dmaConfigure(system, dev, options);
  } finally {
    scope.close();
  }
}

/** @internal The machine layer's configure step: the end of the binding is the layer's too. */
export function layerConfigure(system: DmaSystem, st: DeviceState): void {
  if (liveDmaState(st) !== null) return;
  if (st.binding === null || st.binding.phase !== "probing") return;
  configureNew(system, st, {}, () => {});
}

/** @internal The machine layer's quiesce step (dma_cleanup). */
export function layerQuiesce(st: DeviceState): void {
  liveDmaState(st)?.cleanup();
}

/** @internal The machine layer's deconfigure step. */
export function layerDeconfigure(st: DeviceState): void {
  const f = st.dmaOps;
  if (f instanceof DeviceDma) dmaUnbind(stateOfFacade(f));
}

/**
 * The DMA state of a configured device (for audits and tests), or null.
 *
 * **Errors:** `EINVAL` for a non-device; `ENODEV` for a revoked handle.
 */
export function dmaStateOf(dev: Device): DeviceDma | null {
  return liveDmaState(deviceStateOf(checkDevice("dmaStateOf", dev)))?.facade ?? null;
}

// ---------------------------------------------------------------------------------------
// Masks.

function checkMaskChange(dev: Device<Core>, bits: number, what: string): void {
  dmaOfArgument(what, dev);
  checkMaskBits(what, bits);
}

/**
 * `dma_set_mask`: the streaming mask, as address bits (64 means every address a `number`
 * holds, up to 2^53 − 1). Only from probe (a Core borrow) and only before the device has
 * any mapping or allocation — the Rust crate marks this `unsafe`; here misuse is an error.
 *
 * **Errors:** `EINVAL` for bits outside 1 … 64, a non-device or an unconfigured device;
 * `EBUSY` with live mappings or allocations; `EIO` if dma-direct cannot serve the mask
 * (`dma_supported`).
 */
export function dmaSetMask(dev: Device<Core>, bits: number): void {
  checkMaskChange(dev, bits, "dma_set_mask");
  dev.setDmaMask(bits);
}

/** `dma_set_coherent_mask`. Errors as {@link dmaSetMask}. */
export function dmaSetCoherentMask(dev: Device<Core>, bits: number): void {
  checkMaskChange(dev, bits, "dma_set_coherent_mask");
  dev.setCoherentDmaMask(bits);
}

/** `dma_set_mask_and_coherent`. Errors as {@link dmaSetMask}; nothing changes on error. */
export function dmaSetMaskAndCoherent(dev: Device<Core>, bits: number): void {
  checkMaskChange(dev, bits, "dma_set_mask_and_coherent");
  dev.setDmaMaskAndCoherent(bits);
}

/**
 * `dma_get_mask`: the streaming mask's inclusive limit (32-bit when unset).
 *
 * **Errors:** `EINVAL` for a non-device; `ENODEV` for a revoked handle.
 */
export function dmaGetMask(dev: Device): number {
  return maskOf(deviceStateOf(checkDevice("dma_get_mask", dev)).dmaMaskBits ?? 32);
}

// ---------------------------------------------------------------------------------------
// Audit and end of binding.

/**
 * What `dev` holds through the DMA API right now (dma-debug's view): streaming mappings,
 * coherent buffers, bounce slots and IOVA bytes. An unconfigured device holds nothing.
 *
 * **Errors:** `EINVAL` for a non-device; `ENODEV` for a revoked handle.
 */
export function dmaDeviceAudit(dev: Device): DmaDeviceAudit {
  const st = deviceStateOf(checkDevice("dmaDeviceAudit", dev));
  return auditOf(st, liveDmaState(st));
}

/** Runs one teardown step; a failure is logged and the rest of the teardown goes on. */
function step(st: DeviceState, what: string, fn: () => void): void {
  try {
    fn();
  } catch (err) {
    st.log("err", `DMA-API: ${what} failed: ${String(err)}`);
  }
}

/**
 * The end of a binding's DMA: tears down the streaming mappings the driver leaked (unless
 * the dma_cleanup step did already) and reports them; frees what coherent memory is left;
 * releases the device from its IOMMU and empties its `iommu` slot. Each step runs even if
 * one before it fails; memory still mapped through an IOMMU that refused to unmap it is
 * freed only once the domain that mapped it is gone, and until then the state keeps its
 * device reference and stays in the system's audit.
 */
function dmaUnbind(d: DmaState): void {
  if (d.dead) return;
  const st = d.st;
  d.cleanup();
  const audit = d.endAudit ?? auditOf(st, d);
  for (const c of [...d.coherent])
    step(st, "freeing a coherent buffer", () => coherentRelease(d, c));
  const client = d.client;
  d.dead = true;
  if (client !== null) {
    if (!client.gone)
      step(st, "flushing the IOTLB", () => client.group.domain?.cookie?.fq?.flush());
    step(st, "releasing the device from its IOMMU", () => iommuReleaseClient(client));
    if (st.iommu === client) st.iommu = null;
  }
  // What an IOMMU would not unmap can be freed once its domain (and tables) are gone.
  for (const c of [...d.coherent]) {
    if (c.domain === null || c.domain.freed) coherentForget(d, c);
    else {
      st.log(
        "err",
        `DMA-API: coherent buffer ${formatAddr(c.dmaAddr, 1)}+${c.size} is still mapped and stays allocated`,
      );
    }
  }
  if (st.dmaOps === d.facade) st.dmaOps = null;
  const leaked = d.pendingLeaks.slice();
  d.pendingLeaks.length = 0;
  for (const e of d.allEntries()) leaked.push(entryOf(e));
  if (leaked.length > 0) {
    const first = leaked[0]!;
    const report: DmaUnbindReport = { ...audit, leaked, coherentFreed: d.coherentFreedAtUnbind };
    d.system.leakReports.push(report);
    st.log(
      "err",
      `DMA-API: device driver has pending DMA allocations while released from device [count=${leaked.length}]; ` +
        `one of leaked entries details: [device address=${formatAddr(first.dmaAddr, 1)}] [size=${first.size} bytes] ` +
        `[mapped as ${first.kind}] [via ${first.via}] [${first.dir}]: unmap every buffer in remove()`,
    );
  }
  // A state that still holds something (an IOMMU refused to unmap) stays on the system's
  // list, with its device reference, so audits count it and freeing its memory still tears
  // its mappings down.
  d.retire();
}
