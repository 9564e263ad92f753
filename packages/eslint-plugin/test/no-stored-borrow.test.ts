import { noStoredBorrow } from "../src/index.js";
import { invalid, valid, withHeader } from "./cases.js";
import { FIXTURES, typedRuleTester } from "./setup.js";

typedRuleTester(FIXTURES).run("no-stored-borrow", noStoredBorrow, {
  valid: valid.map((c) => ({ name: c.name, code: withHeader(c.code) })),
  invalid: invalid.map((c) => ({ name: c.name, code: withHeader(c.code), errors: c.errors })),
});
