/**
 * Strict UTF-8 (attestation/utf8.ts): the one finder of where bytes stop being UTF-8, behind a JWS
 * part's refusal ("from offset N", counted from 0) and a file's or chat prompt's ("byte N", from 1).
 */
import { describe, expect, it } from "vitest";
import { decodeUtf8, notUtf8Found } from "../../attestation/utf8.ts";

/**
 * Where a streaming WHATWG decoder fed one byte at a time first throws, as the start of the sequence
 * it was in (after the last byte that completed a character): how the file readers found the byte
 * before this finder served them too. The reference the finder is held to.
 */
function streamingOffset(bytes: Uint8Array): number | string {
  const decoder = new TextDecoder("utf-8", { fatal: true, ignoreBOM: true });
  let start = 0;
  let text = "";
  for (let i = 0; i < bytes.length; i += 1) {
    try {
      const decoded = decoder.decode(bytes.subarray(i, i + 1), { stream: true });
      text += decoded;
      if (decoded !== "") start = i + 1;
    } catch {
      return start;
    }
  }
  try {
    return text + decoder.decode();
  } catch {
    return start;
  }
}

describe("decodeUtf8", () => {
  it("returns the text of UTF-8, a byte order mark kept", () => {
    const text = "\uFEFFa é ✓ 😀";
    expect(decodeUtf8(Buffer.from(text, "utf8"))).toBe(text);
    expect(decodeUtf8(new Uint8Array(0))).toBe("");
  });

  // Offsets from 0. Table 3-7 of The Unicode Standard: each lead byte's range for its first
  // continuation byte; a sequence wrong at a later byte is named by its first.
  const cases: readonly (readonly [string, readonly number[], number])[] = [
    ["a lone continuation byte", [0x61, 0x80], 1],
    ["C0 and C1, leads only of overlong forms", [0xc1, 0xbf], 0],
    ["F5 to FF, leads of nothing", [0x61, 0xf5, 0x80, 0x80, 0x80], 1],
    ["E0 then 9F: an overlong three-byte form", [0xe0, 0x9f, 0xbf], 0],
    ["ED then A0: a surrogate", [0x61, 0xed, 0xa0, 0x80], 1],
    ["F0 then 8F: an overlong four-byte form", [0xf0, 0x8f, 0xbf, 0xbf], 0],
    ["F4 then 90: past U+10FFFF", [0xf4, 0x90, 0x80, 0x80], 0],
    ["a four-byte sequence wrong at its last byte", [0x61, 0xf0, 0x9f, 0x98, 0x61], 1],
    ["a two-byte sequence cut short by the end", [0x61, 0x62, 0xc3], 2],
    ["a four-byte sequence cut short by the end", [0xf0, 0x9f, 0x98], 0],
    ["after every width, a lone FF", [0x61, 0xc3, 0xa9, 0xe2, 0x9c, 0x93, 0xf0, 0x9f, 0x98, 0x80, 0xff], 10],
  ];
  for (const [name, bytes, at] of cases) {
    it(`${name}: from offset ${at}`, () => {
      expect(decodeUtf8(Uint8Array.from(bytes))).toEqual({ notUtf8At: at });
      expect(streamingOffset(Uint8Array.from(bytes))).toBe(at);
    });
  }

  it("agrees with a streaming decoder fed byte by byte, on 20,000 inputs mostly of bytes past 7F", () => {
    // A fixed-seed generator (xorshift32): the same inputs every run.
    let state = 0x2545f491;
    const next = () => {
      state ^= state << 13;
      state ^= state >>> 17;
      state ^= state << 5;
      return state >>> 0;
    };
    // Bytes drawn mostly where UTF-8's rules are: lead bytes, continuation bytes and table 3-7's edges.
    const interesting = [0x00, 0x7f, 0x80, 0x8f, 0x90, 0x9f, 0xa0, 0xbf, 0xc0, 0xc1, 0xc2, 0xdf, 0xe0, 0xed, 0xef];
    interesting.push(0xf0, 0xf4, 0xf5, 0xff);
    let invalid = 0;
    for (let n = 0; n < 20_000; n += 1) {
      const bytes = Uint8Array.from({ length: next() % 9 }, () =>
        next() % 3 === 0 ? next() % 256 : (interesting[next() % interesting.length] as number),
      );
      const found = decodeUtf8(bytes);
      const expected = streamingOffset(bytes);
      if (typeof expected === "number") invalid += 1;
      expect(found, Buffer.from(bytes).toString("hex")).toEqual(
        typeof expected === "string" ? expected : { notUtf8At: expected },
      );
    }
    // Both kinds were drawn often (else the agreement says little).
    expect(invalid).toBeGreaterThan(5_000);
    expect(invalid).toBeLessThan(19_000);
  });
});

describe("notUtf8Found", () => {
  // An offset into a structure (a JWS part, collateral, runtime data) counts from 0 and says so
  // ("offset"); a file's byte, which an editor shows, counts from 1 ("byte N of the file").
  it("names the offset, from 0, of the first bad byte in the whole the refusal names", () => {
    expect(notUtf8Found(Uint8Array.from([0xff]))).toBe("bytes that are not UTF-8 (from offset 0)");
    expect(notUtf8Found(Uint8Array.from([0x61, 0xc3]), 4)).toBe("bytes that are not UTF-8 (from offset 5)");
  });
});
