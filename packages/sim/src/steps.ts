//! The step counter: every event run and every MMIO access is one step.

/**
 * Counts steps and calls back when a chosen step is reached (fault injection by step).
 *
 * Shared by the event queue and every MMIO port of one SoC; a hot-path increment and one
 * comparison per step.
 *
 * **Invariants:** `count` only grows; `onTrigger` runs when `count` reaches `trigger`, before
 * the step that has that number does anything.
 */
export class StepCounter {
  /** Steps taken so far; the step being taken has this number. */
  count = 0;
  /** The next step number at which {@link StepCounter.onTrigger} must run. */
  trigger: number = Number.POSITIVE_INFINITY;
  /** Called with the new count when it reaches `trigger`. */
  onTrigger: (step: number) => void = () => {};

  /** Counts one step (the hot paths inline this). */
  tick(): void {
    if (++this.count >= this.trigger) this.onTrigger(this.count);
  }
}
