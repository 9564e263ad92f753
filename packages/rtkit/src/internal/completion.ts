//! C header: include/linux/completion.h (complete_all, reinit_completion,
//! wait_for_completion_interruptible_timeout)

import type { DevrefError } from "@devref/raw-device";

/** One call blocked on a completion, with its timeout. */
export class Waiter {
  done = false;
  handle: unknown = null;
  readonly resolve: (result: DevrefError | null) => void;
  constructor(resolve: (result: DevrefError | null) => void) {
    this.resolve = resolve;
  }
}

/**
 * A completion as the kernel's: `completeAll` wakes every waiter and stays done until
 * `reinit`; a wait on a done completion returns at once.
 */
export class Completion {
  done = false;
  waiters: Waiter[] = [];
  /** What the waiters are waiting for, for the ETIME message. */
  readonly what: string;
  constructor(what: string) {
    this.what = what;
  }
}
