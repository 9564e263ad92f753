//! Waiting for a driver's promise on the simulated SoC: the promise settles only as the
//! SoC's events run (mailbox messages, the firmware's work, timers), so run them until it
//! does.

import { DevrefError } from "@devref/raw-device";
import type { Soc } from "@devref/sim";

/** Microtask turns given to promise continuations between two rounds of events. */
const TURNS = 32;

/**
 * Runs `soc` (its events, and the promise continuations between them) until `promise`
 * settles, and returns its outcome: what a test or a scenario does instead of a bare
 * `await` on a driver call.
 *
 * **Errors:** the promise's own rejection; `EBUSY` when nothing is left to run and the
 * promise is still pending (it waits for something that will never happen).
 *
 * @example
 * ```ts
 * const t = await settleUntil(soc, smc.readKey("TB0T"));
 * ```
 */
export async function settleUntil<T>(soc: Soc, promise: Promise<T>): Promise<T> {
  let done = false;
  promise.then(
    () => {
      done = true;
    },
    () => {
      done = true;
    },
  );
  while (!done) {
    await soc.settle();
    for (let i = 0; i < TURNS && !done; i++) await null;
    if (!done && soc.events.nextTimeNs() === Number.POSITIVE_INFINITY) {
      throw new DevrefError(
        "EBUSY",
        `settleUntil: the SoC has nothing left to run (step ${soc.stepCount}) and the promise is still pending`,
      );
    }
  }
  return promise;
}
