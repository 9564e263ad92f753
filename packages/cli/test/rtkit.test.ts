// `devref rtkit decode` on traces the test writes: the text format, the SoC's JSON lines
// and a JSON array; every message named as @devref/rtkit's describeMessage names it.
import { writeFileSync } from "node:fs";
import { join } from "node:path";
import { describeMessage } from "@devref/rtkit";
import { afterAll, describe, expect, it } from "vitest";
import { devref, json, tempDir } from "./helpers.js";

const tmp = tempDir();
afterAll(() => tmp.remove());

const HELLO = 0x0010_0000_000c_000bn; // mgmt HELLO, versions 11..12
const HELLO_REPLY = 0x0020_0000_000c_000cn;
const EPMAP = 0x0088_0000_0000_011fn;

function write(name: string, text: string): string {
  const file = join(tmp.dir, name);
  writeFileSync(file, text);
  return file;
}

describe("devref rtkit decode", () => {
  it("names every line of the text format", async () => {
    const file = write(
      "trace.txt",
      `# ep msg0 [direction]\n0 0x${HELLO.toString(16)} to-ap\n0 0x${HELLO_REPLY.toString(16)} a2i\n\n0 0x${EPMAP.toString(16)}   # no direction\n0x20 0x1234_5678\n`,
    );
    const r = await devref(["rtkit", "decode", file, "--json"]);
    expect(r.status).toBe(0);
    const out = json(r);
    expect(out.messages).toEqual([
      {
        line: 2,
        step: null,
        timeNs: null,
        direction: "to-ap",
        ep: 0,
        msg0: `0x${HELLO.toString(16)}`,
        text: describeMessage(0, HELLO, "to-ap"),
      },
      {
        line: 3,
        step: null,
        timeNs: null,
        direction: "to-iop",
        ep: 0,
        msg0: `0x${HELLO_REPLY.toString(16)}`,
        text: describeMessage(0, HELLO_REPLY, "to-iop"),
      },
      {
        line: 5,
        step: null,
        timeNs: null,
        direction: null,
        ep: 0,
        msg0: `0x${EPMAP.toString(16)}`,
        text: describeMessage(0, EPMAP),
      },
      {
        line: 6,
        step: null,
        timeNs: null,
        direction: null,
        ep: 0x20,
        msg0: "0x12345678",
        text: describeMessage(0x20, 0x1234_5678n),
      },
    ]);
    expect(describeMessage(0, HELLO, "to-ap")).toContain("HELLO");
    const text = await devref(["rtkit", "decode", file]);
    expect(text.status).toBe(0);
    expect(text.stdout).toContain(describeMessage(0, HELLO, "to-ap"));
    expect(text.stdout).toContain("4 message(s)");
  });

  it("reads the SoC's JSON-lines trace, skipping records that are not mailbox messages", async () => {
    const records = [
      {
        kind: "mmio",
        step: 1,
        timeNs: 0,
        source: "smc.mbox",
        write: true,
        offset: 0x800,
        width: 4,
        value: 0,
      },
      {
        kind: "mbox",
        step: 2,
        timeNs: 10,
        source: "smc.mbox",
        direction: "a2i",
        msg0Hi: 0x60,
        msg0Lo: 0x220,
        msg1: 0,
      },
      {
        kind: "mbox",
        step: 5,
        timeNs: 90,
        source: "smc.mbox",
        direction: "i2a",
        msg0Hi: 0x10_0000,
        msg0Lo: 0x000c_000b,
        msg1: 0,
      },
    ];
    const file = write("trace.jsonl", `${records.map((r) => JSON.stringify(r)).join("\n")}\n`);
    const r = await devref(["rtkit", "decode", file, "--json"]);
    expect(r.status).toBe(0);
    const out = json(r);
    expect(out.skipped).toBe(1);
    const msgs = out.messages as { step: number; direction: string; text: string }[]; // SAFETY: the JSON shape under test.
    expect(msgs.map((m) => [m.step, m.direction, m.text])).toEqual([
      [2, "to-iop", describeMessage(0, 0x60_0000_0220n, "to-iop")],
      [5, "to-ap", describeMessage(0, HELLO, "to-ap")],
    ]);
    const arr = write("trace.json", JSON.stringify(records));
    const r2 = await devref(["rtkit", "decode", arr, "--json"]);
    expect(json(r2).messages).toEqual(out.messages);
  });

  it("a malformed line is an EINVAL naming the file and line", async () => {
    const cases: [string, RegExp][] = [
      ["0 0x1 sideways\n", /line 1: direction 'sideways'/],
      ["0\n", /line 1: expected '<ep> <msg0>/],
      ["300 0x1\n", /line 1: the endpoint takes a whole number in \[0, 255\]/],
      ["1 0x1_0000_0000_0000_0000\n", /line 1: msg0 takes a 64-bit whole number/],
      ['{"kind":"mbox","msg0Hi":-1,"msg0Lo":0,"msg1":0}\n', /line 1: an mbox record needs/],
      ["[1, 2", /is not valid JSON/],
    ];
    for (const [i, [text, message]] of cases.entries()) {
      const file = write(`bad${i}.txt`, text);
      const r = await devref(["rtkit", "decode", file]);
      expect(r.status, text).toBe(2);
      expect(r.stderr, text).toMatch(/^devref: EINVAL: .*\n$/);
      expect(r.stderr, text).toMatch(message);
    }
  });
});
