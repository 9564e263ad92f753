//! How failures leave the command: one line naming the errno, and an exit status.

import { DevrefError } from "@devref/raw-device";

/** Exit statuses of `devref`. */
export const EXIT: {
  readonly ok: 0;
  readonly failed: 1;
  readonly error: 2;
  readonly internal: 3;
} = Object.freeze({
  /** The command did its job and found nothing wrong. */
  ok: 0,
  /** A scenario run or exploration found a failure: a leak, a use after free, a non-DevrefError exception. */
  failed: 1,
  /** The command could not do its job: bad arguments, an unreadable file, a DevrefError. */
  error: 2,
  /** Something other than a DevrefError escaped the command itself: a bug in devref. */
  internal: 3,
});

/** A bad command line, as a DevrefError (`EINVAL`) whose message says how to fix it. */
export function usageError(message: string): DevrefError {
  return new DevrefError("EINVAL", message);
}

/** The one-line text of an error, and whether it is a DevrefError. */
export function describeError(e: unknown): { code: string; message: string; devref: boolean } {
  if (e instanceof DevrefError) {
    // The message starts with the code already ("EINVAL: ..."); the code is printed once.
    const text = e.message.startsWith(`${e.code}: `)
      ? e.message.slice(e.code.length + 2)
      : e.message;
    return { code: e.code, message: oneLine(text), devref: true };
  }
  if (e instanceof Error)
    return { code: "EBUG", message: oneLine(`${e.name}: ${e.message}`), devref: false };
  return { code: "EBUG", message: oneLine(String(e)), devref: false };
}

function oneLine(text: string): string {
  return text.replace(/\s*\n\s*/g, " ").trim();
}

/** A file that could not be read or written, as a DevrefError naming it and what to check. */
export function fileError(verb: "read" | "write", file: string, e: unknown): DevrefError {
  const sys = typeof e === "object" && e !== null && "code" in e ? String(e.code) : "";
  const code =
    sys === "ENOENT"
      ? "ENOENT"
      : sys === "EACCES" || sys === "EPERM"
        ? "EPERM"
        : sys === "EISDIR"
          ? "EINVAL"
          : "EIO";
  const why =
    sys === "ENOENT"
      ? verb === "read"
        ? "no such file"
        : "its directory does not exist"
      : sys === "EISDIR"
        ? "it is a directory"
        : sys === "EACCES" || sys === "EPERM"
          ? "permission denied"
          : sys || "input/output error";
  return new DevrefError(code, `cannot ${verb} ${file}: ${why}`, { cause: e });
}
