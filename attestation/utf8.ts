/**
 * Strict UTF-8, read alike by every reader that refuses bytes that are not UTF-8: signed or hashed
 * JSON (json-text.ts parseUtf8Json: a JWS part, a signed manifest's payload among them, and the HCL
 * report's runtime data), GGUF keys and tensor names, a file an option names and chat's prompt
 * (bounded-read.ts). The text, or where the bytes stop being UTF-8, found once by one
 * rule. The one reader with a strict decoder of its own (TDX collateral's, which drops a leading
 * byte order mark; its scanner then refuses the body) names that place with the same finder once
 * its decoder has refused the bytes (notUtf8Found); GGUF string values, only shown, are read
 * leniently. No Node.js module: the browser bundle imports it.
 */

// Strict: a lossy decode (U+FFFD for each bad sequence) would let other bytes than the signed or
// hashed ones give the same text, which another reader may not. ignoreBOM: a byte order mark is
// kept, for the caller to refuse or keep, rather than dropped unasked: bytes with one and without
// would be two spellings of one text. A call without `stream` starts afresh, so one decoder serves all.
const STRICT_UTF8 = new TextDecoder("utf-8", { fatal: true, ignoreBOM: true });

/** Bytes that are not UTF-8: the offset (from 0) of the first byte of the first sequence that is not. */
export interface NotUtf8At {
  readonly notUtf8At: number;
}

/**
 * `bytes` as text (a byte order mark kept), or, when they are not well-formed UTF-8, where they stop
 * being: looked for only then, by one pass over the bytes.
 */
export function decodeUtf8(bytes: Uint8Array): string | NotUtf8At {
  try {
    return STRICT_UTF8.decode(bytes);
  } catch {
    return { notUtf8At: firstNonUtf8Offset(bytes) };
  }
}

/**
 * A refusal's "found" for bytes a strict decoder refused: where they stop being UTF-8, counted from
 * `start` (the bytes' own offset in the whole the refusal names; 0: they are the whole).
 */
export function notUtf8Found(bytes: Uint8Array, start = 0): string {
  return `bytes that are not UTF-8 (from offset ${start + firstNonUtf8Offset(bytes)})`;
}

/**
 * The offset of the first byte of the first sequence in `bytes` that is not well-formed UTF-8
 * (The Unicode Standard, table 3-7: no overlong forms, no surrogates, nothing past U+10FFFF), or
 * `bytes.length` if there is none. A sequence that goes wrong only at a later byte (a continuation
 * byte out of range, or the end) is named by its first byte, where a streaming decoder's error
 * starts too. One pass over the bytes: for a refusal, once a strict decoder has failed.
 */
function firstNonUtf8Offset(bytes: Uint8Array): number {
  const inRange = (at: number, low: number, high: number) => {
    const b = bytes[at];
    return b !== undefined && b >= low && b <= high;
  };
  let i = 0;
  while (i < bytes.length) {
    const lead = bytes[i] as number;
    // The first continuation byte's range by lead byte; every later one is 80..BF.
    let length: number;
    let low = 0x80;
    let high = 0xbf;
    if (lead <= 0x7f) length = 1;
    else if (lead >= 0xc2 && lead <= 0xdf) length = 2;
    else if (lead >= 0xe0 && lead <= 0xef) {
      length = 3;
      if (lead === 0xe0) low = 0xa0;
      if (lead === 0xed) high = 0x9f;
    } else if (lead >= 0xf0 && lead <= 0xf4) {
      length = 4;
      if (lead === 0xf0) low = 0x90;
      if (lead === 0xf4) high = 0x8f;
    } else return i;
    if (length > 1 && !inRange(i + 1, low, high)) return i;
    for (let k = 2; k < length; k++) if (!inRange(i + k, 0x80, 0xbf)) return i;
    i += length;
  }
  return i;
}
