import { defineConfig } from "vitest/config";

// One run over every package; each package's own vitest.config.ts describes its project.
export default defineConfig({
  test: {
    projects: ["packages/*", "examples/*/vitest.config.ts"],
  },
});
