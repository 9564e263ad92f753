// pnpm demo: the ownership rules of @devref/raw-device at work, on a tiny device type.
import {
  type ARef,
  type Borrowed,
  DevrefError,
  holders,
  RawDevice,
  refcountOf,
  withBorrow,
} from "@devref/raw-device";
import { adoptRef, Kobject } from "@devref/raw-device/unsafe";

/** A device type as a device package would define it: a handle class over a counted object. */
class GpioChip extends RawDevice {
  get lines(): number {
    return this.live<GpioState>().lines;
  }
  override get(label?: string): ARef<GpioChip> {
    // SAFETY: RawDevice.get makes a handle of this class.
    return super.get(label) as ARef<GpioChip>;
  }
}
class GpioState extends Kobject {
  lines = 32;
}

/** A subsystem that keeps a device: its API accepts owned references only. */
class IrqDomain {
  readonly #parents: ARef<GpioChip>[] = [];
  attach(chip: ARef<GpioChip>): void {
    this.#parents.push(chip);
  }
  [Symbol.dispose](): void {
    for (const chip of this.#parents.splice(0)) chip.put();
  }
}

const line = (text = ""): void => console.log(text);
const show = (chip: GpioChip): void =>
  line(
    `  refcount ${refcountOf(chip)}; holders: ${holders(chip)
      .map((h) => h.label)
      .join(", ")}`,
  );

line("== devref ownership in 30 seconds");
const chip = adoptRef(
  GpioChip,
  new GpioState("gpio0", () => line("  [release] gpio0 freed")),
  "platform-bus",
);
show(chip);

line("\n1. A borrow is used inside its callback");
const lines = withBorrow(chip, (dev) => dev.lines);
line(`  read ${lines} lines through a borrow; the borrow ends with the callback`);

line("\n2. A subsystem that keeps the device takes an owned reference");
{
  using domain = new IrqDomain();
  withBorrow(chip, <S>(dev: Borrowed<GpioChip, S>) => {
    // domain.attach(dev) would not compile: a borrow is not an ARef.
    domain.attach(dev.get("irq-domain"));
  });
  show(chip);
  line("  the domain is disposed at the end of its block and puts its reference");
}
show(chip);

line("\n3. A smuggled borrow fails on use, and says what to do");
let smuggled: unknown;
withBorrow(chip, (dev) => {
  smuggled = dev; // an `unknown` sink escapes the type check, not the run-time check
});
try {
  void (smuggled as GpioChip).lines;
} catch (e) {
  if (!(e instanceof DevrefError)) throw e;
  line(`  ${e.message}`);
}

line("\n4. Owned references are counted, listed, and disposed once");
const a = chip.get("driver-a");
const b = a.clone("driver-b");
show(chip);
a.put();
a.put(); // a second put is a no-op
b[Symbol.dispose]();
show(chip);

line("\n5. The last put releases the device, exactly once");
chip.put();
line("  done");
