// The README's example is this directory's readme/example.ts, byte for byte, and it runs
// with the output the README shows.
import { readFileSync } from "node:fs";
import { describe, expect, it, vi } from "vitest";

const readme = readFileSync(new URL("../README.md", import.meta.url), "utf8");
const example = readFileSync(new URL("./readme/example.ts", import.meta.url), "utf8");

function block(after: string): string {
  const at = readme.indexOf(after);
  const start = readme.indexOf("\n", readme.indexOf("```", at)) + 1;
  return readme.slice(start, readme.indexOf("```", start));
}

describe("the README example", () => {
  it("is the tested file", () => {
    expect(block("## Example")).toBe(example);
  });

  it("runs and prints what the README shows", async () => {
    const lines: string[] = [];
    const spy = vi.spyOn(console, "log").mockImplementation((...args: unknown[]) => {
      lines.push(args.join(" "));
    });
    try {
      await import("./readme/example.js");
    } finally {
      spy.mockRestore();
    }
    expect(`${lines.join("\n")}\n`).toBe(block("It prints:"));
  });
});
