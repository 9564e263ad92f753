//! The options of an RTKit firmware model and their validation (all of it before the
//! firmware touches its ASC).

import {
  argumentError,
  checkBoolean,
  checkInteger,
  checkObject,
  checkString,
} from "@devref/raw-device";
import type { ServiceConfig } from "./services.js";

/** A crashlog, syslog or IOReport buffer the firmware asks for. */
export interface RtkitBufferOption {
  /** Size in 4 KiB pages, 1–255 (the request's 8-bit SIZE field). */
  readonly pages: number;
  /**
   * The firmware's own address for it (4 KiB aligned, below 2^44): the request carries it
   * and the AP must map it and send no reply. Default 0: the AP allocates and replies.
   */
  readonly address?: number;
}

/** The OSLog buffer (its request counts bytes, and the address in 4 KiB units). */
export interface RtkitOslogOption {
  /** Size in bytes, 1 to 2^20 − 1. */
  readonly size: number;
  /** The firmware's own address (4 KiB aligned, below 2^48); default 0 (the AP allocates). */
  readonly address?: number;
}

/** What an {@link RtkitFirmware} is built with. Every field has a default. */
export interface RtkitFirmwareOptions {
  /** Lowest protocol version HELLO offers (default 11). */
  readonly minVersion?: number;
  /** Highest protocol version HELLO offers (default 12). */
  readonly maxVersion?: number;
  /**
   * System endpoints EPMAP announces besides 0 (default `[1, 2, 3, 4, 8]`). Those among
   * 1, 2, 3, 4 and 8 must be started before the firmware acknowledges IOP power ON.
   */
  readonly systemEndpoints?: readonly number[];
  /** The crashlog buffer (default 1 page); null for none. */
  readonly crashlog?: RtkitBufferOption | null;
  /** The syslog ring (default 2 pages); null for none. */
  readonly syslog?: RtkitBufferOption | null;
  /** The IOReport buffer (default 1 page); null for none. */
  readonly ioreport?: RtkitBufferOption | null;
  /** The OSLog buffer (default 0x2000 bytes); null for none. */
  readonly oslog?: RtkitOslogOption | null;
  /** Syslog ring entries, 1–255 (default 8). */
  readonly syslogEntries?: number;
  /** Bytes of text per syslog entry, 1–255 (default 0x80); each entry is 0x20 + this. */
  readonly syslogMessageSize?: number;
  /** Send the buffer requests only once the AP power state is ON (default false). */
  readonly buffersAfterApPowerOn?: boolean;
  /** Virtual time to handle each incoming message, in ns (default 1000). */
  readonly latencyNs?: number;
  /** Virtual time from a CPU start to HELLO, in ns (default 100 000). */
  readonly bootDelayNs?: number;
  /** The version string in crashlogs (default `RTKit-sim 1.0`). */
  readonly firmwareVersion?: string;
}

/** The validated options. */
export interface FirmwareConfig {
  readonly minVersion: number;
  readonly maxVersion: number;
  readonly systemEndpoints: readonly number[];
  readonly latencyNs: number;
  readonly bootDelayNs: number;
  readonly firmwareVersion: string;
  readonly services: ServiceConfig;
}

const W = "new RtkitFirmware";
const PAGE = 0x1000;

/**
 * Checks every option and fills in the defaults.
 *
 * **Errors:** `EINVAL` naming the first bad option.
 */
export function checkFirmwareOptions(o: RtkitFirmwareOptions): FirmwareConfig {
  checkObject(W, "options", o);
  const minVersion = checkInteger(W, "options.minVersion", o.minVersion ?? 11, 0, 0xffff);
  const maxVersion = checkInteger(W, "options.maxVersion", o.maxVersion ?? 12, minVersion, 0xffff);
  const eps = o.systemEndpoints ?? [1, 2, 3, 4, 8];
  if (!Array.isArray(eps)) {
    throw argumentError(W, "options.systemEndpoints", "an array of endpoint numbers", eps);
  }
  const seen = new Set<number>();
  for (const ep of eps) {
    checkInteger(W, "options.systemEndpoints[]", ep, 1, 0x1f);
    if (seen.has(ep)) throw argumentError(W, "options.systemEndpoints", "distinct endpoints", ep);
    seen.add(ep);
  }
  const sizes = [0, 0, 0, 0];
  const addresses = [0, 0, 0, 0];
  const names = ["crashlog", "syslog", "ioreport"] as const;
  const defaults = [1, 2, 1];
  for (let svc = 0; svc < 3; svc++) {
    const name = names[svc]!;
    const b = o[name] === undefined ? { pages: defaults[svc]! } : o[name];
    if (b === null) continue;
    checkObject(W, `options.${name}`, b);
    const pages = checkInteger(W, `options.${name}.pages`, b.pages, 1, 0xff);
    const addr = checkInteger(
      W,
      `options.${name}.address`,
      b.address ?? 0,
      0,
      2 ** 44 - pages * PAGE,
    );
    if (addr % PAGE !== 0) throw argumentError(W, `options.${name}.address`, "4 KiB aligned", addr);
    sizes[svc] = pages * PAGE;
    addresses[svc] = addr;
  }
  const os = o.oslog === undefined ? { size: 0x2000 } : o.oslog;
  if (os !== null) {
    checkObject(W, "options.oslog", os);
    sizes[3] = checkInteger(W, "options.oslog.size", os.size, 1, 0xf_ffff);
    const addr = checkInteger(W, "options.oslog.address", os.address ?? 0, 0, 2 ** 48 - 2 * PAGE);
    if (addr % PAGE !== 0) throw argumentError(W, "options.oslog.address", "4 KiB aligned", addr);
    addresses[3] = addr;
  }
  const syslogEntries = checkInteger(W, "options.syslogEntries", o.syslogEntries ?? 8, 1, 0xff);
  const syslogMessageSize = checkInteger(
    W,
    "options.syslogMessageSize",
    o.syslogMessageSize ?? 0x80,
    1,
    0xff,
  );
  if (sizes[1]! > 0 && syslogEntries * (0x20 + syslogMessageSize) > sizes[1]!) {
    throw argumentError(
      W,
      "options.syslogEntries",
      `at most ${Math.floor(sizes[1]! / (0x20 + syslogMessageSize))} entries of ` +
        `${0x20 + syslogMessageSize} bytes in a ${sizes[1]! / PAGE}-page syslog buffer`,
      syslogEntries,
    );
  }
  const afterApPowerOn = checkBoolean(
    W,
    "options.buffersAfterApPowerOn",
    o.buffersAfterApPowerOn ?? false,
  );
  return {
    minVersion,
    maxVersion,
    systemEndpoints: [...eps],
    latencyNs: checkInteger(W, "options.latencyNs", o.latencyNs ?? 1000, 0, 2 ** 40),
    bootDelayNs: checkInteger(W, "options.bootDelayNs", o.bootDelayNs ?? 100_000, 0, 2 ** 40),
    firmwareVersion: checkString(
      W,
      "options.firmwareVersion",
      o.firmwareVersion ?? "RTKit-sim 1.0",
    ),
    services: { sizes, addresses, syslogEntries, syslogMessageSize, afterApPowerOn },
  };
}
