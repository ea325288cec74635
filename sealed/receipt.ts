/**
 * Per-response receipts: the enclave signs, with its attested Ed25519 key (the one bound in
 * REPORT_DATA, which also signs the audit log), what it answered to which request, under which
 * model, manifest and attestation document. The receipt travels inside the sealed final frame;
 * the client checks it against what it sent and received, and can keep it: anyone holding the
 * enclave's public signing key (from the attestation document named by `documentDigest`) can
 * verify it offline, and anyone holding the request's plaintext and the answer can check the two
 * hashes. It holds hashes only, never text.
 *
 * Line format: the JSON object below with the fields in this order, then `sig`, base64url of the
 * Ed25519 signature over "cloister/receipt/v1\0" ‖ the line without `sig` (the same JSON with the
 * fields in this order, no whitespace). Verification accepts only that exact canonical line, and
 * only one signature for it: S below the group order L, under a key that is not a small-order point.
 */
import nacl from "tweetnacl";
import { toHex } from "./bytes.ts";
import { sha256, type WebCryptoKey } from "./crypto.ts";
import { SealedError } from "./errors.ts";
import { isUtcTime } from "./time.ts";

export const RECEIPT_VERSION = 1;
const TAG = new TextEncoder().encode("cloister/receipt/v1\0");
const HEX64 = /^[0-9a-f]{64}$/;

/**
 * Whether `value` is a time exactly as Date#toISOString writes it (YYYY-MM-DDTHH:MM:SS.sssZ, UTC), as
 * the enclave writes receipts, audit records and checkpoints: not anything Date.parse accepts ("1"
 * is a year to it, and it takes a date alone, an offset, other forms), nor a day or hour that does
 * not exist in that form (February 30, hour 24), which Date.parse moves on to another time. Here,
 * not in enclave/pipeline/audit.ts, as sealed/ imports nothing outside itself; the audit code
 * imports it from here.
 */
export function isCanonicalTime(value: unknown): value is string {
  return isUtcTime(value, "milliseconds");
}
/** Longest receipt line (all counts at their largest): the final frame must hold it (frames.ts). */
export const MAX_RECEIPT_LENGTH = 900;

export interface ReceiptFields {
  /** SHA-256 (hex) of the request's plaintext JSON, as the client sealed it (without padding). */
  readonly requestHash: string;
  /** SHA-256 (hex) of the answer's UTF-8 text: the bytes of all data frames in order. */
  readonly answerHash: string;
  readonly finishReason: "stop" | "length";
  readonly promptTokens: number;
  readonly completionTokens: number;
  /** The model file's SHA-256 (hex), as the attested manifest pins it. */
  readonly modelSha256: string;
  /** SHA-256 (hex) of the signed manifest the enclave booted with. */
  readonly manifestDigest: string;
  /** SHA-256 (hex) of the attestation document that carries the signing key. */
  readonly documentDigest: string;
  /** The enclave's clock when it signed (ISO 8601, milliseconds, UTC). */
  readonly time: string;
}

export interface Receipt extends ReceiptFields {
  readonly v: typeof RECEIPT_VERSION;
  /** The signed line, as kept and verified. */
  readonly line: string;
}

export class ReceiptInvalidError extends SealedError {
  constructor(message: string) {
    super("RECEIPT_INVALID", message);
    this.name = "ReceiptInvalidError";
  }
}

/**
 * SHA-256 (hex) of text, as receipts hash answers: of its UTF-8 bytes. Bytes (an answer read from a
 * file) are hashed as they are, so valid UTF-8 gives the same hash as its text, and invalid UTF-8
 * matches no text (never decoded, so never turned into U+FFFD).
 */
export function textHash(text: string | Uint8Array): string {
  return toHex(sha256(typeof text === "string" ? new TextEncoder().encode(text) : text));
}

function unsignedLine(fields: ReceiptFields): string {
  return JSON.stringify({
    v: RECEIPT_VERSION,
    requestHash: fields.requestHash,
    answerHash: fields.answerHash,
    finishReason: fields.finishReason,
    promptTokens: fields.promptTokens,
    completionTokens: fields.completionTokens,
    modelSha256: fields.modelSha256,
    manifestDigest: fields.manifestDigest,
    documentDigest: fields.documentDigest,
    time: fields.time,
  });
}

function checkFields(fields: ReceiptFields): void {
  for (const name of ["requestHash", "answerHash", "modelSha256", "manifestDigest", "documentDigest"] as const) {
    if (typeof fields[name] !== "string" || !HEX64.test(fields[name])) {
      throw new ReceiptInvalidError(`receipt ${name}: expected 64 lower-case hex characters`);
    }
  }
  if (fields.finishReason !== "stop" && fields.finishReason !== "length") {
    throw new ReceiptInvalidError('receipt finishReason: expected "stop" or "length"');
  }
  for (const name of ["promptTokens", "completionTokens"] as const) {
    if (!Number.isSafeInteger(fields[name]) || fields[name] < 0) {
      throw new ReceiptInvalidError(`receipt ${name}: expected a non-negative integer`);
    }
  }
  if (!isCanonicalTime(fields.time)) {
    // A time is no secret: shown when short and plain, else by its kind and length.
    const time: unknown = fields.time;
    const found =
      typeof time !== "string"
        ? kindOf(time)
        : /^[0-9A-Za-z.:+-]{1,32}$/.test(time)
          ? JSON.stringify(time)
          : `a string of ${time.length} characters`;
    throw new ReceiptInvalidError(
      `receipt time: expected an ISO 8601 UTC time as the enclave writes it (YYYY-MM-DDTHH:MM:SS.sssZ), found ${found}`,
    );
  }
}

/**
 * Enclave: the signed receipt line. `sign`: Ed25519 under the attested key — a tweetnacl secret key
 * (64 bytes; slow, ~6 ms in pure JS) or a signer function (the enclave passes Node's native one,
 * enclave/pipeline/audit.ts `ed25519Signer`, ~0.05 ms: this is on every answer's path).
 */
export function signReceipt(fields: ReceiptFields, sign: Uint8Array | ((message: Uint8Array) => Uint8Array)): string {
  checkFields(fields);
  const unsigned = unsignedLine(fields);
  const message = signedMessage(unsigned);
  const signature = typeof sign === "function" ? sign(message) : nacl.sign.detached(message, sign);
  return `${unsigned.slice(0, -1)},"sig":"${base64url(signature)}"}`;
}

function signedMessage(unsigned: string): Uint8Array {
  const body = new TextEncoder().encode(unsigned);
  const message = new Uint8Array(TAG.length + body.length);
  message.set(TAG);
  message.set(body, TAG.length);
  return message;
}

/** Hex to bytes, for the constants below. */
function hexBytes(hex: string): Uint8Array {
  return Uint8Array.from(hex.match(/../g) ?? [], (pair) => Number.parseInt(pair, 16));
}

/** L = 2^252 + 27742317777372353535851937790883648493, the order of Ed25519's base point, little-endian. */
const ED25519_L = hexBytes(`edd3f55c1a631258d69cf7a2def9de14${"00".repeat(15)}10`);

/** Whether a signature's S (bytes 32..63, little-endian) is below L: the one canonical S (RFC 8032 §5.1.7). */
export function canonicalScalar(signature: Uint8Array): boolean {
  for (let i = 31; i >= 0; i--) {
    const s = signature[32 + i] as number;
    const l = ED25519_L[i] as number;
    if (s !== l) return s < l;
  }
  return false; // S = L
}

/**
 * The y coordinates (little-endian, sign bit clear) of Ed25519's small-order points (orders 1, 2,
 * 4 and 8): 0, 1, the two of order 8, p - 1, and the non-canonical p and p + 1 (libsodium's
 * list). With the sign bit clear or set, these 14 encodings are every way to write one of the 8
 * small-order points; a key among them makes signatures that verify for many messages.
 */
const SMALL_ORDER_Y = [
  "00".repeat(32),
  `01${"00".repeat(31)}`,
  "26e8958fc2b227b045c3f489f2ef98f0d5dfac05d3c63339b13802886d53fc05",
  "c7176a703d4dd84fba3c0b760d10670f2a2053fa2c39ccc64ec7fd7792ac037a",
  `ec${"ff".repeat(30)}7f`,
  `ed${"ff".repeat(30)}7f`,
  `ee${"ff".repeat(30)}7f`,
].map(hexBytes);

/** Whether a 32-byte Ed25519 public key encodes a small-order point (either sign bit). */
export function smallOrderKey(publicKey: Uint8Array): boolean {
  return SMALL_ORDER_Y.some((y) =>
    y.every((byte, i) => byte === (i === 31 ? (publicKey[i] as number) & 0x7f : publicKey[i])),
  );
}

/**
 * Ed25519 verification through WebCrypto where the runtime has Ed25519 (Node.js 20, current
 * browsers: ~0.2 ms), else tweetnacl (~13 ms in pure JS). The two do not agree on every input —
 * tweetnacl accepts a signature whose S is not reduced (S + L), WebCrypto refuses it — so
 * `verifyReceipt` refuses such signatures, and small-order keys, before either runs. tweetnacl is
 * used only when WebCrypto is missing or says Ed25519 is not supported; a key WebCrypto refuses
 * for any other reason is refused.
 */
async function ed25519Verify(message: Uint8Array, signature: Uint8Array, publicKey: Uint8Array): Promise<boolean> {
  const subtle = globalThis.crypto?.subtle;
  if (subtle !== undefined) {
    let key: WebCryptoKey;
    try {
      key = await subtle.importKey("raw", new Uint8Array(publicKey), { name: "Ed25519" }, false, ["verify"]);
    } catch (error) {
      if ((error as { name?: unknown } | null)?.name !== "NotSupportedError") return false;
      return nacl.sign.detached.verify(message, signature, publicKey); // no Ed25519 in this WebCrypto
    }
    try {
      return await subtle.verify({ name: "Ed25519" }, key, new Uint8Array(signature), new Uint8Array(message));
    } catch {
      return false;
    }
  }
  return nacl.sign.detached.verify(message, signature, publicKey);
}

/**
 * Verifies a receipt line under the enclave's Ed25519 public key (32 bytes): the exact canonical
 * line, a canonical signature (S below L), a key that is not a small-order point, a valid
 * signature. Returns its fields; the caller compares them with what it expects.
 */
export async function verifyReceipt(line: string, signingPublicKey: Uint8Array): Promise<Receipt> {
  if (typeof line !== "string" || line.length > MAX_RECEIPT_LENGTH) {
    throw new ReceiptInvalidError(`receipt: expected a line of at most ${MAX_RECEIPT_LENGTH} characters`);
  }
  let parsed: unknown;
  try {
    parsed = JSON.parse(line);
  } catch {
    throw new ReceiptInvalidError("receipt: expected one JSON object, found text that is not JSON");
  }
  if (typeof parsed !== "object" || parsed === null || Array.isArray(parsed)) {
    throw new ReceiptInvalidError(`receipt: expected one JSON object, found ${kindOf(parsed)}`);
  }
  const { v } = parsed as { v?: unknown };
  if (v !== RECEIPT_VERSION) {
    throw new ReceiptInvalidError(
      `receipt v: expected ${RECEIPT_VERSION}, found ${typeof v === "number" ? v : kindOf(v)}`,
    );
  }
  const fields = parsed as unknown as ReceiptFields & { sig?: unknown };
  checkFields(fields);
  if (
    typeof fields.sig !== "string" ||
    !/^[A-Za-z0-9_-]{86}$/.test(fields.sig) ||
    base64url(fromBase64url(fields.sig)) !== fields.sig // one spelling per signature
  ) {
    throw new ReceiptInvalidError("receipt sig: expected a base64url Ed25519 signature");
  }
  const unsigned = unsignedLine(fields);
  if (line !== `${unsigned.slice(0, -1)},"sig":"${fields.sig}"}`) {
    throw new ReceiptInvalidError("receipt: expected the canonical line (fields in order, no other fields, no spaces)");
  }
  const signature = fromBase64url(fields.sig);
  if (!canonicalScalar(signature)) {
    throw new ReceiptInvalidError("receipt sig: not a canonical Ed25519 signature (S is not below the group order)");
  }
  if (!(signingPublicKey instanceof Uint8Array) || signingPublicKey.length !== 32) {
    throw new ReceiptInvalidError("receipt sig: does not verify under the enclave's signing key");
  }
  if (smallOrderKey(signingPublicKey)) {
    throw new ReceiptInvalidError(
      "receipt sig: the signing key is a small-order point (signatures under it can be forged)",
    );
  }
  if (!(await ed25519Verify(signedMessage(unsigned), signature, signingPublicKey))) {
    throw new ReceiptInvalidError("receipt sig: does not verify under the enclave's signing key");
  }
  return { v: RECEIPT_VERSION, ...pick(fields), line };
}

/**
 * A JSON value that is not what a receipt holds, by its kind only (never its content). Its own, not
 * manifests/issues.ts's describeValue: sealed/ imports nothing outside itself (boundary.test.ts).
 */
function kindOf(value: unknown): string {
  if (value === undefined) return "none";
  if (value === null) return "null";
  if (Array.isArray(value)) return "an array";
  return typeof value === "object" ? "an object" : `a ${typeof value}`;
}

function pick(f: ReceiptFields): ReceiptFields {
  return {
    requestHash: f.requestHash,
    answerHash: f.answerHash,
    finishReason: f.finishReason,
    promptTokens: f.promptTokens,
    completionTokens: f.completionTokens,
    modelSha256: f.modelSha256,
    manifestDigest: f.manifestDigest,
    documentDigest: f.documentDigest,
    time: f.time,
  };
}

const B64URL = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";

function base64url(bytes: Uint8Array): string {
  let out = "";
  let bits = 0;
  let value = 0;
  for (const byte of bytes) {
    value = (value << 8) | byte;
    bits += 8;
    while (bits >= 6) {
      bits -= 6;
      out += B64URL[(value >> bits) & 63];
    }
  }
  if (bits > 0) out += B64URL[(value << (6 - bits)) & 63];
  return out;
}

function fromBase64url(text: string): Uint8Array {
  const out: number[] = [];
  let bits = 0;
  let value = 0;
  for (const char of text) {
    value = (value << 6) | B64URL.indexOf(char);
    bits += 6;
    if (bits >= 8) {
      bits -= 8;
      out.push((value >> bits) & 255);
    }
  }
  return Uint8Array.from(out);
}
