//! C source: drivers/of/platform.c (of_platform_populate: a device per DT node),
//! drivers/pci/controller/pci-host-common.c (the host bridge's probe and enumeration)
//!
//! What a bootloader's device tree and a host bridge's enumeration tell the kernel about a
//! simulated SoC, given to devref buses: platform devices for the platform models, PCI
//! functions found by enumeration, and hot-plug from then on.

import {
  type PciBus,
  PlatformBus,
  type PlatformDevice,
  type PlatformDeviceSpec,
} from "@devref/bus";
import type { ARef } from "@devref/raw-device";
import {
  argumentError,
  checkInstance,
  checkObject,
  checkOneOf,
  checkString,
  DevrefError,
} from "@devref/raw-device";
import { AscMailbox } from "../asc/mailbox.js";
import { Dart } from "../dart/dart.js";
import { PciHost } from "../pci/host.js";
import { Soc } from "../soc.js";
import {
  describeAppleSmc,
  describeAscMailbox,
  describeDart,
  describePciHost,
  smcOf,
} from "./nodes.js";
import { PciHostBridge } from "./pci-bridge.js";

// module-state: set only while describeSoc constructs a SocFirmware (synchronously), so the
// constructor can refuse every other caller; never true between calls.
let making = false;

/** What {@link describeSoc} describes the SoC to. */
export interface DescribeSocOptions {
  /** The platform bus (on `soc.machine`) that gets the DT nodes. */
  readonly platform: PlatformBus;
  /** The PCI bus (on `soc.machine`, domain 0, bus 0) that gets the enumerated functions. */
  readonly pci?: PciBus;
  /**
   * How an SMC's ASC mailbox is described: `"node"` (default), its own node, which the
   * SMC node names in `mboxes`, as in the device tree; or `"inline"`, no mailbox node and
   * the SMC node carries the mailbox's `reg` (third, `mbox`) and its four interrupts, for
   * a client that drives its mailbox itself. Mailboxes without an SMC always get a node.
   */
  readonly mailbox?: "node" | "inline";
}

/** One described platform device. */
export interface DescribedNode {
  /** The platform device's name. */
  readonly name: string;
  /** The model it describes. */
  readonly model: string;
  /** The spec it was registered with. */
  readonly spec: PlatformDeviceSpec;
  /**
   * DT `mboxes` (which the bus's firmware node does not carry): the platform devices of
   * the mailboxes this device uses. The SMC's is its ASC mailbox.
   */
  readonly mboxes: readonly string[];
}

/**
 * A SoC as described to devref buses (see {@link describeSoc}): the platform devices it
 * registered (holding the creator's reference of each), the PCI host bridge that
 * enumerated and watches hot-plug, and `remove()` to take it all away again.
 *
 * **Invariants:** while not removed, every described node is registered on the platform
 * bus; after `remove()` this object holds no device reference.
 */
export class SocFirmware implements Disposable {
  readonly soc: Soc;
  readonly platform: PlatformBus;
  readonly pci: PciBus | null;
  /** The platform devices, in registration order. */
  readonly nodes: readonly DescribedNode[];
  /** The PCI host's software side, when a PCI bus was given and the SoC has a host. */
  readonly bridge: PciHostBridge | null;
  private readonly refs: Map<string, ARef<PlatformDevice>>;
  private removed = false;

  /**
   * Made by {@link describeSoc} only.
   *
   * **Errors:** `EINVAL` when called directly (use `describeSoc`).
   */
  constructor(
    soc: Soc,
    options: DescribeSocOptions,
    nodes: DescribedNode[],
    refs: Map<string, ARef<PlatformDevice>>,
    bridge: PciHostBridge | null,
  ) {
    if (!making) {
      throw argumentError(
        "new SocFirmware",
        "this call",
        "describeSoc(soc, options), which makes the SocFirmware",
        "a direct construction",
      );
    }
    this.soc = soc;
    this.platform = options.platform;
    this.pci = options.pci ?? null;
    this.nodes = nodes;
    this.refs = refs;
    this.bridge = bridge;
  }

  /** Whether {@link SocFirmware.remove} has run. */
  get isRemoved(): boolean {
    return this.removed;
  }

  /**
   * A new owned reference to the described platform device `name` (labelled `label`), or
   * null when there is none (or the description was removed).
   *
   * **Errors:** `EINVAL` for a name or label that is not a string.
   */
  device(name: string, label = "anonymous"): ARef<PlatformDevice> | null {
    checkString("SocFirmware.device", "name", name);
    checkString("SocFirmware.device", "label", label);
    return this.refs.get(name)?.clone(label) ?? null;
  }

  /**
   * Takes the description away, as a kernel shutting the devices down would: the host
   * bridge releases its interrupt and removes its functions (orderly), then the platform
   * devices are unregistered, newest first. The hardware is left as it is. A second call
   * does nothing.
   */
  remove(): void {
    if (this.removed) return;
    this.removed = true;
    this.bridge?.stop();
    const refs = [...this.refs.values()].reverse();
    this.refs.clear();
    for (const ref of refs) this.platform.unregister(ref);
  }

  [Symbol.dispose](): void {
    this.remove();
  }
}

/**
 * Describes `soc` to devref buses, as a bootloader's device tree and the kernel's PCI
 * host bridge driver would: every platform model becomes a platform device named after it
 * (see `describeDart`, `describeAscMailbox`, `describeAppleSmc`, `describePciHost` for the
 * nodes), in the order the models were made; with `pci`, the SoC's PCI host is enumerated
 * onto that bus (functions are children of the host's platform device) and its hot-plug
 * interrupt is taken, so cards inserted or pulled later appear and disappear there (see
 * {@link PciHostBridge}). Drivers already registered bind at once, in this call.
 *
 * **Errors:** `EINVAL` for buses of another machine, or a `pci` bus with more than one PCI
 * host on the SoC; `EEXIST` for a device name taken on the bus or an `"msi"` domain that
 * is not the host's; `EBUSY` when the hot-plug line has a consumer. Nothing stays
 * registered when it throws.
 *
 * @example
 * ```ts
 * const { soc } = createReferenceSoc({ seed: 1 });
 * const platform = new PlatformBus({ machine: soc.machine });
 * const pci = new PciBus({ machine: soc.machine });
 * using fw = describeSoc(soc, { platform, pci });
 * platform.registerDriver(dartDriver); // binds dart0 now
 * await soc.settle();
 * ```
 */
export function describeSoc(soc: Soc, options: DescribeSocOptions): SocFirmware {
  const W = "describeSoc";
  checkInstance(W, "soc", soc, Soc);
  checkObject(W, "options", options);
  const platform = checkInstance(W, "options.platform", options.platform, PlatformBus);
  const inline =
    checkOneOf(W, "options.mailbox", options.mailbox ?? "node", ["node", "inline"]) === "inline";
  if (platform.machine !== soc.machine) {
    throw argumentError(W, "options.platform", "a bus made on soc.machine", platform.name);
  }
  const pci = options.pci;
  const hosts = soc.devices().filter((m): m is PciHost => m instanceof PciHost);
  const host = pci === undefined ? undefined : hosts[0];
  if (pci !== undefined) {
    if (hosts.length > 1) {
      throw argumentError(W, "options.pci", "a SoC with one PCI host", hosts.length);
    }
    if (host !== undefined) PciHostBridge.check(soc, host, pci);
  }
  const taken = new Set(platform.deviceNames());
  const planned: { node: DescribedNode }[] = [];
  for (const m of soc.devices()) {
    if (m instanceof Dart) planned.push(plan(m.name, describeDart(m)));
    else if (m instanceof PciHost) planned.push(plan(m.name, describePciHost(m)));
    else if (m instanceof AscMailbox) {
      const mbox = describeAscMailbox(m);
      const smc = smcOf(m);
      if (smc === null) planned.push(plan(m.name, mbox));
      else if (inline) planned.push(plan(m.name, withMailbox(describeAppleSmc(smc), mbox)));
      else {
        planned.push(plan(m.name, mbox));
        planned.push(plan(m.name, describeAppleSmc(smc), [mbox.name]));
      }
    }
  }
  for (const { node } of planned) {
    if (taken.has(node.name)) {
      throw new DevrefError(
        "EEXIST",
        `${W}: bus '${platform.name}' already has a device named '${node.name}'`,
      );
    }
  }
  const refs = new Map<string, ARef<PlatformDevice>>();
  const nodes: DescribedNode[] = [];
  let bridge: PciHostBridge | null = null;
  try {
    for (const { node } of planned) {
      refs.set(node.name, platform.register(node.spec, "firmware"));
      nodes.push(node);
    }
    if (pci !== undefined && host !== undefined) {
      bridge = new PciHostBridge(soc, host, pci, refs.get(host.name) ?? null);
      bridge.start();
    }
  } catch (e) {
    bridge?.stop();
    for (const ref of [...refs.values()].reverse()) platform.unregister(ref);
    throw e;
  }
  making = true;
  try {
    return new SocFirmware(soc, options, nodes, refs, bridge);
  } finally {
    making = false;
  }
}

/** An SMC node that also carries its mailbox's register window and interrupts. */
function withMailbox(smc: PlatformDeviceSpec, mbox: PlatformDeviceSpec): PlatformDeviceSpec {
  return {
    ...smc,
    mem: [...(smc.mem ?? []), ...(mbox.mem ?? [])],
    interrupts: [...(smc.interrupts ?? []), ...(mbox.interrupts ?? [])],
  };
}

function plan(
  model: string,
  spec: PlatformDeviceSpec,
  mboxes: readonly string[] = [],
): { node: DescribedNode } {
  return { node: { name: spec.name, model, spec, mboxes } };
}
