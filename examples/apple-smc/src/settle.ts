//! Waiting for a driver's promise on the simulated SoC: the promise settles only as the
//! SoC's events run (mailbox messages, the firmware's work, timers), so run them until it
//! does.

import { checkInteger, DevrefError } from "@devref/raw-device";
import type { Soc } from "@devref/sim";

/** Microtask turns given to promise continuations after each event. */
const TURNS = 32;

/**
 * Runs `soc` one event at a time, giving promise continuations their turns after each,
 * until `promise` settles, and returns its outcome: what a test or a scenario does instead
 * of a bare `await` on a driver call. (One event at a time matters: a continuation — the
 * next command of a sequence — must run before a far-off timer, not after it.)
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
  for (;;) {
    for (let i = 0; i < TURNS && !done; i++) await null;
    if (done) break;
    if (!soc.step()) {
      throw new DevrefError(
        "EBUSY",
        `settleUntil: the SoC has nothing left to run (step ${soc.stepCount}) and the promise is still pending`,
      );
    }
  }
  return promise;
}

/**
 * Lets `ns` nanoseconds of virtual time pass on `soc` the way {@link settleUntil} runs it:
 * one event at a time with promise continuations in between, so driver work that is under
 * way (a command being sent, the next step of a sequence) goes on while time passes.
 *
 * **Errors:** `EINVAL` for a negative or fractional `ns`.
 *
 * @example
 * ```ts
 * const p = smc.readKey("TB0T");
 * await settleFor(soc, 1_000_000); // the command is on its way, its reply perhaps too
 * ```
 */
export async function settleFor(soc: Soc, ns: number): Promise<void> {
  checkInteger("settleFor", "ns", ns, 0, Number.MAX_SAFE_INTEGER - soc.nowNs);
  const end = soc.nowNs + ns;
  for (;;) {
    for (let i = 0; i < TURNS; i++) await null;
    if (soc.events.nextTimeNs() > end) break;
    soc.step();
  }
  soc.runFor(end - soc.nowNs);
}
