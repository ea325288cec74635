/**
 * `cloister audit verify`: reads a JSON-lines audit log and verifies it with
 * enclave/pipeline/audit.ts `verifyAuditLog`.
 *
 * The key comes from `--key` (hex) or from an attestation document's `sig_jwk`. With `--document`
 * this command checks only that the document is signed by that key (it is self-consistent); it
 * does not verify the document's hardware evidence — verify the document itself to know the key
 * belongs to an attested enclave. Output says which source was used.
 */
import { readFile } from "node:fs/promises";
import nacl from "tweetnacl";
import { printJson, UsageError } from "../client/cli/output.ts";
import type { AuditVerifyCommandOptions } from "./audit-cli.ts";
import {
  type AuditVerifyOptions,
  parseAuditPublicKeyHex,
  verifyAuditCheckpoint,
  verifyAuditLog,
} from "./pipeline/audit.ts";
import { AuditVerifyError } from "./pipeline/errors.ts";

/** An attestation document the command cannot take a key from. */
export class AuditDocumentInvalidError extends Error {
  readonly code = "AUDIT_DOCUMENT_INVALID";

  constructor(message: string) {
    super(message);
    this.name = "AuditDocumentInvalidError";
  }
}

/** A checkpoint file that does not verify under the key. */
export class AuditCheckpointInvalidError extends Error {
  readonly code = "AUDIT_CHECKPOINT_INVALID";

  constructor(message: string) {
    super(message);
    this.name = "AuditCheckpointInvalidError";
  }
}

async function readText(file: string, what: string): Promise<string> {
  try {
    return await readFile(file, "utf8");
  } catch (error) {
    throw new UsageError(`${what} ${file}: cannot read (${(error as NodeJS.ErrnoException).code ?? "error"})`);
  }
}

/** The Ed25519 key named by an attestation document's `sig_jwk`, after checking the JWS under it. */
export function keyFromAttestationDocument(text: string): Uint8Array {
  const parts = text.trim().split(".");
  if (parts.length !== 3)
    throw new AuditDocumentInvalidError("attestation document: expected a compact JWS (three parts)");
  const [headerPart, payloadPart, sigPart] = parts as [string, string, string];
  let header: { alg?: unknown };
  let payload: { sig_jwk?: { kty?: unknown; crv?: unknown; x?: unknown } };
  try {
    header = JSON.parse(Buffer.from(headerPart, "base64url").toString("utf8"));
    payload = JSON.parse(Buffer.from(payloadPart, "base64url").toString("utf8"));
  } catch {
    throw new AuditDocumentInvalidError("attestation document: header or payload is not base64url JSON");
  }
  if (header.alg !== "EdDSA") {
    throw new AuditDocumentInvalidError(
      `attestation document alg: expected "EdDSA", found ${JSON.stringify(header.alg)}`,
    );
  }
  const jwk = payload.sig_jwk;
  if (
    typeof jwk !== "object" ||
    jwk === null ||
    jwk.kty !== "OKP" ||
    jwk.crv !== "Ed25519" ||
    typeof jwk.x !== "string"
  ) {
    throw new AuditDocumentInvalidError("attestation document sig_jwk: expected an OKP Ed25519 JWK");
  }
  const key = new Uint8Array(Buffer.from(jwk.x, "base64url"));
  if (key.length !== 32)
    throw new AuditDocumentInvalidError(`attestation document sig_jwk.x: expected 32 bytes, found ${key.length}`);
  const signature = new Uint8Array(Buffer.from(sigPart, "base64url"));
  const signingInput = new TextEncoder().encode(`${headerPart}.${payloadPart}`);
  if (signature.length !== 64 || !nacl.sign.detached.verify(signingInput, signature, key)) {
    throw new AuditDocumentInvalidError(
      "attestation document: the JWS signature does not verify under its own sig_jwk",
    );
  }
  return key;
}

function splitLines(text: string): string[] {
  const lines = text.split("\n").map((l) => (l.endsWith("\r") ? l.slice(0, -1) : l));
  if (lines.at(-1) === "") lines.pop();
  return lines;
}

export async function auditVerifyCommand(options: AuditVerifyCommandOptions): Promise<void> {
  if ((options.key === undefined) === (options.document === undefined)) {
    throw new UsageError("give exactly one of --key <hex> or --document <file>");
  }
  if (options.lastHash !== undefined && options.count === undefined) throw new UsageError("--last-hash needs --count");
  if (options.checkpoint !== undefined && options.count !== undefined) {
    throw new UsageError("give either --checkpoint or --count, not both");
  }
  if (options.lastHash !== undefined && !/^[0-9a-f]{64}$/.test(options.lastHash)) {
    throw new UsageError(
      `--last-hash expects 64 lower-case hex characters, found ${options.lastHash.length} characters`,
    );
  }
  let publicKey: Uint8Array;
  let keySource: "key" | "document";
  if (options.key !== undefined) {
    try {
      publicKey = parseAuditPublicKeyHex(options.key);
    } catch (error) {
      throw new UsageError(`--key: ${(error as Error).message}`);
    }
    keySource = "key";
  } else {
    publicKey = keyFromAttestationDocument(await readText(options.document as string, "--document"));
    keySource = "document";
  }

  let expect: AuditVerifyOptions["expect"];
  if (options.checkpoint !== undefined) {
    const checkpoint = verifyAuditCheckpoint(await readText(options.checkpoint, "--checkpoint"), publicKey);
    if (checkpoint === null) {
      throw new AuditCheckpointInvalidError(
        `checkpoint ${options.checkpoint}: not a checkpoint signed by the enclave key`,
      );
    }
    expect = { count: checkpoint.count, lastRecordHash: checkpoint.lastRecordHash };
  } else if (options.count !== undefined) {
    expect =
      options.lastHash === undefined
        ? { count: options.count }
        : { count: options.count, lastRecordHash: options.lastHash };
  }

  const lines = splitLines(await readText(options.log, "--log"));
  const result = verifyAuditLog(lines, publicKey, expect === undefined ? {} : { expect });
  const publicKeyHex = Buffer.from(publicKey).toString("hex");
  if (options.json) {
    printJson({
      valid: result.ok,
      lines: lines.length,
      verifiedRecords: result.records.length,
      lastRecordHash: result.ok ? result.lastRecordHash : null,
      publicKey: publicKeyHex,
      keySource,
      documentEvidenceVerified: false,
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
      `audit log valid: ${result.records.length} records, last record hash ${result.lastRecordHash}\n`,
    );
    return;
  }
  process.stdout.write(
    `audit log INVALID: ${result.records.length} of ${lines.length} records verified before the failure\n`,
  );
  throw new AuditVerifyError(result.error.code, result.error.index, result.error.message);
}
