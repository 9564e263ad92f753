// The rule is for what the type checker lets through: every case, reported or allowed,
// must compile without a diagnostic. A case tsc already rejects would test nothing new.
import { join } from "node:path";
import ts from "typescript";
import { describe, expect, it } from "vitest";
import { invalid, valid, withHeader } from "./cases.js";
import { FIXTURES } from "./setup.js";

const cases = [
  ...invalid.map((c) => ({ ...c, kind: "reported" })),
  ...valid.map((c) => ({ ...c, kind: "allowed" })),
];

function compileCases(): ts.Program {
  const parsed = ts.getParsedCommandLineOfConfigFile(join(FIXTURES, "tsconfig.json"), undefined, {
    ...ts.sys,
    onUnRecoverableConfigFileDiagnostic: (d) => {
      throw new Error(ts.flattenDiagnosticMessageText(d.messageText, "\n"));
    },
  });
  if (parsed === undefined) throw new Error("fixture tsconfig.json did not parse");
  const virtual = new Map(
    cases.map((c, i) => [join(FIXTURES, `case-${i}.ts`), withHeader(c.code)]),
  );
  const host = ts.createCompilerHost(parsed.options);
  const getSourceFile = host.getSourceFile;
  host.fileExists = (f) => virtual.has(f) || ts.sys.fileExists(f);
  host.readFile = (f) => virtual.get(f) ?? ts.sys.readFile(f);
  host.getSourceFile = (f, language, onError, fresh) => {
    const text = virtual.get(f);
    return text === undefined
      ? getSourceFile.call(host, f, language, onError, fresh)
      : ts.createSourceFile(f, text, language);
  };
  return ts.createProgram([...virtual.keys()], parsed.options, host);
}

describe("every rule case compiles: the rule reports what tsc accepts", () => {
  const program = compileCases();
  it.each(cases.map((c, i) => [c.kind, c.name, i] as const))("%s: %s", (_kind, _name, i) => {
    const file = program.getSourceFile(join(FIXTURES, `case-${i}.ts`));
    expect(file).toBeDefined();
    const diagnostics = [
      ...program.getSyntacticDiagnostics(file),
      ...program.getSemanticDiagnostics(file),
    ].map((d) => ts.flattenDiagnosticMessageText(d.messageText, "\n"));
    expect(diagnostics).toEqual([]);
  });
});
