/**
 * Forgeries of the enclave's attestation document, as a malicious host would attempt them. The
 * document is `{"document": "<compact JWS>"}` on GET /v1/attestation.
 */
import { base64url, CompactSign, importJWK } from "jose";
import nacl from "tweetnacl";

interface DocumentPayload {
  cnf: { jwk: { kty: string; crv: string; x: string } };
  sig_jwk: { kty: string; crv: string; x: string };
  [field: string]: unknown;
}

function decode(jws: string): { header: string; payload: DocumentPayload; signature: string } {
  const [header, payload, signature] = jws.split(".");
  if (header === undefined || payload === undefined || signature === undefined) throw new Error("not a compact JWS");
  return { header, payload: JSON.parse(new TextDecoder().decode(base64url.decode(payload))), signature };
}

function encodePayload(payload: DocumentPayload): string {
  return base64url.encode(new TextEncoder().encode(JSON.stringify(payload)));
}

/** The attacker's own keys (fresh each call). */
export function attackerKeys() {
  return { sealing: nacl.box.keyPair(), signing: nacl.sign.keyPair() };
}

/** Replaces the X25519 sealing key in the payload, keeps the enclave's header and signature as they were. */
export function swapSealingKeyKeepSignature(jws: string, attackerSealingKey: Uint8Array): string {
  const { header, payload, signature } = decode(jws);
  payload.cnf = { jwk: { kty: "OKP", crv: "X25519", x: base64url.encode(attackerSealingKey) } };
  return `${header}.${encodePayload(payload)}.${signature}`;
}

/**
 * Replaces the sealing key and the signing key with the attacker's and signs the document again
 * with the attacker's Ed25519 key, so the JWS itself is valid under the key the payload names.
 * Only the hardware REPORT_DATA (which the attacker cannot change) still binds the enclave's keys.
 */
export async function swapKeysAndResign(
  jws: string,
  attacker: { sealing: { publicKey: Uint8Array }; signing: { publicKey: Uint8Array; secretKey: Uint8Array } },
): Promise<string> {
  const { payload } = decode(jws);
  payload.cnf = { jwk: { kty: "OKP", crv: "X25519", x: base64url.encode(attacker.sealing.publicKey) } };
  payload.sig_jwk = { kty: "OKP", crv: "Ed25519", x: base64url.encode(attacker.signing.publicKey) };
  return signAs(payload, attacker.signing);
}

/** Signs the unchanged payload with the attacker's key (the payload still names the enclave's key). */
export async function resignOnly(
  jws: string,
  signing: { publicKey: Uint8Array; secretKey: Uint8Array },
): Promise<string> {
  return signAs(decode(jws).payload, signing);
}

async function signAs(payload: DocumentPayload, signing: { publicKey: Uint8Array; secretKey: Uint8Array }) {
  const key = await importJWK(
    {
      kty: "OKP",
      crv: "Ed25519",
      x: base64url.encode(signing.publicKey),
      d: base64url.encode(signing.secretKey.subarray(0, 32)),
    },
    "EdDSA",
  );
  return new CompactSign(new TextEncoder().encode(JSON.stringify(payload)))
    .setProtectedHeader({ alg: "EdDSA", typ: "cloister-attestation+jwt" })
    .sign(key);
}

/** Rewrites the `document` field of a GET /v1/attestation response body. */
export function rewriteDocumentResponse(body: Uint8Array, rewrite: (jws: string) => string): Uint8Array {
  const json = JSON.parse(new TextDecoder().decode(body)) as { document: string };
  return new TextEncoder().encode(JSON.stringify({ document: rewrite(json.document) }));
}
