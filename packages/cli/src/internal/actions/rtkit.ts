//! `devref rtkit decode <trace>`: every mailbox message of a trace, named.

import { readFile } from "node:fs/promises";
import { DevrefError } from "@devref/raw-device";
import { describeMessage, type MessageDirection } from "@devref/rtkit";
import { EXIT, fileError } from "../errors.js";
import { type CliContext, Printer } from "../io.js";
import { hex, parseNumber } from "../numbers.js";

export interface RtkitFlags {
  readonly json?: boolean;
}

/** One mailbox message found in a trace. */
interface Message {
  /** 1-based line of the file (JSON array: index + 1). */
  readonly line: number;
  readonly step: number | null;
  readonly timeNs: number | null;
  readonly direction: MessageDirection | null;
  readonly ep: number;
  readonly msg0: bigint;
}

const DIRECTIONS: Readonly<Record<string, MessageDirection>> = Object.freeze({
  "to-ap": "to-ap",
  "to-iop": "to-iop",
  i2a: "to-ap",
  a2i: "to-iop",
  "<": "to-ap",
  ">": "to-iop",
});

/** Reads the trace's messages; records of other kinds are skipped. */
export function parseTrace(file: string, text: string): { messages: Message[]; skipped: number } {
  const messages: Message[] = [];
  let skipped = 0;
  const trimmed = text.trimStart();
  const bad = (line: number, why: string): DevrefError =>
    new DevrefError("EINVAL", `${file} line ${line}: ${why}`);
  const word = (v: unknown): v is number =>
    typeof v === "number" && Number.isInteger(v) && v >= 0 && v <= 0xffff_ffff;
  const fromRecord = (r: unknown, line: number): void => {
    if (typeof r !== "object" || r === null || Array.isArray(r)) {
      throw bad(line, "a trace record must be a JSON object");
    }
    if (!("kind" in r) || r.kind !== "mbox") {
      skipped++;
      return;
    }
    const msg0Hi = "msg0Hi" in r ? r.msg0Hi : undefined;
    const msg0Lo = "msg0Lo" in r ? r.msg0Lo : undefined;
    const msg1 = "msg1" in r ? r.msg1 : undefined;
    if (!word(msg0Hi) || !word(msg0Lo) || !word(msg1)) {
      throw bad(line, "an mbox record needs msg0Hi, msg0Lo and msg1 as 32-bit whole numbers");
    }
    const direction = "direction" in r ? r.direction : undefined;
    const step = "step" in r && typeof r.step === "number" ? r.step : null;
    const timeNs = "timeNs" in r && typeof r.timeNs === "number" ? r.timeNs : null;
    messages.push({
      line,
      step,
      timeNs,
      direction: typeof direction === "string" ? (DIRECTIONS[direction] ?? null) : null,
      ep: msg1 & 0xff,
      msg0: (BigInt(msg0Hi) << 32n) | BigInt(msg0Lo),
    });
  };
  if (trimmed.startsWith("[")) {
    let all: unknown;
    try {
      all = JSON.parse(text);
    } catch (e) {
      throw new DevrefError(
        "EINVAL",
        `${file} is not valid JSON: ${e instanceof Error ? e.message : String(e)}`,
      );
    }
    if (!Array.isArray(all)) throw bad(1, "a JSON trace must be an array of records");
    all.forEach((r, i) => {
      fromRecord(r, i + 1);
    });
    return { messages, skipped };
  }
  text.split("\n").forEach((raw, i) => {
    const line = raw.replace(/#.*/, "").trim();
    if (line === "") return;
    if (line.startsWith("{")) {
      let rec: unknown;
      try {
        rec = JSON.parse(line);
      } catch (e) {
        throw bad(i + 1, `not a JSON record: ${e instanceof Error ? e.message : String(e)}`);
      }
      fromRecord(rec, i + 1);
      return;
    }
    const words = line.split(/[\s,]+/);
    if (words.length < 2 || words.length > 3) {
      throw bad(i + 1, `expected '<ep> <msg0> [to-ap|to-iop]', found '${line}'`);
    }
    const ep = parseNumber(`${file} line ${i + 1}: the endpoint`, words[0]!, 0, 0xff);
    const msg0 = parseMsg0(file, i + 1, words[1]!);
    let dir: MessageDirection | null = null;
    if (words[2] !== undefined) {
      dir = DIRECTIONS[words[2].toLowerCase()] ?? null;
      if (dir === null)
        throw bad(i + 1, `direction '${words[2]}' is not to-ap, to-iop, a2i or i2a`);
    }
    messages.push({ line: i + 1, step: null, timeNs: null, direction: dir, ep, msg0 });
  });
  return { messages, skipped };
}

function parseMsg0(file: string, line: number, text: string): bigint {
  const body = text.replaceAll("_", "");
  if (/^(0x[0-9a-f]+|[0-9]+)$/i.test(body)) {
    const v = BigInt(body);
    if (v < 2n ** 64n) return v;
  }
  throw new DevrefError(
    "EINVAL",
    `${file} line ${line}: msg0 takes a 64-bit whole number (decimal or 0x-hex), not '${text}'`,
  );
}

/** Runs `devref rtkit decode`. */
export async function rtkitDecode(
  ctx: CliContext,
  file: string,
  flags: RtkitFlags,
): Promise<number> {
  let text: string;
  try {
    text = await readFile(file, "utf8");
  } catch (e) {
    throw fileError("read", file, e);
  }
  const { messages, skipped } = parseTrace(file, text);
  const named = messages.map((m) => ({
    ...m,
    text: describeMessage(m.ep, m.msg0, m.direction ?? undefined),
  }));
  const p = new Printer(ctx.io);
  if (flags.json === true) {
    p.json({
      file,
      messages: named.map((m) => ({
        line: m.line,
        step: m.step,
        timeNs: m.timeNs,
        direction: m.direction,
        ep: m.ep,
        msg0: hex(m.msg0),
        text: m.text,
      })),
      skipped,
    });
    return EXIT.ok;
  }
  const { c } = p;
  for (const m of named) {
    const where = m.step === null ? c.dim(`line ${m.line}`) : c.dim(`step ${m.step}`);
    const dir =
      m.direction === "to-iop"
        ? c.cyan("AP -> IOP")
        : m.direction === "to-ap"
          ? c.magenta("IOP -> AP")
          : "         ";
    p.line(`${where}  ${dir}  ${m.text}`);
  }
  p.line(
    c.dim(`${named.length} message(s)${skipped > 0 ? `, ${skipped} other record(s) skipped` : ""}`),
  );
  return EXIT.ok;
}
