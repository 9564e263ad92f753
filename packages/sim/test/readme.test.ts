// The README's example, run as written (imports adapted to the source tree).
import { expect, it } from "vitest";
import { createReferenceSoc, REFERENCE_MAP as M } from "../src/index.js";

it("runs the README example: a stale IOTLB entry, then NO_PTE after the flush", () => {
  const run = () => {
    const { soc, dart } = createReferenceSoc({ seed: 7, blk: false });
    const dev = soc.dmaMaster("engine");
    dart.attach(dev, 2);
    const table = () => soc.ram.alloc(0x4000, 0x4000);
    const top = table();
    const leaf = table();
    const page = table();
    soc.memory.write64(top, (leaf / 16) | 1, 0);
    soc.memory.write64(leaf + 8, (page / 16) | 1, 0);
    const w = (off: number, v: number) => soc.fabric.write32(M.DART_BASE + off, v);
    w(0xc00, 0xffff_ffff);
    w(0x1400 + 4 * 2, 1 | ((top / 0x4000) << 2));
    w(0x1000 + 4 * 2, 1);
    expect(dev.write32(0x4010, 0xcafe)).toBe(true);
    expect(soc.memory.read32(page + 0x10)).toBe(0xcafe);
    soc.memory.write64(leaf + 8, 0, 0);
    expect(dev.write32(0x4010, 1)).toBe(true);
    w(0x80, 0x100 | 2);
    expect(dev.write32(0x4010, 2)).toBe(false);
    expect(soc.fabric.read32(M.DART_BASE + 0x100).toString(16)).toBe("80200008");
    expect(soc.irq.isAsserted(M.DART_IRQ)).toBe(true);
    return soc.traceDigest();
  };
  expect(run()).toBe(run());
});
