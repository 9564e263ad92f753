//! @devref/example-apple-dart: the Apple DART IOMMU driver, after Linux's
//! drivers/iommu/apple-dart.c, on the public devref packages.

export { AppleDart, type DartParams, type DartStats, readDartParams } from "./dart.js";
export { DartDomain } from "./domain.js";
export {
  type AppleDartDriver,
  type AppleDartDriverOptions,
  createAppleDartDriver,
} from "./driver.js";
export {
  createDmaEngineDriver,
  DMA_ENGINE_COMPATIBLE,
  type DmaEngineBinding,
  type DmaEngineDriver,
  type DmaEngineDriverOptions,
  type EngineJob,
} from "./engine.js";
export { type DartFault, decodeDartError } from "./fault.js";
export {
  DART_HW_T6000,
  DART_HW_T8103,
  DART_HW_T8110,
  type DartErrorCode,
  type DartHw,
  type DartType,
  dartTtbrValue,
} from "./hw.js";
export { type DartIommuConfig, dartIommuOps } from "./iommu-ops.js";
export { APPLE_DART_INJECTIONS, appleDartScenario, SCENARIO_ENGINE_SID } from "./scenario.js";
