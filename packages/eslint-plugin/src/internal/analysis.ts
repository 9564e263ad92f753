// Where a borrow is, and where it lives, in one file: the syntax of a stored value is
// walked down to the values that are (or hold, or close over) a borrow, and each of those
// is given the function whose call the borrow belongs to. A store is outward when its
// target lives outside that function.

import {
  ASTUtils,
  AST_NODE_TYPES as N,
  type ParserServicesWithTypeInformation,
  type TSESLint,
  type TSESTree,
} from "@typescript-eslint/utils";
import ts from "typescript";
import type { BorrowTypes } from "./brand.js";

/** What a leaf of a stored value is. */
export type LeafKind = "borrow" | "holder" | "closure";

/** A value, inside a stored expression, that is a borrow, holds one or closes over one. */
export interface Leaf {
  /** The expression. */
  readonly node: TSESTree.Node;
  readonly kind: LeafKind;
  /** The borrowed device value itself, as written (for the `.get()` advice). */
  readonly borrow: string;
  /** The function (or Program) whose call the borrow belongs to. */
  readonly owner: TSESTree.Node;
}

type Variable = TSESLint.Scope.Variable;
type FunctionNode =
  | TSESTree.ArrowFunctionExpression
  | TSESTree.FunctionExpression
  | TSESTree.FunctionDeclaration;

interface Taint {
  readonly kind: "holder" | "closure";
  readonly borrow: string;
  /** Where the borrow that reached the variable lives. */
  readonly owner: TSESTree.Node;
}

/** Array, Set and Map methods that keep their arguments, by receiver kind. */
const KEEPING_METHODS: Readonly<Record<string, (args: number) => readonly number[]>> = {
  push: (n) => range(0, n),
  unshift: (n) => range(0, n),
  splice: (n) => range(2, n),
  fill: () => [0],
  add: () => [0],
  set: () => [0, 1],
};

function range(from: number, to: number): number[] {
  const out: number[] = [];
  for (let i = from; i < to; i++) out.push(i);
  return out;
}

/** Whether `node` is a function: where a borrow's scope and a closure's captures begin. */
export function isFunction(node: TSESTree.Node): node is FunctionNode {
  return (
    node.type === N.ArrowFunctionExpression ||
    node.type === N.FunctionExpression ||
    node.type === N.FunctionDeclaration
  );
}

/** Whether `node` is `ancestor` or inside it. */
export function isWithin(node: TSESTree.Node, ancestor: TSESTree.Node): boolean {
  for (let n: TSESTree.Node | undefined = node; n; n = parentOf(n)) {
    if (n === ancestor) return true;
  }
  return false;
}

// The parser gives Program a null parent, though its types say undefined.
function parentOf(node: TSESTree.Node): TSESTree.Node | undefined {
  return node.parent ?? undefined;
}

function depth(node: TSESTree.Node): number {
  let d = 0;
  for (let n = parentOf(node); n; n = parentOf(n)) d++;
  return d;
}

/** `node` without the casts, non-null assertions and `satisfies` around it. */
export function stripTypeSyntax(node: TSESTree.Node): TSESTree.Node {
  let n = node;
  while (
    n.type === N.TSAsExpression ||
    n.type === N.TSTypeAssertion ||
    n.type === N.TSNonNullExpression ||
    n.type === N.TSSatisfiesExpression ||
    n.type === N.ChainExpression
  ) {
    n = n.expression;
  }
  return n;
}

/** The name of a member access when it is written as `.name` or `["name"]`. */
export function memberName(node: TSESTree.MemberExpression): string | null {
  if (!node.computed && node.property.type === N.Identifier) return node.property.name;
  if (node.property.type === N.Literal && typeof node.property.value === "string") {
    return node.property.value;
  }
  return null;
}

/** Borrows, holders and closures over borrows in one file, with memoised answers. */
export class FileAnalysis {
  private readonly sourceCode: Readonly<TSESLint.SourceCode>;
  private readonly services: ParserServicesWithTypeInformation;
  readonly types: BorrowTypes;
  private readonly taints = new Map<Variable, Taint | null>();
  private readonly captures = new Map<TSESTree.Node, Leaf | null>();

  constructor(
    sourceCode: Readonly<TSESLint.SourceCode>,
    services: ParserServicesWithTypeInformation,
    types: BorrowTypes,
  ) {
    this.sourceCode = sourceCode;
    this.services = services;
    this.types = types;
  }

  /** The TypeScript type of an expression. */
  typeOf(node: TSESTree.Node): ts.Type {
    return this.services.getTypeAtLocation(node);
  }

  /** The ESTree-to-TypeScript node map, typed by node kind. */
  get tsNodes(): ParserServicesWithTypeInformation["esTreeNodeToTSNodeMap"] {
    return this.services.esTreeNodeToTSNodeMap;
  }

  /** Source text, on one line and cut to a readable length. */
  text(node: TSESTree.Node): string {
    const t = this.sourceCode.getText(node).replace(/\s+/g, " ");
    return t.length <= 40 ? t : `${t.slice(0, 37)}...`;
  }

  /** The function (or Program, class field, static block) in which `node` runs. */
  functionOf(node: TSESTree.Node): TSESTree.Node {
    return this.sourceCode.getScope(node).variableScope.block;
  }

  /** The variable an identifier refers to, or null for an undeclared global. */
  variableOf(id: TSESTree.Identifier): Variable | null {
    return ASTUtils.findVariable(this.sourceCode.getScope(id), id);
  }

  /** Where a variable lives: the function (or Program) that declares it. */
  homeOf(variable: Variable | null): TSESTree.Node {
    return variable === null ? this.sourceCode.ast : variable.scope.variableScope.block;
  }

  /** The innermost owner among `leaves` (the borrow that ends first). */
  ownerOf(leaves: readonly Leaf[]): TSESTree.Node {
    let best = leaves[0]?.owner ?? this.sourceCode.ast;
    for (const leaf of leaves) if (depth(leaf.owner) > depth(best)) best = leaf.owner;
    return best;
  }

  /**
   * The values in `expr` that are, hold or close over a borrow, following the syntax
   * through which a value passes unchanged (literals, conditionals, casts, assignments).
   */
  leaves(expr: TSESTree.Node, out: Leaf[] = []): Leaf[] {
    switch (expr.type) {
      case N.Identifier: {
        const leaf = this.identifierLeaf(expr);
        if (leaf !== null) out.push(leaf);
        break;
      }
      case N.ArrayExpression:
        for (const el of expr.elements) if (el !== null) this.leaves(el, out);
        break;
      case N.ObjectExpression:
        for (const p of expr.properties) this.leaves(p.type === N.Property ? p.value : p, out);
        break;
      case N.SpreadElement:
        this.leaves(expr.argument, out);
        break;
      case N.ConditionalExpression:
        this.leaves(expr.consequent, out);
        this.leaves(expr.alternate, out);
        break;
      case N.LogicalExpression:
        this.leaves(expr.left, out);
        this.leaves(expr.right, out);
        break;
      case N.SequenceExpression: {
        const last = expr.expressions[expr.expressions.length - 1];
        if (last !== undefined) this.leaves(last, out);
        break;
      }
      case N.AssignmentExpression:
        this.leaves(expr.right, out);
        break;
      case N.TSAsExpression:
      case N.TSTypeAssertion:
      case N.TSNonNullExpression:
      case N.TSSatisfiesExpression:
      case N.ChainExpression:
        this.leaves(expr.expression, out);
        break;
      case N.ArrowFunctionExpression:
      case N.FunctionExpression: {
        const leaf = this.capturedBorrow(expr);
        if (leaf !== null) out.push(leaf);
        break;
      }
      case N.MemberExpression:
      case N.CallExpression:
      case N.NewExpression:
      case N.AwaitExpression: {
        const leaf = this.typedLeaf(expr);
        if (leaf !== null) out.push(leaf);
        break;
      }
      default:
        break;
    }
    return out;
  }

  /** A leaf found from the type of an expression that is not an identifier. */
  private typedLeaf(expr: TSESTree.Node): Leaf | null {
    const type = this.typeOf(expr);
    const kind = this.types.isBorrow(type)
      ? "borrow"
      : this.types.holdsBorrow(type)
        ? "holder"
        : null;
    if (kind === null) return null;
    // A member of a parameter or local (`ctx.dev`) lives as long as that variable.
    let root = expr;
    while (root.type === N.MemberExpression) root = stripTypeSyntax(root.object);
    const owner =
      root !== expr && root.type === N.Identifier
        ? this.homeOf(this.variableOf(root))
        : this.functionOf(expr);
    return { node: expr, kind, borrow: this.text(expr), owner };
  }

  private identifierLeaf(id: TSESTree.Identifier): Leaf | null {
    const variable = this.variableOf(id);
    const type = this.typeOf(id);
    const owner = this.homeOf(variable);
    if (this.types.isBorrow(type)) return { node: id, kind: "borrow", borrow: id.name, owner };
    if (this.types.holdsBorrow(type)) return { node: id, kind: "holder", borrow: id.name, owner };
    if (variable === null) return null;
    const taint = this.taintOf(variable);
    if (taint === null) return null;
    // A variable declared outside the borrow's callback still holds a borrow of that
    // callback (the store that put it there is reported on its own).
    const inner = depth(taint.owner) > depth(owner) ? taint.owner : owner;
    return { node: id, kind: taint.kind, borrow: taint.borrow, owner: inner };
  }

  /**
   * Whether a variable whose type does not show it was given a borrow anyway: declared
   * with a widened type (`const x: unknown = dev`), assigned one, filled with one
   * (`list.push(dev)`), or is a function that closes over one.
   */
  private taintOf(variable: Variable): Taint | null {
    if (this.taints.has(variable)) return this.taints.get(variable) ?? null;
    this.taints.set(variable, null); // cycles (a = b; b = a) end here
    const taint = this.computeTaint(variable);
    this.taints.set(variable, taint);
    return taint;
  }

  private computeTaint(variable: Variable): Taint | null {
    const fromLeaves = (leaves: readonly Leaf[]): Taint | null => {
      const leaf = leaves[0];
      if (leaf === undefined) return null;
      const kind = leaf.kind === "closure" ? "closure" : "holder";
      return { kind, borrow: leaf.borrow, owner: this.ownerOf(leaves) };
    };
    for (const def of variable.defs) {
      if (def.type === "FunctionName" && isFunction(def.node)) {
        const leaf = this.capturedBorrow(def.node);
        if (leaf !== null) return { kind: "closure", borrow: leaf.borrow, owner: leaf.owner };
      }
      if (
        def.type === "Variable" &&
        def.node.type === N.VariableDeclarator &&
        def.node.id.type === N.Identifier &&
        def.node.init !== null
      ) {
        const t = fromLeaves(this.leaves(def.node.init));
        if (t !== null) return t;
      }
    }
    for (const ref of variable.references) {
      const id = ref.identifier;
      const parent = id.parent;
      if (parent === undefined) continue;
      if (ref.isWrite() && parent.type === N.AssignmentExpression && parent.left === id) {
        const t = fromLeaves(this.leaves(parent.right));
        if (t !== null) return t;
        continue;
      }
      if (parent.type !== N.MemberExpression || parent.object !== id) continue;
      const use = parent.parent;
      if (use?.type === N.AssignmentExpression && use.left === parent) {
        const t = fromLeaves(this.leaves(use.right));
        if (t !== null) return { ...t, kind: "holder" };
      } else if (use?.type === N.CallExpression && use.callee === parent) {
        const kept = this.keptArguments(use);
        const t = fromLeaves(kept.flatMap((arg) => this.leaves(arg)));
        if (t !== null) return { ...t, kind: "holder" };
      }
    }
    return null;
  }

  /**
   * The arguments a collection method call keeps (`arr.push(x)`, `map.set(k, v)`,
   * `set.add(x)`), when the receiver is an array, Set, Map, WeakMap, WeakSet or `any`.
   */
  keptArguments(call: TSESTree.CallExpression): TSESTree.Node[] {
    const callee = stripTypeSyntax(call.callee);
    if (callee.type !== N.MemberExpression) return [];
    const name = memberName(callee);
    const which = name === null ? undefined : KEEPING_METHODS[name];
    if (which === undefined || name === null) return [];
    if (!this.isCollection(callee.object, name)) return [];
    const out: TSESTree.Node[] = [];
    for (const i of which(call.arguments.length)) {
      const arg = call.arguments[i];
      if (arg !== undefined) out.push(arg);
    }
    return out;
  }

  private isCollection(receiver: TSESTree.Node, method: string): boolean {
    const checker = this.types.checker;
    const type = checker.getNonNullableType(this.typeOf(receiver));
    if ((type.flags & ts.TypeFlags.Any) !== 0) return true;
    const isArray = checker.isArrayType(type) || checker.isTupleType(type);
    if (method === "add") return /^(Weak)?Set$/.test(type.getSymbol()?.getName() ?? "");
    if (method === "set") return /^(Weak)?Map$/.test(type.getSymbol()?.getName() ?? "");
    return isArray;
  }

  /**
   * The first borrow (or holder of one) that `fn` refers to from outside itself, as a
   * closure leaf owned where that borrow lives; null if it captures none.
   */
  capturedBorrow(fn: FunctionNode): Leaf | null {
    if (this.captures.has(fn)) return this.captures.get(fn) ?? null;
    this.captures.set(fn, null); // recursion through a function's own name ends here
    let found: Leaf | null = null;
    const scope = this.sourceCode.scopeManager?.acquire(fn);
    for (const ref of scope?.through ?? []) {
      if (ref.resolved === null || !ref.isRead() || !ref.isValueReference) continue;
      if (ref.identifier.type !== N.Identifier) continue;
      const leaf = this.identifierLeaf(ref.identifier);
      if (leaf !== null) {
        found = { node: fn, kind: "closure", borrow: leaf.borrow, owner: leaf.owner };
        break;
      }
    }
    this.captures.set(fn, found);
    return found;
  }

  /** The function an argument names: inline, or a local function or `const f = () => ...`. */
  functionArgument(arg: TSESTree.Node): FunctionNode | null {
    if (arg.type === N.ArrowFunctionExpression || arg.type === N.FunctionExpression) return arg;
    if (arg.type !== N.Identifier) return null;
    const variable = this.variableOf(arg);
    const def = variable?.defs.length === 1 ? variable.defs[0] : undefined;
    if (def === undefined) return null;
    if (def.type === "FunctionName" && isFunction(def.node)) return def.node;
    if (
      def.type === "Variable" &&
      def.node.type === N.VariableDeclarator &&
      def.parent?.type === N.VariableDeclaration &&
      def.parent.kind === "const" &&
      def.node.init !== null &&
      isFunction(def.node.init)
    ) {
      return def.node.init;
    }
    return null;
  }

  /**
   * Whether `expr` (the object of a property write or collection call) is a container
   * made inside `owner`: a local whose every value is a fresh literal or `new` object.
   * Anything else (`this`, a parameter, an outer variable, an alias) may outlive it.
   */
  isLocalContainer(expr: TSESTree.Node, owner: TSESTree.Node): boolean {
    let root = stripTypeSyntax(expr);
    while (root.type === N.MemberExpression) root = stripTypeSyntax(root.object);
    if (root.type !== N.Identifier) return false;
    const variable = this.variableOf(root);
    if (variable === null || !isWithin(this.homeOf(variable), owner)) return false;
    const fresh = (value: TSESTree.Node | null | undefined): boolean => {
      if (value === null || value === undefined) return false;
      const v = stripTypeSyntax(value);
      return (
        v.type === N.ObjectExpression || v.type === N.ArrayExpression || v.type === N.NewExpression
      );
    };
    for (const def of variable.defs) {
      if (def.type !== "Variable" || def.node.type !== N.VariableDeclarator) return false;
      if (def.node.id.type !== N.Identifier || !fresh(def.node.init)) return false;
    }
    for (const ref of variable.references) {
      if (ref.isWrite() && ref.init !== true && !fresh(ref.writeExpr)) return false;
    }
    return variable.defs.length > 0;
  }
}
