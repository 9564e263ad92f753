// Lifecycle scripts of every published package, run in the package's folder.
//
//   prepack         builds the package when dist/ is missing or older than its sources, so
//                   a tarball never ships without dist/ or with a stale one (a fresh build
//                   is not redone: CI packs right after `pnpm build`);
//   prepublishOnly  refuses a publish by a client other than pnpm: only pnpm replaces the
//                   `workspace:` ranges of the manifest with real versions.
import { spawnSync } from "node:child_process";
import { existsSync, readdirSync, statSync } from "node:fs";
import { join } from "node:path";

const root = join(import.meta.dirname, "..");
const dir = process.cwd();
const step = process.argv[2];

function files(path) {
  if (!existsSync(path)) return [];
  if (statSync(path).isFile()) return [path];
  return readdirSync(path, { recursive: true, withFileTypes: true })
    .filter((e) => e.isFile())
    .map((e) => join(e.parentPath, e.name));
}

function mtimes(paths) {
  return paths.flatMap(files).map((f) => statSync(f).mtimeMs);
}

function staleReason() {
  const built = mtimes([join(dir, "dist")]);
  if (!existsSync(join(dir, "dist", "index.js")) || !existsSync(join(dir, "dist", "index.d.ts")))
    return "dist/ is missing";
  const sources = mtimes(["src", "tsup.config.ts", "tsconfig.json"].map((p) => join(dir, p)));
  if (Math.max(...sources) > Math.min(...built)) return "dist/ is older than the sources";
  return null;
}

if (step === "prepack") {
  const reason = staleReason();
  if (reason === null) {
    console.log("prepack: dist/ is up to date");
  } else {
    console.log(`prepack: ${reason}; building`);
    const tsup = join(root, "node_modules", "tsup", "dist", "cli-default.js");
    const run = spawnSync(process.execPath, [tsup], { cwd: dir, stdio: "inherit" });
    if (run.status !== 0) process.exit(run.status ?? 1);
  }
} else if (step === "prepublishOnly") {
  const agent = process.env.npm_config_user_agent ?? "";
  if (!agent.startsWith("pnpm/")) {
    console.error(
      "Publish devref packages with pnpm (`pnpm publish -r` from the repository root): it " +
        "replaces the `workspace:` ranges in each manifest with versions; this client would " +
        "publish them unchanged and the package could not be installed.",
    );
    process.exit(1);
  }
} else {
  console.error(`release-guard: unknown step ${step ?? "(none)"}`);
  process.exit(1);
}
