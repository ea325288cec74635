/**
 * The enclave's sealing key as the protocol uses it: the X25519 key pair plus its key id, the first
 * 16 bytes of SHA-256(public key), which routes envelopes. The id is computed once per boot here,
 * not per request. Generating the per-boot key is the enclave's job; this only wraps it.
 */
import { sha256, X25519_KEY_LENGTH, x25519PublicKey } from "./crypto.ts";
import { KEY_ID_LENGTH } from "./envelope.ts";
import { SealedInvalidArgumentError } from "./errors.ts";

export interface EnclaveSealingKey {
  readonly publicKey: Uint8Array;
  readonly secretKey: Uint8Array;
  /** SHA-256(publicKey)[0..16]. */
  readonly keyId: Uint8Array;
  /**
   * Synchronous primitives of the platform, bound to this key (the enclave passes node:crypto's):
   * opening a request then needs no thread-pool round trips. Absent: WebCrypto (asynchronous) or
   * tweetnacl.
   */
  readonly sync?: SyncPrimitives;
}

export function assertKeyLength(name: string, key: Uint8Array): void {
  if (!(key instanceof Uint8Array) || key.length !== X25519_KEY_LENGTH) {
    const found = key instanceof Uint8Array ? `${key.length} bytes` : typeof key;
    throw new SealedInvalidArgumentError(`${name}: expected ${X25519_KEY_LENGTH} bytes, found ${found}`);
  }
}

/** Key id of an enclave X25519 public key: the first 16 bytes of its SHA-256. */
export async function enclaveKeyId(publicKey: Uint8Array): Promise<Uint8Array> {
  assertKeyLength("enclave public key", publicKey);
  return sha256(publicKey).slice(0, KEY_ID_LENGTH);
}

export interface SyncPrimitives {
  /** The raw X25519 output of this key's secret with `peerPublicKey` (all zeros for a low-order point). */
  x25519(peerPublicKey: Uint8Array): Uint8Array;
}

/** `sync`: the platform's synchronous primitives for this secret key (EnclaveSealingKey.sync). */
export async function enclaveSealingKeyFromSecretKey(
  secretKey: Uint8Array,
  sync?: SyncPrimitives,
): Promise<EnclaveSealingKey> {
  assertKeyLength("enclave secret key", secretKey);
  const publicKey = x25519PublicKey(secretKey);
  return {
    publicKey,
    secretKey: secretKey.slice(),
    keyId: await enclaveKeyId(publicKey),
    ...(sync === undefined ? {} : { sync }),
  };
}
