// One device, one firmware, one client: what most tests start from.
import type { ARef } from "@devref/raw-device";
import { createRtkit, type Rtkit, type RtkitOps, type RtkitOptions } from "@devref/rtkit";
import { makeDevice, type TestDevice } from "./device.js";
import { type FirmwareConfig, ScriptedFirmware } from "./firmware.js";
import { LogCollector } from "./log.js";
import { TestDma } from "./memory.js";
import { ManualTimers } from "./timers.js";

export interface Rig {
  readonly dev: ARef<TestDevice>;
  readonly rtk: Rtkit;
  readonly fw: ScriptedFirmware;
  readonly dma: TestDma;
  readonly timers: ManualTimers;
  readonly logs: LogCollector;
  /** Application messages recvMessage got, in order. */
  readonly app: [number, bigint][];
  /** Crashlog copies ops.crashed got. */
  readonly crashes: (Uint8Array | null)[];
}

export function makeRig(
  config: FirmwareConfig = {},
  ops: RtkitOps = {},
  extra: Partial<RtkitOptions> = {},
): Rig {
  const { dev } = makeDevice("asc0");
  const fw = new ScriptedFirmware(config);
  const dma = new TestDma();
  const timers = new ManualTimers();
  const logs = new LogCollector();
  const app: [number, bigint][] = [];
  const crashes: (Uint8Array | null)[] = [];
  const rtk = createRtkit(dev, {
    transport: fw.transport,
    ops: {
      recvMessage: (ep, msg0) => app.push([ep, msg0]),
      crashed: (log) => crashes.push(log),
      ...ops,
    },
    dma,
    timers,
    log: logs.sink,
    ...extra,
  });
  fw.attach(rtk);
  return { dev, rtk, fw, dma, timers, logs, app, crashes };
}

/** Starts the firmware and boots; resolves once booted. */
export async function booted(config: FirmwareConfig = {}, ops: RtkitOps = {}): Promise<Rig> {
  const rig = makeRig(config, ops);
  rig.fw.start();
  await rig.rtk.boot();
  await rig.rtk.settled();
  return rig;
}

/** The outcome of a promise once the instance has settled: "ok" or the error code. */
export async function outcome(p: Promise<unknown>, rtk: Rtkit): Promise<string> {
  let result = "pending";
  p.then(
    () => {
      result = "ok";
    },
    (e: unknown) => {
      result = (e as { code?: string }).code ?? String(e);
    },
  );
  await rtk.settled();
  return result;
}
