//! C strings out of shared memory: what `%s` prints of a byte range, without trusting it to
//! hold a NUL.

const utf8 = new TextDecoder("utf-8", { fatal: false });

/**
 * The text of `bytes[start, end)` up to its first NUL (or all of it), decoded as UTF-8 with
 * replacement characters for invalid sequences; plain ASCII takes a fast path.
 */
export function cString(bytes: Uint8Array, start: number, end: number): string {
  let stop = start;
  let ascii = true;
  while (stop < end) {
    const b = bytes[stop]!;
    if (b === 0) break;
    if (b >= 0x80) ascii = false;
    stop++;
  }
  if (!ascii) return utf8.decode(bytes.subarray(start, stop));
  let s = "";
  for (let i = start; i < stop; i++) s += String.fromCharCode(bytes[i]!);
  return s;
}

/** Whether the kernel crops `c` from the end of a syslog message: `\n`, `\r`, space or NUL. */
export function isCroppedSyslogByte(c: number): boolean {
  return c === 0x0a || c === 0x0d || c === 0x20 || c === 0;
}
