import { writeFileSync } from "node:fs";

// A vitest reporter that closes the run with one line, "N passed, N failed", counting every
// test (runtime and type tests); a test file that fails to load and an error outside any
// test count as failures. A run with no passing test fails.
export default class CountReporter {
  onTestRunEnd(testModules, unhandledErrors) {
    let passed = 0;
    let failed = 0;
    let skipped = 0;
    for (const module of testModules) {
      let failedHere = 0;
      for (const test of module.children.allTests()) {
        const state = test.result().state;
        if (state === "passed") passed++;
        else if (state === "failed") failedHere++;
        else skipped++;
      }
      // A module that failed outside its tests (it did not load, a hook threw) is one failure.
      if (failedHere === 0 && module.state() === "failed") failedHere = 1;
      failed += failedHere;
    }
    failed += unhandledErrors.length;
    console.log(`${passed} passed, ${failed} failed${skipped > 0 ? `, ${skipped} skipped` : ""}`);
    // Tells scripts/run-tests.mjs the line was printed (vitest may also die before this).
    if (process.env.DEVREF_TEST_COUNTS)
      writeFileSync(process.env.DEVREF_TEST_COUNTS, `${passed} ${failed}`);
    if (failed > 0 || passed === 0) process.exitCode = 1;
  }
}
