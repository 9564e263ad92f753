//! C header: include/linux/device/driver.h (struct device_driver)
//! Rust: rust/kernel/driver.rs (driver::Registration)

import type { Device } from "@devref/device-core";
import { type DeviceState, deviceStateOf } from "@devref/device-core/unsafe";
import type { Bound } from "@devref/raw-device";
import { DevrefError } from "@devref/raw-device";

/** @internal What the bus core calls; typed driver definitions erase into this. */
export class DriverRecord {
  readonly name: string;
  readonly driver: Driver<unknown>;
  /** The bus the driver is registered on, or null. */
  bus: object | null = null;
  /** Devices bound to this driver, in bind order. */
  readonly devices: Set<DeviceState> = new Set();
  readonly probe: (dev: Device, info: unknown) => unknown;
  readonly remove: ((dev: Device, data: unknown) => void) | null;

  constructor(
    driver: Driver<unknown>,
    probe: (dev: Device, info: unknown) => unknown,
    remove: ((dev: Device, data: unknown) => void) | null,
  ) {
    this.name = driver.name;
    this.driver = driver;
    this.probe = probe;
    this.remove = remove;
  }
}

let recordOfDriver: (drv: Driver<unknown>) => DriverRecord;

/** @internal */
export function recordOf(drv: Driver<unknown>): DriverRecord {
  return recordOfDriver(drv);
}

/**
 * A driver definition (the kernel's `struct device_driver`): a static object made once by
 * a bus's `define…Driver`, registered on a bus with `registerDriver`.
 *
 * `D` is the driver data its probe returns: owned by each binding, handed to `remove`, and
 * disposed (if it has `[Symbol.dispose]`) right after.
 *
 * **Invariants:** registered on at most one bus at a time.
 */
export abstract class Driver<D = unknown> {
  /** The driver's name; also what `driver_override` compares against. */
  readonly name: string;
  /** No sysfs-style `bind`/`unbind` for this driver (IOMMU drivers such as Apple DART). */
  readonly suppressBindAttrs: boolean;
  readonly #record: DriverRecord;

  protected constructor(
    name: string,
    suppressBindAttrs: boolean,
    probe: (dev: Device, info: unknown) => unknown,
    remove: ((dev: Device, data: unknown) => void) | null,
  ) {
    if (!/^[A-Za-z0-9_.,+-]+$/.test(name)) {
      throw new DevrefError(
        "EINVAL",
        `driver name '${name}' is not valid; use letters, digits and _ . , + -`,
      );
    }
    this.name = name;
    this.suppressBindAttrs = suppressBindAttrs;
    this.#record = new DriverRecord(this, probe, remove);
  }

  /** Whether the driver is registered on a bus. */
  get isRegistered(): boolean {
    return this.#record.bus !== null;
  }

  /** The names of the devices bound to this driver, in bind order. */
  boundDevices(): string[] {
    return [...this.#record.devices].map((st) => st.name);
  }

  /**
   * The driver data of `dev`, which must be bound to this driver (dev_get_drvdata, typed).
   *
   * **Errors:** `ENODEV` on a revoked borrow; `EINVAL` if `dev` is not bound to this driver.
   */
  drvdata(dev: Device<Bound>): D {
    const st = deviceStateOf(dev);
    const b = st.binding;
    if (
      b === null ||
      b.owner !== this.#record ||
      (b.phase !== "bound" && b.phase !== "unbinding")
    ) {
      throw new DevrefError(
        "EINVAL",
        `device '${st.name}' is not bound to driver '${this.name}'${b === null ? "" : ` (it is ${b.phase} with '${b.driver}')`}`,
      );
    }
    // SAFETY: a binding owned by this driver's record holds the D its probe returned.
    return b.data as D;
  }

  static {
    recordOfDriver = (drv) => drv.#record;
  }
}

/** A driver's registration on a bus; unregistering (or disposing) unbinds its devices. */
export interface DriverRegistration extends Disposable {
  readonly driver: Driver<unknown>;
  /** driver_unregister: unbinds every device of the driver, then leaves the bus. */
  unregister(): void;
}
