// The README's example, run: what it says it prints is what it prints.
import { PlatformBus } from "@devref/bus";
import { DmaSystem } from "@devref/dma-iommu";
import { createReferenceSoc, describeSoc } from "@devref/sim";
import { expect, it } from "vitest";
import { createAppleSmcDriver, settleUntil } from "../src/index.js";

it("the README example prints what the README says", async () => {
  const out: string[] = [];
  const log = (...a: unknown[]) => out.push(a.join(" "));
  // --- as in the README, with console.log as log ---
  const { soc, smc: parts } = createReferenceSoc({
    seed: 1,
    blk: false,
    smc: { firmware: { crashlog: { pages: 1 }, ioreport: { pages: 1 }, syslog: { pages: 1 } } },
  });
  new DmaSystem({ machine: soc.machine, memory: soc.memory, ram: soc.ram });
  const platform = new PlatformBus({ machine: soc.machine });
  const smcDriver = createAppleSmcDriver({ timers: soc.events });
  platform.registerDriver(smcDriver.driver);
  using fw = describeSoc(soc, { platform, mailbox: "inline" });
  await soc.settle();
  const smc = smcDriver.client("smc")!;
  const temp = await settleUntil(soc, smc.readKey("TB0T"));
  await settleUntil(soc, smc.writeKey("F0Tg", 2400));
  const keys = await settleUntil(soc, smc.listKeys());
  smc.onEvent((e) => log(`event: ${e.description}`));
  parts?.smc.notify(0x7203_0100);
  await soc.settle();
  log(temp.toFixed(1), keys.length, keys[0]?.key);
  await settleUntil(soc, smc.shutdown());
  // ---
  expect(out).toEqual(["event: lid closed", "30.0 31 #KEY"]);
  expect(fw.isRemoved).toBe(false);
});
