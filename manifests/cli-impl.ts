/** Implementation of `cloister manifest ...` (loaded only when one of those commands runs). */
import { resolve } from "node:path";
import type { JWK } from "jose";
import { fileErrorCause, fileMessage, type InputBound, shellWord } from "../attestation/bounded-read.ts";
import { DOCUMENT_MAX_LENGTH } from "../attestation/document-key.ts";
import { jsonTextRefusal, parseJsonText } from "../attestation/json-text.ts";
import { readText as readBoundedText, readTrustFile } from "../client/cli/bounded-file.ts";
import {
  leftFileNote,
  noDirectoryError,
  type OutputFileErrors,
  printJson,
  refuseExistingFile,
  UsageError,
  writeFileAtomically,
} from "../client/cli/output.ts";
import {
  ManifestFileError,
  ManifestKeyInvalidError,
  ManifestPayloadInvalidError,
  ManifestSchemaError,
} from "./errors.ts";
import { type Manifest, parseManifest } from "./schema.ts";
import { checkTrustedJwk, generateManifestSigningKey, type ManifestAlg, signManifest, verifyManifest } from "./sign.ts";

/**
 * A manifest or a signed manifest, read to 4 MiB: a signed manifest travels whole in the attestation
 * document, which every reader takes to 4 MiB at most (DOCUMENT_MAX_LENGTH), and the manifest's JSON
 * is inside it, base64url-encoded.
 */
export const MANIFEST_FILE_BOUND: InputBound = {
  bytes: DOCUMENT_MAX_LENGTH,
  expected: "a manifest travels whole in the attestation document, read to 4 MiB",
};
/**
 * A JWK file, read to 64 KiB: a manifest key is Ed25519 or P-256 (MANIFEST_ALGS), whose JWK, private
 * and with every optional member, is a few hundred bytes.
 */
const JWK_FILE_BOUND: InputBound = {
  bytes: 64 * 1024,
  expected: "one Ed25519 or P-256 JWK, a few hundred bytes",
};

/**
 * A file's text: to its bound and strict UTF-8 (bounded-file.ts); an unreadable file is MANIFEST_FILE,
 * as ever, saying why as every reader does (fileErrorCause: the errno and what to do).
 */
function readText(file: string, what: string, bound: InputBound): Promise<string> {
  return readBoundedText(
    file,
    what,
    bound,
    (cause) =>
      new ManifestFileError(fileMessage(file, what, `could not be read (${fileErrorCause(cause)})`), { cause }),
  );
}

async function readJson(file: string, what: string): Promise<unknown> {
  const text = await readText(file, what, MANIFEST_FILE_BOUND);
  try {
    return parseJsonText(text);
  } catch (cause) {
    throw new ManifestPayloadInvalidError(fileMessage(file, what, jsonTextRefusal(cause, "JSON")), { cause });
  }
}

/**
 * An `--operator-key` file (cloister enclave, cloister policy init): one public Ed25519/P-256 JWK,
 * read as trust files are (a member named twice is refused) and checked here, so that an error names
 * the option and the file (null, an array or a JWK Set would otherwise be blamed on the manifest).
 */
export async function readOperatorKeyFile(path: string): Promise<JWK> {
  let value: unknown;
  try {
    // parseJsonText: a second "x" would replace the key a reader of the file sees.
    // A trust anchor (cloister policy init writes it into a policy): refused when someone else could change it.
    value = parseJsonText(
      await readTrustFile(path, "--operator-key", JWK_FILE_BOUND, "whose signed manifests are trusted"),
    );
  } catch (error) {
    if (error instanceof UsageError) throw error;
    throw new UsageError(fileMessage(path, "--operator-key", jsonTextRefusal(error, "a public JWK")));
  }
  return checkTrustedJwk(value, `--operator-key ${path}`);
}

async function readJwk(file: string, what: string): Promise<JWK> {
  const text = await readText(file, what, JWK_FILE_BOUND);
  let value: unknown;
  try {
    value = parseJsonText(text);
  } catch (cause) {
    throw new ManifestKeyInvalidError(fileMessage(file, what, jsonTextRefusal(cause, "a JWK")), { cause });
  }
  if (typeof value !== "object" || value === null || Array.isArray(value)) {
    throw new ManifestKeyInvalidError(fileMessage(file, what, "expected a JWK object"));
  }
  return value as JWK;
}

/**
 * The outcomes of writing `file` (the option or argument `what`), as ManifestFileErrors (a missing
 * directory: bad input), why as every output says it (fileErrorCause); a lookup that failed is no
 * write (EACCES there: a directory of the path may not be looked into). `note`, when given, ends
 * each message (keygen's: the private key this run wrote is still on disk).
 */
const fileErrors = (what: string, file: string, note = ""): OutputFileErrors => ({
  exists: (cause) =>
    new ManifestFileError(fileMessage(file, what, `already exists (use --force to overwrite)${note}`), { cause }),
  noDirectory: (directory, cause) => noDirectoryError(what, file, directory, cause, note),
  failed: (cause, operation, left) =>
    new ManifestFileError(
      fileMessage(
        file,
        what,
        `could not be ${operation === "check" ? "looked up" : "written"} (${fileErrorCause(cause, operation)})${leftFileNote(left)}${note}`,
      ),
      { cause },
    ),
  notAFile: (found) => new ManifestFileError(fileMessage(file, what, `expected a regular file, found ${found}${note}`)),
});

const refuseExisting = (file: string, force: boolean | undefined, what: string) =>
  refuseExistingFile(file, force === true, fileErrors(what, file));

const writeFileSafely = (
  file: string,
  content: string,
  mode: number,
  force: boolean | undefined,
  what: string,
  note?: string,
) => writeFileAtomically(file, content, { mode, replace: force === true }, fileErrors(what, file, note));

export async function keygenCommand(options: {
  outPrivate: string;
  outPublic: string;
  alg: ManifestAlg;
  force?: boolean;
  json?: boolean;
}): Promise<void> {
  if (resolve(options.outPrivate) === resolve(options.outPublic)) {
    throw new ManifestFileError(
      `--out-private and --out-public: expected two files, found the same path ${shellWord(options.outPublic)} (the public key would replace the private one)`,
    );
  }
  await refuseExisting(options.outPrivate, options.force, "--out-private");
  await refuseExisting(options.outPublic, options.force, "--out-public");
  const pair = await generateManifestSigningKey(options.alg);
  await writeFileSafely(
    options.outPrivate,
    `${JSON.stringify(pair.privateJwk, null, 2)}\n`,
    0o600,
    options.force,
    "--out-private",
  );
  await writeFileSafely(
    options.outPublic,
    `${JSON.stringify(pair.publicJwk, null, 2)}\n`,
    0o644,
    options.force,
    "--out-public",
    // Left in place (a retry without --force is refused on it), and said so: removing it by name could
    // remove a file another process put there since. With --force, what --out-public holds is not
    // known: a public key from before (the rename failed or never came), none, or the new one (only
    // the directory's fsync failed, after the rename): said as such, not looked up (a look could be
    // stale by the time the write fails), and a second run with --force replaces both.
    options.force === true
      ? `; the private key was written to ${shellWord(options.outPrivate)}, and ${shellWord(options.outPublic)} ` +
          "is not known to hold its public key (one there from before does not match it): " +
          "run manifest keygen again with --force"
      : `; the private key was written to ${shellWord(options.outPrivate)}: remove it or pass --force`,
  );
  const result = {
    alg: pair.alg,
    thumbprint: pair.thumbprint,
    privateKeyFile: options.outPrivate,
    publicKeyFile: options.outPublic,
  };
  if (options.json) {
    printJson(result);
    return;
  }
  process.stdout.write(
    `generated ${pair.alg} manifest-signing key ${pair.thumbprint}\n` +
      `  private key: ${shellWord(options.outPrivate)} (mode 0600; keep it offline)\n` +
      `  public key:  ${shellWord(options.outPublic)}\n`,
  );
}

export async function signCommand(
  input: string,
  output: string,
  options: { key: string; force?: boolean; json?: boolean },
): Promise<void> {
  await refuseExisting(output, options.force, "output");
  const manifest = await parseDeployableManifest(input);
  const key = await readJwk(options.key, "--key");
  const jws = await signManifest(manifest, key, `--key ${options.key}`);
  // No trailing newline: the file holds exactly the bytes the manifest digest is taken over.
  await writeFileSafely(output, jws, 0o644, options.force, "output");
  const { digest, signerKeyThumbprint } = await verifyManifest(jws, [stripPrivate(key)]);
  const result = { file: output, service: manifest.service, digest, signerKeyThumbprint };
  if (options.json) {
    printJson(result);
    return;
  }
  process.stdout.write(
    `signed ${shellWord(output)}\n  service:         ${manifest.service.name}@${manifest.service.version}\n` +
      `  signer:          ${signerKeyThumbprint}\n  manifest digest: ${digest}\n`,
  );
}

/** The public part of a private JWK: its private members dropped, and its key_ops (a private key's "sign"). */
function stripPrivate(jwk: JWK): JWK {
  const { d: _d, p: _p, q: _q, dp: _dp, dq: _dq, qi: _qi, key_ops: _ops, ...rest } = jwk;
  return rest;
}

export async function verifyCommand(file: string, options: { key: string[]; json?: boolean }): Promise<void> {
  const keys: JWK[] = [];
  // Checked here too, so that an error names the file rather than the key's place in the list.
  for (const keyFile of options.key) keys.push(checkTrustedJwk(await readJwk(keyFile, "--key"), `--key ${keyFile}`));
  const jws = (await readText(file, "signed manifest", MANIFEST_FILE_BOUND)).trim();
  const verified = await verifyManifest(jws, keys);
  const { manifest } = verified;
  const result = {
    service: manifest.service,
    model: { file: manifest.model.file, sha256: manifest.model.sha256 },
    signerKeyThumbprint: verified.signerKeyThumbprint,
    digest: verified.digest,
  };
  if (options.json) {
    printJson(result);
    return;
  }
  process.stdout.write(
    `manifest OK: signature verified, schema valid\n` +
      `  service:         ${manifest.service.name}@${manifest.service.version}\n` +
      `  model:           ${manifest.model.file} sha256:${manifest.model.sha256}\n` +
      `  signer:          ${verified.signerKeyThumbprint}\n` +
      `  manifest digest: ${verified.digest}\n`,
  );
}

/**
 * The schema, then what the enclave checks at boot beyond it: that every pattern rule compiles on
 * RE2 with its JavaScript meaning and within its size limit, and that the pattern rules together fit
 * the per-request RE2 budget (a manifest the enclave would refuse is refused here, before it is
 * signed or deployed).
 */
async function parseDeployableManifest(file: string): Promise<Manifest> {
  const manifest = parseManifest(await readJson(file, "manifest"));
  const { compileRequestPolicy } = await import("../enclave/pipeline/policy.ts");
  const { PolicyPatternBudgetError, PolicyPatternUnsafeError } = await import("../enclave/pipeline/errors.ts");
  try {
    compileRequestPolicy(manifest.requestPolicy);
  } catch (error) {
    if (error instanceof PolicyPatternBudgetError) {
      throw new ManifestSchemaError([{ path: "requestPolicy.rules", kind: "invalid", message: error.message }]);
    }
    if (!(error instanceof PolicyPatternUnsafeError)) throw error;
    const index = manifest.requestPolicy.rules.findIndex((r) => r.id === error.ruleId);
    throw new ManifestSchemaError([
      { path: `requestPolicy.rules.${index}.pattern`, kind: "invalid", message: error.message },
    ]);
  }
  return manifest;
}

export async function checkCommand(file: string, options: { json?: boolean }): Promise<void> {
  try {
    const manifest = await parseDeployableManifest(file);
    const valid = `schema valid (${manifest.service.name}@${manifest.service.version})`;
    // The path as error lines name it (fileMessage): quoted when it holds a line feed or an ESC.
    if (options.json) printJson({ valid: true, service: manifest.service });
    else process.stdout.write(`${fileMessage(file, "manifest", valid)}\n`);
  } catch (error) {
    if (error instanceof ManifestSchemaError && options.json) {
      printJson({ valid: false, code: error.code, issues: error.issues });
      process.exitCode = 2; // bad input, as without --json
      return;
    }
    // The error line names the first violation and only the paths of the others: each one's
    // expected and found value, one a line, so that the file is fixed in one go.
    if (error instanceof ManifestSchemaError && error.issues.length > 1) {
      const lines = error.issues.map((issue) => `  ${issue.message}\n`).join("");
      process.stdout.write(`${fileMessage(file, "manifest", `${error.issues.length} violations`)}\n${lines}`);
    }
    throw error;
  }
}
