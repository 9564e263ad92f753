import { defineConfig } from "tsup";
import { packageBuild } from "../../scripts/tsup-package.mjs";

export default defineConfig(
  packageBuild({
    entry: ["src/index.ts"],
    // Loaded by ESLint next to the project's own TypeScript and typescript-eslint.
    external: ["typescript", "@typescript-eslint/utils", "eslint"],
  }),
);
