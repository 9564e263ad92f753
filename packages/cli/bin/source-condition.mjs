// Resolve hook: workspace packages resolve to their TypeScript source through the
// "@devref/source" export condition, as the tests and the type checker do.
export async function resolve(specifier, context, nextResolve) {
  const conditions = context.conditions.includes("@devref/source")
    ? context.conditions
    : ["@devref/source", ...context.conditions];
  return nextResolve(specifier, { ...context, conditions });
}
