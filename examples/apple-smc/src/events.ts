//! C source: drivers/mfd/macsmc.c (the event_handlers notifier chain),
//! drivers/power/supply/macsmc-power.c and the macsmc-input patches (the event codes)
//!
//! What a notification (`MSG` 0x18, the event in `DATA`) means, as far as the kernel's
//! SMC drivers say (sim-hardware.md §2.8).

/** What kind of event a notification carries. */
export type SmcEventKind =
  | "button"
  | "lid"
  | "charger"
  | "port-charge"
  | "connector"
  | "battery-critical"
  | "unknown";

/** A decoded SMC notification. */
export interface SmcEvent {
  /** The 32-bit event as the SMC sent it. */
  readonly code: number;
  /** Bits 31:16: the event type (its high byte is the class letter: 'p', 'q', 'r', …). */
  readonly type: number;
  /** Bits 15:8, the first datum (a button number, the lid state). */
  readonly data1: number;
  /** Bits 7:0, the second datum (a button state). */
  readonly data2: number;
  readonly kind: SmcEventKind;
  /** One line for logs, e.g. `lid closed` or `button 0x01 pressed`. */
  readonly description: string;
}

function hex(v: number, n: number): string {
  return v.toString(16).padStart(n, "0");
}

/**
 * Decodes a notification's event: power button and lid (0x7201 / 0x7203), charger and
 * connector changes and the critical battery warning (0x71xx), anything else `unknown`.
 *
 * @example
 * ```ts
 * decodeSmcEvent(0x7203_0100).description; // "lid closed"
 * ```
 */
export function decodeSmcEvent(code: number): SmcEvent {
  const c = code >>> 0;
  const type = c >>> 16;
  const data1 = (c >>> 8) & 0xff;
  const data2 = c & 0xff;
  let kind: SmcEventKind = "unknown";
  let description = `event 0x${hex(c, 8)}`;
  if (type === 0x7201) {
    kind = "button";
    description = `button 0x${hex(data1, 2)} ${data2 !== 0 ? "pressed" : "released"}`;
  } else if (type === 0x7203) {
    kind = "lid";
    description = data1 !== 0 ? "lid closed" : "lid opened";
  } else if ((c & 0xffff_ff00) >>> 0 === 0x7101_0100) {
    kind = "charger";
    description = "charger status changed";
  } else if (type === 0x7106) {
    kind = "port-charge";
    description = "port charge state changed";
  } else if (type === 0x7113) {
    kind = "connector";
    description = "connector inserted or removed";
  } else if (c === 0x7102_0000) {
    kind = "battery-critical";
    description = "critical battery warning";
  }
  return { code: c, type, data1, data2, kind, description };
}
