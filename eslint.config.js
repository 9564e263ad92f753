// Typed lint of the project's own source with @devref/eslint-plugin's no-stored-borrow:
// the borrows that the types cannot stop (stored through unknown, a cast or a closure
// that runs later). Biome does the rest of the linting and the formatting.
import { tsImport } from "tsx/esm/api";
import tseslint from "typescript-eslint";

// The plugin is loaded from its TypeScript source, as the tests load every package, so
// `pnpm lint` needs no build and can never run a stale dist/.
const { default: devref } = await tsImport(
  "./packages/eslint-plugin/src/index.ts",
  import.meta.url,
);

export default [
  { ignores: ["**/dist/**", "**/node_modules/**", "packages/eslint-plugin/test/fixtures/**"] },
  {
    files: ["packages/*/src/**/*.ts", "packages/*/demo/**/*.ts", "examples/**/*.ts"],
    languageOptions: {
      parser: tseslint.parser,
      parserOptions: { projectService: true, tsconfigRootDir: import.meta.dirname },
    },
    plugins: { "@devref": devref },
    rules: { "@devref/no-stored-borrow": "error" },
  },
];
