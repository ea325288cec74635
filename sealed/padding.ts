/**
 * Length padding, so that the host — which sees every envelope and frame length — learns little
 * more than the order of magnitude of a prompt or of a frame's text.
 *
 * Lengths are rounded up to a multiple of a block (small messages all look alike) and, for larger
 * ones, with Padmé (Nikitin et al., "Reducing Metadata Leakage from Encrypted Files and
 * Communication with PURBs", PETS 2019): a length L with floor(log2 L) = E is rounded up to a
 * multiple of 2^(E - floor(log2 E) - 1), so only its leading one and the floor(log2 E) + 1 bits
 * after it show: a padded length reveals O(log log L) bits of L at an overhead of at most 12 %.
 */

/** Padmé length of `length` (a positive safe integer below 2^31). */
export function padme(length: number): number {
  if (length <= 2) return length;
  const e = 31 - Math.clz32(length); // floor(log2 length)
  const s = 32 - Math.clz32(e); // floor(log2 e) + 1
  const step = 2 ** (e - s);
  return Math.ceil(length / step) * step;
}

/** `length` rounded up to a multiple of `block`, and at least to its Padmé length. */
export function paddedLength(length: number, block: number): number {
  return Math.max(Math.ceil(length / block) * block, padme(length));
}

/** Response frame plaintexts (type ‖ payload ‖ 0x80 ‖ zeros) are padded in blocks of this many bytes. */
export const FRAME_PAD_BLOCK = 32;
/** Request ciphertexts are padded, with spaces (0x20) only, in blocks of this many bytes. */
export const REQUEST_PAD_BLOCK = 256;
/** The byte that ends a frame's content, followed only by zero bytes (ISO/IEC 7816-4 padding). */
export const FRAME_PAD_MARKER = 0x80;
