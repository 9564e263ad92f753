import { holders } from "@devref/raw-device";
import { describe, expect, it } from "vitest";
import { booted } from "./rig.js";

describe("smoke", () => {
  it("boots", async () => {
    const rig = await booted();
    expect(rig.rtk.isRunning).toBe(true);
    console.log(rig.fw.trace().join("\n"));
    console.log(rig.logs.lines.join("\n"));
    expect(holders(rig.dev).map((h) => h.label)).toContain("rtkit");
    rig.rtk.free();
    expect(holders(rig.dev).map((h) => h.label)).not.toContain("rtkit");
  });
});
