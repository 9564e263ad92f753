// A firmware that does not answer, answers wrongly, sends garbage or stops reading its
// mailbox: each fails the command it hits with a DevrefError on virtual time, is logged,
// and leaves the driver able to carry on.
import { DevrefError } from "@devref/raw-device";
import type { RtkitGarbageMode } from "@devref/sim";
import { describe, expect, it } from "vitest";
import { settleUntil } from "../src/index.js";
import { booted } from "./helpers.js";

async function outcome(
  p: Promise<unknown>,
  soc: Parameters<typeof settleUntil>[0],
): Promise<string> {
  try {
    await settleUntil(soc, p);
    return "ok";
  } catch (e) {
    if (!(e instanceof DevrefError)) throw e;
    return e.code;
  }
}

describe("a silent firmware", () => {
  it("a command the SMC never answers fails with ETIMEDOUT after 500 ms of virtual time", async () => {
    const { soc, smc, parts, lines } = await booted();
    parts.smc.fault("no-reply");
    const t0 = soc.nowNs;
    expect(await outcome(smc.readKeyRaw("TB0T", 4), soc)).toBe("ETIMEDOUT");
    expect(soc.nowNs - t0).toBeGreaterThanOrEqual(500_000_000);
    expect(soc.nowNs - t0).toBeLessThan(501_000_000);
    expect(lines("err").some((l) => /^Command timed out \(54423054000430\d0\)$/.test(l))).toBe(
      true,
    );
    // The next command works: nothing was left half done.
    expect(await settleUntil(soc, smc.readKey("BUIC"))).toBe(80);
    expect(smc.stage).toBe("running");
  });

  it("rtkit-silence: every command times out, nothing hangs; after it, commands work again", async () => {
    const { soc, smc, parts } = await booted();
    soc.faults.inject({ kind: "rtkit-silence", target: "smc", durationNs: 2_000_000_000 });
    for (let i = 0; i < 3; i++) expect(await outcome(smc.readKey("TB0T"), soc)).toBe("ETIMEDOUT");
    soc.runFor(2_000_000_000);
    expect(parts.firmware.isSilent).toBe(false);
    expect(typeof (await settleUntil(soc, smc.readKey("TB0T")))).toBe("number");
  });

  it("a late reply after a timeout is logged and dropped, and does not complete the next command", async () => {
    const { soc, smc, lines } = await booted();
    soc.faults.inject({ kind: "rtkit-stall", target: "smc", durationNs: 600_000_000 });
    expect(await outcome(smc.readKeyRaw("B0AV", 2), soc)).toBe("ETIMEDOUT");
    soc.runFor(200_000_000); // the stall ends; the old reply comes now
    expect(smc.stats().strayReplies).toBe(1);
    expect(lines("warn").some((l) => l.includes("with no command waiting; dropped"))).toBe(true);
    expect(await settleUntil(soc, smc.readKey("BUIC"))).toBe(80);
  });
});

describe("wrong answers", () => {
  it("a reply with another sequence ID is logged and ignored; the command then times out", async () => {
    const { soc, smc, lines } = await booted();
    soc.faults.inject({ kind: "smc-fault", target: "smc", mode: "wrong-id" });
    expect(await outcome(smc.readKeyRaw("TB0T", 4), soc)).toBe("ETIMEDOUT");
    expect(smc.stats().sequenceMismatches).toBe(1);
    expect(lines("err").some((l) => l.startsWith("Command sequence mismatch (expected"))).toBe(
      true,
    );
    expect(await settleUntil(soc, smc.readKey("BUIC"))).toBe(80);
  });

  it("a non-zero result fails the command with EIO naming it", async () => {
    const { soc, smc } = await booted();
    soc.faults.inject({ kind: "smc-fault", target: "smc", mode: "result", result: 0xb7 });
    await expect(settleUntil(soc, smc.readKey("BUIC"))).rejects.toMatchObject({
      code: "EIO",
      details: { result: 0xb7, resultName: "kSMCTimeoutError" },
    });
  });

  it.each<RtkitGarbageMode>(["random", "wrong-type", "wrong-endpoint", "out-of-range"])(
    "garbage from the firmware (%s) is rejected and logged; the SMC stays consistent",
    async (mode) => {
      const { soc, smc, parts, lines } = await booted({ seed: 7 });
      await settleUntil(soc, smc.keyInfo("TB0T")); // known from here on: one command per read
      for (let count = 1; count <= 3; count++) {
        parts.firmware.corrupt(mode, count);
        // Each read gets one damaged reply; whatever it does, the read ends as a value or a
        // DevrefError (a dropped reply times out; a wrong one fails or is ignored).
        for (let i = 0; i < count; i++) {
          expect(["ok", "ETIMEDOUT", "EIO"]).toContain(
            await outcome(smc.readKeyRaw("TB0T", 4), soc),
          );
        }
        parts.firmware.log("smc", `after ${mode} x${count}`); // syslog still flows
        expect(await settleUntil(soc, smc.readKey("BUIC"))).toBe(80);
      }
      expect(smc.stage).toBe("running");
      // "wrong-type" flips bits 59:52, which on the SMC endpoint are value bits of DATA:
      // the protocol has no check that could notice (the kernel would not either).
      if (mode !== "wrong-type") {
        expect(lines("warn").length + lines("err").length).toBeGreaterThan(0);
      }
      expect(lines("info")).toContain(`RTKit: syslog message: smc: after ${mode} x3`);
    },
  );
});

describe("a mailbox that stays full", () => {
  it("a send finding A2I full waits for the send-empty interrupt, then goes", async () => {
    const { soc, smc, lines } = await booted({ smc: { fifoDepth: 1, firmware: {} } });
    soc.faults.inject({ kind: "rtkit-stall", target: "smc", durationNs: 700_000_000 });
    // The first command fills the one-message FIFO and times out: the firmware reads nothing.
    expect(await outcome(smc.readKeyRaw("B0AV", 2), soc)).toBe("ETIMEDOUT");
    // The second finds A2I full and waits; 200 ms later the firmware reads again.
    const t0 = soc.nowNs;
    const second = smc.readKeyRaw("B0CT", 2);
    await expect(settleUntil(soc, second)).resolves.toEqual(new Uint8Array([87, 0]));
    expect(soc.nowNs - t0).toBeGreaterThanOrEqual(199_000_000);
    expect(smc.stats().mailboxFull).toBeGreaterThanOrEqual(1);
    expect(soc.irq.isConnected(48)).toBe(false); // send-empty released once there was room
    expect(lines("err").filter((l) => l.startsWith("mailbox:"))).toEqual([]);
  });

  it("gives up after 500 ms with ETIMEDOUT, drops what waited, and lets the interrupt go", async () => {
    const { soc, smc, lines } = await booted({ smc: { fifoDepth: 1, firmware: {} } });
    soc.faults.inject({ kind: "rtkit-stall", target: "smc" }); // for good
    const first = outcome(smc.readKeyRaw("B0AV", 2), soc);
    expect(await first).toBe("ETIMEDOUT"); // the command's own 500 ms
    const second = await (async () => {
      try {
        await settleUntil(soc, smc.readKeyRaw("B0CT", 2));
        return null;
      } catch (e) {
        return e as DevrefError;
      }
    })();
    expect(second?.code).toBe("ETIMEDOUT");
    expect(second?.message).toMatch(/A2I stayed full for 500 ms/);
    expect(soc.irq.isConnected(48)).toBe(false); // send-empty released again
    expect(lines("err").some((l) => l.startsWith("mailbox: no room in A2I for 500 ms"))).toBe(true);
  });
});
