// `pnpm test:install`: each published package as a user gets it. After `pnpm build`:
//
// 1. `pnpm pack` every public package (pnpm rewrites `workspace:` ranges; prepack checks the
//    build) and check each tarball: no `workspace:` left, every `exports` target present,
//    a declaration map beside every declaration file, the sources those maps name shipped.
// 2. For each package, an empty folder gets exactly what its README's install line names,
//    with npm, every @devref package from the tarballs only (never the registry): the line
//    must name the package, its peer dependencies and every @devref package its README
//    examples import. Then its README examples and a consumer importing every entry point
//    are compiled with moduleResolution node16 and bundler (skipLibCheck off), and the
//    examples and the consumer run in Node.
// 3. A second, nested copy of @devref/raw-device (a version skew) must be refused at load
//    with an error that names both copies' paths.
import { execFileSync, spawnSync } from "node:child_process";
import {
  cpSync,
  existsSync,
  mkdirSync,
  mkdtempSync,
  readdirSync,
  readFileSync,
  rmSync,
  writeFileSync,
} from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import {
  extractBlocks,
  importedPackages,
  runInNode,
  runsInNode,
  typecheckBlocks,
  writeBlocks,
} from "./readme/blocks.mjs";

const root = join(import.meta.dirname, "..");
const out = mkdtempSync(join(tmpdir(), "devref-install-"));
const tarballs = join(out, "tarballs");
mkdirSync(tarballs);
const problems = [];
const notes = [];
const started = performance.now();

const packages = readdirSync(join(root, "packages"))
  .map((d) => ({ dir: join(root, "packages", d), short: d }))
  .filter((p) => existsSync(join(p.dir, "package.json")))
  .map((p) => ({ ...p, manifest: JSON.parse(readFileSync(join(p.dir, "package.json"), "utf8")) }))
  .filter((p) => !p.manifest.private);
const byName = new Map(packages.map((p) => [p.manifest.name, p]));

// 1. Pack and check the tarballs.
for (const p of packages) {
  const run = spawnSync("pnpm", ["pack", "--pack-destination", tarballs], {
    cwd: p.dir,
    encoding: "utf8",
  });
  if (run.status !== 0)
    throw new Error(`pnpm pack failed in ${p.short}:\n${run.stdout}${run.stderr}`);
  const file = `${p.manifest.name.slice(1).replace("/", "-")}-${p.manifest.version}.tgz`;
  p.tarball = join(tarballs, file);
  const files = new Set(
    execFileSync("tar", ["-tzf", p.tarball], { encoding: "utf8" })
      .split("\n")
      .filter(Boolean)
      .map((f) => f.replace(/^package\//, "")),
  );
  const text = execFileSync("tar", ["-xzOf", p.tarball, "package/package.json"], {
    encoding: "utf8",
  });
  p.packed = JSON.parse(text);
  const where = `${file}`;
  // Packages built by scripts/tsup-package.mjs are held to all of it; another build's gaps
  // are printed as notes.
  const shared = readFileSync(join(p.dir, "tsup.config.ts"), "utf8").includes("packageBuild");
  const problem = (text) => (shared ? problems : notes).push(text);
  if (text.includes("workspace:"))
    problems.push(`${where}: the packed manifest keeps a workspace: range`);
  for (const [sub, target] of Object.entries(p.packed.exports ?? {})) {
    if (target === null || typeof target === "string") continue;
    for (const [cond, path] of Object.entries(target)) {
      if (!files.has(path.replace(/^\.\//, "")))
        problem(`${where}: exports["${sub}"]["${cond}"] = ${path} is not in the tarball`);
    }
  }
  const declarations = [...files].filter((f) => f.startsWith("dist/") && f.endsWith(".d.ts"));
  if (declarations.length === 0) problems.push(`${where}: no declaration files in dist/`);
  for (const d of declarations) {
    if (!files.has(`${d}.map`)) {
      problem(`${where}: ${d} has no declaration map`);
      continue;
    }
    const map = JSON.parse(
      execFileSync("tar", ["-xzOf", p.tarball, `package/${d}.map`], { encoding: "utf8" }),
    );
    for (const s of map.sources) {
      const path = join(d, "..", s).replace(/\\/g, "/");
      if (!files.has(path)) problems.push(`${where}: ${d}.map names ${path}, which is not shipped`);
    }
  }
  if ([...files].some((f) => /(^|\/)test\/|\.test\.ts$/.test(f)))
    problems.push(`${where}: tests are in the tarball`);
  p.fileCount = files.size;
}

/** Every @devref package `names` need, themselves included (dependencies and peers). */
function closure(names) {
  const seen = new Set();
  const visit = (n) => {
    if (seen.has(n) || !byName.has(n)) return;
    seen.add(n);
    const m = byName.get(n).packed;
    for (const d of Object.keys({ ...m.dependencies, ...m.peerDependencies })) visit(d);
  };
  for (const n of names) visit(n);
  return [...seen];
}

/** The packages named by the first `npm install` / `pnpm add` line of a README. */
function installLine(readme) {
  const text = readFileSync(readme, "utf8");
  const line = /^(?:npm install|npm i|pnpm add|yarn add)\s+(.+)$/m.exec(text);
  if (!line) return null;
  return line[1]
    .replace(/\s#.*$/, "")
    .split(/\s+/)
    .filter((a) => a && !a.startsWith("-"));
}

const tsOptions = { typeRoots: [join(root, "node_modules", "@types")] };
let installed = 0;
let examplesRun = 0;
let compiled = 0;

// 2. Each package alone.
for (const p of packages) {
  const dir = join(out, p.short);
  mkdirSync(dir);
  const readme = join(p.dir, "README.md");
  const where = `packages/${p.short}`;
  const names = existsSync(readme) ? installLine(readme) : null;
  if (!names) {
    problems.push(`${where}/README.md: no install line (npm install ...)`);
    continue;
  }
  const blocks = extractBlocks(readme, `${where}/README.md`);
  const needed = new Set([p.manifest.name, ...Object.keys(p.packed.peerDependencies ?? {})]);
  for (const b of blocks.filter((b) => !b.markers.has("fragment")))
    for (const n of importedPackages(b.code)) if (n.startsWith("@devref/")) needed.add(n);
  for (const n of needed) {
    if (!names.includes(n))
      problems.push(`${where}/README.md: the install line does not name ${n} (${names.join(" ")})`);
  }
  const devref = closure(names.filter((n) => n.startsWith("@devref/")).concat(p.manifest.name));
  const others = names.filter((n) => !n.startsWith("@devref/"));
  writeFileSync(
    join(dir, "package.json"),
    JSON.stringify({ name: `try-${p.short}`, private: true, type: "module" }, null, 2),
  );
  const npm = spawnSync(
    "npm",
    [
      "install",
      "--no-audit",
      "--no-fund",
      "--loglevel=error",
      ...devref.map((n) => byName.get(n).tarball),
      ...others,
    ],
    { cwd: dir, encoding: "utf8" },
  );
  if (npm.status !== 0) {
    problems.push(`${where}: npm install from the tarballs failed:\n${npm.stdout}${npm.stderr}`);
    continue;
  }
  installed++;
  for (const n of devref) {
    const m = JSON.parse(readFileSync(join(dir, "node_modules", n, "package.json"), "utf8"));
    if (m.version !== byName.get(n).manifest.version)
      problems.push(`${where}: ${n} installed at ${m.version}, not from its tarball`);
  }

  // A consumer of every entry point, and a check that internal modules stay closed.
  const entries = Object.keys(p.packed.exports ?? { ".": {} }).filter(
    (k) => !k.includes("*") && k !== "./package.json",
  );
  const spec = (k) => (k === "." ? p.manifest.name : `${p.manifest.name}/${k.slice(2)}`);
  writeFileSync(
    join(dir, "consumer.ts"),
    entries.map((k, i) => `import * as entry${i} from "${spec(k)}";`).join("\n") +
      "\n// @ts-expect-error internal modules are not exported\n" +
      `type Internal = typeof import("${p.manifest.name}/internal/anything");\n` +
      `const entryPoints: object[] = [${entries.map((_, i) => `entry${i}`).join(", ")}];\n` +
      "console.log(entryPoints.map((e) => Object.keys(e).length).join(' '));\n" +
      "export {};\n",
  );
  const consumerBlock = {
    readme: `${where} consumer`,
    index: 0,
    line: 1,
    lang: "ts",
    markers: new Set(),
    code: readFileSync(join(dir, "consumer.ts"), "utf8"),
    name: "consumer",
  };
  writeBlocks(dir, blocks);
  const all = [...blocks, consumerBlock];
  for (const resolution of [
    { module: "Node16", moduleResolution: "Node16" },
    { module: "ESNext", moduleResolution: "Bundler" },
  ]) {
    for (const problem of typecheckBlocks(dir, all, resolution, tsOptions))
      problems.push(`${where} (${resolution.moduleResolution}): ${problem}`);
  }
  compiled += all.filter((b) => !b.markers.has("fragment")).length;
  for (const b of [...blocks.filter(runsInNode), consumerBlock]) {
    const r = await runInNode(dir, b);
    if (b !== consumerBlock) examplesRun++;
    if (!r.ok)
      problems.push(
        `${where}: ${b.readme}:${b.line} failed in Node (${r.why})\n${r.stderr.trim()}`,
      );
  }
  console.log(
    `  ${p.manifest.name}: ${p.fileCount} files packed; installed with ${devref.length} @devref tarball(s)` +
      `${others.length ? ` and ${others.join(", ")} from the registry` : ""}; ` +
      `${blocks.filter(runsInNode).length} README example(s) run`,
  );
}

// 3. Two copies of the core: a nested, skewed @devref/raw-device under @devref/device-core.
{
  const dir = join(out, "two-copies");
  mkdirSync(dir);
  writeFileSync(join(dir, "package.json"), JSON.stringify({ private: true, type: "module" }));
  const core = ["@devref/raw-device", "@devref/device-core"].map((n) => byName.get(n).tarball);
  const npm = spawnSync(
    "npm",
    ["install", "--no-audit", "--no-fund", "--loglevel=error", ...core],
    {
      cwd: dir,
      encoding: "utf8",
    },
  );
  if (npm.status !== 0) throw new Error(`npm install failed:\n${npm.stderr}`);
  const top = join(dir, "node_modules", "@devref", "raw-device");
  const nested = join(
    dir,
    "node_modules",
    "@devref",
    "device-core",
    "node_modules",
    "@devref",
    "raw-device",
  );
  cpSync(top, nested, { recursive: true });
  const manifest = JSON.parse(readFileSync(join(nested, "package.json"), "utf8"));
  manifest.version = "0.0.1";
  writeFileSync(join(nested, "package.json"), JSON.stringify(manifest, null, 2));
  writeFileSync(
    join(dir, "main.mjs"),
    'await import("@devref/raw-device");\nawait import("@devref/device-core");\nconsole.log("loaded");\n',
  );
  const run = spawnSync(process.execPath, ["main.mjs"], { cwd: dir, encoding: "utf8" });
  const message = run.stderr;
  const named = [top, nested].every((p) => message.includes(p));
  if (run.status === 0 || !named || !/two copies of @devref\/raw-device/.test(message)) {
    problems.push(
      `a nested second copy of @devref/raw-device was not refused at load naming both paths ` +
        `(exit ${run.status}):\n${run.stdout}${message}`,
    );
  } else {
    const first = message.split("\n").find((l) => l.includes("two copies"));
    console.log(`  nested second copy refused: ${first.trim().slice(0, 160)}...`);
  }
}

const seconds = ((performance.now() - started) / 1000).toFixed(0);
console.log(
  `install-alone: ${packages.length} packages packed, ${installed} installed alone from tarballs; ` +
    `${examplesRun} README examples run; ${compiled} files compiled twice (node16, bundler; ` +
    `skipLibCheck off); one-copy check done (${seconds} s)`,
);
rmSync(out, { recursive: true, force: true });
for (const n of notes) console.log(`  note: ${n}`);
if (problems.length > 0) {
  console.error(`\n${problems.length} install problem(s):`);
  for (const p of problems) console.error(`- ${p}`);
  process.exit(1);
}
