/**
 * Host-chosen text in attestation errors (a collateral member name, an evidence type, a TCB info
 * id or status, an MAA token's kid or issuer): cut short and without control or format characters.
 * The SDK passes these messages on to the CLI, the proxy's error body and the page.
 */

import { base64url } from "jose";
import { describe, expect, it } from "vitest";
import { parseAzureEvidence } from "../../attestation/azure/evidence.ts";
import { parseAttestationCollateral } from "../../attestation/collateral.ts";
import { type DocumentVerificationOptions, verifyAttestationDocument } from "../../attestation/document.ts";
import { parseDocumentEvidence } from "../../attestation/evidence.ts";
import { parseTdQeIdentity, parseTdxTcbInfo } from "../../attestation/tdx/collateral.ts";
import { describeUntrusted, stringifyJsonVisibly } from "../../attestation/untrusted-text.ts";
import { simulatorAttestationPolicy } from "../../client/dev-policy.ts";
import { thrownBy } from "../helpers/rejections.ts";

/** A right-to-left override, then 5,000 characters: what a host may put in a name. */
const HOSTILE = `\u202e${"x".repeat(5000)}`;

function message(run: () => unknown): string {
  return thrownBy(run, Error).message;
}

function expectClean(text: string): void {
  expect(text).not.toMatch(/[\p{Cc}\p{Cf}]/u);
  expect(text.length).toBeLessThan(300);
}

describe("host text in attestation errors", () => {
  it("an unknown collateral member: the count, and its name cleaned and cut", () => {
    const text = message(() => parseAttestationCollateral({ [HOSTILE]: 1, other: 2 }));
    expectClean(text);
    expect(text).toBe(
      `collateral: expected only "tdx", found 2 other members, the first "\uFFFD${"x".repeat(63)}"… (5001 characters)`,
    );
  });

  it("an evidence type", () => {
    const text = message(() => parseDocumentEvidence({ type: HOSTILE }));
    expectClean(text);
    expect(text).toContain("(5001 characters)");
  });

  it("TCB info and QE identity ids and top-level keys, before their signature is checked", () => {
    const signature = "00".repeat(64);
    for (const run of [
      () => parseTdxTcbInfo(JSON.stringify({ tcbInfo: { id: HOSTILE }, signature })),
      () => parseTdQeIdentity(JSON.stringify({ enclaveIdentity: { id: HOSTILE }, signature })),
      () => parseTdxTcbInfo(JSON.stringify({ tcbInfo: {}, [HOSTILE]: 1, signature })),
    ]) {
      const text = message(run);
      expectClean(text);
      expect(text).toContain("(5001 characters)");
    }
  });

  it("an attestation document's alg and typ, and an Azure evidence version", async () => {
    const part = (value: unknown) => base64url.encode(JSON.stringify(value));
    for (const header of [{ alg: HOSTILE }, { alg: "EdDSA", typ: HOSTILE }]) {
      // Refused while parsing, before any option but the policy, the clock skew and the time (checked first) is looked at.
      const document = `${part(header)}.${part({})}.AA`;
      const options = {
        policy: simulatorAttestationPolicy("sim-snp", "00".repeat(48)),
        maxClockSkewSeconds: 60,
        at: new Date(),
      };
      const error = await verifyAttestationDocument(document, options as DocumentVerificationOptions).then(
        () => "accepted",
        (e: Error) => e.message,
      );
      expectClean(error);
      expect(error).toContain("(5001 characters)");
    }
    const azure = message(() => parseAzureEvidence(JSON.stringify({ version: HOSTILE })));
    expectClean(azure);
    expect(azure).toContain("(5001 characters)");
  });

  it("describeUntrusted: short strings quoted, control characters shown as U+FFFD, other values by kind", () => {
    expect(describeUntrusted("TDX")).toBe('"TDX"');
    expect(describeUntrusted("a\u001b[2Jb\u2028")).toBe('"a\uFFFD[2Jb\uFFFD"');
    expect(describeUntrusted(7)).toBe("7");
    expect(describeUntrusted(undefined)).toBe("nothing");
    expect(describeUntrusted({ a: HOSTILE })).toBe("an object");
    expect(describeUntrusted([HOSTILE])).toBe("an array of 1 item");
  });
});

describe("stringifyJsonVisibly", () => {
  it("escapes C1 controls, format characters and separators, and reads back as the same value", () => {
    // U+009B (CSI), U+202E (right-to-left override) after a backslash, U+2028, U+E0001 (a format
    // character outside the BMP), a tab and a line break (JSON.stringify's own escapes).
    const value = { name: "a\u009bb\\\u202ec\u2028d\u{E0001}e\tf\ng", n: 1 };
    const text = stringifyJsonVisibly(value, 2);
    expect(text).toBe('{\n  "name": "a\\u009bb\\\\\\u202ec\\u2028d\\udb40\\udc01e\\tf\\ng",\n  "n": 1\n}');
    expect(JSON.parse(text)).toEqual(value);
  });
});
