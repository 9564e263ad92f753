//! C header: include/linux/device.h (get_device/put_device), include/linux/kobject.h
//! Rust: rust/kernel/device.rs (Device<Ctx>), rust/kernel/sync/aref.rs (ARef)

import { describeValue } from "./args.js";
import { DevrefError } from "./errors.js";
import {
  CONTEXT_BOUND,
  CONTEXT_CORE,
  CONTEXT_NORMAL,
  Lifetime,
  type LifetimeOwner,
  LifetimePool,
} from "./lifetime.js";
import { claimOneCopy } from "./one-copy.js";
import { Refcount, type RefcountReporter, type RefcountSettings } from "./refcount.js";

// Handles made by one copy of this module are foreign to another: refuse a second copy now.
claimOneCopy(import.meta.url);

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

/**
 * The mark of an owned reference, and what only an owned reference can do: put itself,
 * be disposed by `using`, and clone itself. Only {@link ARef} types carry it, so a borrow
 * can be neither put nor disposed, not even by `using`.
 */
export interface OwnedMark {
  readonly [ownedBrand]: true;
  /** Drops this reference (put_device); a second call is a no-op. */
  put(): void;
  /** Same as {@link OwnedMark.put}, so `using` works. */
  [Symbol.dispose](): void;
  /**
   * Takes another owned reference to the same device (get_device), labelled like this
   * one unless `label` is given.
   *
   * **Errors:** `ENODEV` if this reference was already put.
   */
  clone(label?: string): this;
}

/** A handle type that is not owned: what a borrow is made from (see {@link withBorrow}). */
export interface NotOwned {
  readonly [ownedBrand]?: never;
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

/** Ownership settings. */
export interface OwnershipOptions {
  /**
   * Record a stack for every owned reference and report references that are
   * garbage-collected without `put`. Costs about a microsecond per reference.
   */
  readonly debug?: boolean;
  /** Where leaks go in debug mode; by default, `console.error`. */
  readonly onLeak?: (leak: LeakReport) => void;
}

const defaultLeakReporter = (leak: LeakReport): void => {
  console.error(
    `devref: leaked reference to ${leak.device} held by '${leak.label}' was garbage-collected without put()` +
      (leak.stack === undefined ? "" : `\n  taken at:\n${leak.stack}`),
  );
};

/**
 * Ownership debug settings for a set of objects: a `Machine` has its own, and objects made
 * without one share {@link defaultOwnershipSettings}.
 *
 * **Invariants:** the leak registry exists once debug mode was turned on.
 */
export class OwnershipSettings implements RefcountSettings {
  debug = false;
  /** The reporter of these objects' counters; null uses the process-wide one. */
  refcountReporter: RefcountReporter | null = null;
  onLeak: (leak: LeakReport) => void = defaultLeakReporter;
  /** @internal */
  leakRegistry: FinalizationRegistry<LeakReport> | undefined = undefined;

  /** Changes the settings; returns the settings in force before. */
  configure(options: OwnershipOptions): Required<OwnershipOptions> {
    const previous = { debug: this.debug, onLeak: this.onLeak };
    if (options.debug !== undefined) {
      if (typeof options.debug !== "boolean") {
        throw new DevrefError(
          "EINVAL",
          `configureOwnership: debug must be true or false, not ${describeValue(options.debug)}`,
        );
      }
      this.debug = options.debug;
    }
    if (options.onLeak !== undefined) {
      if (typeof options.onLeak !== "function") {
        throw new DevrefError(
          "EINVAL",
          `configureOwnership: onLeak must be a function, not ${describeValue(options.onLeak)}`,
        );
      }
      this.onLeak = options.onLeak;
    }
    if (this.debug && this.leakRegistry === undefined) {
      this.leakRegistry = new FinalizationRegistry((leak) => this.onLeak(leak));
    }
    return previous;
  }
}

/** The settings of objects made without a machine of their own. */
// module-state: the process-wide defaults, which the default machine uses (as the kernel
// has one set of debug settings); every other machine has its own.
export const defaultOwnershipSettings: OwnershipSettings = new OwnershipSettings();

/** Changes the default ownership settings; returns the settings in force before. */
export function configureOwnership(options: OwnershipOptions): Required<OwnershipOptions> {
  if (typeof options !== "object" || options === null) {
    throw new DevrefError(
      "EINVAL",
      `configureOwnership: options must be an object, not ${describeValue(options)}`,
    );
  }
  return defaultOwnershipSettings.configure(options);
}

function captureStack(): string | undefined {
  // Drop the "Error" line and the frames inside this module.
  const stack = new Error().stack;
  return stack?.split("\n").slice(3).join("\n") ?? "";
}

// module-state: a cache of plain memory (recycled holder records), like an allocator's free
// list; it holds no state of any system.
const lifetimes = new LifetimePool();

// ---------------------------------------------------------------------------------------
// The shared, counted object behind every handle.

/**
 * The counted core of a device (the kernel's `struct kobject`): the reference count, the
 * name, the live holders, the release callback and the handle class users see.
 *
 * Device packages extend it with their own state; users never see it, only handles.
 *
 * **Invariants:** `release` runs exactly once, when the count drops to zero; handles of
 * the object are always made with `Handle`, never with a class a handle claims to be.
 */
export class Kobject {
  name: string;
  readonly refcount: Refcount;
  /** The class of every handle made for this object. */
  readonly Handle: HandleConstructor<RawDevice>;
  /** Debug settings: the machine's, or the defaults. */
  readonly settings: OwnershipSettings;
  /** True once the release callback has run. */
  released = false;
  private releaseFn: (() => void) | null;
  private newestHolder: Lifetime | null = null;
  private liveHolders = 0;

  /**
   * @param name shown in messages and listings.
   * @param release runs once when the last reference goes (device_release).
   * @param Handle the handle class users see for this object.
   */
  constructor(
    name: string,
    release: () => void,
    Handle: HandleConstructor<RawDevice>,
    settings: OwnershipSettings = defaultOwnershipSettings,
  ) {
    this.name = name;
    this.refcount = new Refcount(1, name, settings);
    this.releaseFn = release;
    this.Handle = Handle;
    this.settings = settings;
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

  /**
   * Records an owned reference under `label` (a handle's, or one a device package keeps
   * without a handle) and returns its lifetime. The caller has taken the count.
   */
  addHolder(label: string): Lifetime {
    const holder = lifetimes.take(label, undefined);
    if (this.settings.debug) holder.stack = captureStack();
    const head = this.newestHolder;
    holder.next = head;
    if (head !== null) head.prev = holder;
    this.newestHolder = holder;
    this.liveHolders++;
    return holder;
  }

  /** Ends an owned reference's lifetime and drops its record; the caller drops the count. */
  removeHolder(holder: Lifetime): void {
    const { prev, next } = holder;
    if (prev !== null) prev.next = next;
    else this.newestHolder = next;
    if (next !== null) next.prev = prev;
    lifetimes.give(holder);
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

/** Proof that a handle is being made by a device package (see `@devref/raw-device/unsafe`). */
export const HANDLE_KEY: unique symbol = Symbol("devref.handle");

/** The constructor shape every handle class keeps, so the object can make more of its own kind. */
export type HandleConstructor<T extends RawDevice> = new (
  key: typeof HANDLE_KEY,
  object: Kobject,
  lifetime: Lifetime,
  context: number,
) => T;

// module-state: privileged access to a handle's private fields, for this module only,
// assigned once by RawDevice's static block (where TypeScript allows it).
let liveOf: (handle: RawDevice) => Kobject;
let objectOfLive: (value: unknown) => Kobject | null;
let contextLevelOf: (handle: RawDevice) => number;
let isOwnedHandle: (handle: RawDevice) => boolean;
let lenderOf: (handle: RawDevice) => LifetimeOwner | null;
let dropOwned: (handle: RawDevice) => void;

/**
 * The device trait: anything that is a device (generic, platform, PCI, …) and can be
 * handed to device-agnostic subsystems.
 *
 * Every value of this type is a *handle*: owned ({@link ARef}) or borrowed
 * ({@link Borrowed}); there are no bare device objects. Device packages subclass it;
 * its constructor needs {@link HANDLE_KEY}, which only `@devref/raw-device/unsafe` hands out.
 *
 * **Invariants:** a handle checks that it is live on every use (one load and compare,
 * about a nanosecond); owned handles hold one count each; the liveness is not stored on
 * the handle, so copying or freezing a handle changes nothing about it.
 *
 * **Errors:** `ENODEV` on use of a revoked borrow or a put owned reference, with a
 * message that says how to keep a device (`.get()`).
 */
// biome-ignore lint/suspicious/noUnsafeDeclarationMerging: the merged interface adds a type-only brand.
// biome-ignore lint/correctness/noUnusedVariables: Ctx is used by the merged interface.
export abstract class RawDevice<Ctx extends DeviceContext = Normal> {
  // Plain properties rather than #private ones: V8 constructs subclasses of a class with
  // #private fields about three times slower, and reads them slower; handles are made on
  // every get(). TypeScript's `private` keeps subclasses (and so drivers) away from them.
  private readonly object: Kobject;
  private readonly lifetime: Lifetime;
  private readonly gen: number;
  /** The run-time context level: what the handle was lent for. */
  private readonly context: number;
  /** Whether the handle is an owned reference; kept after it ends, for messages. */
  private readonly owned: boolean;
  /** Who took this owned reference, kept for messages after put. */
  private readonly holderLabel: string;

  constructor(key: typeof HANDLE_KEY, object: Kobject, lifetime: Lifetime, context: number) {
    if (key !== HANDLE_KEY) refuseHandle();
    this.object = object;
    this.lifetime = lifetime;
    this.gen = lifetime.gen;
    this.context = context;
    this.owned = lifetime.scope === null;
    this.holderLabel = this.owned ? lifetime.label : "";
  }

  /** The device's name. */
  get name(): string {
    return liveObject(this).name;
  }

  /** Whether this handle may still be used. */
  get isLive(): boolean {
    const l = this.lifetime;
    return l !== undefined && l.gen === this.gen;
  }

  /** Whether this handle is an owned, counted reference (live or put). */
  get isOwned(): boolean {
    return this.owned === true;
  }

  /**
   * Takes an owned reference (get_device), recorded under `label` in {@link holders}.
   *
   * **Errors:** `ENODEV` if this handle is not live; `EINVAL` if `label` is not a string.
   */
  get(label = "anonymous"): ARef<RawDevice> {
    // liveObject's test written out, so that get and put inline whole at the caller.
    const l = this.lifetime;
    if (l === undefined || l.gen !== this.gen || typeof label !== "string") {
      return refuseGet(this, label);
    }
    return makeOwned(this.object, label);
  }

  static {
    liveOf = (h) => {
      if (typeof h !== "object" || h === null) throwNotHandle(h);
      const l = h.lifetime;
      const object = h.object;
      // The object test keeps a look-alike (an object with fields named like a handle's)
      // from handing callers undefined; a full class test here would cost every use.
      if (l === undefined || l.gen !== h.gen || typeof object !== "object" || object === null) {
        if (!(h instanceof RawDevice) || l === undefined || !(object instanceof Kobject)) {
          throwNotHandle(h);
        }
        throwDead(object.name, h.owned, h.holderLabel);
      }
      return object;
    };
    // liveOf's test written out again on purpose: as one shared function, its property loads
    // would see every handle class of every caller, and the DMA and Devres fast paths that
    // call this one measured 2× slower (dma-direct 27 → 55–60 ns).
    objectOfLive = (h) => {
      if (typeof h !== "object" || h === null) return null;
      // SAFETY: the fields are read as a handle's; an object that is not one has no lifetime.
      const l = (h as RawDevice).lifetime;
      const object = (h as RawDevice).object;
      if (l === undefined || l.gen !== (h as RawDevice).gen) return null;
      return typeof object === "object" ? object : null;
    };
    contextLevelOf = (h) => h.context;
    isOwnedHandle = (h) => h.owned;
    lenderOf = (h) => h.lifetime.scope;
    dropOwned = (h) => {
      if (typeof h !== "object" || h === null) throwNotHandle(h);
      const l = h.lifetime;
      // A handle always has a lifetime; only objects made from the prototype alone lack one.
      if (l === undefined) throwNotHandle(h);
      if (!h.owned) {
        liveOf(h);
        throw new DevrefError(
          "EINVAL",
          `device '${h.object.name}': a borrowed reference is not yours to put; only references taken with .get() are`,
        );
      }
      if (l.gen !== h.gen) return; // put twice: a no-op
      endOwned(h.object, l);
    };
    // What only owned references can do is on the prototype but not in the class's type:
    // the type carries it through OwnedMark, so a borrow cannot be put or used with `using`.
    // The common case (a live owned handle) is written out here, small enough to inline at
    // the caller; everything else (put twice, a borrow, not a handle) takes dropOwned.
    const put = function (this: RawDevice): void {
      const l = typeof this === "object" && this !== null ? this.lifetime : undefined;
      if (l !== undefined && l.gen === this.gen && this.owned === true) {
        endOwned(this.object, l);
        return;
      }
      dropOwned(this);
    };
    Object.defineProperties(RawDevice.prototype, {
      put: { value: put, writable: false, configurable: false },
      [Symbol.dispose]: { value: put, writable: false, configurable: false },
      clone: {
        value: function (this: RawDevice, label?: string): RawDevice {
          const object = liveOf(this);
          if (!this.owned) {
            throw new DevrefError(
              "EINVAL",
              `device '${object.name}': clone() is for owned references; take one from a borrow with .get('<who keeps it>')`,
            );
          }
          return this.get(label ?? this.holderLabel);
        },
        writable: false,
        configurable: false,
      },
    });
  }
}

// The context brand is merged in through an interface: it exists only for the type checker.
export interface RawDevice<Ctx extends DeviceContext = Normal> {
  readonly [contextBrand]: Ctx;
}

/**
 * The object behind a live handle: how device packages reach their own state.
 *
 * **Errors:** `ENODEV` if the handle was revoked or put; `EINVAL` if `handle` is not a
 * device handle at all.
 */
export function liveObject<K extends Kobject = Kobject>(handle: RawDevice): K {
  // SAFETY: a handle is only ever constructed over its own package's object class.
  return liveOf(handle) as K;
}

/**
 * The object behind `value` if it is a live handle, else null: the test of a hot path that
 * needs one package's object and calls {@link liveObject} for the error only when this
 * says no. It tests liveness, not the handle's class: check the object's own class (or a
 * field only that class has).
 */
export function objectIfLive(value: unknown): Kobject | null {
  return objectOfLive(value);
}

/**
 * The run-time context level of a live handle: {@link CONTEXT_NORMAL} for owned references
 * and plain borrows, {@link CONTEXT_BOUND}/{@link CONTEXT_CORE} for borrows a bus lent.
 *
 * **Errors:** as {@link liveObject}.
 */
export function contextOf(handle: RawDevice): number {
  liveOf(handle);
  return contextLevelOf(handle);
}

const CONTEXT_NAMES = ["Normal", "Bound", "Core"] as const;

/**
 * Checks that `handle` was lent for at least `level` (a bound driver, or a bus callback),
 * as its type claims: a cast cannot make an owned reference bound.
 *
 * **Errors:** `EPERM` naming `what` when it was not; as {@link liveObject}.
 */
export function requireContext(handle: RawDevice, level: number, what: string): Kobject {
  const object = liveOf(handle);
  const have = contextLevelOf(handle);
  if (have < level) {
    throw new DevrefError(
      "EPERM",
      `device '${object.name}': ${what} needs a ${CONTEXT_NAMES[level]} borrow (what a bus hands to ` +
        `probe, remove and bound callbacks), but was given ${isOwnedHandle(handle) ? "an owned reference" : `a ${CONTEXT_NAMES[have]} borrow`}; ` +
        "call it from the driver's callback with the borrow it received",
    );
  }
  return object;
}

/** Ends a live owned reference: its leak-registry entry, its holder record, its count. */
function endOwned(object: Kobject, l: Lifetime): void {
  if (l.tracked) object.settings.leakRegistry?.unregister(l);
  object.removeHolder(l);
  object.put();
}

function refuseHandle(): never {
  throw new DevrefError(
    "EPERM",
    "device handles are made by device packages only; take one with .get()",
  );
}

/** Why `get(label)` was refused: a dead handle or not a handle (as liveObject says), or the label. */
function refuseGet(handle: RawDevice, label: unknown): never {
  const object = liveObject(handle);
  throw new DevrefError(
    "EINVAL",
    `device '${object.name}': get(label) takes a string naming who keeps the reference, not ${describeValue(label)}`,
  );
}

function throwNotHandle(value: unknown): never {
  throw new DevrefError(
    "EINVAL",
    `expected a device handle made by a device package, not ${describeValue(value)}`,
  );
}

function throwDead(name: string, owned: boolean, holderLabel: string): never {
  if (owned) {
    throw new DevrefError(
      "ENODEV",
      `device '${name}': this owned reference (held by '${holderLabel}') was already put; ` +
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

/** Debug mode: the handle goes into the leak registry (its lifetime says so, for put). */
function registerLeak(object: Kobject, handle: RawDevice, lifetime: Lifetime): void {
  const registry = object.settings.leakRegistry;
  if (registry !== undefined && object.settings.debug) {
    registry.register(
      handle,
      { device: object.name, label: lifetime.label, stack: lifetime.stack },
      lifetime,
    );
    lifetime.tracked = true;
  }
}

function makeOwned(object: Kobject, label: string): ARef<RawDevice> {
  object.refcount.inc();
  const lifetime = object.addHolder(label);
  const handle = new object.Handle(HANDLE_KEY, object, lifetime, CONTEXT_NORMAL);
  // Only a reference taken in debug mode has a stack: one load decides for the registry.
  if (lifetime.stack !== undefined) registerLeak(object, handle, lifetime);
  // SAFETY: the handle took a count and a holder record, so it is owned.
  return handle as ARef<RawDevice>;
}

/**
 * Makes an owned handle that adopts a count the caller already holds (Rust
 * `ARef::from_raw`): how a device package hands out the reference a new device starts with.
 * The handle's class is the object's `Handle`.
 */
export function adoptRef<T extends RawDevice>(object: Kobject, label: string): ARef<T> {
  const lifetime = object.addHolder(label);
  const handle = new object.Handle(HANDLE_KEY, object, lifetime, CONTEXT_NORMAL);
  if (lifetime.stack !== undefined) registerLeak(object, handle, lifetime);
  // SAFETY: the handle holds the adopted count and a holder record, so it is owned; the
  // caller names the object's handle class as T.
  return handle as unknown as ARef<T>;
}

/** Live owned references to `device`, oldest first (like Linux's ref_tracker). */
export function holders(device: RawDevice): HolderInfo[] {
  return introspected(device).holders();
}

/** The current reference count of `device`, for introspection and tests. */
export function refcountOf(device: RawDevice): number {
  return introspected(device).refcount.value;
}

/** The object of a live handle, class-tested: introspection is not a hot path. */
function introspected(device: RawDevice): Kobject {
  const object = liveObject(device);
  if (!(object instanceof Kobject)) throwNotHandle(device);
  return object;
}

/**
 * A set of borrows that end together: what a bus opens around a driver callback, and what
 * {@link withBorrow} opens around its function.
 *
 * A scope pins every object it lends from a handle (a count, listed by `holders()` as
 * `borrow`, until the scope closes), so a borrow never outlives its device even if the
 * lender puts its own reference meanwhile. Borrows a device package mints for an object
 * ({@link borrowObject}) are not pinned: the package keeps the object alive around its
 * callbacks.
 * A scope that lends a borrow *of a borrow* closes when that borrow's scope does: a borrow
 * never outlives the scope it came from.
 *
 * **Invariants:** after `close()` every borrow made through it throws on use, and every
 * scope nested in it is closed too.
 */
export class BorrowScope implements LifetimeOwner {
  private readonly lifetime: Lifetime;
  private readonly context: number;
  /** Pairs of a pinned object and its holder record. */
  private pinned: (Kobject | Lifetime)[] | null = null;
  private nested: BorrowScope[] | null = null;
  private parents: BorrowScope[] | null = null;
  private isClosed = false;

  /** @param context the run-time context level of borrows minted by {@link borrowObject}. */
  constructor(context: number = CONTEXT_NORMAL) {
    this.lifetime = new Lifetime("", undefined, this);
    this.context = context;
  }

  private checkOpen(): void {
    if (this.isClosed) {
      throw new DevrefError(
        "EINVAL",
        "this borrow scope has closed; open a new one for a new callback",
      );
    }
  }

  /** Holds `object` alive until the scope closes, listed by {@link holders} as `borrow`. */
  private pin(object: Kobject): void {
    object.refcount.inc();
    const record = object.addHolder("borrow");
    if (this.pinned === null) this.pinned = [];
    this.pinned.push(object, record);
  }

  /**
   * A borrow of a live handle, of the same class, that lives until this scope closes. A
   * borrow of a borrow keeps the source's context and ends with the source's scope too;
   * a borrow of an owned reference is `Normal` unless `context` says otherwise.
   *
   * **Errors:** `ENODEV` if `device` is not live; `EINVAL` if this scope has closed.
   */
  borrow<T extends RawDevice>(device: T, context?: number): T {
    const object = liveObject(device);
    this.checkOpen();
    const source = lenderOf(device);
    if (source instanceof BorrowScope && source !== this) source.adopt(this);
    this.pin(object);
    const handle = new object.Handle(
      HANDLE_KEY,
      object,
      this.lifetime,
      context ?? contextLevelOf(device),
    );
    // SAFETY: the object's handle class is the class of every handle of it, so T's.
    return handle as T;
  }

  /**
   * A borrow of `object` minted by a device package (no handle needed), with this scope's
   * context, of class `Handle` (by default the object's own handle class). The caller keeps
   * the object alive until the scope closes.
   *
   * **Errors:** `EINVAL` if this scope has closed.
   */
  borrowObject<T extends RawDevice>(object: Kobject, Handle?: HandleConstructor<T>): T {
    this.checkOpen();
    const Make = Handle ?? object.Handle;
    // SAFETY: the caller names the handle class it asks for as T.
    return new Make(HANDLE_KEY, object, this.lifetime, this.context) as T;
  }

  private adopt(child: BorrowScope): void {
    if (this.isClosed) {
      child.close();
      return;
    }
    if (this.nested === null) this.nested = [child];
    else if (!this.nested.includes(child)) this.nested.push(child);
    else return;
    if (child.parents === null) child.parents = [this];
    else child.parents.push(this);
  }

  /** Revokes every borrow made through this scope and the scopes nested in it. */
  close(): void {
    if (this.isClosed) return;
    this.isClosed = true;
    this.lifetime.gen++;
    const nested = this.nested;
    this.nested = null;
    if (nested !== null) for (const child of nested) child.close();
    const parents = this.parents;
    this.parents = null;
    if (parents !== null) {
      for (const p of parents) {
        const list = p.nested;
        const i = list === null ? -1 : list.indexOf(this);
        if (i >= 0) list!.splice(i, 1);
      }
    }
    const pinned = this.pinned;
    this.pinned = null;
    if (pinned !== null) {
      for (let i = 0; i < pinned.length; i += 2) {
        // SAFETY: pin() pushes an object, then its record.
        const object = pinned[i] as Kobject;
        object.removeHolder(pinned[i + 1] as Lifetime);
        object.put();
      }
    }
  }

  get closed(): boolean {
    return this.isClosed;
  }
}

/** Whether `value` is a promise-like object. */
export function isThenable(value: unknown): value is PromiseLike<unknown> {
  if ((typeof value !== "object" && typeof value !== "function") || value === null) return false;
  try {
    // SAFETY: reads one property of an object; its type is checked right here.
    return typeof (value as { then?: unknown }).then === "function";
  } catch {
    return false;
  }
}

/**
 * Lends `device` to `fn` for the duration of the call (or, when `fn` returns a promise,
 * until it settles), then revokes the borrow.
 *
 * The borrow is typed without the owned mark even when `device` is owned, so it can be
 * neither kept, put nor returned. A borrow lent from a borrow also ends when the source's
 * scope does (an `async` function cannot stretch a probe's borrow past the probe).
 *
 * **Errors:** `ENODEV` if `device` is not live; `EINVAL` if `fn` is not a function;
 * whatever `fn` throws.
 *
 * @example
 * ```ts
 * const name = withBorrow(owned, (dev) => dev.name); // fine
 * withBorrow(owned, (dev) => dev);                   // does not compile: the borrow would escape
 * ```
 */
export function withBorrow<T extends RawDevice & NotOwned, R>(
  device: T | (T & OwnedMark),
  fn: <S>(borrow: Borrowed<T, S>) => R,
): R {
  liveObject(device);
  if (typeof fn !== "function") {
    throw new DevrefError("EINVAL", `withBorrow: fn must be a function, not ${describeValue(fn)}`);
  }
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
    // SAFETY: R is the promise type fn returned; the same settlement is handed back.
    return Promise.resolve(result).finally(() => scope.close()) as R;
  }
  scope.close();
  return result;
}

export { CONTEXT_BOUND, CONTEXT_CORE, CONTEXT_NORMAL };
