/** Implementations of `cloister kbs serve|keygen|check` and `cloister model seal`. */
import { basename } from "node:path";
import {
  listenUsageError,
  type OutputFileErrors,
  optionsUsageError,
  outputFileErrors,
  printJson,
  refuseExistingFile,
  UsageError,
  writeFileAtomically,
} from "../../client/cli/output.ts";
import { isLoopbackAddress, shownHost } from "../../client/loopback.ts";
import { closeOnSignal, DEFAULT_SHUTDOWN_GRACE_MS, type RunningServer } from "../../enclave/http.ts";
import { MODEL_FILE_PATTERN, MODEL_FILE_RULE } from "../../manifests/schema.ts";
import { GgufFormatError, printableField } from "../../models/errors.ts";
import { summarizeModelHandle } from "../../models/inspect.ts";
import { KEY_ID_PATTERN, KEY_ID_RULE } from "../../models/key-id.ts";
import { generateModelKey, modelKeyFromJwk, modelKeyToJwk, sealModelFile } from "../../models/sealed.ts";
import { fileMessage, shellWord } from "../bounded-read.ts";
import { parseJsonText } from "../json-text.ts";
import { stringifyJsonVisibly } from "../untrusted-text.ts";
import { KeyBroker, releaseRisks } from "./broker.ts";
import type { KbsServeOptions } from "./cli.ts";
import { type BrokerConfig, loadBrokerConfig } from "./config.ts";
import { BrokerConfigError, readPrivateKeyFile } from "./key-file.ts";
import { type BrokerLogEntry, createBrokerApp, listenBroker } from "./server.ts";

async function loadConfig(path: string) {
  try {
    return await loadBrokerConfig(path);
  } catch (error) {
    if (error instanceof BrokerConfigError) throw new UsageError(error.message, { cause: error });
    throw error;
  }
}

/**
 * The broker `kbs serve` runs, for the keys and limits of its config; the broker keeps its own
 * copy of each key, and the keys given are zeroed whether the broker is built or refused. Where a
 * key that trusts the simulator may be served is runKbsServe's one rule, on the address bound.
 */
export function serveBroker({ keys, limits }: BrokerConfig): {
  readonly broker: KeyBroker;
  readonly simulatorKeyId: string | null;
} {
  let broker: KeyBroker;
  try {
    // Room for every challenge the configured limits admit in a lifetime (createBrokerApp checks).
    broker = new KeyBroker(keys, { clientLimits: limits });
  } finally {
    // Built, the broker keeps its own copy; refused (a key it will not take), none is needed.
    for (const k of keys) k.key.fill(0);
  }
  for (const k of keys) {
    for (const risk of releaseRisks(k.policy))
      process.stderr.write(`cloister kbs: WARNING: key "${k.keyId}": ${risk}\n`);
  }
  const simulatorKey = keys.find((k) => k.policy.attestation.trustSimulator);
  return { broker, simulatorKeyId: simulatorKey?.keyId ?? null };
}

/**
 * A line of `kbs serve`'s log on stderr: one JSON object, untrusted text in it (a refusal's reason
 * names what a client's evidence held) with its invisible characters escaped for a terminal.
 */
export function brokerLogLine(entry: BrokerLogEntry): string {
  return `${stringifyJsonVisibly(entry)}\n`;
}

/**
 * `kbs serve`. `listenFirst` is listenBroker's (enclave/http.ts listenBeforeServing), or a test's
 * (one that reports another bound address).
 */
export async function runKbsServe(
  options: KbsServeOptions,
  listenFirst?: Parameters<typeof listenBroker>[4],
): Promise<void> {
  const config = await loadConfig(options.config);
  const { broker, simulatorKeyId } = serveBroker(config);
  const log = (entry: BrokerLogEntry) => process.stderr.write(brokerLogLine(entry));
  // Anyone can forge simulated evidence: a key released to the simulator is as good as public to
  // whoever reaches the broker, so such keys stay on loopback unless the operator says otherwise.
  // One rule, on the address bound: --listen's text does not say it (a name such as localhost is
  // bound where it resolves), and an address off loopback (0.0.0.0) is bound as given. The app is
  // built once that is known (listenBroker refuses every request until then); refused, the server
  // stops listening.
  const appFor = (bound: RunningServer) => {
    const onLoopback = isLoopbackAddress(bound.address);
    if (simulatorKeyId !== null && !onLoopback && options.allowSimulatorOnNetwork !== true) {
      // Bad input of the command line: it ends as every such error does, --help named.
      throw optionsUsageError(
        `--listen ${shownHost(options.listen)}: expected a loopback address (127.0.0.0/8 or ::1): key "${simulatorKeyId}" has a release policy that trusts the INSECURE simulator, so it is served on loopback only; found ${shownHost(bound.address)}, the address it was bound to: listen on 127.0.0.1, or pass --allow-simulator-on-network for a development setup across machines`,
      );
    }
    // On loopback, a simulator key is kept from pages in this machine's browser too (DNS rebinding);
    // allowed on the network, clients there name the host as they reach it.
    return createBrokerApp(broker, log, { ...config.limits, loopbackHostOnly: simulatorKeyId !== null && onLoopback });
  };
  const server = await listenBroker(appFor, log, options.listen, options.port, listenFirst).catch((error: unknown) => {
    // A port in use, or a --listen address that does not resolve: bad input naming the option.
    throw listenUsageError(error);
  });
  // Signals are handled before "ready" is said: a supervisor may stop it the moment it reads that.
  const closed = closeOnSignal(server, { graceMs: DEFAULT_SHUTDOWN_GRACE_MS });
  // One machine-readable line on stdout for supervisors (cloister up); key ids are public.
  process.stdout.write(`${JSON.stringify({ event: "ready", url: server.url, keys: broker.keyIds })}\n`);
  await closed;
}

export async function runKbsKeygen(options: { keyId: string; out: string }): Promise<void> {
  if (!KEY_ID_PATTERN.test(options.keyId)) {
    throw optionsUsageError(`--key-id expects ${KEY_ID_RULE}, found "${options.keyId}"`);
  }
  // As every output file's (outputFileErrors), but for an existing one: why a key is never replaced.
  const errors: OutputFileErrors = {
    ...outputFileErrors(options.out, "--out", "never"),
    exists: (cause) =>
      new UsageError(
        fileMessage(
          options.out,
          "--out",
          "already exists (EEXIST); a model key is never overwritten (it would make sealed models unreadable)",
        ),
        { cause },
      ),
  };
  // An existing --out is refused before a key is made for nothing; the link into place (EEXIST)
  // stays the deciding check: a file may appear at --out in between.
  await refuseExistingFile(options.out, false, errors);
  const key = generateModelKey(options.keyId);
  // Whole or not at all (writeFileAtomically): a failed write leaves nothing at --out for the next
  // run to be refused on (EEXIST), unless removing the key it linked there fails too (the error then
  // says so: leftFileNote); never over an existing file. The key's bytes are zeroed in every case
  // (its base64url text in the JWK string cannot be: a string is never zeroed).
  try {
    await writeFileAtomically(
      options.out,
      `${JSON.stringify(modelKeyToJwk(key))}\n`,
      { mode: 0o600, replace: false },
      errors,
    );
  } finally {
    key.key.fill(0);
  }
  // The path as the error lines name it: quoted (shellWord) when it holds a line feed or an ESC.
  process.stdout.write(`model key "${options.keyId}" written to ${shellWord(options.out)} (mode 0600)\n`);
}

export async function runKbsCheck(options: { config: string; json?: boolean }): Promise<void> {
  const { keys, limits } = await loadConfig(options.config);
  // Only the policies are shown: the keys are zeroed at once.
  for (const k of keys) k.key.fill(0);
  const summary = keys.map((k) => ({
    keyId: k.keyId,
    acceptedEvidence: k.policy.acceptedEvidence,
    trustSimulator: k.policy.attestation.trustSimulator,
    allowedModelDigests: k.policy.manifest.allowedModelDigests,
    trustedSigners: k.policy.manifest.trustedSigners.length,
    // The launch measurements the key is released to, as the policy holds them (an allow-list or a
    // skip; null: that TEE's evidence is not accepted): what an upgrade checks its new image against.
    measurements: {
      snp: k.policy.attestation.snp?.measurements ?? null,
      tdx:
        k.policy.attestation.tdx === null
          ? null
          : { mrtd: k.policy.attestation.tdx.mrtd, rtmrs: k.policy.attestation.tdx.rtmrs },
    },
    risks: releaseRisks(k.policy),
  }));
  if (options.json === true) {
    printJson({ keys: summary, limits });
    return;
  }
  for (const k of summary) {
    const models = shownList(k.allowedModelDigests);
    process.stdout.write(
      `key "${k.keyId}": released to ${k.acceptedEvidence.join(", ")}${k.trustSimulator ? " (INSECURE: the simulator is trusted)" : ""}; models ${models}; ${k.trustedSigners} manifest signer(s)\n`,
    );
    for (const line of measurementLines(k.measurements)) process.stdout.write(`  ${line}\n`);
    for (const risk of k.risks) process.stdout.write(`  WARNING: ${risk}\n`);
  }
  process.stdout.write(
    `limits per client address: ${limits.challengesPerMinute} challenges and ${limits.releasesPerMinute} release attempts a minute, at most ${limits.maxClients} addresses at once\n` +
      // kbs serve reads its files once, at start: what is checked here is not what one running serves.
      "a running cloister kbs serve keeps what it read at its start: restart it to use these files\n",
  );
}

type Pinned = string | { readonly skip: { readonly reason: string } };

const shownPinned = (value: Pinned) => (typeof value === "string" ? value : `any (skipped: ${value.skip.reason})`);
const shownList = (value: readonly string[] | Exclude<Pinned, string>) =>
  Array.isArray(value) ? value.join(", ") : shownPinned(value as Exclude<Pinned, string>);

/** `kbs check`'s lines for a key's launch measurements, per TEE whose evidence the key is released to. */
function measurementLines(m: {
  snp: readonly string[] | Exclude<Pinned, string> | null;
  tdx: {
    mrtd: readonly string[] | Exclude<Pinned, string>;
    rtmrs: readonly Pinned[] | { readonly allowed: readonly (readonly Pinned[])[] };
  } | null;
}): string[] {
  const lines: string[] = [];
  if (m.snp !== null) lines.push(`SEV-SNP launch measurements: ${shownList(m.snp)}`);
  if (m.tdx !== null) {
    lines.push(`TDX MRTD: ${shownList(m.tdx.mrtd)}`);
    const sets = "allowed" in m.tdx.rtmrs ? m.tdx.rtmrs.allowed : [m.tdx.rtmrs];
    for (const set of sets) lines.push(`TDX RTMR0..3: [${set.map(shownPinned).join(", ")}]`);
  }
  return lines;
}

export async function runModelSeal(
  input: string,
  output: string,
  options: { key: string; json?: boolean; force?: boolean },
) {
  // The manifest's model.file is the sealed file's base name (the enclave shows it, allowModels rules
  // match it): a name the manifest refuses is refused here, before any work.
  const file = basename(output);
  if (!MODEL_FILE_PATTERN.test(file)) {
    throw optionsUsageError(
      fileMessage(
        output,
        "<out>",
        `expected a base name the manifest's model.file accepts (${MODEL_FILE_RULE}), found "${printableField(file)}"`,
      ),
    );
  }
  let keyText: string;
  try {
    keyText = await readPrivateKeyFile(options.key, "--key");
  } catch (error) {
    throw new UsageError((error as Error).message, { cause: error });
  }
  let key: ReturnType<typeof modelKeyFromJwk>;
  try {
    // parseJsonText: a second "k" would seal under a key a reader of the file does not see (and the
    // broker, which reads key files the same way, refuses); its messages never quote the text.
    key = modelKeyFromJwk(parseJsonText(keyText), "--key");
  } catch (error) {
    throw new UsageError(
      error instanceof SyntaxError ? fileMessage(options.key, "--key", error.message) : (error as Error).message,
      { cause: error },
    );
  }
  let info: Awaited<ReturnType<typeof sealModelFile>>;
  let parameters = 0;
  try {
    // A sealed file's digest is pinned by the manifest: replacing one is asked for, never silent.
    info = await sealModelFile(input, output, key, {
      overwrite: options.force === true,
      // What `cloister model inspect` counts, from the header of the file sealed, through the handle
      // it is sealed from (not a GGUF file: refused here, before anything is written).
      check: async (source) => {
        const summary = await summarizeModelHandle(source, input);
        parameters = summary.parameters;
        // The manifest's model.parameters is a positive safe integer: a GGUF file whose tensors hold
        // none (or more) is refused, a file's content as the other GGUF refusals are, before
        // anything is written, not printed as a model the manifest then refuses.
        if (!Number.isSafeInteger(parameters) || parameters < 1) {
          throw new GgufFormatError(
            "GGUF_BAD_COUNT",
            "tensor_count",
            8,
            `expected tensors of 1 to 2^53 - 1 parameters in all (what the manifest's model.parameters takes), found ${parameters} in ${summary.tensorCount} tensor(s)`,
          );
        }
      },
    });
  } finally {
    key.key.fill(0);
  }
  // The whole of the manifest's model, in the schema's order, to paste (chatWrapper is optional).
  const manifestModel = {
    file,
    sha256: info.sha256,
    sizeBytes: info.sizeBytes,
    parameters,
    sealedAtRest: true,
    keyId: info.keyId,
  };
  if (options.json === true) {
    printJson({ ...info, manifestModel });
    return;
  }
  process.stdout.write(
    `sealed ${shellWord(input)} (${info.plaintextSize} bytes, sha256 ${info.plaintextSha256}) into ${shellWord(output)} under key "${info.keyId}"\n` +
      `set in the manifest's model: ${JSON.stringify(manifestModel)}\n`,
  );
}
