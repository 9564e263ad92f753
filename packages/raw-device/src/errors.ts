//! C header: include/uapi/asm-generic/errno-base.h, include/linux/errno.h

/**
 * The errno names devref reports, with the kernel's numbers.
 *
 * `EPROBE_DEFER` (517) is kernel-internal, like in Linux; the rest are the uapi values.
 */
export const ERRNO = {
  EPERM: 1,
  ENOENT: 2,
  EIO: 5,
  ENXIO: 6,
  E2BIG: 7,
  EAGAIN: 11,
  ENOMEM: 12,
  EFAULT: 14,
  EBUSY: 16,
  EEXIST: 17,
  ENODEV: 19,
  EINVAL: 22,
  ENOSPC: 28,
  EROFS: 30,
  ERANGE: 34,
  ENOSYS: 38,
  ETIME: 62,
  EPROTO: 71,
  EOVERFLOW: 75,
  EOPNOTSUPP: 95,
  ESHUTDOWN: 108,
  ETIMEDOUT: 110,
  EPROBE_DEFER: 517,
} as const;

/** An errno name, e.g. `"ENODEV"`. Narrow errors on it. */
export type Errno = keyof typeof ERRNO;

/** A short, safe description of any value for an error message (never throws). */
export function describeValue(value: unknown): string {
  switch (typeof value) {
    case "number":
      return Number.isNaN(value) ? "NaN" : String(value);
    case "bigint":
      return `${value}n`;
    case "string":
      return value.length > 40 ? `a string ('${value.slice(0, 37)}...')` : `'${value}'`;
    case "undefined":
      return "undefined";
    case "boolean":
      return String(value);
    case "symbol":
      return "a symbol";
    case "function":
      return "a function";
    default:
      if (value === null) return "null";
      if (Array.isArray(value)) return `an array of ${value.length}`;
      try {
        const name = Object.getPrototypeOf(value)?.constructor?.name;
        return typeof name === "string" && name !== "" && name !== "Object"
          ? `a ${name}`
          : "an object";
      } catch {
        return "an object";
      }
  }
}

/** Options for {@link DevrefError}: the standard `cause` and structured details. */
export interface DevrefErrorOptions {
  /** The error that led to this one. */
  readonly cause?: unknown;
  /** Machine-readable facts about the failure (for example the bytes mapped before it). */
  readonly details?: Readonly<Record<string, unknown>>;
}

/**
 * The one error class of devref: an errno-style `code` and a message that says what went
 * wrong and what to do about it.
 *
 * **Invariants:** `code` is always a key of {@link ERRNO}; `errno` is its number.
 *
 * @example
 * ```ts
 * try { bind(dev) } catch (e) {
 *   if (e instanceof DevrefError && e.code === "EPROBE_DEFER") retryLater();
 * }
 * ```
 */
export class DevrefError<C extends Errno = Errno> extends Error {
  /** The errno name. */
  readonly code: C;
  /** The kernel's positive errno number for {@link code}. */
  readonly errno: number;
  /** Structured facts about the failure; empty when there are none. */
  readonly details: Readonly<Record<string, unknown>>;

  constructor(code: C, message: string, options: DevrefErrorOptions = {}) {
    if (typeof code !== "string" || !Object.hasOwn(ERRNO, code)) {
      // An unknown code would make an error with no errno: say so with one that has one.
      throw new DevrefError(
        "EINVAL",
        `DevrefError: code ${typeof code === "string" ? `'${code}'` : typeof code} is not an errno name devref knows; use one of ${Object.keys(ERRNO).join(", ")}`,
      );
    }
    if (typeof message !== "string") {
      try {
        message = String(message);
      } catch {
        message = "(message could not be turned into text)";
      }
    }
    if (typeof options !== "object" || options === null) options = {};
    super(
      `${code}: ${message}`,
      options.cause === undefined ? undefined : { cause: options.cause },
    );
    this.name = "DevrefError";
    this.code = code;
    this.errno = ERRNO[code];
    this.details = options.details ?? {};
  }

  /** Whether `e` is a {@link DevrefError}, optionally with the given code. */
  static is<C extends Errno>(e: unknown, code?: C): e is DevrefError<C> {
    return e instanceof DevrefError && (code === undefined || e.code === code);
  }
}

// Bundlers may rename the class binding (`_DevrefError`); the name users see in stack
// traces and inspect output is fixed here, on the class and on its prototype (which the
// stack header reads while the error is being constructed).
Object.defineProperty(DevrefError, "name", { value: "DevrefError" });
Object.defineProperty(DevrefError.prototype, "name", {
  value: "DevrefError",
  writable: true,
  configurable: true,
});
