/**
 * The key broker's wire protocol (DESIGN.md "Models": sealed models, key broker), shared by the
 * broker and the enclave. Platform-neutral: tweetnacl and jose only.
 *
 * 1. The enclave asks the broker for a challenge: `POST /v1/kbs/challenge` → `{challenge}` (32
 *    bytes, base64url, opaque to the enclave; single use, short-lived).
 * 2. It answers the challenge with its attested Ed25519 key (the same nonce answer clients get,
 *    attestation/document.ts) and asks for the key: `POST /v1/kbs/release`
 *    `{keyId, document, challenge, answer}`.
 * 3. The broker verifies the document exactly as a client does, against the key's release policy
 *    (a client-policy file), checks that the attested manifest seals its model under this key id,
 *    and answers `{wrapped}`: the model key sealed to the enclave's *attested* X25519 key under a
 *    fresh broker X25519 key, bound to the key id, the challenge and the document.
 *
 * The enclave's X25519 key also opens clients' sealed requests (sealed/request.ts: `nacl.box`,
 * whose key is HSalsa20 of the X25519 shared secret). So the broker does not use `nacl.box` itself:
 * it hashes that shared key under its own label (SHA-512, `nacl.hash`, of
 * "cloister/kbs/model-key/v2" ‖ shared; the first 32 bytes) and seals with `nacl.secretbox` under
 * the result. A wrapped key repackaged as a request envelope then does not decrypt
 * (DECRYPTION_FAILED), nor a request envelope as a wrapped key: each use of the one key pair has
 * its own symmetric key. Format v 1 used `nacl.box` directly; the enclave refuses it, naming v.
 *
 * Only the enclave whose document was verified holds the secret key that opens `wrapped`; the host
 * or network in between sees a challenge, a public document and a box it cannot open.
 */
import { base64url } from "jose";
import nacl from "tweetnacl";
import { KEY_ID_PATTERN, KEY_ID_RULE } from "../../models/key-id.ts";
import { hsalsa20SharedKey, LowOrderKeyError } from "../../sealed/crypto.ts";
import { fromHex, toHex, utf8 } from "../bytes.ts";
import { constantTimeEqual } from "../crypto.ts";
import { describeUntrusted } from "../untrusted-text.ts";

export const KBS_CHALLENGE_BYTES = 32;
export const MODEL_KEY_BYTES = 32;
export const WRAPPED_MODEL_KEY_VERSION = 2;
/** The first bytes of the plaintext. */
const WRAP_TAG = utf8("cloister/kbs/model-key/v2\u0000");
/** What the wrapping key is derived under: no other use of the enclave's X25519 key hashes this. */
const WRAP_KEY_LABEL = utf8("cloister/kbs/model-key/v2");

/**
 * The secretbox key for one wrapped key: SHA-512(label ‖ HSalsa20(X25519(ownSecret, peerPublic)))'s
 * first 32 bytes. The caller zeroes it.
 */
function wrapKey(peerPublicKey: Uint8Array, ownSecretKey: Uint8Array): Uint8Array | null {
  // nacl.box.before's two steps, as sealed requests take them: a low-order peer key makes the
  // X25519 output all zero, a wrapping key anyone can compute (RFC 7748 6.1), and is refused.
  let shared: Uint8Array;
  try {
    shared = hsalsa20SharedKey(nacl.scalarMult(ownSecretKey, peerPublicKey));
  } catch (error) {
    if (error instanceof LowOrderKeyError) return null;
    throw error;
  }
  const input = new Uint8Array(WRAP_KEY_LABEL.length + shared.length);
  input.set(WRAP_KEY_LABEL);
  input.set(shared, WRAP_KEY_LABEL.length);
  const digest = nacl.hash(input); // SHA-512
  const key = digest.slice(0, nacl.secretbox.keyLength);
  for (const secret of [shared, input, digest]) secret.fill(0);
  return key;
}

/** The broker's answer to a release: the model key, boxed to the enclave's attested X25519 key. */
export interface WrappedModelKey {
  readonly v: typeof WRAPPED_MODEL_KEY_VERSION;
  readonly keyId: string;
  /** The broker's one-time X25519 public key, base64url. */
  readonly epk: string;
  /** The secretbox nonce, 24 bytes, base64url. */
  readonly nonce: string;
  /**
   * nacl.secretbox, under the wrapping key (`wrapKey`), of tag ‖ challenge ‖ document digest ‖
   * len(keyId) ‖ keyId ‖ key, base64url.
   */
  readonly box: string;
}

export interface ReleaseRequest {
  readonly keyId: string;
  /** The enclave's attestation document (compact JWS). */
  readonly document: string;
  /** The broker's challenge, base64url, as it was given. */
  readonly challenge: string;
  /** The enclave's nonce answer (compact JWS) to that challenge. */
  readonly answer: string;
}

/** Why an unwrap failed; `code` is stable. */
export class ModelKeyUnwrapError extends Error {
  readonly code: string;

  constructor(code: string, message: string) {
    super(message);
    this.name = "ModelKeyUnwrapError";
    this.code = code;
  }
}

function plaintext(keyId: string, challenge: Uint8Array, documentDigest: Uint8Array, key: Uint8Array): Uint8Array {
  const id = utf8(keyId);
  const out = new Uint8Array(WRAP_TAG.length + KBS_CHALLENGE_BYTES + 32 + 1 + id.length + MODEL_KEY_BYTES);
  let at = 0;
  for (const part of [WRAP_TAG, challenge, documentDigest, Uint8Array.of(id.length), id, key]) {
    out.set(part, at);
    at += part.length;
  }
  return out;
}

function checkDigest(documentDigest: string): Uint8Array {
  if (!/^[0-9a-f]{64}$/.test(documentDigest)) throw new RangeError("documentDigest: expected 64 lower-case hex digits");
  return fromHex(documentDigest);
}

/** Broker side: seals `key` to the enclave's attested sealing key. */
export function wrapModelKey(input: {
  keyId: string;
  key: Uint8Array;
  enclaveSealingPublicKey: Uint8Array;
  challenge: Uint8Array;
  documentDigest: string;
}): WrappedModelKey {
  if (!KEY_ID_PATTERN.test(input.keyId)) throw new RangeError(`keyId: expected ${KEY_ID_RULE}`);
  if (input.key.length !== MODEL_KEY_BYTES) throw new RangeError(`key: expected ${MODEL_KEY_BYTES} bytes`);
  if (input.challenge.length !== KBS_CHALLENGE_BYTES) {
    throw new RangeError(`challenge: expected ${KBS_CHALLENGE_BYTES} bytes`);
  }
  const ephemeral = nacl.box.keyPair();
  const nonce = nacl.randomBytes(nacl.secretbox.nonceLength);
  const digest = checkDigest(input.documentDigest);
  const key = wrapKey(input.enclaveSealingPublicKey, ephemeral.secretKey);
  ephemeral.secretKey.fill(0);
  if (key === null) {
    throw new RangeError("enclaveSealingPublicKey: expected an X25519 public key, found a low-order point");
  }
  const message = plaintext(input.keyId, input.challenge, digest, input.key);
  const box = nacl.secretbox(message, nonce, key);
  message.fill(0);
  key.fill(0);
  return {
    v: WRAPPED_MODEL_KEY_VERSION,
    keyId: input.keyId,
    epk: base64url.encode(ephemeral.publicKey),
    nonce: base64url.encode(nonce),
    box: base64url.encode(box),
  };
}

function decodeField(value: unknown, field: string, length: number | null): Uint8Array {
  let bytes: Uint8Array;
  try {
    if (typeof value !== "string") throw new Error(field);
    bytes = base64url.decode(value);
  } catch {
    throw new ModelKeyUnwrapError("KBS_RESPONSE_MALFORMED", `wrapped model key ${field}: expected base64url`);
  }
  if (length !== null && bytes.length !== length) {
    throw new ModelKeyUnwrapError(
      "KBS_RESPONSE_MALFORMED",
      `wrapped model key ${field}: expected ${length} bytes, found ${bytes.length}`,
    );
  }
  return bytes;
}

/**
 * Enclave side: opens the broker's box with the enclave's sealing secret key and checks that it is
 * the key asked for, bound to this challenge and this document. Returns the 32-byte model key.
 */
export function unwrapModelKey(
  wrapped: unknown,
  sealingSecretKey: Uint8Array,
  expected: { keyId: string; challenge: Uint8Array; documentDigest: string },
): Uint8Array {
  const w = wrapped as Partial<Record<keyof WrappedModelKey, unknown>> | null;
  if (w === null || typeof w !== "object") {
    throw new ModelKeyUnwrapError("KBS_RESPONSE_MALFORMED", "wrapped model key: expected a JSON object");
  }
  if (w.v !== WRAPPED_MODEL_KEY_VERSION) {
    throw new ModelKeyUnwrapError(
      "KBS_RESPONSE_MALFORMED",
      `wrapped model key v: expected ${WRAPPED_MODEL_KEY_VERSION}, found ${describeUntrusted(w.v)}`,
    );
  }
  if (w.keyId !== expected.keyId) {
    throw new ModelKeyUnwrapError(
      "KBS_KEY_MISMATCH",
      `wrapped model key keyId: expected "${expected.keyId}", found ${describeUntrusted(w.keyId)}`,
    );
  }
  const epk = decodeField(w.epk, "epk", nacl.box.publicKeyLength);
  const nonce = decodeField(w.nonce, "nonce", nacl.secretbox.nonceLength);
  const box = decodeField(w.box, "box", null);
  const key = wrapKey(epk, sealingSecretKey);
  if (key === null) {
    throw new ModelKeyUnwrapError(
      "KBS_RESPONSE_MALFORMED",
      "wrapped model key epk: expected an X25519 public key, found a low-order point",
    );
  }
  const opened = nacl.secretbox.open(box, nonce, key);
  key.fill(0);
  if (opened === null) {
    throw new ModelKeyUnwrapError(
      "KBS_UNWRAP_FAILED",
      "wrapped model key: the box does not open with this enclave's sealing key (altered, or wrapped for another enclave)",
    );
  }
  try {
    const mismatch = bindingMismatch(opened, expected);
    if (mismatch !== null) throw new ModelKeyUnwrapError("KBS_BINDING_MISMATCH", `wrapped model key ${mismatch}`);
    return opened.slice(opened.length - MODEL_KEY_BYTES);
  } finally {
    opened.fill(0);
  }
}

/**
 * The first bound field of an opened box that is not this boot's, as "field: expected …, found …",
 * or null when all are. Shows public values only: the challenge is named, not shown, and nothing is
 * read from the key's bytes (the lengths are checked before the key id is).
 */
function bindingMismatch(
  opened: Uint8Array,
  expected: { keyId: string; challenge: Uint8Array; documentDigest: string },
): string | null {
  const head = WRAP_TAG.length + KBS_CHALLENGE_BYTES + 32 + 1;
  if (opened.length < head + 1 + MODEL_KEY_BYTES) {
    return `plaintext: expected at least ${head + 1 + MODEL_KEY_BYTES} bytes, found ${opened.length}`;
  }
  const idLength = opened[head - 1] as number;
  if (opened.length !== head + idLength + MODEL_KEY_BYTES) {
    return `plaintext: expected ${head + idLength + MODEL_KEY_BYTES} bytes (with the ${idLength}-byte key id it announces), found ${opened.length}`;
  }
  if (!constantTimeEqual(opened.subarray(0, WRAP_TAG.length), WRAP_TAG)) {
    return 'tag: expected "cloister/kbs/model-key/v2", found other bytes';
  }
  let at = WRAP_TAG.length;
  if (!constantTimeEqual(opened.subarray(at, (at += KBS_CHALLENGE_BYTES)), expected.challenge)) {
    return "challenge: expected the challenge this boot answered, found another (a box for another release)";
  }
  const digest = opened.subarray(at, (at += 32));
  if (!constantTimeEqual(digest, checkDigest(expected.documentDigest))) {
    return `document digest: expected ${expected.documentDigest}, found ${toHex(digest)}`;
  }
  const keyId = new TextDecoder().decode(opened.subarray(head, head + idLength));
  if (keyId !== expected.keyId) {
    return `keyId: expected "${expected.keyId}", found ${describeUntrusted(keyId)}`;
  }
  return null;
}
