import { defineConfig } from "tsup";

export default defineConfig({
  entry: ["src/index.ts"],
  format: ["esm"],
  target: "node20",
  dts: { banner: '/// <reference lib="esnext.disposable" />' },
  clean: true,
  sourcemap: true,
  // Loaded by ESLint next to the project's own TypeScript and typescript-eslint.
  external: ["typescript", "@typescript-eslint/utils", "eslint"],
});
