/**
 * Byte layout of the request envelope (docs/protocol.md is the reference; keep both in step).
 *
 * ```
 * offset  size  field
 *      0     1  version            0x01
 *      1     1  kind               0x01 chat, 0x02 complete
 *      2    16  enclave key id     SHA-256(enclave X25519 public key)[0..16]
 *     18     4  ciphertext length  u32 big-endian, N
 *     22    32  client ephemeral X25519 public key (fresh per request)
 *     54    24  nonce              random
 *     78     N  nacl.box ciphertext (16-byte MAC ‖ encrypted plaintext)
 * ```
 *
 * Bytes 0..22 are the routing header the host may read. This module checks structure only
 * (sizes, version, kind); nothing here decrypts or authenticates, and a header that parses is not
 * thereby authentic (the enclave checks its binding after decryption).
 */
import { readU32BE, writeU32BE } from "./bytes.ts";
import { EnvelopeMalformedError, UnsupportedVersionError } from "./errors.ts";

// This module is the one part of sealed/ the untrusted host may import, to read the routing
// header: it must stay free of cryptography (no crypto.ts, no tweetnacl; test/sealed/boundary
// checks its import closure). Hence the sizes are spelled out here rather than imported.
const X25519_KEY_LENGTH = 32;
const BOX_NONCE_LENGTH = 24;
const MAC_LENGTH = 16;

export const PROTOCOL_VERSION = 1;
export const KEY_ID_LENGTH = 16;
/**
 * An enclave key id as text: its KEY_ID_LENGTH bytes in lower-case hex, the one spelling the host
 * routes by (`?enclave=`, a pool member's key id) and the client names an enclave with.
 */
export const ENCLAVE_KEY_ID_HEX = new RegExp(`^[0-9a-f]{${2 * KEY_ID_LENGTH}}$`);
export const ROUTING_HEADER_LENGTH = 22;
export const EPHEMERAL_KEY_OFFSET = ROUTING_HEADER_LENGTH;
export const NONCE_OFFSET = EPHEMERAL_KEY_OFFSET + X25519_KEY_LENGTH;
/** Everything before the ciphertext: routing header, ephemeral key and nonce (78 bytes). */
export const ENVELOPE_PREFIX_LENGTH = NONCE_OFFSET + BOX_NONCE_LENGTH;
/** Largest ciphertext accepted (16 MiB): bounds what a request can make the enclave allocate. */
export const MAX_REQUEST_CIPHERTEXT_LENGTH = 16 * 1024 * 1024;

export type RequestKind = "chat" | "complete";
export const REQUEST_KINDS: readonly RequestKind[] = ["chat", "complete"];
const KIND_BYTES: Readonly<Record<RequestKind, number>> = { chat: 0x01, complete: 0x02 };

export function kindByte(kind: RequestKind): number {
  return KIND_BYTES[kind];
}

function kindFromByte(byte: number): RequestKind | undefined {
  if (byte === 0x01) return "chat";
  if (byte === 0x02) return "complete";
  return undefined;
}

/** What the host may read: version, kind, enclave key id, ciphertext length. */
export interface RoutingHeader {
  readonly version: number;
  readonly kind: RequestKind;
  readonly keyId: Uint8Array;
  readonly ciphertextLength: number;
}

/** Parsed envelope: views into the envelope bytes (no copies). */
export interface ParsedEnvelope {
  readonly header: RoutingHeader;
  /** Bytes 0..78, bound into the sealed plaintext by its SHA-256. */
  readonly prefix: Uint8Array;
  readonly ephemeralPublicKey: Uint8Array;
  readonly nonce: Uint8Array;
  readonly ciphertext: Uint8Array;
}

export function encodeEnvelopePrefix(
  kind: RequestKind,
  keyId: Uint8Array,
  ciphertextLength: number,
  ephemeralPublicKey: Uint8Array,
  nonce: Uint8Array,
): Uint8Array {
  const prefix = new Uint8Array(ENVELOPE_PREFIX_LENGTH);
  prefix[0] = PROTOCOL_VERSION;
  prefix[1] = kindByte(kind);
  prefix.set(keyId, 2);
  writeU32BE(prefix, 18, ciphertextLength);
  prefix.set(ephemeralPublicKey, EPHEMERAL_KEY_OFFSET);
  prefix.set(nonce, NONCE_OFFSET);
  return prefix;
}

/** Checks the envelope's structure and splits it; throws ENVELOPE_MALFORMED / UNSUPPORTED_VERSION. */
export function parseEnvelope(envelope: Uint8Array): ParsedEnvelope {
  if (envelope.length < ENVELOPE_PREFIX_LENGTH + MAC_LENGTH) {
    throw new EnvelopeMalformedError(
      `envelope length: expected at least ${ENVELOPE_PREFIX_LENGTH + MAC_LENGTH} bytes, found ${envelope.length}`,
    );
  }
  const version = envelope[0]!;
  if (version !== PROTOCOL_VERSION) throw new UnsupportedVersionError(version);
  const kind = kindFromByte(envelope[1]!);
  if (kind === undefined) {
    throw new EnvelopeMalformedError(`envelope kind byte: expected 1 (chat) or 2 (complete), found ${envelope[1]}`);
  }
  const ciphertextLength = readU32BE(envelope, 18);
  if (ciphertextLength > MAX_REQUEST_CIPHERTEXT_LENGTH) {
    throw new EnvelopeMalformedError(
      `envelope ciphertext length: expected at most ${MAX_REQUEST_CIPHERTEXT_LENGTH}, found ${ciphertextLength}`,
    );
  }
  if (envelope.length !== ENVELOPE_PREFIX_LENGTH + ciphertextLength) {
    throw new EnvelopeMalformedError(
      `envelope length: expected ${ENVELOPE_PREFIX_LENGTH + ciphertextLength} bytes (header says ciphertext ${ciphertextLength}), found ${envelope.length}`,
    );
  }
  return {
    header: { version, kind, keyId: envelope.subarray(2, 2 + KEY_ID_LENGTH), ciphertextLength },
    prefix: envelope.subarray(0, ENVELOPE_PREFIX_LENGTH),
    ephemeralPublicKey: envelope.subarray(EPHEMERAL_KEY_OFFSET, EPHEMERAL_KEY_OFFSET + X25519_KEY_LENGTH),
    nonce: envelope.subarray(NONCE_OFFSET, NONCE_OFFSET + BOX_NONCE_LENGTH),
    ciphertext: envelope.subarray(ENVELOPE_PREFIX_LENGTH),
  };
}

/**
 * HTTP header in which the host tells the enclave which API key (tenant) a request came from. The
 * host is untrusted, so the enclave prefers the tenant the client put inside the sealed request.
 */
export const TENANT_HEADER = "x-cloister-tenant";
/** What the host may put in TENANT_HEADER: one of its API-key ids (host/identity.ts). */
export const TENANT_LABEL_PATTERN = /^[A-Za-z0-9_.-]{1,64}$/;
