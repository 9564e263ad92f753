import { mergeConfig } from "vitest/config";
import { packageProject } from "../../vitest.shared.js";

// Typed linting builds a TypeScript program for the fixture project on the first case,
// which takes a few seconds on a busy machine.
export default mergeConfig(packageProject("eslint-plugin"), { test: { testTimeout: 60_000 } });
