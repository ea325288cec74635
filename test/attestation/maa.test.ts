import { generateKeyPairSync } from "node:crypto";
import { readFileSync } from "node:fs";
import { decodeJwt, decodeProtectedHeader, exportJWK, importX509, type JSONWebKeySet } from "jose";
import { describe, expect, it } from "vitest";
import { createMaaJwksGetter, parseMaaJwks, VerifiedMaaToken, verifyMaaToken } from "../../attestation/azure/maa.ts";
import { base64ToBytes, parseCertificate } from "../../attestation/x509.ts";
import { rejection } from "../helpers/attestation.ts";
import { TEST_MAA_KID, testMaaSigner } from "../helpers/maa-token.ts";

const FIXTURES = new URL("../fixtures/attestation/", import.meta.url);
const EXPECTED = JSON.parse(readFileSync(new URL("EXPECTED.json", FIXTURES), "utf8")) as {
  maa: Record<string, MaaRow | JwksRow[]>;
};

interface MaaRow {
  jwks_a: { kid_found: boolean; sig_valid: boolean | null; alg: string };
  header: Record<string, string>;
  iss: string;
  iat: number;
  nbf: number;
  exp: number;
  type: string;
  sgx_mrenclave: string | null;
  sgx_mrsigner: string | null;
  sgx_report_data: string | null;
  is_debuggable: boolean | null;
  runtime: unknown;
  snp_meas: string | null;
  snp_rd: string | null;
  snp_hostdata: string | null;
}
interface JwksRow {
  kid: string;
  n_x5c: number;
  leaf: string;
  validity: [string, string];
  has_sgx_quote_ext: boolean;
}

const JWKS_PATH = "azure/maa/jwks-sharedwus-2022-05-31T22-47-56Z.json";
const jwks = parseMaaJwks(readFileSync(new URL(JWKS_PATH, FIXTURES), "utf8"));
const token = (name: string) => readFileSync(new URL(`azure/maa/${name}`, FIXTURES), "utf8");
const AT = new Date("2022-05-31T23:00:00Z");

/** What each fixture must yield: null = accepted at AT, else the error code. */
const VERDICTS: Record<string, string | null> = {
  "azure/maa/maa-sevsnpvm-sharedweu-test-2025-04-08.jwt": "MAA_UNKNOWN_KEY",
  "azure/maa/maa-sgx-draft-policy-alg-none-sharedwus-2022-05-31.jwt": "MAA_ALG_NOT_ALLOWED",
  "azure/maa/maa-sgx-runtime-jwk-sharedwus-2022-05-31.jwt": null,
  "azure/maa/maa-sgx-sharedwus-2022-05-31-tampered-payload.jwt": "MAA_SIGNATURE_INVALID",
  "azure/maa/maa-sgx-sharedwus-2022-05-31-tampered-signature.jwt": "MAA_SIGNATURE_INVALID",
  "azure/maa/maa-sgx-sharedwus-2022-05-31.jwt": null,
};

const tokenRows = Object.entries(EXPECTED.maa).filter(([path]) => path.endsWith(".jwt")) as [string, MaaRow][];

describe("MAA token verification against EXPECTED.json", () => {
  it("has a verdict for every MAA token row", () => {
    expect(tokenRows.map(([p]) => p).sort()).toEqual(Object.keys(VERDICTS).sort());
  });

  it.each(tokenRows)("%s", async (path, row) => {
    const text = readFileSync(new URL(path, FIXTURES), "utf8");
    // The fixture is what the row says it is (header and claims, read without trusting them).
    expect(decodeProtectedHeader(text)).toEqual(row.header);
    const unverified = decodeJwt(text);
    expect([unverified.iss, unverified.iat, unverified.nbf, unverified.exp]).toEqual([
      row.iss,
      row.iat,
      row.nbf,
      row.exp,
    ]);
    expect(unverified["x-ms-attestation-type"]).toBe(row.type);
    if (row.snp_meas !== null) {
      expect(unverified["x-ms-sevsnpvm-launchmeasurement"]).toBe(row.snp_meas);
      expect(unverified["x-ms-sevsnpvm-reportdata"]).toBe(row.snp_rd);
      expect(unverified["x-ms-sevsnpvm-hostdata"]).toBe(row.snp_hostdata);
    }

    const verdict = VERDICTS[path];
    expect(verdict === null).toBe(row.jwks_a.sig_valid === true);
    const at = new Date((row.iat + 60) * 1000);
    if (verdict === null) {
      const verified = await verifyMaaToken(text, { jwks, at, expectedIssuer: row.iss });
      expect(verified.kid).toBe(row.header.kid);
      expect(verified.attestationType).toBe(row.type);
      expect(verified.issuer).toBe(row.iss);
      expect(verified.expiresAt.getTime()).toBe(row.exp * 1000);
      expect(verified.claims["x-ms-sgx-mrenclave"]).toBe(row.sgx_mrenclave);
      expect(verified.claims["x-ms-sgx-mrsigner"]).toBe(row.sgx_mrsigner);
      expect(verified.claims["x-ms-sgx-report-data"]).toBe(row.sgx_report_data);
      expect(verified.claims["x-ms-sgx-is-debuggable"]).toBe(row.is_debuggable);
      expect(verified.claims["x-ms-runtime"] ?? null).toEqual(row.runtime);
      // and the same token is refused once expired, and before nbf
      const late = await rejection(
        verifyMaaToken(text, { jwks, at: new Date((row.exp + 1) * 1000), expectedIssuer: null }),
      );
      expect(late.code).toBe("MAA_TOKEN_EXPIRED");
      const early = await rejection(
        verifyMaaToken(text, { jwks, at: new Date((row.nbf - 1) * 1000), expectedIssuer: null }),
      );
      expect(early.code).toBe("MAA_TOKEN_NOT_YET_VALID");
    } else {
      const error = await rejection(verifyMaaToken(text, { jwks, at, expectedIssuer: null }));
      expect(error.code).toBe(verdict);
      expect(error.message).not.toContain(text.split(".")[2] || "\u0000");
    }
  });

  it("fails closed with MAA_UNKNOWN_KEY for the sevsnpvm token with an empty key set", async () => {
    const error = await rejection(
      verifyMaaToken(token("maa-sevsnpvm-sharedweu-test-2025-04-08.jwt"), {
        jwks: { keys: [] },
        at: new Date("2025-04-08T05:00:00Z"),
        expectedIssuer: null,
      }),
    );
    expect(error.code).toBe("MAA_UNKNOWN_KEY");
    expect(error.stage).toBe("verify");
  });

  it("matches the JWKS rows (kid, chain length, leaf subject, validity)", () => {
    const rows = EXPECTED.maa[JWKS_PATH] as JwksRow[];
    expect(jwks.keys.map((k) => k.kid)).toEqual(rows.map((r) => r.kid));
    rows.forEach((row, i) => {
      const key = jwks.keys[i] as { x5c: string[] };
      expect(key.x5c).toHaveLength(row.n_x5c);
      const leaf = parseCertificate(base64ToBytes(key.x5c[0] as string));
      // EXPECTED writes names most-specific first (RFC 4514); x509.ts keeps DER order.
      expect(leaf.subject.split(",").sort()).toEqual(row.leaf.split(",").sort());
      expect(leaf.notBefore.toISOString()).toBe(new Date(row.validity[0].replace(" ", "T")).toISOString());
      expect(leaf.notAfter.toISOString()).toBe(new Date(row.validity[1].replace(" ", "T")).toISOString());
      expect(leaf.extensions.has("1.3.6.1.4.1.311.105.1")).toBe(row.has_sgx_quote_ext);
    });
  });
});

describe("MAA token verification rules", () => {
  const good = token("maa-sgx-sharedwus-2022-05-31.jwt").trim();
  const [, payload, signature] = good.split(".") as [string, string, string];
  const withHeader = (header: object) =>
    `${Buffer.from(JSON.stringify(header)).toString("base64url")}.${payload}.${signature}`;

  it.each(["HS256", "RS512", "PS256", "ES256", "none"])(
    "refuses alg %s before looking at the key or claims",
    async (alg) => {
      const error = await rejection(
        verifyMaaToken(withHeader({ alg, kid: "XxRc2vLh1E5FrsNawnRH3PzuFgqg3q7NvCdnjoJHBGE=" }), {
          jwks: { keys: [] },
          at: AT,
          expectedIssuer: null,
        }),
      );
      expect(error.code).toBe("MAA_ALG_NOT_ALLOWED");
    },
  );

  it("refuses a token without kid, and a kid that differs only in case", async () => {
    expect(
      (await rejection(verifyMaaToken(withHeader({ alg: "RS256" }), { jwks, at: AT, expectedIssuer: null }))).code,
    ).toBe("MAA_UNKNOWN_KEY");
    const error = await rejection(
      verifyMaaToken(withHeader({ alg: "RS256", kid: "xxrc2vlh1e5frsnawnrh3pzufgqg3q7nvcdnjojhbge=" }), {
        jwks,
        at: AT,
        expectedIssuer: null,
      }),
    );
    expect(error.code).toBe("MAA_UNKNOWN_KEY");
  });

  it("checks the issuer when one is expected, as the exact string (RFC 7519 StringOrURI)", async () => {
    const error = await rejection(
      verifyMaaToken(good, { jwks, at: AT, expectedIssuer: "https://sharedeus.eus.attest.azure.net" }),
    );
    expect(error.code).toBe("MAA_ISSUER_MISMATCH");
    // good's iss is https://sharedwus.wus.attest.azure.net: a prefix of it, or another case, is another issuer.
    for (const expectedIssuer of ["https://sharedwus.wus.attest.azure", "https://SHAREDWUS.wus.attest.azure.net"]) {
      expect((await rejection(verifyMaaToken(good, { jwks, at: AT, expectedIssuer }))).code).toBe(
        "MAA_ISSUER_MISMATCH",
      );
    }
  });

  it("needs an explicit issuer decision: a string, or null to leave iss to the caller (MAA_EXPECTED_ISSUER_MISSING)", async () => {
    // A key set can hold keys that sign for more than one instance (the CA-issued "Microsoft Azure
    // Attestation 2020" keys name no instance): only iss says whose policy issued the token.
    const undecided = { jwks, at: AT } as unknown as Parameters<typeof verifyMaaToken>[1];
    for (const expectedIssuer of [undefined, "", 7]) {
      const options = { ...undecided, expectedIssuer } as unknown as Parameters<typeof verifyMaaToken>[1];
      const error = await rejection(verifyMaaToken(good, options));
      expect([error.code, error.stage]).toEqual(["MAA_EXPECTED_ISSUER_MISSING", "configuration"]);
      expect(error.message).toBe(
        "expectedIssuer: expected the MAA instance URL the token's iss must equal, or null to check iss elsewhere",
      );
    }
    expect((await verifyMaaToken(good, { jwks, at: AT, expectedIssuer: null })).issuer).toBe(
      "https://sharedwus.wus.attest.azure.net",
    );
  });

  it("checks the signing certificate's validity at the verification time", async () => {
    const error = await rejection(
      verifyMaaToken(good, { jwks, at: new Date("2018-01-01T00:00:00Z"), expectedIssuer: null }),
    );
    expect(error.code).toBe("MAA_SIGNING_CERT_NOT_YET_VALID");
    // The key is judged before the token's own lifetime: after the certificate's notAfter (2050-12-31).
    const late = await rejection(
      verifyMaaToken(good, { jwks, at: new Date("2051-01-01T00:00:00Z"), expectedIssuer: null }),
    );
    expect(late.code).toBe("MAA_SIGNING_CERT_EXPIRED");
    const noTime = await rejection(verifyMaaToken(good, { jwks, at: new Date(Number.NaN), expectedIssuer: null }));
    expect([noTime.code, noTime.message]).toEqual(["MAA_BAD_TIME", "at: expected a valid Date"]);
  });

  it("refuses the token from its exp second on (RFC 7519 4.1.4: on or after exp)", async () => {
    const exp = 1654066076 * 1000;
    const atExp = await rejection(verifyMaaToken(good, { jwks, at: new Date(exp), expectedIssuer: null }));
    expect([atExp.code, atExp.message]).toEqual([
      "MAA_TOKEN_EXPIRED",
      "MAA token: exp 2022-06-01T06:47:56.000Z expected after the verification time 2022-06-01T06:47:56.000Z, found at or before it",
    ]);
    expect(
      (await verifyMaaToken(good, { jwks, at: new Date(exp - 1), expectedIssuer: null })).expiresAt.getTime(),
    ).toBe(exp);
    // With a tolerance, the same boundary moves by exactly the tolerance.
    const tolerated = { jwks, clockToleranceSeconds: 60, expectedIssuer: null };
    expect((await rejection(verifyMaaToken(good, { ...tolerated, at: new Date(exp + 60_000) }))).code).toBe(
      "MAA_TOKEN_EXPIRED",
    );
    expect((await verifyMaaToken(good, { ...tolerated, at: new Date(exp + 59_999) })).attestationType).toBe("sgx");
  });

  it("honours a bounded clock tolerance", async () => {
    const justExpired = new Date((1654066076 + 30) * 1000);
    expect((await rejection(verifyMaaToken(good, { jwks, at: justExpired, expectedIssuer: null }))).code).toBe(
      "MAA_TOKEN_EXPIRED",
    );
    expect(
      (await verifyMaaToken(good, { jwks, at: justExpired, clockToleranceSeconds: 60, expectedIssuer: null }))
        .attestationType,
    ).toBe("sgx");
    expect(
      (await rejection(verifyMaaToken(good, { jwks, at: AT, clockToleranceSeconds: 3600, expectedIssuer: null }))).code,
    ).toBe("MAA_CLOCK_TOLERANCE_RANGE");
  });

  it("refuses a key whose JWK n disagrees with its certificate, and a kid listed twice", async () => {
    const first = jwks.keys[0] as Record<string, unknown>;
    const liar: JSONWebKeySet = { keys: [{ ...first, n: "AQAB", e: "AQAB" }] } as JSONWebKeySet;
    expect((await rejection(verifyMaaToken(good, { jwks: liar, at: AT, expectedIssuer: null }))).code).toBe(
      "MAA_JWKS_INVALID",
    );
    const twice = { keys: [first, first] } as JSONWebKeySet;
    expect((await rejection(verifyMaaToken(good, { jwks: twice, at: AT, expectedIssuer: null }))).code).toBe(
      "MAA_JWKS_INVALID",
    );
  });

  it("refuses a key whose x5c[0] is base64 but not a certificate, as MAA_JWKS_INVALID naming the kid", async () => {
    const first = jwks.keys[0] as Record<string, unknown> & { kid: string; x5c: string[] };
    const cut = (first.x5c[0] as string).slice(0, 400); // base64 of the first 300 bytes of the DER
    const broken = { keys: [{ ...first, x5c: [cut, ...first.x5c.slice(1)] }] } as JSONWebKeySet;
    const error = await rejection(verifyMaaToken(good, { jwks: broken, at: AT, expectedIssuer: null }));
    expect(error.code).toBe("MAA_JWKS_INVALID");
    expect(error.message).toContain(`key ${JSON.stringify(first.kid)} x5c[0] expected a DER certificate`);
    expect(error.message).toContain("DER_TRUNCATED");
  });

  it("rejects text that is not a compact JWS", async () => {
    expect((await rejection(verifyMaaToken("not a token", { jwks, at: AT, expectedIssuer: null }))).code).toBe(
      "MAA_TOKEN_MALFORMED",
    );
    expect((await rejection(verifyMaaToken("e30.e30", { jwks, at: AT, expectedIssuer: null }))).code).toBe(
      "MAA_TOKEN_MALFORMED",
    );
  });
});

describe("MAA token verification: boundaries, key-set entries and claim types", () => {
  const good = token("maa-sgx-sharedwus-2022-05-31.jwt").trim();
  const [, payload, signature] = good.split(".") as [string, string, string];
  const withHeader = (header: object) =>
    `${Buffer.from(JSON.stringify(header)).toString("base64url")}.${payload}.${signature}`;
  const first = jwks.keys[0] as Record<string, unknown> & { kid: string; x5c: string[] };
  /** n and e of the first key's certificate, as a JWK states them. */
  const certificateKey = async () => {
    const pem = `-----BEGIN CERTIFICATE-----\n${first.x5c[0]}\n-----END CERTIFICATE-----`;
    return exportJWK(await importX509(pem, "RS256", { extractable: true }));
  };
  /** A token of the test key valid from NBF for an hour, with `change` applied to its claims. */
  const NBF = 1_700_000_000;
  const claims = (change: Record<string, unknown> = {}) => ({
    iss: "https://cloister-test.attest.example",
    nbf: NBF,
    exp: NBF + 3600,
    "x-ms-attestation-type": "sevsnpvm",
    ...change,
  });
  const at = (seconds: number) => new Date(seconds * 1000);
  const TWICE = "appears twice in one object";
  const ONCE = "expected each member once (JSON.parse would use the last while a reader sees the first); remove one";
  const ISS_TWICE = JSON.stringify(claims()).replace('"iss":', '"iss":"https://attacker.example","iss":');
  const KID_TWICE = JSON.stringify(claims({ "x-ms-runtime": { keys: [{ kid: "x" }] } })).replace(
    '"kid":"x"',
    '"kid":"y","kid":"x"',
  );

  it("names no key by an empty kid, nor by a prefix of one", async () => {
    const emptyKid = { keys: [{ ...first, kid: "" }] } as JSONWebKeySet;
    const empty = await rejection(
      verifyMaaToken(withHeader({ alg: "RS256", kid: "" }), { jwks: emptyKid, at: AT, expectedIssuer: null }),
    );
    expect(empty.code).toBe("MAA_UNKNOWN_KEY");
    const prefix = await rejection(
      verifyMaaToken(withHeader({ alg: "RS256", kid: first.kid.slice(0, -1) }), { jwks, at: AT, expectedIssuer: null }),
    );
    expect(prefix.code).toBe("MAA_UNKNOWN_KEY");
  });

  it("refuses a JWK whose e, or whose n alone, disagrees with its certificate; takes one stating both as it", async () => {
    const { n, e } = await certificateKey();
    for (const key of [
      { ...first, n, e: "Aw" },
      { ...first, n: "AQAB" },
    ]) {
      const error = await rejection(
        verifyMaaToken(good, { jwks: { keys: [key] } as JSONWebKeySet, at: AT, expectedIssuer: null }),
      );
      expect([error.code, error.message]).toEqual([
        "MAA_JWKS_INVALID",
        `MAA key set: key ${JSON.stringify(first.kid)} expected n/e equal to its x5c[0] certificate's key, found different values`,
      ]);
    }
    const honest = { keys: [{ ...first, n, e }] } as JSONWebKeySet;
    expect((await verifyMaaToken(good, { jwks: honest, at: AT, expectedIssuer: null })).kid).toBe(first.kid);
  });

  it("refuses a key whose certificate is not RSA, as MAA_JWKS_INVALID naming the kid", async () => {
    const { sign, certificateFor } = await testMaaSigner();
    const ec = generateKeyPairSync("ec", { namedCurve: "P-256" }).publicKey.export({ type: "spki", format: "der" });
    const certificate = certificateFor(new Uint8Array(ec));
    const ecSet = { keys: [{ kid: TEST_MAA_KID, kty: "EC", x5c: [certificate] }] };
    const error = await rejection(
      verifyMaaToken(await sign(claims()), { jwks: ecSet as JSONWebKeySet, at: at(NBF), expectedIssuer: null }),
    );
    expect([error.code, error.message]).toEqual([
      "MAA_JWKS_INVALID",
      `MAA key set: key ${JSON.stringify(TEST_MAA_KID)} expected an RSA certificate, found ec`,
    ]);
  });

  it("takes the token from its nbf second on, earlier by exactly the tolerance", async () => {
    const { jwks: testSet, sign } = await testMaaSigner();
    const signed = await sign(claims());
    expect((await verifyMaaToken(signed, { jwks: testSet, at: at(NBF), expectedIssuer: null })).notBefore).toEqual(
      at(NBF),
    );
    const early = await rejection(
      verifyMaaToken(signed, { jwks: testSet, at: new Date(NBF * 1000 - 1), expectedIssuer: null }),
    );
    expect(early.code).toBe("MAA_TOKEN_NOT_YET_VALID");
    const tolerated = { jwks: testSet, clockToleranceSeconds: 60, expectedIssuer: null };
    expect((await verifyMaaToken(signed, { ...tolerated, at: at(NBF - 60) })).attestationType).toBe("sevsnpvm");
    expect((await rejection(verifyMaaToken(signed, { ...tolerated, at: new Date((NBF - 60) * 1000 - 1) }))).code).toBe(
      "MAA_TOKEN_NOT_YET_VALID",
    );
  });

  it("takes a clock tolerance of 0..300 seconds only", async () => {
    const { jwks: testSet, sign } = await testMaaSigner();
    const signed = await sign(claims());
    expect(
      (await verifyMaaToken(signed, { jwks: testSet, at: at(NBF), clockToleranceSeconds: 300, expectedIssuer: null }))
        .issuer,
    ).toBe("https://cloister-test.attest.example");
    for (const clockToleranceSeconds of [301, -1, Number.NaN]) {
      const error = await rejection(
        verifyMaaToken(signed, { jwks: testSet, at: at(NBF), clockToleranceSeconds, expectedIssuer: null }),
      );
      expect(error.code).toBe("MAA_CLOCK_TOLERANCE_RANGE");
    }
  });

  // [name, the payload's JSON text, the message after "MAA token: "]
  const malformed: [string, string, string][] = [
    ["iss that is not a string", JSON.stringify(claims({ iss: 5 })), "claim iss: expected a string"],
    [
      "x-ms-attestation-type that is not a string",
      JSON.stringify(claims({ "x-ms-attestation-type": 5 })),
      "claim x-ms-attestation-type: expected a string",
    ],
    ["no exp", JSON.stringify(claims({ exp: undefined })), "claim exp: expected a NumericDate, found none"],
    // JSON.parse reads 1e400 as Infinity: a token that would never expire.
    [
      "an exp beyond any date",
      JSON.stringify(claims()).replace(`"exp":${NBF + 3600}`, '"exp":1e400'),
      "claim exp: expected a NumericDate, found number",
    ],
    [
      "a payload that is an array",
      JSON.stringify([claims()]),
      "payload: expected a JSON object, found an array of 1 item",
    ],
    // Signed bytes that say two things: JSON.parse reads the last of two members, another reader the first.
    [
      "a claim named twice",
      ISS_TWICE,
      `payload: iss ${TWICE} (the second at position ${ISS_TWICE.lastIndexOf('"iss"')}): ${ONCE}`,
    ],
    [
      "a member named twice inside a claim",
      KID_TWICE,
      `payload: (a name of 12 characters).keys.0.kid ${TWICE} (the second at position ${KID_TWICE.lastIndexOf('"kid"')}): ${ONCE}`,
    ],
  ];

  it.each(malformed)("refuses a token with %s (MAA_TOKEN_MALFORMED)", async (_name, text, message) => {
    const { jwks: testSet, signText } = await testMaaSigner();
    const error = await rejection(
      verifyMaaToken(await signText(text), { jwks: testSet, at: at(NBF), expectedIssuer: null }),
    );
    expect([error.code, error.message]).toEqual(["MAA_TOKEN_MALFORMED", `MAA token: ${message}`]);
  });

  it("refuses a protected header whose signed bytes could mean two things: a member named twice, a byte that is not UTF-8", async () => {
    const { jwks: testSet, signBytes } = await testMaaSigner();
    const payload = new TextEncoder().encode(JSON.stringify(claims()));
    const refusal = async (header: Uint8Array) => {
      const error = await rejection(
        verifyMaaToken(await signBytes(header, payload), { jwks: testSet, at: at(NBF), expectedIssuer: null }),
      );
      return [error.code, error.message];
    };
    // An earlier reader of the header would take "none".
    const algTwice = `{"alg":"none","alg":"RS256","kid":"${TEST_MAA_KID}"}`;
    expect(await refusal(new TextEncoder().encode(algTwice))).toEqual([
      "MAA_TOKEN_MALFORMED",
      `MAA token: protected header: alg ${TWICE} (the second at position ${algTwice.lastIndexOf('"alg"')}): ${ONCE}`,
    ]);
    // A plain TextDecoder reads 0xff as U+FFFD; another reader may not.
    const typ = new TextEncoder().encode(`{"alg":"RS256","kid":"${TEST_MAA_KID}","typ":"JW?"}`);
    typ[typ.length - 3] = 0xff;
    expect(await refusal(typ)).toEqual([
      "MAA_TOKEN_MALFORMED",
      `MAA token: protected header: expected UTF-8 JSON, found bytes that are not UTF-8 (from offset ${typ.length - 3})`,
    ]);
    // The same header, each member once and UTF-8, verifies.
    const verified = await verifyMaaToken(
      await signBytes(new TextEncoder().encode(`{"alg":"RS256","kid":"${TEST_MAA_KID}","typ":"JWT"}`), payload),
      { jwks: testSet, at: at(NBF), expectedIssuer: null },
    );
    expect(verified.kid).toBe(TEST_MAA_KID);
  });

  it("names why a protected header is not base64url in its one spelling (unused bits set, a length of 4k+1)", async () => {
    const header = withHeader({ alg: "RS256", kid: first.kid }).split(".")[0] as string;
    // One spelling only: a last character whose unused low bits are set decodes to the same bytes.
    const unusedBits = header.length % 4 === 2 ? 0b1111 : 0b11;
    const alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    const last = alphabet[alphabet.indexOf(header.at(-1) as string) | unusedBits] as string;
    expect(header.length % 4).not.toBe(0);
    const respelled = `${header.slice(0, -1)}${last}.${payload}.${signature}`;
    const cut = `${header}${"A".repeat(5 - (header.length % 4))}.${payload}.${signature}`;
    const refusals = [];
    for (const token of [respelled, cut]) {
      const error = await rejection(verifyMaaToken(token, { jwks, at: AT, expectedIssuer: null }));
      refusals.push([error.code, error.message]);
    }
    const expected =
      'MAA token: protected header: expected base64url (A-Z, a-z, 0-9, "-", "_"; no padding; unused bits zero)';
    expect(refusals).toEqual([
      ["MAA_TOKEN_MALFORMED", `${expected}, found unused bits set in its last character`],
      [
        "MAA_TOKEN_MALFORMED",
        `${expected}, found a length of 4k+1 (${header.length + 5 - (header.length % 4)} characters)`,
      ],
    ]);
  });

  it("says a text that is not a compact JWS is not one", async () => {
    // Its parts counted as every reader counts them (compactJwsParts), then their characters.
    for (const [token, message] of [
      ["not a token", "MAA token: expected 3 JWS parts, found 1"],
      ["a.b", "MAA token: expected 3 JWS parts, found 2"],
      ["a.b.c.d", "MAA token: expected 3 JWS parts, found more than 3"],
      [
        "a b.c.d",
        'MAA token: protected header: expected base64url (A-Z, a-z, 0-9, "-", "_"; no padding; unused bits zero), found " " at character 1',
      ],
      [".b.c", "MAA token: protected header: expected UTF-8 JSON, found text that is not valid JSON (it ends early)"],
    ] as const) {
      const error = await rejection(verifyMaaToken(token, { jwks, at: AT, expectedIssuer: null }));
      expect([error.code, error.message], token).toEqual(["MAA_TOKEN_MALFORMED", message]);
    }
  });

  it("reads the payload and the signature in base64url's one spelling, as the header (jose's decoder forgives more)", async () => {
    const [header, payload, signature] = good.split(".") as [string, string, string];
    const alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    // The last character with its unused low bits set: the same bytes, spelt another way.
    const unusedBitsSet = (part: string) => {
      const unused = part.length % 4 === 2 ? 0b1111 : 0b11;
      return part.slice(0, -1) + alphabet[alphabet.indexOf(part.at(-1) as string) | unused];
    };
    expect(signature.length % 4).not.toBe(0);
    const expected = 'expected base64url (A-Z, a-z, 0-9, "-", "_"; no padding; unused bits zero)';
    for (const [token, message] of [
      [
        `${header}.${payload}.${unusedBitsSet(signature)}`,
        `signature: ${expected}, found unused bits set in its last character`,
      ],
      [
        `${header}.${payload.slice(0, 8)} ${payload.slice(8)}.${signature}`,
        `payload: ${expected}, found " " at character 8`,
      ],
    ] as const) {
      const error = await rejection(verifyMaaToken(token, { jwks, at: AT, expectedIssuer: null }));
      expect([error.code, error.message]).toEqual(["MAA_TOKEN_MALFORMED", `MAA token: ${message}`]);
    }
    expect((await verifyMaaToken(good, { jwks, at: AT, expectedIssuer: null })).kid).toBe(first.kid);
  });

  it("verifies a token with white space around it, as read from a file", async () => {
    expect((await verifyMaaToken(`\n ${good}\n`, { jwks, at: AT, expectedIssuer: null })).kid).toBe(first.kid);
  });

  it("refuses a protected header jose rejects as a malformed token, not as a bad signature", async () => {
    const error = await rejection(
      verifyMaaToken(withHeader({ alg: "RS256", kid: first.kid, crit: ["x-cloister-test"], "x-cloister-test": 1 }), {
        jwks,
        at: AT,
        expectedIssuer: null,
      }),
    );
    expect([error.code, error.message]).toEqual(["MAA_TOKEN_MALFORMED", "MAA token: JWS structure rejected"]);
  });

  it("describes an untrusted alg or kid as untrusted text in its refusal (no terminal control reaches a log)", async () => {
    const alg = await rejection(
      verifyMaaToken(withHeader({ alg: "\u001b[2JRS256" }), { jwks, at: AT, expectedIssuer: null }),
    );
    const kid = await rejection(
      verifyMaaToken(withHeader({ alg: "RS256", kid: "\u001b[2Jkid" }), { jwks, at: AT, expectedIssuer: null }),
    );
    for (const error of [alg, kid]) expect(error.message).not.toContain("\u001b");
    expect([alg.code, kid.code]).toEqual(["MAA_ALG_NOT_ALLOWED", "MAA_UNKNOWN_KEY"]);
  });

  it("says a key whose x5c[0] is empty has no certificate", async () => {
    const empty = { keys: [{ ...first, x5c: [""] }] } as JSONWebKeySet;
    const error = await rejection(verifyMaaToken(good, { jwks: empty, at: AT, expectedIssuer: null }));
    expect([error.code, error.message]).toEqual([
      "MAA_JWKS_INVALID",
      `MAA key set: key ${JSON.stringify(first.kid)} expected an x5c certificate, found none`,
    ]);
  });

  it("makes a VerifiedMaaToken only for verifyMaaToken (the class is exported, its key is not)", () => {
    const Construct = VerifiedMaaToken as unknown as new (...args: unknown[]) => VerifiedMaaToken;
    const forge = () =>
      new Construct(Symbol("VerifiedMaaToken"), {}, "kid", "sevsnpvm", "iss", new Date(), null, new Date());
    expect(forge).toThrow("VerifiedMaaToken is produced by verifyMaaToken only");
  });

  it("refuses a key-set entry without an x5c array", () => {
    for (const key of [{ kid: "a" }, { kid: "a", x5c: "MIIB" }]) {
      expect(() => parseMaaJwks(JSON.stringify({ keys: [key] }))).toThrow(
        expect.objectContaining({
          code: "MAA_JWKS_INVALID",
          message: "MAA key set: keys[0] expected kid (string) and x5c (array)",
        }),
      );
    }
  });
});

describe("MAA key-set getter (injected fetch, no network)", () => {
  it("fetches /certs once per cache period and verifies with the result", async () => {
    const body = readFileSync(new URL(JWKS_PATH, FIXTURES), "utf8");
    const urls: string[] = [];
    let now = 1_000;
    const get = createMaaJwksGetter({
      instance: "https://sharedwus.wus.attest.azure.net",
      fetch: async (url) => {
        urls.push(url);
        return { ok: true, status: 200, text: async () => body };
      },
      cacheMs: 10_000,
      now: () => now,
    });
    const keys = await get();
    await get();
    expect(urls).toEqual(["https://sharedwus.wus.attest.azure.net/certs"]);
    now += 9_999;
    await get();
    expect(urls).toHaveLength(1);
    // Cached for cacheMs: from that millisecond on, fetched again.
    now += 1;
    await get();
    expect(urls).toHaveLength(2);
    expect(
      (await verifyMaaToken(token("maa-sgx-sharedwus-2022-05-31.jwt"), { jwks: keys, at: AT, expectedIssuer: null }))
        .kid,
    ).toBe("XxRc2vLh1E5FrsNawnRH3PzuFgqg3q7NvCdnjoJHBGE=");
  });

  it("refuses plain http and reports a failed fetch", async () => {
    for (const [instance, message] of [
      ["http://example.test", "MAA instance: expected https, found http:"],
      ["example.test", "MAA instance: expected an absolute https URL"],
    ]) {
      expect(() =>
        createMaaJwksGetter({
          instance: instance as string,
          fetch: async () => ({ ok: true, status: 200, text: async () => "" }),
        }),
      ).toThrow(expect.objectContaining({ code: "MAA_INSTANCE_INVALID", message }));
    }
    const get = createMaaJwksGetter({
      instance: "https://example.test",
      fetch: async () => ({ ok: false, status: 503, text: async () => "" }),
    });
    expect((await rejection(get())).code).toBe("MAA_JWKS_FETCH_FAILED");
    // Any status but a success, a client error too: its body is never read as a key set.
    const notFound = createMaaJwksGetter({
      instance: "https://example.test",
      fetch: async () => ({ ok: false, status: 404, text: async () => '{"keys":[]}' }),
    });
    const error = await rejection(notFound());
    expect([error.code, error.message]).toEqual([
      "MAA_JWKS_FETCH_FAILED",
      "MAA key set: GET https://example.test/certs expected status 200, found 404",
    ]);
  });
});
