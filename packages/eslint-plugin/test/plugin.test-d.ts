import type { TSESLint } from "@typescript-eslint/utils";
import { describe, expectTypeOf, it } from "vitest";
import plugin, {
  type DevrefPlugin,
  type NoStoredBorrowMessageId,
  noStoredBorrow,
} from "../src/index.js";

describe("plugin types", () => {
  it("the plugin is a flat-config plugin and its recommended config a flat config", () => {
    expectTypeOf(plugin).toEqualTypeOf<DevrefPlugin>();
    expectTypeOf(plugin).toExtend<TSESLint.FlatConfig.Plugin>();
    expectTypeOf(plugin.configs.recommended).toExtend<TSESLint.FlatConfig.Config>();
  });

  it("the rule has no options and names its messages", () => {
    expectTypeOf(plugin.rules["no-stored-borrow"]).toEqualTypeOf<
      TSESLint.RuleModule<NoStoredBorrowMessageId, []>
    >();
    expectTypeOf<"storedInVariable">().toExtend<NoStoredBorrowMessageId>();
    // @ts-expect-error not a message of the rule
    expectTypeOf<"storedSomewhere">().toExtend<NoStoredBorrowMessageId>();
  });

  it("the rule table is read-only", () => {
    // @ts-expect-error rules cannot be replaced on the shared plugin object
    plugin.rules["no-stored-borrow"] = noStoredBorrow;
  });
});
