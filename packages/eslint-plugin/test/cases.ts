// The rule's test cases, shared by the rule tests and by the check that tsc accepts every
// one of them: the rule is for what the type checker lets through.
import type { NoStoredBorrowMessageId } from "../src/index.js";

/** One line of imports, so that a case's own line 1 is line 2 of the linted file. */
export const HEADER: string =
  'import { type ARef, type Borrowed, type Core, RawDevice, withBorrow } from "@devref/raw-device"; ' +
  'import { clock, defineDriver, emitter, inCore, keep, later, owned, PlatformDevice, registry, useDevice, withLookAlike } from "./devices.js";';

/** A case's code with the imports in front. */
export function withHeader(code: string): string {
  return `${HEADER}\n${code}`;
}

export interface ValidCase {
  readonly name: string;
  readonly code: string;
}

export interface InvalidCase extends ValidCase {
  readonly errors: readonly {
    readonly messageId: NoStoredBorrowMessageId;
    readonly line?: number;
  }[];
}

const one = (messageId: NoStoredBorrowMessageId, line?: number) =>
  line === undefined ? [{ messageId }] : [{ messageId, line }];

export const invalid: readonly InvalidCase[] = [
  // --- stored in a variable declared outside the callback ---
  {
    name: "assigned to an outer variable typed unknown",
    code: `let stash: unknown;
withBorrow(owned, (dev) => { stash = dev; });`,
    errors: one("storedInVariable", 3),
  },
  {
    name: "assigned to an outer variable of the base handle type (implicit widening)",
    code: `let base: RawDevice | undefined;
inCore(owned, (d) => { base = d; });`,
    errors: one("storedInVariable"),
  },
  {
    name: "assigned to an outer variable typed any",
    code: `let loose: any;
inCore(owned, (d) => { loose = d; });`,
    errors: one("storedInVariable"),
  },
  {
    name: "assigned to an outer Borrowed<T, any>: the brand survives, the scope does not",
    code: `let scoped: Borrowed<PlatformDevice<Core>, any> | undefined;
inCore(owned, (d) => { scoped = d; });`,
    errors: one("storedInVariable"),
  },
  {
    name: "assigned to a variable of an enclosing function from a probe",
    code: `export function setup(): RawDevice | undefined {
  let last: RawDevice | undefined;
  defineDriver({ name: "uart", probe: (dev) => { last = dev; return 0; } });
  return last;
}`,
    errors: one("storedInVariable", 4),
  },
  {
    name: "assigned from a nested closure inside the callback",
    code: `let stash: unknown;
inCore(owned, (d) => { [1, 2].forEach(() => { stash = d; }); });`,
    errors: one("storedInVariable"),
  },
  {
    name: "widened through a local first, then stored outside",
    code: `let stash: unknown;
inCore(owned, (d) => { const local: unknown = d; stash = local; });`,
    errors: one("storedInVariable"),
  },
  {
    name: "stored by a destructuring assignment",
    code: `let stash: unknown;
inCore(owned, (d) => { [stash] = [d]; });`,
    errors: one("storedInVariable"),
  },
  {
    name: "stored by a logical assignment",
    code: `let stash: RawDevice | undefined;
inCore(owned, (d) => { stash ??= d; });`,
    errors: one("storedInVariable"),
  },
  {
    name: "stored by a helper that received the borrow as a parameter",
    code: `let stash: unknown;
export function remember<S>(d: Borrowed<PlatformDevice<Core>, S>): void { stash = d; }`,
    errors: one("storedInVariable"),
  },
  {
    name: "wrapped in an object literal and stored outside",
    code: `let stash: unknown;
inCore(owned, (d) => { stash = { device: d }; });`,
    errors: one("storedInVariable"),
  },
  {
    name: "wrapped in an array literal and stored outside",
    code: `let stash: unknown[] = [];
inCore(owned, (d) => { stash = [d, 1]; });`,
    errors: one("storedInVariable"),
  },
  {
    name: "a local object that holds the borrow, stored outside",
    code: `let stash: unknown;
inCore(owned, (d) => { const box: { dev?: unknown } = {}; box.dev = d; stash = box; });`,
    errors: one("storedInVariable"),
  },
  {
    name: "a closure over the borrow, stored outside",
    code: `let describeLater: (() => string) | undefined;
inCore(owned, (d) => { describeLater = () => d.name; });`,
    errors: one("storedInVariable"),
  },
  // --- stored in a property or field ---
  {
    name: "this.x = dev in a driver method",
    code: `export class Driver {
  dev: unknown;
  probe<S>(dev: Borrowed<PlatformDevice<Core>, S>): void { this.dev = dev; }
}`,
    errors: one("storedInProperty", 4),
  },
  {
    name: "obj.x = dev on an outer object",
    code: "inCore(owned, (d) => { registry.dev = d; });",
    errors: one("storedInProperty"),
  },
  {
    name: "obj.x = dev through a local alias of an outer object",
    code: "inCore(owned, (d) => { const r = registry; r.dev = d; });",
    errors: one("storedInProperty"),
  },
  {
    name: "obj[key] = dev on an object handed in",
    code: `export function record<S>(table: Record<string, unknown>, d: Borrowed<PlatformDevice<Core>, S>): void {
  table[d.name] = d;
}`,
    errors: one("storedInProperty"),
  },
  {
    name: "a class field initialised with the borrow",
    code: `inCore(owned, (d) => {
  class Holder { dev: unknown = d; }
  return new Holder();
});`,
    errors: one("storedInProperty", 3),
  },
  {
    name: "a constructor parameter property of a borrowed type",
    code: `export class Kept {
  constructor(readonly dev: Borrowed<PlatformDevice<Core>, unknown>) {}
}`,
    errors: one("storedInProperty"),
  },
  {
    name: "Object.assign into an outer object",
    code: "inCore(owned, (d) => { Object.assign(registry, { dev: d }); });",
    errors: one("storedInProperty"),
  },
  // --- stored in a collection ---
  {
    name: "arr.push(dev) into an outer array",
    code: "inCore(owned, (d) => { registry.devices.push(d); });",
    errors: one("storedInCollection"),
  },
  {
    name: "map.set(k, dev) into an outer Map",
    code: `const byName = new Map<string, unknown>();
inCore(owned, (d) => { byName.set(d.name, d); });`,
    errors: one("storedInCollection"),
  },
  {
    name: "set.add(dev) into an outer Set",
    code: `const seen = new Set<RawDevice>();
inCore(owned, (d) => { seen.add(d); });`,
    errors: one("storedInCollection"),
  },
  {
    name: "a WeakMap keyed by the borrow",
    code: `const notes = new WeakMap<object, string>();
inCore(owned, (d) => { notes.set(d, "seen"); });`,
    errors: one("storedInCollection"),
  },
  {
    name: "unshift, splice and fill into an outer array",
    code: `const list: RawDevice[] = [];
inCore(owned, (d) => { list.unshift(d); list.splice(0, 0, d); list.fill(d); });`,
    errors: [
      { messageId: "storedInCollection" },
      { messageId: "storedInCollection" },
      { messageId: "storedInCollection" },
    ],
  },
  {
    name: "an object literal holding the borrow pushed outward",
    code: `const entries: { dev: RawDevice }[] = [];
inCore(owned, (d) => { entries.push({ dev: d }); });`,
    errors: one("storedInCollection"),
  },
  {
    name: "a local widened array spread into an outer one",
    code: `const all: unknown[] = [];
inCore(owned, (d) => { const batch: unknown[] = []; batch.push(d); all.push(...batch); });`,
    errors: one("storedInCollection"),
  },
  {
    name: "a closure over the borrow pushed into an outer list of handlers",
    code: `const handlers: (() => void)[] = [];
inCore(owned, (d) => { handlers.push(() => useDevice(d)); });`,
    errors: one("storedInCollection"),
  },
  // --- captured by a closure that runs later ---
  {
    name: "setTimeout callback uses the borrow",
    code: "inCore(owned, (d) => { setTimeout(() => useDevice(d), 10); });",
    errors: one("capturedByCallback"),
  },
  {
    name: "setInterval callback uses the borrow",
    code: "inCore(owned, (d) => { setInterval(function () { useDevice(d); }, 5); });",
    errors: one("capturedByCallback"),
  },
  {
    name: "setImmediate callback uses the borrow",
    code: "inCore(owned, (d) => { setImmediate(() => d.name); });",
    errors: one("capturedByCallback"),
  },
  {
    name: "queueMicrotask callback uses the borrow",
    code: "inCore(owned, (d) => { queueMicrotask(() => useDevice(d)); });",
    errors: one("capturedByCallback"),
  },
  {
    name: "process.nextTick callback uses the borrow",
    code: "inCore(owned, (d) => { process.nextTick(() => useDevice(d)); });",
    errors: one("capturedByCallback"),
  },
  {
    name: "a simulated clock's timer callback uses the borrow",
    code: "inCore(owned, (d) => { clock.setTimeout(() => useDevice(d), 10); });",
    errors: one("capturedByCallback"),
  },
  {
    name: "a named local function that uses the borrow, handed to a timer",
    code: "inCore(owned, (d) => { const tick = () => useDevice(d); setTimeout(tick, 1); });",
    errors: one("capturedByCallback"),
  },
  {
    name: "the borrow handed to a timer as an argument for its callback",
    code: "inCore(owned, (d) => { setTimeout(useDevice, 10, d); });",
    errors: one("keptByTimer"),
  },
  {
    name: "a .then reaction uses the borrow and the promise is not awaited",
    code: "inCore(owned, (d) => { void later().then(() => useDevice(d)); });",
    errors: one("capturedByCallback"),
  },
  {
    name: ".catch and .finally reactions use the borrow",
    code: "inCore(owned, (d) => { later().catch(() => d.name).finally(() => useDevice(d)); });",
    errors: [{ messageId: "capturedByCallback" }, { messageId: "capturedByCallback" }],
  },
  {
    name: "a new Promise executor uses the borrow and the promise is kept",
    code: `let pending: Promise<void> | undefined;
inCore(owned, (d) => { pending = new Promise<void>((resolve) => { useDevice(d); resolve(); }); });`,
    errors: one("capturedByCallback"),
  },
  {
    name: "a promise reaction awaited only by a nested function",
    code: `inCore(owned, (d) => {
  const run = async () => { await later().then(() => useDevice(d)); };
  void run();
});`,
    errors: one("capturedByCallback", 3),
  },
  {
    name: "an event listener (on) uses the borrow",
    code: 'inCore(owned, (d) => { emitter.on("irq", () => useDevice(d)); });',
    errors: one("capturedByCallback"),
  },
  {
    name: "an event listener (once) uses the borrow",
    code: 'inCore(owned, (d) => { emitter.once("ready", () => d.name); });',
    errors: one("capturedByCallback"),
  },
  {
    name: "an event listener (addListener) uses the borrow",
    code: 'inCore(owned, (d) => { emitter.addListener("irq", () => useDevice(d)); });',
    errors: one("capturedByCallback"),
  },
  {
    name: "promise reactions combined before being awaited",
    code: "withBorrow(owned, async (d) => { await Promise.all([later().then(() => d.name)]); });",
    errors: one("capturedByCallback"),
  },
  {
    name: "an event listener (addEventListener) uses the borrow",
    code: 'inCore(owned, (d) => { emitter.addEventListener("change", () => useDevice(d)); });',
    errors: one("capturedByCallback"),
  },
  // --- casts that drop the brand ---
  {
    name: "cast to the base handle type",
    code: "inCore(owned, (d) => { useDevice(d as RawDevice); });",
    errors: one("castDropsBrand"),
  },
  {
    name: "cast to unknown",
    code: "inCore(owned, (d) => { const u = d as unknown; return typeof u; });",
    errors: one("castDropsBrand"),
  },
  {
    name: "angle-bracket cast to any",
    code: "inCore(owned, (d) => { const a = <any>d; return typeof a; });",
    errors: one("castDropsBrand"),
  },
  {
    name: "double cast into an owned reference (smuggling past keep())",
    code: "inCore(owned, (d) => { keep(d as unknown as ARef<PlatformDevice>); });",
    errors: one("castDropsBrand"),
  },
  {
    name: "cast of an array literal holding the borrow",
    code: "inCore(owned, (d) => { const list = [d] as unknown[]; return list.length; });",
    errors: one("castDropsBrand"),
  },
  // --- returned through a widened type ---
  {
    name: "returned through an unknown return annotation",
    code: "withBorrow(owned, (d): unknown => d);",
    errors: one("returnedWidened"),
  },
  {
    name: "returned through an explicit type argument of the base type",
    code: "withBorrow<PlatformDevice, RawDevice>(owned, (d) => d);",
    errors: one("returnedWidened"),
  },
  {
    name: "returned from a helper declared to return the base type",
    code: `export function unwrap<S>(d: Borrowed<PlatformDevice<Core>, S>): RawDevice {
  return d;
}`,
    errors: one("returnedWidened", 3),
  },
  {
    name: "returned as driver data from an async probe",
    code: `defineDriver<unknown>({
  name: "uart",
  probe: async (dev) => {
    await later();
    return dev;
  },
});`,
    errors: one("returnedWidened", 6),
  },
  {
    name: "an object literal holding the borrow returned through a widened type",
    code: "withBorrow(owned, (d): { dev: RawDevice } => ({ dev: d }));",
    errors: one("returnedWidened"),
  },
  {
    name: "a closure over the borrow returned",
    code: "withBorrow(owned, (d): (() => string) => () => d.name);",
    errors: one("returnedWidened"),
  },
];

export const valid: readonly ValidCase[] = [
  { name: "the borrow used inside its callback", code: "withBorrow(owned, (d) => d.name);" },
  {
    name: "the borrow passed as an argument",
    code: "inCore(owned, (d) => { useDevice(d); keep(d.get('keeper')); });",
  },
  {
    name: "an owned reference (.get) stored outside",
    code: `let kept: ARef<PlatformDevice> | undefined;
const owners: ARef<PlatformDevice>[] = [];
inCore(owned, (d) => { kept = d.get("kept"); owners.push(d.get("list")); registry.dev = d.get("registry"); });`,
  },
  {
    name: "await in an async probe while the borrow stays in scope",
    code: `defineDriver({
  name: "uart",
  probe: async (dev) => {
    await later();
    useDevice(dev);
    return dev.name;
  },
});`,
  },
  {
    name: "a promise reaction that is awaited by the callback",
    code: `defineDriver({
  name: "uart",
  probe: async (dev) => {
    await later().then(() => useDevice(dev)).finally(() => dev.name);
    return 0;
  },
});`,
  },
  {
    name: "a promise reaction whose promise the probe returns",
    code: 'defineDriver({ name: "uart", probe: (dev) => later().then(() => dev.name) });',
  },
  {
    name: "an awaited new Promise whose executor uses the borrow",
    code: "withBorrow(owned, async (d) => { await new Promise<void>((resolve) => { useDevice(d); resolve(); }); });",
  },
  {
    name: "locals of the same callback, typed or widened",
    code: `inCore(owned, (d) => {
  let current = d;
  current = d;
  const base: RawDevice = d;
  let afterwards: unknown;
  if (current.name) { afterwards = d; }
  useDevice(base);
  return typeof afterwards;
});`,
  },
  {
    name: "a local of the callback written from a nested closure",
    code: `inCore(owned, (d) => {
  let last: unknown;
  [1, 2].forEach(() => { last = d; });
  return typeof last;
});`,
  },
  {
    name: "local containers of the callback",
    code: `inCore(owned, (d) => {
  const batch: RawDevice[] = [];
  batch.push(d);
  const byName = new Map<string, RawDevice>();
  byName.set(d.name, d);
  const ctx: { dev?: RawDevice } = {};
  ctx.dev = d;
  batch.forEach(useDevice);
});`,
  },
  {
    name: "timers, reactions and listeners that use only an owned reference",
    code: `inCore(owned, (d) => {
  const kept = d.get("timer");
  setTimeout(() => keep(kept), 10);
  void later().then(() => useDevice(kept));
  emitter.on("irq", () => useDevice(kept));
});`,
  },
  {
    name: "timers that use only values computed from the borrow",
    code: "inCore(owned, (d) => { const name = d.name; setTimeout(() => name.length, 1); });",
  },
  {
    name: "values computed from the borrow stored outside",
    code: `let name = "";
inCore(owned, (d) => { name = d.name; registry.devices.length = d.name.length; });`,
  },
  {
    name: "array methods with closures over the borrow (run during the call)",
    code: "inCore(owned, (d) => [1, 2].map((i) => d.name + i));",
  },
  {
    name: "a generic helper that returns the borrow with its scope",
    code: `export function same<S>(d: Borrowed<PlatformDevice<Core>, S>): Borrowed<PlatformDevice<Core>, S> {
  return d;
}`,
  },
  {
    name: "an owned reference returned through ARef",
    code: "export const got: ARef<PlatformDevice> = inCore(owned, (d) => d.get('caller'));",
  },
  {
    name: "casts that keep the brand, as a bus makes a borrow",
    code: `export function lend<S>(dev: Borrowed<PlatformDevice<Core>, S>, raw: PlatformDevice): void {
  const again = dev as unknown as Borrowed<PlatformDevice<Core>, never>;
  const made = raw as unknown as Borrowed<PlatformDevice<Core>, never>;
  useDevice(again);
  useDevice(made);
  const fixed = ["a", "b"] as const;
  useDevice(fixed.length > 0 ? dev : made);
}`,
  },
  {
    name: "a brand named scopeBrand declared outside @devref/raw-device",
    code: `let stash: unknown;
withLookAlike((value) => { stash = value; setTimeout(() => value.name, 1); });`,
  },
  {
    name: "a module-level borrow variable (no callback to leave)",
    code: `declare const lent: Borrowed<PlatformDevice<Core>, never>;
export const alias: RawDevice = lent;
registry.dev = lent;
registry.devices.push(lent);`,
  },
];
