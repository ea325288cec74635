/**
 * `cloister policy init`: writes a client policy that pins what one running deployment presents,
 * after verifying its evidence to the pinned AMD/Intel roots and its manifest under the operator's
 * key; then checks, with a fresh nonce, that the policy accepts the deployment (the SDK's own
 * `connect`). Trust on first use, made explicit: run it against a deployment you built from an
 * image you reviewed, compare the pinned measurement with your build's, then ship the policy.
 */

import type { JWK } from "jose";
import { fileMessage, shellWord } from "../../attestation/bounded-read.ts";
import { toHex, utf8 } from "../../attestation/bytes.ts";
import { parseAttestationCollateral } from "../../attestation/collateral.ts";
import { sha256 } from "../../attestation/crypto.ts";
import { unverifiedDocumentPayload, unverifiedDocumentSealingKey } from "../../attestation/document-key.ts";
import { ParseError } from "../../attestation/errors.ts";
import { parseDocumentEvidence, verifyDocumentEvidence } from "../../attestation/evidence.ts";
import { attestationPolicyFromEvidence, simulatedEvidenceRefusal } from "../../attestation/policy-from-evidence.ts";
import { readOperatorKeyFile } from "../../manifests/cli-impl.ts";
import { manifestKeyThumbprint, verifyManifest } from "../../manifests/sign.ts";
import { enclaveKeyId } from "../../sealed/index.ts";
import { ClientError } from "../errors.ts";
import { anchorsForPolicy, type ClientPolicy, isInsecureSimulatorEvidence, parseClientPolicy } from "../policy.ts";
import { connect, fetchAttestationAnswer } from "../sdk.ts";
import { forcedOutput, optionsUsageError, printJson, refuseExistingOutput, writeOutputFile } from "./output.ts";
import { readApiKey } from "./run-client.ts";

export interface PolicyInitOptions {
  url: string;
  /** `--operator-key`, repeatable: the files of the keys the policy trusts, in the order given. */
  operatorKey: string[];
  apiKeyFile?: string;
  /** `--enclave`: the pool member to pin from, by key id (default: the one the host offers). */
  enclave?: string;
  out?: string;
  force?: boolean;
  allowSimulator?: boolean;
  allowMigrationAgent?: boolean;
  allowNoCollateral?: boolean;
  allowNoSecureBoot?: boolean;
  allowConsole?: boolean;
  json?: boolean;
}

/** A key of `--operator-key`: its file, the key, and its RFC 7638 thumbprint (the kid signManifest writes). */
interface OperatorKey {
  readonly file: string;
  readonly jwk: JWK;
  readonly kid: string;
}

/**
 * Each `--operator-key` file, read and checked as cloister enclave reads its own (readOperatorKeyFile),
 * in the order given. The same key twice (by its thumbprint, whatever else its files hold) is refused:
 * it is most likely the old key given where the new one was meant, and a policy written from it would
 * refuse every enclave signed by the new key.
 */
async function readOperatorKeys(files: readonly string[]): Promise<OperatorKey[]> {
  const keys: OperatorKey[] = [];
  for (const file of files) {
    const jwk = await readOperatorKeyFile(file);
    const kid = await manifestKeyThumbprint(jwk);
    const same = keys.find((key) => key.kid === kid);
    if (same !== undefined) {
      throw optionsUsageError(
        fileMessage(
          file,
          "--operator-key",
          `expected another key than --operator-key ${shellWord(same.file)}, found the same (kid ${kid}); give each key once`,
        ),
      );
    }
    keys.push({ file, jwk, kid });
  }
  return keys;
}

export async function runPolicyInit(options: PolicyInitOptions): Promise<void> {
  const existing = forcedOutput(options.force, options.out, "--out");
  const operatorKeys = await readOperatorKeys(options.operatorKey);
  const apiKey = await readApiKey(options.apiKeyFile, options.url);
  // Refused before anything is fetched: no round trip ends in it.
  if (options.out !== undefined) await refuseExistingOutput(options.out, "--out", existing);
  // Fetched as connect() fetches it (bounded, no redirect followed), verified below; with --enclave,
  // that member's document only (the host refuses a key id no member has now).
  const answer = await fetchAttestationAnswer({
    url: options.url,
    apiKey: apiKey.key,
    apiKeySource: apiKey.source,
    ...(options.enclave === undefined ? {} : { enclaveKeyId: options.enclave }),
  });
  const document = answer.document;
  const collateral = parseAttestationCollateral(answer.collateral);

  // 1. What the deployment presents, its evidence verified to the pinned roots (and the simulator's
  //    only when asked): nothing is pinned from evidence that does not verify.
  let payload: { evidence?: unknown; manifest?: unknown };
  try {
    payload = unverifiedDocumentPayload(document);
  } catch (error) {
    // Every refusal of the reader is a ParseError naming the part and where (its parts, base64url,
    // UTF-8, JSON, a member named twice, a payload that is no JSON object), never quoting what the
    // document holds.
    if (!(error instanceof ParseError)) throw error;
    throw new ClientError("attestation", "DOCUMENT_MALFORMED", `attestation ${error.message}`, { cause: error });
  }
  // The key id of the enclave the document is of (its cnf.jwk, read as connect reads it): the
  // self-check below asks that very member. Unverified here; connect verifies the document it names.
  const sealingKey = unverifiedDocumentSealingKey(document);
  if (sealingKey === null) {
    throw new ClientError(
      "attestation",
      "DOCUMENT_MALFORMED",
      "attestation document: cnf.jwk: expected an X25519 sealing key, found none",
    );
  }
  const pinnedKeyId = toHex(await enclaveKeyId(sealingKey));
  if (options.enclave !== undefined && pinnedKeyId !== options.enclave) {
    throw new ClientError(
      "attestation",
      "ENCLAVE_KEY_ID_MISMATCH",
      `attestation document's enclave key id (cnf.jwk): expected ${options.enclave} (--enclave), found ${pinnedKeyId}: the host answered with another enclave's document`,
    );
  }
  const evidence = parseDocumentEvidence(payload.evidence);
  const anchors = await anchorsForPolicy({
    attestation: { trustSimulator: options.allowSimulator === true },
  } as ClientPolicy);
  const at = new Date();
  let verified: Awaited<ReturnType<typeof verifyDocumentEvidence>>;
  try {
    verified = await verifyDocumentEvidence(evidence, anchors, at, collateral);
  } catch (error) {
    // Say so when the evidence is the simulator's: the fix is a flag, not a broken deployment.
    if (options.allowSimulator !== true && (await isInsecureSimulatorEvidence(evidence))) {
      throw simulatedEvidenceRefusal(error);
    }
    throw error;
  }
  const { policy: attestation, notes: evidenceNotes } = attestationPolicyFromEvidence(verified, {
    allowSimulator: options.allowSimulator === true,
    allowMigrationAgent: options.allowMigrationAgent === true,
    allowNoCollateral: options.allowNoCollateral === true,
    allowNoSecureBoot: options.allowNoSecureBoot === true,
    allowConsole: options.allowConsole === true,
  });

  // 2. The manifest, under the operator's key: the model and service it names are pinned.
  if (typeof payload.manifest !== "string") {
    throw new ClientError("attestation", "DOCUMENT_MALFORMED", "attestation document: no manifest");
  }
  let verifiedManifest: Awaited<ReturnType<typeof verifyManifest>>;
  try {
    // Under any of the keys given: a refusal (MANIFEST_SIGNATURE_INVALID) names each one's kid and the
    // signer kid the manifest's header names.
    verifiedManifest = await verifyManifest(
      payload.manifest,
      operatorKeys.map((key) => key.jwk),
    );
  } catch (error) {
    // The deployment's manifest is not the user's input: what is wrong with it is an attestation
    // failure (exit 1); only an unusable --operator-key is the user's to fix.
    const code = (error as { code?: unknown }).code;
    if (code === "MANIFEST_KEY_INVALID" || typeof code !== "string") throw error;
    throw new ClientError("attestation", code, `the deployment's manifest: ${(error as Error).message}`, {
      cause: error,
    });
  }
  const { manifest } = verifiedManifest;
  const notes = [...evidenceNotes];
  if (operatorKeys.length > 1) {
    // Which of them signs the deployment's manifest now (with one key given, it is that one): one of
    // them, as verifyManifest names the key that verified it by the same thumbprint.
    const signer = operatorKeys.find((key) => key.kid === verifiedManifest.signerKeyThumbprint)!;
    const others = operatorKeys.filter((key) => key !== signer).map((key) => `kid ${key.kid} (${shellWord(key.file)})`);
    notes.push(
      `the deployment's manifest is signed now by --operator-key ${shellWord(signer.file)} (kid ${signer.kid}); the policy also trusts ${others.join(", ")}`,
    );
  }

  const policy = parseClientPolicy({
    version: 1,
    acceptedEvidence: [verified.type],
    attestation,
    manifest: {
      trustedSigners: operatorKeys.map((key) => key.jwk),
      allowedModelDigests: [manifest.model.sha256],
      allowedServices: [manifest.service.name],
    },
    freshness: { maxClockSkewSeconds: 120 },
  });

  // 3. The policy must accept the deployment it was made from: every stage (binding, document
  //    signature, fresh nonce, manifest), and for the very document the values were taken from — not
  //    merely another enclave of the same measurement (a host could show weaker but genuine evidence
  //    for pinning and the real enclave for this check). Behind a pool, the member is named by its
  //    key id (a pool of SNP and TDX members would otherwise hand the check to the other platform).
  const pinnedFrom = toHex(await sha256(utf8(document)));
  try {
    const session = await connect({
      url: options.url,
      policy,
      apiKey: apiKey.key,
      apiKeySource: apiKey.source,
      enclaveKeyId: pinnedKeyId,
    });
    // A second line of defence: connect() checked the pinned key id (a restart ends there, with
    // WRONG_ENCLAVE_KEY) and one boot signs one document, so another document here is the host's
    // answer to the check, not the deployment's change: refused.
    if (session.enclave.documentDigest !== pinnedFrom) {
      throw new Error(
        `document digest: expected ${pinnedFrom} (the document the values were taken from), found ${session.enclave.documentDigest} (the host answered the check with another document than the one pinned)`,
      );
    }
  } catch (error) {
    throw new ClientError(
      "attestation",
      "POLICY_INIT_SELF_CHECK_FAILED",
      `the generated policy does not accept this deployment: ${(error as Error).message}`,
      { cause: error },
    );
  }

  const text = `${JSON.stringify(policy, null, 2)}\n`;
  // Whole or not at all, mode 0644; an existing file only with --force (renamed over it).
  if (options.out !== undefined) await writeOutputFile(options.out, text, "--out", existing);
  if (options.json === true) {
    printJson({ policy, notes, written: options.out ?? null });
  } else {
    if (options.out === undefined) process.stdout.write(text);
    process.stderr.write(
      `policy for ${verified.type}${verified.simulated ? " (SIMULATED)" : ""}, service ${manifest.service.name}, model ${manifest.model.sha256}${options.out === undefined ? "" : `, written to ${shellWord(options.out)}`}\n`,
    );
    for (const note of notes) process.stderr.write(`note: ${note}\n`);
    process.stderr.write(
      "checked: the policy accepts this deployment now (evidence, binding, document, fresh nonce, manifest)\n",
    );
  }
}
