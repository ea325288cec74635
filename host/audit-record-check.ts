/**
 * What the host checks of an enclave's `/audit` answer before it stores and acknowledges a record
 * (host/audit-collector.ts): that the key the answer names is the audit signing key of the boot it
 * names, and that each record is signed by that key and chained to the one before it. The answer
 * is not authenticated: without these checks whatever answers at `--enclave-url` first could have
 * junk stored under a boot's real records' seqs, which the collector would then skip as stored,
 * acknowledge, and the enclave drop.
 *
 * The boot id is the SHA-256 of the boot's attestation document (enclave/service.ts), and the
 * document names the boot's Ed25519 key (`sig_jwk`). So a document whose digest is the boot id is
 * that boot's document, and its key is that boot's key, with no attestation verified here: the
 * host trusts nothing it did not check, it only refuses what no enclave of that boot wrote. The
 * document's key is read as the pool reads its `cnf.jwk` (attestation/document-key.ts), without
 * verifying the document. Each record's signature (under RECORD_TAG) and `prevHash` are checked,
 * with Node's Ed25519 (the host loads no tweetnacl, nor enclave/pipeline/audit.ts); the line's other
 * rules (canonical form, fields) are the verifier's: a record the enclave signed is one it wrote.
 * Unlike `verifyAuditLog`, a small-order key is not refused here (Node verifies signatures under one
 * that were made without a secret; the check, sealed/receipt.ts `smallOrderKey`, is in a file the
 * host does not load): the key is the document's whose SHA-256 is the boot id, so such a key is in
 * a document no enclave made, for a boot id no enclave has, whose maker could as well sign with a
 * key of its own. `audit verify` refuses that key when the log is checked (ed25519PublicKeyProblem).
 */
import { createHash, createPublicKey, type KeyObject, verify } from "node:crypto";
import { fromBase64url } from "../attestation/bytes.ts";
import { unverifiedDocumentPayload } from "../attestation/document-key.ts";
import { GENESIS_TAG, RECORD_TAG } from "../enclave/pipeline/audit-tags.ts";

/** A line as the writer makes it: `{"record":` canonical record `,"sig":"` 128 hex `"}`. */
const LINE_START = '{"record":';
const LINE_END = /,"sig":"([0-9a-f]{128})"\}$/;

/** One boot's audit signing key, as the collector checks records with it. */
export interface BootAuditKey {
  /** The key as 64 hex digits (what the `/audit` answer names). */
  readonly hex: string;
  readonly key: KeyObject;
  /** The `prevHash` of this boot's record 0. */
  readonly genesis: string;
}

/**
 * The Ed25519 key of the boot whose id is `boot`, from `document` (its attestation document, as
 * the enclave serves it on `GET /audit/document`); a string saying what is wrong otherwise (never the
 * document's content): a document of another boot (its SHA-256 is not `boot`), or one naming no
 * Ed25519 key.
 */
export function bootAuditKey(document: string, boot: string): BootAuditKey | string {
  const digest = createHash("sha256").update(document, "utf8").digest("hex");
  if (digest !== boot) {
    return `document: expected the attestation document of boot ${boot.slice(0, 16)} (its SHA-256), found one of boot ${digest.slice(0, 16)}`;
  }
  let jwk: { kty?: unknown; crv?: unknown; x?: unknown } | undefined;
  try {
    jwk = (unverifiedDocumentPayload(document) as { sig_jwk?: typeof jwk }).sig_jwk;
  } catch (error) {
    // Its message names the field (`document`, `document payload`) itself.
    return (error as Error).message;
  }
  if (jwk?.kty !== "OKP" || jwk.crv !== "Ed25519" || typeof jwk.x !== "string") {
    return "document sig_jwk: expected an OKP Ed25519 JWK, found none";
  }
  let raw: Uint8Array;
  try {
    raw = fromBase64url(jwk.x, "sig_jwk.x");
  } catch (error) {
    return `document ${(error as Error).message}`;
  }
  if (raw.length !== 32) return `document sig_jwk.x: expected 32 bytes, found ${raw.length}`;
  let key: KeyObject;
  try {
    key = createPublicKey({ key: { kty: "OKP", crv: "Ed25519", x: jwk.x }, format: "jwk" });
  } catch {
    return "document sig_jwk.x: expected an Ed25519 public key, found bytes that are not one";
  }
  const genesis = createHash("sha256").update(GENESIS_TAG).update(raw).digest("hex");
  return { hex: Buffer.from(raw).toString("hex"), key, genesis };
}

/**
 * The hash of the record `line` holds (the next record's `prevHash`) when it is signed by `key`
 * and its `prevHash` is `prevHash` (null: the previous record is not known here, so not compared);
 * otherwise a string naming what failed (never the line's content). `prevHash` is read from `value`,
 * the line as JSON.parse read it.
 */
export function checkRecordLine(
  key: BootAuditKey,
  line: string,
  value: object,
  prevHash: string | null,
): { hash: string } | string {
  const parts = splitLine(line);
  if (parts === null) return 'expected a line {"record":…,"sig":"<128 hex digits>"}, found another shape';
  if (!verify(null, Buffer.from(RECORD_TAG + parts.record, "utf8"), key.key, Buffer.from(parts.sig, "hex"))) {
    return "sig: expected a signature by the boot's key, found one that does not verify";
  }
  return chainProblem(value, prevHash) ?? { hash: recordHash(parts.record) };
}

/**
 * What is wrong with the `prevHash` of the record `value` holds (the line as JSON.parse read it)
 * when it is not `prevHash` (null: the previous record is not known here, not compared); else null.
 */
export function chainProblem(value: object, prevHash: string | null): string | null {
  if (prevHash === null || (value as { record?: { prevHash?: unknown } }).record?.prevHash === prevHash) return null;
  return "prevHash: expected the hash of the record before it, found another";
}

/**
 * The hash of the record `line` holds (the next record's `prevHash`), its signature not checked;
 * null when the line is not in the writer's shape. A restarted collector chains the enclave's next
 * record to its file's last line with it: a line altered since it was stored (or stored unchecked by
 * an older host) has no successor the enclave signed, so the records after it are refused and stay
 * with the enclave, as resumeAt keeps them for a last line unlike the enclave's.
 */
export function recordLineHash(line: string): string | null {
  const parts = splitLine(line);
  return parts === null ? null : recordHash(parts.record);
}

/** A line's record (the text signed and hashed) and signature, when the line is in the writer's shape. */
function splitLine(line: string): { record: string; sig: string } | null {
  const sig = LINE_END.exec(line);
  if (!line.startsWith(LINE_START) || sig === null) return null;
  return { record: line.slice(LINE_START.length, sig.index), sig: sig[1] as string };
}

function recordHash(record: string): string {
  return createHash("sha256").update(record, "utf8").digest("hex");
}
