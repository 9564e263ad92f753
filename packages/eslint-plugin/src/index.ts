//! @devref/eslint-plugin: lint rules that finish what devref's types start. The scope
//! type of `Borrowed<T, S>` keeps a borrowed device inside its callback as long as the code
//! stays typed; `no-stored-borrow` follows it where the types let go.

import * as parser from "@typescript-eslint/parser";
import type { TSESLint } from "@typescript-eslint/utils";
import { type NoStoredBorrowMessageId, noStoredBorrow } from "./no-stored-borrow.js";

export { type NoStoredBorrowMessageId, noStoredBorrow };

/** The rules of the plugin, by name (used as `@devref/<name>` in a config). */
export type DevrefRules = {
  readonly "no-stored-borrow": TSESLint.RuleModule<NoStoredBorrowMessageId, []>;
};

/** The plugin object ESLint loads: its name, version, rules and ready-made configs. */
export interface DevrefPlugin {
  readonly meta: { readonly name: string; readonly version: string };
  readonly rules: DevrefRules;
  readonly configs: {
    /**
     * `no-stored-borrow` as an error on `.ts`, `.mts` and `.cts` files, parsed by
     * typescript-eslint with typed linting through its project service.
     */
    readonly recommended: TSESLint.FlatConfig.Config;
  };
}

const rules: DevrefRules = { "no-stored-borrow": noStoredBorrow };

const pluginBase = {
  meta: { name: "@devref/eslint-plugin", version: "0.1.0" },
  rules,
};

/**
 * The ESLint plugin (flat config). The recommended config registers it as `@devref`.
 *
 * **Invariants:** its rules need type information: `parserOptions.projectService: true`
 * (as in `configs.recommended`) or `parserOptions.project`.
 *
 * **Errors:** ESLint reports a configuration error if the rule runs without type
 * information.
 *
 * @example
 * ```js
 * // eslint.config.js
 * import devref from "@devref/eslint-plugin";
 *
 * export default [devref.configs.recommended];
 * ```
 */
const plugin: DevrefPlugin = {
  ...pluginBase,
  configs: {
    recommended: {
      name: "@devref/recommended",
      files: ["**/*.ts", "**/*.mts", "**/*.cts"],
      plugins: { "@devref": pluginBase },
      languageOptions: { parser, parserOptions: { projectService: true } },
      rules: { "@devref/no-stored-borrow": "error" },
    },
  },
};

export default plugin;
