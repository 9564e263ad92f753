import { DevrefError } from "@devref/raw-device";
import {
  describeMessage,
  encodeBufferRequest,
  encodeEpmapReply,
  encodeHello,
  encodeIopPowerStateAck,
  encodeOslogBufferRequest,
  encodeSetApPowerState,
  encodeStartEp,
  encodeSyslogInit,
  encodeSyslogLog,
  PWR_STATE_INIT,
  PWR_STATE_ON,
} from "@devref/rtkit";
import fc from "fast-check";
import { describe, expect, it } from "vitest";

describe("describeMessage", () => {
  it("names management messages with their fields", () => {
    expect(describeMessage(0, encodeHello({ minVer: 11, maxVer: 12 }))).toBe(
      "ep 0x00 mgmt HELLO min 11 max 12",
    );
    expect(describeMessage(0, 0x0088_0000_0000_011fn, "to-ap")).toBe(
      "ep 0x00 mgmt EPMAP base 0 bitmap 0x0000011f [0x00 0x01 0x02 0x03 0x04 0x08] last",
    );
    expect(
      describeMessage(0, encodeEpmapReply({ base: 1, last: false, more: true }), "to-iop"),
    ).toBe("ep 0x00 mgmt EPMAP_REPLY base 1 more");
    expect(describeMessage(0, encodeStartEp({ ep: 0x20, flag: 2 }))).toBe(
      "ep 0x00 mgmt STARTEP ep 0x20 start",
    );
    expect(describeMessage(0, encodeIopPowerStateAck({ state: PWR_STATE_INIT }))).toBe(
      "ep 0x00 mgmt SET_IOP_PWR_STATE_ACK INIT (0x220)",
    );
    expect(describeMessage(0, encodeSetApPowerState({ state: PWR_STATE_ON }), "to-ap")).toBe(
      "ep 0x00 mgmt SET_AP_PWR_STATE_ACK ON (0x20)",
    );
    expect(describeMessage(0, 3n << 52n)).toBe(
      "ep 0x00 mgmt unknown type 0x03 (m1n1 PING) msg0 0x30000000000000",
    );
  });

  it("names system endpoint messages", () => {
    expect(describeMessage(2, encodeBufferRequest({ pages: 2, iova: 0 }))).toBe(
      "ep 0x02 syslog BUFFER_REQUEST 2 pages (0x2000 bytes) at 0x0 (AP allocates)",
    );
    expect(describeMessage(2, encodeBufferRequest({ pages: 2, iova: 0x8000_0000 }), "to-iop")).toBe(
      "ep 0x02 syslog BUFFER_REPLY 2 pages (0x2000 bytes) at 0x80000000",
    );
    expect(describeMessage(2, encodeSyslogInit({ entries: 16, msgSize: 128 }))).toBe(
      "ep 0x02 syslog INIT 16 entries of 128 bytes",
    );
    expect(describeMessage(2, encodeSyslogLog({ index: 5 }))).toBe("ep 0x02 syslog LOG entry 5");
    expect(describeMessage(8, encodeOslogBufferRequest({ size: 0x4000, iova: 0 }))).toBe(
      "ep 0x08 oslog BUFFER_REQUEST 0x4000 bytes at 0x0 (AP allocates)",
    );
    expect(describeMessage(4, (0xcn << 52n) | 7n)).toBe(
      "ep 0x04 ioreport UNKNOWN2 (m1n1 Start) reserved 0x7",
    );
    expect(describeMessage(0x21, 0x0123_4567_89ab_cdefn)).toBe(
      "ep 0x21 app msg0 0x0123456789abcdef",
    );
    expect(describeMessage(1, encodeBufferRequest({ pages: 4, iova: 0 }))).toContain(
      "a CRASH once the buffer exists",
    );
  });

  it("shows bits no field names", () => {
    const m = encodeHello({ minVer: 11, maxVer: 12 }) | (1n << 63n);
    expect(describeMessage(0, m)).toBe(
      "ep 0x00 mgmt HELLO min 11 max 12 reserved 0x8000000000000000",
    );
  });

  it("describes every message in exactly one line (property)", () => {
    fc.assert(
      fc.property(
        fc.integer({ min: 0, max: 255 }),
        fc.bigInt({ min: 0n, max: 2n ** 64n - 1n }),
        fc.constantFrom(undefined, "to-ap" as const, "to-iop" as const),
        (ep, msg0, dir) => {
          const line = describeMessage(ep, msg0, dir);
          expect(line.startsWith(`ep 0x${ep.toString(16).padStart(2, "0")} `)).toBe(true);
          expect(line).not.toContain("\n");
        },
      ),
      { seed: 42, numRuns: 5000 },
    );
  });

  it("refuses bad arguments with EINVAL naming them", () => {
    for (const [ep, msg, dir] of [
      [256, 0n, undefined],
      [-1, 0n, undefined],
      [0, 5, undefined],
      [0, 0n, "sideways"],
    ] as const) {
      try {
        describeMessage(ep as number, msg as bigint, dir as never);
        expect.unreachable();
      } catch (e) {
        expect(DevrefError.is(e, "EINVAL")).toBe(true);
      }
    }
  });
});
