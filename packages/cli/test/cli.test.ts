// The command line itself: help everywhere, the version, and errors as one line with a
// non-zero status (and as one JSON object with --json).
import { readFileSync } from "node:fs";
import { describe, expect, it } from "vitest";
import { devref, devrefAll, json } from "./helpers.js";

const COMMANDS = [
  ["run"],
  ["explore"],
  ["tree"],
  ["holders"],
  ["pgtable"],
  ["pgtable", "decode"],
  ["pgtable", "dump"],
  ["rtkit"],
  ["rtkit", "decode"],
  ["list"],
];

describe("devref", () => {
  it("--help lists every command and exits 0", async () => {
    const r = await devref(["--help"]);
    expect(r.status).toBe(0);
    for (const c of ["run", "explore", "tree", "holders", "pgtable", "rtkit", "list"]) {
      expect(r.stdout).toMatch(new RegExp(`^  ${c} `, "m"));
    }
    expect(r.stdout).toContain("Exit status");
    expect(r.stderr).toBe("");
  });

  it("--help works on every command", async () => {
    const runs = await devrefAll(COMMANDS.map((c) => [...c, "--help"]));
    runs.forEach((r, i) => {
      expect(r.status, COMMANDS[i]!.join(" ")).toBe(0);
      expect(r.stdout).toContain(`Usage: devref ${COMMANDS[i]!.join(" ")}`);
    });
    // Every command but the groups takes --json.
    runs.forEach((r, i) => {
      const c = COMMANDS[i]!;
      if (c.length === 1 && (c[0] === "pgtable" || c[0] === "rtkit")) return;
      expect(r.stdout, c.join(" ")).toContain("--json");
    });
  });

  it("--version prints the package's version", async () => {
    const pkg: unknown = JSON.parse(
      readFileSync(new URL("../package.json", import.meta.url), "utf8"),
    );
    const r = await devref(["--version"]);
    expect(r.status).toBe(0);
    expect(r.stdout.trim()).toBe((pkg as { version: string }).version); // SAFETY: our own package.json.
  });

  it("an unknown command, option or scenario is one EINVAL line and status 2", async () => {
    const cases = [
      ["frobnicate"],
      ["run", "soc", "--bogus"],
      ["run", "no-such-scenario"],
      ["run", "soc", "--seed", "x"],
      ["run", "soc", "--unplug-at", "0"],
      ["run", "soc", "--inject", "nonsense"],
      ["explore", "soc", "--kinds", "meteor"],
      ["pgtable", "decode", "x.bin", "--format", "nope", "--ttbr", "0"],
      ["pgtable", "decode", "x.bin", "--format", "apple-dart2"],
    ];
    const runs = await devrefAll(cases);
    runs.forEach((r, i) => {
      const what = cases[i]!.join(" ");
      expect(r.status, what).toBe(2);
      expect(r.stdout, what).toBe("");
      expect(r.stderr, what).toMatch(/^devref: EINVAL: \S.*\n$/);
    });
    expect(runs[2]!.stderr).toContain("the scenarios are");
    expect(runs[6]!.stderr).toContain("its kinds are");
  });

  it("with --json an error is one JSON object on stdout", async () => {
    const r = await devref(["run", "no-such-scenario", "--json"]);
    expect(r.status).toBe(2);
    expect(r.stderr).toBe("");
    const out = json(r);
    expect(out).toEqual({
      error: { code: "EINVAL", message: expect.stringContaining("no-such-scenario") },
    });
  });

  it("a missing file is ENOENT", async () => {
    const r = await devref(["rtkit", "decode", "/nonexistent/trace.txt"]);
    expect(r.status).toBe(2);
    expect(r.stderr).toBe("devref: ENOENT: cannot read /nonexistent/trace.txt: no such file\n");
  });

  it("list names every scenario with its fault kinds", async () => {
    const r = await devref(["list", "--json"]);
    expect(r.status).toBe(0);
    const out = json(r);
    const list = out.scenarios as { name: string; injections: string[] }[]; // SAFETY: shape checked below.
    expect(list.map((s) => s.name)).toContain("soc");
    const soc = list.find((s) => s.name === "soc")!;
    expect(soc.injections).toEqual(
      expect.arrayContaining(["unplug", "rtkit-crash", "iommu-fault"]),
    );
  });
});
