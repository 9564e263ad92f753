// The wrong-argument sweep every package's tests run: each export (function, class
// constructor, method and setter of sample instances) is called with wrong-typed and
// out-of-range values, and must either succeed or throw a DevrefError — never a
// TypeError, RangeError or anything else — and the package's invariants must still hold.
import fc from "fast-check";

/** Values that are wrong for almost every parameter. */
export const BAD_VALUES: readonly unknown[] = [
  undefined,
  null,
  Number.NaN,
  Number.POSITIVE_INFINITY,
  -1,
  -0,
  0.5,
  2 ** 53,
  2 ** 32,
  -(2 ** 31),
  "1",
  "",
  "x".repeat(300),
  10n,
  -1n,
  true,
  Symbol("bad"),
  {},
  [],
  [1, 2, 3],
  { length: -1 },
  () => undefined,
  new Uint8Array(3),
  Object.create(null),
  // Look-alikes of a device handle: its field names, nothing real behind them.
  { lifetime: {}, gen: undefined },
  { lifetime: { gen: 0 }, gen: 0, object: 7 },
];

/** An arbitrary argument list of bad values (and a few plain numbers). */
export function badArgs(maxLength = 5): fc.Arbitrary<unknown[]> {
  return fc.array(
    fc.oneof(
      { weight: 6, arbitrary: fc.constantFrom(...BAD_VALUES) },
      { weight: 2, arbitrary: fc.integer({ min: -4096, max: 1 << 20 }) },
      { weight: 1, arbitrary: fc.double() },
      { weight: 1, arbitrary: fc.string({ maxLength: 8 }) },
    ),
    { maxLength },
  );
}

/** What a sweep found wrong: a call that threw something other than a DevrefError. */
export interface BadOutcome {
  readonly target: string;
  readonly args: string;
  readonly error: string;
}

function describe(args: unknown[]): string {
  return `(${args
    .map((a) => {
      if (typeof a === "bigint") return `${a}n`;
      if (typeof a === "symbol") return "Symbol()";
      if (typeof a === "function") return "fn";
      if (typeof a === "string") return JSON.stringify(a.length > 12 ? `${a.slice(0, 12)}…` : a);
      try {
        return JSON.stringify(a) ?? String(a);
      } catch {
        return Object.prototype.toString.call(a);
      }
    })
    .join(", ")})`;
}

function isClass(fn: unknown): fn is new (...args: unknown[]) => unknown {
  return typeof fn === "function" && /^class[\s{]/.test(Function.prototype.toString.call(fn));
}

/** Calls `call` and classifies the outcome; promises are awaited a few turns, not forever. */
async function attempt(
  expected: Function,
  target: string,
  args: unknown[],
  late: BadOutcome[],
  call: () => unknown,
): Promise<BadOutcome | null> {
  const judge = (e: unknown): BadOutcome | null =>
    e instanceof expected
      ? null
      : {
          target,
          args: describe(args),
          error: e instanceof Error ? `${e.name}: ${e.message}` : String(e),
        };
  try {
    const r = call();
    if (
      r !== null &&
      typeof r === "object" &&
      typeof (r as { then?: unknown }).then === "function"
    ) {
      // A call may wait on hardware (a timer, a reply) that never comes in a sweep: give it a
      // few turns, and judge a later rejection when it happens.
      let outcome: BadOutcome | null | undefined;
      (r as Promise<unknown>).then(
        () => {
          outcome = null;
        },
        (e: unknown) => {
          outcome = judge(e);
          if (outcome !== null) late.push(outcome);
        },
      );
      for (let i = 0; i < 32 && outcome === undefined; i++) await Promise.resolve();
      return null;
    }
    return null;
  } catch (e) {
    return judge(e);
  }
}

/** The methods and setters of an instance, along its prototype chain (not Object's). */
function membersOf(instance: object): { name: string; kind: "method" | "setter" }[] {
  const out: { name: string; kind: "method" | "setter" }[] = [];
  const seen = new Set<string>();
  for (
    let p = Object.getPrototypeOf(instance);
    p !== null && p !== Object.prototype;
    p = Object.getPrototypeOf(p)
  ) {
    for (const key of Object.getOwnPropertyNames(p)) {
      if (key === "constructor" || seen.has(key)) continue;
      seen.add(key);
      const d = Object.getOwnPropertyDescriptor(p, key)!;
      if (typeof d.value === "function") out.push({ name: key, kind: "method" });
      else if (d.set !== undefined) out.push({ name: key, kind: "setter" });
    }
  }
  return out;
}

/** What {@link sweepExports} is told about a package. */
export interface SweepOptions {
  /** The package's exports (`await import("@devref/x")`). */
  readonly module: Record<string, unknown>;
  /** The one error class allowed (raw-device's `DevrefError`, passed in by the test). */
  readonly expected: Function;
  /** Exports not to call: constants and types are skipped anyway; give reasons in comments. */
  readonly skip?: readonly string[];
  /** Makes fresh sample instances whose methods are swept, by label. */
  readonly instances?: () => Record<string, object>;
  /** Methods not to call on instances (e.g. ones that end the instance), as `label.method`. */
  readonly skipMembers?: readonly string[];
  /** Checks the package's invariants after each call; throws when broken. */
  readonly check?: () => void | Promise<void>;
  readonly seed?: number;
  readonly runs?: number;
}

/**
 * The seed a sweep uses: the test's own, else 42; `DEVREF_SWEEP_SEED` overrides both, to
 * explore new seeds by hand (CI never sets it, so its runs stay fixed). A failure a new seed
 * finds becomes a regression test.
 */
function sweepSeed(options: SweepOptions): number {
  const fromEnv = process.env.DEVREF_SWEEP_SEED;
  const seed = fromEnv === undefined || fromEnv === "" ? Number.NaN : Number(fromEnv);
  return Number.isSafeInteger(seed) ? seed : (options.seed ?? 42);
}

/**
 * Sweeps every export and sample instance with bad arguments. Returns the calls that threw
 * something other than a DevrefError (an empty list is a pass); invariant failures throw.
 */
export async function sweepExports(options: SweepOptions): Promise<BadOutcome[]> {
  const bad: BadOutcome[] = [];
  const late: BadOutcome[] = [];
  const skip = new Set(options.skip ?? []);
  const skipMembers = new Set(options.skipMembers ?? []);
  const targets = Object.entries(options.module).filter(
    ([name, v]) => typeof v === "function" && !skip.has(name),
  );
  await fc.assert(
    fc.asyncProperty(badArgs(), fc.nat(), async (args, pick) => {
      const [name, fn] = targets[pick % targets.length]!;
      const outcome = await attempt(options.expected, name, args, late, () =>
        isClass(fn) ? new fn(...args) : (fn as (...a: unknown[]) => unknown)(...args),
      );
      if (outcome !== null) bad.push(outcome);
      await options.check?.();
    }),
    { seed: sweepSeed(options), numRuns: options.runs ?? 2000 },
  );
  if (options.instances !== undefined) {
    const makeInstances = options.instances;
    await fc.assert(
      fc.asyncProperty(badArgs(), fc.nat(), fc.nat(), async (args, pickInstance, pickMember) => {
        const instances = Object.entries(makeInstances());
        const [label, instance] = instances[pickInstance % instances.length]!;
        const members = membersOf(instance).filter((m) => !skipMembers.has(`${label}.${m.name}`));
        if (members.length === 0) return;
        const m = members[pickMember % members.length]!;
        const target = `${label}.${m.name}`;
        const outcome = await attempt(options.expected, target, args, late, () => {
          if (m.kind === "setter") {
            (instance as Record<string, unknown>)[m.name] = args[0];
            return undefined;
          }
          return (instance as Record<string, (...a: unknown[]) => unknown>)[m.name]!(...args);
        });
        if (outcome !== null) bad.push(outcome);
        await options.check?.();
      }),
      { seed: sweepSeed(options) + 1, numRuns: options.runs ?? 2000 },
    );
  }
  // One line per distinct failing target, with a sample call.
  const byTarget = new Map<string, BadOutcome>();
  for (const o of [...bad, ...late]) if (!byTarget.has(o.target)) byTarget.set(o.target, o);
  return [...byTarget.values()];
}
