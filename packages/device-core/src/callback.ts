//! Rust: rust/kernel/devres.rs (a closure guarded by the binding, like Devres::access)
//!
//! Work a driver schedules itself — deferred work, timers, completions, mailbox callbacks
//! — gets a Bound borrow only while the binding lasts.

import {
  type Borrowed,
  type Bound,
  checkCallback,
  checkString,
  isThenable,
} from "@devref/raw-device";
import { CONTEXT_BOUND } from "@devref/raw-device/unsafe";
import { boundState, type Device } from "./device.js";
import { DevresNode, devresAdd, devresDetach, RES } from "./devres-list.js";
import { DeviceScope } from "./scope.js";

/**
 * A function tied to one binding: calling it runs the driver's function with a Bound
 * borrow while the binding lasts; after the binding ended (or `cancel()`), it does
 * nothing and returns undefined.
 */
export interface BoundCallback<A extends unknown[], R> {
  (...args: A): R | undefined;
  /** Whether calls still reach the driver's function. */
  readonly isActive: boolean;
  /** Stops the callback before the binding ends. */
  cancel(): void;
}

/**
 * Makes a {@link BoundCallback} for `dev` (see `Device.devmCallback`).
 *
 * **Errors:** `EPERM` unless `dev` is a Bound borrow; `ENODEV` if no driver is bound;
 * `EINVAL` for a non-function `fn` or a non-string `label`.
 */
export function makeBoundCallback<H extends Device<Bound>, A extends unknown[], R>(
  dev: Device,
  fn: <S>(dev: Borrowed<H, S>, ...args: A) => R,
  label: string,
): BoundCallback<A, R> {
  const st = boundState(dev, "devm callback");
  checkCallback("devmCallback", "fn", fn);
  checkString("devmCallback", "label", label);
  const binding = st.binding!;
  const Handle = st.Handle;
  let active = true;
  const node = devresAdd(
    st,
    new DevresNode(
      label,
      RES,
      null,
      () => {
        active = false;
      },
      st.machine.devresDebug,
    ),
  );
  const call = (...args: A): R | undefined => {
    if (!active || st.binding !== binding || binding.phase === "ended") return undefined;
    const scope = new DeviceScope(CONTEXT_BOUND);
    // Lent for the binding from the start: a removal from inside fn ends the borrow at once.
    binding.addScope(scope);
    let result: R;
    try {
      // SAFETY: the binding is live (checked above) and the borrow dies with the scope.
      result = fn(scope.borrow(st, Handle) as unknown as Borrowed<H, never>, ...args);
    } catch (e) {
      binding.dropScope(scope);
      scope.close();
      throw e;
    }
    if (isThenable(result)) {
      // SAFETY: R is the promise type fn returned; the same settlement is handed back.
      return Promise.resolve(result).finally(() => {
        binding.dropScope(scope);
        scope.close();
      }) as R;
    }
    binding.dropScope(scope);
    scope.close();
    return result;
  };
  Object.defineProperty(call, "isActive", {
    get: () => active && st.binding === binding && binding.phase !== "ended",
  });
  Object.defineProperty(call, "cancel", {
    value: (): void => {
      active = false;
      devresDetach(node);
    },
  });
  // SAFETY: the two properties were defined just above.
  return call as BoundCallback<A, R>;
}
