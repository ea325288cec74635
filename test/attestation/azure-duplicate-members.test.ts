/**
 * Azure evidence JSON and an MAA key set (a `/certs` body or a --jwks file) that name a member
 * twice in one object. JSON.parse keeps the last of the two, while a reader of the file (or of the
 * evidence inside a signed attestation document, or another verifier: serde refuses a duplicate
 * field) takes the first: the real fixtures below, with a second copy of a member put in front of
 * the genuine one, verified before. Each is refused naming the member's path, as every other
 * reader of trusted or signed JSON here refuses it (attestation/json-text.ts).
 */
import { mkdtempSync, readFileSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { verifyEvidence } from "../../attestation/azure/cli-verify.ts";
import { parseAzureEvidence } from "../../attestation/azure/evidence.ts";
import { parseMaaJwks, verifyMaaToken } from "../../attestation/azure/maa.ts";
import { verifyAzureEvidence } from "../../attestation/azure/verify.ts";
import { AMD_ROOTS } from "../../attestation/roots/amd.ts";
import { INTEL_ROOTS } from "../../attestation/roots/intel.ts";

const FIXTURES = new URL("../fixtures/attestation/", import.meta.url);
const text = (path: string) => readFileSync(new URL(path, FIXTURES), "utf8");
const SNP_AT = new Date("2026-01-01T00:00:00Z");
const MAA_AT = new Date("2022-05-31T23:00:00Z");
const DIR = mkdtempSync(join(tmpdir(), "cloister-azure-duplicates-"));

/** JSON text of `value` with `member: first` written before the member of that name at `path` (an object path). */
function withEarlierCopy(value: unknown, path: readonly (string | number)[], member: string, first: unknown): string {
  const write = (v: unknown, at: readonly (string | number)[]): string => {
    if (Array.isArray(v)) return `[${v.map((item, i) => write(item, [...at, i])).join(",")}]`;
    if (v === null || typeof v !== "object") return JSON.stringify(v);
    const here = at.length === path.length && at.every((p, i) => p === path[i]);
    const members = Object.entries(v).map(([name, inner]) => {
      const own = `${JSON.stringify(name)}:${write(inner, [...at, name])}`;
      return here && name === member ? `${JSON.stringify(name)}:${JSON.stringify(first)},${own}` : own;
    });
    return `{${members.join(",")}}`;
  };
  return write(value, []);
}

const DUPLICATE = (path: string) =>
  `${path} appears twice in one object \\(the second at position \\d+\\): expected each member once \\(JSON.parse would use the last while a reader sees the first\\); remove one`;

describe("Azure evidence JSON with a member named twice", () => {
  const milanV2 = JSON.parse(text("azure/snp-vtpm/milan-evidence-v2.trustee.json")) as Record<string, unknown>;
  const milanV0 = JSON.parse(text("azure/snp-vtpm/milan-evidence-v0.trustee.json")) as Record<string, unknown>;
  const genoa = JSON.parse(text("azure/snp-vtpm/genoa-evidence.trustee.json")) as Record<string, unknown>;
  const tdx = JSON.parse(text("azure/tdx-vtpm/tdx-evidence-v1.trustee.json")) as Record<string, unknown>;
  const otherVcekDer = parseAzureEvidence(JSON.stringify(milanV0)).vcek as Uint8Array;
  const cases: [string, string, RegExp][] = [
    // Another Milan chip's VCEK first, milan-v2's own last.
    [
      "vcek (another chip's VCEK first)",
      withEarlierCopy(milanV2, [], "vcek", Buffer.from(otherVcekDer).toString("base64url")),
      new RegExp(`^Azure evidence: ${DUPLICATE("vcek")}$`),
    ],
    [
      "tpm_quote.message (genoa's quote first)",
      withEarlierCopy(
        milanV2,
        ["tpm_quote"],
        "message",
        Buffer.from(parseAzureEvidence(JSON.stringify(genoa)).tpmQuote.message).toString("hex"),
      ),
      new RegExp(`^Azure evidence: ${DUPLICATE("tpm_quote\\.message")}$`),
    ],
    [
      "version (v0's absent version read as 2)",
      withEarlierCopy(milanV2, [], "version", 1),
      new RegExp(`^Azure evidence: ${DUPLICATE("version")}$`),
    ],
    [
      "report in v0 evidence (milan's HCL report first)",
      withEarlierCopy(genoa, [], "report", milanV0.report),
      new RegExp(`^Azure evidence: ${DUPLICATE("report")}$`),
    ],
    [
      "td_quote in TDX evidence",
      withEarlierCopy(tdx, [], "td_quote", "AAAA"),
      new RegExp(`^Azure evidence: ${DUPLICATE("td_quote")}$`),
    ],
  ];

  it("the genuine evidence written this way (no duplicate) still parses and verifies", async () => {
    const again = withEarlierCopy(milanV2, ["nowhere"], "vcek", "");
    expect(JSON.parse(again)).toEqual(milanV2);
    const v = await verifyAzureEvidence({
      evidence: parseAzureEvidence(again),
      at: SNP_AT,
      expectedNonce: null,
      snpAnchors: AMD_ROOTS,
      tdxAnchors: INTEL_ROOTS,
    });
    expect(v.kind).toBe("azure-snp");
  });

  it.each(cases)("refuses %s as AZURE_EVIDENCE_MALFORMED naming the member", (_name, json, message) => {
    expect(() => parseAzureEvidence(json)).toThrow(
      expect.objectContaining({ code: "AZURE_EVIDENCE_MALFORMED", message: expect.stringMatching(message) }),
    );
  });

  it("cloister verify-evidence gives the parse refusal as its verdict, not an acceptance", async () => {
    const file = join(DIR, "milan-v2-two-vceks.json");
    writeFileSync(file, (cases[0] as [string, string, RegExp])[1]);
    const verdict = await verifyEvidence({ tee: "azure-snp", evidence: file, at: SNP_AT });
    expect([verdict.valid, verdict.stage, verdict.code]).toEqual([false, "parse", "AZURE_EVIDENCE_MALFORMED"]);
    expect(verdict.reason).toMatch(new RegExp(DUPLICATE("vcek")));
  });

  it("says where text that is not JSON goes wrong, without quoting it", () => {
    const cut = text("azure/snp-vtpm/milan-evidence-v2.trustee.json").slice(0, 100);
    let error: (Error & { code?: string }) | undefined;
    try {
      parseAzureEvidence(cut);
    } catch (caught) {
      error = caught as Error & { code?: string };
    }
    expect(error?.code).toBe("AZURE_EVIDENCE_MALFORMED");
    expect(error?.message).toBe("Azure evidence: expected JSON, found text that is not valid JSON (at position 100)");
    expect(error?.cause).toBeUndefined();
  });
});

describe("MAA key set with a member named twice", () => {
  const JWKS_TEXT = text("azure/maa/jwks-sharedwus-2022-05-31T22-47-56Z.json");
  const TOKEN = text("azure/maa/maa-sgx-sharedwus-2022-05-31.jwt").trim();
  const set = JSON.parse(JWKS_TEXT) as { keys: { kid: string; x5c: string[] }[] };
  const signer = set.keys.findIndex((k) => k.kid === "XxRc2vLh1E5FrsNawnRH3PzuFgqg3q7NvCdnjoJHBGE=");
  const other = set.keys.find((_, i) => i !== signer) as { x5c: string[] };

  it("the token verifies under the key set written this way (no duplicate)", async () => {
    const again = withEarlierCopy(set, ["nowhere"], "x5c", []);
    const v = await verifyMaaToken(TOKEN, { jwks: parseMaaJwks(again), at: MAA_AT, expectedIssuer: null });
    expect(v.kid).toBe("XxRc2vLh1E5FrsNawnRH3PzuFgqg3q7NvCdnjoJHBGE=");
  });

  it.each([
    // A reader of the file sees another certificate (Microsoft's chain) for the signing kid.
    ["x5c of the signing key", withEarlierCopy(set, ["keys", signer], "x5c", other.x5c), `keys\\.${signer}\\.x5c`],
    ["kid of the signing key", withEarlierCopy(set, ["keys", signer], "kid", "another-kid"), `keys\\.${signer}\\.kid`],
    ["keys (an empty set first)", withEarlierCopy(set, [], "keys", []), "keys"],
  ])("refuses %s as MAA_JWKS_INVALID naming the member", async (_name, jwksText, path) => {
    expect(() => parseMaaJwks(jwksText)).toThrow(
      expect.objectContaining({
        code: "MAA_JWKS_INVALID",
        message: expect.stringMatching(new RegExp(`^MAA key set: ${DUPLICATE(path)}$`)),
      }),
    );
    const jwks = join(DIR, "jwks.json");
    const token = join(DIR, "token.jwt");
    writeFileSync(jwks, jwksText);
    writeFileSync(token, TOKEN);
    const verdict = await verifyEvidence({ tee: "maa", token, jwks, at: MAA_AT });
    expect([verdict.valid, verdict.code]).toEqual([false, "MAA_JWKS_INVALID"]);
  });

  it("says where a key set that is not JSON goes wrong, without quoting it", () => {
    expect(() => parseMaaJwks('{"keys": [sk-live-SECRET')).toThrow(
      expect.objectContaining({
        code: "MAA_JWKS_INVALID",
        message: expect.stringMatching(/^MAA key set: expected JSON, found text that is not valid JSON/),
      }),
    );
  });
});
