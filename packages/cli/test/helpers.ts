// Runs the devref bin as a subprocess (node + the launcher), as a user's shell would.
import { execFile } from "node:child_process";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";

/** The launcher the package's `bin` names. */
export const BIN: string = fileURLToPath(new URL("../bin/devref.mjs", import.meta.url));

/** What one run of the command printed and how it exited. */
export interface Run {
  readonly status: number;
  readonly stdout: string;
  readonly stderr: string;
}

/** Runs `devref ...args` to its end (no colours: NO_COLOR, and pipes are no terminal). */
export function devref(args: readonly string[], env: Record<string, string> = {}): Promise<Run> {
  return new Promise((resolve) => {
    execFile(
      process.execPath,
      [BIN, ...args],
      {
        env: { ...process.env, NO_COLOR: "1", FORCE_COLOR: "", ...env },
        maxBuffer: 64 << 20,
        timeout: 120_000,
      },
      (error, stdout, stderr) => {
        const code = error === null ? 0 : typeof error.code === "number" ? error.code : -1;
        resolve({ status: code, stdout, stderr });
      },
    );
  });
}

/** Parses the single JSON document a `--json` run printed. */
export function json(run: Run): Record<string, unknown> {
  const value: unknown = JSON.parse(run.stdout);
  if (typeof value !== "object" || value === null || Array.isArray(value)) {
    throw new Error(`not a JSON object: ${run.stdout.slice(0, 200)}`);
  }
  // SAFETY: checked to be a non-array object just above.
  return value as Record<string, unknown>;
}

/** A fresh temporary directory, and its removal. */
export function tempDir(): { dir: string; remove: () => void } {
  const dir = mkdtempSync(join(tmpdir(), "devref-cli-"));
  return { dir, remove: () => rmSync(dir, { recursive: true, force: true }) };
}

/** Runs several command lines, two at a time (the machines have two cores). */
export async function devrefAll(cases: readonly (readonly string[])[]): Promise<Run[]> {
  const out: Run[] = new Array(cases.length);
  let next = 0;
  const worker = async (): Promise<void> => {
    while (next < cases.length) {
      const i = next++;
      out[i] = await devref(cases[i]!);
    }
  };
  await Promise.all([worker(), worker()]);
  return out;
}
