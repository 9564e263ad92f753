// Part of `pnpm lint`, on the syntax tree of every package's source (src/ and demo/):
//
// 1. Every type assertion (`x as T`, `<T>x`) other than `as const` must have a `// SAFETY:`
//    comment saying why it holds — the Rust kernel crate's rule for `unsafe` blocks. The
//    comment stands in the lines just above the statement that holds the cast (or above
//    the cast itself, when the statement spans lines). Smuggled borrows and minted brands
//    are what it catches.
// 2. Module scope holds constants, classes and functions only: a top-level `let`/`var`, or
//    a top-level `const` bound to a collection (`new Map`, `new Set`, an array literal not
//    typed readonly or frozen, …), is
//    machine state in a module global unless a `// module-state:` comment above it says
//    why it is not (a cache of plain memory, a privileged-access slot, the default machine).
import { readdirSync, readFileSync, statSync } from "node:fs";
import { join, relative } from "node:path";
import ts from "typescript";

const ROOT = join(import.meta.dirname, "..");
const WINDOW = 4; // lines above the statement in which the comment may stand

function* sources(dir) {
  for (const name of readdirSync(dir)) {
    if (name === "node_modules" || name === "dist") continue;
    const path = join(dir, name);
    if (statSync(path).isDirectory()) yield* sources(path);
    else if (path.endsWith(".ts") && !path.endsWith(".d.ts")) yield path;
  }
}

function packageFiles() {
  const files = [];
  for (const group of ["packages", "examples"]) {
    let pkgs;
    try {
      pkgs = readdirSync(join(ROOT, group));
    } catch {
      continue;
    }
    for (const pkg of pkgs) {
      for (const sub of ["src", "demo"]) {
        try {
          files.push(...sources(join(ROOT, group, pkg, sub)));
        } catch {
          // no such folder
        }
      }
    }
  }
  return files;
}

/** Whether one of the `WINDOW` lines above `line` (0-based), or the line itself, has `marker`. */
function marked(lines, line, marker) {
  for (let i = Math.max(0, line - WINDOW); i <= line; i++) {
    if (lines[i]?.includes(marker)) return true;
  }
  return false;
}

/** The statement (or class member, or property) a node belongs to: where its comment goes. */
function anchorOf(node) {
  let n = node;
  while (
    n.parent !== undefined &&
    !ts.isStatement(n) &&
    !ts.isClassElement(n) &&
    !ts.isPropertyAssignment(n) &&
    !ts.isSourceFile(n.parent)
  ) {
    n = n.parent;
  }
  return n;
}

function isAsConst(node) {
  return (
    ts.isTypeReferenceNode(node.type) &&
    ts.isIdentifier(node.type.typeName) &&
    node.type.typeName.text === "const"
  );
}

const MUTABLE_INITIALIZERS = /^(new\s+(Map|Set|WeakMap|WeakSet|Array)\b|\[)/;
const READONLY_TYPES = /^(readonly\s|Readonly(Map|Set|Array)<)/;

const problems = [];
for (const file of packageFiles()) {
  const text = readFileSync(file, "utf8");
  const lines = text.split("\n");
  const sf = ts.createSourceFile(file, text, ts.ScriptTarget.Latest, true);
  const where = (node) => {
    const { line } = sf.getLineAndCharacterOfPosition(node.getStart(sf));
    return line;
  };
  const visit = (node) => {
    if ((ts.isAsExpression(node) && !isAsConst(node)) || ts.isTypeAssertionExpression(node)) {
      const castLine = where(node.type ?? node);
      const anchorLine = where(anchorOf(node));
      if (!marked(lines, castLine, "SAFETY:") && !marked(lines, anchorLine, "SAFETY:")) {
        problems.push(
          `${relative(ROOT, file)}:${castLine + 1}: cast without a SAFETY comment: ${lines[castLine].trim()}`,
        );
      }
    }
    ts.forEachChild(node, visit);
  };
  visit(sf);
  // Demos are programs, not libraries: their top level is the program's state.
  const library = !/[\\/]demo[\\/]/.test(file);
  // A marker above the first of a run of adjacent top-level variable statements covers the run.
  let runStart = -1;
  let runEnd = -2;
  for (const stmt of library ? sf.statements : []) {
    if (!ts.isVariableStatement(stmt)) continue;
    const first = where(stmt);
    if (first > runEnd + 1) runStart = first;
    runEnd = sf.getLineAndCharacterOfPosition(stmt.getEnd()).line;
    const flags = stmt.declarationList.flags;
    const isConst = (flags & ts.NodeFlags.Const) !== 0;
    for (const decl of stmt.declarationList.declarations) {
      const init = decl.initializer?.getText(sf) ?? "";
      const type = decl.type?.getText(sf) ?? "";
      const frozen =
        /^Object\.freeze\(/.test(init) || / as const$/.test(init) || READONLY_TYPES.test(type);
      const mutable = !isConst || (MUTABLE_INITIALIZERS.test(init) && !frozen);
      if (!mutable) continue;
      const line = where(stmt);
      if (!marked(lines, line, "module-state:") && !marked(lines, runStart, "module-state:")) {
        problems.push(
          `${relative(ROOT, file)}:${line + 1}: module-level state needs a "module-state:" comment saying why it is not machine state: ${lines[line].trim()}`,
        );
      }
    }
  }
}
if (problems.length > 0) {
  console.error(`check-safety: ${problems.length} problem(s)`);
  for (const p of problems) console.error(`  ${p}`);
  process.exit(1);
}
console.log(
  "check-safety: every cast in package source has a SAFETY comment; no unmarked module state",
);
