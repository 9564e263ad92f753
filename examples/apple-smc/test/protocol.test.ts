// The message layout, keys, key info, typed values and events, against the spec's worked
// examples (sim-hardware.md §2.3–§2.8).
import { DevrefError } from "@devref/raw-device";
import fc from "fast-check";
import { describe, expect, it } from "vitest";
import {
  decodeSmcEvent,
  decodeSmcReply,
  decodeSmcValue,
  encodeSmcCommand,
  encodeSmcValue,
  isSmcNotification,
  keyInfoFromBytes,
  SMC_MSG_READ_KEY,
  SMC_MSG_RW_KEY,
  SMC_MSG_WRITE_KEY,
  type SmcKeyInfo,
  shmemAddressOf,
  smcKey,
  smcKeyName,
  smcResultName,
} from "../src/index.js";

const info = (key: string, type: string, size: number, flags = 0xc0): SmcKeyInfo =>
  keyInfoFromBytes(key, new Uint8Array([size, ...[...type].map((c) => c.charCodeAt(0)), flags]));

describe("messages (§2.3, §2.4)", () => {
  it("packs the spec's worked commands bit for bit", () => {
    expect(encodeSmcCommand({ msg: 0x17, data: 0, size: 0, wsize: 0, id: 0 })).toBe(0x17n);
    expect(
      encodeSmcCommand({ msg: SMC_MSG_READ_KEY, data: smcKey("#KEY"), size: 4, wsize: 0, id: 1 }),
    ).toBe(0x234b_4559_0004_1010n);
    expect(
      encodeSmcCommand({ msg: SMC_MSG_WRITE_KEY, data: smcKey("NTAP"), size: 1, wsize: 0, id: 2 }),
    ).toBe(0x4e54_4150_0001_2011n);
    expect(
      encodeSmcCommand({ msg: SMC_MSG_RW_KEY, data: smcKey("gP00"), size: 4, wsize: 4, id: 3 }),
    ).toBe(0x6750_3030_0404_3020n);
  });

  it("splits replies: result, ID, size, data; 0x18 is a notification", () => {
    expect(decodeSmcReply(0x2301_0000_0004_1000n)).toEqual({
      result: 0,
      id: 1,
      size: 4,
      data: 0x2301_0000,
    });
    expect(isSmcNotification(0x7203_0100_0000_0018n)).toBe(true);
    expect(isSmcNotification(0x2301_0000_0004_1000n)).toBe(false);
  });

  it("refuses fields out of range, naming them", () => {
    expect(() => encodeSmcCommand({ msg: 0x10, data: 0, size: 256, wsize: 0, id: 0 })).toThrow(
      /size/,
    );
    expect(() => encodeSmcCommand({ msg: 0x10, data: 0, size: 1, wsize: 0, id: 16 })).toThrow(
      DevrefError,
    );
  });

  it("round-trips every command (property, fixed seed)", () => {
    fc.assert(
      fc.property(
        fc.integer({ min: 0, max: 0xff }),
        fc.integer({ min: 0, max: 0xffff_ffff }),
        fc.integer({ min: 0, max: 0xff }),
        fc.integer({ min: 0, max: 0xff }),
        fc.integer({ min: 0, max: 0xf }),
        (msg, data, size, wsize, id) => {
          const m = encodeSmcCommand({ msg, data, size, wsize, id });
          expect((m >> 8n) & 0xfn).toBe(0n); // bits 11:8 stay zero
          expect(decodeSmcReply(m)).toEqual({ result: msg, id, size, data });
          expect(Number((m >> 24n) & 0xffn)).toBe(wsize);
        },
      ),
      { seed: 42, numRuns: 500 },
    );
  });

  it("reads INITIALIZE's answer as a 64-bit address, or -1 past 2^53", () => {
    expect(shmemAddressOf(0x2_3fe0_0000n)).toBe(0x2_3fe0_0000);
    expect(shmemAddressOf(0xffff_ffff_ffff_ffffn)).toBe(-1);
  });
});

describe("keys (§2.5)", () => {
  it("packs FourCCs big-endian and names them back", () => {
    expect(smcKey("NTAP")).toBe(0x4e54_4150);
    expect(smcKeyName(0x5945_4b23)).toBe("YEK#");
    expect(smcKeyName(0x4100_0142)).toBe("A\\x00\\x01B");
    expect(() => smcKey("TOO LONG")).toThrow(DevrefError);
    expect(() => smcKey("ab\u00ffc")).toThrow(/printable/);
  });

  it("names the result codes it knows and shows the others in hex", () => {
    expect(smcResultName(0x84)).toBe("kSMCKeyNotFound");
    expect(smcResultName(0x42)).toBe("result 0x42");
  });
});

describe("key info and values (§2.6, §2.7)", () => {
  it("reads the six key-info bytes: size, type in string order, flags", () => {
    expect(info("F0Tg", "flt ", 4, 0xc0)).toEqual({
      key: "F0Tg",
      size: 4,
      type: "flt ",
      flags: 0xc0,
      readable: true,
      writable: true,
      isFunction: false,
    });
    expect(info("gP00", "ui32", 4, 0xd0).isFunction).toBe(true);
  });

  it("decodes little-endian numbers, signed ones, floats, flags and strings", () => {
    const d = (i: SmcKeyInfo, b: number[]) => decodeSmcValue(i, new Uint8Array(b));
    expect(d(info("B0AV", "ui16", 2), [0x0c, 0x30])).toBe(0x300c);
    expect(d(info("B0AC", "si16", 2), [0x50, 0xfb])).toBe(-1200);
    expect(d(info("B0AP", "si32", 4), [0x68, 0xc5, 0xff, 0xff])).toBe(-15000);
    expect(d(info("CHNC", "ui64", 8), [1, 0, 0, 0, 0, 0, 0x80, 0])).toBe(0x0080_0000_0000_0001n);
    expect(d(info("XS64", "si64", 8), [0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff])).toBe(-1n);
    expect(d(info("TB0T", "flt ", 4), [0, 0, 0xf0, 0x41])).toBe(30);
    expect(d(info("CHCE", "flag", 1), [1])).toBe(true);
    expect(d(info("BMDN", "ch8*", 8), [0x62, 0x71, 0x34, 0, 0x55, 0, 0, 0])).toBe("bq4");
    expect(d(info("ZZIO", "ioft", 8), [0, 0x80, 3, 0, 0, 0, 0, 0])).toBe(3.5);
    expect(d(info("MBSE", "hex_", 4), [1, 2, 3, 4])).toEqual(new Uint8Array([1, 2, 3, 4]));
  });

  it("reads #KEY and B0RM big-endian, as the kernel's callers do", () => {
    const d = (i: SmcKeyInfo, b: number[]) => decodeSmcValue(i, new Uint8Array(b));
    expect(d(info("#KEY", "ui32", 4), [0, 0, 1, 0x23])).toBe(0x123);
    expect(d(info("B0RM", "ui16", 2), [0x0e, 0x10])).toBe(3600);
    expect(encodeSmcValue(info("B0RM", "ui16", 2), 3600)).toEqual(new Uint8Array([0x0e, 0x10]));
  });

  it("refuses a size that does not fit the type, and a known key of another kind (EIO)", () => {
    expect(() => decodeSmcValue(info("XX16", "ui16", 4), new Uint8Array(4))).toThrow(
      /'ui16' but 4 bytes/,
    );
    // NTAP is a flag for the kernel; a firmware calling it ui8 reads as a number.
    expect(() => decodeSmcValue(info("NTAP", "ui8 ", 1), new Uint8Array(1))).toThrow(
      /expects a boolean/,
    );
  });

  it("encodes by type and refuses values of the wrong kind or range before anything", () => {
    expect(encodeSmcValue(info("F0Tg", "flt ", 4), 2400)).toEqual(
      new Uint8Array([0, 0, 0x16, 0x45]),
    );
    expect(encodeSmcValue(info("NTAP", "flag", 1), true)).toEqual(new Uint8Array([1]));
    expect(encodeSmcValue(info("B0AC", "si16", 2), -2)).toEqual(new Uint8Array([0xfe, 0xff]));
    expect(encodeSmcValue(info("MBSE", "hex_", 4), new Uint8Array([1, 2, 3, 4]))).toEqual(
      new Uint8Array([1, 2, 3, 4]),
    );
    for (const [i, v] of [
      [info("NTAP", "flag", 1), 1],
      [info("BUIC", "ui8 ", 1), 256],
      [info("B0AC", "si16", 2), 0x8000],
      [info("CHNC", "ui64", 8), 5],
      [info("F0Tg", "flt ", 4), Number.NaN],
      [info("BMDN", "ch8*", 4), "too long"],
      [info("MBSE", "hex_", 4), "off1"],
      [info("MBSE", "hex_", 4), new Uint8Array(3)],
    ] as const) {
      expect(() => encodeSmcValue(i, v as never)).toThrow(DevrefError);
    }
  });

  it("round-trips integers of every width (property, fixed seed)", () => {
    fc.assert(
      fc.property(
        fc.constantFrom("ui8 ", "ui16", "ui32", "si8 ", "si16", "si32"),
        fc.double({ min: 0, max: 1, noNaN: true }),
        (type, f) => {
          const width = Number.parseInt(type.slice(2), 10) / 8;
          const signed = type.startsWith("s");
          const span = 2 ** (8 * width);
          const v = Math.floor(f * (span - 1)) - (signed ? span / 2 : 0);
          const i = info("TEST", type, width);
          expect(decodeSmcValue(i, encodeSmcValue(i, v))).toBe(v);
        },
      ),
      { seed: 42, numRuns: 300 },
    );
  });
});

describe("events (§2.8)", () => {
  it("decodes buttons, the lid and the power events", () => {
    expect(decodeSmcEvent(0x7203_0100)).toMatchObject({ kind: "lid", description: "lid closed" });
    expect(decodeSmcEvent(0x7203_0000).description).toBe("lid opened");
    expect(decodeSmcEvent(0x7201_0601)).toMatchObject({
      kind: "button",
      data1: 6,
      data2: 1,
      description: "button 0x06 pressed",
    });
    expect(decodeSmcEvent(0x7101_0105).kind).toBe("charger");
    expect(decodeSmcEvent(0x7106_1234).kind).toBe("port-charge");
    expect(decodeSmcEvent(0x7113_0001).kind).toBe("connector");
    expect(decodeSmcEvent(0x7102_0000).kind).toBe("battery-critical");
    expect(decodeSmcEvent(0x1234_5678)).toMatchObject({
      kind: "unknown",
      type: 0x1234,
      description: "event 0x12345678",
    });
  });
});
