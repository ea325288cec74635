/**
 * A test-only MAA signing key: an RSA key derived from a fixed seed (attestation/sim/rsa.ts), a
 * self-signed x5c certificate for it (attestation/sim/x509-writer.ts) in a one-key JWKS, and RS256
 * tokens over any claims, so rejection cases can be signed as MAA signs its tokens. Nothing here
 * protects anything: the key is public by construction.
 */
import { createPrivateKey, sign as signRs256 } from "node:crypto";
import type { JSONWebKeySet } from "jose";
import { bigIntToBytes } from "../../attestation/bytes.ts";
import { generateInsecureRsaKey, signRsaPssSha384 } from "../../attestation/sim/rsa.ts";
import { encodeName, writeCertificate } from "../../attestation/sim/x509-writer.ts";

export const TEST_MAA_KID = "cloister-test-maa-signing-key";

export interface TestMaaSigner {
  /** The key set holding the signing key's certificate (kid TEST_MAA_KID). */
  readonly jwks: JSONWebKeySet;
  /** `claims` as an RS256 token signed by the key, with kid TEST_MAA_KID. */
  sign(claims: Readonly<Record<string, unknown>>): Promise<string>;
  /** `payload` exactly as given (JSON.stringify cannot write every JSON text, e.g. 1e400), signed as `sign` does. */
  signText(payload: string): Promise<string>;
  /** A protected header and a payload exactly as given, bytes that need not be JSON nor UTF-8, signed RS256 by the key. */
  signBytes(header: Uint8Array, payload: Uint8Array): Promise<string>;
  /** A certificate (base64 DER, as x5c holds it) for the public key `spki`, issued by the signing key. */
  certificateFor(spki: Uint8Array): string;
}

let signer: Promise<TestMaaSigner> | undefined;

/** The signer, made once per process (deriving the RSA key takes about a second). */
export function testMaaSigner(): Promise<TestMaaSigner> {
  signer ??= makeSigner();
  return signer;
}

async function makeSigner(): Promise<TestMaaSigner> {
  const key = generateInsecureRsaKey("cloister-test-maa", "maa-signing");
  const name = encodeName([["CN", "Cloister test MAA signing key (INSECURE)"]]);
  const certificateFor = (spki: Uint8Array) => {
    const certificate = writeCertificate(
      {
        serial: Uint8Array.of(1),
        signatureAlgorithm: "rsa-pss-sha384",
        issuer: name,
        subject: name,
        notBefore: new Date("2020-01-01T00:00:00Z"),
        notAfter: new Date("2049-12-31T00:00:00Z"),
        spki,
        extensions: [],
      },
      (tbs) => signRsaPssSha384(key, tbs),
    );
    return Buffer.from(certificate).toString("base64");
  };
  const b64url = (n: bigint) =>
    Buffer.from(bigIntToBytes(n, Math.ceil(n.toString(16).length / 2))).toString("base64url");
  const privateKey = createPrivateKey({
    key: {
      kty: "RSA",
      n: b64url(key.n),
      e: b64url(key.e),
      d: b64url(key.d),
      p: b64url(key.p),
      q: b64url(key.q),
      dp: b64url(key.dp),
      dq: b64url(key.dq),
      qi: b64url(key.qInv),
    },
    format: "jwk",
  });
  const jwks = { keys: [{ kid: TEST_MAA_KID, kty: "RSA", x5c: [certificateFor(key.spki)] }] };
  const signBytes = async (header: Uint8Array, payload: Uint8Array) => {
    const input = `${Buffer.from(header).toString("base64url")}.${Buffer.from(payload).toString("base64url")}`;
    // RS256: RSASSA-PKCS1-v1_5 with SHA-256, node's default padding for an RSA key.
    return `${input}.${signRs256("sha256", Buffer.from(input), privateKey).toString("base64url")}`;
  };
  const header = new TextEncoder().encode(JSON.stringify({ alg: "RS256", kid: TEST_MAA_KID, typ: "JWT" }));
  const signText = (payload: string) => signBytes(header, new TextEncoder().encode(payload));
  return { jwks, sign: (claims) => signText(JSON.stringify(claims)), signText, signBytes, certificateFor };
}
