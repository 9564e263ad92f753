// virtio-blk on modern virtio-pci against specs/sim-hardware.md §4, driven by hand at the
// register level with the virtqueues built in memory by the test.
import { describe, expect, it } from "vitest";
import {
  createReferenceSoc,
  DMA_STATUS,
  REFERENCE_MAP as M,
  VIRTIO_BLK_F,
  VIRTIO_BLK_S,
  VIRTIO_BLK_T,
  VIRTIO_F,
  VIRTIO_STATUS,
} from "../src/index.js";
import { errorRegs } from "./dart-helpers.js";
import { expectCode } from "./helpers.js";
import { arenaFor, carve, header, kernelDartReset, TestVirtio } from "./virtio-helpers.js";

/** A cheap content hash (deep equality of 1 MiB arrays is slow). */
function checksum(a: Uint8Array): number {
  let h = 0;
  for (let i = 0; i < a.length; i++) h = (Math.imul(h, 31) + a[i]!) | 0;
  return h;
}

const has = (f: [number, number], bit: number) => ((f[bit < 32 ? 0 : 1] >>> (bit % 32)) & 1) === 1;

function direct(blk: Parameters<typeof createReferenceSoc>[0] extends infer O ? O : never = {}) {
  const ref = createReferenceSoc({ iommu: false, ...blk });
  const drv = new TestVirtio(ref.soc);
  drv.enable();
  return { ...ref, drv, blk: ref.blk! };
}

/** Negotiates everything offered, sets up queue 0 (size 8) and DRIVER_OK. */
function ready(opts: Parameters<typeof direct>[0] = {}) {
  const r = direct(opts);
  expect(r.drv.negotiate() & VIRTIO_STATUS.FEATURES_OK).toBe(VIRTIO_STATUS.FEATURES_OK);
  const arena = arenaFor(r.soc, null);
  const q = r.drv.setupQueue(arena, 0, 16);
  r.drv.driverOk();
  return { ...r, arena, q };
}

describe("virtio-pci identity and capabilities", () => {
  it("is a modern virtio-blk function with the structures where QEMU puts them", () => {
    const { drv } = direct();
    expect(drv.c16(0)).toBe(0x1af4);
    expect(drv.c16(2)).toBe(0x1042);
    expect(drv.c8(8)).toBe(1); // revision ≥ 1: non-transitional
    expect(drv.c16(0x2e)).toBe(0x40);
    expect(drv.c32(8) >>> 8).toBe(0x01_00_00);
    expect(drv.caps.types).toEqual([1, 2, 3, 4, 5]);
    expect(drv.caps.msix).toBe(0x40);
    expect(drv.caps.mult).toBe(4);
    expect(drv.caps.isr - drv.caps.common).toBe(0x1000);
    expect(drv.caps.device - drv.caps.common).toBe(0x2000);
    expect(drv.caps.notify - drv.caps.common).toBe(0x3000);
  });

  it("offers VERSION_1, FLUSH, SEG_MAX, BLK_SIZE, INDIRECT_DESC, EVENT_IDX, and ACCESS_PLATFORM behind the DART", () => {
    const { drv } = direct();
    const f = drv.features();
    for (const b of [
      VIRTIO_F.VERSION_1,
      VIRTIO_BLK_F.FLUSH,
      VIRTIO_BLK_F.SEG_MAX,
      VIRTIO_BLK_F.BLK_SIZE,
      VIRTIO_F.INDIRECT_DESC,
      VIRTIO_F.EVENT_IDX,
    ]) {
      expect(has(f, b)).toBe(true);
    }
    expect(has(f, VIRTIO_F.ACCESS_PLATFORM)).toBe(false);
    expect(has(f, VIRTIO_BLK_F.RO)).toBe(false);
    const ref = createReferenceSoc();
    const d2 = new TestVirtio(ref.soc);
    d2.enable();
    expect(has(d2.features(), VIRTIO_F.ACCESS_PLATFORM)).toBe(true);
    d2.w32(0, 2);
    expect(d2.r32(4)).toBe(0); // no features above bit 63
  });

  it("reads device configuration at any width and reaches it through the pci_cfg window", () => {
    const { drv, soc } = direct({ blk: { capacity: 0x1_2345, segMax: 7 } });
    const dev = drv.caps.device;
    expect(soc.fabric.read32(dev)).toBe(0x1_2345);
    expect(soc.fabric.read32(dev + 4)).toBe(0);
    expect(soc.fabric.read16(dev)).toBe(0x2345);
    expect(soc.fabric.read8(dev + 2)).toBe(1);
    expect(soc.fabric.read32(dev + 12)).toBe(7);
    expect(soc.fabric.read32(dev + 20)).toBe(512);
    // VIRTIO_PCI_CAP_PCI_CFG: bar 4, offset of num_queues in the common structure, length 2.
    const cap = drv.caps.pciCfg;
    drv.cw32(cap + 4, 4);
    drv.cw32(cap + 8, 18);
    drv.cw32(cap + 12, 2);
    expect(drv.c32(cap + 16)).toBe(1);
  });
});

describe("status handshake and feature negotiation", () => {
  it("resets on 0, keeps FEATURES_OK for a valid subset, and goes live on DRIVER_OK", () => {
    const { drv, blk } = direct();
    drv.w8(20, 0);
    expect(drv.status).toBe(0);
    const f = drv.features();
    const accept: [number, number] = [
      f[0] & ((1 << VIRTIO_BLK_F.FLUSH) | (1 << VIRTIO_BLK_F.BLK_SIZE)),
      f[1],
    ];
    expect(drv.negotiate(accept)).toBe(0xb);
    drv.w32(8, 0);
    expect(drv.r32(12)).toBe(accept[0]); // driver_feature reads back
    drv.driverOk();
    expect(drv.status).toBe(0xf);
    expect(blk.deviceStatus).toBe(0xf);
    drv.w8(20, 0);
    expect(drv.status).toBe(0);
  });

  it("refuses FEATURES_OK without VERSION_1, with unoffered bits, or without ACCESS_PLATFORM behind an IOMMU", () => {
    const { drv, soc } = direct();
    const [lo, hi] = drv.features();
    expect(drv.negotiate([lo, 0]) & VIRTIO_STATUS.FEATURES_OK).toBe(0);
    expect(drv.negotiate([lo | (1 << 20), hi]) & VIRTIO_STATUS.FEATURES_OK).toBe(0);
    expect(drv.negotiate([lo, hi]) & VIRTIO_STATUS.FEATURES_OK).toBe(VIRTIO_STATUS.FEATURES_OK);
    const ref = createReferenceSoc();
    const d2 = new TestVirtio(ref.soc);
    d2.enable();
    const f2 = d2.features();
    expect(d2.negotiate([f2[0], f2[1] & ~(1 << (VIRTIO_F.ACCESS_PLATFORM - 32))]) & 8).toBe(0);
    const refused = soc
      .trace()
      .filter((r) => r.kind === "fault" && r.fault.startsWith("virtio-features-refused"));
    expect(refused).toHaveLength(2);
  });

  it("ignores a driver that clears status bits or writes features after FEATURES_OK", () => {
    const { drv, soc } = direct();
    drv.negotiate();
    drv.w8(20, 0x3); // clears FEATURES_OK: not allowed
    expect(drv.status).toBe(0xb);
    drv.w32(8, 0);
    drv.w32(12, 0);
    expect(drv.r32(12)).not.toBe(0);
    const errors = soc
      .trace()
      .filter((r) => r.kind === "fault" && r.fault.startsWith("virtio-driver-error"));
    expect(errors).toHaveLength(2);
  });

  it("reads the old status until a slow reset completes", () => {
    const { drv, soc } = direct({ blk: { resetLatencyNs: 3_000_000 } });
    drv.w8(20, 1);
    drv.w8(20, 3);
    expect(drv.status).toBe(3);
    drv.w8(20, 0);
    expect(drv.status).toBe(3);
    drv.w8(20, 1); // ignored: the reset is still running
    soc.runFor(2_000_000);
    expect(drv.status).toBe(3);
    soc.runFor(1_000_000);
    expect(drv.status).toBe(0);
  });

  it("a negotiation that does not wait for a slow reset gets nowhere", () => {
    const { drv, soc } = direct({ blk: { resetLatencyNs: 3_000_000 } });
    // From status 1 the reset takes the model's latency: the old status reads back and
    // every write meanwhile is ignored.
    drv.w8(20, 1);
    expect(drv.negotiate()).toBe(1);
    soc.runFor(3_000_000);
    expect(drv.status).toBe(0);
    // From status 0 a reset has nothing to undo and is immediate.
    expect(drv.negotiate()).toBe(0xb);
  });

  it("sets DEVICE_NEEDS_RESET for a queue enabled with a bad size or alignment", () => {
    const { drv } = direct();
    drv.negotiate();
    drv.w16(22, 0);
    drv.w16(24, 6);
    drv.w16(28, 1);
    expect(drv.status & VIRTIO_STATUS.DEVICE_NEEDS_RESET).toBe(VIRTIO_STATUS.DEVICE_NEEDS_RESET);
    expect(drv.r16(28)).toBe(0);
    drv.w8(20, 0);
    expect(drv.status).toBe(0);
    drv.negotiate();
    drv.w16(24, 8);
    drv.w32(32, 0x8_0000_0008 % 2 ** 32);
    drv.w16(28, 1);
    expect(drv.status & VIRTIO_STATUS.DEVICE_NEEDS_RESET).toBe(VIRTIO_STATUS.DEVICE_NEEDS_RESET);
  });

  it("reports queue 1 as absent (size 0) on a single-queue device", () => {
    const { drv } = direct();
    expect(drv.r16(18)).toBe(1);
    drv.w16(22, 1);
    expect(drv.r16(24)).toBe(0);
    drv.w16(22, 0);
    expect(drv.r16(24)).toBe(128);
  });
});

describe("requests", () => {
  it("serves a read (IN) and interrupts through the ISR and INTx", () => {
    const { soc, drv, q, arena, blk } = ready();
    for (let i = 0; i < 1024; i++) blk.image[2 * 512 + i] = (i * 7) & 0xff;
    const [hdrPa, hdrDev] = carve(arena, 16);
    const [dataPa, dataDev] = carve(arena, 1024);
    const [stPa, stDev] = carve(arena, 1, 1);
    soc.memory.write8(stPa, 0xee);
    header(soc, hdrPa, VIRTIO_BLK_T.IN, 2);
    const head = q.add([
      { addr: hdrDev, len: 16 },
      { addr: dataDev, len: 1024, write: true },
      { addr: stDev, len: 1, write: true },
    ]);
    q.kick();
    soc.run();
    expect(q.usedIdx).toBe(1);
    expect(q.usedElem(0)).toEqual({ id: head, len: 1025 });
    expect(soc.memory.read8(stPa)).toBe(VIRTIO_BLK_S.OK);
    const data = new Uint8Array(1024);
    soc.memory.readBytes(dataPa, data);
    expect(data).toEqual(blk.image.subarray(1024, 2048));
    expect(soc.irq.isAsserted(M.INTX_BASE)).toBe(true);
    expect(soc.fabric.read8(drv.caps.isr)).toBe(1);
    expect(soc.irq.isAsserted(M.INTX_BASE)).toBe(false);
    expect(soc.fabric.read8(drv.caps.isr)).toBe(0);
  });

  it("serves a write (OUT) split over descriptors, then FLUSH and GET_ID", () => {
    const { soc, q, arena, blk } = ready();
    const [hdrPa, hdrDev] = carve(arena, 16);
    const [dataPa, dataDev] = carve(arena, 512);
    const [stPa, stDev] = carve(arena, 1, 1);
    for (let i = 0; i < 512; i++) soc.memory.write8(dataPa + i, 0xa0 ^ i);
    header(soc, hdrPa, VIRTIO_BLK_T.OUT, 5);
    q.add([
      { addr: hdrDev, len: 8 },
      { addr: hdrDev + 8, len: 8 },
      { addr: dataDev, len: 200 },
      { addr: dataDev + 200, len: 312 },
      { addr: stDev, len: 1, write: true },
    ]);
    q.kick();
    soc.run();
    expect(soc.memory.read8(stPa)).toBe(VIRTIO_BLK_S.OK);
    expect(q.usedElem(0).len).toBe(1);
    expect(blk.image[5 * 512 + 3]).toBe(0xa3);
    expect(blk.unflushedWrites).toBe(1);

    const [h2Pa, h2Dev] = carve(arena, 16);
    const [s2Pa, s2Dev] = carve(arena, 1, 1);
    header(soc, h2Pa, VIRTIO_BLK_T.FLUSH, 0);
    q.add([
      { addr: h2Dev, len: 16 },
      { addr: s2Dev, len: 1, write: true },
    ]);
    const [h3Pa, h3Dev] = carve(arena, 16);
    const [idPa, idDev] = carve(arena, 20);
    const [s3Pa, s3Dev] = carve(arena, 1, 1);
    header(soc, h3Pa, VIRTIO_BLK_T.GET_ID, 0);
    q.add([
      { addr: h3Dev, len: 16 },
      { addr: idDev, len: 20, write: true },
      { addr: s3Dev, len: 1, write: true },
    ]);
    q.kick();
    soc.run();
    expect(q.usedIdx).toBe(3);
    expect(soc.memory.read8(s2Pa)).toBe(VIRTIO_BLK_S.OK);
    expect(blk.flushCount).toBe(1);
    expect(blk.unflushedWrites).toBe(0);
    expect(soc.memory.read8(s3Pa)).toBe(VIRTIO_BLK_S.OK);
    const id = new Uint8Array(20);
    soc.memory.readBytes(idPa, id);
    expect(new TextDecoder().decode(id).replace(/\0+$/, "")).toBe("devref-sim-blk");
    expect(q.usedElem(2).len).toBe(21);
  });

  it("answers IOERR out of range or on a read-only disk, UNSUPP for unknown types and unnegotiated FLUSH", () => {
    const cases: [Parameters<typeof ready>[0], number, number, number, number][] = [
      [{ blk: { capacity: 8 } }, VIRTIO_BLK_T.IN, 7, 1024, VIRTIO_BLK_S.IOERR],
      [{}, VIRTIO_BLK_T.IN, 0, 100, VIRTIO_BLK_S.IOERR],
      [{ blk: { readOnly: true } }, VIRTIO_BLK_T.OUT, 0, 512, VIRTIO_BLK_S.IOERR],
      [{}, 99, 0, 0, VIRTIO_BLK_S.UNSUPP],
      [{ blk: { flush: false } }, VIRTIO_BLK_T.FLUSH, 0, 0, VIRTIO_BLK_S.UNSUPP],
    ];
    for (const [opts, type, sector, len, want] of cases) {
      const { soc, q, arena, blk } = ready(opts);
      const before = checksum(blk.image);
      const [hPa, hDev] = carve(arena, 16);
      const [, dDev] = carve(arena, Math.max(len, 1));
      const [sPa, sDev] = carve(arena, 1, 1);
      header(soc, hPa, type, sector);
      const segs = [{ addr: hDev, len: 16 }];
      if (len > 0)
        segs.push({ addr: dDev, len, ...(type === VIRTIO_BLK_T.IN ? { write: true } : {}) });
      segs.push({ addr: sDev, len: 1, write: true } as (typeof segs)[number]);
      q.add(segs);
      q.kick();
      soc.run();
      expect(soc.memory.read8(sPa)).toBe(want);
      expect(checksum(blk.image)).toBe(before);
    }
  });

  it("follows an indirect table and honours EVENT_IDX suppression", () => {
    const { soc, q, arena, blk } = ready();
    blk.image[0] = 0x5a;
    const [hPa, hDev] = carve(arena, 16);
    const [dPa, dDev] = carve(arena, 512);
    const [sPa, sDev] = carve(arena, 1, 1);
    const [tPa, tDev] = carve(arena, 48, 16);
    header(soc, hPa, VIRTIO_BLK_T.IN, 0);
    const desc = (i: number, addr: number, len: number, flags: number, next: number) => {
      soc.memory.write64(tPa + 16 * i, addr % 2 ** 32, Math.floor(addr / 2 ** 32));
      soc.memory.write32(tPa + 16 * i + 8, len);
      soc.memory.write32(tPa + 16 * i + 12, flags | (next << 16));
    };
    desc(0, hDev, 16, 1, 1);
    desc(1, dDev, 512, 3, 2);
    desc(2, sDev, 1, 2, 0);
    q.setUsedEvent(5); // the driver wants an interrupt only after used index 6
    q.add([{ addr: tDev, len: 48 }], [4]);
    q.kick();
    soc.run();
    expect(soc.memory.read8(sPa)).toBe(0);
    expect(soc.memory.read8(dPa)).toBe(0x5a);
    expect(q.usedElem(0).len).toBe(513);
    expect(soc.irq.isAsserted(M.INTX_BASE)).toBe(false);
  });

  it("sets DEVICE_NEEDS_RESET for a readable descriptor after a writable one, with a config interrupt", () => {
    const { soc, drv, q, arena } = ready();
    const [, hDev] = carve(arena, 16);
    const [, sDev] = carve(arena, 1, 1);
    q.add([
      { addr: sDev, len: 1, write: true },
      { addr: hDev, len: 16 },
    ]);
    q.kick();
    soc.run();
    expect(drv.status & VIRTIO_STATUS.DEVICE_NEEDS_RESET).toBe(VIRTIO_STATUS.DEVICE_NEEDS_RESET);
    expect(q.usedIdx).toBe(0);
    expect(soc.fabric.read8(drv.caps.isr)).toBe(2);
    // Further kicks are ignored until the driver resets.
    q.kick();
    soc.run();
    expect(q.usedIdx).toBe(0);
  });

  it("gives up (NEEDS_RESET) when an injected DMA error hits the ring", () => {
    const { soc, drv, q, arena } = ready();
    const [hPa, hDev] = carve(arena, 16);
    const [, dDev] = carve(arena, 512);
    const [sPa, sDev] = carve(arena, 1, 1);
    header(soc, hPa, VIRTIO_BLK_T.IN, 0);
    q.add([
      { addr: hDev, len: 16 },
      { addr: dDev, len: 512, write: true },
      { addr: sDev, len: 1, write: true },
    ]);
    soc.faults.inject({ kind: "dma-error", target: "vblk0" });
    q.kick();
    soc.run();
    expect(soc.memory.read8(sPa)).toBe(0);
    expect(q.usedIdx).toBe(0);
    expect(drv.status & VIRTIO_STATUS.DEVICE_NEEDS_RESET).toBe(VIRTIO_STATUS.DEVICE_NEEDS_RESET);
    expect(soc.fabric.read8(drv.caps.isr)).toBe(2);
    const dma = soc.trace().filter((r) => r.kind === "dma" && r.status !== 0);
    expect(dma.map((r) => (r.kind === "dma" ? r.status : -1))).toEqual([DMA_STATUS.BUS_ERROR]);
    // A reset and a fresh set-up bring it back.
    expect(drv.negotiate() & 8).toBe(8);
  });
});

describe("behind the DART, with MSI-X", () => {
  function viaDart() {
    const ref = createReferenceSoc({ seed: 5 });
    const { soc, dart } = ref;
    kernelDartReset(soc, dart);
    const arena = arenaFor(soc, dart);
    const drv = new TestVirtio(soc);
    drv.enable();
    // MSI-X: vector 0 config, vector 1 queue 0, both to the doorbell with data 0 and 1.
    drv.cw16(drv.caps.msix + 2, 0x8000);
    const table = M.WINDOW_BASE; // BAR1 at bus 0xc000_0000
    for (const v of [0, 1]) {
      soc.fabric.write32(table + 16 * v, M.MSI_DOORBELL);
      soc.fabric.write32(table + 16 * v + 4, 0);
      soc.fabric.write32(table + 16 * v + 8, v);
      soc.fabric.write32(table + 16 * v + 12, 0);
    }
    expect(drv.negotiate() & 8).toBe(8);
    drv.w16(16, 0);
    expect(drv.r16(16)).toBe(0);
    const q = drv.setupQueue(arena, 0, 8, 1);
    drv.w16(22, 0);
    expect(drv.r16(26)).toBe(1);
    drv.driverOk();
    return { ...ref, arena, drv, q };
  }

  it("reads the rings and buffers through IOVAs and signals vector 1", () => {
    const { soc, arena, q, blk } = viaDart();
    const got: number[] = [];
    soc.irq.connect(M.MSI_BASE + 1, (l) => got.push(l));
    blk!.image.fill(0x42, 0, 512);
    const [hPa, hDev] = carve(arena, 16);
    const [dPa, dDev] = carve(arena, 512);
    const [sPa, sDev] = carve(arena, 1, 1);
    expect(hDev).not.toBe(hPa); // IOVA ≠ PA
    header(soc, hPa, VIRTIO_BLK_T.IN, 0);
    q.add([
      { addr: hDev, len: 16 },
      { addr: dDev, len: 512, write: true },
      { addr: sDev, len: 1, write: true },
    ]);
    q.kick();
    soc.run();
    expect(soc.memory.read8(sPa)).toBe(0);
    expect(soc.memory.read8(dPa + 511)).toBe(0x42);
    expect(got).toEqual([M.MSI_BASE + 1]);
    expect(
      soc.trace().some((r) => r.kind === "iotlb" && r.action === "fill" && r.sid === M.PCIE_SID),
    ).toBe(true);
  });

  it("an unmapped data buffer faults in the DART and the request fails with IOERR", () => {
    const { soc, arena, q, dart } = viaDart();
    const [hPa, hDev] = carve(arena, 16);
    const [sPa, sDev] = carve(arena, 1, 1);
    header(soc, hPa, VIRTIO_BLK_T.IN, 0);
    q.add([
      { addr: hDev, len: 16 },
      { addr: 0x4000_0000, len: 512, write: true }, // never mapped
      { addr: sDev, len: 1, write: true },
    ]);
    q.kick();
    soc.run();
    expect(soc.memory.read8(sPa)).toBe(VIRTIO_BLK_S.IOERR);
    expect(dart.errorLatched).toBe(true);
    expect(errorRegs(dart).addrLo).toBe(0x4000_0000);
    expect(soc.irq.isAsserted(M.DART_IRQ)).toBe(true);
  });
});

describe("surprise removal", () => {
  it("mid-request: data written, no status byte, no used entry; registers read all-ones", () => {
    const { soc, drv, q, arena, blk, pcie } = ready();
    blk.image.fill(0x77, 0, 512);
    const [hPa, hDev] = carve(arena, 16);
    const [dPa, dDev] = carve(arena, 512);
    const [sPa, sDev] = carve(arena, 1, 1);
    soc.memory.write8(sPa, 0xee);
    header(soc, hPa, VIRTIO_BLK_T.IN, 0);
    q.add([
      { addr: hDev, len: 16 },
      { addr: dDev, len: 512, write: true },
      { addr: sDev, len: 1, write: true },
    ]);
    q.kick();
    expect(soc.step()).toBe(true); // the device takes the request and moves the data
    expect(soc.memory.read8(dPa)).toBe(0x77);
    pcie.surpriseRemove(0);
    soc.run();
    expect(soc.memory.read8(sPa)).toBe(0xee);
    expect(q.usedIdx).toBe(0);
    expect(drv.status).toBe(0xff);
    expect(soc.fabric.read8(drv.caps.isr)).toBe(0xff);
    expect(drv.r16(18)).toBe(0xffff);
    expect(soc.fabric.read32(drv.caps.device)).toBe(0xffff_ffff);
    expect(soc.fabric.read32(drv.caps.device + 4)).toBe(0xffff_ffff);
    expect(drv.c16(0)).toBe(0xffff);
    // A reset never reads back 0.
    drv.w8(20, 0);
    expect(drv.status).toBe(0xff);
    expect(blk.dma.write8(dPa, 1)).toBe(false);
    expect(blk.dma.status).toBe(DMA_STATUS.DEVICE_GONE);
  });

  it("by fault injection at a step: the run stops at the same place every time", () => {
    const run = (at: number) => {
      const { soc, q, arena } = ready();
      const [hPa, hDev] = carve(arena, 16);
      const [, dDev] = carve(arena, 512);
      const [sPa, sDev] = carve(arena, 1, 1);
      header(soc, hPa, VIRTIO_BLK_T.IN, 0);
      q.add([
        { addr: hDev, len: 16 },
        { addr: dDev, len: 512, write: true },
        { addr: sDev, len: 1, write: true },
      ]);
      const start = soc.stepCount;
      soc.faults.schedule({ step: start + at }, { kind: "unplug", target: "vblk0" });
      q.kick();
      soc.run();
      return {
        used: q.usedIdx,
        status: soc.memory.read8(sPa),
        steps: soc.stepCount - start,
        digest: soc.traceDigest(),
      };
    };
    const late = run(100);
    expect(late.used).toBe(1);
    const early = run(2); // step 1 is the kick; step 2 the device's first event
    expect(early.used).toBe(0);
    expect(run(2)).toEqual(early);
    // Steps of the run: the kick, the device taking the request, its look for more, the
    // completion. An unplug at any of them leaves the request without a used entry.
    const total = late.steps;
    expect(total).toBe(4);
    const outcomes = Array.from({ length: total + 1 }, (_, i) => run(i + 1).used);
    expect(outcomes).toEqual([0, 0, 0, 0, 1]);
  });

  it("after an orderly removal request the device keeps working", () => {
    const { soc, q, arena, pcie } = ready();
    pcie.requestRemoval(0);
    const [hPa, hDev] = carve(arena, 16);
    const [sPa, sDev] = carve(arena, 1, 1);
    header(soc, hPa, VIRTIO_BLK_T.FLUSH, 0);
    q.add([
      { addr: hDev, len: 16 },
      { addr: sDev, len: 1, write: true },
    ]);
    q.kick();
    soc.run();
    expect(soc.memory.read8(sPa)).toBe(0);
  });
});

describe("configuration change and determinism", () => {
  it("a resize bumps config_generation and sends a configuration interrupt", () => {
    const { soc, drv, blk } = ready();
    const gen = drv.r8(21);
    blk.resize(4096);
    expect(drv.r8(21)).toBe((gen + 1) & 0xff);
    expect(soc.fabric.read32(drv.caps.device)).toBe(4096);
    expect(soc.fabric.read8(drv.caps.isr)).toBe(2);
  });

  it("the same seed gives the same digest; another seed with jitter gives another", () => {
    const scenario = (seed: number) => {
      const { soc, q, arena } = ready({ seed, blk: { jitterNs: 50_000 } });
      for (let i = 0; i < 4; i++) {
        const [hPa, hDev] = carve(arena, 16);
        const [, dDev] = carve(arena, 512);
        const [, sDev] = carve(arena, 1, 1);
        header(soc, hPa, VIRTIO_BLK_T.IN, i);
        q.add([
          { addr: hDev, len: 16 },
          { addr: dDev, len: 512, write: true },
          { addr: sDev, len: 1, write: true },
        ]);
      }
      q.kick();
      soc.run();
      expect(q.usedIdx).toBe(4);
      return soc.traceDigest();
    };
    expect(scenario(1)).toBe(scenario(1));
    expect(scenario(1)).not.toBe(scenario(2));
  });

  it("refuses bad options", () => {
    const ref = createReferenceSoc({ blk: false });
    expect(ref.blk).toBe(null);
    expectCode(() => createReferenceSoc({ blk: { serial: "x".repeat(21) } }), "EINVAL");
    expectCode(() => createReferenceSoc({ blk: { image: new Uint8Array(100) } }), "EINVAL");
    expectCode(() => createReferenceSoc({ blk: { queueSize: 100 } }), "EINVAL");
  });
});
