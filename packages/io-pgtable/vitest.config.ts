import { defineProject } from "vitest/config";

export default defineProject({
  test: {
    name: "io-pgtable",
    include: ["test/**/*.test.ts"],
    typecheck: { enabled: true, include: ["test/**/*.test-d.ts"], tsconfig: "./tsconfig.json" },
  },
});
