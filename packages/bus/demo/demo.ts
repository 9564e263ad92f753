// A small driver-model scenario: a platform bus with an IOMMU, a mailbox that depends on
// it, and a storage controller with an asynchronous probe; a deferred probe resolved; a
// surprise unplug while another component holds an owned reference; the device tree and
// holders before and after; and an audit showing nothing is left behind.
//
// Run from the repository root:
//   node --conditions=@devref/source --import tsx packages/bus/demo/demo.ts
// Output is deterministic: no timers, no wall time.

import { definePlatformDriver, PlatformBus } from "@devref/bus";
import {
  auditDevices,
  createDevice,
  type Device,
  type Devres,
  devErrProbe,
  devInfo,
  deviceAdd,
  deviceTree,
  deviceUnregister,
  formatHolders,
  IrqDomain,
  Machine,
  type MmioRegion,
} from "@devref/device-core";
import { type ARef, DevrefError, type RawDevice } from "@devref/raw-device";

const out = (line = ""): void => console.log(line);
const section = (title: string): void => out(`\n== ${title}`);

// One machine for the whole scenario: its devices, log, interrupt controller and bus.
// Kernel-style log lines are indented so they stand apart from the narration.
const machine = new Machine({
  name: "demo",
  logSink: (r) => {
    if (r.level !== "dbg") out(`  [${r.level}] ${r.text}`);
  },
});
machine.configureDevresDebug({ debug: true });
const aic = new IrqDomain({ machine, name: "aic", size: 1024 });
const bus = new PlatformBus({ machine });
bus.registerNotifier((event, dev) => {
  out(
    `  notify ${event.padEnd(16)} ${dev.name}${dev.driverName === null ? "" : ` (${dev.driverName})`}`,
  );
});

// --- drivers -----------------------------------------------------------------------------

const dartDriver = definePlatformDriver({
  name: "apple-dart",
  ofMatchTable: [{ compatible: "apple,t8103-dart" }],
  probe: (dev) => {
    const regs = dev.ioremapResource(0);
    regs.access(dev).write32(0x0, 0x1); // enable translation
    devInfo(dev, "IOMMU ready");
    return { regs };
  },
  remove: (dev) => devInfo(dev, "IOMMU going away"),
});

/** Another component (an RTKit client) that keeps the mailbox: it must own a reference. */
class RtkitClient {
  mbox: ARef<Device> | null = null;
  /** A managed resource it was handed and (wrongly) kept past the binding. */
  doorbell: Devres<MmioRegion> | null = null;
}
const rtkit = new RtkitClient();

const mboxDriver = definePlatformDriver({
  name: "apple-mbox",
  ofMatchTable: [{ compatible: "apple,asc-mailbox-v4" }],
  probe: (dev) => {
    if (!dartDriver.boundDevices().includes("dart0")) {
      throw devErrProbe(dev, "EPROBE_DEFER", "waiting for IOMMU dart0");
    }
    const regs = dev.ioremapResource(0, { owner: "rtkit client" });
    dev.requestIrq(0, (d) => {
      out(`  irq: ${d.name} mailbox interrupt (handler runs with a Bound borrow)`);
      return "handled";
    });
    // The RTKit client keeps the device with an owned reference (right) and the MMIO
    // Devres (which only works while the mailbox driver is bound).
    rtkit.mbox = dev.get("rtkit client");
    rtkit.doorbell = regs;
    devInfo(dev, "mailbox ready");
    return { regs };
  },
  remove: (dev, data) => {
    const status = data.regs.access(dev).read32(0x8);
    devInfo(
      dev,
      status === 0xffff_ffff
        ? "remove: status reads all-ones, hardware is gone; not waiting for an ack"
        : `remove: status ${status}`,
    );
  },
});

let releaseFirmware: () => void = () => {};
const firmwareBooted = new Promise<void>((resolve) => {
  releaseFirmware = resolve;
});
const ansDriver = definePlatformDriver({
  name: "apple-ans",
  ofMatchTable: [{ compatible: "apple,nvme-ans2" }],
  probe: async (dev) => {
    dev.devmAddAction(() => out("  (devres) ans: shared memory freed"), "ans shmem");
    await firmwareBooted; // the coprocessor boots asynchronously
    try {
      dev.setDmaMask(42);
    } catch (e) {
      // The Core borrow was revoked when the device went away in the middle of the probe.
      out(
        `  ans probe resumes after the unplug: ${String(e)
          .replace(/^DevrefError: /, "")
          .slice(0, 96)}…`,
      );
      throw e;
    }
    return null;
  },
  remove: () => out("  (never printed: ans never finished probing)"),
});

// --- the machine -------------------------------------------------------------------------

section("boot: a soc device and three platform devices; the mailbox driver comes first");
const soc = createDevice({ name: "soc", machine, release: () => out("  release soc") });
deviceAdd(soc);
bus.registerDriver(mboxDriver);
const dart = bus.register({
  name: "dart0",
  parent: soc,
  compatible: ["apple,t8103-dart"],
  mem: [{ start: 0x2_3100_0000, size: 0x4000 }],
  iommus: [],
  release: () => out("  release dart0"),
});
const mbox = bus.register({
  name: "mbox0",
  parent: soc,
  compatible: ["apple,asc-mailbox-v4"],
  mem: [{ start: 0x2_3140_8000, size: 0x4000 }],
  interrupts: [{ domain: "aic", hwirq: 645, trigger: "edge" }],
  iommus: [{ iommu: "dart0", ids: [1] }],
  release: () => out("  release mbox0"),
});
out(`deferred: ${JSON.stringify(machine.deferredDevices())}`);

section("the IOMMU driver registers: dart0 binds, which retries the deferred mailbox");
bus.registerDriver(dartDriver);
await bus.settle();
out(
  `mbox0 is ${mbox.lifecycle} with ${mbox.driverName}; deferred: ${JSON.stringify(machine.deferredDevices())}`,
);

section("the storage controller starts an asynchronous probe");
bus.registerDriver(ansDriver);
const ans = bus.register({
  name: "ans0",
  parent: soc,
  compatible: ["apple,nvme-ans2"],
  release: () => out("  release ans0"),
});
out(`ans0 is ${ans.lifecycle}`);

section("ownership rules, as the scenario uses them");
// A borrow used inside its callback.
bus.forEachDevice((dev) => out(`borrowed in callback: ${dev.name} (${dev.lifecycle})`));
// A borrow smuggled out of a callback fails when used.
let smuggled: unknown;
bus.forEachDevice((dev) => {
  smuggled ??= dev;
});
try {
  // SAFETY: deliberately smuggled out of its callback, to show the run-time revocation.
  void (smuggled as RawDevice).name;
} catch (e) {
  out(`smuggled borrow: ${String(e).replace(/^DevrefError: /, "")}`);
}
// An owned reference kept and disposed.
{
  using probeLog = dart.get("demo: using block");
  out(`owned in a using block: ${formatHolders(probeLog)}`);
}
out(`after the block:        ${formatHolders(dart)}`);

section("the mailbox raises its interrupt");
out(`handled: ${aic.raise(645)}; ${aic.interrupts().join("; ")}`);

section("before the unplug");
out(deviceTree(soc));
for (const d of [dart, mbox, ans]) out(formatHolders(d));

section("surprise unplug of mbox0 while the RTKit client holds it");
bus.unplug(mbox);
out(`raise IRQ 645 again: handled=${aic.raise(645)} (the handler went with the binding)`);
out(
  `rtkit's reference: ${rtkit.mbox?.name} is ${rtkit.mbox?.lifecycle}, disconnected=${rtkit.mbox?.isDisconnected}`,
);
try {
  rtkit.doorbell?.accessChecked().write32(0, 1);
} catch (e) {
  out(
    `rtkit rings the doorbell (${DevrefError.is(e) ? e.code : "?"}): ${String(e).replace(/^DevrefError: /, "")}`,
  );
}

section("surprise unplug of ans0 in the middle of its asynchronous probe");
bus.unplug(ans);
releaseFirmware();
await bus.settle();
out(`ans0 is ${ans.lifecycle}`);

section("after the unplugs");
out(deviceTree(soc));
for (const d of [dart, mbox, ans]) out(formatHolders(d));

section("teardown: every holder lets go");
rtkit.doorbell = null;
rtkit.mbox?.put();
rtkit.mbox = null;
mbox.put();
ans.put();
bus.unregisterDriver(ansDriver);
bus.unregisterDriver(mboxDriver);
bus.unregisterDriver(dartDriver);
bus.unregister(dart);
deviceUnregister(soc);

section("audit");
const left = auditDevices(machine);
out(
  left.length === 0
    ? "nothing left behind: every device released, no holders, no devres"
    : JSON.stringify(left),
);
