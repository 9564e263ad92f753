// A minimal device package for the tests, on raw-device alone: one handle class over one
// object class, as raw-device's own fixture does.
import { type ARef, type DeviceContext, type Normal, RawDevice } from "@devref/raw-device";
import { adoptRef, Kobject } from "@devref/raw-device/unsafe";

export class TestDevice<Ctx extends DeviceContext = Normal> extends RawDevice<Ctx> {
  override get(label?: string): ARef<TestDevice> {
    // SAFETY: RawDevice.get makes a handle of this class.
    return super.get(label) as ARef<TestDevice>;
  }
}

export interface Made {
  readonly dev: ARef<TestDevice>;
  readonly releases: () => number;
}

/** A new device whose creator holds the initial reference. */
export function makeDevice(name = "asc0"): Made {
  let releases = 0;
  const object = new Kobject(name, () => releases++, TestDevice);
  return { dev: adoptRef<TestDevice>(object, "creator"), releases: () => releases };
}
