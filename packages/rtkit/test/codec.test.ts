import { DevrefError } from "@devref/raw-device";
import * as R from "@devref/rtkit";
import fc from "fast-check";
import { describe, expect, it } from "vitest";

const U64 = fc.bigInt({ min: 0n, max: 2n ** 64n - 1n });

function withType(msg: bigint, type: number, at: 52 | 56): bigint {
  const mask = 0xffn << BigInt(at);
  return (msg & ~mask) | (BigInt(type) << BigInt(at));
}

function code(fn: () => unknown): string {
  try {
    fn();
  } catch (e) {
    expect(e).toBeInstanceOf(DevrefError);
    return (e as DevrefError).code;
  }
  return "no error";
}

describe("the encodings the spec computes (rtkit.md §5.5)", () => {
  it("matches every example bit for bit", () => {
    expect(R.encodeHello({ minVer: 11, maxVer: 12 })).toBe(0x0010_0000_000c_000bn);
    expect(R.encodeHelloReply({ minVer: 12, maxVer: 12 })).toBe(0x0020_0000_000c_000cn);
    expect(R.encodeEpmap({ base: 0, bitmap: 0x11f, last: true })).toBe(0x0088_0000_0000_011fn);
    expect(R.encodeEpmapReply({ base: 0, last: true, more: false })).toBe(0x0088_0000_0000_0000n);
    expect(R.encodeEpmap({ base: 1, bitmap: 3, last: false })).toBe(0x0080_0001_0000_0003n);
    expect(R.encodeEpmapReply({ base: 1, last: false, more: true })).toBe(0x0080_0001_0000_0001n);
    expect(R.encodeStartEp({ ep: 2, flag: R.STARTEP_FLAG_START })).toBe(0x0050_0002_0000_0002n);
    expect(R.encodeSetIopPowerState({ state: R.PWR_STATE_ON })).toBe(0x0060_0000_0000_0020n);
    expect(R.encodeIopPowerStateAck({ state: R.PWR_STATE_ON })).toBe(0x0070_0000_0000_0020n);
    expect(R.encodeSetApPowerState({ state: R.PWR_STATE_ON })).toBe(0x00b0_0000_0000_0020n);
    expect(R.encodeBufferRequest({ pages: 2, iova: 0 })).toBe(0x0010_2000_0000_0000n);
    expect(R.encodeBufferRequest({ pages: 2, iova: 0x8000_0000 })).toBe(0x0010_2000_8000_0000n);
  });

  it("decodes them back to their fields", () => {
    expect(R.decodeHello(0x0010_0000_000c_000bn)).toEqual({ minVer: 11, maxVer: 12, reserved: 0n });
    expect(R.decodeEpmap(0x0088_0000_0000_011fn)).toEqual({
      base: 0,
      bitmap: 0x11f,
      last: true,
      reserved: 0n,
    });
    expect(R.decodeEpmapReply(0x0080_0001_0000_0001n)).toEqual({
      base: 1,
      last: false,
      more: true,
      reserved: 0n,
    });
    expect(R.decodeBufferRequest(0x0010_2000_8000_0000n)).toEqual({
      pages: 2,
      iova: 0x8000_0000,
      reserved: 0n,
    });
  });

  it("puts the OSLog fields where the kernel does: size in bytes at 55:36, IOVA >> 12 at 35:0", () => {
    const m = R.encodeOslogBufferRequest({ size: 0x4000, iova: 0x12_3456_7000 });
    expect(m).toBe((1n << 56n) | (0x4000n << 36n) | 0x123_4567n);
    expect(R.decodeOslogBufferRequest(m)).toEqual({
      size: 0x4000,
      iova: 0x12_3456_7000,
      reserved: 0n,
    });
    // The full 44-bit buffer IOVA (the field was 41:0 before "Add missing bits").
    expect(R.decodeBufferRequest(R.encodeBufferRequest({ pages: 1, iova: 2 ** 44 - 1 })).iova).toBe(
      2 ** 44 - 1,
    );
  });

  it("puts SYSLOG_INIT in the kernel's 8-bit fields and LOG's index in 7:0", () => {
    expect(R.encodeSyslogInit({ entries: 0x20, msgSize: 0x80 })).toBe(
      (8n << 52n) | (0x80n << 24n) | 0x20n,
    );
    expect(R.encodeSyslogLog({ index: 7 })).toBe((5n << 52n) | 7n);
    expect(R.encodeIoreportEcho({ type: 0xc, reserved: 0x1234n })).toBe((0xcn << 52n) | 0x1234n);
  });
});

interface Codec {
  readonly name: string;
  readonly type: number;
  readonly at: 52 | 56;
  readonly encode: (f: never) => bigint;
  readonly decode: (m: bigint) => object;
}

const CODECS: Codec[] = [
  { name: "Hello", type: 1, at: 52, encode: R.encodeHello, decode: R.decodeHello },
  { name: "HelloReply", type: 2, at: 52, encode: R.encodeHelloReply, decode: R.decodeHelloReply },
  { name: "StartEp", type: 5, at: 52, encode: R.encodeStartEp, decode: R.decodeStartEp },
  {
    name: "SetIopPowerState",
    type: 6,
    at: 52,
    encode: R.encodeSetIopPowerState,
    decode: R.decodeSetIopPowerState,
  },
  {
    name: "IopPowerStateAck",
    type: 7,
    at: 52,
    encode: R.encodeIopPowerStateAck,
    decode: R.decodeIopPowerStateAck,
  },
  { name: "Epmap", type: 8, at: 52, encode: R.encodeEpmap, decode: R.decodeEpmap },
  { name: "EpmapReply", type: 8, at: 52, encode: R.encodeEpmapReply, decode: R.decodeEpmapReply },
  {
    name: "SetApPowerState",
    type: 0xb,
    at: 52,
    encode: R.encodeSetApPowerState,
    decode: R.decodeSetApPowerState,
  },
  {
    name: "BufferRequest",
    type: 1,
    at: 52,
    encode: R.encodeBufferRequest,
    decode: R.decodeBufferRequest,
  },
  {
    name: "OslogBufferRequest",
    type: 1,
    at: 56,
    encode: R.encodeOslogBufferRequest,
    decode: R.decodeOslogBufferRequest,
  },
  { name: "SyslogInit", type: 8, at: 52, encode: R.encodeSyslogInit, decode: R.decodeSyslogInit },
  { name: "SyslogLog", type: 5, at: 52, encode: R.encodeSyslogLog, decode: R.decodeSyslogLog },
  {
    name: "IoreportEcho (0x8)",
    type: 8,
    at: 52,
    encode: R.encodeIoreportEcho,
    decode: R.decodeIoreportEcho,
  },
  {
    name: "IoreportEcho (0xc)",
    type: 0xc,
    at: 52,
    encode: R.encodeIoreportEcho,
    decode: R.decodeIoreportEcho,
  },
];

describe("round trips (property tests)", () => {
  for (const c of CODECS) {
    it(`${c.name}: encode(decode(m)) === m for every m of its type, unknown bits included`, () => {
      fc.assert(
        fc.property(U64, (raw) => {
          const m = withType(raw, c.type, c.at);
          const decoded = c.decode(m);
          expect(c.encode(decoded as never)).toBe(m);
          // decode(encode(fields)) gives the same fields back.
          expect(c.decode(c.encode(decoded as never))).toEqual(decoded);
        }),
        { seed: 42, numRuns: 2000 },
      );
    });

    it(`${c.name}: a message of another type is refused with EINVAL`, () => {
      const other = c.type === 0x3 ? 0x4 : 0x3;
      expect(code(() => c.decode(withType(0n, other, c.at)))).toBe("EINVAL");
    });
  }

  it("keeps unknown bits in `reserved` and nowhere else", () => {
    const m = R.encodeHello({ minVer: 11, maxVer: 12 }) | (1n << 40n) | (1n << 63n);
    const d = R.decodeHello(m);
    expect(d.reserved).toBe((1n << 40n) | (1n << 63n));
    expect(d.minVer).toBe(11);
    expect(R.encodeHello(d)).toBe(m);
  });
});

describe("argument checks", () => {
  it("names the field that does not fit", () => {
    try {
      R.encodeHello({ minVer: 0x1_0000, maxVer: 1 });
      expect.unreachable();
    } catch (e) {
      expect(DevrefError.is(e, "EINVAL")).toBe(true);
      expect((e as DevrefError).message).toContain("fields.minVer");
    }
    expect(code(() => R.encodeBufferRequest({ pages: 256, iova: 0 }))).toBe("EINVAL");
    expect(code(() => R.encodeBufferRequest({ pages: 1, iova: 2 ** 44 }))).toBe("EINVAL");
    expect(code(() => R.encodeOslogBufferRequest({ size: 0x1000, iova: 0x1234 }))).toBe("EINVAL");
    expect(code(() => R.encodeOslogBufferRequest({ size: 2 ** 20, iova: 0 }))).toBe("EINVAL");
    expect(code(() => R.encodeSyslogInit({ entries: 256, msgSize: 0 }))).toBe("EINVAL");
    expect(code(() => R.encodeEpmap({ base: 8, bitmap: 0, last: true }))).toBe("EINVAL");
    expect(code(() => R.encodeEpmap({ base: 0, bitmap: 0, last: 1 as never }))).toBe("EINVAL");
    expect(code(() => R.encodeIoreportEcho({ type: 9 }))).toBe("EINVAL");
    expect(code(() => R.encodeHello(null as never))).toBe("EINVAL");
    expect(code(() => R.encodeHello({ minVer: 1.5, maxVer: 2 }))).toBe("EINVAL");
  });

  it("refuses reserved bits that overlap a field, and msg0 that is not a 64-bit bigint", () => {
    expect(code(() => R.encodeHello({ minVer: 1, maxVer: 1, reserved: 1n }))).toBe("EINVAL");
    expect(code(() => R.encodeHello({ minVer: 1, maxVer: 1, reserved: 1n << 52n }))).toBe("EINVAL");
    expect(code(() => R.decodeHello(-1n))).toBe("EINVAL");
    expect(code(() => R.decodeHello(2n ** 64n))).toBe("EINVAL");
    expect(code(() => R.decodeHello(1 as never))).toBe("EINVAL");
  });
});
