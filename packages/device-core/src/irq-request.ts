//! C source: kernel/irq/devres.c (devm_request_irq), drivers/base/platform.c
//! (platform_get_irq: the device's interrupts come from its firmware description)

import {
  checkCallback,
  checkInteger,
  checkObject,
  DevrefError,
  describeValue,
} from "@devref/raw-device";
import { boundState, type Device } from "./device.js";
import { Devres } from "./devres.js";
import { IrqAction, IrqDomain, type IrqHandler, type IrqLine } from "./irq.js";
import type { IrqSpec } from "./state.js";

/**
 * devm_request_irq for `dev` (a Bound borrow): looks interrupt `index` up in the device's
 * firmware description, or in `spec` when the bus resolved it itself (PCI vectors), and
 * ties the handler to the binding.
 *
 * **Errors:** as `Device.requestIrq`.
 */
export function requestIrqOf(
  dev: Device,
  index: number,
  handler: IrqHandler<Device<import("@devref/raw-device").Bound>>,
  name: string | undefined,
  spec?: IrqSpec,
): Devres<IrqLine> {
  const st = boundState(dev, "request_irq");
  checkInteger("requestIrq", "index", index, 0, 0x7fff_ffff);
  checkCallback("requestIrq", "handler", handler);
  if (name !== undefined && typeof name !== "string") {
    throw new DevrefError(
      "EINVAL",
      `requestIrq: name must be a string, not ${describeValue(name)}`,
    );
  }
  const irq = spec ?? st.fwnode.interrupts[index];
  if (irq === undefined) {
    throw new DevrefError(
      "ENXIO",
      `device '${st.name}' has no interrupt ${index} (it has ${st.fwnode.interrupts.length})`,
    );
  }
  const domain = IrqDomain.find(st.machine, irq.domain);
  if (domain === undefined) {
    throw new DevrefError(
      "ENXIO",
      `device '${st.name}': interrupt ${index} is on domain '${irq.domain}', which machine '${st.machine.name}' does not have`,
    );
  }
  const line: IrqLine = { domain: irq.domain, hwirq: irq.hwirq, name: name ?? st.name };
  const action = new IrqAction(st, st.Handle, handler, line);
  domain.request(action, irq.trigger);
  try {
    // SAFETY: boundState checked that dev is a Bound borrow of a bound device.
    return new Devres<IrqLine>(dev as Device<import("@devref/raw-device").Bound>, line, {
      label: `irq ${irq.domain}:${irq.hwirq}`,
      release: () => domain.free(action),
    });
  } catch (e) {
    domain.free(action);
    throw e;
  }
}

/**
 * disable_irq / disable_irq_nosync / enable_irq on a line `dev`'s binding requested (the
 * `IrqLine` its `requestIrq` Devres holds).
 *
 * **Errors:** as `IrqDomain.changeDepth`; `ENXIO` if the line's domain is not on the
 * device's machine; `EPERM` unless given a Bound borrow.
 */
export function changeIrqDepth(
  dev: Device,
  line: IrqLine,
  disable: boolean,
  sync: boolean,
  where: string,
): void {
  const st = boundState(dev, where);
  checkObject(where, "line", line);
  const domain =
    typeof line.domain === "string" ? IrqDomain.find(st.machine, line.domain) : undefined;
  if (domain === undefined) {
    throw new DevrefError(
      "ENXIO",
      `${where}: device '${st.name}' has no interrupt domain ${describeValue(line.domain)}; pass the line requestIrq returned`,
    );
  }
  domain.changeDepth(st, line.hwirq, disable, sync, where);
}
