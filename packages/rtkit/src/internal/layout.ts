//! One description per message layout (type field, named bit fields) from which its encoder
//! and decoder are made, so a field is written down once: the kernel's GENMASK_ULL lines.

import { argumentError, checkBoolean, checkInteger, checkObject } from "@devref/raw-device";
import { checkMsg0, genmask, hex } from "./bits.js";

/** A numeric field: bits `hi:lo`, optionally counted in `unit`s (the value is raw × unit). */
export interface NumberField {
  readonly hi: number;
  readonly lo: number;
  readonly unit?: number;
}

/** The fields of a layout: numbers, and one-bit booleans named separately. */
export interface LayoutSpec<N extends string, B extends string> {
  /** The message name used in errors, e.g. "HELLO". */
  readonly name: string;
  /** The type field, e.g. [59, 52]. */
  readonly typeField: readonly [number, number];
  /** The type values this layout accepts; encoders use the first unless given `type`. */
  readonly types: readonly number[];
  readonly numbers: { readonly [K in N]: NumberField };
  readonly flags: { readonly [K in B]: number };
}

/** What a decoder returns: every named field, plus the bits no field names. */
export type Decoded<N extends string, B extends string> = { readonly [K in N]: number } & {
  readonly [K in B]: boolean;
} & { readonly reserved: bigint };

/** What an encoder takes: every named field, and optionally bits no field names. */
export type Encodable<N extends string, B extends string> = { readonly [K in N]: number } & {
  readonly [K in B]: boolean;
} & { readonly reserved?: bigint };

interface CompiledNumber {
  readonly name: string;
  readonly shift: bigint;
  readonly max: number;
  readonly mask: bigint;
  readonly unit: number;
}

/** A compiled layout: encode and decode msg0 as bigint. */
export class Layout<N extends string, B extends string> {
  readonly name: string;
  private readonly typeShift: bigint;
  private readonly typeMask: bigint;
  private readonly types: readonly number[];
  private readonly numbers: readonly CompiledNumber[];
  private readonly flags: readonly { readonly name: string; readonly bit: bigint }[];
  /** Every bit a field or the type names. */
  readonly known: bigint;

  constructor(spec: LayoutSpec<N, B>) {
    this.name = spec.name;
    const [th, tl] = spec.typeField;
    this.typeShift = BigInt(tl);
    this.typeMask = genmask(th, tl);
    this.types = spec.types;
    let known = this.typeMask;
    const numbers: CompiledNumber[] = [];
    for (const name of Object.keys(spec.numbers)) {
      // SAFETY: name is a key of spec.numbers, whose keys are N.
      const f = spec.numbers[name as N];
      const mask = genmask(f.hi, f.lo);
      numbers.push({
        name,
        shift: BigInt(f.lo),
        max: 2 ** (f.hi - f.lo + 1) - 1,
        mask,
        unit: f.unit ?? 1,
      });
      known |= mask;
    }
    const flags: { name: string; bit: bigint }[] = [];
    for (const name of Object.keys(spec.flags)) {
      // SAFETY: name is a key of spec.flags, whose keys are B.
      const bit = 1n << BigInt(spec.flags[name as B]);
      flags.push({ name, bit });
      known |= bit;
    }
    this.numbers = numbers;
    this.flags = flags;
    this.known = known;
  }

  /** The type field of `msg0` under this layout. */
  typeOf(msg0: bigint): number {
    return Number((msg0 & this.typeMask) >> this.typeShift);
  }

  /**
   * Builds msg0 from `fields` (and `type`, for layouts that accept several).
   *
   * **Errors:** `EINVAL` naming the field that does not fit, or reserved bits that overlap
   * a named field.
   */
  encode(where: string, fields: Encodable<N, B>, type: number = this.types[0]!): bigint {
    checkObject(where, "fields", fields);
    // SAFETY: reading the declared fields of an object checked above; each is validated.
    const record = fields as unknown as Record<string, unknown>;
    let msg = BigInt(type) << this.typeShift;
    for (const f of this.numbers) {
      const param = `fields.${f.name}`;
      const raw = record[f.name];
      checkInteger(where, param, raw, 0, f.max * f.unit);
      // SAFETY: checkInteger returned, so raw is a whole number.
      const value = raw as number;
      if (value % f.unit !== 0) {
        throw argumentError(where, param, `a multiple of 0x${hex(f.unit)}`, value);
      }
      msg |= BigInt(value / f.unit) << f.shift;
    }
    for (const f of this.flags) {
      if (checkBoolean(where, `fields.${f.name}`, record[f.name])) msg |= f.bit;
    }
    const reserved = record.reserved;
    if (reserved !== undefined) {
      const r = checkMsg0(where, "fields.reserved", reserved);
      if ((r & this.known) !== 0n) {
        throw argumentError(
          where,
          "fields.reserved",
          `bits outside the ${this.name} fields (mask 0x${hex(this.known)})`,
          `0x${hex(r)}`,
        );
      }
      msg |= r;
    }
    return msg;
  }

  /**
   * Reads every field of `msg0`; the bits no field names come back as `reserved`.
   *
   * **Errors:** `EINVAL` if `msg0` is not a 64-bit bigint or its type is not this layout's.
   */
  decode(where: string, msg0: unknown): Decoded<N, B> {
    const msg = checkMsg0(where, "msg0", msg0);
    const type = this.typeOf(msg);
    if (!this.types.includes(type)) {
      throw argumentError(
        where,
        "msg0",
        `a ${this.name} message (type ${this.types.map((t) => `0x${hex(t)}`).join(" or ")})`,
        `0x${hex(msg)} (type 0x${hex(type)})`,
      );
    }
    const out: Record<string, number | boolean | bigint> = {};
    for (const f of this.numbers) out[f.name] = Number((msg & f.mask) >> f.shift) * f.unit;
    for (const f of this.flags) out[f.name] = (msg & f.bit) !== 0n;
    out.reserved = msg & ~this.known;
    // SAFETY: out has exactly the number fields N, the flags B and reserved, filled above.
    return out as Decoded<N, B>;
  }
}
