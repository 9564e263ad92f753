import { defineConfig } from "vitest/config";

// One run over every package: runtime tests and, in typecheck mode, the *.test-d.ts files.
// Packages resolve to their TypeScript source through the "@devref/source" condition,
// so no build is needed before testing.
const conditions = ["@devref/source"];

export default defineConfig({
  resolve: { conditions },
  ssr: { resolve: { conditions } },
  test: {
    projects: ["packages/*", "examples/*"],
  },
});
