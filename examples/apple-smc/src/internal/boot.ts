//! C source: drivers/mfd/macsmc.c (apple_smc_probe, apple_smc_rtkit_shmem_setup,
//! apple_smc_rtkit_crashed)
//!
//! Bringing the SMC up — at probe, and again after a crash — and the RTKit shared-buffer
//! callbacks.

import { DevrefError } from "@devref/raw-device";
import type { RtkitShmem } from "@devref/rtkit";
import { SMC_ENDPOINT } from "../protocol.js";
import type { CoherentRtkitDma } from "../shmem.js";
import type { SmcCore } from "./core.js";
import { readKeyCount, setNotifications } from "./keys.js";

/**
 * Wake (or restart) the firmware, start the SMC endpoint, INITIALIZE, read `#KEY`, and
 * turn notifications on if `notify`. `wake`: the kernel's apple_rtkit_wake; otherwise a
 * CPU restart.
 */
export async function bringUp(core: SmcCore, wake: boolean, notify: boolean): Promise<void> {
  if (wake) await core.rtk.wake();
  else await core.restart();
  await core.rtk.startEp(SMC_ENDPOINT);
  await core.initialize();
  core.keyCount = await readKeyCount(core);
  if (notify) {
    try {
      await setNotifications(core, true);
    } catch (e) {
      // The kernel ignores this write's result; the SMC works without notifications.
      core.log("warn", `could not enable notifications (NTAP): ${String(e)}`);
    }
  }
  // A crash (or a removal) while enabling notifications leaves nothing running.
  if (core.stage !== "initialized") throw core.stageError();
  core.setStage("running");
}

/**
 * Probe's bring-up: wake as the kernel does, and when that does not bring the SMC up (no
 * handshake because the firmware was left running, a crash or silence during boot) restart
 * its CPU once and try again. Nothing is retried once the hardware is gone.
 */
export async function probeBringUp(core: SmcCore): Promise<void> {
  try {
    try {
      await bringUp(core, true, true);
    } catch (e) {
      if (core.mailbox.checkGone() || (e instanceof DevrefError && e.code === "ENODEV")) throw e;
      core.log(
        "warn",
        `the SMC did not come up after wake (${e instanceof DevrefError ? e.code : String(e)}); restarting its CPU`,
      );
      await bringUp(core, false, true);
    }
  } catch (e) {
    // A wait that timed out because the hardware went away reports the removal.
    throw core.mailbox.checkGone() ? core.stageError() : e;
  } finally {
    core.probing = false;
  }
}

/**
 * After a crash: reinit RTKit, restart the coprocessor's CPU and bring the SMC up again,
 * until it runs, a restart fails some other way, or `maxRecoveries` is spent. The kernel
 * leaves a crashed SMC failing every command with `-EIO`; this driver restarts it.
 */
export async function recover(core: SmcCore): Promise<void> {
  if (core.recovering || core.stopping) return;
  core.recovering = true;
  try {
    while (
      core.stage === "crashed" &&
      !core.stopping &&
      core.recoverEnabled &&
      core.recoveryAttempts < core.maxRecoveries
    ) {
      core.recoveryAttempts++;
      core.setStage("recovering");
      try {
        await bringUp(core, false, core.notifications);
        core.recoveries++;
        core.log("info", `SMC restarted after a crash (${core.recoveries} this binding)`);
        return;
      } catch (e) {
        if (core.isDead) return;
        // Crashed again while restarting: the loop tries once more (if attempts are left).
        if (core.stage === "crashed") continue;
        core.setStage("failed");
        core.log("err", `could not restart the SMC after its crash: ${String(e)}`);
        return;
      }
    }
  } finally {
    core.recovering = false;
  }
  if (core.stage === "crashed") {
    core.log("err", `giving up on the SMC after ${core.recoveryAttempts} restarts`);
    core.setStage("failed");
  }
}

/**
 * shmem_setup: a buffer the firmware keeps in SRAM is mapped there (and gets no reply);
 * one the firmware wants the AP to allocate comes from coherent DMA memory. (The kernel's
 * SMC driver refuses the second kind with "RTKit wants a RAM buffer".)
 */
export function shmemSetup(core: SmcCore, dma: CoherentRtkitDma, b: RtkitShmem): void {
  if (b.iova !== 0) {
    if (!core.sram.contains(b.iova, b.size)) {
      const end = b.iova + b.size - 1;
      core.log(
        "err",
        `RTKit buffer request outside SRAM region: [0x${b.iova.toString(16)}, 0x${end.toString(16)}]`,
      );
      throw new DevrefError(
        "EFAULT",
        `the firmware's buffer at 0x${b.iova.toString(16)} (+0x${b.size.toString(16)}) is outside the SMC's SRAM`,
      );
    }
    b.iomem = core.sram.iomem(b.iova - core.sram.start, b.size);
    b.isMapped = true;
    b.private = "sram";
    return;
  }
  const got = dma.alloc(b.size);
  if (got === null) {
    throw new DevrefError(
      "ENOMEM",
      `no coherent DMA memory for a 0x${b.size.toString(16)}-byte buffer`,
    );
  }
  b.iova = got.iova;
  b.bytes = got.bytes ?? null;
  b.iomem = got.iomem ?? null;
  b.private = "dma";
}

/** shmem_destroy: coherent buffers go back; SRAM mappings need nothing. */
export function shmemDestroy(dma: CoherentRtkitDma, b: RtkitShmem): void {
  if (b.private === "dma") dma.free(b.iova, b.size);
}
