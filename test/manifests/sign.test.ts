import { createPrivateKey, type JsonWebKey as NodeJwk, sign } from "node:crypto";
import { CompactSign, calculateJwkThumbprint, generateKeyPair, type JWK } from "jose";
import { describe, expect, it } from "vitest";
import { DEV_MANIFEST, devManifest } from "../../manifests/dev.ts";
import { digestHex, manifestDigest } from "../../manifests/digest.ts";
import { ManifestError } from "../../manifests/errors.ts";
import {
  generateManifestSigningKey,
  MANIFEST_JWS_TYP,
  type ManifestAlg,
  manifestPublicJwk,
  signManifest,
  verifyManifest,
} from "../../manifests/sign.ts";
import { rejectionOf } from "../helpers/rejections.ts";

/** The ManifestError `fn` rejects with. */
function errorOf(fn: () => Promise<unknown>): Promise<ManifestError> {
  return rejectionOf(fn, ManifestError);
}

const b64url = (text: string) => Buffer.from(text).toString("base64url");

/** Replaces the JWS payload, keeping header and signature. */
function withPayload(jws: string, payload: unknown): string {
  const [header, , signature] = jws.split(".");
  return `${header}.${b64url(JSON.stringify(payload))}.${signature}`;
}

/** `payload` signed as a manifest JWS would be (EdDSA, the manifest typ), whatever it holds. */
async function signPayload(payload: Uint8Array, privateJwk: JWK): Promise<string> {
  const { importJWK } = await import("jose");
  return new CompactSign(payload)
    .setProtectedHeader({ alg: "EdDSA", typ: MANIFEST_JWS_TYP })
    .sign(await importJWK(privateJwk, "EdDSA"));
}

describe.each(["EdDSA", "ES256"] as const)("manifest signing with %s", (alg: ManifestAlg) => {
  it("round-trips sign → verify and reports signer thumbprint and digest", async () => {
    const pair = await generateManifestSigningKey(alg);
    expect(pair.privateJwk.d).toEqual(expect.any(String));
    expect(pair.publicJwk.d).toBeUndefined();
    expect(pair.publicJwk.kid).toBe(pair.thumbprint);

    const jws = await signManifest(DEV_MANIFEST, pair.privateJwk);
    const header = JSON.parse(Buffer.from(jws.split(".")[0]!, "base64url").toString());
    expect(header).toEqual({ alg, typ: MANIFEST_JWS_TYP, kid: pair.thumbprint });

    const verified = await verifyManifest(jws, [pair.publicJwk]);
    expect(verified.manifest).toEqual(DEV_MANIFEST);
    expect(verified.signerKeyThumbprint).toBe(pair.thumbprint);
    expect(verified.digest).toBe(digestHex(await manifestDigest(jws)));
    expect(verified.digest).toMatch(/^[0-9a-f]{64}$/);
  });

  it("gives the public key of a private one as generateManifestSigningKey does (manifestPublicJwk)", async () => {
    const pair = await generateManifestSigningKey(alg);
    const derived = manifestPublicJwk(pair.privateJwk);
    // The same members in the same order: cloister up writes it as JSON, and a reused key's file is the same.
    expect(JSON.stringify(derived)).toBe(JSON.stringify(pair.publicJwk));
    // What both give, built here without manifestPublicJwk (which generateManifestSigningKey uses too):
    // the public members, then alg, use and the thumbprint as kid; never the private d.
    const { kty, crv, x, y } = pair.privateJwk;
    const members = { kty, crv, x, ...(y === undefined ? {} : { y }) } as JWK;
    const kid = await calculateJwkThumbprint(members, "sha256");
    expect(JSON.stringify(derived)).toBe(JSON.stringify({ ...members, alg, use: "sig", kid }));
    expect(derived).not.toHaveProperty("d");
    expect(Object.keys(derived)).toEqual(["kty", "crv", "x", ...(alg === "ES256" ? ["y"] : []), "alg", "use", "kid"]);
    const { alg: _alg, use: _use, kid: _kid, ...bare } = pair.privateJwk;
    expect(manifestPublicJwk(bare)).toEqual({
      kty: bare.kty,
      crv: bare.crv,
      x: bare.x,
      ...(bare.y ? { y: bare.y } : {}),
    });
  });

  it("finds the signer among several trusted keys", async () => {
    const signer = await generateManifestSigningKey(alg);
    const others = [await generateManifestSigningKey("EdDSA"), await generateManifestSigningKey("ES256")];
    const jws = await signManifest(DEV_MANIFEST, signer.privateJwk);
    const verified = await verifyManifest(jws, [...others.map((o) => o.publicJwk), signer.publicJwk]);
    expect(verified.signerKeyThumbprint).toBe(signer.thumbprint);
  });

  it("refuses a tampered payload and a wrong key (MANIFEST_SIGNATURE_INVALID)", async () => {
    const pair = await generateManifestSigningKey(alg);
    const jws = await signManifest(DEV_MANIFEST, pair.privateJwk);
    const evil = { ...DEV_MANIFEST, model: { ...DEV_MANIFEST.model, sha256: "ab".repeat(32) } };
    expect((await errorOf(() => verifyManifest(withPayload(jws, evil), [pair.publicJwk]))).code).toBe(
      "MANIFEST_SIGNATURE_INVALID",
    );
    const wrong = await generateManifestSigningKey(alg);
    expect((await errorOf(() => verifyManifest(jws, [wrong.publicJwk]))).code).toBe("MANIFEST_SIGNATURE_INVALID");
    // A changed signature character (mid-signature: the last base64url character has unused bits).
    const at = jws.length - 20;
    const altered = jws.slice(0, at) + (jws[at] === "A" ? "B" : "A") + jws.slice(at + 1);
    expect((await errorOf(() => verifyManifest(altered, [pair.publicJwk]))).code).toBe("MANIFEST_SIGNATURE_INVALID");
  });

  it("a signature no trusted key verifies names the trusted keys and the signer the header names (kid)", async () => {
    const pair = await generateManifestSigningKey(alg);
    const jws = await signManifest(DEV_MANIFEST, pair.privateJwk);
    const [wrong, other] = [await generateManifestSigningKey(alg), await generateManifestSigningKey(alg)];
    const expected = "manifest signature: expected a valid signature by a trusted key";
    expect((await errorOf(() => verifyManifest(jws, [wrong.publicJwk, other.publicJwk]))).message).toBe(
      `${expected} (${wrong.thumbprint}, ${other.thumbprint}), found none that verifies; ` +
        `the manifest's header names signer kid ${pair.thumbprint} (unverified), not a trusted key`,
    );
    // The signer's kid with a signature that key does not verify: the manifest was changed after signing.
    const evil = { ...DEV_MANIFEST, model: { ...DEV_MANIFEST.model, sha256: "ab".repeat(32) } };
    expect((await errorOf(() => verifyManifest(withPayload(jws, evil), [pair.publicJwk]))).message).toBe(
      `${expected} (${pair.thumbprint}), found none that verifies; ` +
        `the manifest's header names signer kid ${pair.thumbprint}, a trusted key: the manifest or its signature was changed after signing`,
    );
    // A kid that is not a thumbprint is described by kind only (it is the manifest's text, not ours).
    const [, payload, signature] = jws.split(".");
    for (const [kid, found] of [
      [undefined, "names no signer (no kid)"],
      ["\u001b[2J", "kid is not a key thumbprint (a string of 4 characters)"],
      [7, "kid is not a key thumbprint (a number)"],
    ] as const) {
      const header = b64url(JSON.stringify({ alg, typ: MANIFEST_JWS_TYP, kid }));
      const error = await errorOf(() => verifyManifest(`${header}.${payload}.${signature}`, [wrong.publicJwk]));
      expect([kid, error.code, error.message]).toEqual([
        kid,
        "MANIFEST_SIGNATURE_INVALID",
        `${expected} (${wrong.thumbprint}), found none that verifies; the manifest's header ${found}`,
      ]);
    }
  });
});

describe("trusted keys that are not a JWK object", () => {
  // An --operator-key file holding null, an array or a JWK Set reaches verifyManifest as a trusted
  // key: each is refused as a key (MANIFEST_KEY_INVALID) naming what it found, not a bare TypeError.
  it.each([
    ["null", null, /trusted key 0: expected a public JWK \(a JSON object\), found null/],
    ["an array", [{ kty: "OKP" }], /trusted key 0: expected a public JWK \(a JSON object\), found an array/],
    ["a string", "key", /trusted key 0: expected a public JWK \(a JSON object\), found a string/],
    ["a JWK Set", { keys: [] }, /trusted key 0: expected a public JWK, found a JWK Set \(\{"keys": \[…\]\}\)/],
  ])("%s is refused with MANIFEST_KEY_INVALID", async (_name, key, message) => {
    const pair = await generateManifestSigningKey();
    const jws = await signManifest(DEV_MANIFEST, pair.privateJwk);
    const error = await errorOf(() => verifyManifest(jws, [key as never]));
    expect(error.code).toBe("MANIFEST_KEY_INVALID");
    expect(error.message).toMatch(message);
  });
});

describe("keys of another type or curve", () => {
  // The key type and curve decide the alg; any other key is refused as such before it is imported.
  const foreign = (pair: { publicJwk: JWK }) => {
    const { x, y } = pair.publicJwk;
    return [
      ["an X25519 key", { kty: "OKP", crv: "X25519", x }, 'found kty "OKP", crv "X25519"'],
      ["an Ed448 key", { kty: "OKP", crv: "Ed448", x }, 'found kty "OKP", crv "Ed448"'],
      ["a P-384 key", { kty: "EC", crv: "P-384", x, y }, 'found kty "EC", crv "P-384"'],
      ["an RSA key", { kty: "RSA", n: "AQAB", e: "AQAB" }, 'found kty "RSA", no crv'],
      ["no kty", { crv: "Ed25519", x }, 'found no kty, crv "Ed25519"'],
      // A member that is not a short name may be a pasted secret: its kind and length only.
      ["a long kty", { kty: x, crv: 7, x }, `found kty a string of ${x?.length} characters, crv a number`],
    ] as const;
  };

  it.each(["EdDSA", "ES256"] as const)(
    "%s: a trusted key of another curve or type is MANIFEST_KEY_INVALID",
    async (alg) => {
      const pair = await generateManifestSigningKey(alg);
      const jws = await signManifest(DEV_MANIFEST, pair.privateJwk);
      for (const [name, key, found] of foreign(pair)) {
        const error = await errorOf(() => verifyManifest(jws, [key as JWK]));
        expect([name, error.code, error.message]).toEqual([
          name,
          "MANIFEST_KEY_INVALID",
          `trusted key 0: expected an Ed25519 (OKP) or P-256 (EC) JWK, ${found}`,
        ]);
      }
    },
  );

  it.each(["EdDSA", "ES256"] as const)(
    "%s: a signing key of another curve or type is MANIFEST_KEY_INVALID",
    async (alg) => {
      const pair = await generateManifestSigningKey(alg);
      for (const [name, key, found] of foreign(pair)) {
        const error = await errorOf(() => signManifest(DEV_MANIFEST, { ...key, d: pair.privateJwk.d } as JWK));
        expect([name, error.code, error.message]).toEqual([
          name,
          "MANIFEST_KEY_INVALID",
          `signing key: expected an Ed25519 (OKP) or P-256 (EC) JWK, ${found}`,
        ]);
      }
    },
  );

  it("generates keys for EdDSA and ES256 only", async () => {
    expect(await errorOf(() => generateManifestSigningKey("RS256" as ManifestAlg))).toMatchObject({
      code: "MANIFEST_ALG_UNSUPPORTED",
      message: 'manifest JWS alg: expected "EdDSA" or "ES256", found "RS256"',
    });
  });
});

describe("a trusted key's use, key_ops and alg (RFC 7517 §4.2-4.4) are honoured when present", () => {
  // A key marked for encryption, for other operations or for another alg is not the operator's
  // manifest-signing key: refused when it is given, naming the member, the expected and the found.
  it.each([
    ["EdDSA", { use: "enc" }, 'trusted key 0: use: expected "sig" (a key for signatures), found "enc"'],
    ["EdDSA", { use: 7 }, 'trusted key 0: use: expected "sig" (a key for signatures), found a number'],
    [
      "EdDSA",
      { key_ops: ["encrypt", "sign"] },
      'trusted key 0: key_ops: expected an array including "verify", found ["encrypt","sign"]',
    ],
    ["EdDSA", { key_ops: "verify" }, 'trusted key 0: key_ops: expected an array including "verify", found "verify"'],
    [
      "EdDSA",
      { alg: "ES256" },
      'trusted key 0: alg: expected "EdDSA" (an Ed25519 key signs only EdDSA), found "ES256"',
    ],
    ["ES256", { alg: "EdDSA" }, 'trusted key 0: alg: expected "ES256" (a P-256 key signs only ES256), found "EdDSA"'],
    ["ES256", { alg: "ES384" }, 'trusted key 0: alg: expected "ES256" (a P-256 key signs only ES256), found "ES384"'],
  ] as const)("%s key with %j is refused (MANIFEST_KEY_INVALID)", async (alg, members, message) => {
    const pair = await generateManifestSigningKey(alg);
    const jws = await signManifest(DEV_MANIFEST, pair.privateJwk);
    const error = await errorOf(() => verifyManifest(jws, [{ ...pair.publicJwk, ...members } as JWK]));
    expect(error.code).toBe("MANIFEST_KEY_INVALID");
    expect(error.message).toBe(message);
  });

  it("refuses a bad key anywhere in the list, even after the signer", async () => {
    const pair = await generateManifestSigningKey("EdDSA");
    const other = await generateManifestSigningKey("EdDSA");
    const jws = await signManifest(DEV_MANIFEST, pair.privateJwk);
    const error = await errorOf(() => verifyManifest(jws, [{ ...other.publicJwk, use: "enc" }, pair.publicJwk]));
    expect(error.message).toMatch(/^trusted key 0: use: /);
  });

  it("does not show a found value that is not a short name (it may be a pasted secret)", async () => {
    const pair = await generateManifestSigningKey("EdDSA");
    const jws = await signManifest(DEV_MANIFEST, pair.privateJwk);
    const secret = "S".repeat(43);
    const error = await errorOf(() => verifyManifest(jws, [{ ...pair.publicJwk, alg: secret }]));
    expect(error.message).toBe(
      'trusted key 0: alg: expected "EdDSA" (an Ed25519 key signs only EdDSA), found a string of 43 characters',
    );
    // At the bounds: a name of 16 characters is shown, of 17 not; a list of 8 names is, of 9 not.
    const found = async (members: Record<string, unknown>) =>
      (await errorOf(() => verifyManifest(jws, [{ ...pair.publicJwk, ...members }]))).message.replace(
        /^.*, found /,
        "",
      );
    expect(await found({ use: "s".repeat(16) })).toBe(`"${"s".repeat(16)}"`);
    expect(await found({ use: "s".repeat(17) })).toBe("a string of 17 characters");
    expect(await found({ key_ops: Array(8).fill("sign") })).toBe(JSON.stringify(Array(8).fill("sign")));
    expect(await found({ key_ops: Array(9).fill("sign") })).toBe("an array of 9 items");
  });

  it.each(["EdDSA", "ES256"] as const)(
    "accepts %s keys that say sig / verify / their alg, and keygen's keys (alg, use, kid)",
    async (alg) => {
      const pair = await generateManifestSigningKey(alg);
      expect(pair.publicJwk).toMatchObject({ alg, use: "sig" });
      const jws = await signManifest(DEV_MANIFEST, pair.privateJwk);
      const marked = { ...pair.publicJwk, key_ops: ["verify"] };
      expect((await verifyManifest(jws, [marked])).signerKeyThumbprint).toBe(pair.thumbprint);
      expect((await verifyManifest(jws, [pair.publicJwk])).signerKeyThumbprint).toBe(pair.thumbprint);
    },
  );

  it('accepts an Ed25519 key whose alg is RFC 9864\'s fully specified "Ed25519", for signing and verifying', async () => {
    const pair = await generateManifestSigningKey("EdDSA");
    const jws = await signManifest(DEV_MANIFEST, { ...pair.privateJwk, alg: "Ed25519" });
    // The JWS header still says EdDSA (what every verifier here and elsewhere reads).
    expect(JSON.parse(Buffer.from(jws.split(".")[0] as string, "base64url").toString()).alg).toBe("EdDSA");
    const trusted = { ...pair.publicJwk, alg: "Ed25519" };
    expect((await verifyManifest(jws, [trusted])).signerKeyThumbprint).toBe(pair.thumbprint);
    // A P-256 key is not an Ed25519 one, whatever it says.
    const p256 = await generateManifestSigningKey("ES256");
    const wrong = await errorOf(() => verifyManifest(jws, [{ ...p256.publicJwk, alg: "Ed25519" }]));
    expect(wrong.message).toBe('trusted key 0: alg: expected "ES256" (a P-256 key signs only ES256), found "Ed25519"');
  });

  it("signing: refuses a private key marked for encryption or without the sign operation", async () => {
    const pair = await generateManifestSigningKey("EdDSA");
    const enc = await errorOf(() => signManifest(DEV_MANIFEST, { ...pair.privateJwk, use: "enc" }));
    expect(enc.code).toBe("MANIFEST_KEY_INVALID");
    expect(enc.message).toBe('signing key: use: expected "sig" (a key for signatures), found "enc"');
    const ops = await errorOf(() => signManifest(DEV_MANIFEST, { ...pair.privateJwk, key_ops: ["verify"] }));
    expect(ops.message).toBe('signing key: key_ops: expected an array including "sign", found ["verify"]');
    // A private key whose key_ops say "sign" signs, and the signature verifies with its public part.
    const jws = await signManifest(DEV_MANIFEST, { ...pair.privateJwk, key_ops: ["sign"] });
    expect((await verifyManifest(jws, [pair.publicJwk])).signerKeyThumbprint).toBe(pair.thumbprint);
  });
});

describe("one spelling per signed manifest (its digest is bound into REPORT_DATA)", () => {
  const P256_N = 0xffffffff00000000ffffffffffffffffbce6faada7179e84f3b9cac2fc632551n;
  const s = (jws: string) =>
    BigInt(
      `0x${Buffer.from(jws.split(".")[2] as string, "base64url")
        .subarray(32)
        .toString("hex")}`,
    );

  it.each(["EdDSA", "ES256"] as const)("%s: refuses a part whose last character has unused bits set", async (alg) => {
    const pair = await generateManifestSigningKey(alg);
    const jws = await signManifest(DEV_MANIFEST, pair.privateJwk);
    // 64 signature bytes are 86 characters, the last carrying 4 unused bits: same bytes, other text.
    const last = jws.at(-1) as string;
    const alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    const twin = `${jws.slice(0, -1)}${alphabet[alphabet.indexOf(last) ^ 1]}`;
    expect(Buffer.from(twin.split(".")[2] as string, "base64url")).toEqual(
      Buffer.from(jws.split(".")[2] as string, "base64url"),
    );
    expect(await errorOf(() => verifyManifest(twin, [pair.publicJwk]))).toMatchObject({
      code: "MANIFEST_JWS_MALFORMED",
      message:
        'manifest JWS signature: expected base64url (A-Z, a-z, 0-9, "-", "_"; no padding; unused bits zero), found unused bits set in its last character',
    });
    expect((await verifyManifest(jws, [pair.publicJwk])).manifest).toEqual(DEV_MANIFEST);
  });

  it("refuses a part of 4k+1 characters, which no bytes encode to, naming its length", async () => {
    const pair = await generateManifestSigningKey("EdDSA");
    const [header, , signature] = (await signManifest(DEV_MANIFEST, pair.privateJwk)).split(".");
    expect(await errorOf(() => verifyManifest(`${header}.AAAAA.${signature}`, [pair.publicJwk]))).toMatchObject({
      code: "MANIFEST_JWS_MALFORMED",
      message:
        'manifest JWS payload: expected base64url (A-Z, a-z, 0-9, "-", "_"; no padding; unused bits zero), found a length of 4k+1 (5 characters)',
    });
  });

  it("ES256: signs only in the low-S form and refuses the high-S twin of a valid signature", async () => {
    const pair = await generateManifestSigningKey("ES256");
    for (let i = 0; i < 16; i++) {
      const jws = await signManifest(DEV_MANIFEST, pair.privateJwk);
      expect(s(jws) <= P256_N >> 1n).toBe(true);
      // S → n − S: the same signature, still valid ECDSA, another text and digest.
      const signature = Buffer.from(jws.split(".")[2] as string, "base64url");
      Buffer.from((P256_N - s(jws)).toString(16).padStart(64, "0"), "hex").copy(signature, 32);
      const twin = `${jws.slice(0, jws.lastIndexOf(".") + 1)}${signature.toString("base64url")}`;
      expect(await errorOf(() => verifyManifest(twin, [pair.publicJwk]))).toMatchObject({
        code: "MANIFEST_JWS_MALFORMED",
        message: expect.stringContaining("expected the low-S form"),
      });
    }
  });
});

describe("an ES256 signature's S, read before the signature is checked", () => {
  const P256_HALF_N = 0xffffffff00000000ffffffffffffffffbce6faada7179e84f3b9cac2fc632551n >> 1n;
  /** The ES256 JWS with its signature replaced by `signature` (not a valid one). */
  const withSignature = (jws: string, signature: Uint8Array) =>
    `${jws.slice(0, jws.lastIndexOf(".") + 1)}${Buffer.from(signature).toString("base64url")}`;
  const rs = (s: bigint) => Buffer.from(`${"00".repeat(32)}${s.toString(16).padStart(64, "0")}`, "hex");

  it("takes S of half the group order as low (then the signature does not verify), and one more as high", async () => {
    const pair = await generateManifestSigningKey("ES256");
    const jws = await signManifest(DEV_MANIFEST, pair.privateJwk);
    expect((await errorOf(() => verifyManifest(withSignature(jws, rs(P256_HALF_N)), [pair.publicJwk]))).code).toBe(
      "MANIFEST_SIGNATURE_INVALID",
    );
    expect(
      await errorOf(() => verifyManifest(withSignature(jws, rs(P256_HALF_N + 1n)), [pair.publicJwk])),
    ).toMatchObject({
      code: "MANIFEST_JWS_MALFORMED",
      message: expect.stringContaining("expected the low-S form"),
    });
  });

  it("reads S only from a 64-byte signature: one of another length just does not verify", async () => {
    const pair = await generateManifestSigningKey("ES256");
    const jws = await signManifest(DEV_MANIFEST, pair.privateJwk);
    for (const length of [65, 96]) {
      const error = await errorOf(() =>
        verifyManifest(withSignature(jws, new Uint8Array(length).fill(0xff)), [pair.publicJwk]),
      );
      expect([length, error.code]).toEqual([length, "MANIFEST_SIGNATURE_INVALID"]);
    }
  });
});

describe("manifest verification refusals", () => {
  it("refuses alg none before touching any key (MANIFEST_ALG_UNSUPPORTED)", async () => {
    const pair = await generateManifestSigningKey("EdDSA");
    const header = b64url(JSON.stringify({ alg: "none", typ: MANIFEST_JWS_TYP }));
    const unsecured = `${header}.${b64url(JSON.stringify(DEV_MANIFEST))}.`;
    const error = await errorOf(() => verifyManifest(unsecured, [pair.publicJwk]));
    expect(error.code).toBe("MANIFEST_ALG_UNSUPPORTED");
    expect(error.message).toContain('"none"');
  });

  it("refuses an HMAC-signed manifest (MANIFEST_ALG_UNSUPPORTED)", async () => {
    const pair = await generateManifestSigningKey("EdDSA");
    const hs = await new CompactSign(new TextEncoder().encode(JSON.stringify(DEV_MANIFEST)))
      .setProtectedHeader({ alg: "HS256", typ: MANIFEST_JWS_TYP })
      .sign(new TextEncoder().encode(JSON.stringify(pair.publicJwk)));
    expect((await errorOf(() => verifyManifest(hs, [pair.publicJwk]))).code).toBe("MANIFEST_ALG_UNSUPPORTED");
  });

  it("refuses a JWS of another type (MANIFEST_TYP_INVALID)", async () => {
    const { privateKey } = await generateKeyPair("EdDSA", { crv: "Ed25519", extractable: true });
    const pair = await generateManifestSigningKey("EdDSA");
    const jws = await new CompactSign(new TextEncoder().encode(JSON.stringify(DEV_MANIFEST)))
      .setProtectedHeader({ alg: "EdDSA", typ: "JWT" })
      .sign(privateKey);
    expect((await errorOf(() => verifyManifest(jws, [pair.publicJwk]))).code).toBe("MANIFEST_TYP_INVALID");
  });

  it("checks the payload only after the signature (schema errors need a valid signature)", async () => {
    const pair = await generateManifestSigningKey("EdDSA");
    const jws = await signManifest(DEV_MANIFEST, pair.privateJwk);
    // An unsigned, schema-invalid payload is a signature failure, not a schema error.
    const broken = withPayload(jws, { nonsense: true });
    expect((await errorOf(() => verifyManifest(broken, [pair.publicJwk]))).code).toBe("MANIFEST_SIGNATURE_INVALID");
  });

  async function signRaw(payload: unknown, pair: { privateJwk: JWK }) {
    const { importJWK } = await import("jose");
    return new CompactSign(new TextEncoder().encode(JSON.stringify(payload)))
      .setProtectedHeader({ alg: "EdDSA", typ: MANIFEST_JWS_TYP })
      .sign(await importJWK(pair.privateJwk, "EdDSA"));
  }

  it("names a missing field (MANIFEST_FIELD_MISSING)", async () => {
    const pair = await generateManifestSigningKey("EdDSA");
    const { sha256: _dropped, ...model } = DEV_MANIFEST.model;
    const jws = await signRaw({ ...DEV_MANIFEST, model }, pair);
    const error = await errorOf(() => verifyManifest(jws, [pair.publicJwk]));
    expect(error.code).toBe("MANIFEST_FIELD_MISSING");
    expect(error.message).toContain("model.sha256");
  });

  it("names an extra field (MANIFEST_FIELD_UNKNOWN)", async () => {
    const pair = await generateManifestSigningKey("EdDSA");
    const jws = await signRaw({ ...DEV_MANIFEST, tee: { ...DEV_MANIFEST.tee, skipChecks: true } }, pair);
    const error = await errorOf(() => verifyManifest(jws, [pair.publicJwk]));
    expect(error.code).toBe("MANIFEST_FIELD_UNKNOWN");
    expect(error.message).toContain("tee.skipChecks");
  });

  it("names an invalid value (MANIFEST_FIELD_INVALID)", async () => {
    const pair = await generateManifestSigningKey("EdDSA");
    const bad = {
      ...DEV_MANIFEST,
      tee: { ...DEV_MANIFEST.tee, policyFlags: { ...DEV_MANIFEST.tee.policyFlags, debugAllowed: true } },
    };
    const jws = await signRaw(bad, pair);
    const error = await errorOf(() => verifyManifest(jws, [pair.publicJwk]));
    expect(error.code).toBe("MANIFEST_FIELD_INVALID");
    expect(error.message).toContain("tee.policyFlags.debugAllowed");
  });

  it("refuses a payload that is not JSON (MANIFEST_PAYLOAD_INVALID) once the signature verified", async () => {
    const pair = await generateManifestSigningKey("EdDSA");
    const jws = await signPayload(new TextEncoder().encode("not json"), pair.privateJwk);
    // UTF-8 that is not JSON is said to be text, not bytes (nothing of it quoted).
    expect(await errorOf(() => verifyManifest(jws, [pair.publicJwk]))).toMatchObject({
      code: "MANIFEST_PAYLOAD_INVALID",
      message: "manifest payload: expected UTF-8 JSON, found text that is not valid JSON",
    });
    // JSON with a byte that is not UTF-8 in a string: refused, not read with U+FFFD in its place.
    const notUtf8 = Uint8Array.of(...new TextEncoder().encode('{"x":"'), 0xff, ...new TextEncoder().encode('"}'));
    expect(
      await errorOf(async () => verifyManifest(await signPayload(notUtf8, pair.privateJwk), [pair.publicJwk])),
    ).toMatchObject({
      code: "MANIFEST_PAYLOAD_INVALID",
      message: "manifest payload: expected UTF-8 JSON, found bytes that are not UTF-8 (from offset 6)",
    });
  });

  it("refuses a signed payload that starts with a byte order mark (MANIFEST_PAYLOAD_INVALID)", async () => {
    // Read as the JSON after it, the bytes signed and the text reviewed would be two spellings.
    const pair = await generateManifestSigningKey("EdDSA");
    const withBom = Uint8Array.of(0xef, 0xbb, 0xbf, ...new TextEncoder().encode("{}"));
    const error = await errorOf(async () =>
      verifyManifest(await signPayload(withBom, pair.privateJwk), [pair.publicJwk]),
    );
    expect(error).toMatchObject({
      code: "MANIFEST_PAYLOAD_INVALID",
      message: "manifest payload: expected UTF-8 JSON, found a byte order mark before it (offsets 0 to 2)",
    });
  });

  it("refuses a signed payload that is JSON but not an object, saying what it is (MANIFEST_PAYLOAD_INVALID)", async () => {
    const pair = await generateManifestSigningKey("EdDSA");
    const cases: readonly (readonly [string, string])[] = [
      ["7", "7"],
      ['"x"', "a string of 1 character"],
      ["null", "null"],
      ["[]", "an empty array"],
    ];
    for (const [text, found] of cases) {
      const jws = await signPayload(new TextEncoder().encode(text), pair.privateJwk);
      expect([text, await errorOf(() => verifyManifest(jws, [pair.publicJwk]))]).toMatchObject([
        text,
        { code: "MANIFEST_PAYLOAD_INVALID", message: `manifest payload: expected a JSON object, found ${found}` },
      ]);
    }
  });

  it("refuses a signed payload that names a member twice, naming the member (MANIFEST_PAYLOAD_INVALID)", async () => {
    const pair = await generateManifestSigningKey("EdDSA");
    const text = JSON.stringify(DEV_MANIFEST).replace(/}$/, ',"manifestVersion":1}');
    const jws = await signPayload(new TextEncoder().encode(text), pair.privateJwk);
    const error = await errorOf(() => verifyManifest(jws, [pair.publicJwk]));
    expect(error.code).toBe("MANIFEST_PAYLOAD_INVALID");
    expect(error.message).toMatch(/^manifest payload: .*manifestVersion/);
  });

  it("refuses a protected header that names a member twice, naming it, though the signature verifies (MANIFEST_JWS_MALFORMED)", async () => {
    // jose reads the last of two members, a reader of the header the first: the header is read as
    // the payload is (each member once), refused before any key is tried.
    const pair = await generateManifestSigningKey("EdDSA");
    const key = createPrivateKey({ key: pair.privateJwk as NodeJwk, format: "jwk" });
    const payload = b64url(JSON.stringify(DEV_MANIFEST));
    const signedWithHeader = (header: string) => {
      const input = `${b64url(header)}.${payload}`;
      return `${input}.${sign(null, Buffer.from(input), key).toString("base64url")}`;
    };
    const cases: readonly (readonly [string, string])[] = [
      [`{"alg":"none","typ":"${MANIFEST_JWS_TYP}","alg":"EdDSA"}`, "alg"],
      [`{"alg":"EdDSA","typ":"JWT","typ":"${MANIFEST_JWS_TYP}"}`, "typ"],
    ];
    for (const [header, member] of cases) {
      expect([member, await errorOf(() => verifyManifest(signedWithHeader(header), [pair.publicJwk]))]).toMatchObject([
        member,
        {
          code: "MANIFEST_JWS_MALFORMED",
          message: `manifest JWS protected header: ${member} appears twice in one object (the second at position ${header.lastIndexOf(`"${member}"`)}): expected each member once (JSON.parse would use the last while a reader sees the first); remove one`,
        },
      ]);
    }
    // The same header with each member once verifies: only the second member is refused.
    await expect(
      verifyManifest(signedWithHeader(`{"alg":"EdDSA","typ":"${MANIFEST_JWS_TYP}"}`), [pair.publicJwk]),
    ).resolves.toMatchObject({ signerKeyThumbprint: pair.thumbprint });
    // A header that is not UTF-8 JSON is refused as the payload is, its bytes not quoted.
    expect(await errorOf(() => verifyManifest(signedWithHeader("not json"), [pair.publicJwk]))).toMatchObject({
      code: "MANIFEST_JWS_MALFORMED",
      message: "manifest JWS protected header: expected UTF-8 JSON, found text that is not valid JSON",
    });
  });

  it("refuses malformed input and unusable trust lists", async () => {
    const pair = await generateManifestSigningKey("EdDSA");
    const jws = await signManifest(DEV_MANIFEST, pair.privateJwk);
    // Not three base64url parts: refused as such, before any part is decoded.
    for (const text of ["a.b", ` ${jws}`, `${jws}.AA`, jws.replace(".", "+.")]) {
      expect(await errorOf(() => verifyManifest(text, [pair.publicJwk]))).toMatchObject({
        code: "MANIFEST_JWS_MALFORMED",
        message: `manifest: expected a compact JWS (three base64url parts, the first non-empty, no white space), found a string of ${text.length} characters`,
      });
    }
    expect((await errorOf(() => verifyManifest("e30x.e30.AA", [pair.publicJwk]))).code).toBe("MANIFEST_JWS_MALFORMED");
    expect((await errorOf(() => verifyManifest(jws, []))).code).toBe("MANIFEST_KEY_INVALID");
    expect((await errorOf(() => verifyManifest(jws, [pair.privateJwk]))).code).toBe("MANIFEST_KEY_INVALID");
    expect((await errorOf(() => signManifest(DEV_MANIFEST, pair.publicJwk))).code).toBe("MANIFEST_KEY_INVALID");
  });

  it("refuses to sign a manifest that breaks the schema", async () => {
    const pair = await generateManifestSigningKey("EdDSA");
    const bad = { ...DEV_MANIFEST, inference: { ...DEV_MANIFEST.inference, maxTokens: 999_999 } };
    expect((await errorOf(() => signManifest(bad, pair.privateJwk))).code).toBe("MANIFEST_FIELD_INVALID");
  });
});

describe("manifest digest", () => {
  it("is SHA-256 of the exact compact JWS bytes, stable and sensitive to every byte", async () => {
    const jws = "eyJhbGciOiJFZERTQSJ9.eyJhIjoxfQ.c2ln";
    // Known answer: `printf %s "$jws" | sha256sum`.
    expect(digestHex(await manifestDigest(jws))).toBe(
      "61d992098c699e06b553086fc4318802d044ccd586909a633cd80e9462b13b6c",
    );
    expect(digestHex(await manifestDigest(jws))).toBe(digestHex(await manifestDigest(jws)));
    expect(digestHex(await manifestDigest(jws))).not.toBe(digestHex(await manifestDigest(`${jws}x`)));
    // Only a caller's bug reaches it (every path checks the form first): a TypeError naming what it got.
    await expect(manifestDigest(`${jws}\n`)).rejects.toThrow(
      new TypeError(
        `manifestDigest: expected a compact JWS (three base64url parts, the first non-empty, no white space), found a string of ${jws.length + 1} characters`,
      ),
    );
    // An empty first part (the protected header) is not a compact JWS; the others may be empty.
    await expect(manifestDigest(".e30.")).rejects.toThrow(
      new TypeError(
        "manifestDigest: expected a compact JWS (three base64url parts, the first non-empty, no white space), found a string of 5 characters",
      ),
    );
    await expect(manifestDigest(undefined as unknown as string)).rejects.toThrow(
      new TypeError(
        "manifestDigest: expected a compact JWS (three base64url parts, the first non-empty, no white space), found nothing",
      ),
    );
  });

  it("differs between two signatures of the same manifest only through the JWS bytes", async () => {
    const pair = await generateManifestSigningKey("ES256"); // ECDSA signatures are randomised
    const a = await signManifest(devManifest(), pair.privateJwk);
    const b = await signManifest(devManifest(), pair.privateJwk);
    expect(a).not.toBe(b);
    expect((await verifyManifest(a, [pair.publicJwk])).digest).not.toBe(
      (await verifyManifest(b, [pair.publicJwk])).digest,
    );
  });
});
