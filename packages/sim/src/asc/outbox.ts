//! The firmware's outgoing path: a software queue in front of the I2A FIFO (a firmware
//! waits for room, it does not lose messages), and the ring of recent messages a crashlog
//! reports in its `Cmbx` section.

import type { AscMailbox } from "./mailbox.js";

/** Messages the history ring keeps (the crashlog's `Cmbx` entries). */
export const HISTORY = 16;

/**
 * Queue and history of one firmware. Typed arrays only: sending and remembering allocate
 * nothing (the queue doubles on the rare occasion it is full).
 *
 * **Invariants:** queued messages reach I2A in the order they were sent, and only after
 * every message sent before them.
 */
export class FirmwareOutbox {
  /** Messages waiting for room in I2A. */
  count = 0;
  /** Messages in the history ring (at most {@link HISTORY}). */
  historyCount = 0;
  /** Index the history ring writes next. */
  historyNext = 0;
  private head = 0;
  private q = new Uint32Array(3 * 16);
  private readonly hist = new Uint32Array(HISTORY * 5);
  private readonly asc: AscMailbox;

  constructor(asc: AscMailbox) {
    this.asc = asc;
  }

  /** Sends at once when nothing waits and `hold` is false; queues otherwise. */
  send(hi: number, lo: number, ep: number, hold: boolean): void {
    if (this.count === 0 && !hold && this.asc.pushOutbox(hi, lo, ep)) return;
    let q = this.q;
    const cap = q.length / 3;
    if (this.count === cap) {
      const bigger = new Uint32Array(q.length * 2);
      for (let i = 0; i < cap; i++) {
        const from = ((this.head + i) % cap) * 3;
        bigger.set(q.subarray(from, from + 3), i * 3);
      }
      this.q = q = bigger;
      this.head = 0;
    }
    const at = ((this.head + this.count) % (q.length / 3)) * 3;
    q[at] = hi;
    q[at + 1] = lo;
    q[at + 2] = ep;
    this.count++;
  }

  /** Moves queued messages into I2A while it has room. */
  flush(): void {
    const asc = this.asc;
    const q = this.q;
    const cap = q.length / 3;
    while (this.count > 0 && asc.outboxFree > 0) {
      const at = this.head * 3;
      asc.pushOutbox(q[at]!, q[at + 1]!, q[at + 2]!);
      this.head = this.head + 1 === cap ? 0 : this.head + 1;
      this.count--;
    }
  }

  /** Forgets the queue (a CPU reset). */
  clear(): void {
    this.head = 0;
    this.count = 0;
  }

  /** Records a message in the history ring (`toIop` 1 for A2I, 0 for I2A). */
  remember(hi: number, lo: number, msg1: number, toIop: number, nowNs: number): void {
    const h = this.hist;
    const at = this.historyNext * 5;
    h[at] = hi;
    h[at + 1] = lo;
    h[at + 2] = msg1;
    h[at + 3] = Math.floor(nowNs / 1000);
    h[at + 4] = toIop;
    this.historyNext = this.historyNext + 1 === HISTORY ? 0 : this.historyNext + 1;
    if (this.historyCount < HISTORY) this.historyCount++;
  }

  /** The history, oldest first, five words per message (a copy). */
  history(): Uint32Array {
    const n = this.historyCount;
    const out = new Uint32Array(n * 5);
    const first = (this.historyNext - n + HISTORY) % HISTORY;
    for (let i = 0; i < n; i++) {
      const from = ((first + i) % HISTORY) * 5;
      out.set(this.hist.subarray(from, from + 5), i * 5);
    }
    return out;
  }
}
