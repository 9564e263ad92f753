import { describe, expect, it } from "vitest";
import { done, FN, rig } from "./helpers.js";

describe("probe", () => {
  it("binds and reads", async () => {
    const r = rig();
    expect(await r.soc.settle()).toBe(true);
    console.log(r.logs.map((l) => l.text));
    const disk = r.vblk.disk(FN);
    const data = new Uint8Array(4096).fill(7);
    await done(r, disk.write(8, data));
    expect(r.ref.blk!.image.subarray(8 * 512, 8 * 512 + 4096)).toEqual(data);
    const back = await done(r, disk.read(8, 8));
    expect(back).toEqual(data);
  });
});
