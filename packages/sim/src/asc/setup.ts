//! One call that puts an Apple SMC on a SoC the way the t8103 device tree describes it:
//! the ASC block, its SRAM, an RTKit firmware left running by the bootloader, and the SMC
//! endpoint.

import {
  argumentError,
  checkInstance,
  checkInteger,
  checkObject,
  checkString,
  DevrefError,
} from "@devref/raw-device";
import { Soc } from "../soc.js";
import { RtkitFirmware } from "./firmware.js";
import { checkFirmwareOptions, type RtkitFirmwareOptions } from "./firmware-options.js";
import { AscMailbox, type AscMailboxOptions, checkAscOptions } from "./mailbox.js";
import { AppleSmc, type AppleSmcOptions, checkSmcOptions } from "./smc.js";

/** What {@link createAppleSmc} takes. */
export interface AppleSmcSetup {
  /** First of the mailbox's four interrupt lines (send-empty … recv-not-empty). */
  readonly irq: number;
  /** Model name (default `smc`); the SRAM is named `<name>-sram`. */
  readonly name?: string;
  /** ASC base (default 0x2_3e40_0000; the mailbox is at +0x8000). */
  readonly base?: number;
  /** SRAM base (default 0x2_3fe0_0000). */
  readonly sramBase?: number;
  /** SRAM size (default 0x10_0000). */
  readonly sramSize?: number;
  /** Mailbox FIFO depth (default 16). */
  readonly fifoDepth?: number;
  /** Firmware options, over the SMC defaults (system endpoints 1–4, buffers in SRAM). */
  readonly firmware?: RtkitFirmwareOptions;
  /** SMC options other than the SRAM range. */
  readonly smc?: Omit<AppleSmcOptions, "sramBase" | "sramSize">;
}

/** What {@link createAppleSmc} made. */
export interface AppleSmcParts {
  readonly asc: AscMailbox;
  readonly firmware: RtkitFirmware;
  readonly smc: AppleSmc;
}

/**
 * Adds an Apple SMC to `soc`: SRAM mapped with `addMemory`, an {@link AscMailbox} whose
 * coprocessor is already running (asleep until the AP's wake), an {@link RtkitFirmware}
 * whose crashlog (SRAM + 0x8000, 1 page), IOReport (+0x9000, 1 page) and syslog (+0xa000,
 * 1 page) buffers live in SRAM as the SMC driver requires, and an {@link AppleSmc} on
 * endpoint 0x20 with its shared buffer at the start of SRAM.
 *
 * **Errors:** `EINVAL` for a `soc` that is not a {@link Soc} or bad options; `EBUSY` when
 * an address range is taken; `EEXIST`
 * for a taken name. All are checked first: a refused setup adds nothing.
 *
 * @example
 * ```ts
 * const { asc, firmware, smc } = createAppleSmc(soc, { irq: 40 });
 * // the AP: mask line 40, connect 43, write SET_IOP_PWR_STATE(INIT) to the mailbox ...
 * ```
 */
export function createAppleSmc(soc: Soc, setup: AppleSmcSetup): AppleSmcParts {
  const W = "createAppleSmc";
  checkInstance(W, "soc", soc, Soc);
  checkObject(W, "setup", setup);
  const name = checkString(W, "setup.name", setup.name ?? "smc", true);
  const sramSize = checkInteger(
    W,
    "setup.sramSize",
    setup.sramSize ?? 0x10_0000,
    0x10_000,
    2 ** 40,
  );
  const sramBase = checkInteger(
    W,
    "setup.sramBase",
    setup.sramBase ?? 0x2_3fe0_0000,
    0,
    2 ** 52 - sramSize,
  );
  if (sramBase % 0x1000 !== 0) throw argumentError(W, "setup.sramBase", "4 KiB aligned", sramBase);
  const ascOptions: AscMailboxOptions = {
    name,
    base: setup.base ?? 0x2_3e40_0000,
    irq: setup.irq,
    running: true,
    ...(setup.fifoDepth === undefined ? {} : { fifoDepth: setup.fifoDepth }),
  };
  const fwOptions: RtkitFirmwareOptions = {
    systemEndpoints: [1, 2, 3, 4],
    crashlog: { pages: 1, address: sramBase + 0x8000 },
    ioreport: { pages: 1, address: sramBase + 0x9000 },
    syslog: { pages: 1, address: sramBase + 0xa000 },
    oslog: null,
    ...setup.firmware,
  };
  const smcOptions: AppleSmcOptions = { ...setup.smc, sramBase, sramSize };
  // Everything is checked before anything is added, so a refused setup leaves the SoC as it was.
  const asc = checkAscOptions(soc, ascOptions);
  checkFirmwareOptions(fwOptions);
  checkSmcOptions(smcOptions);
  const clash = soc
    .memoryMap()
    .find((r) => r.base < sramBase + sramSize && sramBase < r.base + r.size);
  const ascEnd = asc.base + 0xc000;
  if (clash !== undefined || (asc.base < sramBase + sramSize && sramBase < ascEnd)) {
    throw new DevrefError(
      "EBUSY",
      `createAppleSmc: the SRAM at 0x${sramBase.toString(16)} overlaps ` +
        `'${clash?.name ?? name}': pick a free range (see soc.memoryMap())`,
    );
  }
  soc.addMemory(`${name}-sram`, sramBase, sramSize);
  const mailbox = new AscMailbox(soc, ascOptions);
  const firmware = new RtkitFirmware(mailbox, fwOptions);
  const smc = new AppleSmc(firmware, smcOptions);
  return { asc: mailbox, firmware, smc };
}
