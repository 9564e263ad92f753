// A minimal device package for the tests: one handle class over one object class.
import {
  type ARef,
  type Borrowed,
  type Core,
  type DeviceContext,
  type Normal,
  RawDevice,
  withBorrow,
} from "@devref/raw-device";
import {
  adoptRef,
  BorrowScope,
  CONTEXT_CORE,
  Kobject,
  liveObject,
} from "@devref/raw-device/unsafe";

export class TestObject extends Kobject {
  value = 0;
}

export class TestDevice<Ctx extends DeviceContext = Normal> extends RawDevice<Ctx> {
  get value(): number {
    return liveObject<TestObject>(this).value;
  }
  set value(v: number) {
    liveObject<TestObject>(this).value = v;
  }
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
export function makeDevice(name = "dev0"): Made {
  let releases = 0;
  const object = new TestObject(
    name,
    () => {
      releases++;
    },
    TestDevice,
  );
  return { dev: adoptRef<TestDevice>(object, "creator"), releases: () => releases };
}

/** Runs `fn` with a Core-context borrow, as a bus would around probe. */
export function inCoreCallback<R>(
  dev: TestDevice,
  fn: <S>(d: Borrowed<TestDevice<Core>, S>) => R,
): R {
  const scope = new BorrowScope(CONTEXT_CORE);
  // SAFETY: the test plays the bus: it owns the scope and closes it after the callback.
  const b = scope.borrow(dev, CONTEXT_CORE) as unknown as Borrowed<TestDevice<Core>, never>;
  try {
    return fn(b);
  } finally {
    scope.close();
  }
}

export { withBorrow };
