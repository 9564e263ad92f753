import { defineProject, type UserWorkspaceConfig } from "vitest/config";

// Packages resolve to their TypeScript source through the "@devref/source" condition, so
// tests and type tests run without a build. Vite replaces its default conditions when
// given a list, so the defaults are repeated after ours.
const conditions = ["@devref/source", "module", "node", "development|production"];

/** The vitest project of one package: runtime tests and type tests. */
export function packageProject(name: string): UserWorkspaceConfig {
  return defineProject({
    resolve: { conditions },
    ssr: { resolve: { conditions } },
    test: {
      name,
      include: ["test/**/*.test.ts"],
      // Lets leak-detection tests force a collection.
      execArgv: ["--expose-gc"],
      typecheck: { enabled: true, include: ["test/**/*.test-d.ts"], tsconfig: "./tsconfig.json" },
    },
  });
}
