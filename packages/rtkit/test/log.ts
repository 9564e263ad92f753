// Collects the client's log lines as "<level> <text>".
import type { RtkitLogLevel } from "@devref/rtkit";

export class LogCollector {
  readonly lines: string[] = [];
  readonly sink = (level: RtkitLogLevel, text: string): void => {
    this.lines.push(`${level} ${text}`);
  };
  /** Lines at `level` (without the level). */
  at(level: RtkitLogLevel): string[] {
    return this.lines
      .filter((l) => l.startsWith(`${level} `))
      .map((l) => l.slice(level.length + 1));
  }
  has(fragment: string): boolean {
    return this.lines.some((l) => l.includes(fragment));
  }
  clear(): void {
    this.lines.length = 0;
  }
}
