//! C header: include/linux/soc/apple/rtkit.h (apple_rtkit_init, apple_rtkit_free)
//! Rust: rust/kernel/soc/apple/rtkit.rs (AsahiLinux), whose C side keeps a bare device pointer

import { checkInstance, RawDevice } from "@devref/raw-device";
import { RtkitClient } from "./internal/client.js";
import { RtkitInstance } from "./internal/instance.js";
import { readOptions } from "./internal/options.js";
import type { Rtkit, RtkitOptions } from "./types.js";

/**
 * Creates an RTKit client for `device` (apple_rtkit_init). The instance takes its own
 * owned reference, labelled "rtkit" in `holders(device)`, and puts it at `free()` or
 * `[Symbol.dispose]`: where the kernel keeps a bare `struct device *`, this keeps a count.
 *
 * Any device handle will do, a borrow (inside a callback) or an owned reference; the
 * instance never keeps the handle it was given. Nothing is sent until the firmware speaks:
 * start the coprocessor, then `await rtk.boot()`.
 *
 * **Invariants:** one owned reference per live instance; all state is on the instance.
 *
 * **Errors:** `EINVAL` naming the option that is missing or of the wrong kind (checked
 * before anything is taken); `ENODEV` if `device` is a dead handle.
 *
 * @example
 * ```ts
 * using rtk = createRtkit(dev, {
 *   transport: { send: (ep, msg0) => mailbox.push(ep, msg0) },
 *   ops: { recvMessage: (ep, msg0) => console.log(ep, msg0) },
 *   dma: myCoherentAllocator,
 * });
 * mailbox.onReceive((ep, msg0) => rtk.receive(ep, msg0));
 * await rtk.boot();
 * await rtk.startEp(0x20);
 * ```
 */
export function createRtkit(device: RawDevice, options: RtkitOptions): Rtkit {
  checkInstance("createRtkit", "device", device, RawDevice);
  const cfg = readOptions("createRtkit", options);
  return new RtkitInstance(new RtkitClient(device.get("rtkit"), cfg));
}
