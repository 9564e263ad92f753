// A timer source a test drives by hand: nothing fires until advance().
import type { RtkitTimers } from "@devref/rtkit";

interface Pending {
  readonly at: number;
  readonly fn: () => void;
}

export class ManualTimers implements RtkitTimers {
  now = 0;
  private nextId = 1;
  private readonly pending = new Map<number, Pending>();

  setTimeout(fn: () => void, ms: number): unknown {
    const id = this.nextId++;
    this.pending.set(id, { at: this.now + ms, fn });
    return id;
  }

  clearTimeout(handle: unknown): void {
    this.pending.delete(handle as number);
  }

  /** Timers not yet fired or cleared. */
  get count(): number {
    return this.pending.size;
  }

  /** Moves time forward by `ms`, firing due timers in order. */
  advance(ms: number): void {
    const target = this.now + ms;
    for (;;) {
      let due: [number, Pending] | null = null;
      for (const entry of this.pending) {
        if (entry[1].at <= target && (due === null || entry[1].at < due[1].at)) due = entry;
      }
      if (due === null) break;
      this.pending.delete(due[0]);
      this.now = due[1].at;
      due[1].fn();
    }
    this.now = target;
  }
}
