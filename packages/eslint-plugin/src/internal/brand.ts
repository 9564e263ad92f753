// How a borrow is recognised in a type: by the scope brand that @devref/raw-device puts on
// `Borrowed<T, S>` (`{ readonly [scopeBrand]: (scope: S) => S }`). The brand symbol is
// declared once, as `declare const scopeBrand: unique symbol`, in raw-device's ownership
// module; in the built package the same declaration sits in a bundled `.d.ts` chunk under
// another file name. So the brand is found by the symbol's name and by the package that
// declares it, read from the nearest package.json, never by a file name.

import { existsSync, readFileSync } from "node:fs";
import { dirname, join } from "node:path";
import ts from "typescript";

/** The package whose `scopeBrand` marks a borrow. */
export const BRAND_PACKAGE = "@devref/raw-device";

// A unique-symbol key is stored as `__@<name>@<symbol id>`; a declaration bundler may
// rename the constant to `scopeBrand$1` when two chunks declare the same name.
const BRAND_KEY = /^__@scopeBrand(?:\$\d+)?@\d+$/;

// How deep a value's type is searched for a borrow inside (array of objects of ...).
const MAX_DEPTH = 3;

/**
 * Answers whether types are, or hold, borrows, for one program's type checker. Results
 * are memoised per type, so one instance is kept per program.
 */
export class BorrowTypes {
  readonly checker: ts.TypeChecker;
  private readonly brandDecls = new Map<ts.Declaration, boolean>();
  private readonly borrowTypes = new Map<ts.Type, boolean>();
  private readonly holderTypes = new Map<ts.Type, boolean>();
  private readonly packageOfDir = new Map<string, string | null>();

  constructor(checker: ts.TypeChecker) {
    this.checker = checker;
  }

  /** Whether `type` is a borrow: it (or every member of a union) has the scope brand. */
  isBorrow(type: ts.Type): boolean {
    let known = this.borrowTypes.get(type);
    if (known === undefined) {
      known = this.computeIsBorrow(type);
      this.borrowTypes.set(type, known);
    }
    return known;
  }

  /**
   * Whether a value of `type` is or holds a borrow: a borrow, a union with one, or an
   * array, tuple, Map, Set, promise, generic instance or plain object type with one inside.
   */
  holdsBorrow(type: ts.Type): boolean {
    return this.holds(type, 0);
  }

  private computeIsBorrow(type: ts.Type): boolean {
    if (type.isUnion()) return type.types.some((t) => this.isBorrow(t));
    if ((type.flags & (ts.TypeFlags.Object | ts.TypeFlags.Intersection)) === 0) return false;
    for (const prop of this.checker.getPropertiesOfType(type)) {
      if (BRAND_KEY.test(String(prop.escapedName)) && this.isBrandProperty(prop)) return true;
    }
    return false;
  }

  private holds(type: ts.Type, depth: number): boolean {
    if (depth === 0) {
      const known = this.holderTypes.get(type);
      if (known !== undefined) return known;
      // Provisional answer, in case the type refers to itself.
      this.holderTypes.set(type, false);
      const answer = this.computeHolds(type, 0);
      this.holderTypes.set(type, answer);
      return answer;
    }
    return this.computeHolds(type, depth);
  }

  private computeHolds(type: ts.Type, depth: number): boolean {
    if (this.isBorrow(type)) return true;
    if (depth >= MAX_DEPTH) return false;
    if (type.isUnion() || type.isIntersection()) {
      return type.types.some((t) => this.holds(t, depth + 1));
    }
    if (!isObjectType(type)) return false;
    const objectFlags = type.objectFlags;
    if (isTypeReference(type)) {
      const args = this.checker.getTypeArguments(type);
      if (args.some((t) => this.holds(t, depth + 1))) return true;
    }
    // Plain object shapes (literals, anonymous types, interfaces) are searched by
    // property; class instances and functions are not: a function that closes over a
    // borrow is found from its body, not its type.
    if (
      (objectFlags & (ts.ObjectFlags.Anonymous | ts.ObjectFlags.Interface)) === 0 ||
      (objectFlags & ts.ObjectFlags.Class) !== 0 ||
      type.getCallSignatures().length > 0 ||
      type.getConstructSignatures().length > 0 ||
      this.isFromDefaultLibrary(type)
    ) {
      return false;
    }
    for (const prop of this.checker.getPropertiesOfType(type)) {
      if (this.holds(this.checker.getTypeOfSymbol(prop), depth + 1)) return true;
    }
    return false;
  }

  private isFromDefaultLibrary(type: ts.Type): boolean {
    const decl = type.getSymbol()?.declarations?.[0];
    if (decl === undefined) return false;
    const file = decl.getSourceFile();
    return /[\\/]typescript[\\/]lib[\\/]lib\.[^\\/]*\.d\.ts$/.test(file.fileName);
  }

  private isBrandProperty(prop: ts.Symbol): boolean {
    for (const decl of prop.declarations ?? []) {
      let known = this.brandDecls.get(decl);
      if (known === undefined) {
        known = this.declaresBrand(decl);
        this.brandDecls.set(decl, known);
      }
      if (known) return true;
    }
    return false;
  }

  private declaresBrand(decl: ts.Declaration): boolean {
    if (!ts.isPropertySignature(decl) || !ts.isComputedPropertyName(decl.name)) return false;
    const key = this.checker.getSymbolAtLocation(decl.name.expression);
    const keyDecl = key?.valueDeclaration ?? key?.declarations?.[0];
    if (keyDecl === undefined) return false;
    return this.packageOf(keyDecl.getSourceFile().fileName) === BRAND_PACKAGE;
  }

  /** The name in the nearest package.json above `file`, or null. */
  private packageOf(file: string): string | null {
    const visited: string[] = [];
    let dir = dirname(file);
    let name: string | null | undefined;
    for (;;) {
      name = this.packageOfDir.get(dir);
      if (name !== undefined) break;
      visited.push(dir);
      // A manifest without a name (such as a `{ "type": "module" }` marker) is skipped.
      const manifest = join(dir, "package.json");
      name = existsSync(manifest) ? readPackageName(manifest) : null;
      if (name !== null) break;
      const parent = dirname(dir);
      if (parent === dir) {
        name = null;
        break;
      }
      dir = parent;
    }
    for (const v of visited) this.packageOfDir.set(v, name);
    return name;
  }
}

function isObjectType(type: ts.Type): type is ts.ObjectType {
  return (type.flags & ts.TypeFlags.Object) !== 0;
}

function isTypeReference(type: ts.ObjectType): type is ts.TypeReference {
  return (type.objectFlags & ts.ObjectFlags.Reference) !== 0;
}

function readPackageName(manifest: string): string | null {
  try {
    const parsed: unknown = JSON.parse(readFileSync(manifest, "utf8"));
    if (typeof parsed === "object" && parsed !== null && "name" in parsed) {
      return typeof parsed.name === "string" ? parsed.name : null;
    }
  } catch {
    // An unreadable manifest names no package.
  }
  return null;
}
