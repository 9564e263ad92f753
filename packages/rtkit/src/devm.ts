//! C source: drivers/soc/apple/rtkit.c (devm_apple_rtkit_init)

import type { Device } from "@devref/device-core";
import { argumentError, type Bound, checkInstance, RawDevice } from "@devref/raw-device";
import { createRtkit } from "./rtkit.js";
import type { Rtkit, RtkitOptions } from "./types.js";

/**
 * Creates an RTKit client tied to the driver binding (devm_apple_rtkit_init): it is freed
 * when the binding ends (after `remove`, or when probe fails), through devres.
 *
 * It needs a `Bound` borrow — what probe receives — because only a bound driver can tie
 * resources to its binding; an owned reference does not compile.
 *
 * **Invariants:** the instance never outlives the binding; it still holds its own device
 * reference until then, like {@link createRtkit}.
 *
 * **Errors:** as {@link createRtkit}; `ENODEV` if the borrow has ended (the instance is then
 * freed before the error is thrown, as devm_add_action_or_reset does).
 *
 * @example
 * ```ts
 * probe(dev) {
 *   const rtk = devmRtkit(dev, { transport, ops, dma });
 *   await rtk.boot();
 * }
 * ```
 */
export function devmRtkit(boundDevice: Device<Bound>, options: RtkitOptions): Rtkit {
  // Checked by shape, so that @devref/device-core is needed for its types only.
  checkInstance("devmRtkit", "boundDevice", boundDevice, RawDevice);
  if (typeof boundDevice.devmAddActionOrReset !== "function") {
    throw argumentError("devmRtkit", "boundDevice", "a Device<Bound> borrow", boundDevice);
  }
  const rtk = createRtkit(boundDevice, options);
  boundDevice.devmAddActionOrReset(() => rtk.free(), "rtkit");
  return rtk;
}
