//! Where the command writes, and how it colours what it writes.

import pc from "picocolors";
import type { ScenarioRegistry } from "./scenarios.js";

/** What every command works with: the streams and the scenarios. */
export interface CliContext {
  readonly io: CliIo;
  readonly scenarios: ScenarioRegistry;
}

/** What the command reads and writes besides files: the two streams and how they look. */
export interface CliIo {
  /** Writes to standard output (text as given, no newline added). */
  readonly out: (text: string) => void;
  /** Writes to standard error (text as given, no newline added). */
  readonly err: (text: string) => void;
  /** Whether standard error is a terminal (the progress bar goes there). */
  readonly stderrIsTTY: boolean;
  /** Whether to colour the text output. */
  readonly color: boolean;
  /** The stream a progress bar draws on, when there is one. */
  readonly progressStream: NodeJS.WritableStream | null;
}

/** The process's own streams; colours on a terminal unless `NO_COLOR`, or as `FORCE_COLOR` says. */
export function processIo(): CliIo {
  const env = process.env;
  const color =
    env.NO_COLOR !== undefined && env.NO_COLOR !== ""
      ? false
      : env.FORCE_COLOR !== undefined
        ? env.FORCE_COLOR !== "0"
        : process.stdout.isTTY === true && env.TERM !== "dumb";
  return {
    out: (text) => process.stdout.write(text),
    err: (text) => process.stderr.write(text),
    stderrIsTTY: process.stderr.isTTY === true,
    color,
    progressStream: process.stderr,
  };
}

/** The colour functions of one run of the command. */
export type Colors = ReturnType<typeof pc.createColors>;

/** Text output of one command: lines on stdout, coloured when the terminal wants it. */
export class Printer {
  readonly c: Colors;
  private readonly io: CliIo;

  constructor(io: CliIo) {
    this.io = io;
    this.c = pc.createColors(io.color);
  }

  /** Prints lines on standard output. */
  line(...lines: string[]): void {
    for (const l of lines) this.io.out(`${l}\n`);
  }

  /** Prints one JSON document on standard output. */
  json(value: unknown): void {
    this.io.out(`${JSON.stringify(value, null, 2)}\n`);
  }
}
