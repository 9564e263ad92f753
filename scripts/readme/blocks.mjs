// README code blocks as programs: extraction, type-checking against installed (built)
// packages, and runs in Node, with the same console capture the browser run uses so the two
// outputs can be compared line for line.
//
// Every ```ts/```js block (also typescript/javascript/mjs) of a README is a program unless
// its info string carries a marker after the language:
//
//   ```ts fragment        part of a program: neither compiled nor run
//   ```ts compile-error   compiled; each line with a `// compile error` comment must have an
//                         error and no other line may; not run
//   ```ts no-run          compiled, not run
//   ```ts node            compiled and run in Node only (not in the browser); a block that
//                         imports a Node program (the CLI, the lint plugin) is Node-only too
import { spawn } from "node:child_process";
import { existsSync, mkdirSync, readFileSync, writeFileSync } from "node:fs";
import { basename, dirname, join, relative } from "node:path";
import { transform } from "esbuild";
import ts from "typescript";

const LANGS = new Map([
  ["ts", "ts"],
  ["typescript", "ts"],
  ["js", "js"],
  ["javascript", "js"],
  ["mjs", "js"],
]);
const MARKERS = new Set(["fragment", "compile-error", "no-run", "node"]);

/**
 * @typedef {{ readme: string; index: number; line: number; lang: "ts" | "js";
 *   markers: Set<string>; code: string; name: string }} Block
 */

/**
 * The code blocks of one README. `readme` is the path shown in reports.
 * @returns {Block[]}
 */
export function extractBlocks(file, readme) {
  const lines = readFileSync(file, "utf8").split("\n");
  const blocks = [];
  const slug = readme.replace(/\/?README\.md$/i, "").replace(/[^a-z0-9]+/gi, "-") || "root";
  for (let i = 0; i < lines.length; i++) {
    const open = /^(\s*)(`{3,}|~{3,})\s*([\w-]*)(.*)$/.exec(lines[i]);
    if (!open) continue;
    const [, indent, fence, info, rest] = open;
    const body = [];
    let j = i + 1;
    while (j < lines.length && !lines[j].startsWith(indent + fence)) {
      body.push(lines[j].slice(indent.length));
      j++;
    }
    const lang = LANGS.get(info.toLowerCase());
    if (lang) {
      const markers = new Set(rest.trim().split(/\s+/).filter(Boolean));
      for (const m of markers) {
        if (!MARKERS.has(m))
          throw new Error(`${readme}:${i + 1}: unknown code block marker "${m}"`);
      }
      const index = blocks.length + 1;
      blocks.push({
        readme,
        index,
        line: i + 2,
        lang,
        markers,
        code: body.join("\n"),
        name: `${slug}-${index}`,
      });
    }
    i = j;
  }
  return blocks;
}

/** The package names a block imports (bare specifiers, scope included). */
export function importedPackages(code) {
  const names = new Set();
  for (const m of code.matchAll(
    /\bfrom\s+["']([^"'.][^"']*)["']|\bimport\s+["']([^"'.][^"']*)["']/g,
  )) {
    const spec = m[1] ?? m[2];
    if (spec.startsWith("node:")) continue;
    const parts = spec.split("/");
    names.add(spec.startsWith("@") ? parts.slice(0, 2).join("/") : parts[0]);
  }
  return [...names];
}

/** The file a block is written to for the compiler (a module in any case). */
export function sourceFileName(block) {
  return `${block.name}.${block.lang === "ts" ? "ts" : "mjs"}`;
}

/** Writes every compiled block into `dir`; blocks without imports become modules too. */
export function writeBlocks(dir, blocks) {
  mkdirSync(dir, { recursive: true });
  for (const b of blocks) {
    if (b.markers.has("fragment")) continue;
    writeFileSync(join(dir, sourceFileName(b)), `${b.code}\nexport {};\n`);
  }
}

/**
 * Type-checks the compiled blocks in `dir` with the given resolution and returns one
 * problem string per failing block (empty: all good).
 * @param {{ module: string; moduleResolution: string }} resolution
 */
export function typecheckBlocks(dir, blocks, resolution, extra = {}) {
  const compiled = blocks.filter((b) => !b.markers.has("fragment"));
  if (compiled.length === 0) return [];
  const options = {
    target: ts.ScriptTarget.ES2022,
    lib: ["lib.es2023.d.ts"],
    module: ts.ModuleKind[resolution.module],
    moduleResolution: ts.ModuleResolutionKind[resolution.moduleResolution],
    strict: true,
    exactOptionalPropertyTypes: true,
    noUncheckedIndexedAccess: true,
    skipLibCheck: false,
    allowJs: true,
    checkJs: true,
    noEmit: true,
    types: ["node"],
    ...extra,
  };
  const files = compiled.map((b) => join(dir, sourceFileName(b)));
  const program = ts.createProgram(files, options);
  const byFile = new Map(files.map((f) => [f, []]));
  const outside = [];
  for (const d of ts.getPreEmitDiagnostics(program)) {
    if (d.category !== ts.DiagnosticCategory.Error) continue;
    const text = ts.flattenDiagnosticMessageText(d.messageText, "\n");
    const list = d.file ? byFile.get(d.file.fileName) : undefined;
    if (list && d.file && d.start !== undefined) {
      const { line } = d.file.getLineAndCharacterOfPosition(d.start);
      list.push({ line, text: `TS${d.code}: ${text}` });
    } else {
      const where = d.file ? relative(dir, d.file.fileName) : "options";
      outside.push(`${where}: TS${d.code}: ${text}`);
    }
  }
  const problems = outside.map((p) => `type errors outside the README blocks: ${p}`);
  for (const b of compiled) {
    const errors = byFile.get(join(dir, sourceFileName(b)));
    const at = (line) => `${b.readme}:${b.line + line}`;
    if (b.markers.has("compile-error")) {
      const codeLines = b.code.split("\n");
      const expected = codeLines.flatMap((l, i) => (/\/\/.*compile error/i.test(l) ? [i] : []));
      if (expected.length === 0)
        problems.push(`${at(0)}: a compile-error block marks no line with "// compile error"`);
      for (const line of expected) {
        if (!errors.some((e) => e.line === line))
          problems.push(`${at(line)}: expected a compile error here, got none`);
      }
      for (const e of errors) {
        if (!expected.includes(e.line)) problems.push(`${at(e.line)}: unexpected ${e.text}`);
      }
    } else {
      for (const e of errors) problems.push(`${at(e.line)}: ${e.text}`);
    }
  }
  return problems;
}

// Packages that are Node programs (a command line, lint rules): a block importing one is
// not run in the browser even without the `node` marker.
const NODE_PROGRAMS = new Set([
  "@devref/cli",
  "@devref/eslint-plugin",
  "eslint",
  "typescript-eslint",
]);

/** Whether a block runs at all, and in the browser. */
export const runsInNode = (b) =>
  !b.markers.has("fragment") && !b.markers.has("compile-error") && !b.markers.has("no-run");
export const runsInBrowser = (b) =>
  runsInNode(b) &&
  !b.markers.has("node") &&
  !importedPackages(b.code).some((n) => NODE_PROGRAMS.has(n));

/**
 * The console capture loaded before a block, in Node and in the browser alike: every
 * console call is formatted by one function and printed as one string, so both runtimes
 * print the same text.
 */
export const CAPTURE_SOURCE = `
const seen = new WeakSet();
function fmt(v, depth, top) {
  if (typeof v === "string") return top ? v : JSON.stringify(v);
  if (typeof v === "bigint") return v + "n";
  if (typeof v === "symbol") return v.toString();
  if (typeof v === "function") return "[Function " + (v.name || "anonymous") + "]";
  if (v === null || typeof v !== "object") return String(v);
  if (v instanceof Error) return (v.name || "Error") + ": " + v.message + ("code" in v ? " [" + v.code + "]" : "");
  if (seen.has(v)) return "[Circular]";
  if (depth > 4) return Array.isArray(v) ? "[Array]" : "[Object]";
  seen.add(v);
  try {
    if (Array.isArray(v)) return "[" + v.map((x) => fmt(x, depth + 1, false)).join(", ") + "]";
    if (ArrayBuffer.isView(v)) {
      const items = Array.from(v.slice ? v.slice(0, 32) : [], (x) => fmt(x, depth + 1, false));
      return v.constructor.name + "(" + v.length + ") [" + items.join(", ") + (v.length > 32 ? ", ..." : "") + "]";
    }
    if (v instanceof Map) return "Map(" + v.size + ") {" + [...v].map(([k, x]) => " " + fmt(k, depth + 1, false) + " => " + fmt(x, depth + 1, false)).join(",") + " }";
    if (v instanceof Set) return "Set(" + v.size + ") {" + [...v].map((x) => " " + fmt(x, depth + 1, false)).join(",") + " }";
    const proto = Object.getPrototypeOf(v);
    const name = proto === null || proto === Object.prototype ? "" : (proto.constructor && proto.constructor.name) + " ";
    const keys = Object.keys(v);
    if (keys.length === 0) return name + "{}";
    return name + "{ " + keys.map((k) => k + ": " + fmt(v[k], depth + 1, false)).join(", ") + " }";
  } finally {
    seen.delete(v);
  }
}
const print = console.log.bind(console);
for (const level of ["log", "info", "warn", "error", "debug"]) {
  console[level] = (...args) => print(args.map((a) => fmt(a, 0, true)).join(" "));
}
`;

/** Lowers a block to JavaScript Node 20 runs (`using` included) and writes `<name>.run.mjs`. */
export async function writeNodeProgram(dir, block) {
  const file = join(dir, `${block.name}.run.mjs`);
  const capture = join(dir, "_capture.mjs");
  if (!existsSync(capture)) writeFileSync(capture, CAPTURE_SOURCE);
  const { code } = await transform(block.code, {
    loader: block.lang === "ts" ? "ts" : "js",
    format: "esm",
    target: "node20",
    sourcefile: `${block.readme}:${block.line}`,
  });
  writeFileSync(file, `import "./_capture.mjs";\n${code}`);
  return file;
}

/**
 * Runs a block in Node (cwd `dir`, so packages resolve from `dir`'s node_modules) and
 * resolves to `{ ok, lines, stderr }`.
 */
export async function runInNode(dir, block, timeoutMs = 60_000, nodeArgs = []) {
  const file = await writeNodeProgram(dir, block);
  return new Promise((done) => {
    const child = spawn(process.execPath, [...nodeArgs, basename(file)], { cwd: dirname(file) });
    let stdout = "";
    let stderr = "";
    child.stdout.on("data", (d) => {
      stdout += d;
    });
    child.stderr.on("data", (d) => {
      stderr += d;
    });
    const timer = setTimeout(() => child.kill("SIGKILL"), timeoutMs);
    child.on("close", (code, signal) => {
      clearTimeout(timer);
      const lines = stdout.split("\n");
      if (lines.at(-1) === "") lines.pop();
      const why = signal ? `killed after ${timeoutMs} ms` : `exit code ${code}`;
      done({ ok: code === 0, why, lines, stderr });
    });
  });
}
