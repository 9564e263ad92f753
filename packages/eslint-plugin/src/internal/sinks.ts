// Calls that keep a callback to run later: timers, promise reactions and event listeners.
// A closure handed to one of them may run after the callback that received a borrow has
// returned, when the borrow is revoked.

import { AST_NODE_TYPES as N, type TSESTree } from "@typescript-eslint/utils";
import { memberName, stripTypeSyntax } from "./analysis.js";

/** The kind of a call that keeps a callback. */
export type SinkKind = "timer" | "promise" | "executor" | "event";

/** A call that keeps callbacks (and, for timers, the arguments they will be called with). */
export interface Sink {
  readonly kind: SinkKind;
  /** The callee as written, e.g. `setTimeout`, `p.then`, `emitter.on`. */
  readonly callee: TSESTree.Node;
  /** Arguments that are callbacks (when they are functions). */
  readonly callbacks: readonly TSESTree.Node[];
  /** Arguments a timer keeps to pass to its callback. */
  readonly kept: readonly TSESTree.Node[];
}

// Timer functions, by the index of the first extra argument they pass to the callback
// (-1: none). Also matched as methods, so a simulated clock's `clock.setTimeout` counts.
const TIMERS: ReadonlyMap<string, number> = new Map([
  ["setTimeout", 2],
  ["setInterval", 2],
  ["setImmediate", 1],
  ["queueMicrotask", -1],
  ["nextTick", 1],
  ["requestAnimationFrame", -1],
  ["requestIdleCallback", -1],
]);

const PROMISE_METHODS: ReadonlySet<string> = new Set(["then", "catch", "finally"]);

const EVENT_METHODS: ReadonlySet<string> = new Set([
  "addEventListener",
  "on",
  "once",
  "addListener",
  "prependListener",
  "prependOnceListener",
]);

/**
 * What `node` keeps to run later, or null for an ordinary call. A `new Promise` executor
 * runs at once, but what it starts (and its `resolve`) is for later, so it counts too.
 */
export function sinkOf(node: TSESTree.CallExpression | TSESTree.NewExpression): Sink | null {
  const callee = stripTypeSyntax(node.callee);
  const args = node.arguments;
  if (node.type === N.NewExpression) {
    if (callee.type === N.Identifier && callee.name === "Promise") {
      return { kind: "executor", callee, callbacks: args.slice(0, 1), kept: [] };
    }
    return null;
  }
  let name: string | null = null;
  if (callee.type === N.Identifier) name = callee.name;
  else if (callee.type === N.MemberExpression) name = memberName(callee);
  if (name === null) return null;
  const timer = TIMERS.get(name);
  // `nextTick` alone is too common a name; only `process.nextTick` and the like count.
  if (timer !== undefined && (name !== "nextTick" || callee.type === N.MemberExpression)) {
    return {
      kind: "timer",
      callee,
      callbacks: args.slice(0, 1),
      kept: timer < 0 ? [] : args.slice(timer),
    };
  }
  if (callee.type !== N.MemberExpression) return null;
  if (PROMISE_METHODS.has(name)) return { kind: "promise", callee, callbacks: args, kept: [] };
  if (EVENT_METHODS.has(name)) return { kind: "event", callee, callbacks: args, kept: [] };
  return null;
}

/**
 * Whether a promise made by `node` is awaited, or returned, directly by `fn`: then the
 * reactions run before `fn`'s own promise settles, while its borrow is still live. The
 * chain is followed up through `.then(...).catch(...)`.
 */
export function isAwaitedBy(
  node: TSESTree.Node,
  fn: TSESTree.Node,
  functionOf: (n: TSESTree.Node) => TSESTree.Node,
): boolean {
  let top = node;
  for (;;) {
    const member = top.parent;
    const call = member?.parent;
    if (
      member?.type === N.MemberExpression &&
      member.object === top &&
      call?.type === N.CallExpression &&
      call.callee === member &&
      PROMISE_METHODS.has(memberName(member) ?? "")
    ) {
      top = call;
    } else {
      break;
    }
  }
  const parent = top.parent;
  if (parent === undefined) return false;
  if (parent.type === N.AwaitExpression || parent.type === N.ReturnStatement) {
    return functionOf(parent) === fn;
  }
  return parent.type === N.ArrowFunctionExpression && parent.body === top && parent === fn;
}
