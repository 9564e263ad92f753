import { packageProject } from "../../vitest.shared.js";

const base = packageProject("cli");

// The tests run the command as a subprocess (node, tsx, the sources): seconds, not milliseconds.
export default {
  ...base,
  test: { ...base.test, testTimeout: 120_000 },
};
