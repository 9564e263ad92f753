import type { UserWorkspaceConfig } from "vitest/config";
import { packageProject } from "../../vitest.shared.js";

const config: UserWorkspaceConfig = packageProject("example-soc");
export default config;
