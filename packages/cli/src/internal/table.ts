//! Aligned text tables.

/** Lays `rows` out in columns separated by two spaces; `right` lists right-aligned columns. */
export function table(
  rows: readonly (readonly string[])[],
  right: readonly number[] = [],
): string[] {
  const widths: number[] = [];
  for (const row of rows) {
    row.forEach((cell, i) => {
      widths[i] = Math.max(widths[i] ?? 0, visible(cell).length);
    });
  }
  return rows.map((row) =>
    row
      .map((cell, i) => {
        const pad = " ".repeat((widths[i] ?? 0) - visible(cell).length);
        if (right.includes(i)) return pad + cell;
        return i === row.length - 1 ? cell : cell + pad;
      })
      .join("  "),
  );
}

/** The text without colour escapes (their width on screen). */
function visible(text: string): string {
  // biome-ignore lint/suspicious/noControlCharactersInRegex: colour escapes start with ESC.
  return text.replace(/\u001b\[[0-9;]*m/g, "");
}
