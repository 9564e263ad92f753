// The rule on a project that uses the published package: @devref/raw-device resolved to
// its bundled declarations (a hashed chunk, no source, no ownership.ts), as tsup builds them.
import { join } from "node:path";
import { noStoredBorrow } from "../src/index.js";
import { invalid, valid, withHeader } from "./cases.js";
import { FIXTURES, typedRuleTester } from "./setup.js";

typedRuleTester(join(FIXTURES, "built")).run(
  "no-stored-borrow on built declarations",
  noStoredBorrow,
  {
    valid: valid.map((c) => ({ name: c.name, code: withHeader(c.code) })),
    invalid: invalid.map((c) => ({ name: c.name, code: withHeader(c.code), errors: c.errors })),
  },
);
