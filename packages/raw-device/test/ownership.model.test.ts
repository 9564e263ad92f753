// Model-based test of owned references: random get, clone, put and dispose sequences
// against a plain model of the count and the holders.
import { type ARef, holders, refcountOf } from "@devref/raw-device";
import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { makeDevice, type TestDevice, withBorrow } from "./fixture.js";

interface Model {
  count: number;
  labels: (string | null)[]; // per handle index; null once put
  releases: number;
}

interface Real {
  refs: ARef<TestDevice>[];
  releases: () => number;
}

type Cmd = fc.Command<Model, Real>;

/** Checked after every command: the real count and holders equal the model's. */
function verify(m: Model, r: Real): void {
  expect(m.count).toBeGreaterThanOrEqual(0);
  expect(r.releases()).toBe(m.releases);
  const live = r.refs.find((ref) => ref.isLive);
  if (live === undefined) return;
  expect(refcountOf(live)).toBe(m.count);
  expect(holders(live).map((h) => h.label)).toEqual(
    m.labels.filter((l): l is string => l !== null),
  );
}

class GetCmd implements Cmd {
  constructor(
    readonly from: number,
    readonly label: string,
  ) {}
  check(m: Model): boolean {
    return m.releases === 0 && m.labels.some((l) => l !== null);
  }
  run(m: Model, r: Real): void {
    const live = m.labels.flatMap((l, i) => (l === null ? [] : [i]));
    const i = live[this.from % live.length]!;
    r.refs.push(r.refs[i]!.get(this.label));
    m.labels.push(this.label);
    m.count++;
    verify(m, r);
  }
  toString(): string {
    return `get(${this.from}, ${this.label})`;
  }
}

class CloneCmd implements Cmd {
  constructor(readonly from: number) {}
  check(m: Model): boolean {
    return m.releases === 0 && m.labels.some((l) => l !== null);
  }
  run(m: Model, r: Real): void {
    const live = m.labels.flatMap((l, i) => (l === null ? [] : [i]));
    const i = live[this.from % live.length]!;
    r.refs.push(r.refs[i]!.clone());
    m.labels.push(m.labels[i]!);
    m.count++;
    verify(m, r);
  }
  toString(): string {
    return `clone(${this.from})`;
  }
}

class BorrowGetCmd implements Cmd {
  constructor(readonly from: number) {}
  check(m: Model): boolean {
    return m.releases === 0 && m.labels.some((l) => l !== null);
  }
  run(m: Model, r: Real): void {
    const live = m.labels.flatMap((l, i) => (l === null ? [] : [i]));
    const i = live[this.from % live.length]!;
    r.refs.push(withBorrow(r.refs[i]!, (d) => d.get("via-borrow")));
    m.labels.push("via-borrow");
    m.count++;
    verify(m, r);
  }
  toString(): string {
    return `borrowGet(${this.from})`;
  }
}

class PutCmd implements Cmd {
  constructor(
    readonly which: number,
    readonly viaDispose: boolean,
  ) {}
  check(m: Model): boolean {
    return m.labels.length > 0;
  }
  run(m: Model, r: Real): void {
    const i = this.which % m.labels.length;
    const ref = r.refs[i]!;
    if (this.viaDispose) ref[Symbol.dispose]();
    else ref.put();
    if (m.labels[i] !== null) {
      m.labels[i] = null;
      m.count--;
      if (m.count === 0) m.releases++;
    }
    expect(ref.isLive).toBe(false);
    expect(() => ref.name).toThrowError(/already put/);
    verify(m, r);
  }
  toString(): string {
    return `put(${this.which}, ${this.viaDispose ? "dispose" : "put"})`;
  }
}

describe("owned references against a model", () => {
  it("count never below zero, release exactly once, holders match", () => {
    const commands = [
      fc
        .tuple(fc.nat(), fc.constantFrom("iommu", "rtkit", "dma", "user"))
        .map(([f, l]) => new GetCmd(f, l)),
      fc.nat().map((f) => new CloneCmd(f)),
      fc.nat().map((f) => new BorrowGetCmd(f)),
      fc.tuple(fc.nat(), fc.boolean()).map(([w, d]) => new PutCmd(w, d)),
    ];
    fc.assert(
      fc.property(fc.commands(commands, { maxCommands: 60 }), (cmds) => {
        const made = makeDevice();
        const model: Model = { count: 1, labels: ["creator"], releases: 0 };
        const real: Real = { refs: [made.dev], releases: made.releases };
        fc.modelRun(() => ({ model, real }), cmds);
        // After every run: the invariants, then check from any live handle.
        expect(real.releases()).toBe(model.releases);
        expect(model.releases).toBeLessThanOrEqual(1);
        const live = real.refs.find((r) => r.isLive);
        if (live !== undefined) {
          expect(refcountOf(live)).toBe(model.count);
          expect(
            holders(live)
              .map((h) => h.label)
              .sort(),
          ).toEqual(model.labels.filter((l): l is string => l !== null).sort());
        } else {
          expect(model.count).toBe(0);
          expect(real.releases()).toBe(1);
        }
      }),
      { seed: 0x0a_4ef, numRuns: 300 },
    );
  });
});
