import { constants } from "node:fs";
import { lstat, mkdir, open as openFile, readdir, realpath, rm, rmdir, unlink } from "node:fs/promises";
import { basename, dirname, join } from "node:path";
import { createInterface } from "node:readline/promises";
import {
  describeFileKind,
  fileErrorCause,
  fileMessage,
  type InputBound,
  notUtf8Reason,
  shellWord,
  tooLargeReason,
} from "../../attestation/bounded-read.ts";
import {
  type AttestationCollateral,
  MAX_TDX_COLLATERAL_CRLS,
  tdxVerificationCollateral,
} from "../../attestation/collateral.ts";
import type { VerifiedEnclave } from "../../attestation/document.ts";
import { DuplicateMemberError } from "../../attestation/json-text.ts";
import { BrokerConfigError, type PrivateKeyFileOptions, readPrivateKeyFile } from "../../attestation/kbs/key-file.ts";
import { QE_IDENTITY_ISSUER_CHAIN_FILE, TCB_INFO_ISSUER_CHAIN_FILE } from "../../attestation/tdx/collateral-dir.ts";
import { decodeUtf8 } from "../../attestation/utf8.ts";
import { enclaveKeyId } from "../../sealed/index.ts";
import { REQUEST_LIMITS } from "../../sealed/request-limits.ts";
import { type AuditReference, ClientError } from "../errors.ts";
import { isLoopbackHost, LOOPBACK_NAMES } from "../loopback.ts";
import { manifestMaxTokens, maxTokensNote } from "../max-tokens-note.ts";
import { type ClientPolicy, clientPolicyJson, parseClientPolicy, policyRisks } from "../policy.ts";
import { redactionNote } from "../redaction-note.ts";
import {
  type ChatMessage,
  type ConnectOptions,
  connect,
  type HostUrlNames,
  LOCAL_API_KEY_FILE,
  parseHostUrl,
  type Session,
} from "../sdk.ts";
import { attestedRules, attestedTee, measurementNote, modelNote, policyFacts, teeFacts } from "../summary.ts";
import { optionFileUnreadable, readBoundedFile, readTrustFile } from "./bounded-file.ts";
import type { ClientConnectionOptions } from "./commands.ts";
import {
  counted,
  type ExistingOutput,
  errorText,
  forcedOutput,
  formatCliError,
  missingDirectory,
  noDirectoryError,
  optionsUsageError,
  printJson,
  refuseExistingOutput,
  syncDirectory,
  UsageError,
  writeOutputFile,
} from "./output.ts";
import { pinnedPath } from "./private-directory.ts";
import { type TextOutput, untrustedTextWriter } from "./terminal-text.ts";

/** `cloister up`'s local API key: the default key file, for a loopback host only (the SDK names it too). */
export { LOCAL_API_KEY_FILE };

/** parseHostUrl's names for what the CLI's user typed (the SDK's are connect()'s `url`, `apiKey`). */
const CLI_URL_NAMES: HostUrlNames = { url: "--url", apiKey: "--api-key-file or CLOISTER_API_KEY" };

/**
 * An API key and where it came from, given to the SDK as `apiKeySource`: a malformed key
 * (BAD_API_KEY) and every refusal of it by the host, at connect or later (a chat's request, a
 * re-verification, an audit checkpoint), name the source, never the key.
 */
export interface ApiKey {
  readonly key: string;
  /** `--api-key-file FILE` (fileMessage's form), `CLOISTER_API_KEY` or the default key file. */
  readonly source: string;
}

/**
 * The API key for requests to `url`: the file `--api-key-file` names, else CLOISTER_API_KEY, else
 * (for a loopback URL only: client/loopback.ts) `cloister up`'s local key: a key file nobody named is
 * never sent to another host. An explicit option wins over the environment, so a CLOISTER_API_KEY
 * left exported for one deployment does not go to the host `--url` names with its own key file.
 * Warns when the key would cross a network in the clear (plain http to another host).
 */
export async function readApiKey(file: string | undefined, url: string): Promise<ApiKey> {
  // The URL first: which key may go where depends on its host, and a bad URL is the error to show.
  const parsed = parseHostUrl(url, CLI_URL_NAMES);
  const loopback = isLoopbackHost(parsed.host);
  // Set, even to nothing, is set: an empty CLOISTER_API_KEY is refused by name (BAD_API_KEY), as an
  // empty --api-key-file is, rather than taken as unset and another key (the default file) sent.
  const fromEnv = process.env.CLOISTER_API_KEY;
  const envKey = fromEnv !== undefined ? fromEnv.trim() : null;
  if (envKey === null && file === undefined && !loopback) {
    throw optionsUsageError(
      `--api-key-file: expected the API key file for ${parsed.host} (or CLOISTER_API_KEY); the default ${LOCAL_API_KEY_FILE}, cloister up's local key, goes to a loopback host only (${LOOPBACK_NAMES})`,
    );
  }
  const warning = plainHttpKeyWarning(parsed, "cloister");
  if (warning !== null) process.stderr.write(`cloister: ${warning}\n`);
  // Read as cloister up reads the key it reuses: only by its owner (readSecretFile).
  if (file !== undefined) {
    return {
      // A file that cannot be read: named as the private-file reader's other refusals name it
      // (`--api-key-file path: …`), its default (privateFileUnreadable); the key's source label in
      // the same form (fileMessage), so a refusal of the key reads `--api-key-file path: …` too.
      key: (
        await readSecretFile(file, "--api-key-file", {
          bound: API_KEY_FILE_BOUND,
          followLinks: true,
          held: "the API key this client sends",
        })
      ).trim(),
      source: `--api-key-file ${file}`,
    };
  }
  if (envKey !== null) return { key: envKey, source: "CLOISTER_API_KEY" };
  // Neither was given: the refusal says so, rather than blaming an --api-key-file nobody passed.
  const text = await readSecretFile(LOCAL_API_KEY_FILE, "the default key file", {
    bound: API_KEY_FILE_BOUND,
    held: "the API key this client sends",
    cannotRead: (error) =>
      new UsageError(
        `no API key: the default key file ${LOCAL_API_KEY_FILE} cannot be read (${fileErrorCause(error)}): it is the one cloister up writes in the directory it runs in; pass --api-key-file or set CLOISTER_API_KEY`,
      ),
  });
  return { key: text.trim(), source: `the default key file ${LOCAL_API_KEY_FILE} (cloister up's local key)` };
}

/**
 * The warning for an API key sent to `url` over plain http to a host other than this machine (null
 * for https or a loopback host): the key crosses the network in the clear, while prompts and
 * answers stay sealed to the enclave. `sender` names who sends the key: `cloister` (attest, chat,
 * proxy: readApiKey) or `the page` (cloister web: webStartLines).
 */
export function plainHttpKeyWarning(url: URL, sender: string): string | null {
  if (url.protocol !== "http:" || isLoopbackHost(url.host)) return null;
  return `WARNING: --url ${url.origin} is plain http to another host: ${sender} sends the API key across the network in the clear (prompts stay sealed); put TLS in front of the host`;
}

/**
 * A secret (an API key file; a private key cloister up reuses), refused (exit 2) as ssh refuses a
 * loose private key when group or others may read or write it, when it is another user's, or (unless
 * `followLinks`: an API key file, which a Kubernetes secret volume mounts as a link) a link: the key
 * broker's check and message (attestation/kbs/key-file.ts), naming the file, its mode and the fix.
 */
export async function readSecretFile(
  path: string,
  field: string,
  options: Omit<PrivateKeyFileOptions, "uid">,
): Promise<string> {
  // The file's owner and mode are checked on the open file, and the directories its lookup goes
  // through before: anyone who may write to one could put their own file (or link) in its place.
  try {
    return await readPrivateKeyFile(path, field, options);
  } catch (error) {
    if (error instanceof BrokerConfigError) throw new UsageError(error.message, { cause: error });
    throw error;
  }
}

/**
 * An API key file, read to 16 KiB: the key goes in a request header, and Node's HTTP servers (the
 * host's) take 16 KiB of headers in all (http.maxHeaderSize's default), so a larger key is never
 * accepted.
 */
export const API_KEY_FILE_BOUND: InputBound = {
  bytes: 16 * 1024,
  expected: "one API key, sent in an HTTP header: Node's servers take 16 KiB of headers",
};

/** What a `--policy` file is and where one comes from: said when the file is missing or is not JSON. */
const POLICY_HINT =
  "expected a client policy: cloister up writes .cloister/policy.json, cloister policy init makes one";

/**
 * A --policy file, read to 1 MiB: no other limit exists. What cloister policy init or cloister up
 * writes is a few KiB; its longest entries, a 48-byte measurement as 96 hex digits, take some 100
 * bytes each, so 1 MiB holds some 10,000 allow-list entries, more than a fleet's images.
 */
const POLICY_FILE_BOUND: InputBound = {
  bytes: 1024 * 1024,
  expected: "a client policy, a few KiB: 1 MiB holds some 10,000 allow-list entries",
};

/** The client policy in the file `--policy` names; a policy error names the file (never its content). */
export async function readPolicy(path: string): Promise<ClientPolicy> {
  return (await readPolicyFile(path)).policy;
}

/**
 * readPolicy, with the file's JSON as well: what `cloister web` puts into its page (which parses it
 * again), so that it reports a bad policy file as the other commands do.
 */
export async function readPolicyFile(path: string): Promise<{ json: unknown; policy: ClientPolicy }> {
  // The policy is the client's trust anchor: whoever could change it chooses the enclaves trusted.
  const text = await readTrustFile(
    path,
    "--policy",
    POLICY_FILE_BOUND,
    "which enclaves this client trusts",
    POLICY_HINT,
  );
  try {
    const json = clientPolicyJson(text);
    return { json, policy: parseClientPolicy(json) };
  } catch (error) {
    if (!(error instanceof ClientError)) throw error;
    // Not JSON at all (a wrong file): say what is expected.
    const hint =
      error.cause instanceof SyntaxError && !(error.cause instanceof DuplicateMemberError) ? ` (${POLICY_HINT})` : "";
    // Named as the file reader names it in its refusals (fileMessage: `--policy FILE: …`).
    throw new ClientError(error.kind, error.code, fileMessage(path, "--policy", `${error.message}${hint}`), {
      cause: error,
    });
  }
}

export async function open(
  options: ClientConnectionOptions,
  policy?: ClientPolicy,
  more: Pick<ConnectOptions, "onVerified"> = {},
): Promise<Session> {
  const clientPolicy = policy ?? (await readPolicy(options.policy));
  const apiKey = await readApiKey(options.apiKeyFile, options.url);
  return connect({
    url: options.url,
    policy: clientPolicy,
    apiKey: apiKey.key,
    apiKeySource: apiKey.source,
    ...(options.enclave === undefined ? {} : { enclaveKeyId: options.enclave }),
    ...more,
  });
}

export function enclaveSummary(enclave: VerifiedEnclave) {
  const attested = attestedRules(enclave);
  return {
    tee: enclave.tee,
    simulated: enclave.simulated,
    measurement: enclave.measurement,
    reportData: enclave.reportData,
    service: enclave.manifest.service,
    model: enclave.manifest.model,
    manifestDigest: enclave.manifestDigest,
    manifestSigner: enclave.manifest.signerThumbprint,
    documentDigest: enclave.documentDigest,
    sealingKey: Buffer.from(enclave.sealingPublicKey).toString("hex"),
    signingKey: Buffer.from(enclave.signingPublicKey).toString("hex"),
    details: enclave.details,
    // The attested rules applied to every prompt and the audit settings, whole (policyFacts: in short).
    requestPolicy: attested?.requestPolicy ?? null,
    audit: attested?.audit ?? null,
    // The manifest's tee constraints the evidence was held to, as signed (teeFacts: in short).
    manifestTee: attestedTee(enclave),
  };
}

/**
 * What was verified, one labelled line each. `manifestTee`: also the manifest's tee constraints
 * (teeFacts), and `keyId` (its key id: what `--enclave` and a pool host's log name), for `cloister
 * attest` only: the demo, chat and proxy keep the shorter summary.
 */
export function describeEnclave(
  enclave: VerifiedEnclave,
  { manifestTee = false, keyId }: { manifestTee?: boolean; keyId?: string } = {},
): string {
  const s = enclaveSummary(enclave);
  return [
    `  TEE          ${s.tee}${s.simulated ? "  (SIMULATED: insecure simulator root, trusted by this policy only)" : ""}`,
    `  measurement  ${s.measurement}${measurementNote(enclave)}`,
    `  service      ${s.service.name} ${s.service.version}`,
    `  model        ${s.model.file} sha256 ${s.model.sha256}${modelNote(enclave)}`,
    `  manifest     sha256 ${s.manifestDigest}, signed by ${s.manifestSigner}`,
    ...tcbLine(enclave),
    ...(manifestTee ? teeFacts(enclave) : []).map(([name, value]) => `  ${name.padEnd(12)} ${value}`),
    ...policyFacts(enclave).map(([name, value]) => `  ${name.padEnd(12)} ${value}`),
    `  keys         X25519 ${s.sealingKey.slice(0, 16)}…, Ed25519 ${s.signingKey.slice(0, 16)}… (bound in REPORT_DATA)`,
    ...(keyId === undefined
      ? []
      : [`  key id       ${keyId} (this boot's: the host routes by it; --enclave names it)`]),
    "  checked      evidence chain → policy → REPORT_DATA binding → document signature → fresh nonce → manifest",
  ].join("\n");
}

/** TDX: the TCB status the vendor collateral served with the document gave, or that none was checked. */
function tcbLine(enclave: VerifiedEnclave): string[] {
  if (enclave.tee !== "tdx") return [];
  const d = enclave.details as {
    tcbStatus?: unknown;
    tcbEvaluationDataNumber?: unknown;
    collateralNextUpdate?: unknown;
    revocationChecked?: unknown;
  };
  return [
    typeof d.tcbStatus === "string"
      ? `  TCB          ${d.tcbStatus} (Intel collateral, evaluation data ${String(d.tcbEvaluationDataNumber)}, next update ${String(d.collateralNextUpdate)}${d.revocationChecked === true ? "; PCK chain not revoked" : ""})`
      : "  TCB          not checked: the deployment served no TCB collateral",
  ];
}

/**
 * The names `attest --evidence-out DIR` writes in DIR, by the evidence's type, each named as the
 * `verify-evidence` option that takes it: the TEE's own evidence, exactly as the verified document
 * carries it (azure-tdx: also its TD quote, which `verify-evidence --tee tdx --collateral` checks).
 */
export const EVIDENCE_OUT_FILES = {
  "sev-snp": ["report.bin", "cert.der"],
  tdx: ["quote.bin"],
  "azure-snp": ["evidence.json"],
  "azure-tdx": ["evidence.json", "td-quote.bin"],
} as const;

/** Every name `attest --evidence-out DIR` may write, whatever the evidence's type (each once). */
const EVIDENCE_OUT_NAMES: readonly string[] = [...new Set(Object.values(EVIDENCE_OUT_FILES).flat())];

/**
 * The folder of DIR in which `attest --evidence-out DIR` saves the TDX collateral served with the
 * document, as verified with it, in the layout `verify-evidence --collateral` reads
 * (attestation/tdx/collateral-dir.ts): one TCB info, one QE identity, their issuer chains and the
 * CRLs, each under a fixed name (the CRLs numbered in the order served), so that the saved quote
 * verifies offline against exactly that collateral.
 */
export const EVIDENCE_OUT_COLLATERAL = "collateral";

/** The names of the collateral folder's files, by the wire member each holds (attestation/collateral.ts). */
const COLLATERAL_OUT_FILES = {
  tcbInfo: "tcbinfo-tdx.json",
  tcbInfoIssuerChain: TCB_INFO_ISSUER_CHAIN_FILE,
  qeIdentity: "qeidentity-td-qe.json",
  qeIdentityIssuerChain: QE_IDENTITY_ISSUER_CHAIN_FILE,
} as const;

/** The name of the collateral's CRL at `index` (from 0) in the collateral folder. */
const crlOutName = (index: number) => `crl-${index + 1}.der`;

/** Every name attest may write in the collateral folder (with --force, all it may hold). */
export const COLLATERAL_OUT_NAMES: readonly string[] = [
  ...Object.values(COLLATERAL_OUT_FILES),
  ...Array.from({ length: MAX_TDX_COLLATERAL_CRLS }, (_, index) => crlOutName(index)),
];

/**
 * The files of `attest --evidence-out` for `document`, which verifyAttestationDocument verified
 * (evidence, binding, signature, nonce, manifest): its payload's evidence, read with the document's
 * strict readers (unverifiedDocumentPayload, parseDocumentEvidence), as name and bytes. The SNP
 * endorsement key (VCEK or VLEK) is DER, which `verify-evidence --cert` takes as well as PEM.
 */
export async function evidenceOutFiles(
  document: string,
  /** The collateral the document was verified with (Session.collateral): saved for TDX evidence. */
  collateral: AttestationCollateral | null = null,
): Promise<{ name: string; bytes: Uint8Array }[]> {
  const { decodeStrictBase64url } = await import("../../attestation/jws.ts");
  const { unverifiedDocumentPayload } = await import("../../attestation/document-key.ts");
  const { parseDocumentEvidence } = await import("../../attestation/evidence.ts");
  const { ParseError } = await import("../../attestation/errors.ts");
  const refuse = (message: string, cause?: unknown): never => {
    throw new ParseError("DOCUMENT_MALFORMED", message, { cause });
  };
  const bytesOf = (text: string, field: string) => decodeStrictBase64url(text, field, refuse);
  const evidence = parseDocumentEvidence(unverifiedDocumentPayload(document).evidence);
  switch (evidence.type) {
    case "sev-snp":
      return [
        { name: "report.bin", bytes: bytesOf(evidence.report, "evidence.report") },
        { name: "cert.der", bytes: bytesOf(evidence.endorsementKey, "evidence.endorsementKey") },
      ];
    case "tdx": {
      const quote = { name: "quote.bin", bytes: bytesOf(evidence.quote, "evidence.quote") };
      if (collateral?.tdx === undefined) return [quote];
      // Its texts as served (UTF-8: what the verifier checked the signatures over), its CRLs decoded
      // as the verifier decoded them.
      const wire = collateral.tdx;
      const inFolder = (name: string) => `${EVIDENCE_OUT_COLLATERAL}/${name}`;
      const text = (member: keyof typeof COLLATERAL_OUT_FILES) => ({
        name: inFolder(COLLATERAL_OUT_FILES[member]),
        bytes: new TextEncoder().encode(wire[member]),
      });
      return [
        quote,
        text("tcbInfo"),
        text("tcbInfoIssuerChain"),
        text("qeIdentity"),
        text("qeIdentityIssuerChain"),
        ...tdxVerificationCollateral(wire).crls.map((bytes, index) => ({ name: inFolder(crlOutName(index)), bytes })),
      ];
    }
    case "azure-snp":
      return [{ name: "evidence.json", bytes: new TextEncoder().encode(evidence.evidence) }];
    case "azure-tdx": {
      const { parseAzureEvidence } = await import("../../attestation/azure/evidence.ts");
      const tdQuote =
        parseAzureEvidence(evidence.evidence).tdQuote ??
        refuse("evidence.evidence td_quote: expected the TD quote of azure-tdx evidence, found none");
      return [
        { name: "evidence.json", bytes: new TextEncoder().encode(evidence.evidence) },
        { name: "td-quote.bin", bytes: tdQuote },
      ];
    }
  }
}

/** One output of writeOutputFiles: a file and its content, or a directory for the files after it. */
export type OutputEntry =
  | { readonly file: string; readonly content: string | Uint8Array; readonly option: string }
  | { readonly directory: string; readonly option: string };

/**
 * Writes `outputs` in turn (writeOutputFile; a directory: makeOutputDirectory), all or none:
 * without --force, a failure (a file or directory made meanwhile at a later name: EEXIST; a full
 * disk) removes the files and directories of the earlier ones again, as writeOutputFile removes its
 * own, so that a retry does not find them there ("exists") and no set is left half of this run's
 * (report.bin without its cert.der, quote.bin without the collateral it was verified with). The
 * names were created by this call, exclusively (a link never replaces a file); removing a name
 * never follows it, and a directory is removed only when empty; one that cannot be removed again is
 * named in the error (leftOutputsError), the first failure's. With --force the files replaced stay
 * replaced.
 */
export async function writeOutputFiles(outputs: readonly OutputEntry[], existing: ExistingOutput): Promise<void> {
  // `path` to remove it by; `named`: its option and path as given, for a message.
  const made: { path: string; directory: boolean; named: string }[] = [];
  // Each directory made or found, held open: the files after it are written in it (heldDirectory).
  const held = new Map<string, HeldDirectory>();
  try {
    for (const output of outputs) {
      if ("directory" in output) {
        if (await makeOutputDirectory(output.directory, output.option, existing)) {
          made.push({
            path: output.directory,
            directory: true,
            named: `${output.option} ${shellWord(output.directory)}`,
          });
        }
        held.set(output.directory, await heldDirectory(output.directory, output.option));
        continue;
      }
      const directory = held.get(dirname(output.file));
      const at = directory === undefined ? output.file : join(directory.path, basename(output.file));
      await writeOutputFile(output.file, output.content, output.option, existing, at);
      made.push({ path: at, directory: false, named: `${output.option} ${shellWord(output.file)}` });
    }
  } catch (error) {
    if (existing === "replace") throw error;
    const left: string[] = [];
    for (const { path, directory, named } of made.reverse()) {
      await (directory ? rmdir(path) : rm(path, { force: true })).catch((removal: unknown) => {
        // One gone already is not left there (rm's `force` says the same of a file).
        if ((removal as NodeJS.ErrnoException).code === "ENOENT") return;
        left.push(`${named} (${fileErrorCause(removal, "write")})`);
      });
    }
    throw left.length === 0 ? error : leftOutputsError(error, left);
  } finally {
    for (const directory of held.values()) await directory.close();
  }
}

/**
 * The first error of writeOutputFiles, its message ending with the earlier outputs of the run that
 * could not be removed again (`left`: option, path, why), worded as leftFileNote words a file
 * writeFileAtomically left: they are still at their names, and a retry without --force would be
 * refused on them ("exists"). A UsageError (every refusal of writeOutputFiles' own) is the cause of a
 * new one; any other error (an errno error or a ClientError: writeOutputFiles words neither itself,
 * but one may get here) is kept, its message added to, so that its class and code, and the exit
 * code they give (isBadInput), stay its own.
 */
function leftOutputsError(error: unknown, left: readonly string[]): Error {
  const note = `; the earlier outputs of this run were left there, and could not be removed: ${left.join(", ")}: remove them`;
  if (error instanceof UsageError) return new UsageError(`${error.message}${note}`, { cause: error });
  if (error instanceof Error) {
    error.message = `${error.message}${note}`;
    return error;
  }
  return new Error(`${errorText(error)}${note}`, { cause: error });
}

/** An output directory held open (heldDirectory): the path to reach it by, and its release. */
interface HeldDirectory {
  readonly path: string;
  close(): Promise<void>;
}

/**
 * The output directory `directory` (checked a directory before, or made by this run) held for the
 * files written or removed in it: whoever may write to its parent (DIR) may rename it and put a
 * link at its name at any moment, and writes or removals by name would then follow the link to any
 * directory (an earlier run's crl-3.der removed there). On Linux it is opened without following a
 * link (O_NOFOLLOW; a link there now is refused) and reached through /proc/self/fd/N (pinnedPath),
 * which leads to the directory opened whatever is at its name later; elsewhere (no such path) it
 * is checked (lstat: a directory, not a link) and reached by its name.
 */
async function heldDirectory(directory: string, option: string): Promise<HeldDirectory> {
  const refuse = async (cause?: unknown): Promise<UsageError> => {
    const info = await lstat(directory).catch((error: unknown) => {
      cause ??= error;
      return null;
    });
    const options = cause === undefined ? undefined : { cause };
    // A directory that would not open (EMFILE, EACCES): its error, not "found a directory".
    if (info?.isDirectory()) {
      return new UsageError(
        fileMessage(directory, option, `cannot open it (${fileErrorCause(cause, "check")})`),
        options,
      );
    }
    const found = info === null ? `nothing it can open (${fileErrorCause(cause, "check")})` : describeFileKind(info);
    return new UsageError(fileMessage(directory, option, `expected a directory, found ${found}`), options);
  };
  if (process.platform !== "linux") {
    const info = await lstat(directory).catch(() => null);
    if (info === null || !info.isDirectory()) throw await refuse();
    return { path: directory, close: async () => {} };
  }
  const handle = await openFile(directory, constants.O_RDONLY | constants.O_DIRECTORY | constants.O_NOFOLLOW).catch(
    async (cause: unknown) => {
      throw await refuse(cause);
    },
  );
  const close = () => handle.close().catch(() => {});
  // Its status read on the handle: one that cannot be read (EIO, ESTALE) closes it and stops, as
  // any other check of the output that fails does.
  const opened = await handle.stat().catch(async (cause: unknown) => {
    await close();
    throw new UsageError(fileMessage(directory, option, `cannot check it (${fileErrorCause(cause, "check")})`), {
      cause,
    });
  });
  return { path: (await pinnedPath(handle, opened)) ?? directory, close };
}

/**
 * Makes the output directory `directory` (its parent must exist), true when this call made it. One
 * that exists is refused (EEXIST) unless `existing` is "replace", which takes it as it is when it is
 * a directory (never a link to one: the files written in it would land where the link leads).
 */
async function makeOutputDirectory(directory: string, option: string, existing: ExistingOutput): Promise<boolean> {
  try {
    await mkdir(directory, { mode: 0o755 });
  } catch (cause) {
    const code = (cause as NodeJS.ErrnoException).code;
    if (code === "EEXIST" && existing === "replace") {
      const info = await lstat(directory).catch(() => null);
      if (info?.isDirectory() === true) return false;
      const found = info === null ? "nothing it can check" : describeFileKind(info);
      throw new UsageError(fileMessage(directory, option, `expected a directory, found ${found}`), { cause });
    }
    if (code === "EEXIST") {
      throw new UsageError(fileMessage(directory, option, "already exists (EEXIST); pass --force to replace it"), {
        cause,
      });
    }
    const missing = code === "ENOENT" ? await missingDirectory(directory) : null;
    if (missing !== null) throw noDirectoryError(option, directory, missing, cause);
    throw new UsageError(fileMessage(directory, option, `cannot create (${fileErrorCause(cause, "write")})`), {
      cause,
    });
  }
  // Its name in the parent made durable, as writeOutputFile makes a file's.
  await syncDirectory(dirname(directory)).catch(async (cause: unknown) => {
    await rmdir(directory).catch(() => {});
    throw new UsageError(fileMessage(directory, option, `cannot create (${fileErrorCause(cause, "write")})`), {
      cause,
    });
  });
  return true;
}

/**
 * With --force, removes from `dir` the files of `attest --evidence-out` that are not among `kept`
 * (another evidence type's, left by an earlier run: a cert.der next to a new quote.bin would be
 * verified as this deployment's), so that DIR holds this document's evidence only. Unlinking a name
 * never follows it; a directory there is refused, never removed.
 */
async function removeOtherEvidence(dir: string, kept: readonly string[]): Promise<void> {
  const collateral = COLLATERAL_OUT_NAMES.map((name) => `${EVIDENCE_OUT_COLLATERAL}/${name}`);
  const remove = (file: string, at = file) =>
    unlink(at).catch((cause: unknown) => {
      if ((cause as NodeJS.ErrnoException).code === "ENOENT") return;
      const reason = `cannot remove another evidence type's file (${fileErrorCause(cause, "write")})`;
      throw new UsageError(fileMessage(file, "--evidence-out", reason), { cause });
    });
  for (const name of EVIDENCE_OUT_NAMES) if (!kept.includes(name)) await remove(join(dir, name));
  const folder = join(dir, EVIDENCE_OUT_COLLATERAL);
  // The collateral folder's, in the folder checked (heldDirectory), never where a link put at its
  // name since leads. None there: nothing to remove.
  const there = await lstat(folder).then(
    () => true,
    (cause: unknown) => (cause as NodeJS.ErrnoException).code !== "ENOENT",
  );
  const held = there ? await heldDirectory(folder, "--evidence-out") : null;
  try {
    for (const name of COLLATERAL_OUT_NAMES) {
      if (held === null || kept.includes(`${EVIDENCE_OUT_COLLATERAL}/${name}`)) continue;
      await remove(join(folder, name), join(held.path, name));
    }
  } finally {
    await held?.close();
  }
  // No collateral this time: an earlier run's folder (emptied above) would read as this quote's.
  if (!kept.some((name) => collateral.includes(name))) {
    await rmdir(folder).catch((cause: unknown) => {
      if ((cause as NodeJS.ErrnoException).code === "ENOENT") return;
      const reason = `cannot remove an earlier run's collateral folder (${fileErrorCause(cause, "write")})`;
      throw new UsageError(fileMessage(folder, "--evidence-out", reason), { cause });
    });
  }
}

/**
 * Refuses, before the round trip, a collateral folder in DIR (EVIDENCE_OUT_COLLATERAL) that attest
 * could not write its collateral into whole: one that exists, unless --force; with --force, one
 * that is not a directory (a link to one included), or holds a name attest does not write there
 * (verify-evidence --collateral would read a TCB info or CRL there as this quote's), or a
 * directory, FIFO, socket or device at a name it does.
 */
async function refuseExistingCollateral(evidenceOut: string, existing: ExistingOutput): Promise<void> {
  const folder = join(evidenceOut, EVIDENCE_OUT_COLLATERAL);
  const refuse = (reason: string, cause?: unknown) =>
    new UsageError(fileMessage(folder, "--evidence-out", reason), cause === undefined ? undefined : { cause });
  const info = await lstat(folder).catch((cause: unknown) => {
    if ((cause as NodeJS.ErrnoException).code === "ENOENT") return null;
    throw refuse(`cannot check it (${fileErrorCause(cause, "check")})`, cause);
  });
  if (info === null) return;
  if (!info.isDirectory()) {
    throw refuse(`expected a directory (for the TDX collateral attest saves), found ${describeFileKind(info)}`);
  }
  if (existing !== "replace") throw refuse("already exists (EEXIST); pass --force to replace it");
  const names = await readdir(folder).catch((cause: unknown) => {
    throw refuse(`cannot list it (${fileErrorCause(cause, "check")})`, cause);
  });
  const other = names.sort().find((name) => !COLLATERAL_OUT_NAMES.includes(name));
  if (other !== undefined) {
    throw refuse(
      `expected only the files attest saves there (${COLLATERAL_OUT_NAMES.join(", ")}), found ${shellWord(other)}; move it elsewhere`,
    );
  }
  for (const name of COLLATERAL_OUT_NAMES) await refuseExistingOutput(join(folder, name), "--evidence-out", existing);
}

/**
 * Refuses a --document-out file that --evidence-out would replace or remove, or that would stop its
 * next run (after both were checked: their directories exist): one of the names it writes in DIR
 * (its files, and the collateral folder's name), or any file in DIR/collateral, which holds only the
 * collateral it saves (with --force, a name it does not write there is refused:
 * refuseExistingCollateral). A directory that cannot be resolved (gone since, or not to be looked
 * into) is USAGE, naming the option.
 */
async function refuseDocumentAmongEvidence(documentOut: string, evidenceOut: string): Promise<void> {
  const resolved = (directory: string, file: string, option: string) =>
    realpath(directory).catch((cause: unknown) => {
      throw new UsageError(fileMessage(file, option, `cannot check its path (${fileErrorCause(cause, "check")})`), {
        cause,
      });
    });
  const [documentDir, evidenceDir] = await Promise.all([
    resolved(dirname(documentOut), documentOut, "--document-out"),
    resolved(evidenceOut, evidenceOut, "--evidence-out"),
  ]);
  const name = basename(documentOut);
  // The collateral folder's name too: a file there would stop the folder being made, and every later
  // --force run (refuseExistingCollateral: "expected a directory").
  const inDir = [...EVIDENCE_OUT_NAMES, EVIDENCE_OUT_COLLATERAL];
  if (documentDir === evidenceDir && inDir.includes(name)) {
    const reason = `expected a file other than those --evidence-out writes in ${shellWord(evidenceOut)} (${inDir.join(", ")}), found ${name}`;
    throw optionsUsageError(fileMessage(documentOut, "--document-out", reason));
  }
  if (documentDir !== join(evidenceDir, EVIDENCE_OUT_COLLATERAL)) return;
  const folder = join(evidenceOut, EVIDENCE_OUT_COLLATERAL);
  const reason = `expected a file outside ${shellWord(folder)}, which holds only the collateral --evidence-out saves (${COLLATERAL_OUT_NAMES.join(", ")}), found one in it`;
  throw optionsUsageError(fileMessage(documentOut, "--document-out", reason));
}

/** What `attest --evidence-out` wrote: its DIR, the evidence's type and the names written in DIR. */
interface EvidenceOut {
  readonly dir: string;
  readonly tee: VerifiedEnclave["tee"];
  readonly names: readonly string[];
}

/**
 * The line attest prints after its summary for --evidence-out: DIR and the files written, and the
 * verify-evidence command that checks them offline under `policy` (attest's --policy), with the
 * saved collateral for TDX; every path as a shell word (shellWord: control characters escaped).
 * For TDX evidence served without collateral it says none was saved (the TCB status then needs
 * Intel's collateral for the platform: attestation/policy-from-evidence.ts TCB_CHECK_NOTE).
 */
export function evidenceOutLine(saved: EvidenceOut, policy: string): string {
  const path = (name: string) => shellWord(join(saved.dir, name));
  const hasCollateral = saved.names.some((name) => name.startsWith(`${EVIDENCE_OUT_COLLATERAL}/`));
  const evidence: Record<VerifiedEnclave["tee"], string> = {
    "sev-snp": `--tee snp --report ${path("report.bin")} --cert ${path("cert.der")}`,
    tdx: `--tee tdx --quote ${path("quote.bin")}${hasCollateral ? ` --collateral ${path(EVIDENCE_OUT_COLLATERAL)}` : ""}`,
    "azure-snp": `--tee azure-snp --evidence ${path("evidence.json")}`,
    "azure-tdx": `--tee azure-tdx --evidence ${path("evidence.json")}`,
  };
  const none =
    saved.tee === "tdx" && !hasCollateral
      ? " (no TCB collateral: the deployment served none; its TCB status needs --collateral COLLATERAL_DIR, Intel's for its platform)"
      : "";
  return `evidence saved in ${shellWord(saved.dir)}: ${saved.names.join(", ")}${none}; check it offline: cloister verify-evidence ${evidence[saved.tee]} --policy ${shellWord(policy)}`;
}

export async function runAttest(
  options: ClientConnectionOptions & { documentOut?: string; evidenceOut?: string; force?: boolean },
): Promise<void> {
  const existing = forcedOutput(
    options.force,
    options.documentOut ?? options.evidenceOut,
    "--document-out or --evidence-out",
  );
  // join("", name) is name: an empty DIR would write into the current directory.
  if (options.evidenceOut === "") {
    throw optionsUsageError("--evidence-out: expected an existing directory, found an empty argument");
  }
  if (options.documentOut !== undefined) await refuseExistingOutput(options.documentOut, "--document-out", existing);
  // Every name it could write, before the round trip: which of them depends on the evidence's type.
  const evidenceOut = options.evidenceOut;
  if (evidenceOut !== undefined) {
    for (const name of EVIDENCE_OUT_NAMES)
      await refuseExistingOutput(join(evidenceOut, name), "--evidence-out", existing);
    await refuseExistingCollateral(evidenceOut, existing);
    if (options.documentOut !== undefined) await refuseDocumentAmongEvidence(options.documentOut, evidenceOut);
  }
  try {
    const policy = await readPolicy(options.policy);
    const session = await open(options, policy);
    // Only a document that passed verification is saved, and only its evidence.
    const outputs: OutputEntry[] = [];
    if (options.documentOut !== undefined) {
      outputs.push({ file: options.documentOut, content: `${session.document}\n`, option: "--document-out" });
    }
    // The evidence and (TDX) the collateral it was verified with: what verify-evidence needs to give
    // the verdict attest gave.
    let saved: EvidenceOut | null = null;
    if (evidenceOut !== undefined) {
      const files = await evidenceOutFiles(session.document, session.collateral);
      saved = { dir: evidenceOut, tee: session.enclave.tee, names: files.map(({ name }) => name) };
      for (const { name, bytes } of files) {
        // Its folder before the collateral's first file (written last: a failure there removes the quote).
        if (name.startsWith(`${EVIDENCE_OUT_COLLATERAL}/`) && !outputs.some((o) => "directory" in o)) {
          outputs.push({ directory: join(evidenceOut, EVIDENCE_OUT_COLLATERAL), option: "--evidence-out" });
        }
        outputs.push({ file: join(evidenceOut, name), content: bytes, option: "--evidence-out" });
      }
      // Without --force none of them is there (refused above).
      if (existing === "replace")
        await removeOtherEvidence(
          evidenceOut,
          files.map(({ name }) => name),
        );
    }
    await writeOutputFiles(outputs, existing);
    // Verified against the policy, which may itself let more through than one known image.
    const policyWarnings = policyRisks(policy, "is sent your prompts");
    // The verified sealing key's id: how an operator names this boot (attest/audit checkpoint --enclave).
    const keyId = Buffer.from(await enclaveKeyId(session.enclave.sealingPublicKey)).toString("hex");
    if (options.json === true) {
      printJson({
        valid: true,
        ...enclaveSummary(session.enclave),
        keyId,
        policyWarnings,
        // The files --evidence-out wrote, as paths (DIR joined with each name).
        ...(saved === null ? {} : { evidenceFiles: saved.names.map((name) => join(saved.dir, name)) }),
      });
    } else {
      process.stdout.write(`enclave verified\n${describeEnclave(session.enclave, { manifestTee: true, keyId })}\n`);
      for (const warning of policyWarnings) process.stdout.write(`WARNING: policy: ${warning}\n`);
      if (saved !== null) process.stdout.write(`${evidenceOutLine(saved, options.policy)}\n`);
    }
  } catch (error) {
    if (options.json === true && error instanceof ClientError) {
      printJson({
        valid: false,
        kind: error.kind,
        stage: error.stage ?? null,
        code: error.code,
        reason: error.message,
      });
      process.exitCode = 1;
      return;
    }
    throw error;
  }
}

/**
 * An audit reference as `chat --json` prints it for `cloister audit find --chat-json`: with its
 * opening, named here on purpose (the SDK keeps it out of JSON and inspection by default).
 */
function auditJson(audit: AuditReference | null): { requestIdHash: string; opening: string } | null {
  return audit === null ? null : { requestIdHash: audit.requestIdHash, opening: audit.opening };
}

/**
 * A note of `cloister chat` (the prompt as redacted, --max-tokens over the enclave's limit) as its
 * line: said beside the answer, not an error (the exit status stays 0).
 */
const noteLine = (note: string) => `cloister: note: ${note}\n`;

/**
 * Streams the answer to `messages`, as text to `answers` or (`json`) as one JSON object on standard
 * output. The text is the model's, which a prompt injection can steer: on a terminal, what the
 * terminal would act on (escape sequences, bidirectional controls) is written visibly
 * (untrustedTextWriter); to a pipe or a file, exactly.
 */
async function streamAnswer(
  session: Session,
  messages: ChatMessage[],
  options: { maxTokens?: number; seed?: number; json?: boolean },
  answers: NodeJS.WritableStream & TextOutput = process.stdout,
  /** Where the note on a redacted prompt goes, after the answer (standard error; the session's output). */
  notes: NodeJS.WritableStream = process.stderr,
): Promise<string> {
  let text = "";
  const shown = untrustedTextWriter(answers);
  const generation = {
    ...(options.maxTokens === undefined ? {} : { maxTokens: options.maxTokens }),
    ...(options.seed === undefined ? {} : { seed: options.seed }),
  };
  const signingKey = () => Buffer.from(session.enclave.signingPublicKey).toString("hex");
  try {
    for await (const event of session.chat(messages, generation)) {
      if (event.type === "text") {
        text += event.text;
        if (options.json !== true) shown.write(event.text);
      } else if (options.json === true) {
        printJson({
          text,
          usage: event.usage,
          finishReason: event.finishReason,
          enclave: session.enclave.documentDigest,
          // Verified already; keep it (with signingKey) to show later what the enclave answered.
          receipt: event.receipt,
          // Finds and opens this request's record in the audit log the host stores (cloister audit find).
          audit: auditJson(event.audit),
          signingKey: signingKey(),
          // The PII kinds the enclave redacted from the prompt before the model saw it, with counts, or
          // null; absent when the enclave did not say (a build from before it did).
          redacted: event.redacted,
        });
      } else {
        shown.end();
        answers.write("\n");
        // The answer is to the prompt as redacted, not as written: say so (kinds and counts only).
        const note = redactionNote(event.redacted, session.enclave);
        if (note !== null) notes.write(noteLine(note));
      }
    }
  } catch (error) {
    // What was held back of a text cut short: before the error, said after it.
    shown.end();
    // With --json a refused or failed request is one JSON object too; a refusal the enclave
    // recorded carries its audit reference, so `cloister audit find --chat-json` shows the record
    // of the refusal is about this prompt. No partial text: it was not a whole answer.
    if (options.json !== true || !(error instanceof ClientError)) throw error;
    // A re-verification that failed leaves the session with no verified enclave to name.
    const attested = session.attested;
    printJson({
      error: { kind: error.kind, code: error.code, reason: error.message },
      enclave: attested ? session.enclave.documentDigest : null,
      audit: auditJson(error.audit),
      signingKey: attested ? signingKey() : null,
    });
    process.exitCode = 1;
  }
  return text;
}

/** Where chat's prompt may come from besides the argument. */
export interface PromptInput extends AsyncIterable<Uint8Array | string> {
  readonly isTTY?: boolean;
}

/**
 * All of standard input, to the prompt's bound (PROMPT_BOUND) as a --prompt-file is: more is refused
 * as it arrives, never held whole. `source` names it in the refusal, as written (standard input is no
 * file: fileMessage would quote a file named `- (standard input)`).
 */
async function readAll(input: AsyncIterable<Uint8Array | string>, source: PromptSource): Promise<Uint8Array> {
  const chunks: Buffer[] = [];
  let length = 0;
  for await (const chunk of input) {
    const bytes = typeof chunk === "string" ? Buffer.from(chunk, "utf8") : Buffer.from(chunk);
    length += bytes.length;
    if (length > PROMPT_BOUND.bytes) throw new UsageError(source(tooLargeReason(PROMPT_BOUND)));
    chunks.push(bytes);
  }
  return Buffer.concat(chunks);
}

/**
 * The prompt's exact text: UTF-8 (a byte-order mark kept), nothing trimmed, so the same file given
 * to `cloister audit find --prompt-file` matches the record's commitment. Refuses bytes that are not
 * UTF-8, naming the first byte (from 1) of `input` (the file, standard input) that is not, as every
 * file an option names is refused, and a prompt of nothing but white space. Never quotes the content.
 */
function promptText(bytes: Uint8Array, source: PromptSource, input: string, hint = ""): string {
  const text = decodeUtf8(bytes);
  if (typeof text !== "string") throw new UsageError(source(notUtf8Reason(text, input)));
  if (text.trim() === "") {
    const found = bytes.length === 0 ? "an empty input (0 bytes)" : `only white space (${bytes.length} bytes)`;
    throw new UsageError(source(`expected a prompt, found ${found}${hint}`));
  }
  return refuseLongPrompt(text, source);
}

/** A refusal's message naming where the prompt came from: `${source}: ${reason}` (a file's: fileMessage). */
type PromptSource = (reason: string) => string;

/** promptText's source for `what` (standard input, the PROMPT argument), written as it is. */
const promptSource =
  (what: string): PromptSource =>
  (reason) =>
    `${what}: ${reason}`;

/**
 * The prompt, refused here when longer than the enclave takes one message to be
 * (REQUEST_LIMITS.maxTextChars), naming where it came from rather than the chat message it becomes.
 */
function refuseLongPrompt(text: string, source: PromptSource): string {
  if (text.length > REQUEST_LIMITS.maxTextChars) {
    throw new UsageError(
      source(
        `expected a prompt of at most ${REQUEST_LIMITS.maxTextChars} characters (UTF-16 code units), found ${text.length}`,
      ),
    );
  }
  return text;
}

/**
 * A --prompt-file or standard input, read to the most bytes a prompt the enclave takes can be: at most
 * REQUEST_LIMITS.maxTextChars UTF-16 code units, each at most 3 bytes of UTF-8 (a character outside
 * the BMP is 4 bytes for 2 units). A larger file is refused before it is held whole; one within
 * the bound is still refused by its length in characters (refuseLongPrompt).
 */
const PROMPT_BOUND: InputBound = {
  bytes: 3 * REQUEST_LIMITS.maxTextChars,
  expected: `a prompt of at most ${REQUEST_LIMITS.maxTextChars} characters (UTF-16 code units), 3 bytes of UTF-8 each at most`,
};

/**
 * Chat's prompt: the PROMPT argument, or `--prompt-file FILE` (`-`: all of standard input), or, when
 * standard input is not a terminal and neither is given, all of standard input. `undefined`: none
 * (standard input is a terminal), so the session is interactive. A file or a pipe keeps the prompt
 * out of the command line, where other users see it (`ps`, /proc/PID/cmdline) and shells record it.
 */
export async function readPrompt(
  prompt: string | undefined,
  promptFile: string | undefined,
  stdin: PromptInput = process.stdin,
): Promise<string | undefined> {
  const given = await readPromptOptions(CHAT_PROMPT, prompt, promptFile, stdin);
  if (given !== undefined || stdin.isTTY === true) return given;
  return promptText(
    await readAll(stdin, promptSource("chat: standard input")),
    promptSource("chat: standard input is not a terminal, so it is read as the prompt"),
    "standard input",
    "; give a PROMPT argument or --prompt-file, or run on a terminal for an interactive session",
  );
}

/** How a command names its prompt on the command line in readPromptOptions' refusals. */
export interface InlinePromptNames {
  /** The command, first in each message: `chat`, `model run`. */
  readonly command: string;
  /** The inline prompt after "found both": `a PROMPT argument`, `--prompt`. */
  readonly both: string;
  /** The inline prompt after "expected a prompt in", and before a too-long one's reason. */
  readonly where: string;
  /** What to do instead of an empty or white-space one. */
  readonly remedy: string;
}

const CHAT_PROMPT: InlinePromptNames = {
  command: "chat",
  both: "a PROMPT argument",
  where: "the PROMPT argument",
  remedy: "give the question as PROMPT, or use --prompt-file or standard input",
};

/**
 * A prompt given on the command line (`names`: chat's PROMPT argument, `cloister model run`'s
 * --prompt) or by `--prompt-file`, checked alike for every command: not both; an inline one refused
 * when empty or only white space (never quoted: an argument is already text, so only its emptiness
 * is checked) or longer than the enclave takes (refuseLongPrompt), as a file's is (readPromptFile).
 * `undefined`: neither was given (each command says what it does then).
 */
export async function readPromptOptions(
  names: InlinePromptNames,
  prompt: string | undefined,
  promptFile: string | undefined,
  stdin: PromptInput = process.stdin,
): Promise<string | undefined> {
  if (prompt !== undefined && promptFile !== undefined) {
    throw optionsUsageError(`${names.command}: expected the prompt once, found both ${names.both} and --prompt-file`);
  }
  if (prompt !== undefined) {
    if (prompt.trim() === "") {
      const found = prompt === "" ? "an empty argument" : `only white space (${prompt.length} characters)`;
      throw new UsageError(`${names.command}: expected a prompt in ${names.where}, found ${found}; ${names.remedy}`);
    }
    return refuseLongPrompt(prompt, promptSource(`${names.command}: ${names.where}`));
  }
  return promptFile === undefined ? undefined : readPromptFile(promptFile, stdin);
}

/**
 * The prompt `--prompt-file FILE` names (`-`: all of standard input), bounded (PROMPT_BOUND) and
 * checked (promptText): chat's, and `cloister model run`'s (enclave/run-cli.ts), read the same way.
 */
async function readPromptFile(promptFile: string, stdin: PromptInput): Promise<string> {
  if (promptFile === "-") {
    const source = promptSource("--prompt-file - (standard input)");
    return promptText(await readAll(stdin, source), source, "standard input");
  }
  const bytes = await readBoundedFile(
    promptFile,
    "--prompt-file",
    PROMPT_BOUND,
    optionFileUnreadable(promptFile, "--prompt-file"),
  );
  // Named as bounded-file.ts names the file in its refusals (fileMessage: a path holding ': ' quoted).
  return promptText(bytes, (reason) => fileMessage(promptFile, "--prompt-file", reason), "the file");
}

export async function runChat(
  promptArgument: string | undefined,
  options: ClientConnectionOptions & { maxTokens?: number; seed?: number; promptFile?: string },
  stdin: PromptInput & NodeJS.ReadableStream = process.stdin,
): Promise<void> {
  // Read before connecting: a prompt that cannot be read costs no attestation round trip.
  const prompt = await readPrompt(promptArgument, options.promptFile, stdin);
  if (prompt === undefined && options.json === true) {
    throw optionsUsageError(
      "chat --json: expected a prompt (the PROMPT argument, --prompt-file, or standard input that is not a terminal), found none: the interactive session prints text, not JSON",
    );
  }
  const policy = await readPolicy(options.policy);
  const session = await open(options, policy);
  // The enclave cuts a larger --max-tokens to its manifest's limit, silently: said here, once, so
  // that an answer stopped there does not read as the model's own end (an interactive session says
  // it again when it moves to an enclave with another limit: chatInteractively).
  const note = maxTokensNote(options.maxTokens, session.enclave);
  if (note !== null) process.stderr.write(noteLine(note));
  if (prompt !== undefined) {
    await streamAnswer(session, [{ role: "user", content: prompt }], options);
    return;
  }
  // What attest and proxy say before a session starts: what was verified, and what the policy
  // itself lets through beyond known images (the simulator, skipped measurements…).
  const warnings = policyRisks(policy, "is sent your prompts").map((warning) => `WARNING: policy: ${warning}\n`);
  process.stderr.write(
    `enclave verified\n${describeEnclave(session.enclave)}\n${warnings.join("")}Type a message; an empty line or Ctrl-D ends.\n`,
  );
  const { maxTokens, seed } = options;
  await chatInteractively(
    session,
    { ...(maxTokens === undefined ? {} : { maxTokens }), ...(seed === undefined ? {} : { seed }) },
    { input: stdin, output: process.stderr, answers: process.stdout },
  );
}

/** Where chat's interactive session reads and writes (the CLI's: standard input, error and output). */
export interface ChatIo {
  /** The lines typed. */
  readonly input: NodeJS.ReadableStream;
  /** The prompt ("you> ") and the session's notices (a line not sent, a turn not answered…). */
  readonly output: NodeJS.WritableStream;
  /** The enclave's answers ("enclave> …"), made visible where it is a terminal (`isTTY`: untrustedTextWriter). */
  readonly answers: NodeJS.WritableStream & TextOutput;
}

/**
 * Chat's interactive session (standard input a terminal, no prompt given): each line typed is a
 * user message, sent with the conversation so far; an empty line or the end of input (Ctrl-D) ends
 * it. Lines typed while an answer streams wait their turn. A line longer than one message may be is
 * not sent: the session says so, with the limit and the line's length (never its content), and
 * goes on; so it does after a refusal or a transport failure of one turn (the line is not kept).
 * Failed verification or integrity ends it. The conversation sent is at most the messages a
 * request may hold, and when the enclave finds it longer than the model's context, its oldest
 * exchanges are left out (said once) and the line is sent again.
 */
export async function chatInteractively(
  session: Session,
  // Text only (no --json): a turn's failure must reach the loop, which decides whether it goes on.
  options: { maxTokens?: number; seed?: number },
  io: ChatIo = { input: process.stdin, output: process.stderr, answers: process.stdout },
): Promise<void> {
  const { output, answers } = io;
  const rl = createInterface({ input: io.input, output, prompt: "you> " });
  // Buffered: a line typed while an answer streams is read after it, not lost.
  const lines = rl[Symbol.asyncIterator]();
  const history: ChatMessage[] = [];
  // The limit of the enclave last verified, as the caller found it (runChat said whether
  // --max-tokens is over it): a turn that moved the session to another pool member (re-attested)
  // with another limit says so, after that turn's answer, once per change.
  let limitSeen = session.attested ? manifestMaxTokens(session.enclave) : null;
  // The enclave the session start described (or the last move named): a turn that re-attested to
  // another one (a pool member, the one before stopped or restarted) says which, after its answer,
  // so the summary shown first is not taken for the enclave now answering.
  let documentSeen = session.attested ? session.enclave.documentDigest : null;
  const sayMoved = async () => {
    if (!session.attested || session.enclave.documentDigest === documentSeen) return;
    documentSeen = session.enclave.documentDigest;
    const { tee, simulated, measurement, sealingPublicKey } = session.enclave;
    const keyId = Buffer.from(await enclaveKeyId(sealingPublicKey)).toString("hex");
    output.write(
      noteLine(
        `the session moved to another enclave, verified against the policy before this turn was sent: ${tee}${simulated ? " (SIMULATED)" : ""}, measurement ${measurement.slice(0, 16)}…, key id ${keyId}`,
      ),
    );
  };
  const sayNewLimit = () => {
    if (!session.attested || manifestMaxTokens(session.enclave) === limitSeen) return;
    limitSeen = manifestMaxTokens(session.enclave);
    const note = maxTokensNote(options.maxTokens, session.enclave);
    if (note !== null) output.write(noteLine(note));
  };
  let toldTrimmed = false;
  const dropOldestExchange = (why: string) => {
    history.splice(0, history.length > 2 && history[1]?.role === "assistant" ? 2 : 1);
    if (!toldTrimmed) output.write(`cloister: ${why}: the oldest exchanges are no longer sent\n`);
    toldTrimmed = true;
  };
  try {
    for (;;) {
      rl.prompt();
      const next = await lines.next();
      if (next.done === true) break;
      const line = next.value;
      if (line.trim() === "") break;
      try {
        refuseLongPrompt(line, promptSource("chat: the line typed"));
      } catch (error) {
        if (!(error instanceof UsageError)) throw error;
        output.write(`${formatCliError(error)}; not sent: type a shorter one (an empty line ends)\n`);
        continue;
      }
      history.push({ role: "user", content: line });
      while (history.length > REQUEST_LIMITS.maxMessages) {
        dropOldestExchange(`a chat request holds at most ${REQUEST_LIMITS.maxMessages} messages`);
      }
      for (;;) {
        answers.write("enclave> ");
        try {
          history.push({ role: "assistant", content: await streamAnswer(session, history, options, answers, output) });
          break;
        } catch (error) {
          if (!(error instanceof ClientError)) throw error;
          answers.write("\n");
          // The engine's own refusal (authenticated): the conversation outgrew the model's context.
          if (error.code === "PROMPT_TOO_LONG" && error.origin === "enclave" && history.length > 1) {
            dropOldestExchange("the conversation is longer than the model's context");
            continue;
          }
          // Too large to seal: the SDK's own finding (nothing was sent). Never on the host's word
          // (its BODY_TOO_LARGE, or any code it claims): it may have forwarded the request, and a
          // resend would have the enclave answer the line again with less of the conversation.
          if (
            error.code === "REQUEST_TOO_LARGE" &&
            error.kind === "configuration" &&
            error.origin === "client" &&
            history.length > 1
          ) {
            dropOldestExchange("the conversation is larger than one request may be");
            continue;
          }
          if (error.kind !== "policy" && error.kind !== "transport") throw error;
          history.pop();
          // The host's request limit: every later line, sent with the conversation so far, is larger.
          const hint =
            error.code === "BODY_TOO_LARGE"
              ? " (the conversation is over the host's request limit: start a new one)"
              : "";
          output.write(`${formatCliError(error)}; not answered${hint}: the session goes on (an empty line ends)\n`);
          break;
        }
      }
      await sayMoved();
      sayNewLimit();
    }
  } finally {
    rl.close();
  }
}

/**
 * `cloister audit checkpoint`: verifies the enclave, then asks it (through the host) for the signed
 * head of its audit log bound to a fresh nonce, and writes the verified line where
 * `cloister audit verify --checkpoint` reads it.
 */
export async function runAuditCheckpoint(
  options: ClientConnectionOptions & { out?: string; force?: boolean },
): Promise<void> {
  // Checked before the enclave is contacted; the write below still replaces a file only with --force.
  const existing = forcedOutput(options.force, options.out, "--out");
  if (options.out !== undefined) await refuseExistingOutput(options.out, "--out", existing);
  const session = await open(options);
  const checkpoint = await session.auditCheckpoint();
  if (options.out !== undefined) await writeOutputFile(options.out, `${checkpoint.line}\n`, "--out", existing);
  if (options.json === true) {
    printJson({
      valid: true,
      count: checkpoint.count,
      lastRecordHash: checkpoint.lastRecordHash,
      time: checkpoint.time,
      signingKey: checkpoint.signingPublicKey,
      documentDigest: session.enclave.documentDigest,
      checkpoint: checkpoint.line,
    });
    return;
  }
  const summary = auditCheckpointSummary(checkpoint, session.enclave.documentDigest, options.out);
  if (options.out === undefined) {
    process.stderr.write(`${summary.join("\n")}\n`);
    process.stdout.write(`${checkpoint.line}\n`);
  } else {
    process.stdout.write(`${summary.join("\n")}\n`);
  }
}

/**
 * What `audit checkpoint` says of a verified `checkpoint` (of the boot whose document digest is
 * `documentDigest`): its count, last record hash, key and freshness; written to `out`, the `audit
 * verify` command that checks the boot's stored log against it, the log named by its boot id (the
 * digest's first 16 digits), `out` as a shell word (shellWord: a control character shown as an escape,
 * never written to the terminal). A boot of no record has no log: the host files a boot's log with its
 * first record (host/audit-collector.ts), so there is nothing to check yet, and no command is given.
 */
export function auditCheckpointSummary(
  checkpoint: { count: number; lastRecordHash: string; time: string; signingPublicKey: string },
  documentDigest: string,
  out: string | undefined,
): string[] {
  const summary = [
    `audit checkpoint verified: ${counted(checkpoint.count, "record")} written by the enclave as of ${checkpoint.time}`,
    `  last record hash  ${checkpoint.lastRecordHash}`,
    `  signed by         Ed25519 ${checkpoint.signingPublicKey} (attested, bound in REPORT_DATA)`,
    "  fresh             carries this request's random nonce",
  ];
  if (out === undefined) return summary;
  // Each boot has its own log, named by its boot id (the document digest's first 16 digits).
  const bootLog = `${documentDigest.slice(0, 16)}.jsonl`;
  if (checkpoint.count === 0) {
    summary.push(
      `written to ${shellWord(out)}; this boot has no record yet, so the host has stored no log (${bootLog}) to check: run audit checkpoint again once it has served requests`,
    );
    return summary;
  }
  summary.push(
    `written to ${shellWord(out)}; check this boot's stored log (${bootLog} in the host's audit directory, AUDIT_DIR: the host's --audit-dir, DIR/audit under cloister up --dir DIR) with:`,
    `  cloister audit verify --log AUDIT_DIR/${bootLog} --key ${checkpoint.signingPublicKey} --checkpoint ${shellWord(out)}`,
  );
  return summary;
}
