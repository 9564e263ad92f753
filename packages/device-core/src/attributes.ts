//! C header: include/linux/device.h (struct device_attribute, DEVICE_ATTR_RO/RW)

import { checkObject, checkString, DevrefError, type Static } from "@devref/raw-device";

/**
 * A typed device attribute, defined once (static) and set per device: the kernel's
 * `struct device_attribute` with its show/store.
 */
export interface Attribute<T> {
  readonly name: string;
  /** `"ro"` (0444) or `"rw"` (0644). */
  readonly mode: "ro" | "rw";
  /** Formats a value as sysfs shows it. */
  show(value: T): string;
  /** Parses a sysfs write; throws `EINVAL` on bad input. Needed for `"rw"`. */
  store?(text: string): T;
}

/**
 * Defines an attribute once, for every device that carries it.
 *
 * **Errors:** `EINVAL` if the name is not a sysfs file name, or a `"rw"` attribute has no `store`.
 *
 * @example
 * ```ts
 * const serial = defineAttribute<string>({ name: "serial", mode: "ro", show: (s) => s });
 * dev.setAttribute(serial, "C02XK0");
 * dev.showAttribute("serial"); // "C02XK0\n"
 * ```
 */
export function defineAttribute<T>(spec: Attribute<T>): Static<Attribute<T>> {
  checkObject("defineAttribute", "spec", spec);
  checkString("defineAttribute", "spec.name", spec.name);
  if (typeof spec.show !== "function") {
    throw new DevrefError("EINVAL", `attribute '${spec.name}' has no show() function; add one`);
  }
  if (spec.mode !== "ro" && spec.mode !== "rw") {
    throw new DevrefError("EINVAL", `attribute '${spec.name}': mode must be "ro" or "rw"`);
  }
  if (!/^[A-Za-z0-9_.-]+$/.test(spec.name)) {
    throw new DevrefError(
      "EINVAL",
      `attribute name '${spec.name}' is not a valid sysfs file name; use letters, digits, '_', '-' and '.'`,
    );
  }
  if (spec.mode === "rw" && spec.store === undefined) {
    throw new DevrefError(
      "EINVAL",
      `attribute '${spec.name}' is "rw" but has no store(); add one or make it "ro"`,
    );
  }
  // SAFETY: attribute definitions live as long as the program (they are module constants).
  return spec as Static<Attribute<T>>;
}
