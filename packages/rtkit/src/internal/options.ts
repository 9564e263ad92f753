//! Checks createRtkit's options once, before anything is taken, and keeps what it needs:
//! the kernel's ops are const, so later changes to the caller's objects are not seen.

import { checkCallback, checkObject } from "@devref/raw-device";
import type {
  RtkitDma,
  RtkitLogLevel,
  RtkitOps,
  RtkitOptions,
  RtkitShmem,
  RtkitTimers,
  RtkitTransport,
} from "../types.js";

/** The checked options, with the callbacks taken out of their objects. */
export interface Config {
  readonly transport: RtkitTransport;
  readonly send: RtkitTransport["send"];
  readonly poll: (() => void) | null;
  readonly ops: RtkitOps;
  readonly recvMessage: ((ep: number, msg0: bigint) => void) | null;
  readonly recvMessageEarly: ((ep: number, msg0: bigint) => boolean) | null;
  readonly crashed: ((crashlog: Uint8Array | null) => void) | null;
  readonly shmemSetup: ((buffer: RtkitShmem) => void) | null;
  readonly shmemDestroy: ((buffer: RtkitShmem) => void) | null;
  readonly dma: RtkitDma | null;
  readonly timers: RtkitTimers;
  readonly log: ((level: RtkitLogLevel, text: string) => void) | null;
  readonly schedule: (run: () => void) => void;
}

const globalTimers: RtkitTimers = {
  setTimeout: (fn, ms) => setTimeout(fn, ms),
  // SAFETY: the handle came from the setTimeout above, so it is a Node timeout.
  clearTimeout: (handle) => clearTimeout(handle as ReturnType<typeof setTimeout>),
};

function optionalCallback<F extends (...args: never[]) => unknown>(
  where: string,
  owner: object,
  name: string,
  value: F | undefined,
): F | null {
  if (value === undefined) return null;
  checkCallback(where, name, value);
  // SAFETY: binding `this` keeps the function's parameters and result, so it is still an F.
  return value.bind(owner) as F;
}

/**
 * Validates `options` for `where`.
 *
 * **Errors:** `EINVAL` naming the first option that is missing or of the wrong kind.
 */
export function readOptions(where: string, options: RtkitOptions): Config {
  checkObject(where, "options", options);
  const transport = checkObject(where, "options.transport", options.transport);
  const send = checkCallback(where, "options.transport.send", transport.send);
  const poll = optionalCallback(where, transport, "options.transport.poll", transport.poll);
  const ops: RtkitOps =
    options.ops === undefined ? {} : checkObject(where, "options.ops", options.ops);
  const recvMessage = optionalCallback(where, ops, "options.ops.recvMessage", ops.recvMessage);
  const recvMessageEarly = optionalCallback(
    where,
    ops,
    "options.ops.recvMessageEarly",
    ops.recvMessageEarly,
  );
  const crashed = optionalCallback(where, ops, "options.ops.crashed", ops.crashed);
  const shmemSetup = optionalCallback(where, ops, "options.ops.shmemSetup", ops.shmemSetup);
  const shmemDestroy = optionalCallback(where, ops, "options.ops.shmemDestroy", ops.shmemDestroy);
  let dma: RtkitDma | null = null;
  if (options.dma !== undefined) {
    const d = checkObject(where, "options.dma", options.dma);
    const alloc = checkCallback(where, "options.dma.alloc", d.alloc).bind(d);
    const free = checkCallback(where, "options.dma.free", d.free).bind(d);
    dma = { alloc, free };
  }
  let timers = globalTimers;
  if (options.timers !== undefined) {
    const t = checkObject(where, "options.timers", options.timers);
    timers = {
      setTimeout: checkCallback(where, "options.timers.setTimeout", t.setTimeout).bind(t),
      clearTimeout: checkCallback(where, "options.timers.clearTimeout", t.clearTimeout).bind(t),
    };
  }
  const log = options.log === undefined ? null : checkCallback(where, "options.log", options.log);
  const schedule =
    options.schedule === undefined
      ? // Called as a method of the options object: a browser's queueMicrotask throws
        // "Illegal invocation" unless called on the global, so it is wrapped.
        (run: () => void) => queueMicrotask(run)
      : checkCallback(where, "options.schedule", options.schedule);
  return {
    transport,
    send: send.bind(transport),
    poll,
    ops,
    recvMessage,
    recvMessageEarly,
    crashed,
    shmemSetup,
    shmemDestroy,
    dma,
    timers,
    log,
    schedule,
  };
}
