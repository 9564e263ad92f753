// Part of `pnpm lint`: every cast that mints a brand or bypasses the type checker in package
// source must sit under a `// SAFETY:` comment saying why it holds (the Rust kernel crate's
// rule for `unsafe` blocks). Borrows smuggled out through such casts are what it catches.
import { readdirSync, readFileSync, statSync } from "node:fs";
import { join, relative } from "node:path";

const ROOT = join(import.meta.dirname, "..");
const CAST =
  /\bas\s+(unknown\s+as\b|never\b|ARef<|Borrowed<|Static<|PhysAddr\b|DmaAddr\b|Iova\b|Device<)/;
const WINDOW = 4; // lines above the cast in which the comment may stand

function* sources(dir) {
  for (const name of readdirSync(dir)) {
    if (name === "node_modules" || name === "dist") continue;
    const path = join(dir, name);
    if (statSync(path).isDirectory()) yield* sources(path);
    else if (path.endsWith(".ts") && !path.endsWith(".d.ts")) yield path;
  }
}

const problems = [];
for (const pkg of readdirSync(join(ROOT, "packages"))) {
  for (const sub of ["src", "demo"]) {
    let files;
    try {
      files = [...sources(join(ROOT, "packages", pkg, sub))];
    } catch {
      continue;
    }
    for (const file of files) {
      const lines = readFileSync(file, "utf8").split("\n");
      lines.forEach((line, i) => {
        if (
          !CAST.test(line) ||
          line.trimStart().startsWith("//") ||
          line.trimStart().startsWith("*")
        )
          return;
        const context = lines.slice(Math.max(0, i - WINDOW), i + 1).join("\n");
        if (!context.includes("SAFETY:"))
          problems.push(`${relative(ROOT, file)}:${i + 1}: ${line.trim()}`);
      });
    }
  }
}
if (problems.length > 0) {
  console.error("casts without a // SAFETY: comment saying why they hold:");
  for (const p of problems) console.error(`  ${p}`);
  process.exit(1);
}
console.log("check-safety: every unchecked cast in package source has a SAFETY comment");
