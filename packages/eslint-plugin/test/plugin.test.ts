import { join } from "node:path";
import { TSESLint } from "@typescript-eslint/utils";
import { describe, expect, it } from "vitest";
import plugin, { noStoredBorrow } from "../src/index.js";
import { withHeader } from "./cases.js";
import { FIXTURES } from "./setup.js";

describe("the plugin object", () => {
  it("names itself and its one rule", () => {
    expect(plugin.meta.name).toBe("@devref/eslint-plugin");
    expect(Object.keys(plugin.rules)).toEqual(["no-stored-borrow"]);
    expect(plugin.rules["no-stored-borrow"]).toBe(noStoredBorrow);
    expect(noStoredBorrow.meta.type).toBe("problem");
  });

  it("every message says how to keep the device: .get() with the holder's name", () => {
    for (const [id, text] of Object.entries(noStoredBorrow.meta.messages)) {
      expect({ id, advises: text.includes(".get('<who keeps it>')") }).toEqual({
        id,
        advises: true,
      });
    }
  });

  it("the recommended config enables the rule, with the parser and typed linting", async () => {
    const recommended = plugin.configs.recommended;
    expect(recommended.rules).toEqual({ "@devref/no-stored-borrow": "error" });
    const eslint = new TSESLint.ESLint({
      cwd: FIXTURES,
      overrideConfigFile: true,
      overrideConfig: [
        {
          ...recommended,
          languageOptions: {
            ...recommended.languageOptions,
            parserOptions: { projectService: true, tsconfigRootDir: FIXTURES },
          },
        },
      ],
    });
    const code = withHeader(`let stash: unknown;
withBorrow(owned, (d) => { stash = d; setTimeout(() => d.name, 1); });
withBorrow(owned, (d) => { stash = d.get("kept"); });`);
    const [result] = await eslint.lintText(code, { filePath: join(FIXTURES, "file.ts") });
    expect(result?.messages.map((m) => [m.line, m.ruleId, m.message.slice(0, 40)])).toEqual([
      [3, "@devref/no-stored-borrow", "`d` (a borrowed device) is stored in `st"],
      [3, "@devref/no-stored-borrow", "The function handed to `setTimeout` uses"],
    ]);
    expect(result?.messages[0]?.message).toBe(
      "`d` (a borrowed device) is stored in `stash`, declared outside the callback that received the borrow: " +
        "the borrow is revoked when that callback returns. To keep the device, take `d.get('<who keeps it>')` " +
        "inside the callback and store that owned reference (put() it when done).",
    );
  });
});
