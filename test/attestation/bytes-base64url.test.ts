/**
 * fromBase64url against an oracle that works the answer out another way: the first character
 * outside the alphabet, then the length, then whether Node's own decoder and encoder (Buffer, not
 * jose's, which fromBase64url uses) write the text back as given, which is what one spelling per
 * byte string means. On every generated input both must agree: accept with the same bytes, or
 * refuse with the same error class, code and message.
 */

import { describe, expect, it } from "vitest";
import { fromBase64url } from "../../attestation/bytes.ts";
import { describeUntrusted } from "../../attestation/untrusted-text.ts";

type Outcome = { accepted: number[] } | { refused: string; code: unknown; message: string };

/** The answer a strict decoder must give for `text`, as `outcome` reports it (field "part"). */
function expectedOutcome(text: string): Outcome {
  const refused = (found: string): Outcome => ({
    refused: "ParseError",
    code: "BAD_BASE64",
    message: `part: expected base64url (A-Z, a-z, 0-9, "-", "_"; no padding; unused bits zero), found ${found}`,
  });
  for (let i = 0; i < text.length; i++) {
    if (!ALPHABET.includes(text.charAt(i))) return refused(`${describeUntrusted(text.charAt(i))} at character ${i}`);
  }
  if (text.length % 4 === 1) return refused(`a length of 4k+1 (${text.length} characters)`);
  const bytes = Buffer.from(text, "base64url");
  return bytes.toString("base64url") === text
    ? { accepted: Array.from(bytes) }
    : refused("unused bits set in its last character");
}

function outcome(decode: (text: string, field: string) => Uint8Array, text: string): Outcome {
  try {
    return { accepted: Array.from(decode(text, "part")) };
  } catch (error) {
    return {
      refused: (error as Error).constructor.name,
      code: (error as { code?: unknown }).code,
      message: (error as Error).message,
    };
  }
}

const ALPHABET = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
/** What a strict decoder must refuse somewhere in a text, each spelled the way an attacker might. */
const FOREIGN = [
  "=",
  "==",
  " ",
  "\n",
  "\t",
  "\r\n",
  "+",
  "/",
  ".",
  "\0",
  "é",
  "\u00a0",
  "\uff21",
  "😀",
  "\ud800",
  "\u202e",
];

/** A fixed-seed generator (mulberry32): the same inputs every run. */
function random(seed: number): () => number {
  let a = seed;
  return () => {
    a = (a + 0x6d2b79f5) | 0;
    let t = Math.imul(a ^ (a >>> 15), 1 | a);
    t = (t + Math.imul(t ^ (t >>> 7), 61 | t)) ^ t;
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

function inputs(): string[] {
  const next = random(23);
  const pick = (from: string | readonly string[]): string => from[Math.floor(next() * from.length)] as string;
  const word = (length: number): string => Array.from({ length }, () => pick(ALPHABET)).join("");
  const out: string[] = [""];
  for (let length = 1; length <= 40; length++) {
    for (let prefix = 0; prefix < 3; prefix++) {
      const head = word(length - 1);
      // Every last character: all four residues of the length, every value of the unused bits.
      for (const last of ALPHABET) out.push(head + last);
      const text = word(length);
      // Padded as a base64 encoder would pad it, and with any amount of padding.
      out.push(text + "=".repeat((4 - (length % 4)) % 4), `${text}=`, `${text}==`, `${text}===`);
      // One foreign character (or several) anywhere: start, middle, end.
      for (const foreign of FOREIGN) {
        const at = Math.floor(next() * (length + 1));
        out.push(text.slice(0, at) + foreign + text.slice(at), foreign + text, text + foreign);
      }
    }
  }
  return out;
}

describe("fromBase64url: the same answer as Node's decoder and encoder, round trip", () => {
  const cases = inputs();

  it("agrees with the oracle on every generated input", () => {
    const disagreements: string[] = [];
    for (const text of cases) {
      const expected = expectedOutcome(text);
      const found = outcome(fromBase64url, text);
      if (JSON.stringify(found) !== JSON.stringify(expected)) {
        disagreements.push(
          `${JSON.stringify(text)}: expected ${JSON.stringify(expected)}, found ${JSON.stringify(found)}`,
        );
      }
    }
    expect(disagreements.slice(0, 5)).toEqual([]);
  });

  it("the inputs reach every answer: acceptance and each kind of refusal, all as ParseError BAD_BASE64", () => {
    const kinds = new Map<string, number>();
    for (const text of cases) {
      const result = expectedOutcome(text);
      const kind =
        "accepted" in result
          ? "accepted"
          : `${result.refused} ${String(result.code)} ${result.message
              .replace(/.*, found /, "")
              .replace(/^".*" at character \d+$/, "a foreign character")
              .replace(/\(\d+ characters\)/, "(n)")}`;
      kinds.set(kind, (kinds.get(kind) ?? 0) + 1);
    }
    expect(new Set(kinds.keys())).toEqual(
      new Set([
        "accepted",
        "ParseError BAD_BASE64 a foreign character",
        "ParseError BAD_BASE64 a length of 4k+1 (n)",
        "ParseError BAD_BASE64 unused bits set in its last character",
      ]),
    );
    for (const count of kinds.values()) expect(count).toBeGreaterThan(100);
  });
});
