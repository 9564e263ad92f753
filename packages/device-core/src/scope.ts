//! Borrow scopes a bus or the device core opens around a callback.

import { BorrowScope, CONTEXT_NORMAL, type HandleConstructor } from "@devref/raw-device/unsafe";
import type { Device } from "./device.js";
import type { DeviceState } from "./state.js";

/**
 * A set of borrows that end together, minted for a device object: what a bus opens around
 * probe, remove and notifier calls. A thin form of raw-device's `BorrowScope` that needs
 * no existing handle and lends with a run-time context level (`CONTEXT_CORE` for probe
 * and remove, `CONTEXT_BOUND` for interrupts and bound callbacks, `CONTEXT_NORMAL` for
 * notifiers and iteration).
 *
 * **Invariants:** after `close()` every borrow made through it throws `ENODEV` on use,
 * and every borrow re-lent from one of them (an `async` `withBorrow`) ends too.
 */
export class DeviceScope {
  private readonly scope: BorrowScope;

  constructor(context: number = CONTEXT_NORMAL) {
    this.scope = new BorrowScope(context);
  }

  /** A borrowed handle of class `Handle` for `st`, revoked when this scope closes. */
  borrow<T extends Device>(st: DeviceState, Handle: HandleConstructor<T>): T {
    return this.scope.borrowObject(st, Handle);
  }

  /** Revokes every borrow made through this scope. */
  close(): void {
    this.scope.close();
  }

  get closed(): boolean {
    return this.scope.closed;
  }
}
