// Wires typescript-eslint's RuleTester to vitest, and points it at a fixture project.
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import { RuleTester } from "@typescript-eslint/rule-tester";
import { afterAll, describe, it } from "vitest";

RuleTester.afterAll = afterAll;
RuleTester.describe = describe;
RuleTester.it = it;
RuleTester.itOnly = it.only;

/** The fixture project: imports `@devref/raw-device` from source, like the packages do. */
export const FIXTURES: string = join(dirname(fileURLToPath(import.meta.url)), "fixtures");

/** A RuleTester with type information from the tsconfig in `root`. */
export function typedRuleTester(root: string): RuleTester {
  return new RuleTester({
    languageOptions: {
      parserOptions: { projectService: { allowDefaultProject: [] }, tsconfigRootDir: root },
    },
  });
}
