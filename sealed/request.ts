/**
 * Sealing a request (client) and opening it (enclave).
 *
 * The client makes a fresh X25519 key per request and seals with `nacl.box` to the enclave's
 * attested X25519 key under a random 24-byte nonce. nacl.box has no associated data, so the
 * envelope's clear prefix (routing header, ephemeral key, nonce) is bound by putting its SHA-256
 * at the start of the plaintext; the enclave recomputes and compares it (HEADER_MISMATCH), so the
 * host cannot swap or edit the routing header. The plaintext then carries
 * `{v, requestId, timestamp, kind, body}` as JSON, followed by spaces that pad the ciphertext to a
 * padded length (padding.ts); the enclave refuses stale and replayed requests through a
 * ReplayGuard (replay.ts).
 *
 * Not checked here: who sent the request (that is the host's API-key layer; anyone holding the
 * enclave's public key can seal a request) and what the body means (the enclave's pipeline).
 */
import { concatBytes, toHex } from "./bytes.ts";
import {
  BOX_NONCE_LENGTH,
  boxOpenWithSharedKey,
  boxSealWithSharedKey,
  boxSharedKeyFast,
  bytesEqual,
  randomBytes as defaultRandomBytes,
  deriveResponseKey,
  ephemeralFromSecretKey,
  generateEphemeralX25519Key,
  hsalsa20SharedKey,
  LowOrderKeyError,
  MAC_LENGTH,
  sha256,
  X25519_KEY_LENGTH,
} from "./crypto.ts";
import {
  ENVELOPE_PREFIX_LENGTH,
  encodeEnvelopePrefix,
  MAX_REQUEST_CIPHERTEXT_LENGTH,
  PROTOCOL_VERSION,
  parseEnvelope,
  REQUEST_KINDS,
  type RequestKind,
} from "./envelope.ts";
import {
  DecryptionFailedError,
  HeaderMismatchError,
  RequestMalformedError,
  RequestTooLargeError,
  SealedInvalidArgumentError,
  WrongEnclaveKeyError,
} from "./errors.ts";
import { ClientRequestContext, ResponseSealer } from "./frames.ts";
import { assertKeyLength, type EnclaveSealingKey, enclaveKeyId } from "./keys.ts";
import { paddedLength, REQUEST_PAD_BLOCK } from "./padding.ts";

/**
 * Padding never takes a ciphertext that fits under this past it: with the envelope prefix, that is
 * the host's default request limit (`cloister host --max-request-bytes`, 1 MiB).
 */
export const PADDING_SOFT_LIMIT = 1024 * 1024 - ENVELOPE_PREFIX_LENGTH;

import type { ReplayGuard } from "./replay.ts";

const HEADER_DIGEST_LENGTH = 32;
const REQUEST_ID_BYTES = 16;
const REQUEST_ID_PATTERN = /^[0-9a-f]{32}$/;
const REQUEST_FIELDS = ["v", "requestId", "timestamp", "kind", "body"] as const;

/** The decrypted request. `body` is the caller's JSON value, interpreted by the enclave pipeline. */
export interface SealedRequest<B = unknown> {
  readonly v: 1;
  /** 16 random bytes, lower-case hex. */
  readonly requestId: string;
  /** Client clock, milliseconds since the epoch. */
  readonly timestamp: number;
  readonly kind: RequestKind;
  readonly body: B;
}

export interface SealRequestOptions<B> {
  /** The enclave's X25519 key, taken from a verified attestation document. */
  readonly enclavePublicKey: Uint8Array;
  readonly kind: RequestKind;
  /** Any JSON value. */
  readonly body: B;
  /** Client time in ms; default Date.now(). */
  readonly now?: number;
  /**
   * Randomness source (ephemeral key, nonce, request id; a prepared key brings its own nonce and
   * request id); default WebCrypto's CSPRNG. Tests only.
   */
  readonly randomBytes?: (length: number) => Uint8Array;
  /**
   * A fresh ephemeral key made ahead of time for this enclave key (prepareRequestKey), used up by
   * this request; without it, the key is made here.
   */
  readonly prepared?: PreparedRequestKey;
}

/**
 * The expensive half of sealing one request, made ahead of time (e.g. while the previous answer
 * streams): a fresh ephemeral X25519 key and its shared key with one enclave key, and the
 * request's random nonce and request id (drawing them is the first random call after idle, about
 * 0.1 ms on the request's path). Single use: a request takes all of it at once, and `discard`
 * wipes it unused (e.g. when the enclave's keys change). It is as secret as the request it will
 * seal and never leaves the client's memory.
 */
export class PreparedRequestKey {
  #sharedKey: Uint8Array | null;
  /** The request's nonce then its request id's bytes. */
  #random: Uint8Array | null;

  /** @internal use prepareRequestKey */
  constructor(
    readonly enclavePublicKey: Uint8Array,
    readonly keyId: Uint8Array,
    readonly ephemeralPublicKey: Uint8Array,
    sharedKey: Uint8Array,
    random: Uint8Array,
  ) {
    this.#sharedKey = sharedKey;
    this.#random = random;
  }

  get used(): boolean {
    return this.#sharedKey === null;
  }

  /** @internal all of it, once; the caller wipes the shared key after use. */
  take(): TakenRequestKey {
    const sharedKey = this.#sharedKey;
    const random = this.#random;
    if (sharedKey === null || random === null) {
      throw new SealedInvalidArgumentError("prepared: this request key was already used");
    }
    this.#sharedKey = null;
    this.#random = null;
    return {
      keyId: this.keyId,
      ephemeralPublicKey: this.ephemeralPublicKey,
      sharedKey,
      nonce: random.subarray(0, BOX_NONCE_LENGTH),
      requestId: random.subarray(BOX_NONCE_LENGTH, BOX_NONCE_LENGTH + REQUEST_ID_BYTES),
    };
  }

  discard(): void {
    this.#sharedKey?.fill(0);
    this.#sharedKey = null;
    this.#random?.fill(0);
    this.#random = null;
  }
}

/** What a request takes from its PreparedRequestKey. */
interface TakenRequestKey {
  readonly keyId: Uint8Array;
  readonly ephemeralPublicKey: Uint8Array;
  readonly sharedKey: Uint8Array;
  readonly nonce: Uint8Array;
  /** 16 bytes. */
  readonly requestId: Uint8Array;
}

/** Client: makes a fresh ephemeral key and its shared key with `enclavePublicKey`, for one later request. */
export async function prepareRequestKey(enclavePublicKey: Uint8Array): Promise<PreparedRequestKey> {
  assertKeyLength("enclavePublicKey", enclavePublicKey);
  const [keyId, ephemeral] = await Promise.all([enclaveKeyId(enclavePublicKey), generateEphemeralX25519Key()]);
  const sharedKey = await ephemeral.sharedKey(enclavePublicKey).catch(lowOrderAsInvalidArgument);
  // One call for both: each call to the CSPRNG costs, the first after idle most.
  const random = defaultRandomBytes(BOX_NONCE_LENGTH + REQUEST_ID_BYTES);
  return new PreparedRequestKey(new Uint8Array(enclavePublicKey), keyId, ephemeral.publicKey, sharedKey, random);
}

function lowOrderAsInvalidArgument(error: unknown): never {
  if (error instanceof LowOrderKeyError) {
    throw new SealedInvalidArgumentError("enclavePublicKey: expected an X25519 public key, found a low-order point");
  }
  throw error;
}

export interface SealedRequestEnvelope {
  /** Bytes to send to the host. */
  readonly envelope: Uint8Array;
  /** Keep to open the response; holds the response key privately. */
  readonly context: ClientRequestContext;
}

export interface OpenedRequest {
  readonly request: SealedRequest;
  /** SHA-256 (hex) of the request's plaintext JSON without its padding (the receipt names it). */
  readonly requestHash: string;
  /** Seals the response frames under this request's response key. */
  readonly sealer: ResponseSealer;
}

const utf8Encoder = new TextEncoder();
const utf8Decoder = new TextDecoder("utf-8", { fatal: true });

/** Client: seals a request to the enclave's X25519 key with a fresh ephemeral key. */
export async function sealRequest<B>(options: SealRequestOptions<B>): Promise<SealedRequestEnvelope> {
  assertKeyLength("enclavePublicKey", options.enclavePublicKey);
  if (!REQUEST_KINDS.includes(options.kind)) {
    throw new SealedInvalidArgumentError(`kind: expected "chat" or "complete", found ${JSON.stringify(options.kind)}`);
  }
  const now = options.now ?? Date.now();
  if (!Number.isFinite(now) || now < 0)
    throw new SealedInvalidArgumentError(`now: expected a time in ms, found ${now}`);
  const random = options.randomBytes ?? defaultRandomBytes;

  const prepared = options.prepared;
  if (prepared !== undefined && !bytesEqual(prepared.enclavePublicKey, options.enclavePublicKey)) {
    throw new SealedInvalidArgumentError("prepared: expected a request key made for this enclave key");
  }
  if (prepared?.used === true) throw new SealedInvalidArgumentError("prepared: this request key was already used");
  if (options.body === undefined) throw new SealedInvalidArgumentError("body: expected a JSON value, found undefined");
  // A prepared key is used up here, whatever follows: its shared key is wiped on every way out.
  const taken = prepared?.take();
  try {
    return await sealWith(options, random, now, taken);
  } finally {
    taken?.sharedKey.fill(0);
  }
}

async function sealWith<B>(
  options: SealRequestOptions<B>,
  random: (length: number) => Uint8Array,
  now: number,
  taken: TakenRequestKey | undefined,
): Promise<SealedRequestEnvelope> {
  // Injected randomness (tests) makes the ephemeral secret from its first 32 bytes, as before;
  // otherwise WebCrypto makes it (crypto.ts), never leaving it in a JavaScript array.
  const ephemeralSecretKey =
    options.randomBytes === undefined || taken !== undefined ? null : takeRandom(random, X25519_KEY_LENGTH);
  const nonce = taken?.nonce ?? takeRandom(random, BOX_NONCE_LENGTH);
  const requestId = toHex(taken?.requestId ?? takeRandom(random, REQUEST_ID_BYTES));
  const kind = options.kind;

  let json: string;
  try {
    json = JSON.stringify({ v: PROTOCOL_VERSION, requestId, timestamp: Math.floor(now), kind, body: options.body });
  } catch (cause) {
    throw new SealedInvalidArgumentError("body: expected a JSON-serialisable value", { cause });
  }
  const unpaddedJson = utf8Encoder.encode(json);
  const unpaddedLength = HEADER_DIGEST_LENGTH + unpaddedJson.length + MAC_LENGTH;
  if (unpaddedLength > MAX_REQUEST_CIPHERTEXT_LENGTH) {
    unpaddedJson.fill(0);
    throw new RequestTooLargeError(
      `request size: expected a ciphertext of at most ${MAX_REQUEST_CIPHERTEXT_LENGTH} bytes, found ${unpaddedLength}`,
    );
  }
  // The host sees the ciphertext length: pad the JSON with trailing spaces (0x20, the only padding
  // the enclave cuts) to a padded length (padding.ts), never past the largest request,
  // and never past the host's default request limit when the request fits under it unpadded (so
  // padding does not turn a request that hosts accept into a 413).
  const limit = unpaddedLength <= PADDING_SOFT_LIMIT ? PADDING_SOFT_LIMIT : MAX_REQUEST_CIPHERTEXT_LENGTH;
  const ciphertextLength = Math.min(paddedLength(unpaddedLength, REQUEST_PAD_BLOCK), limit);
  const jsonBytes = new Uint8Array(ciphertextLength - HEADER_DIGEST_LENGTH - MAC_LENGTH).fill(0x20);
  jsonBytes.set(unpaddedJson);
  const requestHash = toHex(sha256(unpaddedJson));
  unpaddedJson.fill(0);

  // The prompt's bytes are wiped however sealing ends (a low-order enclave key fails it).
  try {
    let sharedKey: Uint8Array;
    let prefix: Uint8Array;
    if (taken !== undefined) {
      prefix = encodeEnvelopePrefix(kind, taken.keyId, ciphertextLength, taken.ephemeralPublicKey, nonce);
      sharedKey = taken.sharedKey;
    } else {
      // The key id and the ephemeral key (a WebCrypto job) are independent: made together.
      const [keyId, ephemeral] = await Promise.all([
        enclaveKeyId(options.enclavePublicKey),
        ephemeralSecretKey === null ? generateEphemeralX25519Key() : ephemeralFromSecretKey(ephemeralSecretKey),
      ]);
      prefix = encodeEnvelopePrefix(kind, keyId, ciphertextLength, ephemeral.publicKey, nonce);
      sharedKey = await ephemeral.sharedKey(options.enclavePublicKey).catch(lowOrderAsInvalidArgument);
    }
    const plaintext = concatBytes(sha256(prefix), jsonBytes);
    const ciphertext = boxSealWithSharedKey(plaintext, nonce, sharedKey);
    plaintext.fill(0);
    const responseKey = deriveResponseKey(sharedKey, nonce);
    sharedKey.fill(0);
    return {
      envelope: concatBytes(prefix, ciphertext),
      context: new ClientRequestContext(requestId, kind, responseKey, requestHash),
    };
  } finally {
    jsonBytes.fill(0);
  }
}

/**
 * Enclave: opens a request envelope. Checks, in order: structure and version, key id, decryption,
 * header binding, request fields, then freshness and replay (the guard records the id). Returns the
 * request and the sealer for its response frames.
 */
export async function openRequest(
  envelope: Uint8Array,
  enclaveKey: EnclaveSealingKey,
  replayGuard: ReplayGuard,
  now: number,
): Promise<OpenedRequest> {
  const parsed = parseEnvelope(envelope);
  if (!bytesEqual(parsed.header.keyId, enclaveKey.keyId)) throw new WrongEnclaveKeyError();
  const sync = enclaveKey.sync;
  let sharedKey: Uint8Array;
  try {
    sharedKey =
      sync === undefined
        ? await boxSharedKeyFast(parsed.ephemeralPublicKey, enclaveKey.secretKey, { cacheSecretKey: true })
        : hsalsa20SharedKey(sync.x25519(parsed.ephemeralPublicKey));
  } catch (error) {
    // A low-order ephemeral key gives no usable shared key: the envelope cannot be opened.
    if (error instanceof LowOrderKeyError) throw new DecryptionFailedError();
    throw error;
  }
  try {
    const plaintext = boxOpenWithSharedKey(parsed.ciphertext, parsed.nonce, sharedKey);
    if (plaintext === null) throw new DecryptionFailedError();
    try {
      if (plaintext.length < HEADER_DIGEST_LENGTH) {
        throw new RequestMalformedError(`request plaintext: expected at least ${HEADER_DIGEST_LENGTH} bytes`);
      }
      if (!bytesEqual(plaintext.subarray(0, HEADER_DIGEST_LENGTH), sha256(parsed.prefix))) {
        throw new HeaderMismatchError();
      }
      // The JSON object's own text, without its padding (trailing spaces): the receipt's request hash
      // names exactly these bytes, as the client sealed them.
      const padded = plaintext.subarray(HEADER_DIGEST_LENGTH);
      let end = padded.length;
      while (end > 0 && padded[end - 1] === 0x20) end--;
      const json = padded.subarray(0, end);
      const request = parseRequestJson(json, parsed.header.kind);
      replayGuard.check(request.requestId, request.timestamp, now);
      return {
        request,
        requestHash: toHex(sha256(json)),
        sealer: new ResponseSealer(deriveResponseKey(sharedKey, parsed.nonce)),
      };
    } finally {
      plaintext.fill(0);
    }
  } finally {
    sharedKey.fill(0);
  }
}

/**
 * Parses the request's JSON: exactly one object's text, `{` first and `}` last (the padding, trailing
 * spaces only, is already cut), so each request has one byte string: no other white space around it.
 */
function parseRequestJson(bytes: Uint8Array, headerKind: RequestKind): SealedRequest {
  if (bytes.length < 2 || bytes[0] !== 0x7b || bytes[bytes.length - 1] !== 0x7d) {
    // No byte is quoted: they are decrypted content.
    throw new RequestMalformedError(
      "request plaintext: expected a JSON object ('{' first, '}' last) followed only by spaces (0x20)",
    );
  }
  let text: string;
  let value: unknown;
  try {
    text = utf8Decoder.decode(bytes);
    value = JSON.parse(text);
  } catch {
    // No `cause`: JSON.parse's message quotes the decrypted text.
    throw new RequestMalformedError("request plaintext: expected UTF-8 JSON, found unparsable bytes");
  }
  // JSON.parse keeps the last of two members of one name, in any object: the text then holds more
  // members than the parsed value has keys. A first-wins reader (an auditor's) would read another request
  // from the bytes the receipt's request hash names.
  if (memberCount(text) !== keyCount(value)) {
    throw new RequestMalformedError("request plaintext: expected each member name once, found one repeated");
  }
  // An object, no other value: valid JSON text whose first byte is `{` is one.
  const o = value as Record<string, unknown>;
  for (const key of Object.keys(o)) {
    if (!(REQUEST_FIELDS as readonly string[]).includes(key)) {
      // The field's name is decrypted content: it stays out of the message (the host sees this error).
      throw new RequestMalformedError(`request plaintext: expected only the fields ${REQUEST_FIELDS.join(", ")}`);
    }
  }
  if (o.v !== PROTOCOL_VERSION) throw new RequestMalformedError(`request v: expected ${PROTOCOL_VERSION}`);
  if (typeof o.requestId !== "string" || !REQUEST_ID_PATTERN.test(o.requestId)) {
    throw new RequestMalformedError("request requestId: expected 32 lower-case hex characters");
  }
  if (typeof o.timestamp !== "number" || !Number.isSafeInteger(o.timestamp) || o.timestamp < 0) {
    throw new RequestMalformedError("request timestamp: expected a non-negative integer of milliseconds");
  }
  if (o.kind !== headerKind) {
    throw new RequestMalformedError(`request kind: expected "${headerKind}" (the header's kind)`);
  }
  if (!("body" in o)) throw new RequestMalformedError("request body: expected a JSON value, found none");
  return { v: PROTOCOL_VERSION, requestId: o.requestId, timestamp: o.timestamp, kind: headerKind, body: o.body };
}

/**
 * The members of all the objects in the valid JSON text `text`, in one pass: outside strings a colon
 * is only ever the separator of a member's name and value (arrays have none).
 */
function memberCount(text: string): number {
  let members = 0;
  let inString = false;
  for (let i = 0; i < text.length; i++) {
    const c = text.charCodeAt(i);
    if (inString) {
      // A backslash escapes the next character.
      if (c === 0x5c) i++;
      else if (c === 0x22) inString = false;
    } else if (c === 0x22) inString = true;
    else if (c === 0x3a) members++;
  }
  return members;
}

/**
 * The own keys of all the objects in a JSON.parse result (`__proto__` is an own key there). An explicit
 * stack, not recursion: a body nested deeper than the JS stack allows still counts.
 */
function keyCount(value: unknown): number {
  let keys = 0;
  const pending: unknown[] = [value];
  while (pending.length > 0) {
    const next = pending.pop();
    if (typeof next !== "object" || next === null) continue;
    if (Array.isArray(next)) {
      for (const item of next) pending.push(item);
    } else {
      const names = Object.keys(next);
      keys += names.length;
      for (const name of names) pending.push((next as Record<string, unknown>)[name]);
    }
  }
  return keys;
}

function takeRandom(random: (length: number) => Uint8Array, length: number): Uint8Array {
  const bytes = random(length);
  if (!(bytes instanceof Uint8Array) || bytes.length !== length) {
    throw new SealedInvalidArgumentError(`randomBytes(${length}): expected ${length} bytes`);
  }
  return bytes.slice();
}
