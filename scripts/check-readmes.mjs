// `pnpm test:readmes`: every ts/js code block of every README (root, packages, examples) is
// type-checked against the BUILT packages (their dist/ types, as a user's project sees
// them: no source condition, skipLibCheck off) and run in Node; with --browser, every block
// that runs in Node also runs in headless Chromium, bundled for the browser, and must print
// the same lines. Markers for blocks that are not whole programs: scripts/readme/blocks.mjs.
// Needs `pnpm build` first.
import { existsSync, mkdirSync, readdirSync, readFileSync, rmSync, symlinkSync } from "node:fs";
import { join, relative } from "node:path";
import {
  BROWSER_DONE,
  bundleForBrowser,
  CHROMIUM,
  launchChromium,
  runInChromium,
} from "./browser.mjs";
import {
  extractBlocks,
  importedPackages,
  runInNode,
  runsInBrowser,
  runsInNode,
  sourceFileName,
  typecheckBlocks,
  writeBlocks,
} from "./readme/blocks.mjs";

const root = join(import.meta.dirname, "..");
const browser = process.argv.includes("--browser");
const work = join(root, ".readme-examples");

const dirs = ["packages", "examples"].flatMap((top) =>
  existsSync(join(root, top))
    ? readdirSync(join(root, top), { withFileTypes: true })
        .filter((e) => e.isDirectory())
        .map((e) => join(top, e.name))
    : [],
);
const readmes = [
  "README.md",
  "examples/README.md",
  ...dirs.map((d) => join(d, "README.md")),
].filter((f) => existsSync(join(root, f)));
const only = process.argv.indexOf("--only");
const blocks = readmes
  .filter((f) => only < 0 || process.argv[only + 1].split(",").includes(f))
  .flatMap((f) => extractBlocks(join(root, f), f));

// A user's project: the packages linked in as installed, resolved through their exports.
rmSync(work, { recursive: true, force: true });
mkdirSync(join(work, "node_modules", "@devref"), { recursive: true });
for (const d of dirs) {
  const manifest = join(root, d, "package.json");
  if (!existsSync(manifest)) continue;
  const { name } = JSON.parse(readFileSync(manifest, "utf8"));
  if (!name?.startsWith("@devref/")) continue;
  if (!d.startsWith("examples/") && !existsSync(join(root, d, "dist", "index.js"))) {
    console.error(`${d}/dist is missing: run pnpm build first`);
    process.exit(1);
  }
  symlinkSync(join(root, d), join(work, "node_modules", name), "dir");
}
mkdirSync(work, { recursive: true });
writeBlocks(work, blocks);
const problems = [];

const started = performance.now();
problems.push(
  ...typecheckBlocks(work, blocks, { module: "NodeNext", moduleResolution: "NodeNext" }),
);
const compiled = blocks.filter((b) => !b.markers.has("fragment"));
const typecheckMs = performance.now() - started;

// With --browser, the programs of scripts/browser-programs run beside the README blocks
// (the core packages' entry points, the simulator's main scenario), in Node and Chromium.
const programs = browser
  ? readdirSync(join(root, "scripts", "browser-programs"))
      .filter((f) => f.endsWith(".mjs"))
      .sort()
      .map((f, i) => ({
        readme: `scripts/browser-programs/${f}`,
        index: i + 1,
        line: 1,
        lang: "js",
        markers: new Set(),
        code: readFileSync(join(root, "scripts", "browser-programs", f), "utf8"),
        name: `program-${f.replace(/\.mjs$/, "")}`,
      }))
  : [];
writeBlocks(work, programs);
blocks.push(...programs);

// Node runs, two at a time (the machine has two cores).
const nodeRuns = new Map();
const queue = blocks.filter(runsInNode);
async function worker() {
  for (let b = queue.shift(); b; b = queue.shift()) {
    // The example drivers are private packages that export their TypeScript source.
    const fromSource = importedPackages(b.code).some((n) => n.startsWith("@devref/example-"));
    const r = await runInNode(work, b, 60_000, fromSource ? ["--import", "tsx"] : []);
    nodeRuns.set(b, r);
    if (!r.ok)
      problems.push(`${b.readme}:${b.line}: failed in Node (${r.why})\n${r.stderr.trim()}`);
  }
}
await Promise.all([worker(), worker()]);

let browserRan = 0;
if (browser) {
  const chromium = await launchChromium();
  try {
    for (const b of blocks.filter(runsInBrowser)) {
      const node = nodeRuns.get(b);
      if (!node?.ok) continue;
      const entry = `import "./_capture.mjs";\nimport "./${sourceFileName(b)}";\n${BROWSER_DONE}\n`;
      let code;
      try {
        code = await bundleForBrowser(entry, work);
      } catch (err) {
        problems.push(`${b.readme}:${b.line}: does not bundle for the browser: ${err.message}`);
        continue;
      }
      const r = await runInChromium(chromium, code);
      if (!programs.includes(b)) browserRan++;
      if (!r.ok) {
        problems.push(`${b.readme}:${b.line}: failed in Chromium: ${r.why}`);
      } else if (r.lines.join("\n") !== node.lines.join("\n")) {
        problems.push(
          `${b.readme}:${b.line}: Chromium printed other lines than Node\n` +
            `  Node:     ${JSON.stringify(node.lines)}\n  Chromium: ${JSON.stringify(r.lines)}`,
        );
      }
    }
  } finally {
    await chromium.close();
  }
}

for (const p of programs) blocks.splice(blocks.indexOf(p), 1);
const count = (pred) => blocks.filter(pred).length;
console.log(
  `README examples: ${blocks.length} blocks in ${readmes.length} READMEs; ` +
    `${compiled.length} type-checked against dist types (${Math.round(typecheckMs)} ms), ` +
    `${count((b) => b.markers.has("compile-error"))} of them expected to fail to compile; ` +
    `${count((b) => nodeRuns.has(b))} run in Node` +
    (browser ? `, ${browserRan} in Chromium with the same output` : "") +
    `; ${count((b) => b.markers.has("fragment"))} fragments, ${count((b) => b.markers.has("no-run"))} no-run, ` +
    `${count((b) => runsInNode(b) && !runsInBrowser(b))} Node-only`,
);
if (browser) {
  console.log(
    `Browser programs: ${programs.length} run in Node and in Chromium (${CHROMIUM}) with the same output`,
  );
  for (const p of programs) {
    const r = nodeRuns.get(p);
    console.log(`  ${p.readme}: ${r?.lines.length ?? 0} lines; ${r?.lines.at(-2) ?? ""}`);
  }
}
for (const b of blocks) {
  const r = nodeRuns.get(b);
  const what = b.markers.size > 0 ? [...b.markers].join(",") : "run";
  console.log(
    `  ${relative(root, join(root, b.readme))}:${b.line} ${b.lang} ${what}${r ? ` (${r.lines.length} lines)` : ""}`,
  );
}
if (problems.length > 0) {
  console.error(`\n${problems.length} README example problem(s):`);
  for (const p of problems) console.error(`- ${p}`);
  process.exit(1);
}
