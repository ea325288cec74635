/**
 * The key broker's configuration file (`cloister kbs serve --config F`):
 *
 *   { "version": 1,
 *     "keys": [ { "keyFile": "keys/tiny-v1.jwk", "policy": "release-policy.json" } ] }
 *
 * `keyFile`: a model key JWK (`cloister kbs keygen`), whose `kid` is the key id; it must be a
 * private regular file (no group or other access, not a symbolic link), like an SSH key.
 * `policy`: the release policy, a client-policy file (path) or the same JSON inline. Relative paths
 * are relative to the configuration file. `limits` (optional): the HTTP API's limits per client
 * address, `{challengesPerMinute, releasesPerMinute, maxClients}`, each optional (defaults:
 * CLIENT_LIMITS). Errors name the field, the expected and the found value.
 */
import { dirname, resolve } from "node:path";
import { z } from "zod";
import { ClientError } from "../../client/errors.ts";
import { parseClientPolicy } from "../../client/policy.ts";
import { expectedOneOf, formatIssue } from "../../manifests/issues.ts";
import { modelKeyFromJwk } from "../../models/sealed.ts";
import { fileMessage, type InputBound } from "../bounded-read.ts";
import { parseJsonText } from "../json-text.ts";
import { type BrokerKey, CLIENT_LIMITS } from "./broker.ts";
import { BrokerConfigError, readCheckedFile, readPrivateKeyFile } from "./key-file.ts";

/**
 * Most release attempts the limits may admit in one minute (maxClients × releasesPerMinute): the
 * broker keeps every challenge they spend for a challenge lifetime (about 175 bytes each, with the
 * previous lifetime's), so this bounds that memory (about 350 MB); the limiter's table of counted
 * addresses takes about 200 bytes each more (maxClients). The default admits 100 000.
 */
export const MAX_RELEASES_ADMITTED_PER_MINUTE = 1_000_000;

/** The HTTP API's limits per client address (server.ts, BrokerAppOptions). */
export interface BrokerLimits {
  readonly challengesPerMinute: number;
  readonly releasesPerMinute: number;
  readonly maxClients: number;
}

const LimitsSchema = z.strictObject({
  challengesPerMinute: z.int().min(1).max(100_000).optional(),
  releasesPerMinute: z.int().min(1).max(100_000).optional(),
  maxClients: z.int().min(1).max(1_000_000).optional(),
});

const ConfigSchema = z.strictObject({
  version: z.literal(1),
  keys: z
    .array(
      z.strictObject({
        keyFile: z.string().min(1),
        policy: z.union([z.string().min(1), z.record(z.string(), z.unknown())], {
          error: expectedOneOf(["a client policy file's path", "a client policy object"]),
        }),
      }),
    )
    .min(1),
  limits: LimitsSchema.optional(),
});

/** A broker configuration: its keys (each with its release policy) and its limits per client. */
export interface BrokerConfig {
  readonly keys: BrokerKey[];
  readonly limits: BrokerLimits;
}

/**
 * The configuration and a release policy file, read to 1 MiB each, as `--policy` is: a release
 * policy is a client policy (a few KiB; 1 MiB holds some 10,000 allow-list entries), and the
 * configuration lists keys, each with a path or such a policy inline.
 */
const CONFIG_FILE_BOUND: InputBound = {
  bytes: 1024 * 1024,
  expected: "a broker configuration or a release policy, a few KiB",
};

/**
 * Reads a configuration or policy file that nobody but its owner can change: whoever can write a
 * release policy decides who gets the key (e.g. by trusting the simulator).
 */
function readProtectedFile(path: string, field: string, uid: number | undefined): Promise<string> {
  return readCheckedFile(
    path,
    field,
    {
      forbidden: 0o022,
      noLinks: false,
      fix: (mode, path) => `writable by group or others (mode ${mode}); run chmod go-w ${path}`,
      chownRoot: true,
      bound: CONFIG_FILE_BOUND,
      held: "which enclaves get the model keys",
    },
    uid,
  );
}

/** `uid`: the user the files must belong to (default: this process's; root's are accepted too). */
export async function loadBrokerConfig(path: string, options: { uid?: number } = {}): Promise<BrokerConfig> {
  const uid = "uid" in options ? options.uid : process.getuid?.();
  const text = await readProtectedFile(path, "--config", uid);
  let json: unknown;
  try {
    json = parseJsonText(text);
  } catch (error) {
    // parseJsonText's message says where the text went wrong, never what it holds.
    throw new BrokerConfigError(fileMessage(path, "--config", (error as Error).message));
  }
  const parsed = ConfigSchema.safeParse(json);
  if (!parsed.success) {
    const issue = parsed.error.issues[0] as z.core.$ZodIssue;
    throw new BrokerConfigError(`broker config ${formatIssue(issue, json, { root: "(root)" })}`);
  }
  const limits: BrokerLimits = {
    challengesPerMinute: parsed.data.limits?.challengesPerMinute ?? CLIENT_LIMITS.challengesPerMinute,
    releasesPerMinute: parsed.data.limits?.releasesPerMinute ?? CLIENT_LIMITS.releasesPerMinute,
    maxClients: parsed.data.limits?.maxClients ?? CLIENT_LIMITS.maxClients,
  };
  const perMinute = limits.maxClients * limits.releasesPerMinute;
  if (perMinute > MAX_RELEASES_ADMITTED_PER_MINUTE) {
    throw new BrokerConfigError(
      `broker config limits: maxClients × releasesPerMinute expected at most ${MAX_RELEASES_ADMITTED_PER_MINUTE} (the broker keeps every challenge they spend for a challenge lifetime), found ${limits.maxClients} × ${limits.releasesPerMinute} = ${perMinute}`,
    );
  }
  const base = dirname(resolve(path));
  const keys: BrokerKey[] = [];
  const read: Uint8Array[] = [];
  try {
    const seen = new Set<string>();
    for (const [i, entry] of parsed.data.keys.entries()) {
      const keyPath = resolve(base, entry.keyFile);
      const keyText = await readPrivateKeyFile(keyPath, `keys.${i}.keyFile`, { uid });
      let modelKey: ReturnType<typeof modelKeyFromJwk>;
      try {
        modelKey = modelKeyFromJwk(parseJsonText(keyText), `keys.${i}.keyFile`);
      } catch (error) {
        throw new BrokerConfigError(
          error instanceof SyntaxError
            ? fileMessage(keyPath, `keys.${i}.keyFile`, error.message)
            : (error as Error).message,
        );
      }
      read.push(modelKey.key);
      if (seen.has(modelKey.keyId))
        throw new BrokerConfigError(`keys.${i}: key id "${modelKey.keyId}" is listed twice`);
      seen.add(modelKey.keyId);
      let policyValue: unknown = entry.policy;
      if (typeof entry.policy === "string") {
        const policyPath = resolve(base, entry.policy);
        policyValue = await readProtectedFile(policyPath, `keys.${i}.policy`, uid);
      }
      let policy: ReturnType<typeof parseClientPolicy>;
      try {
        policy = parseClientPolicy(policyValue);
      } catch (error) {
        const message = error instanceof ClientError ? error.message.replace(/^client policy: /, "") : String(error);
        throw new BrokerConfigError(`keys.${i}.policy: ${message}`);
      }
      keys.push({ keyId: modelKey.keyId, key: modelKey.key, policy });
    }
  } catch (error) {
    // A config refused part way: the keys read before (and the one refused) serve nothing.
    for (const key of read) key.fill(0);
    throw error;
  }
  return { keys, limits };
}
