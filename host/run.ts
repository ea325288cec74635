/** Implementation of `cloister host`. */
import { resolve } from "node:path";
import type { z } from "zod";
import { fileMessage, type InputBound } from "../attestation/bounded-read.ts";
import { jsonTextRefusal, parseJsonText } from "../attestation/json-text.ts";
import { stringifyJsonVisibly } from "../attestation/untrusted-text.ts";
import { readTrustFile } from "../client/cli/bounded-file.ts";
import { listenUsageError, optionsUsageError, UsageError } from "../client/cli/output.ts";
import { visibleOnOneLine } from "../client/cli/terminal-text.ts";
import { parseCorsOrigin } from "../client/cors-origin.ts";
import { closeOnSignal, handOverSignals, type RunningServer, stopDuringBoot } from "../enclave/http.ts";
import { formatIssue } from "../manifests/issues.ts";
import { jsonLinesAccessLog } from "./access-log.ts";
import { AuditDirError } from "./audit-collector.ts";
import type { HostCommandOptions } from "./cli.ts";
import { enclaveUrlFault, enclaveUrlRepeat } from "./enclave-url.ts";
import { ApiKeyStore, apiKeysFileSchema } from "./identity.ts";
import { startHost } from "./server.ts";

/**
 * An --api-keys file, read to 16 MiB: no limit on how many keys a host holds exists, and one key's
 * entry (identity.ts: an id, a project of at most 128 characters, a SHA-256, its permissions and
 * rate) is some 400 bytes at its largest, so 16 MiB holds some 40,000 keys.
 */
const API_KEYS_FILE_BOUND: InputBound = {
  bytes: 16 * 1024 * 1024,
  expected: "the host's API keys, some 40,000 at their largest",
};

export async function loadApiKeys(path: string): Promise<ApiKeyStore> {
  // Whoever could change the file would choose the keys (and their permissions) this host accepts.
  const text = await readTrustFile(path, "--api-keys", API_KEYS_FILE_BOUND, "which API keys this host accepts");
  let json: unknown;
  try {
    // parseJsonText: a second "keys" (or "sha256", "project") would silently replace the first.
    json = parseJsonText(text);
  } catch (error) {
    throw new UsageError(fileMessage(path, "--api-keys", jsonTextRefusal(error, "a JSON object of API keys")));
  }
  const parsed = apiKeysFileSchema.safeParse(json);
  if (!parsed.success) {
    const issue = parsed.error.issues[0] as z.core.$ZodIssue;
    throw new UsageError(`--api-keys: ${formatIssue(issue, json, { root: "(root)" })}`);
  }
  return new ApiKeyStore(parsed.data);
}

export async function runHostCommand(options: HostCommandOptions): Promise<void> {
  // Signals are handled from the start. The start-up stages nothing (a pool's first read of its
  // members' documents may take up to the upstream timeout, 30 s): a stop during it exits at once,
  // with 0 as a stop after start-up, and says so.
  const endBootStop = stopDuringBoot((reason) => {
    process.stderr.write(`cloister host: stopped (${reason} during start-up) before serving\n`);
    process.exit(0);
  });
  let server: RunningServer;
  try {
    server = await startHostCommand(options);
  } catch (error) {
    endBootStop();
    throw error;
  }
  // Signals are handled by closeOnSignal from here (its listeners added before the start-up's are
  // removed: handOverSignals), before "ready" is said: a supervisor may stop it the moment it reads that.
  const closed = handOverSignals(endBootStop, () => closeOnSignal(server, { graceMs: options.shutdownGraceMs }));
  // One machine-readable line on stdout for supervisors (cloister up), then the access log on stderr.
  // It names where the audit records go, as an absolute path: a mistyped --audit-dir shows at once.
  // That path is the operator's text, and may hold characters a terminal acts on or shows as other
  // text (U+202E, U+2028): written as \u escapes, the same JSON value.
  const ready = {
    event: "ready",
    url: server.url,
    enclaves: options.enclaveUrl.length,
    auditDir: resolve(options.auditDir),
  };
  process.stdout.write(`${stringifyJsonVisibly(ready)}\n`);
  await closed;
}

/** The options checked, the API keys read, the audit directory made, a pool's members read, listening. */
async function startHostCommand(options: HostCommandOptions): Promise<RunningServer> {
  // One key's share cannot be more than all the forwarding slots there are.
  if (options.maxInFlightPerKey !== undefined && options.maxInFlightPerKey > options.maxInFlight) {
    throw optionsUsageError(
      `--max-in-flight-per-key ${options.maxInFlightPerKey}: expected at most --max-in-flight (${options.maxInFlight}), the requests the host forwards at once in all`,
    );
  }
  for (const url of options.enclaveUrl) {
    const fault = enclaveUrlFault(url);
    if (fault !== null) throw optionsUsageError(`--enclave-url: ${fault}`);
  }
  // Compared as URLs, as the pool does (enclaveUrlRepeat); two names for one address are not detected
  // (their collectors share the boot's log file, so each audit record is still stored once).
  const repeat = enclaveUrlRepeat(options.enclaveUrl);
  if (repeat !== null) throw optionsUsageError(`--enclave-url: ${repeat}`);
  for (const origin of options.corsOrigin) {
    try {
      parseCorsOrigin(origin);
    } catch (error) {
      throw optionsUsageError(`--cors-origin: ${(error as Error).message}`);
    }
  }
  return startHost({
    enclaveUrls: options.enclaveUrl,
    poolRefreshMs: options.poolRefreshMs,
    apiKeys: await loadApiKeys(options.apiKeys),
    hostname: options.listen,
    port: options.port,
    accessLog: jsonLinesAccessLog(),
    auditDir: options.auditDir,
    // A message may carry text from outside the host (an error's message): one line, each character
    // a terminal acts on or shows as other text escaped. A pool member's reason is fixed words.
    onError: (message) => process.stderr.write(`cloister host: ${visibleOnOneLine(message)}\n`),
    corsOrigins: options.corsOrigin,
    limits: {
      maxInFlight: options.maxInFlight,
      maxQueued: options.maxQueued,
      ...(options.maxInFlightPerKey === undefined ? {} : { maxInFlightPerKey: options.maxInFlightPerKey }),
      maxRequestBytes: options.maxRequestBytes,
    },
    maxConnections: options.maxConnections,
    keepAliveTimeoutMs: options.keepAliveTimeout * 1000,
  }).catch((error: unknown) => {
    // An audit dir it cannot store records in (checked first), a port in use, or a --listen address
    // that does not resolve: bad input naming the option.
    throw error instanceof AuditDirError
      ? new UsageError(fileMessage(error.dir, "--audit-dir", error.reason), { cause: error })
      : listenUsageError(error);
  });
}
