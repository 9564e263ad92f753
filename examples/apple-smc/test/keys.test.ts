// Keys on the simulated SMC: typed reads and writes, key info, #KEY enumeration, function
// keys, sensors that follow virtual time, and the errors (unknown key, bad size,
// read-only, short read, wrong value) — checked before anything is sent where they can be.
import { DevrefError } from "@devref/raw-device";
import { smcChargePercent, smcTemperature } from "@devref/sim";
import { describe, expect, it } from "vitest";
import { settleUntil } from "../src/index.js";
import { booted } from "./helpers.js";

describe("reading and writing keys", () => {
  it("reads keys as the types the SMC reports", async () => {
    const { soc, smc } = await booted();
    const read = <K extends string>(k: K) => settleUntil(soc, smc.readKey(k));
    expect(await read("#KEY")).toBe(smc.keyCount); // big-endian ui32
    expect(await read("TB0T")).toBeCloseTo(smcTemperature(soc.nowNs), 5); // flt
    expect(await read("BUIC")).toBe(80); // ui8
    expect(await read("B0AC")).toBe(-1200); // si16
    expect(await read("B0AP")).toBe(-15000); // si32
    expect(await read("B0RM")).toBe(3600); // big-endian ui16
    expect(await read("CHCE")).toBe(true); // flag
    expect(await read("BMDN")).toBe("bq40z651"); // ch8*, 32 bytes through the shared buffer
    const clkm = await read("CLKM"); // hex_, 6 bytes through the shared buffer
    expect(clkm).toBeInstanceOf(Uint8Array);
    expect((clkm as Uint8Array).length).toBe(6);
  });

  it("reads raw bytes: four or fewer from the reply, more from SRAM", async () => {
    const { soc, smc, parts } = await booted();
    expect(await settleUntil(soc, smc.readKeyRaw("B0AV", 2))).toEqual(parts.smc.keyValue("B0AV"));
    const name = await settleUntil(soc, smc.readKeyRaw("BMDN", 255)); // the power driver asks 255
    expect(name.length).toBe(32); // the key's real size comes back
    expect(name).toEqual(parts.smc.keyValue("BMDN"));
  });

  it("writes through the shared buffer, typed or raw", async () => {
    const { soc, smc, parts } = await booted();
    await settleUntil(soc, smc.writeKey("F0Tg", 2400));
    expect(await settleUntil(soc, smc.readKey("F0Tg"))).toBe(2400);
    await settleUntil(soc, smc.writeKey("F0Md", 1));
    expect(parts.smc.keyValue("F0Md")).toEqual(new Uint8Array([1]));
    await settleUntil(soc, smc.writeKeyRaw("MBSE", new Uint8Array([0x77, 0x66, 0x66, 0x6f])));
    expect(parts.smc.lastSystemEvent).toBe("offw"); // a little-endian u32 holding the FourCC
  });

  it("calls function keys with RW_KEY (the GPIO keys)", async () => {
    const { soc, smc } = await booted();
    const set = new Uint8Array([1, 0, 0, 1]); // command 1 (output) in bits 31:24, level 1
    await settleUntil(soc, smc.rwKey("gP00", set, 4));
    const got = await settleUntil(soc, smc.rwKey("gP00", new Uint8Array([0, 0, 0, 2]), 4));
    expect(got).toEqual(new Uint8Array([1, 0, 0, 0]));
  });

  it("sensor keys follow virtual time", async () => {
    const { soc, smc } = await booted();
    const seen: [number, number, number][] = [];
    for (let i = 0; i < 4; i++) {
      const t = await settleUntil(soc, smc.readKey("TB0T"));
      const fan = await settleUntil(soc, smc.readKey("F0Ac"));
      seen.push([soc.nowNs, t, fan]);
      soc.runFor(3_000_000_000);
    }
    for (const [now, t] of seen) expect(t).toBeCloseTo(smcTemperature(now), 4);
    expect(new Set(seen.map(([, t]) => t.toFixed(2))).size).toBe(4); // it moved every time
    expect(seen[3]![2]).toBeGreaterThan(seen[0]![2]); // the fan follows the temperature up
    soc.runFor(120_000_000_000); // two virtual minutes: the battery drains
    expect(await settleUntil(soc, smc.readKey("BUIC"))).toBe(smcChargePercent(soc.nowNs));
    expect(smcChargePercent(soc.nowNs)).toBe(78);
  });
});

describe("key info and #KEY enumeration", () => {
  it("gives size, type and flags", async () => {
    const { soc, smc } = await booted();
    expect(await settleUntil(soc, smc.keyInfo("F0Tg"))).toEqual({
      key: "F0Tg",
      size: 4,
      type: "flt ",
      flags: 0xc0,
      readable: true,
      writable: true,
      isFunction: false,
    });
    const gpio = await settleUntil(soc, smc.keyInfo("gP01"));
    expect(gpio).toMatchObject({ size: 4, type: "ui32", isFunction: true });
  });

  it("lists every key with its info, in the SMC's sorted order", async () => {
    const { soc, smc, parts } = await booted();
    const keys = await settleUntil(soc, smc.listKeys());
    expect(keys.map((k) => k.key)).toEqual(parts.smc.keyNames());
    expect(keys).toHaveLength(smc.keyCount);
    const byName = new Map(keys.map((k) => [k.key, k]));
    expect(byName.get("#KEY")).toMatchObject({
      type: "ui32",
      size: 4,
      readable: true,
      writable: false,
    });
    expect(byName.get("NTAP")).toMatchObject({ type: "flag", size: 1, writable: true });
    expect(byName.get("BMDN")).toMatchObject({ type: "ch8*", size: 32 });
    expect(await settleUntil(soc, smc.keyByIndex(0))).toBe("#KEY");
  });
});

describe("errors", () => {
  async function fails(p: Promise<unknown>, soc: Parameters<typeof settleUntil>[0]) {
    try {
      await settleUntil(soc, p);
    } catch (e) {
      expect(e).toBeInstanceOf(DevrefError);
      return e as DevrefError;
    }
    throw new Error("expected a failure");
  }

  it("an unknown key, a read-only key, a short read: EIO with the SMC's result", async () => {
    const { soc, smc } = await booted();
    const unknown = await fails(smc.readKeyRaw("ZZZZ", 4), soc);
    expect(unknown.code).toBe("EIO");
    expect(unknown.details).toEqual({ result: 0x84, resultName: "kSMCKeyNotFound" });
    expect((await fails(smc.keyInfo("ZZZZ"), soc)).details?.result).toBe(0x84);
    const readOnly = await fails(smc.writeKey("TB0T", 20), soc);
    expect(readOnly.details).toEqual({ result: 0x86, resultName: "kSMCKeyNotWritable" });
    const short = await fails(smc.readKeyRaw("TB0T", 2), soc);
    expect(short.details?.resultName).toBe("kSMCKeySizeMismatch");
    const index = await fails(smc.keyByIndex(smc.keyCount), soc);
    expect(index.details?.resultName).toBe("kSMCKeyIndexRangeError");
    const notFunction = await fails(smc.rwKey("TB0T", new Uint8Array(4), 4), soc);
    expect(notFunction.details?.resultName).toBe("kSMCBadFuncParameter");
    // The SMC is still fine.
    expect(smc.stage).toBe("running");
    expect(await settleUntil(soc, smc.readKey("BUIC"))).toBe(80);
  });

  it("bad sizes, key names and values fail with EINVAL before anything is sent", async () => {
    const { soc, smc } = await booted();
    const before = smc.stats().sent;
    for (const p of [
      smc.readKeyRaw("TB0T", 0),
      smc.readKeyRaw("TB0T", 256),
      smc.writeKeyRaw("NTAP", new Uint8Array(0)),
      smc.writeKeyRaw("MBSE", new Uint8Array(256)),
      smc.rwKey("gP00", new Uint8Array(4), 300),
      smc.readKey("TOOLONG" as string),
      smc.readKey(42 as never),
      smc.keyByIndex(-1),
      smc.keyInfo("ab"),
    ]) {
      expect((await fails(p, soc)).code).toBe("EINVAL");
    }
    expect(smc.stats().sent).toBe(before);
    // A value of the wrong kind is refused once the key's type is known, before the write.
    await settleUntil(soc, smc.keyInfo("NTAP"));
    const sent = smc.stats().sent;
    expect((await fails(smc.writeKey("NTAP", 1 as never), soc)).code).toBe("EINVAL");
    expect((await fails(smc.writeKey("BUIC", 300), soc)).code).toBe("EINVAL");
    expect(smc.stats().sent).toBe(sent + 1); // BUIC's key info, nothing else
  });
});
