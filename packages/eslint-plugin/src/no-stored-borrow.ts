//! The lint side of devref's ownership rule (`Borrowed<T, S>` in @devref/raw-device): the
//! scope type parameter stops a borrow from being returned or stored in anything typed
//! outside its callback, but not through `unknown`, `any`, a base handle type, a cast or
//! a closure that runs later. This rule finds those with the type checker.

import {
  ESLintUtils,
  AST_NODE_TYPES as N,
  type TSESLint,
  type TSESTree,
} from "@typescript-eslint/utils";
import ts from "typescript";
import {
  FileAnalysis,
  isFunction,
  isWithin,
  type Leaf,
  stripTypeSyntax,
} from "./internal/analysis.js";
import { BorrowTypes } from "./internal/brand.js";
import { isAwaitedBy, type SinkKind, sinkOf } from "./internal/sinks.js";

/** The messages of {@link noStoredBorrow}. */
export type NoStoredBorrowMessageId =
  | "storedInVariable"
  | "storedInProperty"
  | "storedInCollection"
  | "capturedByCallback"
  | "keptByTimer"
  | "castDropsBrand"
  | "returnedWidened";

const KEEP = "To keep the device, take `{{borrow}}.get('<who keeps it>')` inside the callback";
const OUTLIVES =
  "outlives the callback that received the borrow, and the borrow is revoked when that callback returns.";

const messages: Record<NoStoredBorrowMessageId, string> = {
  storedInVariable: `\`{{what}}\` ({{about}}) is stored in \`{{target}}\`, declared outside the callback that received the borrow: the borrow is revoked when that callback returns. ${KEEP} and store that owned reference (put() it when done).`,
  storedInProperty: `\`{{what}}\` ({{about}}) is stored in \`{{target}}\`, which ${OUTLIVES} ${KEEP} and store that owned reference (put() it when done).`,
  storedInCollection: `\`{{what}}\` ({{about}}) is stored by \`{{target}}(...)\` in a collection that ${OUTLIVES} ${KEEP} and store that owned reference (put() it when done).`,
  capturedByCallback: `The function handed to \`{{target}}\` uses \`{{what}}\` ({{about}}); {{when}}, possibly after the callback that received the borrow has returned and the borrow is revoked. To keep the device, take \`const kept = {{borrow}}.get('<who keeps it>')\` inside the callback, use \`kept\` in the function and put() it when done{{awaitAdvice}}.`,
  keptByTimer: `\`{{what}}\` ({{about}}) is handed to \`{{target}}\`, which keeps it until the timer fires, possibly after the callback that received the borrow has returned and the borrow is revoked. ${KEEP} and pass that owned reference (put() it when done).`,
  castDropsBrand: `The cast of \`{{what}}\` ({{about}}) to \`{{target}}\` drops the borrow's scope brand, so nothing stops it from being stored past its callback any more. Use the borrowed type as it is; to keep the device, take \`{{borrow}}.get('<who keeps it>')\` inside the callback for an owned reference that may be kept.`,
  returnedWidened: `\`{{what}}\` ({{about}}) is returned from the callback that received the borrow as \`{{target}}\`, which hides the borrow from the type checker; it is revoked when the callback returns. Return \`{{borrow}}.get('<who keeps it>')\` (an owned reference for the caller to put) or a value computed from the device.`,
};

const WHEN: Record<SinkKind, string> = {
  timer: "it runs later",
  promise: "it runs when the promise settles",
  executor: "what it starts settles later",
  event: "it runs on each event",
};

// module-state: a cache keyed by the linter's program objects (one BorrowTypes per program,
// answering for every file of it); it holds no state of any devref system.
const typesOfProgram = new WeakMap<ts.Program, BorrowTypes>();

/**
 * `no-stored-borrow`: reports a borrowed device reference (a value whose type carries
 * `@devref/raw-device`'s scope brand) that is kept past the callback that received it.
 *
 * **Reports:** a store into a variable declared outside the callback, into a property or
 * field, or into a collection (`push`, `unshift`, `splice`, `fill`, `Map#set`, `Set#add`),
 * also when wrapped in an array or object literal or a closure; a closure that uses the
 * borrow handed to a timer, a promise reaction or `new Promise` (unless the promise is
 * awaited or returned by the callback), or an event listener; a cast that drops the brand
 * (`dev as RawDevice`, `dev as unknown`, `<any>dev`); a return from the callback through a
 * declared or contextual type without the brand.
 *
 * **Allows:** using the borrow in its callback, passing it as an argument, `dev.get(label)`,
 * awaiting in an async callback, and locals of the callback (whose later stores are
 * followed, even through a widened type).
 *
 * **Invariants:** needs type information (`parserOptions.projectService` or `project`); a
 * borrow is recognised by the brand's declaration in `@devref/raw-device`, in its source or
 * its built declarations.
 *
 * **Errors:** throws, as typescript-eslint's typed rules do, when linting without type
 * information.
 *
 * @example
 * ```js
 * // eslint.config.js
 * import devref from "@devref/eslint-plugin";
 * export default [devref.configs.recommended];
 * ```
 */
export const noStoredBorrow: TSESLint.RuleModule<NoStoredBorrowMessageId, []> =
  ESLintUtils.RuleCreator.withoutDocs<[], NoStoredBorrowMessageId>({
    meta: {
      type: "problem",
      docs: {
        description:
          "Disallow storing a borrowed device reference past its callback where the type checker cannot see it",
      },
      schema: [],
      messages,
    },
    defaultOptions: [],
    create(context) {
      const services = ESLintUtils.getParserServices(context);
      const program = services.program;
      let types = typesOfProgram.get(program);
      if (types === undefined) {
        types = new BorrowTypes(program.getTypeChecker());
        typesOfProgram.set(program, types);
      }
      const a = new FileAnalysis(context.sourceCode, services, types);
      const checker = types.checker;

      const about = (leaf: Leaf, value: TSESTree.Node): string => {
        if (leaf.node === value || leaf.node === stripTypeSyntax(value)) {
          if (leaf.kind === "borrow") return "a borrowed device";
          if (leaf.kind === "closure")
            return `a closure over the borrowed device \`${leaf.borrow}\``;
        }
        return `holds the borrowed device \`${leaf.borrow}\``;
      };

      const report = (
        messageId: NoStoredBorrowMessageId,
        node: TSESTree.Node,
        value: TSESTree.Node,
        leaf: Leaf,
        target: string,
        extra: Record<string, string> = {},
      ): void => {
        context.report({
          node,
          messageId,
          data: {
            what: a.text(value),
            about: about(leaf, value),
            borrow: leaf.borrow,
            target,
            ...extra,
          },
        });
      };

      /** Identifiers and member expressions written by an assignment's left side. */
      const targets = (left: TSESTree.Node, out: TSESTree.Node[] = []): TSESTree.Node[] => {
        switch (left.type) {
          case N.Identifier:
          case N.MemberExpression:
            out.push(left);
            break;
          case N.ArrayPattern:
            for (const el of left.elements) if (el !== null) targets(el, out);
            break;
          case N.ObjectPattern:
            for (const p of left.properties) targets(p.type === N.Property ? p.value : p, out);
            break;
          case N.RestElement:
            targets(left.argument, out);
            break;
          case N.AssignmentPattern:
            targets(left.left, out);
            break;
          default:
            if (stripTypeSyntax(left) !== left) targets(stripTypeSyntax(left), out);
        }
        return out;
      };

      const checkStore = (value: TSESTree.Node, target: TSESTree.Node, at: TSESTree.Node): void => {
        const leaves = a.leaves(value);
        const leaf = leaves[0];
        if (leaf === undefined) return;
        const owner = a.ownerOf(leaves);
        if (owner.type === N.Program) return; // a borrow outside any callback has none to outlive
        for (const t of targets(target)) {
          if (t.type === N.Identifier) {
            if (!isWithin(a.homeOf(a.variableOf(t)), owner)) {
              report("storedInVariable", at, value, leaf, t.name);
            }
          } else if (t.type === N.MemberExpression && !a.isLocalContainer(t.object, owner)) {
            report("storedInProperty", at, value, leaf, a.text(t));
          }
        }
      };

      const checkCallbacks = (node: TSESTree.CallExpression | TSESTree.NewExpression): void => {
        const sink = sinkOf(node);
        if (sink === null) return;
        for (const arg of sink.callbacks) {
          const fn = a.functionArgument(arg);
          const leaf = fn === null ? null : a.capturedBorrow(fn);
          if (leaf === null) continue;
          const isPromise = sink.kind === "promise" || sink.kind === "executor";
          if (isPromise && isAwaitedBy(node, leaf.owner, (n) => a.functionOf(n))) {
            continue;
          }
          context.report({
            node: arg,
            messageId: "capturedByCallback",
            data: {
              target: sinkName(sink.callee, sink.kind, a.text(sink.callee)),
              what: leaf.borrow,
              about: "a borrowed device",
              borrow: leaf.borrow,
              when: WHEN[sink.kind],
              awaitAdvice: isPromise
                ? ", or await the promise inside the callback that received the borrow"
                : "",
            },
          });
        }
        for (const arg of sink.kept) {
          const leaf = a.leaves(arg)[0];
          if (leaf !== undefined) report("keptByTimer", arg, arg, leaf, a.text(sink.callee));
        }
      };

      const checkCollection = (node: TSESTree.CallExpression): void => {
        const kept = a.keptArguments(node);
        const callee = stripTypeSyntax(node.callee);
        if (callee.type !== N.MemberExpression) return;
        for (const arg of kept) {
          const leaves = a.leaves(arg);
          const leaf = leaves[0];
          if (leaf === undefined) continue;
          const owner = a.ownerOf(leaves);
          if (owner.type !== N.Program && !a.isLocalContainer(callee.object, owner)) {
            report("storedInCollection", arg, arg, leaf, a.text(callee));
          }
        }
      };

      const checkObjectAssign = (node: TSESTree.CallExpression): void => {
        const callee = stripTypeSyntax(node.callee);
        if (
          callee.type !== N.MemberExpression ||
          callee.object.type !== N.Identifier ||
          callee.object.name !== "Object" ||
          callee.property.type !== N.Identifier ||
          callee.property.name !== "assign"
        ) {
          return;
        }
        const [target, ...sources] = node.arguments;
        if (target === undefined) return;
        for (const src of sources) {
          const leaves = a.leaves(src);
          const leaf = leaves[0];
          const owner = a.ownerOf(leaves);
          if (
            leaf !== undefined &&
            owner.type !== N.Program &&
            !a.isLocalContainer(target, owner)
          ) {
            report("storedInProperty", src, src, leaf, a.text(target));
          }
        }
      };

      const checkCast = (node: TSESTree.TSAsExpression | TSESTree.TSTypeAssertion): void => {
        const parent = node.parent;
        if (
          (parent.type === N.TSAsExpression || parent.type === N.TSTypeAssertion) &&
          parent.expression === node
        ) {
          return; // in a chain of casts, the outermost is judged, by the type it ends as
        }
        const annotation = node.typeAnnotation;
        if (
          annotation.type === N.TSTypeReference &&
          annotation.typeName.type === N.Identifier &&
          annotation.typeName.name === "const"
        ) {
          return;
        }
        const inner = stripTypeSyntax(node.expression);
        const leaf = a.leaves(inner).find((l) => l.kind !== "closure");
        if (leaf === undefined) return;
        if (types.holdsBorrow(a.typeOf(node))) return;
        report("castDropsBrand", node, inner, leaf, a.text(annotation));
      };

      const checkReturn = (fn: TSESTree.Node, value: TSESTree.Expression): void => {
        if (!isFunction(fn) || fn.generator) return;
        const leaves = a.leaves(value);
        const leaf = leaves[0];
        if (leaf === undefined || a.ownerOf(leaves) !== fn) return;
        let target: ts.Type | undefined;
        const tsFn = a.tsNodes.get(fn);
        if (tsFn.type !== undefined) {
          target = checker.getTypeFromTypeNode(tsFn.type);
          if (fn.async) target = checker.getAwaitedType(target) ?? target;
        } else {
          const tsValue = a.tsNodes.get(value);
          if (!ts.isExpression(tsValue)) return;
          target = checker.getContextualType(tsValue);
        }
        if (target === undefined || mentionsTypeParameter(target)) return;
        if ((target.flags & (ts.TypeFlags.Void | ts.TypeFlags.Undefined)) !== 0) return;
        if (types.holdsBorrow(target)) return;
        report("returnedWidened", value, value, leaf, checker.typeToString(target));
      };

      return {
        AssignmentExpression(node) {
          if (
            node.operator === "=" ||
            node.operator === "||=" ||
            node.operator === "&&=" ||
            node.operator === "??="
          ) {
            checkStore(node.right, node.left, node);
          }
        },
        PropertyDefinition(node) {
          if (node.value === null) return;
          const leaf = a.leaves(node.value)[0];
          if (leaf !== undefined) {
            report("storedInProperty", node, node.value, leaf, `this.${a.text(node.key)}`);
          }
        },
        TSParameterProperty(node) {
          const param = node.parameter;
          const id = param.type === N.AssignmentPattern ? param.left : param;
          if (id.type !== N.Identifier) return;
          const type = a.typeOf(id);
          if (types.holdsBorrow(type)) {
            context.report({
              node,
              messageId: "storedInProperty",
              data: {
                what: id.name,
                about: types.isBorrow(type) ? "a borrowed device" : "holds a borrowed device",
                borrow: id.name,
                target: `this.${id.name}`,
              },
            });
          }
        },
        CallExpression(node) {
          checkCollection(node);
          checkObjectAssign(node);
          checkCallbacks(node);
        },
        NewExpression(node) {
          checkCallbacks(node);
        },
        TSAsExpression: checkCast,
        TSTypeAssertion: checkCast,
        ReturnStatement(node) {
          if (node.argument !== null) checkReturn(a.functionOf(node), node.argument);
        },
        ArrowFunctionExpression(node) {
          if (node.body.type !== N.BlockStatement) checkReturn(node, node.body);
        },
      };
    },
  });

/** How a sink is named in a message: `.then` for a promise method, else as written. */
function sinkName(callee: TSESTree.Node, kind: SinkKind, written: string): string {
  if (kind === "promise" && callee.type === N.MemberExpression && !callee.computed) {
    return `.${callee.property.type === N.Identifier ? callee.property.name : "then"}`;
  }
  return written;
}

function mentionsTypeParameter(type: ts.Type): boolean {
  if ((type.flags & ts.TypeFlags.TypeParameter) !== 0) return true;
  if (type.isUnionOrIntersection()) return type.types.some(mentionsTypeParameter);
  return false;
}
