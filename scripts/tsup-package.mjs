// The build of one published package: tsup bundles the JavaScript; the declarations are
// emitted by the TypeScript compiler next to it, one .d.ts per source file with its
// declaration map, so "go to definition" in a user's editor lands in the shipped src/
// instead of a bundled declaration file (tsup's bundled declarations carry no maps).
import { existsSync, readdirSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { join, relative, resolve, sep } from "node:path";
import ts from "typescript";

// Consumers on a lib without `esnext.disposable` still see Disposable in the entry files.
const LIB_REFERENCE = '/// <reference lib="esnext.disposable" />';

/**
 * The tsup options of a package: ESM for Node 20 with source maps, and declarations with
 * declaration maps emitted after each build.
 * @param {{ entry: string[]; external?: string[]; noExternal?: (string | RegExp)[] }} options
 * @returns {import("tsup").Options}
 */
export function packageBuild(options) {
  return {
    entry: options.entry,
    format: ["esm"],
    target: "node20",
    dts: false,
    clean: true,
    sourcemap: true,
    ...(options.external ? { external: options.external } : {}),
    ...(options.noExternal ? { noExternal: options.noExternal } : {}),
    onSuccess: async () => emitDeclarations(process.cwd(), options.entry),
  };
}

/**
 * Emits `dist/**.d.ts` and `dist/**.d.ts.map` for the files under `src/` of the package at
 * `dir`, resolving other devref packages through their published types (not their source).
 * @param {string} dir
 * @param {string[]} entries
 */
export function emitDeclarations(dir, entries) {
  const configPath = join(dir, "tsconfig.json");
  const src = resolve(dir, "src");
  const dist = resolve(dir, "dist");
  const parsed = ts.getParsedCommandLineOfConfigFile(
    configPath,
    {
      noEmit: false,
      declaration: true,
      declarationMap: true,
      emitDeclarationOnly: true,
      rootDir: src,
      outDir: dist,
      customConditions: [],
    },
    {
      ...ts.sys,
      onUnRecoverableConfigFileDiagnostic: (d) => {
        throw new Error(ts.flattenDiagnosticMessageText(d.messageText, "\n"));
      },
    },
  );
  if (!parsed) throw new Error(`cannot read ${configPath}`);
  const rootNames = parsed.fileNames.filter((f) => resolve(f).startsWith(src + sep));
  for (const old of listFiles(dist)) {
    if (old.endsWith(".d.ts") || old.endsWith(".d.ts.map")) rmSync(old);
  }
  const program = ts.createProgram({ rootNames, options: parsed.options });
  const result = program.emit();
  // Type errors are the typecheck task's; here only what stops a declaration from being right.
  const errors = result.diagnostics.filter((d) => d.category === ts.DiagnosticCategory.Error);
  if (errors.length > 0) {
    const host = {
      getCanonicalFileName: (f) => f,
      getCurrentDirectory: () => dir,
      getNewLine: () => "\n",
    };
    throw new Error(ts.formatDiagnostics(errors, host));
  }
  for (const entry of entries) {
    const base = relative(src, resolve(dir, entry)).replace(/\.ts$/, "");
    addLibReference(join(dist, `${base}.d.ts`));
  }
  const count = listFiles(dist).filter((f) => f.endsWith(".d.ts")).length;
  console.log(`DTS ${count} declaration files with maps in ${relative(dir, dist)}/`);
}

/** Puts the lib reference on the first line; the map gets an empty first line to match. */
function addLibReference(file) {
  const text = readFileSync(file, "utf8");
  if (text.startsWith(LIB_REFERENCE)) return;
  writeFileSync(file, `${LIB_REFERENCE}\n${text}`);
  const mapFile = `${file}.map`;
  const map = JSON.parse(readFileSync(mapFile, "utf8"));
  map.mappings = `;${map.mappings}`;
  writeFileSync(mapFile, JSON.stringify(map));
}

function listFiles(dir) {
  if (!existsSync(dir)) return [];
  return readdirSync(dir, { recursive: true, withFileTypes: true })
    .filter((e) => e.isFile())
    .map((e) => join(e.parentPath, e.name));
}
