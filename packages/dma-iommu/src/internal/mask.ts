// The one DMA_BIT_MASK: the inclusive limit of an n-bit DMA address as a number. The public
// dmaBitMask (constants.ts) checks its argument and calls this; the map paths call it on
// bit counts the package has checked.

/** The largest address bit count a `number` mask can hold exactly (2^53 − 1). */
const MAX_MASK_BITS = 53;

/**
 * `DMA_BIT_MASK(bits)` for a checked bit count (0 … 64): masks wider than 53 bits saturate
 * at 2^53 − 1, above every address devref models (52 bits), so they still mean "no limit".
 */
export function maskOf(bits: number): number {
  return 2 ** Math.min(bits, MAX_MASK_BITS) - 1;
}
