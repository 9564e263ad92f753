// pnpm bench for @devref/raw-device: ownership costs and sparse memory, each beside a
// baseline from the same run.
import { SparseMemory, withBorrow } from "@devref/raw-device";
import { consume, measure, report } from "../../../scripts/bench.js";
import { makeDevice, TestDevice } from "../test/fixture.js";

const N = 5_000_000;
const { dev } = makeDevice("bench0");
dev.value = 3;

// get + put: a counted reference taken, recorded as a holder, and dropped.
const getPut = measure("dev.get(label) + put()", N, (n) => {
  for (let i = 0; i < n; i++) dev.get("bench").put();
});
const counter = { count: 1 };
const plainCount = measure("plain object count++ / count--", N, (n) => {
  for (let i = 0; i < n; i++) {
    counter.count++;
    counter.count--;
  }
});
report("get_device + put_device pair", getPut, plainCount, { aboveBaselineAtMost: 5 });

// Access through a borrow: the live-flag check on every property read.
class Plain {
  value = 3;
}
const plain = new Plain();
const borrowRead = withBorrow(dev, (d) =>
  measure("borrow.value (checked)", N * 4, (n) => {
    let s = 0;
    for (let i = 0; i < n; i++) s += d.value;
    consume(s);
  }),
);
const plainRead = measure("plain.value", N * 4, (n) => {
  let s = 0;
  for (let i = 0; i < n; i++) s += plain.value;
  consume(s);
});
report("access through a borrowed reference", borrowRead, plainRead, { aboveBaselineAtMost: 1.5 });

// Sparse memory: 64-bit descriptor write + read over 2 MiB of a table region.
const mem = new SparseMemory();
const BASE = 0x8_0000_0000;
const WORDS = 1 << 18;
const memRw = measure("SparseMemory write64 + read64Lo/Hi", WORDS * 8, (n) => {
  let s = 0;
  for (let i = 0; i < n; i++) {
    const pa = BASE + ((i & (WORDS - 1)) << 3);
    mem.write64(pa, i, 0x8000_0000);
    s += mem.read64Lo(pa) + mem.read64Hi(pa);
  }
  consume(s);
});
const flat = new Uint32Array(WORDS * 2);
const flatRw = measure("Uint32Array pair write + read", WORDS * 8, (n) => {
  let s = 0;
  for (let i = 0; i < n; i++) {
    const w = (i & (WORDS - 1)) << 1;
    flat[w] = i;
    flat[w + 1] = 0x8000_0000;
    s += flat[w]! + flat[w + 1]!;
  }
  consume(s);
});
report("64-bit write + read", memRw, flatRw);
console.log(
  `  sparse pages held: ${mem.pagesAllocated} (${mem.bytesAllocated} bytes for 2 MiB written)`,
);
dev.put();
void TestDevice;
