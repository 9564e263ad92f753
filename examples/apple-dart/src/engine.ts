//! A DART client for the scenario and the tests: a platform driver for a plain DMA engine
//! behind a DART stream (its `iommus` names the DART). It only binds and lends its device,
//! so the work that needs a bound device — the DMA API — runs through a `devmCallback`, as
//! an interrupt handler or deferred work of a real driver would. The engine's transfers
//! themselves are the hardware's: a simulator's DMA master driven by whoever holds it.

import { definePlatformDriver, type PlatformDevice, type PlatformDriver } from "@devref/bus";
import type { BoundCallback } from "@devref/device-core";
import { dmaSetMaskAndCoherent } from "@devref/dma-iommu";
import {
  type Borrowed,
  type Bound,
  checkCallback,
  checkInteger,
  checkObject,
  checkString,
  type Static,
} from "@devref/raw-device";

/** The DT compatible the engine driver binds. */
export const DMA_ENGINE_COMPATIBLE = "devref,dma-engine";

/** Work given a Bound borrow of the engine (valid only during the call). */
export type EngineJob<R> = <S>(dev: Borrowed<PlatformDevice<Bound>, S>) => R;

/** What a bound engine keeps: the way back into its binding. */
export interface DmaEngineBinding {
  readonly work: BoundCallback<[EngineJob<void>], void>;
}

/** Options of {@link createDmaEngineDriver}. */
export interface DmaEngineDriverOptions {
  /** The engine's DMA address bits (`dma_set_mask_and_coherent`); default 32. */
  readonly maskBits?: number;
  /** Driver name; default `dma-engine`. */
  readonly name?: string;
}

/**
 * The engine driver and a way to run work on a bound engine.
 *
 * **Invariants:** a job runs only while its engine is bound, and its borrow ends with it.
 *
 * @example
 * ```ts
 * const addr = engines.run("engine0", (dev) => dmaMapSingle(dev, buf, 0x4000, DMA_TO_DEVICE));
 * ```
 */
export interface DmaEngineDriver {
  readonly driver: Static<PlatformDriver<DmaEngineBinding>>;
  /**
   * Runs `job` with a Bound borrow of the engine named `name`; returns its result, or
   * undefined when that engine is not bound.
   */
  run<R>(name: string, job: EngineJob<R>): R | undefined;
  /** Whether the engine named `name` is bound. */
  isBound(name: string): boolean;
}

/**
 * Makes the engine driver (one per machine, as its list of bound engines is its own).
 *
 * **Invariants:** `run` never calls `job` after the engine's binding ended.
 *
 * **Errors:** `EINVAL` for bad options; probe fails as `dma_set_mask_and_coherent` does.
 *
 * @example
 * ```ts
 * const engines = createDmaEngineDriver();
 * platform.registerDriver(engines.driver);
 * engines.run("engine0", (dev) => dmaMapSingle(dev, buf, 4096, DMA_TO_DEVICE));
 * ```
 */
export function createDmaEngineDriver(options: DmaEngineDriverOptions = {}): DmaEngineDriver {
  const where = "createDmaEngineDriver";
  checkObject(where, "options", options);
  const bits = checkInteger(where, "options.maskBits", options.maskBits ?? 32, 1, 64);
  const name =
    options.name === undefined
      ? "dma-engine"
      : checkString(where, "options.name", options.name, true);
  const bound = new Map<string, DmaEngineBinding>();
  const driver = definePlatformDriver<DmaEngineBinding>({
    name,
    ofMatchTable: [{ compatible: DMA_ENGINE_COMPATIBLE }],
    probe: (dev) => {
      dmaSetMaskAndCoherent(dev, bits);
      const work = dev.devmCallback(
        <S>(d: Borrowed<PlatformDevice<Bound>, S>, job: EngineJob<void>) => job(d),
        "dma-engine work",
      );
      const binding: DmaEngineBinding = { work };
      const devName = dev.name;
      bound.set(devName, binding);
      dev.devmAddAction(() => {
        if (bound.get(devName) === binding) bound.delete(devName);
      }, "dma-engine bound list");
      return binding;
    },
  });
  return {
    driver,
    run<R>(engine: string, job: EngineJob<R>): R | undefined {
      checkString("DmaEngineDriver.run", "engine", engine);
      checkCallback("DmaEngineDriver.run", "job", job);
      const b = bound.get(engine);
      if (b === undefined || !b.work.isActive) return undefined;
      let out: R | undefined;
      b.work(<S>(d: Borrowed<PlatformDevice<Bound>, S>) => {
        out = job(d);
      });
      return out;
    },
    isBound: (engine: string) =>
      bound.get(checkString("DmaEngineDriver.isBound", "engine", engine))?.work.isActive === true,
  };
}
