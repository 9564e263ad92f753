//! @devref/example-soc: every example driver together on the reference SoC.

export { formatSnapshot } from "./format.js";
export { SOC_INJECTIONS, socScenario } from "./scenario.js";
