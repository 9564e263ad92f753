// Every entry point of the core packages loads, and the one error class keeps its name
// (a bundler renames classes; the stack and the printed name must still say DevrefError).
import * as bus from "@devref/bus";
import * as deviceCore from "@devref/device-core";
import * as deviceCoreUnsafe from "@devref/device-core/unsafe";
import * as dmaIommu from "@devref/dma-iommu";
import * as ioPgtable from "@devref/io-pgtable";
import * as rawDevice from "@devref/raw-device";
import * as rawDeviceUnsafe from "@devref/raw-device/unsafe";
import * as rtkit from "@devref/rtkit";
import * as sim from "@devref/sim";

const entries = {
  "@devref/raw-device": rawDevice,
  "@devref/raw-device/unsafe": rawDeviceUnsafe,
  "@devref/io-pgtable": ioPgtable,
  "@devref/device-core": deviceCore,
  "@devref/device-core/unsafe": deviceCoreUnsafe,
  "@devref/bus": bus,
  "@devref/dma-iommu": dmaIommu,
  "@devref/rtkit": rtkit,
  "@devref/sim": sim,
};
for (const [name, module] of Object.entries(entries)) {
  const names = Object.keys(module).sort();
  console.log(`${name}: ${names.length} exports (${names.slice(0, 4).join(", ")}, ...)`);
}
const err = new rawDevice.DevrefError("EINVAL", "a provoked error");
console.log(`${err.name} ${err.code}: ${String(err)}`);
console.log(`stack names it: ${String(err.stack).split("\n")[0].includes("DevrefError")}`);
