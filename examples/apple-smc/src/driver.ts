//! C source: drivers/mfd/macsmc.c (apple_smc_probe, apple_smc_driver),
//! drivers/platform/apple/smc_rtkit.c (macsmc-rtkit)
//!
//! The platform driver: probe maps the ASC's CPU window, the SRAM and the mailbox, makes
//! the mailbox transport and the RTKit client (devm), wakes the firmware, starts the SMC
//! endpoint, INITIALIZEs, reads `#KEY` and turns notifications on.

import { definePlatformDriver, type PlatformDevice, type PlatformDriver } from "@devref/bus";
import { devErrProbe } from "@devref/device-core";
import { dmaSetMaskAndCoherent } from "@devref/dma-iommu";
import {
  type Borrowed,
  type Core,
  checkBoolean,
  checkCallback,
  checkInteger,
  checkObject,
  checkString,
  DevrefError,
  type Static,
} from "@devref/raw-device";
import { devmRtkit, type RtkitTimers } from "@devref/rtkit";
import { probeBringUp, recover, shmemDestroy, shmemSetup } from "./internal/boot.js";
import { SmcCore } from "./internal/core.js";
import { crashed, recv, recvEarly } from "./internal/rtkit-ops.js";
import { AscMailboxChannel } from "./mailbox.js";
import { coherentRtkitDma, SramWindow } from "./shmem.js";
import { AppleSmc } from "./smc.js";

/** What {@link createAppleSmcDriver} takes. */
export interface AppleSmcDriverOptions {
  /**
   * The machine's timers, in milliseconds (on the simulator, `soc.events`): the 500 ms
   * command and mailbox timeouts and RTKit's 1000 ms waits run on them.
   */
  readonly timers: RtkitTimers;
  /** The driver's name (default `macsmc`). */
  readonly name?: string;
  /**
   * Restart the firmware after a crash (default true). False keeps the kernel's behaviour:
   * every command fails with `EIO` until the driver is rebound.
   */
  readonly recover?: boolean;
  /** Restarts allowed per binding (default 3). */
  readonly maxRecoveries?: number;
}

/** The driver data of one binding. */
export interface AppleSmcBinding {
  readonly smc: AppleSmc;
}

/** A defined SMC driver and the clients of the devices it is bound to. */
export interface AppleSmcDriver {
  /** The platform driver, to register on a platform bus. */
  readonly driver: Static<PlatformDriver<AppleSmcBinding>>;
  /** The client of bound device `deviceName`, or null. */
  client(deviceName: string): AppleSmc | null;
  /** The clients of every bound device, in bind order. */
  clients(): AppleSmc[];
  /** Calls `handler` with each new client as its device binds; returns the unsubscribe. */
  onBind(handler: (smc: AppleSmc) => void): () => void;
}

/** The resources the driver needs, by name: the binding's `reg-names` plus the inline mailbox. */
const RES_CPU = "smc";
const RES_SRAM = "sram";
const RES_MBOX = "mbox";
/** Interrupt indices in the binding's order: send-empty, send-not-empty, recv-empty, recv-not-empty. */
const IRQ_SEND_EMPTY = 0;
const IRQ_RECV_NOT_EMPTY = 3;
/** Address bits of the ASC's DMA: RTKit's buffer replies carry 44. */
const DMA_BITS = 44;

function resourceIndex<S>(dev: Borrowed<PlatformDevice<Core>, S>, name: string): number {
  for (let i = 0; i < dev.resourceCount; i++) if (dev.resource(i).name === name) return i;
  throw devErrProbe(
    dev,
    "ENODEV",
    `no '${name}' memory resource: this driver drives the ASC mailbox itself and needs the SMC described with mailbox: "inline"`,
  );
}

/**
 * Defines the Apple SMC driver (`apple,t8103-smc`, `apple,smc`) for one machine's timers.
 *
 * The device needs three memory resources — `smc` (the ASC's CPU-control window), `sram`
 * and `mbox` (the mailbox window) — and the mailbox's four interrupts, as
 * `describeSoc(soc, { mailbox: "inline" })` gives them. Probe fails with the first error of
 * the bring-up (`ETIME` from RTKit, `ETIMEDOUT` from INITIALIZE, `EIO` for a shared buffer
 * outside SRAM, `ENODEV` for missing resources or gone hardware), and quiesces a firmware it
 * woke before failing.
 *
 * **Invariants:** each binding holds one RTKit client (its device reference labelled
 * `rtkit` in `holders()`), given back at unbind with every coherent buffer, interrupt and
 * mapping; clients of unbound devices reject every call with `ENODEV`.
 *
 * **Errors:** `EINVAL` for bad options.
 *
 * @example
 * ```ts
 * const smcDriver = createAppleSmcDriver({ timers: soc.events });
 * platform.registerDriver(smcDriver.driver);
 * using fw = describeSoc(soc, { platform, mailbox: "inline" });
 * await soc.settle(); // probe: wake, INITIALIZE, #KEY, NTAP
 * const smc = smcDriver.client("smc")!;
 * await settleUntil(soc, smc.readKey("TB0T"));
 * ```
 */
export function createAppleSmcDriver(options: AppleSmcDriverOptions): AppleSmcDriver {
  const W = "createAppleSmcDriver";
  checkObject(W, "options", options);
  const timers = checkObject(W, "options.timers", options.timers);
  checkCallback(W, "options.timers.setTimeout", timers.setTimeout);
  checkCallback(W, "options.timers.clearTimeout", timers.clearTimeout);
  const name = checkString(W, "options.name", options.name ?? "macsmc", true);
  const recoverOn = checkBoolean(W, "options.recover", options.recover ?? true);
  const maxRecoveries = checkInteger(
    W,
    "options.maxRecoveries",
    options.maxRecoveries ?? 3,
    0,
    1000,
  );
  const bound = new Map<string, AppleSmc>();
  const bindHandlers = new Set<(smc: AppleSmc) => void>();

  const driver = definePlatformDriver<AppleSmcBinding>({
    name,
    ofMatchTable: [{ compatible: "apple,t8103-smc" }, { compatible: "apple,smc" }],
    probe: async (dev) => {
      const devName = dev.name;
      const machine = dev.machine;
      const log = (level: "err" | "warn" | "info" | "dbg", text: string): void =>
        machine.log(level, devName, name, text);
      const cpuRes = resourceIndex(dev, RES_CPU);
      const sramRes = dev.resource(resourceIndex(dev, RES_SRAM));
      const mboxRes = resourceIndex(dev, RES_MBOX);
      const cpu = dev.ioremapResource(cpuRes);
      const sramRegs = dev.ioremapResource(resourceIndex(dev, RES_SRAM));
      const mboxRegs = dev.ioremapResource(mboxRes);
      try {
        dmaSetMaskAndCoherent(dev, DMA_BITS);
      } catch (e) {
        // Without a DMA layer the firmware can still keep its buffers in SRAM.
        log("dbg", `no ${DMA_BITS}-bit DMA mask (${String(e)}); buffers only in SRAM`);
      }
      const core = new SmcCore({
        name: devName,
        log,
        timers,
        sram: new SramWindow(sramRegs, sramRes.start, sramRes.size),
        cpu,
        recover: recoverOn,
        maxRecoveries,
      });
      dev.devmAddAction(() => core.unbound(), "smc commands");
      core.timeoutBound = dev.devmCallback((_d, id: number) => core.timeout(id), "smc timeout");
      core.recoverBound = dev.devmCallback(() => recover(core), "smc restart");
      core.mailbox = new AscMailboxChannel(dev, {
        regs: mboxRegs,
        sendEmptyIrq: IRQ_SEND_EMPTY,
        recvNotEmptyIrq: IRQ_RECV_NOT_EMPTY,
        timers,
        receive: (ep, msg0) => core.rtk.receive(ep, msg0),
        log,
        onGone: () => core.gone(),
      });
      const dma = coherentRtkitDma(dev);
      const early = dev.devmCallback((_d, ep: number, msg0: bigint) => recvEarly(core, ep, msg0));
      const late = dev.devmCallback((_d, ep: number, msg0: bigint) => recv(core, ep, msg0));
      const onCrash = dev.devmCallback((_d, copy: Uint8Array | null) => crashed(core, copy));
      core.rtk = devmRtkit(dev, {
        transport: core.mailbox.transport,
        ops: {
          // After unbind nothing is delivered; a message then counts as consumed.
          recvMessageEarly: (ep, msg0) => early(ep, msg0) ?? true,
          recvMessage: (ep, msg0) => {
            late(ep, msg0);
          },
          crashed: (copy) => {
            onCrash(copy);
          },
          shmemSetup: (b) => shmemSetup(core, dma, b),
          shmemDestroy: (b) => shmemDestroy(dma, b),
        },
        timers,
        log,
        schedule: (run) => machine.scheduler.queue(run),
      });
      try {
        await probeBringUp(core);
      } catch (e) {
        // Asahi's backend: shut the firmware down if it is not completely wedged.
        if (core.rtk.isRunning) await core.rtk.quiesce().catch(() => {});
        const err = e instanceof DevrefError ? e : new DevrefError("EIO", String(e), { cause: e });
        throw devErrProbe(dev, err, `SMC failed to start: ${err.message}`);
      }
      const smc = new AppleSmc(core);
      bound.set(devName, smc);
      dev.devmAddAction(() => {
        if (bound.get(devName) === smc) bound.delete(devName);
      }, "smc client");
      log("info", `SMC up: ${core.keyCount} keys`);
      for (const h of [...bindHandlers]) {
        try {
          h(smc);
        } catch (e) {
          log("err", `an onBind handler threw: ${String(e)}`);
        }
      }
      return { smc };
    },
  });

  return {
    driver,
    client(deviceName: string): AppleSmc | null {
      checkString("AppleSmcDriver.client", "deviceName", deviceName);
      return bound.get(deviceName) ?? null;
    },
    clients(): AppleSmc[] {
      return [...bound.values()];
    },
    onBind(handler: (smc: AppleSmc) => void): () => void {
      checkCallback("AppleSmcDriver.onBind", "handler", handler);
      const h = (smc: AppleSmc): void => handler(smc);
      bindHandlers.add(h);
      return () => {
        bindHandlers.delete(h);
      };
    },
  };
}
