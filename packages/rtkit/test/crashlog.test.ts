import { DevrefError } from "@devref/raw-device";
import { formatCrashlog, parseCrashlog } from "@devref/rtkit";
import fc from "fast-check";
import { describe, expect, it } from "vitest";
import {
  buildCrashlog,
  mailboxSection,
  regsSection,
  section,
  strSection,
  timeSection,
  versionSection,
} from "./crashlog-builder.js";

const texts = (log: ReturnType<typeof parseCrashlog>) => formatCrashlog(log).map((l) => l.text);

describe("parseCrashlog", () => {
  it("reads the header and every known section (rtkit.md §9.1)", () => {
    const bytes = buildCrashlog([
      strSection(0x42, "panic: assertion failed\nat foo.c:12\n"),
      versionSection("RTKit_iOS-1234.5.6"),
      timeSection(0x1234_5678_9abcn),
      mailboxSection(1, 7, [
        [0x0010_0000_000c_000bn, 0n, 0x100],
        [0x0020_0000_000c_000cn, 0n, 0x200],
      ]),
      regsSection((i) => BigInt(i) * 0x1111n, 0x3c5n, 0xffff_0000_1234n),
      section("Ccst", new Uint8Array([1, 2, 3, 4])),
    ]);
    expect(bytes.subarray(0, 4)).toEqual(new Uint8Array([0x45, 0x48, 0x4c, 0x43])); // "EHLC"
    const log = parseCrashlog(bytes);
    expect(log.header).toMatchObject({ version: 2, size: bytes.length, flags: 0x10 });
    expect(log.footer).toBe(true);
    expect(log.error).toBeNull();
    expect(log.sections.map((s) => s.kind)).toEqual([
      "str",
      "version",
      "time",
      "mailbox",
      "registers",
      "unknown",
    ]);
    const [str, ver, time, mbx, regs, unk] = log.sections;
    // The NUL after the last newline is printed as an empty message, as the kernel does.
    expect(str).toMatchObject({
      fourcc: "Cstr",
      id: 0x42,
      lines: ["panic: assertion failed", "at foo.c:12", ""],
    });
    expect(ver).toMatchObject({ version: "RTKit_iOS-1234.5.6" });
    expect(time).toMatchObject({ time: 0x1234_5678_9abcn });
    expect(mbx).toMatchObject({ type: 1, index: 7 });
    if (mbx?.kind !== "mailbox" || regs?.kind !== "registers") throw new Error("kinds");
    expect(mbx.entries.map((e) => [e.msg0, e.timestamp])).toEqual([
      [0x0010_0000_000c_000bn, 0x100],
      [0x0020_0000_000c_000cn, 0x200],
    ]);
    expect(regs.registers.x[30]).toBe(30n * 0x1111n);
    expect(regs.registers.exceptionLevel).toBe("EL1h");
    expect(regs.registers.pc).toBe(0xffff_0000_1234n);
    expect(unk).toMatchObject({ fourcc: "Ccst", payload: new Uint8Array([1, 2, 3, 4]) });
  });

  it("formats the lines the kernel logs", () => {
    const log = parseCrashlog(
      buildCrashlog([
        strSection(0x42, "first\nsecond"),
        timeSection(2n ** 64n - 1n),
        mailboxSection(1, 2, [[0xabn, 0x2n, 0x10]]),
        regsSection((i) => BigInt(i), 0x5n, 0x1000n),
        section("Ccst", new Uint8Array(4)),
      ]),
    );
    const lines = texts(log);
    expect(lines.slice(0, 5)).toEqual([
      "RTKit: Message (id=42): first",
      "RTKit: Message (id=42): second",
      "RTKit: Crash time: -1",
      "RTKit: Mailbox history (type = 1, index = 2)",
      "RTKit:  #000@00000010: 00000000000000ab 0000000000000002",
    ]);
    expect(lines).toContain("  == Exception taken from EL1h ==");
    expect(lines).toContain("  PC     = 0x1000");
    expect(lines).toContain(
      "  x00-x03 = 0000000000000000 0000000000000001 0000000000000002 0000000000000003",
    );
    // The kernel's last row names x28-x31 and prints three registers.
    expect(lines).toContain("  x28-x31 = 000000000000001c 000000000000001d 000000000000001e");
    expect(lines).toContain(`RTKit: Unknown crashlog section: ${(0x43637374).toString(16)}`);
    expect(formatCrashlog(log).at(-1)).toEqual({
      level: "dbg",
      text: "RTKit: End of crashlog reached",
    });
  });

  it("reports a missing footer as the kernel does", () => {
    const log = parseCrashlog(buildCrashlog([strSection(1, "x")], { footer: false }));
    expect(log.footer).toBe(false);
    expect(texts(log).at(-1)).toBe("RTKit: End of crashlog reached but no footer present");
  });

  it("stops at a section of size 0 instead of looping forever", () => {
    const log = parseCrashlog(
      buildCrashlog([strSection(1, "ok"), section("Cstr", new Uint8Array(8), 0)]),
    );
    expect(log.sections).toHaveLength(1);
    expect(log.error).toContain("less than its own header");
  });

  it("stops at a section that runs past the crashlog", () => {
    const log = parseCrashlog(buildCrashlog([section("Ctim", new Uint8Array(8), 0x1000)]));
    expect(log.sections).toHaveLength(0);
    expect(log.error).toContain("runs past the end");
  });

  it("keeps known sections too short for their fields as malformed, and goes on", () => {
    const log = parseCrashlog(
      buildCrashlog([
        section("Crg8", new Uint8Array(0x340)),
        section("Cmbx", new Uint8Array(20)),
        section("Ctim", new Uint8Array(4)),
        section("Cver", new Uint8Array(8)),
        section("Cstr", new Uint8Array(2)),
        strSection(3, "after"),
      ]),
    );
    expect(log.sections.map((s) => s.kind)).toEqual([
      "malformed",
      "malformed",
      "malformed",
      "malformed",
      "malformed",
      "str",
    ]);
    expect(texts(log)[0]).toBe("RTKit: Regs section too small: 0x350");
    expect(log.footer).toBe(true);
  });

  it("counts mailbox entries within the section, not 16 bytes past it", () => {
    // 28 + 2 entries; the kernel's count would use the size with the header and add one.
    const s = mailboxSection(0, 0, [
      [1n, 0n, 0],
      [2n, 0n, 0],
    ]);
    const log = parseCrashlog(buildCrashlog([s, strSection(9, "next")]));
    const mbx = log.sections[0];
    expect(mbx?.kind === "mailbox" && mbx.entries.length).toBe(2);
  });

  it("honours the header's size and treats one below 0x20 as an empty log", () => {
    const bytes = buildCrashlog([strSection(1, "a"), strSection(2, "b")]);
    const firstOnly = 0x20 + 16 + 4 + 2;
    new DataView(bytes.buffer).setUint32(8, firstOnly, true);
    expect(parseCrashlog(bytes).sections).toHaveLength(1);
    new DataView(bytes.buffer).setUint32(8, 4, true);
    const empty = parseCrashlog(bytes);
    expect(empty.sections).toHaveLength(0);
    expect(empty.error).toBeNull();
  });

  it("refuses a header it cannot use with EPROTO, in the kernel's words", () => {
    const bad = buildCrashlog([]);
    bad[0] = 0;
    expect(() => parseCrashlog(bad)).toThrow(/Expected crashlog header but got 434c4800/);
    const big = buildCrashlog([], { headerSize: 0x1000 });
    try {
      parseCrashlog(big);
      expect.unreachable();
    } catch (e) {
      expect(DevrefError.is(e, "EPROTO")).toBe(true);
      expect((e as DevrefError).message).toContain("Crashlog size (1000) is too large");
    }
    expect(() => parseCrashlog(new Uint8Array(8))).toThrow(DevrefError);
    expect(() => parseCrashlog([1, 2] as never)).toThrow(/bytes must be a Uint8Array/);
  });

  it("splits Cstr text on newlines first, then cuts each piece at a NUL, as the kernel prints", () => {
    const p = new Uint8Array([1, 0, 0, 0, 0x61, 0, 0x62, 0x0a, 0x63, 0x0a]);
    const log = parseCrashlog(buildCrashlog([section("Cstr", p)]));
    const s = log.sections[0];
    expect(s?.kind === "str" && s.lines).toEqual(["a", "c"]);
  });
});

describe("parseCrashlog fuzz", () => {
  const check = (bytes: Uint8Array): void => {
    try {
      const log = parseCrashlog(bytes);
      for (const s of log.sections) {
        expect(s.offset).toBeGreaterThanOrEqual(0x20);
        expect(s.offset + s.size).toBeLessThanOrEqual(log.header.size);
        expect(s.payload.length).toBe(s.size - 16);
      }
      formatCrashlog(log);
    } catch (e) {
      expect(DevrefError.is(e, "EPROTO")).toBe(true);
    }
  };

  it("never throws anything but EPROTO and never leaves its bounds on random bytes", () => {
    fc.assert(
      fc.property(fc.uint8Array({ minLength: 0, maxLength: 600 }), (raw) => {
        // Half the time give it a valid magic and a size inside the buffer.
        const bytes = new Uint8Array(raw);
        if (bytes.length >= 0x20 && (bytes[5] ?? 0) & 1) {
          const v = new DataView(bytes.buffer);
          v.setUint32(0, 0x434c4845, true);
          v.setUint32(8, v.getUint32(8, true) % (bytes.length + 1), true);
        }
        check(bytes);
      }),
      { seed: 42, numRuns: 3000 },
    );
  });

  it("survives any corruption of a valid crashlog", () => {
    const base = buildCrashlog([
      strSection(1, "boom\nbang"),
      versionSection("v1"),
      timeSection(5n),
      mailboxSection(1, 1, [[1n, 2n, 3]]),
      regsSection((i) => BigInt(i), 4n, 8n),
    ]);
    fc.assert(
      fc.property(
        fc.array(fc.tuple(fc.nat(base.length - 1), fc.nat(255)), { minLength: 1, maxLength: 12 }),
        (edits) => {
          const bytes = base.slice();
          for (const [at, value] of edits) bytes[at] = value;
          check(bytes);
        },
      ),
      { seed: 42, numRuns: 3000 },
    );
  });
});
