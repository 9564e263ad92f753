// The simulator's main scenario: every example driver on the reference SoC, narrated, with
// seed 1. Node and Chromium must print the same lines and the same trace digest.
import { socScenario } from "@devref/example-soc";

const outcome = await socScenario.run({ seed: 1, narrate: (line) => console.log(line) });
console.log(`scenario ${outcome.scenario} seed ${outcome.seed}: ${outcome.result}`);
console.log(`steps ${outcome.steps}, virtual time ${outcome.timeNs} ns, digest ${outcome.digest}`);
console.log(
  `exceptions ${outcome.exceptions.length}, leaks ${outcome.leaks.length}, ` +
    `use after free ${outcome.useAfterFree.length}`,
);
if (outcome.exceptions.length + outcome.leaks.length + outcome.useAfterFree.length > 0)
  throw new Error("the soc scenario did not end clean");
