//! A stand-in for the TC39 DisposableStack, which Node 20 lacks.

import { DevrefError } from "./errors.js";

/**
 * A stack of clean-up actions run in reverse order: multi-resource setup that rolls back
 * what it did when a later step fails (the kernel's `goto err_*` ladder).
 *
 * **Invariants:** each action runs at most once; `dispose` runs every action even when
 * some throw.
 *
 * **Errors:** `dispose` rethrows a single failure as is, and several as an
 * `AggregateError` (latest first); using a disposed stack throws `EINVAL`.
 *
 * @example
 * ```ts
 * using stack = new DisposeStack();
 * const a = stack.use(openA());
 * const b = stack.adopt(allocB(), (b) => freeB(b));
 * keep(stack.move()); // success: the resources outlive this block
 * ```
 */
export class DisposeStack implements Disposable {
  #actions: (() => void)[] = [];
  #disposed = false;

  get disposed(): boolean {
    return this.#disposed;
  }

  #check(): void {
    if (this.#disposed) {
      throw new DevrefError(
        "EINVAL",
        "this DisposeStack was already disposed or moved; create a new one",
      );
    }
  }

  /** Adds a disposable resource and returns it. `null` and `undefined` are ignored. */
  use<T extends Disposable | null | undefined>(resource: T): T {
    this.#check();
    if (resource !== null && resource !== undefined) {
      const dispose = resource[Symbol.dispose];
      if (typeof dispose !== "function") {
        throw new DevrefError(
          "EINVAL",
          "use() needs an object with a [Symbol.dispose]() method; use adopt() or defer() otherwise",
        );
      }
      this.#actions.push(() => dispose.call(resource));
    }
    return resource;
  }

  /** Adds `value` with the action that releases it, and returns `value`. */
  adopt<T>(value: T, onDispose: (value: T) => void): T {
    this.#check();
    this.#actions.push(() => onDispose(value));
    return value;
  }

  /** Adds an action. */
  defer(action: () => void): void {
    this.#check();
    this.#actions.push(action);
  }

  /** Moves every action to a new stack and leaves this one disposed, releasing nothing. */
  move(): DisposeStack {
    this.#check();
    const next = new DisposeStack();
    next.#actions = this.#actions;
    this.#actions = [];
    this.#disposed = true;
    return next;
  }

  /** Runs every action, newest first. A second call does nothing. */
  dispose(): void {
    if (this.#disposed) return;
    this.#disposed = true;
    const errors: unknown[] = [];
    const actions = this.#actions;
    this.#actions = [];
    for (let i = actions.length - 1; i >= 0; i--) {
      try {
        actions[i]!();
      } catch (e) {
        errors.push(e);
      }
    }
    if (errors.length === 1) throw errors[0];
    if (errors.length > 1)
      throw new AggregateError(errors, `${errors.length} clean-up actions failed`);
  }

  [Symbol.dispose](): void {
    this.dispose();
  }
}
