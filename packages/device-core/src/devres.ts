//! C source: drivers/base/devres.c
//! Rust: rust/kernel/revocable.rs (Revocable<T>), rust/kernel/devres.rs (Devres<T>)

import type { Bound } from "@devref/raw-device";
import { checkCallback, checkObject, checkString, DevrefError } from "@devref/raw-device";
import { objectIfLive } from "@devref/raw-device/unsafe";

function checkRevocableOptions<T>(where: string, options: RevocableOptions<T>): void {
  checkObject(where, "options", options);
  if (options.label !== undefined) checkString(where, "options.label", options.label);
  if (options.release !== undefined) checkCallback(where, "options.release", options.release);
}

import { captureStack, reportDevresMisuse } from "./debug.js";
import { boundState, type Device } from "./device.js";
import {
  DevresNode,
  devresAttach,
  devresDetach,
  noteReleaseFromReleaseCallback,
  RES,
} from "./devres-list.js";
import { type DeviceState, deviceStateOf } from "./state.js";

/** Options of a {@link Revocable}. */
export interface RevocableOptions<T> {
  /** Runs once with the value when it is revoked (or the Revocable is disposed). */
  readonly release?: (value: T) => void;
  /** Names the value in messages. */
  readonly label?: string;
}

/**
 * A value that can be revoked: access succeeds until `revoke()`, then fails cleanly (Rust
 * `Revocable<T>`).
 *
 * JavaScript has no RCU grace period to wait for: access and revocation run on one thread,
 * so a revocation can never race an access in progress. What a guard cannot stop is code
 * keeping the value it got: use {@link tryAccessWith} so the value does not outlive the
 * call, and do not hold it across an `await` (the kernel's rule of not sleeping under the
 * RCU read lock).
 *
 * **Invariants:** `release` runs at most once; after revocation the value is dropped.
 *
 * **Errors:** {@link accessChecked} throws `ENODEV` once revoked.
 *
 * @example
 * ```ts
 * const r = new Revocable(buffer, { release: (b) => b.fill(0), label: "rx ring" });
 * r.tryAccessWith((b) => b[0]); // a number
 * r.revoke();                   // true: released
 * r.tryAccess();                // undefined
 * ```
 */
export class Revocable<T> implements Disposable {
  readonly label: string;
  private revValue: T | undefined;
  private revAvailable = true;
  private revRelease: ((value: T) => void) | undefined;

  constructor(value: T, options: RevocableOptions<T> = {}) {
    checkRevocableOptions("new Revocable", options);
    this.label = options.label ?? "revocable";
    this.revValue = value;
    this.revRelease = options.release;
  }

  /** Whether the value is still available. */
  get isAvailable(): boolean {
    return this.revAvailable;
  }

  /** The value, or undefined once revoked (try_access). */
  tryAccess(): T | undefined {
    if (this.revAvailable) return this.revValue;
    this.onRevokedAccess();
    return undefined;
  }

  /** Calls `fn` with the value and returns its result, or undefined once revoked (try_access_with). */
  tryAccessWith<R>(fn: (value: T) => R): R | undefined {
    checkCallback("Revocable.tryAccessWith", "fn", fn);
    if (!this.revAvailable) {
      this.onRevokedAccess();
      return undefined;
    }
    // SAFETY: while available, revValue holds the T given at construction.
    return fn(this.revValue as T);
  }

  /**
   * The value, or a clear error once revoked.
   *
   * **Errors:** `ENODEV` after revocation.
   */
  accessChecked(): T {
    if (!this.revAvailable) {
      this.onRevokedAccess();
      throw this.revokedError();
    }
    // SAFETY: while available, revValue holds the T given at construction.
    return this.revValue as T;
  }

  /** Revokes the value and releases it; returns whether this call did it. */
  revoke(): boolean {
    if (!this.revAvailable) return false;
    this.revAvailable = false;
    // SAFETY: the value was available until now, so it is the T given at construction.
    const value = this.revValue as T;
    this.revValue = undefined;
    const release = this.revRelease;
    this.revRelease = undefined;
    release?.(value);
    return true;
  }

  /** Same as {@link revoke} (Rust's Drop). */
  [Symbol.dispose](): void {
    this.revoke();
  }

  /** The error thrown by {@link accessChecked} after revocation. */
  protected revokedError(): DevrefError {
    return new DevrefError(
      "ENODEV",
      `'${this.label}' was revoked; it can no longer be used. Check isAvailable or use tryAccess()`,
    );
  }

  /** A hook for subclasses: called on every access attempt after revocation. */
  protected onRevokedAccess(): void {}
}

/** Options of a {@link Devres}. */
export interface DevresOptions<T> extends RevocableOptions<T> {
  /**
   * Who keeps this object (e.g. `"netdev rx path"`): named in debug-mode reports when it is
   * used after its binding ended.
   */
  readonly owner?: string;
}

/**
 * A resource tied to a driver binding (Rust `Devres<T>`): registered on a bound device,
 * revoked (and released) when the binding ends, even if the `Devres` object lives on in
 * some longer-lived structure.
 *
 * **Invariants:** released no later than the end of the binding (after `remove()`, in
 * reverse order with the device's other managed resources); released exactly once.
 *
 * **Errors:** the constructor throws `ENODEV` on a revoked borrow; {@link access} throws
 * `EINVAL` for a different device and `ENODEV` once revoked; {@link accessChecked} throws
 * `ENODEV` once revoked, saying the binding ended.
 *
 * @example
 * ```ts
 * probe(dev) {
 *   const regs = new Devres(dev, mapRegisters(), { release: (r) => r.unmap(), label: "regs" });
 *   regs.access(dev).write32(0, 1); // fast path: a Bound borrow proves the binding is alive
 *   return { regs };
 * }
 * // after unbind: data.regs.tryAccess() === undefined
 * ```
 */
export class Devres<T> extends Revocable<T> {
  private resState: DeviceState;
  private resNode: DevresNode;
  private resDriver: string | null;
  private resOwner: string | undefined;
  private resRevokedBy: string | null = null;

  constructor(dev: Device<Bound>, value: T, options: DevresOptions<T> = {}) {
    const st = boundState(dev, "Devres");
    checkRevocableOptions("new Devres", options);
    if (options.owner !== undefined) checkString("new Devres", "options.owner", options.owner);
    super(value, options);
    this.resState = st;
    this.resDriver = st.binding?.driver ?? null;
    this.resOwner = options.owner;
    this.resNode = new DevresNode(
      this.label,
      RES,
      null,
      () => {
        this.resRevokedBy = `unbind of ${this.resDriver === null ? "the device" : `driver '${this.resDriver}'`}`;
        super.revoke();
      },
      st.machine.devresDebug,
    );
    devresAttach(st, this.resNode);
  }

  /**
   * The value, given proof that the device is bound (Rust `Devres::access`): a Bound
   * borrow of the device this resource belongs to. No availability guard is needed while
   * such a borrow is live, since the binding cannot end under it.
   *
   * **Errors:** `ENODEV` if `dev` is a revoked borrow or the resource was revoked
   * explicitly; `EINVAL` if `dev` is a different device.
   */
  access(dev: Device<Bound>): T {
    // The common case in one liveness test: the handle is live and over this resource's own
    // device object, which no other kind of handle is made over.
    if (objectIfLive(dev) === this.resState) return this.accessChecked();
    const st = deviceStateOf(dev);
    if (st !== this.resState) {
      throw new DevrefError(
        "EINVAL",
        `Devres '${this.label}' belongs to device '${this.resState.name}', not '${st.name}'`,
      );
    }
    return this.accessChecked();
  }

  /** The name of the device this resource belongs to. */
  get deviceName(): string {
    return this.resState.name;
  }

  /** Revokes and releases now, and unregisters from the device (Rust's Drop of a Devres). */
  override revoke(): boolean {
    if (!this.isAvailable) return false;
    noteReleaseFromReleaseCallback(this.label, this.resState);
    devresDetach(this.resNode);
    this.resNode.release = null;
    this.resRevokedBy = "explicit revoke";
    return super.revoke();
  }

  protected override revokedError(): DevrefError {
    return new DevrefError(
      "ENODEV",
      `Devres '${this.label}' of device '${this.resState.name}' was revoked (${this.resRevokedBy ?? "revoked"}); ` +
        "managed resources are valid only while the driver is bound. Acquire them again in the next probe(), " +
        "and keep an owned device reference (.get()) if you only need the device itself",
    );
  }

  protected override onRevokedAccess(): void {
    if (!this.resState.machine.devresDebug) return;
    reportDevresMisuse(this.resState.machine, {
      kind: "use-after-revoke",
      device: this.resState.name,
      driver: this.resDriver,
      resource: this.label,
      message:
        `'${this.label}' was used after ${this.resRevokedBy ?? "revocation"}: an object that outlives ` +
        "the binding kept it. Drop it in remove(), or re-acquire it at the next probe",
      storedBy: this.resOwner,
      createdAt: this.resNode.createdAt,
      at: captureStack(),
    });
  }
}
