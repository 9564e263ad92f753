import { DevrefError, type Errno } from "@devref/raw-device";
import { expect } from "vitest";
import {
  DeviceModel,
  type DmaPort,
  type IrqSource,
  type MmioHandler,
  type MmioPort,
  type MmioWidth,
  type Soc,
} from "../src/index.js";

/** Asserts that `fn` throws a DevrefError with `code`, and returns it. */
export function expectCode(fn: () => unknown, code: Errno): DevrefError {
  let caught: unknown;
  try {
    fn();
  } catch (e) {
    caught = e;
  }
  if (!(caught instanceof DevrefError))
    throw new Error(`expected a DevrefError ${code}, got ${String(caught)}`);
  expect(caught.code).toBe(code);
  return caught;
}

/**
 * A small platform model for core tests: a scratch register file at 0x00..0x3c, a
 * level interrupt driven by register 0x40 (write 1 to raise, 0 to lower), and a DMA
 * engine: write an address to 0x44 (low) and 0x54 (high), a length to 0x48, then 1 (copy memory to the buffer
 * register file at 0x100) or 2 (the other way) to 0x4c; 0x50 reads the last DMA status.
 */
export class ToyDevice extends DeviceModel implements MmioHandler {
  readonly port: MmioPort;
  readonly regs: Uint32Array = new Uint32Array(0x400 / 4);
  readonly dma: DmaPort = this.addDmaMaster();
  private readonly line: IrqSource;

  constructor(soc: Soc, name: string, base: number, irq: number) {
    soc.fabric.checkFree(name, base, 0x400);
    super(soc, name, "toy");
    this.port = this.addPort(name, 0x400, this);
    this.line = this.addIrq(irq);
    soc.fabric.map(base, this.port, name);
  }

  mmioRead(offset: number, width: MmioWidth): number {
    const word = this.regs[offset >>> 2]!;
    const shift = (offset & 3) * 8;
    return width === 4 ? word : (word >>> shift) & (width === 1 ? 0xff : 0xffff);
  }

  mmioWrite(offset: number, width: MmioWidth, value: number): void {
    if (width !== 4) return;
    this.regs[offset >>> 2] = value;
    if (offset === 0x40) this.line.set(value !== 0);
    if (offset === 0x4c) {
      const addr = this.regs[0x54 >>> 2]! * 0x1_0000_0000 + this.regs[0x44 >>> 2]!;
      const len = this.regs[0x48 >>> 2]!;
      const buf = new Uint8Array(this.regs.buffer, 0x100, len);
      const ok = value === 1 ? this.dma.read(addr, buf) : this.dma.write(addr, buf);
      this.regs[0x50 >>> 2] = ok ? 0 : this.dma.status;
    }
  }
}
