//! @devref/sim: a deterministic simulated SoC that fails on purpose.

export * from "./asc/index.js";
export { type EventHooks, EventQueue, type Scheduler, TimerHandle } from "./clock.js";
export {
  DART_REGION_SIZE,
  Dart,
  type DartOptions,
  type DartTlbEntry,
  type DartVariant,
} from "./dart/dart.js";
export { Iotlb, type IotlbEntry } from "./dart/iotlb.js";
export * from "./dart/regs.js";
export {
  DMA_STATUS,
  DmaPort,
  type DmaRanges,
  type DmaStatus,
  type DmaTranslator,
  XLATE_BLOCKED,
  XLATE_FAULT,
} from "./dma.js";
export {
  type MemoryMapEntry,
  type MmioBackend,
  MmioFabric,
  type MmioHandler,
  MmioPort,
  type MmioWidth,
  MmioWindow,
  type RegionKind,
} from "./fabric.js";
export {
  type DartFaultCode,
  FaultInjector,
  type FaultKind,
  type FaultKinds,
  type FaultPreparer,
  type FaultSpec,
  type FaultWhen,
  type ScheduledFault,
} from "./faults.js";
export { EcamConfig, FabricBackend } from "./firmware/backends.js";
export {
  type DescribedNode,
  type DescribeSocOptions,
  describeSoc,
  SocFirmware,
} from "./firmware/describe.js";
export { AIC_DOMAIN, LineBridge } from "./firmware/irq-bridge.js";
export {
  aicLevel,
  DART_COMPATIBLE,
  describeAppleSmc,
  describeAscMailbox,
  describeDart,
  describePciHost,
  iommusOf,
  PCI_HOST_COMPATIBLE,
  SMC_COMPATIBLE,
  smcOf,
} from "./firmware/nodes.js";
export { MSI_DOMAIN, PciHostBridge } from "./firmware/pci-bridge.js";
export { InterruptController, type IrqHandler, IrqSource } from "./irq.js";
export { DeviceModel } from "./model.js";
export {
  type ConfigHook,
  type PciBarDef,
  PciFunction,
  type PciFunctionOptions,
  type PciMsixDef,
} from "./pci/function.js";
export { ECAM_SIZE, PCI_HOTPLUG, PciHost, type PciHostOptions, type PciSlot } from "./pci/host.js";
export { ecamOffset, PCI } from "./pci/regs.js";
export { Prng } from "./random.js";
export {
  createReferenceSoc,
  REFERENCE_MAP,
  type ReferenceSoc,
  type ReferenceSocOptions,
} from "./reference.js";
export {
  describeException,
  describeUseAfterFree,
  type ExploreFailure,
  type ExploreOptions,
  type ExploreReport,
  explore,
  outcomeFailed,
  type Scenario,
  type ScenarioException,
  type ScenarioFault,
  ScenarioObserver,
  type ScenarioOptions,
  type ScenarioOutcome,
  type ScenarioSnapshot,
  type ScenarioSnapshotRequest,
} from "./scenario.js";
export { type DmaUseAfterFree, type RunOptions, Soc, type SocOptions } from "./soc.js";
export { StepCounter } from "./steps.js";
export {
  type DmaTraceRecord,
  type FaultTraceRecord,
  type IotlbTraceRecord,
  type IrqAction,
  type IrqTraceRecord,
  type MboxTraceRecord,
  type MmioTraceRecord,
  type NoteTraceRecord,
  type TraceBase,
  type TraceClock,
  type TraceMode,
  type TraceRecord,
  Tracer,
} from "./trace.js";
export { VirtioBlk, type VirtioBlkOptions } from "./virtio/blk.js";
export { VirtioPciFunction, type VirtioPciOptions } from "./virtio/pci.js";
export * from "./virtio/regs.js";
export { type ChainSegment, Virtqueue, VQ, type VqResult } from "./virtio/virtqueue.js";
