//! C header: include/linux/ref_tracker.h (who holds a reference), include/linux/kobject.h
//!
//! The run-time side of ownership: a `Lifetime` says whether a handle may still be used.
//! Every owned reference has one; every borrow scope has one, shared by its borrows. A
//! handle remembers the generation of its lifetime when it is made; ending the lifetime
//! bumps the generation. The state lives outside the handle, so a handle that is copied
//! (`Object.assign`) shares its original's fate, and one that is frozen can still end.

/** Device-context levels at run time (the type-level `Normal`/`Bound`/`Core`). */
export const CONTEXT_NORMAL = 0;
/** A driver is bound for as long as the borrow lives. */
export const CONTEXT_BOUND = 1;
/** Inside a bus callback (probe, remove) with the device lock held. */
export const CONTEXT_CORE = 2;

/** A scope a lifetime belongs to, told when the lifetime's parent ends. */
export interface LifetimeOwner {
  close(): void;
}

/**
 * The liveness of one owned reference (and its place in its object's holder list) or of
 * one borrow scope.
 *
 * **Invariants:** `gen` only grows; a handle made at generation g is live while
 * `gen === g`. Owned lifetimes are recycled after their reference is put, which is safe
 * because recycling bumps the generation first.
 */
export class Lifetime {
  gen = 0;
  /** The label of an owned reference (its holder record). */
  label: string;
  /** Where the owned reference was taken, in debug mode. */
  stack: string | undefined;
  /** Links of the object's holder list, newest first. */
  prev: Lifetime | null = null;
  next: Lifetime | null = null;
  /** The borrow scope this lifetime stands for, or null for an owned reference. */
  scope: LifetimeOwner | null;
  /**
   * Whether the reference's handle is in its settings' leak registry (debug mode when it
   * was taken): put must unregister it, whatever the settings say by then.
   */
  tracked = false;

  constructor(label: string, stack: string | undefined, scope: LifetimeOwner | null) {
    this.label = label;
    this.stack = stack;
    this.scope = scope;
  }
}

/**
 * Recycled owned lifetimes: a get() then allocates only its handle, and the list links stay
 * between long-lived objects, which keeps the garbage collector's write barrier off the path.
 * A cache of plain memory, like an allocator's: it holds no state of any system.
 */
export class LifetimePool {
  private free: Lifetime | null = null;

  take(label: string, stack: string | undefined): Lifetime {
    const l = this.free;
    if (l === null) return new Lifetime(label, stack, null);
    this.free = l.next;
    l.next = null;
    l.label = label;
    l.stack = stack;
    return l;
  }

  /** Ends `l` (every handle made from it dies) and keeps it for reuse. */
  give(l: Lifetime): void {
    l.gen++;
    l.prev = null;
    l.stack = undefined;
    l.tracked = false;
    l.next = this.free;
    this.free = l;
  }
}
