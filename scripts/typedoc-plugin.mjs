// The typedoc plugin of `pnpm run docs` (plain `pnpm docs` is npm's docs command):
// - each package goes into the group of its kernel subsystem on the index page;
// - the `//! C header:` / `//! C source:` / `//! Rust:` lines at the top of a source file
//   become a "Kernel analogue" section of every top-level symbol declared in that file (and
//   of the package, from its index file), instead of staying invisible in a line comment;
// - every exported symbol (a package's top-level class, interface, function, type, variable,
//   enum or namespace) must have a comment: one without is an error, and the build fails;
//   typedoc's own validation fails it on a broken link;
// - the figures of the build are printed: pages written, symbols checked.
import { readdirSync, readFileSync } from "node:fs";
import { join } from "node:path";
import {
  Application,
  Comment,
  CommentTag,
  Converter,
  ReflectionGroup,
  ReflectionKind,
  RendererEvent,
} from "typedoc";

/** Kernel subsystem of each package, as the index page groups them. */
const SUBSYSTEMS = {
  "@devref/raw-device": "Device model",
  "@devref/device-core": "Device model",
  "@devref/bus": "Device model",
  "@devref/io-pgtable": "DMA and IOMMU",
  "@devref/dma-iommu": "DMA and IOMMU",
  "@devref/rtkit": "Apple coprocessors",
  "@devref/sim": "Simulator and tools",
  "@devref/cli": "Simulator and tools",
  "@devref/eslint-plugin": "Simulator and tools",
};

const LABEL = /(C header|C source|Rust):/g;

/** The kernel analogue named in a file's `//!` header, or null. */
export function kernelAnalogue(text) {
  const header = [];
  for (const line of text.split("\n")) {
    if (!line.startsWith("//!")) break;
    header.push(line.replace(/^\/\/! ?/, ""));
  }
  const paragraphs = header.join("\n").split(/\n\s*\n/);
  const parts = [];
  for (const p of paragraphs) {
    const flat = p.replace(/\s*\n\s*/g, " ");
    const starts = [...flat.matchAll(LABEL)];
    for (let i = 0; i < starts.length; i++) {
      const from = starts[i].index;
      const to = i + 1 < starts.length ? starts[i + 1].index : flat.length;
      const [label, rest] = [starts[i][1], flat.slice(from + starts[i][0].length, to)];
      const value = rest.trim().replace(/[;.]$/, "").trim();
      if (value) parts.push(`${label}: ${value}`);
    }
  }
  return parts.length > 0 ? parts : null;
}

function analogueTag(parts) {
  const content = [];
  parts.forEach((p, i) => {
    const [label, value] = [p.slice(0, p.indexOf(":")), p.slice(p.indexOf(":") + 1).trim()];
    if (i > 0) content.push({ kind: "text", text: "\n\n" });
    content.push({ kind: "text", text: `${label}: ` });
    value.split(/,\s*(?![^(]*\))/).forEach((v, j) => {
      if (j > 0) content.push({ kind: "text", text: ", " });
      content.push({ kind: "code", text: `\`${v}\`` });
    });
  });
  return new CommentTag("@kernelAnalogue", content);
}

const TOP_LEVEL =
  ReflectionKind.Class |
  ReflectionKind.Interface |
  ReflectionKind.Function |
  ReflectionKind.TypeAlias |
  ReflectionKind.Variable |
  ReflectionKind.Enum;

/** @param {import("typedoc").Application} app */
export function load(app) {
  const cache = new Map();
  const analogueOf = (file) => {
    if (!cache.has(file)) {
      let text = "";
      try {
        text = readFileSync(file, "utf8");
      } catch {}
      cache.set(file, kernelAnalogue(text));
    }
    return cache.get(file);
  };

  app.converter.on(Converter.EVENT_RESOLVE_END, (context) => {
    const project = context.project;
    for (const reflection of project.getReflectionsByKind(TOP_LEVEL)) {
      if (!reflection.parent?.kindOf(ReflectionKind.Module | ReflectionKind.Project)) continue;
      const source = reflection.sources?.[0]?.fullFileName;
      const parts = source ? analogueOf(source) : null;
      if (!parts) continue;
      // A function's comments live on its signatures: the note goes on each documented one
      // (the first when none is), and on the reflection itself otherwise.
      const signatures = reflection.signatures ?? [];
      const targets = signatures.filter((sig) => sig.comment);
      if (signatures.length > 0 && targets.length === 0) targets.push(signatures[0]);
      if (signatures.length === 0) targets.push(reflection);
      for (const t of targets) {
        t.comment ??= new Comment();
        t.comment.blockTags.push(analogueTag(parts));
      }
    }
  });

  let checked = 0;
  app.on(Application.EVENT_VALIDATE_PROJECT, (project) => {
    // Runs per package and once more on the merged project, whose figures are the ones kept.
    checked = 0;
    const missing = [];
    for (const r of project.getReflectionsByKind(TOP_LEVEL | ReflectionKind.Namespace)) {
      if (!r.parent?.kindOf(ReflectionKind.Module | ReflectionKind.Project)) continue;
      checked++;
      const summary = (c) => c?.summary.some((part) => part.text.trim() !== "");
      const documented =
        summary(r.comment) ||
        (r.signatures ?? []).some((s) => summary(s.comment)) ||
        summary(r.getSignature?.comment);
      if (!documented) missing.push(`${r.parent.name}: ${r.name} (${ReflectionKind[r.kind]})`);
    }
    for (const m of missing) app.logger.error(`exported without a comment: ${m}`);
    app.logger.info(
      `devref docs: ${checked} exported symbols checked for a comment, ${missing.length} without`,
    );
  });

  // The merged project's packages, grouped by subsystem in the order of SUBSYSTEMS.
  app.renderer.on(RendererEvent.BEGIN, (event) => {
    const project = event.project;
    const modules = (project.children ?? []).filter((c) => c.kindOf(ReflectionKind.Module));
    const groups = new Map();
    for (const name of Object.values(SUBSYSTEMS))
      groups.set(name, new ReflectionGroup(name, project));
    const other = new ReflectionGroup("Other", project);
    for (const m of modules) (groups.get(SUBSYSTEMS[m.name]) ?? other).children.push(m);
    const order = Object.keys(SUBSYSTEMS);
    for (const g of groups.values())
      g.children.sort((a, b) => order.indexOf(a.name) - order.indexOf(b.name));
    project.groups = [...groups.values(), other].filter((g) => g.children.length > 0);
  });

  app.renderer.on(RendererEvent.END, (event) => {
    const out = event.outputDirectory;
    const pages = readdirSync(out, { recursive: true }).filter((f) => String(f).endsWith(".html"));
    const project = event.project;
    const symbols = Object.values(project.reflections).filter(
      (r) => !r.kindOf(ReflectionKind.Project | ReflectionKind.Module),
    ).length;
    const modules = project.getReflectionsByKind(ReflectionKind.Module).length;
    const noted = Object.values(project.reflections).filter((r) =>
      r.comment?.blockTags.some((t) => t.tag === "@kernelAnalogue"),
    ).length;
    app.logger.info(
      `devref docs: ${pages.length} pages for ${modules} entry modules in ${join(out)}; ` +
        `${symbols} symbols rendered and their links checked; ${checked} exported symbols ` +
        `documented; ${noted} with a kernel analogue`,
    );
  });
}
