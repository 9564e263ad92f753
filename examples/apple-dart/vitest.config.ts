import type { UserWorkspaceConfig } from "vitest/config";
import { packageProject } from "../../vitest.shared.js";

const config: UserWorkspaceConfig = packageProject("example-apple-dart");
export default config;
