// The README's ASC/SMC example, run as written (imports adapted to the source tree).
import { expect, it } from "vitest";
import { createAppleSmc, Soc } from "../src/index.js";

it("runs the README example: an SMC woken at register level answers with HELLO", () => {
  const soc = new Soc({ seed: 1 });
  createAppleSmc(soc, { irq: 40 }); // ASC at 0x2_3e40_0000, SRAM at 0x2_3fe0_0000, as on t8103
  const MBOX = 0x2_3e40_8000; // ASC base + 0x8000

  // The AP side, as drivers/soc/apple/mailbox.c does it: 64-bit registers, low word first.
  const send = (ep: number, msg0: bigint): void => {
    soc.fabric.write32(MBOX + 0x800, Number(msg0 & 0xffff_ffffn)); // A2I SEND0
    soc.fabric.write32(MBOX + 0x804, Number(msg0 >> 32n));
    soc.fabric.write32(MBOX + 0x808, ep); // A2I SEND1
    soc.fabric.write32(MBOX + 0x80c, 0); // this write pushes the message
  };
  const inbox: [number, bigint][] = [];
  soc.irq.mask(40); // send-empty: enabled only while a sender waits for room
  soc.irq.connect(43, () => {
    // recv-not-empty: drain I2A while its control register (0x114) says not EMPTY (bit 17)
    while ((soc.fabric.read32(MBOX + 0x114) & (1 << 17)) === 0) {
      const lo = soc.fabric.read32(MBOX + 0x830); // I2A RECV0
      const hi = soc.fabric.read32(MBOX + 0x834);
      const ep = soc.fabric.read32(MBOX + 0x838) & 0xff; // I2A RECV1, low word
      soc.fabric.read32(MBOX + 0x83c); // RECV1 high word: pops
      inbox.push([ep, (BigInt(hi) << 32n) | BigInt(lo)]);
    }
  });

  send(0, 0x0060_0000_0000_0220n); // SET_IOP_PWR_STATE(INIT), as apple_rtkit_wake sends
  soc.run();
  expect(inbox).toEqual([[0, 0x10_0000_000c_000bn]]); // HELLO offering versions 11 to 12
});
