// `pnpm test:release`: the release path, without publishing anything.
//
// 1. `changeset version` on a copy of the workspace's manifests, with one minor changeset on
//    one package: every public package must reach the same next minor version (the `fixed`
//    group; a peer dependency must not turn it into a major bump), the private examples must
//    stay as they are, every package gets a changelog, and internal ranges stay `workspace:`.
// 2. `pnpm publish -r --dry-run`: every public package is packed as it would be published
//    (prepack makes sure of dist/; the packed manifests are checked by scripts/install-alone.mjs).
import { spawnSync } from "node:child_process";
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
import { dirname, join } from "node:path";

const root = join(import.meta.dirname, "..");
const problems = [];
const read = (file) => JSON.parse(readFileSync(file, "utf8"));

const manifests = ["packages", "examples"].flatMap((top) =>
  readdirSync(join(root, top))
    .map((d) => join(top, d, "package.json"))
    .filter((f) => existsSync(join(root, f))),
);
const publicPackages = manifests.filter((f) => !read(join(root, f)).private);

// 1. changeset version on a copy.
const copy = mkdtempSync(join(tmpdir(), "devref-release-"));
for (const f of ["package.json", "pnpm-workspace.yaml", ".changeset/config.json", ...manifests]) {
  mkdirSync(dirname(join(copy, f)), { recursive: true });
  cpSync(join(root, f), join(copy, f));
}
const first = read(join(root, publicPackages[0]));
const [major, minor] = first.version.split(".").map(Number);
const expected = `${major}.${minor + 1}.0`;
writeFileSync(
  join(copy, ".changeset", "release-check.md"),
  `---\n"@devref/raw-device": minor\n---\n\nA release check.\n`,
);
const changeset = join(root, "node_modules", "@changesets", "cli", "bin.js");
const run = spawnSync(process.execPath, [changeset, "version"], { cwd: copy, encoding: "utf8" });
if (run.status !== 0) {
  problems.push(`changeset version failed:\n${run.stdout}${run.stderr}`);
} else {
  for (const f of manifests) {
    const before = read(join(root, f));
    const after = read(join(copy, f));
    if (before.private) {
      if (after.version !== before.version)
        problems.push(
          `${f}: a private package was versioned (${before.version} -> ${after.version})`,
        );
      continue;
    }
    if (after.version !== expected)
      problems.push(
        `${f}: ${before.version} -> ${after.version}, expected ${expected} with the group`,
      );
    if (!existsSync(join(copy, dirname(f), "CHANGELOG.md")))
      problems.push(`${f}: no CHANGELOG.md written`);
    for (const field of ["dependencies", "peerDependencies", "devDependencies"]) {
      for (const [name, range] of Object.entries(after[field] ?? {})) {
        if (name.startsWith("@devref/") && !range.startsWith("workspace:"))
          problems.push(`${f}: ${field}.${name} became ${range}`);
      }
    }
  }
  console.log(
    `changeset version: a minor change to @devref/raw-device moves all ${publicPackages.length} ` +
      `public packages from ${first.version} to ${expected} together; ` +
      `${manifests.length - publicPackages.length} private examples unversioned`,
  );
}
rmSync(copy, { recursive: true, force: true });

// 2. The publish itself, dry.
const publish = spawnSync("pnpm", ["publish", "-r", "--dry-run", "--no-git-checks"], {
  cwd: root,
  encoding: "utf8",
});
const output = `${publish.stdout}${publish.stderr}`;
if (publish.status !== 0) problems.push(`pnpm publish -r --dry-run failed:\n${output}`);
const published = [...output.matchAll(/^\+ (@devref\/[\w-]+)@(\S+)$/gm)].map((m) => m[1]);
for (const f of publicPackages) {
  const { name, version } = read(join(root, f));
  if (!published.includes(name)) problems.push(`${name}@${version} was not in the dry-run publish`);
}
const files = [...output.matchAll(/total files:\s+(\d+)/g)].map((m) => Number(m[1]));
console.log(
  `pnpm publish -r --dry-run: ${published.length} packages (${published.join(", ")}), ` +
    `${files.reduce((a, b) => a + b, 0)} files`,
);

if (problems.length > 0) {
  console.error(`\n${problems.length} release problem(s):`);
  for (const p of problems) console.error(`- ${p}`);
  process.exit(1);
}
