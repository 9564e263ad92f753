// Notifications: NTAP turns them on at probe and off at shutdown; events reach every
// subscriber in order from RTKit's work queue, decoded; one arriving while a command waits
// does not complete it.
import { describe, expect, it } from "vitest";
import { type SmcEvent, settleFor, settleUntil } from "../src/index.js";
import { booted } from "./helpers.js";

describe("notifications", () => {
  it("reach every subscriber, decoded, in order; unsubscribe stops them", async () => {
    const { soc, smc, parts } = await booted();
    const a: SmcEvent[] = [];
    const b: string[] = [];
    const offA = smc.onEvent((e) => a.push(e));
    smc.onEvent((e) => b.push(e.description));
    expect(parts.smc.notify(0x7203_0100)).toBe(true);
    expect(parts.smc.notify(0x7201_0101)).toBe(true);
    await soc.settle();
    expect(a.map((e) => e.kind)).toEqual(["lid", "button"]);
    expect(b).toEqual(["lid closed", "button 0x01 pressed"]);
    offA();
    parts.smc.notify(0x7203_0000);
    await soc.settle();
    expect(a).toHaveLength(2);
    expect(b.at(-1)).toBe("lid opened");
    expect(smc.stats().events).toBe(3);
  });

  it("a handler that throws is logged; the others still run", async () => {
    const { soc, smc, parts, lines } = await booted();
    const seen: number[] = [];
    smc.onEvent(() => {
      throw new Error("boom");
    });
    smc.onEvent((e) => seen.push(e.code));
    parts.smc.notify(0x7102_0000);
    await soc.settle();
    expect(seen).toEqual([0x7102_0000]);
    expect(lines("err").some((l) => l.includes("an event handler threw: Error: boom"))).toBe(true);
  });

  it("an event while a command waits does not complete the command", async () => {
    const { soc, smc, parts } = await booted();
    const events: string[] = [];
    smc.onEvent((e) => events.push(e.description));
    parts.smc.fault("no-reply");
    const p = smc.readKeyRaw("B0AV", 2);
    p.catch(() => {});
    await settleFor(soc, 1_000_000);
    parts.smc.notify(0x7203_0100);
    await settleFor(soc, 1_000_000);
    expect(events).toEqual(["lid closed"]);
    await expect(settleUntil(soc, p)).rejects.toMatchObject({ code: "ETIMEDOUT" });
  });

  it("shutdown turns them off (NTAP = 0) and quiesces the firmware", async () => {
    const { soc, smc, parts } = await booted();
    await settleUntil(soc, smc.shutdown());
    expect(parts.smc.keyValue("NTAP")).toEqual(new Uint8Array([0]));
    expect(parts.firmware.state).toBe("asleep");
    expect(parts.smc.notify(0x7203_0100)).toBe(false);
    expect(smc.stage).toBe("shutdown");
    await expect(smc.readKey("TB0T")).rejects.toMatchObject({ code: "EIO" });
  });

  it("refuses a handler that is not a function", async () => {
    const { smc } = await booted();
    expect(() => smc.onEvent(42 as never)).toThrow(/function/);
    expect(() => smc.onStageChange("x" as never)).toThrow(/function/);
  });
});
