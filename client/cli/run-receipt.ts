/**
 * `cloister receipt verify`: a receipt checked offline, under a signing key the caller trusts, and
 * (with --document) tied to the attestation document that carries that key.
 */
import { createHash } from "node:crypto";
import type { InputBound } from "../../attestation/bounded-read.ts";
import { bytesEqual, toHex } from "../../attestation/bytes.ts";
import { DOCUMENT_PROFILE, DOCUMENT_TYPE } from "../../attestation/document.ts";
import { DuplicateMemberError, parseJsonText } from "../../attestation/json-text.ts";
import { describeUntrusted } from "../../attestation/untrusted-text.ts";
import {
  ANSWER_FILE_BOUND,
  AuditDocumentInvalidError,
  CHAT_JSON_FILE_MAX_BYTES,
  DOCUMENT_FILE_BOUND,
  keyFromAttestationDocument,
  OPENING_NAMES_NOT_SHOWN,
  publicKeyOption,
  type ReadAttestationDocument,
  readAttestationDocument,
} from "../../enclave/audit-cli-impl.ts";
import { isCompactJws } from "../../manifests/digest.ts";
import { describeValue } from "../../manifests/issues.ts";
import { SealedError, textHash, verifyReceipt } from "../../sealed/index.ts";
import { ClientError } from "../errors.ts";
import { fileText, optionFileUnreadable, readBoundedFile, readOptionFile } from "./bounded-file.ts";
import { printJson, UsageError } from "./output.ts";

/** A file's bytes, to its bound (bounded-file.ts); a read error as readOptionFile names it. */
async function readBytes(file: string, option: string, bound: InputBound): Promise<Uint8Array> {
  return new Uint8Array(await readBoundedFile(file, option, bound, optionFileUnreadable(file, option)));
}

/** A --receipt file: a receipt line, or `cloister chat --json` output, bounded as `audit find --chat-json`. */
const RECEIPT_FILE_BOUND: InputBound = {
  bytes: CHAT_JSON_FILE_MAX_BYTES,
  expected: "a receipt line, or cloister chat --json's output",
};

/**
 * The receipt line: the file itself, or the `receipt` field of `cloister chat --json` output. That
 * output without one (a refused or failed request's: `{error, …}`) is named as such, not checked
 * as a receipt.
 */
function receiptLine(text: string, file: string): string {
  const trimmed = text.trim();
  let parsed: { receipt?: unknown; v?: unknown } | null = null;
  try {
    parsed = JSON.parse(trimmed) as { receipt?: unknown; v?: unknown };
  } catch {
    // not JSON: verifyReceipt says what is wrong
  }
  const chatOutput =
    typeof parsed?.receipt === "string" ||
    (typeof parsed === "object" &&
      parsed !== null &&
      parsed.v === undefined &&
      ("receipt" in parsed || "error" in parsed));
  // Read as chat --json output (as `audit find --chat-json` reads it), each member once: with
  // "receipt" twice JSON.parse verified the last while a reader of the file sees the first. A receipt
  // line itself is left to verifyReceipt, whose canonical-line check refuses a field named twice.
  // Names below audit.opening are not shown (the client's secret, as audit find --chat-json keeps it).
  if (chatOutput) {
    try {
      parseJsonText(trimmed, { namesNotShownBelow: OPENING_NAMES_NOT_SHOWN });
    } catch (error) {
      if (error instanceof DuplicateMemberError)
        throw new UsageError(`--receipt ${file}: ${error.message}`, { cause: error });
      throw error;
    }
  }
  if (typeof parsed?.receipt === "string") return parsed.receipt;
  if (chatOutput) {
    throw new UsageError(
      `--receipt ${file}: expected a receipt line or the output of cloister chat --json with its receipt, found JSON with no receipt (the output of a request that failed has none)`,
    );
  }
  return trimmed;
}

/** What --document gives: the digest receipts name it by, and the Ed25519 key it carries. */
interface DocumentKey {
  readonly documentDigest: string;
  readonly signingPublicKey: Uint8Array;
  /** Set when the document is not signed by the key it carries (reported with the receipt's verdict). */
  readonly signatureError: ClientError | null;
}

/**
 * A compact JWS (isCompactJws, manifests/digest.ts) with all three parts non-empty: that form allows
 * an empty payload and signature (the general JWS form), which an attestation document never has;
 * here either is refused as a usage error at once rather than read on.
 */
function isDocumentJws(text: string): boolean {
  return isCompactJws(text) && !text.split(".").includes("");
}

/**
 * A refusal of --document's document (AUDIT_DOCUMENT_INVALID elsewhere) as this command's usage
 * error, naming the part, with that refusal as its cause.
 */
function documentUsageError(error: AuditDocumentInvalidError): UsageError {
  return new UsageError(`--document: ${error.message.replace(/^attestation document:? ?/, "")}`, { cause: error });
}

/**
 * The attestation document of --document: the compact JWS as saved (its exact bytes, less one
 * trailing newline, are what `documentDigest` hashes), or the JSON body of GET /v1/attestation
 * (`{"document": "<JWS>"}`, the JWS's UTF-8 bytes hashed). Its key and self-signature come from
 * `keyFromAttestationDocument` (what `cloister audit verify --document` checks); the hardware
 * evidence is not checked here (that needs a fresh nonce).
 */
function readDocumentFile(bytes: Uint8Array, file: string): DocumentKey {
  let end = bytes.length;
  if (bytes[end - 1] === 0x0a) end -= bytes[end - 2] === 0x0d ? 2 : 1;
  let exact = bytes.subarray(0, end);
  // Strict, as audit verify reads --document: decoded loosely (U+FFFD), bytes other than the ones
  // hashed would be read. The digest stays over the bytes as they are.
  let text = fileText(exact, file, "--document");
  if (text.trimStart().startsWith("{")) {
    let body: { document?: unknown };
    try {
      // parseJsonText: with "document" twice, JSON.parse would hash the last while a reader sees the first.
      body = parseJsonText(text) as { document?: unknown };
    } catch (error) {
      if (error instanceof DuplicateMemberError) throw new UsageError(`--document: ${error.message}`, { cause: error });
      throw new UsageError("--document: expected a compact JWS or the JSON of GET /v1/attestation", { cause: error });
    }
    if (typeof body?.document !== "string") {
      throw new UsageError('--document: expected a "document" string in the JSON of GET /v1/attestation');
    }
    text = body.document;
    exact = new TextEncoder().encode(text);
  }
  if (!isDocumentJws(text)) {
    throw new UsageError(
      `--document: expected a compact JWS (three base64url parts, all non-empty, no white space), found ${describeValue(text)}`,
    );
  }
  // Read as the verifier reads them (one base64url spelling; UTF-8, each member once at every depth).
  let document: ReadAttestationDocument;
  try {
    document = readAttestationDocument(text);
  } catch (error) {
    if (!(error instanceof AuditDocumentInvalidError)) throw error;
    throw documentUsageError(error);
  }
  const fields: [string, unknown, string][] = [
    ["alg", document.header.alg, "EdDSA"],
    ["typ", document.header.typ, DOCUMENT_TYPE],
    ["eat_profile", document.payload.eat_profile, DOCUMENT_PROFILE],
  ];
  for (const [name, found, expected] of fields) {
    if (found !== expected) {
      throw new UsageError(
        `--document: ${name}: expected "${expected}" (a Cloister attestation document), found ${describeUntrusted(found)}`,
      );
    }
  }
  // The key it carries and its own signature under that key: the one check `cloister audit verify
  // --document` makes too (its hardware evidence needs a fresh nonce: `cloister attest`).
  const documentDigest = createHash("sha256").update(exact).digest("hex");
  try {
    return { documentDigest, signingPublicKey: keyFromAttestationDocument(document), signatureError: null };
  } catch (error) {
    if (!(error instanceof AuditDocumentInvalidError)) throw error;
    if (error.reason !== "signature") throw documentUsageError(error);
    const signatureError = new ClientError(
      "attestation",
      "DOCUMENT_SIGNATURE_INVALID",
      "--document: its JWS does not verify under its own signing key (sig_jwk)",
      { cause: error, stage: "document" },
    );
    return { documentDigest, signingPublicKey: new Uint8Array(0), signatureError };
  }
}

export const NO_DOCUMENT_WARNING =
  "cloister: warning: no --document: the receipt is checked under --key as given, tied to no " +
  "attestation; it is only as good as where that key came from (e.g. your own `cloister attest --json`)\n";

export async function runReceiptVerify(options: {
  receipt: string;
  key: string;
  answerFile?: string;
  document?: string;
  json?: boolean;
}): Promise<void> {
  // What `audit verify --key` takes, refused the same way: a small-order key among the key's faults
  // (signatures under it can be made without any secret), before any file is read.
  const key = publicKeyOption(options.key, "--key");
  // Strict UTF-8, as audit verify reads --chat-json: a byte that is not UTF-8 is refused, never U+FFFD.
  const line = receiptLine(await readOptionFile(options.receipt, "--receipt", RECEIPT_FILE_BOUND), options.receipt);
  // The answer's raw bytes: never decoded, so a file of invalid UTF-8 matches no answer.
  const answer =
    options.answerFile === undefined ? null : await readBytes(options.answerFile, "--answer-file", ANSWER_FILE_BOUND);
  const document =
    options.document === undefined
      ? null
      : readDocumentFile(await readBytes(options.document, "--document", DOCUMENT_FILE_BOUND), options.document);
  if (document === null) process.stderr.write(NO_DOCUMENT_WARNING);
  try {
    const receipt = await verifyReceipt(line, key);
    if (document !== null) {
      if (document.signatureError !== null) throw document.signatureError;
      // Public keys and digests only: never the answer or the document's content. The digest
      // first: another document than the one the receipt names (behind a pool host, another
      // member's, from GET /v1/attestation) also carries another key, and is named as what it is.
      if (receipt.documentDigest !== document.documentDigest) {
        throw new ClientError(
          "integrity",
          "RECEIPT_MISMATCH",
          `--document: expected the attestation document the receipt names (its documentDigest), SHA-256 ${receipt.documentDigest}, found one whose SHA-256 is ${document.documentDigest} (behind a pool host each enclave has its own document: give the one of the enclave that signed the receipt)`,
        );
      }
      if (!bytesEqual(key, document.signingPublicKey)) {
        throw new ClientError(
          "integrity",
          "RECEIPT_KEY_MISMATCH",
          `--key: expected the signing key of --document, ${toHex(document.signingPublicKey)}, found ${toHex(key)}`,
        );
      }
    }
    const answerHash = answer === null ? null : textHash(answer);
    if (answer !== null && receipt.answerHash !== answerHash) {
      // A file saved with `jq -r .text` or an editor ends with a line break the answer does not
      // have: said so when the bytes before it are the answer's, rather than a bare mismatch.
      const lineBreak = answer.at(-1) === 0x0a && textHash(answer.subarray(0, -1)) === receipt.answerHash;
      throw new ClientError(
        "integrity",
        "RECEIPT_MISMATCH",
        `receipt answerHash: expected the SHA-256 of --answer-file, ${answerHash}, found ${receipt.answerHash}${lineBreak ? " (the file without its final line break matches: save the answer's exact text, e.g. jq -j .text answer.json)" : ""}`,
      );
    }
    const { line: _line, ...fields } = receipt;
    const bound = document !== null;
    if (options.json === true) {
      printJson({ valid: true, answerChecked: answer !== null, keyBoundToDocument: bound, ...fields });
    } else {
      process.stdout.write(
        [
          bound
            ? "receipt verified: signed by the key of the given attestation document, which it names " +
              "(the document's hardware evidence is not checked here: cloister attest does that)"
            : "receipt verified: signed by the given key, as given (not tied to an attestation document)",
          `  answer       sha256 ${receipt.answerHash}${answer === null ? "" : "  (matches --answer-file)"}`,
          `  request      sha256 ${receipt.requestHash}`,
          `  finish       ${receipt.finishReason}, ${receipt.promptTokens} prompt + ${receipt.completionTokens} completion tokens`,
          `  model        sha256 ${receipt.modelSha256}`,
          `  manifest     sha256 ${receipt.manifestDigest}`,
          `  document     sha256 ${receipt.documentDigest}${bound ? "  (matches --document)" : ""}`,
          `  signed at    ${receipt.time}`,
          "",
        ].join("\n"),
      );
    }
  } catch (error) {
    if (!(error instanceof SealedError || error instanceof ClientError)) throw error;
    if (options.json === true) {
      printJson({ valid: false, code: error.code, reason: error.message });
      process.exitCode = 1;
      return;
    }
    throw error;
  }
}
