//! C header: include/linux/device/driver.h (struct device_driver)
//! Rust: rust/kernel/driver.rs (driver::Registration)

import type { Device } from "@devref/device-core";
import { type DeviceState, deviceStateOf } from "@devref/device-core/unsafe";
import type { Bound } from "@devref/raw-device";
import {
  checkArray,
  checkBoolean,
  checkCallback,
  checkObject,
  checkString,
  DevrefError,
  describeValue,
} from "@devref/raw-device";

/**
 * Checks what every driver spec has: an object with a name, a probe, an optional remove
 * and an optional suppressBindAttrs.
 *
 * **Errors:** `EINVAL` naming the first bad field.
 */
export function checkDriverSpec(
  where: string,
  spec: {
    readonly name: string;
    readonly probe: unknown;
    readonly remove?: unknown;
    readonly suppressBindAttrs?: boolean;
  },
): void {
  checkObject(where, "spec", spec);
  checkString(where, "spec.name", spec.name, true);
  // SAFETY: checkCallback only tests typeof; the cast names the function type it returns.
  checkCallback(where, "spec.probe", spec.probe as () => unknown);
  // SAFETY: as above.
  if (spec.remove !== undefined) checkCallback(where, "spec.remove", spec.remove as () => unknown);
  if (spec.suppressBindAttrs !== undefined) {
    checkBoolean(where, "spec.suppressBindAttrs", spec.suppressBindAttrs);
  }
}

/**
 * Checks an id table: an array of objects, each checked by `entry`.
 *
 * **Errors:** `EINVAL` naming the first bad entry.
 */
export function checkTable<E>(
  where: string,
  param: string,
  table: readonly E[] | undefined,
  entry: (e: E, at: string) => void,
): readonly E[] {
  if (table === undefined) return [];
  checkArray(where, param, table);
  table.forEach((e, i) => {
    // SAFETY: checkObject tests the value at run time; the cast only widens E to object.
    checkObject(where, `${param}[${i}]`, e as object);
    entry(e, `${param}[${i}]`);
  });
  return table;
}

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

// module-state: a privileged-access slot, assigned once by Driver's static block.
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
    if (typeof name !== "string" || !/^[A-Za-z0-9_.,+-]+$/.test(name)) {
      throw new DevrefError(
        "EINVAL",
        `driver name ${describeValue(name)} is not valid; use letters, digits and _ . , + -`,
      );
    }
    checkBoolean("Driver", "suppressBindAttrs", suppressBindAttrs);
    checkCallback("Driver", "probe", probe);
    if (remove !== null) checkCallback("Driver", "remove", remove);
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
