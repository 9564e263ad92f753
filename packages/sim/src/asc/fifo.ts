//! One direction of the ASC mailbox: a bounded ring of (msg0, msg1) messages in a typed
//! array, so pushing and popping never allocate.

/**
 * A bounded FIFO of mailbox messages. `msg0` is kept as two 32-bit halves and `msg1` as a
 * 32-bit word. After {@link MboxFifo.pop} the message is in `hi`, `lo` and `msg1`.
 *
 * **Invariants:** `0 <= count <= depth`; messages leave in the order they came.
 */
export class MboxFifo {
  readonly depth: number;
  /** Index of the oldest message. */
  head = 0;
  count = 0;
  /** The last popped message. */
  hi = 0;
  lo = 0;
  msg1 = 0;
  private readonly slots: Uint32Array;

  constructor(depth: number) {
    this.depth = depth;
    this.slots = new Uint32Array(depth * 3);
  }

  /** Index where the next message goes. */
  get tail(): number {
    const t = this.head + this.count;
    return t >= this.depth ? t - this.depth : t;
  }

  /** Appends a message; false (nothing changes) when full. */
  push(hi: number, lo: number, msg1: number): boolean {
    if (this.count === this.depth) return false;
    const i = this.tail * 3;
    const s = this.slots;
    s[i] = hi;
    s[i + 1] = lo;
    s[i + 2] = msg1;
    this.count++;
    return true;
  }

  /** Removes the oldest message into `hi`/`lo`/`msg1`; false when empty. */
  pop(): boolean {
    if (this.count === 0) return false;
    const i = this.head * 3;
    const s = this.slots;
    this.hi = s[i]!;
    this.lo = s[i + 1]!;
    this.msg1 = s[i + 2]!;
    this.head = this.head + 1 === this.depth ? 0 : this.head + 1;
    this.count--;
    return true;
  }

  /** Word `word` (0 = msg0 low, 1 = msg0 high, 2 = msg1) of the oldest message; 0 when empty. */
  peek(word: 0 | 1 | 2): number {
    if (this.count === 0) return 0;
    const i = this.head * 3;
    return word === 0 ? this.slots[i + 1]! : word === 1 ? this.slots[i]! : this.slots[i + 2]!;
  }

  clear(): void {
    this.head = 0;
    this.count = 0;
  }
}
