// The simulator must not share code with what it tests (io-pgtable, rtkit, and the DMA layer
// of dma-iommu), and must run in a browser as in Node: these scans keep both promises. It
// may use the driver model (raw-device, device-core, bus): that is what it plugs into.
import { readdirSync, readFileSync, statSync } from "node:fs";
import { join } from "node:path";
import { describe, expect, it } from "vitest";

const ROOT = join(import.meta.dirname, "..");

function sources(dir: string): string[] {
  const out: string[] = [];
  for (const name of readdirSync(dir)) {
    const path = join(dir, name);
    if (statSync(path).isDirectory()) out.push(...sources(path));
    else if (/\.(ts|js|mjs|cts|mts)$/.test(name)) out.push(path);
  }
  return out;
}

const files = sources(join(ROOT, "src"));
/** Module specifiers of import/export-from statements and dynamic imports. */
const SPECIFIER = /(?:\bfrom\s*|\bimport\s*\(?\s*)["']([^"']+)["']/g;

// Globals by name, not methods that happen to share one (`this.process()`).
const banned =
  /(?<![.\w$])(?:Buffer\b|process\s*\.|require\s*\(|setImmediate\s*\(|performance\s*\.)|\bDate\.now\b|\bnew Date\b|\bMath\.random\b/;

function specifiers(text: string): string[] {
  return [...text.matchAll(SPECIFIER)].map((m) => m[1]!);
}

describe("sim stays independent of what it tests", () => {
  it("scans a non-empty source tree", () => {
    expect(files.length).toBeGreaterThan(5);
  });

  it("no source file imports io-pgtable, rtkit or dma-iommu", () => {
    const bad = files.flatMap((f) =>
      specifiers(readFileSync(f, "utf8"))
        .filter((s) => /io-pgtable|rtkit|dma-iommu/.test(s))
        .map((s) => `${f}: ${s}`),
    );
    expect(bad).toEqual([]);
  });

  it("package.json depends on none of them, only on the driver model", () => {
    const pkg = JSON.parse(readFileSync(join(ROOT, "package.json"), "utf8")) as Record<
      string,
      Record<string, string> | undefined
    >;
    const deps = [
      ...Object.keys(pkg.dependencies ?? {}),
      ...Object.keys(pkg.devDependencies ?? {}),
      ...Object.keys(pkg.peerDependencies ?? {}),
      ...Object.keys(pkg.optionalDependencies ?? {}),
    ];
    expect(deps.filter((d) => /io-pgtable|rtkit|dma-iommu/.test(d))).toEqual([]);
    // A package may be both a peer (one copy of the core) and a workspace dev dependency.
    expect([...new Set(deps)].sort()).toEqual([
      "@devref/bus",
      "@devref/device-core",
      "@devref/raw-device",
    ]);
  });

  it("the scan would catch an offending import", () => {
    expect(specifiers('import { x } from "@devref/io-pgtable";')).toEqual(["@devref/io-pgtable"]);
    expect(specifiers('export * from "@devref/rtkit/codec"')).toEqual(["@devref/rtkit/codec"]);
    expect(specifiers('await import("@devref/rtkit")')).toEqual(["@devref/rtkit"]);
    expect(specifiers('import type { X } from "@devref/dma-iommu";')).toEqual([
      "@devref/dma-iommu",
    ]);
  });
});

describe("sim runs in a browser", () => {
  it("the scan tells globals from methods of the same name", () => {
    for (const bad of [
      "process.env.X",
      "Buffer.from(x)",
      "Date.now()",
      "Math.random()",
      "require('fs')",
    ]) {
      expect(banned.test(bad)).toBe(true);
    }
    for (const ok of ["this.process();", "private process(): void {", "x.performance.now"]) {
      expect(banned.test(ok)).toBe(false);
    }
  });

  it("uses no Node module, Buffer, process or wall-clock time in src", () => {
    const bad: string[] = [];
    for (const f of files) {
      const text = readFileSync(f, "utf8");
      for (const s of specifiers(text)) {
        if (s.startsWith("node:") || /^(fs|path|os|crypto|child_process|util|events)$/.test(s)) {
          bad.push(`${f}: imports ${s}`);
        }
      }
      text.split("\n").forEach((line, i) => {
        const code = line.replace(/\/\/.*$/, "");
        if (banned.test(code) && !code.trimStart().startsWith("*"))
          bad.push(`${f}:${i + 1}: ${line.trim()}`);
      });
    }
    expect(bad).toEqual([]);
  });
});
