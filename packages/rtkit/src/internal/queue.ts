//! The ordered work queue's backlog: a ring of (endpoint, msg0) pairs that grows by
//! doubling, so queueing a message allocates nothing once the ring is big enough.

/** Messages queued but not yet handled, oldest first. */
export class MessageQueue {
  private eps: Uint8Array;
  private msgs: bigint[];
  private head = 0;
  private mask: number;
  /** Messages in the queue. */
  length = 0;

  constructor(capacity = 256) {
    this.eps = new Uint8Array(capacity);
    this.msgs = new Array<bigint>(capacity).fill(0n);
    this.mask = capacity - 1;
  }

  push(ep: number, msg0: bigint): void {
    if (this.length > this.mask) this.grow();
    const at = (this.head + this.length) & this.mask;
    this.eps[at] = ep;
    this.msgs[at] = msg0;
    this.length++;
  }

  /** The oldest endpoint; call before {@link shiftMsg}. */
  peekEp(): number {
    return this.eps[this.head]!;
  }

  /** Removes the oldest entry and returns its msg0. */
  shiftMsg(): bigint {
    const at = this.head;
    const msg = this.msgs[at]!;
    this.head = (at + 1) & this.mask;
    this.length--;
    return msg;
  }

  clear(): void {
    this.head = 0;
    this.length = 0;
  }

  private grow(): void {
    const capacity = (this.mask + 1) * 2;
    const eps = new Uint8Array(capacity);
    const msgs = new Array<bigint>(capacity).fill(0n);
    for (let i = 0; i < this.length; i++) {
      const at = (this.head + i) & this.mask;
      eps[i] = this.eps[at]!;
      msgs[i] = this.msgs[at]!;
    }
    this.eps = eps;
    this.msgs = msgs;
    this.head = 0;
    this.mask = capacity - 1;
  }
}
