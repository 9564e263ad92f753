//! C header: include/linux/device.h (get_device/put_device), include/linux/kobject.h
//! Rust: rust/kernel/device.rs (Device<Ctx>), rust/kernel/sync/aref.rs (ARef)

import { DevrefError } from "./errors.js";
import { Refcount } from "./refcount.js";

// ---------------------------------------------------------------------------------------
// Type-level brands. Each is declared here only; other packages import the types.

declare const contextBrand: unique symbol;
declare const normalBrand: unique symbol;
declare const boundBrand: unique symbol;
declare const coreBrand: unique symbol;
declare const ownedBrand: unique symbol;
declare const scopeBrand: unique symbol;
declare const staticBrand: unique symbol;

/** Device context: a counted or borrowed device with no promise about binding. */
export interface Normal {
  readonly [normalBrand]: true;
}
/** Device context: a driver is bound for as long as the borrow lives (Rust `Device<Bound>`). */
export interface Bound extends Normal {
  readonly [boundBrand]: true;
}
/** Device context: inside a bus callback (probe, remove) with the device lock held (Rust `Device<Core>`). */
export interface Core extends Bound {
  readonly [coreBrand]: true;
}
/** Any device context. Contexts narrow downward: Core → Bound → Normal. */
export type DeviceContext = Normal;

/** The context of a device handle type. */
export type ContextOf<T extends RawDevice> = T[typeof contextBrand];

/** The mark of an owned reference; only {@link ARef} types carry it. */
export interface OwnedMark {
  readonly [ownedBrand]: true;
}

/**
 * An owned, counted device reference (Rust `ARef<Device>`): the only kind of reference
 * that APIs which keep a device accept.
 *
 * Taking one increments the count (get_device); `[Symbol.dispose]` or `put()` drops it
 * (put_device), so `using` works. Only a {@link Normal}-context type can be owned: a
 * binding cannot be kept, only the device structure.
 *
 * **Invariants:** the device's memory stays valid until every ARef is put; an ARef says
 * nothing about registration or binding.
 *
 * **Errors:** any use after `put` throws `ENODEV` naming the holder.
 */
export type ARef<T extends RawDevice> = Normal extends ContextOf<T> ? T & OwnedMark : never;

/**
 * A borrowed device reference: valid only inside the callback that received it.
 *
 * The scope `S` exists only inside that callback and is invariant, so returning the
 * borrow, or storing it in anything typed outside the callback, does not compile. A
 * borrow that escapes anyway (through a closure or an `unknown`) is revoked when the
 * callback ends and throws on use.
 */
export type Borrowed<T extends RawDevice, S> = T & { readonly [scopeBrand]: (scope: S) => S };

/**
 * A program-lifetime object (a bus type, a registered driver definition) that may be
 * stored freely: the kernel's `const struct bus_type *`.
 */
export type Static<T extends object> = T & { readonly [staticBrand]: true };

/** Marks `value` as living for the whole program. Call it once, where the object is defined. */
export function defineStatic<T extends object>(value: T): Static<T> {
  // SAFETY: Static is a type-level promise made by the definer; nothing is checked at run time.
  return value as Static<T>;
}

// ---------------------------------------------------------------------------------------
// Holders, debug mode and leak reports.

/** One live owned reference, as listed by {@link holders}. */
export interface HolderInfo {
  /** The label given when the reference was taken. */
  readonly label: string;
  /** Where it was taken, in debug mode. */
  readonly stack: string | undefined;
}

/** A leaked owned reference: garbage-collected without being put (debug mode only). */
export interface LeakReport {
  readonly device: string;
  readonly label: string;
  readonly stack: string | undefined;
}

/** Process-wide ownership settings. */
export interface OwnershipOptions {
  /**
   * Record a stack for every owned reference and report references that are
   * garbage-collected without `put`. Costs about a microsecond per reference.
   */
  readonly debug?: boolean;
  /** Where leaks go in debug mode; by default, `console.error`. */
  readonly onLeak?: (leak: LeakReport) => void;
}

/**
 * A node of a kobject's list of live owned references. Nodes are recycled through a free
 * list: a get() then allocates only its handle, and the list links stay between
 * long-lived objects, which keeps the garbage collector's write barrier off the path.
 */
export class Holder {
  label: string;
  stack: string | undefined;
  prev: Holder | null = null;
  next: Holder | null = null;
  constructor(label: string, stack: string | undefined) {
    this.label = label;
    this.stack = stack;
  }
}

let freeHolders: Holder | null = null;

const defaultLeakReporter = (leak: LeakReport): void => {
  console.error(
    `devref: leaked reference to ${leak.device} held by '${leak.label}' was garbage-collected without put()` +
      (leak.stack === undefined ? "" : `\n  taken at:\n${leak.stack}`),
  );
};

let debugMode = false;
let leakReporter: (leak: LeakReport) => void = defaultLeakReporter;
let leakRegistry: FinalizationRegistry<LeakReport> | undefined;

/** Changes process-wide ownership settings; returns the settings in force before. */
export function configureOwnership(options: OwnershipOptions): Required<OwnershipOptions> {
  const previous = { debug: debugMode, onLeak: leakReporter };
  if (options.debug !== undefined) debugMode = options.debug;
  if (options.onLeak !== undefined) leakReporter = options.onLeak;
  if (debugMode && leakRegistry === undefined) {
    leakRegistry = new FinalizationRegistry((leak) => leakReporter(leak));
  }
  return previous;
}

function captureStack(): string | undefined {
  // Drop the "Error" line and the frames inside this module.
  const stack = new Error().stack;
  return stack?.split("\n").slice(3).join("\n");
}

// ---------------------------------------------------------------------------------------
// The shared, counted object behind every handle.

/**
 * The counted core of a device (the kernel's `struct kobject`): the reference count, the
 * name, the live holders and the release callback.
 *
 * Device packages extend it with their own state; users never see it, only handles.
 *
 * **Invariants:** `release` runs exactly once, when the count drops to zero.
 */
export class Kobject {
  name: string;
  readonly refcount: Refcount;
  /** True once the release callback has run. */
  released = false;
  private releaseFn: (() => void) | null;
  private newestHolder: Holder | null = null;
  private liveHolders = 0;

  /**
   * @param name shown in messages and listings.
   * @param release runs once when the last reference goes (device_release).
   */
  constructor(name: string, release: () => void) {
    this.name = name;
    this.refcount = new Refcount(1, name);
    this.releaseFn = release;
  }

  /** Live owned references, oldest first. */
  holders(): HolderInfo[] {
    const out: HolderInfo[] = [];
    for (let h = this.newestHolder; h !== null; h = h.next)
      out.push({ label: h.label, stack: h.stack });
    return out.reverse();
  }

  /** Number of live owned references (not the count: the creator's and bus references count too). */
  get holderCount(): number {
    return this.liveHolders;
  }

  /** @internal */
  addHolder(label: string): Holder {
    const stack = debugMode ? captureStack() : undefined;
    let holder = freeHolders;
    if (holder === null) holder = new Holder(label, stack);
    else {
      freeHolders = holder.next;
      holder.label = label;
      holder.stack = stack;
    }
    const head = this.newestHolder;
    holder.next = head;
    if (head !== null) head.prev = holder;
    this.newestHolder = holder;
    this.liveHolders++;
    return holder;
  }

  /** @internal */
  removeHolder(holder: Holder): void {
    const { prev, next } = holder;
    if (prev !== null) prev.next = next;
    else this.newestHolder = next;
    if (next !== null) next.prev = prev;
    holder.prev = null;
    holder.next = freeHolders;
    holder.stack = undefined;
    freeHolders = holder;
    this.liveHolders--;
  }

  /** Drops one count; runs the release callback when it was the last. */
  put(): void {
    if (this.refcount.decAndTest()) {
      const release = this.releaseFn;
      this.releaseFn = null;
      this.released = true;
      release?.();
    }
  }
}

// ---------------------------------------------------------------------------------------
// Handles.

// Live states are positive; a handle's kind survives its end, for messages and isOwned.
const BORROWED = 1;
const OWNED = 2;
const REVOKED = -1;
const PUT = -2;

let borrowOf: <T extends RawDevice>(of: T) => T;
let adoptInto: (Handle: HandleConstructor<RawDevice>, object: Kobject, label: string) => RawDevice;
let revokeBorrow: (handle: RawDevice) => void;

/** Proof that a handle is being made by a device package (see `@devref/raw-device/unsafe`). */
export const HANDLE_KEY: unique symbol = Symbol("devref.handle");

/** The constructor shape every handle class keeps, so a handle can make more of its own kind. */
export type HandleConstructor<T extends RawDevice> = new (
  key: typeof HANDLE_KEY,
  object: Kobject,
  holder: Holder | null,
) => T;

/**
 * The device trait: anything that is a device (generic, platform, PCI, …) and can be
 * handed to device-agnostic subsystems.
 *
 * Every value of this type is a *handle*: owned ({@link ARef}) or borrowed
 * ({@link Borrowed}); there are no bare device objects. Device packages subclass it;
 * its constructor needs {@link HANDLE_KEY}, which only `@devref/raw-device/unsafe` hands out.
 *
 * **Invariants:** a handle checks that it is live on every use (a flag, about a
 * nanosecond); owned handles hold one count each.
 *
 * **Errors:** `ENODEV` on use of a revoked borrow or a put owned reference, with a
 * message that says how to keep a device (`.get()`).
 */
// The context brand is merged in through an interface: it exists only for the type checker.
export interface RawDevice<Ctx extends DeviceContext = Normal> {
  readonly [contextBrand]: Ctx;
}

// biome-ignore lint/suspicious/noUnsafeDeclarationMerging: the merged interface adds a type-only brand.
// biome-ignore lint/correctness/noUnusedVariables: Ctx is used by the merged interface.
export abstract class RawDevice<Ctx extends DeviceContext = Normal> {
  // Plain properties rather than #private ones: V8 constructs subclasses of a class with
  // #private fields about three times slower, and handles are made on every get().
  /** The shared counted object. */
  protected readonly object: Kobject;
  private handleState: number;
  /** The holder node while owned and live; recycled after put. */
  private holder: Holder | null;
  /** Who took this owned reference, kept for messages after put. */
  private holderLabel: string;

  constructor(key: typeof HANDLE_KEY, object: Kobject, holder: Holder | null) {
    if (key !== HANDLE_KEY) {
      throw new DevrefError(
        "EPERM",
        "device handles are made by device packages only; take one with .get()",
      );
    }
    this.object = object;
    this.handleState = holder === null ? BORROWED : OWNED;
    this.holder = holder;
    this.holderLabel = holder === null ? "" : holder.label;
  }

  /**
   * The object behind a live handle; throws if this handle was revoked or put. A subclass
   * names the object class it constructs its handles with, e.g. `this.live<DeviceState>()`.
   */
  protected live<K extends Kobject = Kobject>(): K {
    if (this.handleState < 0) this.throwDead();
    // SAFETY: a handle class is only ever constructed over its own package's object class.
    return this.object as K;
  }

  private throwDead(): never {
    const name = this.object.name;
    if (this.handleState === PUT) {
      throw new DevrefError(
        "ENODEV",
        `device '${name}': this owned reference (held by '${this.holderLabel}') was already put; ` +
          "take a new one with .get() from a live reference before using the device again",
      );
    }
    throw new DevrefError(
      "ENODEV",
      `device '${name}': this borrowed reference was used after its scope ended (the callback that ` +
        "received it has returned). A borrow is valid only inside its callback; to keep the device, " +
        "call .get('<who keeps it>') inside the callback for an owned reference, and put it when done",
    );
  }

  /** The device's name. */
  get name(): string {
    return this.live().name;
  }

  /** Whether this handle may still be used. */
  get isLive(): boolean {
    return this.handleState > 0;
  }

  /** Whether this handle is an owned, counted reference. */
  get isOwned(): boolean {
    return this.handleState === OWNED || this.handleState === PUT;
  }

  /**
   * Takes an owned reference (get_device), recorded under `label` in {@link holders}.
   *
   * **Errors:** `ENODEV` if this handle is not live.
   */
  get(label = "anonymous"): ARef<RawDevice> {
    const object = this.live();
    object.refcount.inc();
    // SAFETY: the handle took a count and a holder record, so it is owned.
    return this.makeHandle(object, object.addHolder(label)) as ARef<RawDevice>;
  }

  /**
   * Takes another owned reference to the same device (get_device), labelled like this one
   * unless `label` is given. Only owned references have it.
   */
  clone<T extends RawDevice>(this: T & OwnedMark, label?: string): ARef<T> {
    if (this.holder === null) {
      throw new DevrefError(
        "EINVAL",
        `device '${this.object.name}': clone() is for owned references; use .get() on a borrow`,
      );
    }
    // SAFETY: get() makes a handle of this handle's own class, which is T.
    return this.get(label ?? this.holder.label) as unknown as ARef<T>;
  }

  /** Drops an owned reference (put_device); a second call is a no-op. */
  put(this: RawDevice & OwnedMark): void {
    this.dropOwned();
  }

  /** Same as {@link put}, so `using` works. */
  [Symbol.dispose](this: RawDevice & OwnedMark): void {
    this.dropOwned();
  }

  private dropOwned(): void {
    const state = this.handleState;
    if (state === PUT) return;
    if (state !== OWNED) {
      throw new DevrefError(
        "EINVAL",
        `device '${this.object.name}': a borrowed reference is not yours to put; only references taken with .get() are`,
      );
    }
    this.handleState = PUT;
    leakRegistry?.unregister(this);
    this.object.removeHolder(this.holder!);
    this.holder = null;
    this.object.put();
  }

  private makeHandle(object: Kobject, holder: Holder | null): RawDevice {
    // SAFETY: every handle class keeps the base constructor's parameters (HandleConstructor).
    const Handle = this.constructor as HandleConstructor<RawDevice>;
    const handle = new Handle(HANDLE_KEY, object, holder);
    if (holder !== null && debugMode) {
      leakRegistry?.register(
        handle,
        { device: object.name, label: holder.label, stack: holder.stack },
        handle,
      );
    }
    return handle;
  }

  static {
    // Privileged operations, reachable only through this module's unexported bindings
    // (re-exported by "@devref/raw-device/unsafe" for device packages).
    borrowOf = (of) => {
      const self: RawDevice = of;
      // SAFETY: #make builds an instance of of's own class.
      return self.makeHandle(self.live(), null) as typeof of;
    };
    adoptInto = (Handle, object, label) => {
      const handle: RawDevice = new Handle(HANDLE_KEY, object, object.addHolder(label));
      if (debugMode) {
        leakRegistry?.register(
          handle,
          { device: object.name, label, stack: handle.holder?.stack },
          handle,
        );
      }
      return handle;
    };
    revokeBorrow = (handle) => {
      if (handle.handleState === BORROWED) handle.handleState = REVOKED;
    };
  }
}

/**
 * Makes an owned handle of class `Handle` that adopts a count the caller already holds
 * (Rust `ARef::from_raw`): how a device package hands out the reference a new device
 * starts with.
 */
export function adoptRef<T extends RawDevice>(
  Handle: HandleConstructor<T>,
  object: Kobject,
  label: string,
): ARef<T> {
  // SAFETY: the handle holds the adopted count and a holder record, so it is owned; its
  // class is Handle, so it is a T.
  return adoptInto(Handle, object, label) as unknown as ARef<T>;
}

/** Revokes a borrowed handle; owned handles are left alone (they end with put). */
export function revokeHandle(handle: RawDevice): void {
  revokeBorrow(handle);
}

/** Live owned references to `device`, oldest first (like Linux's ref_tracker). */
export function holders(device: RawDevice): HolderInfo[] {
  return kobjectOf(device).holders();
}

/** The current reference count of `device`, for introspection and tests. */
export function refcountOf(device: RawDevice): number {
  return kobjectOf(device).refcount.value;
}

/** @internal */
export function kobjectOf(device: RawDevice): Kobject {
  // SAFETY: reading a protected field from outside, for introspection only.
  return (device as unknown as { object: Kobject }).object;
}

/**
 * A set of borrows that end together: what a bus opens around a driver callback.
 *
 * **Invariants:** after `close()` every borrow made through it throws on use.
 */
export class BorrowScope {
  #borrows: RawDevice[] = [];
  #closed = false;

  /** A borrow of `device` that lives until this scope closes. */
  borrow<T extends RawDevice>(device: T): T {
    if (this.#closed) {
      throw new DevrefError(
        "EINVAL",
        "this borrow scope has closed; open a new one for a new callback",
      );
    }
    const b = borrowOf(device);
    this.#borrows.push(b);
    return b;
  }

  /** Revokes every borrow made through this scope. */
  close(): void {
    this.#closed = true;
    for (const b of this.#borrows) revokeBorrow(b);
    this.#borrows = [];
  }

  get closed(): boolean {
    return this.#closed;
  }
}

/** Whether `value` is a promise-like object. */
function isThenable(value: unknown): value is PromiseLike<unknown> {
  return (
    typeof value === "object" &&
    value !== null &&
    typeof (value as { then?: unknown }).then === "function"
  );
}

/**
 * Lends `device` to `fn` for the duration of the call (or, when `fn` returns a promise,
 * until it settles), then revokes the borrow.
 *
 * **Errors:** `ENODEV` if `device` is not live; whatever `fn` throws.
 *
 * @example
 * ```ts
 * const name = withBorrow(owned, (dev) => dev.name); // fine
 * withBorrow(owned, (dev) => dev);                   // does not compile: the borrow would escape
 * ```
 */
export function withBorrow<T extends RawDevice, R>(
  device: T,
  fn: <S>(borrow: Borrowed<T, S>) => R,
): R {
  const scope = new BorrowScope();
  // SAFETY: the scope brand is type-level only; the borrow is revoked when fn is done.
  const borrow = scope.borrow(device) as Borrowed<T, never>;
  let result: R;
  try {
    result = fn(borrow);
  } catch (e) {
    scope.close();
    throw e;
  }
  if (isThenable(result)) {
    // SAFETY: R is the promise type fn returned; the same promise is handed back.
    return Promise.resolve(result).finally(() => scope.close()) as R;
  }
  scope.close();
  return result;
}
