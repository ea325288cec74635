/**
 * `cloister audit verify`: reads a JSON-lines audit log and verifies it with
 * enclave/pipeline/audit.ts `AuditLogVerifier` (`verifyAuditLog` line by line). The log is read as
 * a stream, one line at a time: a boot's log grows without bound (about 800 bytes a request), far
 * past the largest string Node can make of a file (about 512 MiB).
 *
 * The key comes from `--key` (hex) or from an attestation document's `sig_jwk`. With `--document`
 * this command checks only that the document is signed by that key (it is self-consistent); it
 * does not verify the document's hardware evidence — verify the document itself to know the key
 * belongs to an attested enclave. Output says which source was used.
 */
import { createHash } from "node:crypto";
import { createReadStream, type ReadStream } from "node:fs";
import type { FileHandle } from "node:fs/promises";
import {
  fileMessage,
  type InputBound,
  NotFileOrPipeError,
  notFileOrPipeMessage,
  openFileOrPipe,
} from "../attestation/bounded-read.ts";
import { DOCUMENT_MAX_LENGTH } from "../attestation/document-key.ts";
import { DuplicateMemberError, parseJsonText } from "../attestation/json-text.ts";
import { compactJwsParts, decodeStrictBase64url, jwsPartObject } from "../attestation/jws.ts";
import { describeUntrusted } from "../attestation/untrusted-text.ts";
import { decodeUtf8, type NotUtf8At } from "../attestation/utf8.ts";
import { optionFileUnreadable, readBoundedFile, readText } from "../client/cli/bounded-file.ts";
import { counted, optionsUsageError, printJson, UsageError } from "../client/cli/output.ts";
import { describeValue } from "../manifests/issues.ts";
import { MAX_REQUEST_CIPHERTEXT_LENGTH } from "../sealed/envelope.ts";
import type { AuditFindCommandOptions, AuditVerifyCommandOptions } from "./audit-cli.ts";
import {
  type AuditCheckpoint,
  type AuditCheckpointProblem,
  AuditLogVerifier,
  type AuditLogVerifierResult,
  type AuditRecord,
  type AuditVerifyFailure,
  type AuditVerifyOptions,
  auditCommitment,
  checkAuditCheckpoint,
  ed25519PublicKeyProblem,
  ed25519Verifier,
  hexShape,
  parseAuditPublicKeyHex,
} from "./pipeline/audit.ts";
import { AuditKeyInvalidError, AuditVerifyError } from "./pipeline/errors.ts";

/** An attestation document the command cannot take a key from. */
export class AuditDocumentInvalidError extends Error {
  readonly code = "AUDIT_DOCUMENT_INVALID";

  /** `signature`: well formed, but not signed by the key it carries; `malformed`: anything else. */
  constructor(
    message: string,
    readonly reason: "malformed" | "signature" = "malformed",
    options?: ErrorOptions,
  ) {
    super(message, options);
    this.name = "AuditDocumentInvalidError";
  }
}

/** A checkpoint file that does not verify under the key; `problem` says why (`checkAuditCheckpoint`). */
export class AuditCheckpointInvalidError extends Error {
  readonly code = "AUDIT_CHECKPOINT_INVALID";

  constructor(
    message: string,
    readonly problem: AuditCheckpointProblem,
  ) {
    super(message);
    this.name = "AuditCheckpointInvalidError";
  }
}

/** The largest --checkpoint file read: a checkpoint line is about 300 bytes. */
const CHECKPOINT_FILE_MAX_BYTES = 64 * 1024;
/** A --document file's bound (`cloister audit verify`, `cloister receipt verify`). */
export const DOCUMENT_FILE_BOUND: InputBound = { bytes: DOCUMENT_MAX_LENGTH, expected: "an attestation document" };
/**
 * The largest --chat-json file read (64 MiB). It holds `cloister chat --json`'s one object: the
 * answer's text, of at most 1,048,576 tokens (the most a manifest lets maxTokens be), a receipt and
 * keys of a few kilobytes. A token's text is a few bytes (a long one a few tens; JSON writes a
 * control character as six): 64 bytes a token is many times what an answer takes, and 64 MiB stays
 * far below the largest string Node makes (about 512 MiB).
 */
export const CHAT_JSON_FILE_MAX_BYTES = 64 * 1024 * 1024;
/**
 * The largest --prompt-file read (16 MiB): the prompt a record commits to is the request's prompt,
 * or its chat messages' contents joined by "\n", as UTF-8. It came in the JSON of one sealed request,
 * whose ciphertext is at most MAX_REQUEST_CIPHERTEXT_LENGTH bytes (the enclave's own limit; the
 * host's --max-request-bytes can be set no higher), and that JSON is strict UTF-8 holding the text
 * whole or escaped longer, with more than one byte around each message: no prompt's bytes are more.
 */
const PROMPT_FILE_MAX_BYTES = MAX_REQUEST_CIPHERTEXT_LENGTH;
/**
 * The largest --answer-file read (64 MiB): an answer of at most 1,048,576 tokens (the most a
 * manifest lets maxTokens be), at 64 bytes a token, as --chat-json's bound reasons.
 */
const ANSWER_FILE_MAX_BYTES = 64 * 1024 * 1024;
/** An --answer-file's bound (`cloister audit verify`, `cloister receipt verify`). */
export const ANSWER_FILE_BOUND: InputBound = {
  bytes: ANSWER_FILE_MAX_BYTES,
  expected: "an answer of at most 1048576 tokens, the most a manifest lets maxTokens be",
};
/** The largest --opening-file read: an opening is 64 hex digits (and a line end); 1 KiB leaves room for white space. */
const OPENING_FILE_MAX_BYTES = 1024;

/**
 * Longest log line held in memory (1 MiB): a record line is about 1 KiB and the host's store takes
 * none over 64 KiB, so a longer line is reported as malformed without being read into memory.
 */
export const AUDIT_LOG_MAX_LINE_BYTES = 1024 * 1024;

/** A log line longer than `AUDIT_LOG_MAX_LINE_BYTES`: only its length is known. */
export interface AuditLogLineTooLong {
  readonly tooLong: number;
}

/** A log line whose bytes are not UTF-8: the offset (from 0) of the byte where that was found. */
export type AuditLogLineNotUtf8 = NotUtf8At;

/**
 * The UsageError for a log that cannot be read: names `what`, the file, and what was found or why it
 * could not be read (optionFileUnreadable: the error's code and what to do); the error its cause.
 */
function logReadError(what: string, path: string, error: unknown): Error {
  return error instanceof NotFileOrPipeError
    ? new UsageError(notFileOrPipeMessage(path, what, error), { cause: error })
    : optionFileUnreadable(path, what)(error);
}

/**
 * The lines of an audit log file, read as a stream: a regular file or a pipe (`--log <(ssh host cat
 * audit.jsonl)`, `--log /dev/stdin`), never a device (/dev/null would verify as an empty log,
 * /dev/zero never end) nor a directory (openFileOrPipe). Split on "\n", a trailing "\r" removed,
 * no empty line for a final newline — the lines `text.split("\n")` gives of the whole file, without
 * ever holding more than one line. A line that is not UTF-8 is
 * given as the first byte of the sequence that is not.
 * `onUnterminatedEnd` is called before the last line when the file does not end with a newline.
 * Read errors are thrown as they happen. With `handle` (a regular file the caller opened and looked
 * at), that file is read from its first byte instead, and left open: `path` is not opened again.
 */
export async function* readAuditLogLines(
  path: string,
  {
    maxLineBytes = AUDIT_LOG_MAX_LINE_BYTES,
    chunkBytes = 1024 * 1024,
    onUnterminatedEnd,
    handle,
  }: {
    maxLineBytes?: number;
    chunkBytes?: number;
    onUnterminatedEnd?: () => void;
    handle?: FileHandle | undefined;
  } = {},
): AsyncGenerator<string | AuditLogLineTooLong | AuditLogLineNotUtf8> {
  // A caller's handle is read at offsets, not through a stream: a stream destroyed at the end (or at
  // an early return) closes a FileHandle it reads, whatever its autoClose.
  let stream: ReadStream | undefined;
  let chunks: AsyncIterable<Buffer>;
  if (handle === undefined) {
    stream = createReadStream("", { fd: await openFileOrPipe(path), highWaterMark: chunkBytes });
    chunks = stream;
  } else chunks = chunksAt(handle, chunkBytes);
  let parts: Buffer[] = [];
  let bytes = 0;
  let tooLong = false;
  const take = (): string | AuditLogLineTooLong | AuditLogLineNotUtf8 => {
    const line = tooLong ? { tooLong: bytes } : decodeUtf8(Buffer.concat(parts, bytes));
    parts = [];
    bytes = 0;
    tooLong = false;
    if (typeof line !== "string") return line;
    return line.endsWith("\r") ? line.slice(0, -1) : line;
  };
  try {
    for await (const chunk of chunks) {
      let from = 0;
      for (;;) {
        const newline = chunk.indexOf(0x0a, from);
        const end = newline === -1 ? chunk.length : newline;
        bytes += end - from;
        if (bytes > maxLineBytes) {
          tooLong = true;
          parts = [];
        } else if (end > from) {
          parts.push(chunk.subarray(from, end));
        }
        if (newline === -1) break;
        yield take();
        from = newline + 1;
      }
    }
    if (bytes > 0) {
      onUnterminatedEnd?.();
      yield take();
    }
  } finally {
    stream?.destroy();
  }
}

/**
 * The bytes of an open file from its first, `chunkBytes` at a time, read at offsets until a read
 * finds none: its position is not moved, and it is not closed.
 */
async function* chunksAt(handle: FileHandle, chunkBytes: number): AsyncGenerator<Buffer> {
  for (let at = 0; ; ) {
    const chunk = Buffer.alloc(chunkBytes);
    const { bytesRead } = await handle.read(chunk, 0, chunkBytes, at);
    if (bytesRead === 0) return;
    at += bytesRead;
    yield chunk.subarray(0, bytesRead);
  }
}

/**
 * Verifies the log file at `path` line by line (see `readAuditLogLines`); `onRecord` sees each
 * verified record. A read error is a UsageError naming `what`, the file and the error's code.
 */
export async function verifyAuditLogFile(
  path: string,
  publicKey: Uint8Array,
  options: AuditVerifyOptions = {},
  onRecord?: (record: AuditRecord, index: number) => void,
  what = "--log",
): Promise<AuditLogVerifierResult> {
  return (await verifyAuditLogReadOnce(path, publicKey, options, onRecord, what)).result;
}

/**
 * verifyAuditLogFile on a log the caller opened and looked at (`handle`: a regular file, read from
 * its first byte and left open; `path` only names it), so that what is verified is the file looked
 * at, not whatever `path` names by then (`cloister up`'s check of the log the host stored).
 */
export async function verifyAuditLogHandle(
  handle: FileHandle,
  path: string,
  publicKey: Uint8Array,
  options: AuditVerifyOptions = {},
  what = "--log",
): Promise<AuditLogVerifierResult> {
  return (await verifyAuditLogReadOnce(path, publicKey, options, undefined, what, handle)).result;
}

/**
 * verifyAuditLogFile's result, and the log's first line (null when the log is empty, or its first
 * line too long or not UTF-8), which names the boot: taken from the one reading of the log, as a
 * pipe (`--log <(…)`, /dev/stdin) can only be read once.
 */
async function verifyAuditLogReadOnce(
  path: string,
  publicKey: Uint8Array,
  options: AuditVerifyOptions = {},
  onRecord?: (record: AuditRecord, index: number) => void,
  what = "--log",
  handle?: FileHandle,
): Promise<{ readonly result: AuditLogVerifierResult; readonly firstLine: string | null }> {
  const verifier = new AuditLogVerifier(publicKey, options, onRecord);
  let unterminated = false;
  let firstLine: string | null | undefined;
  const lines = readAuditLogLines(path, { onUnterminatedEnd: () => (unterminated = true), handle });
  try {
    for (;;) {
      // Only the reading is "cannot read": an error of the verifier's own is thrown as it is.
      let next: Awaited<ReturnType<typeof lines.next>>;
      try {
        next = await lines.next();
      } catch (error) {
        throw logReadError(what, path, error);
      }
      if (next.done) break;
      const line = next.value;
      if (firstLine === undefined) firstLine = typeof line === "string" ? line : null;
      if (typeof line === "string") verifier.push(line);
      else if ("tooLong" in line) verifier.pushTooLong(line.tooLong);
      else verifier.pushNotUtf8(line.notUtf8At + 1);
    }
  } finally {
    await lines.return(undefined);
  }
  const result = verifier.finish();
  // A malformed last line that no newline ends is most likely a record half written: the host is
  // writing it now, or crashed while writing it (host/audit-store.ts cuts it off at its next open;
  // its append never resolved, so the record was not acknowledged: the enclave sends it again if
  // that boot still runs, and a record of a boot that has ended is lost with it).
  if (
    !result.ok &&
    unterminated &&
    result.error.code === "AUDIT_RECORD_MALFORMED" &&
    result.error.index === result.lines - 1
  ) {
    const unfinished: AuditLogVerifierResult = {
      ...result,
      error: {
        ...result.error,
        message: `${result.error.message}; the file's last line has no newline: a write still under way, or one cut short by a crash (the host's store cuts it off when it next opens the log; while that boot's enclave runs, it sends that record again)`,
      },
    };
    return { result: unfinished, firstLine: firstLine ?? null };
  }
  return { result, firstLine: firstLine ?? null };
}

/** An attestation document refused as malformed (AUDIT_DOCUMENT_INVALID) with `message`. */
function refuseMalformedDocument(message: string, cause?: unknown): never {
  throw new AuditDocumentInvalidError(message, "malformed", { cause });
}

/** One base64url part of an attestation document, decoded strictly (fromBase64url), or AUDIT_DOCUMENT_INVALID naming it. */
function strictDocumentPart(text: string, part: "header" | "payload" | "sig_jwk.x" | "signature"): Uint8Array {
  return decodeStrictBase64url(text, `attestation document ${part}`, refuseMalformedDocument);
}

/**
 * A header or payload of an attestation document as a JSON object, decoded and read as the verifier
 * reads it (fromBase64url: one spelling; jwsPartObject: UTF-8 only, no byte order mark, each member
 * once at every depth, so a signed part cannot say two things to two readers), or
 * AUDIT_DOCUMENT_INVALID naming the part.
 */
function documentPartObject(text: string, part: "header" | "payload"): Record<string, unknown> {
  return jwsPartObject(strictDocumentPart(text, part), `attestation document ${part}`, refuseMalformedDocument);
}

/**
 * An attestation document's three parts (found as the verifier finds them: compactJwsParts), and its
 * header and payload as documentPartObject reads them; nothing verified.
 */
export interface ReadAttestationDocument {
  readonly parts: readonly [string, string, string];
  readonly header: Record<string, unknown>;
  readonly payload: Record<string, unknown>;
}

/** An attestation document's text read as a ReadAttestationDocument, or AUDIT_DOCUMENT_INVALID naming the part. */
export function readAttestationDocument(text: string): ReadAttestationDocument {
  const [headerPart, payloadPart, sigPart] = compactJwsParts(text.trim(), (found) => {
    throw new AuditDocumentInvalidError(`attestation document: expected a compact JWS (3 parts), found ${found}`);
  });
  return {
    parts: [headerPart, payloadPart, sigPart],
    header: documentPartObject(headerPart, "header"),
    payload: documentPartObject(payloadPart, "payload"),
  };
}

/**
 * The Ed25519 key named by an attestation document's `sig_jwk`, after checking the JWS under it: the
 * document's text, or the document readAttestationDocument has read already (not read twice).
 */
export function keyFromAttestationDocument(document: string | ReadAttestationDocument): Uint8Array {
  const { parts, header, payload } = typeof document === "string" ? readAttestationDocument(document) : document;
  const [headerPart, payloadPart, sigPart] = parts;
  if (header.alg !== "EdDSA") {
    throw new AuditDocumentInvalidError(
      // The header is the host's: shown cut short, without control characters (describeUntrusted).
      `attestation document alg: expected "EdDSA", found ${describeUntrusted(header.alg)}`,
    );
  }
  const jwk = payload.sig_jwk as { kty?: unknown; crv?: unknown; x?: unknown } | null | undefined;
  if (
    typeof jwk !== "object" ||
    jwk === null ||
    jwk.kty !== "OKP" ||
    jwk.crv !== "Ed25519" ||
    typeof jwk.x !== "string"
  ) {
    throw new AuditDocumentInvalidError("attestation document sig_jwk: expected an OKP Ed25519 JWK");
  }
  const key = strictDocumentPart(jwk.x, "sig_jwk.x");
  // Read as receipts and audit records are: 32 bytes and no small-order key (ed25519PublicKeyProblem),
  // one spelling of S (S below L, ed25519Verifier), which tweetnacl alone would not refuse.
  const problem = ed25519PublicKeyProblem(key);
  if (problem !== null) {
    throw new AuditDocumentInvalidError(
      `attestation document sig_jwk.x: expected ${problem.expected}, found ${problem.found}`,
    );
  }
  const signature = strictDocumentPart(sigPart, "signature");
  const signingInput = new TextEncoder().encode(`${headerPart}.${payloadPart}`);
  if (!ed25519Verifier(key)(signingInput, signature)) {
    throw new AuditDocumentInvalidError(
      "attestation document: the JWS signature does not verify under its own sig_jwk",
      "signature",
    );
  }
  return key;
}

/**
 * The enclave's Ed25519 public key an option gives as 64 hex characters, by the one definition of
 * a valid one (parseAuditPublicKeyHex: white space around it and upper-case digits taken, a
 * small-order key refused), or a UsageError naming `option`, the expected and the found.
 */
export function publicKeyOption(hex: string, option: string): Uint8Array {
  try {
    return parseAuditPublicKeyHex(hex);
  } catch (error) {
    if (!(error instanceof AuditKeyInvalidError)) throw error;
    throw new UsageError(`${option}: ${error.message}`, { cause: error });
  }
}

/**
 * The key of --key or --document (exactly one), and which it was; `keyName` names where --key's value
 * came from. With --document also its boot: the document's digest, which names the boot's log.
 */
async function commandKey(
  options: {
    key?: string;
    document?: string;
  },
  keyName = "--key",
): Promise<{ publicKey: Uint8Array; keySource: "key" | "document"; documentBoot?: string }> {
  if ((options.key === undefined) === (options.document === undefined)) {
    throw optionsUsageError("give exactly one of --key <hex> or --document <file>");
  }
  if (options.key !== undefined) return { publicKey: publicKeyOption(options.key, keyName), keySource: "key" };
  const text = await readText(options.document as string, "--document", DOCUMENT_FILE_BOUND);
  return {
    publicKey: keyFromAttestationDocument(text),
    keySource: "document",
    documentBoot: createHash("sha256").update(text.trim()).digest("hex"),
  };
}

/** The `attestationDigest` a log line's record names, read without verifying anything (routing only). */
function unverifiedAttestationDigest(line: string | null): string | null {
  try {
    const digest = (JSON.parse(line ?? "") as { record?: { attestationDigest?: unknown } }).record?.attestationDigest;
    return typeof digest === "string" && HEX32.test(digest) ? digest : null;
  } catch {
    return null;
  }
}

/** A record that is not in the log, or whose commitment does not match what was given. */
export class AuditFindError extends Error {
  constructor(
    readonly code:
      | "AUDIT_RECORD_NOT_FOUND"
      | "AUDIT_COMMITMENT_MISMATCH"
      | "AUDIT_NO_COMMITMENT"
      | "AUDIT_LOG_OTHER_BOOT",
    message: string,
  ) {
    super(message);
    this.name = "AuditFindError";
  }
}

const HEX32 = /^[0-9a-f]{64}$/;
/**
 * Where a --chat-json's member names are its data: an opening given as an object is keyed by what it
 * holds (its digits read as a plain name), so a refusal of a name twice there names only audit.opening
 * (at any depth: a file whose root is an array is refused as not an object only after that refusal).
 * `receipt verify --receipt` reads the same file (client/cli/run-receipt.ts).
 */
export const OPENING_NAMES_NOT_SHOWN = [["audit", "opening"]] as const;

/**
 * What an opening that is not 64 hex digits was found to be: its type and length only. An opening
 * is the client's secret for its record, so neither its digits (as a string or a JSON number), nor a
 * boolean's value, nor an object's keys (which can hold the digits) are ever shown.
 */
function openingShape(value: unknown): string {
  // hexShape says a string by its length and none as none; its other values would show what they hold.
  if (value === undefined || typeof value === "string") return hexShape(value);
  if (value === null) return "null";
  if (Array.isArray(value)) return `an array of ${value.length} item${value.length === 1 ? "" : "s"}`;
  if (typeof value === "object") {
    const fields = Object.keys(value).length;
    return `an object of ${fields} field${fields === 1 ? "" : "s"}`;
  }
  return `a ${typeof value}`;
}

/**
 * `cloister audit find`: verifies the whole log (a record is only evidence inside a valid chain),
 * finds the record of one request by its requestIdHash and, given the opening the enclave sealed to
 * the client, recomputes the record's promptHmac / responseHmac from the prompt and answer text.
 */
export async function auditFindCommand(options: AuditFindCommandOptions): Promise<void> {
  /** A string once checked (HEX32); from a --chat-json file, whatever its audit field held. */
  let requestIdHash: unknown;
  /** From a --chat-json file, whatever its audit.opening held (undefined: none); else --opening-file's text. */
  let openingHex: unknown;
  /** --chat-json always carries an opening (its absence is refused); --request-id-hash only with --opening-file. */
  const openingAsked = options.chatJson !== undefined || options.openingFile !== undefined;
  let answer: Uint8Array | undefined;
  /** The enclave boot (attestation document digest) the answer came from, when known. */
  let expectedBoot: string | undefined;
  let chatKey: string | undefined;
  if (options.chatJson !== undefined) {
    if (options.requestIdHash !== undefined || options.openingFile !== undefined) {
      throw optionsUsageError("give --chat-json, or --request-id-hash (and --opening-file), not both");
    }
    let chat: {
      text?: unknown;
      enclave?: unknown;
      signingKey?: unknown;
      audit?: { requestIdHash?: unknown; opening?: unknown } | null;
    };
    const text = await readText(options.chatJson, "--chat-json", {
      bytes: CHAT_JSON_FILE_MAX_BYTES,
      expected: "cloister chat --json output: an answer of at most 1048576 tokens, its receipt and keys",
    });
    try {
      // parseJsonText: V8's SyntaxError quotes the text, which holds the answer, and util.inspect
      // prints a cause: its own says only where the text went wrong. And a member named twice (two
      // "audit"s) is refused: JSON.parse would look up the last while a reader sees the first.
      chat = parseJsonText(text, { namesNotShownBelow: OPENING_NAMES_NOT_SHOWN }) as typeof chat;
    } catch (error) {
      if (error instanceof DuplicateMemberError) {
        throw new UsageError(fileMessage(options.chatJson, "--chat-json", error.message), { cause: error });
      }
      throw new UsageError(
        fileMessage(options.chatJson, "--chat-json", "not JSON (expected the output of cloister chat --json)"),
        { cause: error },
      );
    }
    if (typeof chat !== "object" || chat === null || Array.isArray(chat)) {
      throw new UsageError(
        fileMessage(
          options.chatJson,
          "--chat-json",
          `expected the JSON object cloister chat --json prints, found ${describeValue(chat)}`,
        ),
      );
    }
    if (chat.audit === null || typeof chat.audit !== "object") {
      throw new UsageError(
        fileMessage(
          options.chatJson,
          "--chat-json",
          "no audit field (the deployment's audit keeps no prompt or answer commitments, or the file is not cloister chat --json output)",
        ),
      );
    }
    // As they are (not String()'d): a missing or non-string field is then said as found (none, null, 42).
    requestIdHash = chat.audit.requestIdHash;
    openingHex = chat.audit.opening;
    if (typeof chat.text === "string") answer = new TextEncoder().encode(chat.text);
    if (typeof chat.enclave === "string" && HEX32.test(chat.enclave)) expectedBoot = chat.enclave;
    if (typeof chat.signingKey === "string") chatKey = chat.signingKey;
  } else {
    // What is missing, in the order it is needed: the record to find, then the key the log is
    // verified with (--chat-json gives both).
    if (options.requestIdHash === undefined) {
      throw optionsUsageError(
        options.key === undefined && options.document === undefined
          ? "give --chat-json <file> (the output of cloister chat --json: the record to find and the enclave's key), or --request-id-hash <hex> with --key <hex> or --document <file>"
          : "give --chat-json <file> or --request-id-hash <hex>: the record to find",
      );
    }
    requestIdHash = options.requestIdHash;
    // Refused before any file is read: a file that cannot be read would hide what is missing.
    if ((options.promptFile !== undefined || options.answerFile !== undefined) && options.openingFile === undefined) {
      throw optionsUsageError(
        "--prompt-file and --answer-file need the record's opening (--chat-json or --opening-file)",
      );
    }
    if (options.openingFile !== undefined) {
      openingHex = (
        await readText(options.openingFile, "--opening-file", {
          bytes: OPENING_FILE_MAX_BYTES,
          expected: "an opening is 64 hex digits",
        })
      ).trim();
    }
  }
  // The key: --key or --document, else the attested signing key cloister chat --json printed (the
  // output of the user's own verified session).
  const fromChat = options.key === undefined && options.document === undefined && options.chatJson !== undefined;
  if (fromChat && chatKey === undefined) {
    throw new UsageError(
      fileMessage(
        options.chatJson as string,
        "--chat-json",
        "no signingKey field; give --key <hex> or --document <file>",
      ),
    );
  }
  const key =
    fromChat && chatKey !== undefined
      ? await commandKey({ key: chatKey }, "--chat-json signingKey")
      : await commandKey(options, "--key");
  const publicKey = key.publicKey;
  const keySource = fromChat ? "chat-json" : key.keySource;
  if (key.documentBoot !== undefined) expectedBoot = key.documentBoot;
  // Each named where it came from: the --chat-json file's field, the option (bad input of the
  // command line, with the help hint), or the --opening-file file.
  if (typeof requestIdHash !== "string" || !HEX32.test(requestIdHash)) {
    const found = hexShape(requestIdHash);
    throw options.chatJson === undefined
      ? optionsUsageError(`--request-id-hash expects 64 lower-case hex digits, found ${found}`)
      : new UsageError(
          fileMessage(
            options.chatJson,
            "--chat-json",
            `audit.requestIdHash: expected 64 lower-case hex digits, found ${found}`,
          ),
        );
  }
  // The opening is the client's secret for its record: its length is shown, never its digits.
  if (openingAsked && (typeof openingHex !== "string" || !HEX32.test(openingHex))) {
    const reason = `expected 64 lower-case hex digits, found ${openingShape(openingHex)}`;
    throw new UsageError(
      options.chatJson === undefined
        ? fileMessage(options.openingFile as string, "--opening-file", reason)
        : fileMessage(options.chatJson, "--chat-json", `audit.opening: ${reason}`),
    );
  }
  // The prompt's and the answer's bytes are committed to as they are: never decoded (a decoder drops
  // a leading byte order mark or turns bad bytes into U+FFFD), so the file's own bytes are compared.
  if (options.answerFile !== undefined) {
    answer = new Uint8Array(await readBoundedFile(options.answerFile, "--answer-file", ANSWER_FILE_BOUND));
  }
  const prompt =
    options.promptFile === undefined
      ? undefined
      : new Uint8Array(
          await readBoundedFile(options.promptFile, "--prompt-file", {
            bytes: PROMPT_FILE_MAX_BYTES,
            expected: "a prompt is at most the enclave's largest sealed request, 16 MiB",
          }),
        );

  // Every record with this hash, in log order: a request id sent twice (after the replay window;
  // the SDK never does) has a record each time, under one opening, and none is chosen silently.
  const found: AuditRecord[] = [];
  const { result, firstLine } = await verifyAuditLogReadOnce(options.log, publicKey, {}, (record) => {
    if (record.requestIdHash === requestIdHash) found.push(record);
  });
  // Every boot has its own log (and key): name the right one rather than report its signatures bad.
  // Its first line is taken from the one reading of the log: a pipe (--log <(…)) cannot be read twice.
  const logBoot = unverifiedAttestationDigest(firstLine);
  if (expectedBoot !== undefined && logBoot !== null && logBoot !== expectedBoot) {
    const error = new AuditFindError(
      "AUDIT_LOG_OTHER_BOOT",
      `this log is of enclave boot ${logBoot.slice(0, 16)}, the answer came from boot ${expectedBoot.slice(0, 16)}: its log is ${expectedBoot.slice(0, 16)}.jsonl in the host's audit directory`,
    );
    if (!options.json) throw error;
    printJson({ found: false, logValid: null, code: error.code, reason: error.message });
    process.exitCode = 1;
    return;
  }
  const publicKeyHex = Buffer.from(publicKey).toString("hex");
  // With --json every outcome is one JSON object (found or not, why not), and the exit code says it.
  const fail = (error: AuditFindError | AuditVerifyError, extra: Record<string, unknown> = {}): void => {
    if (!options.json) throw error;
    printJson({
      found: false,
      logValid: result.ok,
      publicKey: publicKeyHex,
      keySource,
      code: error.code,
      reason: error.message,
      ...extra,
    });
    process.exitCode = 1;
  };
  if (!result.ok) {
    fail(new AuditVerifyError(result.error.code, result.error.index, result.error.message));
    return;
  }
  const first = found[0];
  if (first === undefined) {
    fail(
      new AuditFindError(
        "AUDIT_RECORD_NOT_FOUND",
        `no record with requestIdHash ${requestIdHash} among the ${result.records} records of this log (another enclave boot's log, or not collected yet)`,
      ),
    );
    return;
  }
  // A string here is an opening checked above (HEX32); none was asked for otherwise.
  const opening = typeof openingHex === "string" ? Buffer.from(openingHex, "hex") : undefined;
  const compared = found.map((record) => compareWithRecord(record, { opening, prompt, answer }, options));
  // The record about the text given (the first, if several are); -1 when none is.
  const aboutText = compared.findIndex((c) => c.missing === null && Object.values(c.checks).every((ok) => ok));
  const firstMissing = compared[0]?.missing ?? null;
  // No record keeps the commitment a text was given for (then none is about it either).
  if (firstMissing !== null && compared.every((c) => c.missing !== null)) {
    const which = found.length === 1 ? `record ${first.seq}` : `records ${found.map((r) => r.seq).join(", ")}`;
    fail(
      new AuditFindError(
        "AUDIT_NO_COMMITMENT",
        `${which} ${firstMissing}: the record keeps none (the manifest's audit settings, or the request was refused before it)`,
      ),
      { record: { seq: first.seq } },
    );
    return;
  }
  // Shown as `record`: the one about the text, else the first found.
  const shown = Math.max(aboutText, 0);
  if (options.json) {
    printJson({
      found: true,
      logValid: true,
      records: result.records,
      publicKey: publicKeyHex,
      keySource,
      record: recordSummary(found[shown] ?? first),
      matches: compared[shown]?.checks,
      allFound: found.map((record, i) => ({
        record: recordSummary(record),
        matches: compared[i]?.checks,
        ...(compared[i]?.missing == null ? {} : { noCommitment: compared[i]?.missing }),
      })),
      ...(aboutText < 0 ? { code: "AUDIT_COMMITMENT_MISMATCH" } : {}),
    });
    if (aboutText < 0) process.exitCode = 1;
    return;
  }
  if (found.length > 1) {
    process.stdout.write(
      `${found.length} records have this requestIdHash (its request id was sent more than once), in log order:\n`,
    );
  }
  for (const [i, record] of found.entries()) {
    process.stdout.write(
      `record ${record.seq} of ${result.records} (log valid, key from --${keySource}): ${record.time}, ${record.decision}${record.blockedBy === null ? "" : ` by ${record.blockedBy}${record.ruleId === null ? "" : ` (${record.ruleId})`}`}${record.usage === null ? "" : `, ${record.usage.promptTokens} + ${record.usage.completionTokens} tokens`}${record.piiFindings.length === 0 ? "" : `, PII redacted: ${record.piiFindings.map((f) => `${f.entity}×${f.count}`).join(", ")}`}\n`,
    );
    const comparison = compared[i];
    if (comparison?.missing != null) process.stdout.write(`${comparison.missing}: this record keeps none\n`);
    for (const [what, ok] of Object.entries(comparison?.checks ?? {})) {
      process.stdout.write(
        `${what}: ${ok ? "matches the record's commitment" : "DOES NOT match the record's commitment"}\n`,
      );
    }
  }
  // Found by its request id alone: say so, rather than let "found" read as "about this text".
  if (compared.every((c) => Object.keys(c.checks).length === 0 && c.missing === null)) {
    process.stdout.write(
      opening === undefined
        ? "no text compared: the record is found by its request id; give its opening (--chat-json or --opening-file) with --prompt-file or --answer-file to check it is about that text\n"
        : "no text compared: give --prompt-file (or --answer-file) to check the record is about that text\n",
    );
  }
  if (aboutText < 0) {
    const mismatch = Object.entries(compared[0]?.checks ?? {}).find(([, ok]) => !ok)?.[0];
    throw new AuditFindError(
      "AUDIT_COMMITMENT_MISMATCH",
      found.length === 1
        ? `the record's ${mismatch} commitment does not match the given text`
        : `none of the ${found.length} records with this requestIdHash has commitments that match the given text`,
    );
  }
}

/** What `audit find` shows of a record. */
function recordSummary(record: AuditRecord) {
  return {
    seq: record.seq,
    time: record.time,
    decision: record.decision,
    blockedBy: record.blockedBy,
    ruleId: record.ruleId,
    piiFindings: record.piiFindings,
    error: record.error,
    usage: record.usage,
  };
}

/** One record's commitments against the text given: each check made, or the commitment it lacks. */
interface RecordComparison {
  readonly checks: Readonly<Record<string, boolean>>;
  /** The commitment a text was given for that this record keeps none of (then no check is made). */
  readonly missing: "promptHmac" | "responseHmac" | null;
}

function compareWithRecord(
  record: AuditRecord,
  given: { opening: Uint8Array | undefined; prompt: Uint8Array | undefined; answer: Uint8Array | undefined },
  options: AuditFindCommandOptions,
): RecordComparison {
  const checks: Record<string, boolean> = {};
  for (const [kind, content, field] of [
    ["prompt", given.prompt, "promptHmac"],
    ["response", given.answer, "responseHmac"],
  ] as const) {
    if (content === undefined || given.opening === undefined) continue;
    const recorded = record[field];
    // The answer text of --chat-json is checked only when the record keeps an answer commitment.
    if (recorded === null && kind === "response" && options.answerFile === undefined) continue;
    if (recorded === null) return { checks: {}, missing: field };
    checks[kind === "prompt" ? "prompt" : "answer"] = auditCommitment(given.opening, kind, content) === recorded;
  }
  return { checks, missing: null };
}

export async function auditVerifyCommand(options: AuditVerifyCommandOptions): Promise<void> {
  if (options.lastHash !== undefined && options.count === undefined)
    throw optionsUsageError("--last-hash needs --count");
  if (options.checkpoint !== undefined && options.count !== undefined) {
    throw optionsUsageError("give either --checkpoint or --count, not both");
  }
  if (options.lastHash !== undefined && !/^[0-9a-f]{64}$/.test(options.lastHash)) {
    throw optionsUsageError(
      `--last-hash expects 64 lower-case hex characters, found ${options.lastHash.length} characters`,
    );
  }
  const { publicKey, keySource, documentBoot } = await commandKey(options);

  let expect: AuditVerifyOptions["expect"];
  // The checkpoint verified, to be named in the output: it shows only what was written by its time,
  // so whoever reads the verdict must see that time (an old one, handed over by the host, hides
  // every record cut since).
  let checkpoint: AuditCheckpoint | null = null;
  if (options.checkpoint !== undefined) {
    const text = await readText(options.checkpoint, "--checkpoint", {
      bytes: CHECKPOINT_FILE_MAX_BYTES,
      expected: "a checkpoint line is about 300 bytes",
    });
    const checked = checkAuditCheckpoint(text, publicKey);
    if (!checked.ok) {
      throw new AuditCheckpointInvalidError(`checkpoint ${options.checkpoint}: ${checked.message}`, checked.problem);
    }
    checkpoint = checked.checkpoint;
    expect = { count: checkpoint.count, lastRecordHash: checkpoint.lastRecordHash };
  } else if (options.count !== undefined) {
    expect =
      options.lastHash === undefined
        ? { count: options.count }
        : { count: options.count, lastRecordHash: options.lastHash };
  }

  const { result: verified, firstLine } = await verifyAuditLogReadOnce(
    options.log,
    publicKey,
    expect === undefined ? {} : { expect },
  );
  const result = verified.ok
    ? verified
    : { ...verified, error: otherBootFailure(verified.error, firstLine, documentBoot) };
  const publicKeyHex = Buffer.from(publicKey).toString("hex");
  if (options.json) {
    printJson({
      valid: result.ok,
      lines: result.lines,
      verifiedRecords: result.records,
      lastRecordHash: result.ok ? result.lastRecordHash : null,
      publicKey: publicKeyHex,
      keySource,
      documentEvidenceVerified: false,
      checkpoint:
        checkpoint === null
          ? null
          : {
              count: checkpoint.count,
              lastRecordHash: checkpoint.lastRecordHash,
              time: checkpoint.time,
              nonce: checkpoint.nonce,
            },
      error: result.ok ? null : result.error,
    });
    if (!result.ok) process.exitCode = 1;
    return;
  }
  if (keySource === "document") {
    process.stderr.write("note: key taken from the document's sig_jwk; its hardware evidence was not verified here\n");
  }
  if (result.ok) {
    process.stdout.write(
      `audit log valid: ${counted(result.records, "record")}, last record hash ${result.lastRecordHash}\n`,
    );
    // The chain shows what was removed, reordered or altered before its last line, never what was
    // cut after it: only a count the enclave signed (a checkpoint) does (SECURITY.md).
    if (expect === undefined) {
      process.stderr.write(
        "note: records cut from the end of the log (or all of them) are not detected without --checkpoint (or --count): fetch a fresh checkpoint with cloister audit checkpoint\n",
      );
    }
    if (checkpoint !== null) {
      process.stdout.write(
        `complete up to the checkpoint: ${counted(checkpoint.count, "record")} written as of ${checkpoint.time} (signed by the enclave then; records written after it are not covered: fetch a fresh one with cloister audit checkpoint)\n`,
      );
    }
    return;
  }
  process.stdout.write(`audit log INVALID: ${result.records} of ${result.lines} records verified before the failure\n`);
  if (result.error.code === "AUDIT_LOG_OTHER_BOOT") throw new AuditFindError(result.error.code, result.error.message);
  throw new AuditVerifyError(result.error.code, result.error.index, result.error.message);
}

/**
 * A first record whose signature does not verify, in a log whose records name another boot than
 * the key's: every boot has its own log and key (the host keeps `<boot>.jsonl` per boot), so the
 * likely mistake is the file, and the message names the boots rather than only a bad signature.
 * With --document the key's boot is known (`documentBoot`, its digest): AUDIT_LOG_OTHER_BOOT, as `audit
 * find` says it. With --key it is not: the log's boot is named (unverified) for the user to compare
 * with the `documentDigest` of the attestation the key came from. Any other failure is unchanged.
 */
function otherBootFailure(
  failure: AuditVerifyFailure,
  firstLine: string | null,
  documentBoot: string | undefined,
): AuditVerifyFailure | { code: "AUDIT_LOG_OTHER_BOOT"; index: number; message: string } {
  if (failure.code !== "AUDIT_SIGNATURE_INVALID" || failure.index !== 0) return failure;
  const logBoot = unverifiedAttestationDigest(firstLine);
  if (logBoot === null) return failure;
  if (documentBoot === undefined) {
    return {
      ...failure,
      message: `${failure.message}; this log's records name enclave boot ${logBoot.slice(0, 16)} (unverified): is --key the signing key of that boot's attestation (cloister attest --json: its documentDigest begins with the boot id, which names the boot's log file)?`,
    };
  }
  if (documentBoot === logBoot) return failure;
  return {
    code: "AUDIT_LOG_OTHER_BOOT",
    index: 0,
    message: `this log is of enclave boot ${logBoot.slice(0, 16)}, --document is of boot ${documentBoot.slice(0, 16)}: its log is ${documentBoot.slice(0, 16)}.jsonl in the host's audit directory`,
  };
}
