import type { Device } from "@devref/device-core";
import {
  type ARef,
  type Borrowed,
  type Bound,
  type Core,
  type DmaAddr,
  dmaAddr,
  withBorrow,
} from "@devref/raw-device";
import {
  createRtkit,
  decodeHello,
  devmRtkit,
  encodeHello,
  type Rtkit,
  type RtkitDma,
  type RtkitDmaBuffer,
  type RtkitIomem,
  type RtkitOps,
  type RtkitShmem,
} from "@devref/rtkit";
import { describe, expectTypeOf, it } from "vitest";
import type { TestDevice } from "./device.js";

declare const owned: ARef<TestDevice>;
declare const ownedDevice: ARef<Device>;
declare function inProbe(fn: <S>(dev: Borrowed<Device<Core>, S>) => void): void;
declare function inBound(fn: <S>(dev: Borrowed<Device<Bound>, S>) => void): void;
const transport = { send: (_ep: number, _msg0: bigint, _atomic: boolean): void => {} };

describe("what createRtkit and devmRtkit accept", () => {
  it("createRtkit takes an owned reference or a borrow of any device", () => {
    expectTypeOf(createRtkit(owned, { transport })).toEqualTypeOf<Rtkit>();
    expectTypeOf(createRtkit(ownedDevice, { transport })).toEqualTypeOf<Rtkit>();
    withBorrow(owned, (dev) => {
      createRtkit(dev, { transport });
    });
    inProbe((dev) => {
      createRtkit(dev, { transport });
    });
  });

  it("devmRtkit needs a Bound borrow: what probe receives", () => {
    inProbe((dev) => {
      expectTypeOf(devmRtkit(dev, { transport })).toEqualTypeOf<Rtkit>();
    });
    inBound((dev) => {
      devmRtkit(dev, { transport });
    });
    // @ts-expect-error an owned reference proves nothing about a binding, so devres cannot be tied to one
    devmRtkit(ownedDevice, { transport });
    withBorrow(ownedDevice, (dev) => {
      // @ts-expect-error a Normal borrow does not prove a driver is bound either
      devmRtkit(dev, { transport });
    });
  });

  it("the instance is not a device: it cannot be kept where a device reference is expected", () => {
    const rtk = createRtkit(owned, { transport });
    // @ts-expect-error an Rtkit is not an owned device reference
    const kept: ARef<TestDevice> = rtk;
    void kept;
  });
});

describe("the instance and its options", () => {
  it("has promise-returning calls and read-only state", () => {
    const rtk = createRtkit(owned, { transport });
    expectTypeOf(rtk.boot()).toEqualTypeOf<Promise<void>>();
    expectTypeOf(rtk.sendMessage(0x20, 1n, { atomic: true })).toEqualTypeOf<Promise<void>>();
    expectTypeOf(rtk.receive(0x20, 1n)).toEqualTypeOf<void>();
    expectTypeOf(rtk.isRunning).toEqualTypeOf<boolean>();
    // @ts-expect-error state is read-only
    rtk.isRunning = true;
    // @ts-expect-error msg0 is a bigint: a number loses bits above 2^53
    rtk.receive(0x20, 1);
    expectTypeOf(rtk).toMatchTypeOf<Disposable>();
  });

  it("types the ops like struct apple_rtkit_ops", () => {
    const ops: RtkitOps = {
      recvMessageEarly: (_ep, _msg0) => true,
      shmemSetup: (b) => {
        expectTypeOf(b.iova).toEqualTypeOf<DmaAddr>();
        // @ts-expect-error the size is the firmware's request, not the driver's to change
        b.size = 4;
      },
    };
    void ops;
    // @ts-expect-error recvMessageEarly answers whether it consumed the message
    const bad: RtkitOps = { recvMessageEarly: () => 1 };
    void bad;
    expectTypeOf<RtkitShmem["bytes"]>().toEqualTypeOf<Uint8Array | null>();
    expectTypeOf<RtkitShmem["iomem"]>().toEqualTypeOf<RtkitIomem | null>();
  });

  it("takes an allocator's buffer with a direct view or a copying accessor", () => {
    const withIomem: RtkitDma["alloc"] = () => ({
      iova: dmaAddr(0x1000),
      iomem: { readBytes: (_offset: number, _dest: Uint8Array) => {} },
    });
    void withIomem;
    expectTypeOf<ReturnType<RtkitDma["alloc"]>>().toEqualTypeOf<RtkitDmaBuffer | null>();
  });

  it("wants branded DMA addresses from the allocator", () => {
    const alloc: RtkitDma["alloc"] = (n) => ({
      // @ts-expect-error a plain number is not a DmaAddr: mint one with dmaAddr()
      iova: 0x1000,
      bytes: new Uint8Array(n),
    });
    void alloc;
  });
});

describe("codecs", () => {
  it("decode to typed fields and encode from them", () => {
    const hello = decodeHello(0n);
    expectTypeOf(hello.minVer).toEqualTypeOf<number>();
    expectTypeOf(hello.reserved).toEqualTypeOf<bigint>();
    // @ts-expect-error decoded messages are read-only
    hello.minVer = 3;
    // @ts-expect-error every field is needed
    encodeHello({ minVer: 11 });
    expectTypeOf(encodeHello({ minVer: 11, maxVer: 12 })).toEqualTypeOf<bigint>();
  });
});
