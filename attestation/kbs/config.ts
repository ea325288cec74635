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
import { constants } from "node:fs";
import { open } from "node:fs/promises";
import { dirname, resolve } from "node:path";
import { z } from "zod";
import { type InputBound, readHandleText } from "../../client/cli/bounded-file.ts";
import { ClientError } from "../../client/errors.ts";
import { parseClientPolicy } from "../../client/policy.ts";
import { expectedOneOf, formatIssue } from "../../manifests/issues.ts";
import { modelKeyFromJwk } from "../../models/sealed.ts";
import { parseJsonText } from "../json-text.ts";
import { type BrokerKey, CLIENT_LIMITS } from "./broker.ts";

export class BrokerConfigError extends Error {
  readonly code = "KBS_CONFIG_INVALID";
}

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
 * A model key file, read to 64 KiB: one 256-bit key as a JWK (`cloister kbs keygen`), a few hundred
 * bytes with every optional member.
 */
const KEY_FILE_BOUND: InputBound = { bytes: 64 * 1024, expected: "one model key JWK, a few hundred bytes" };

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
 * Opens `path` and checks, on the open file itself (no window between the check and the read): a
 * regular file, owned by this user or root (anyone else who owns it can rewrite it), and none of
 * the `forbidden` mode bits. Key files are refused as links (`O_NOFOLLOW`); configuration and policy
 * files may be links, and the file they point to is what is checked. Then read to `bound` and as
 * strict UTF-8 (readHandleText): a larger file or a byte that is not UTF-8 is a BrokerConfigError
 * naming the field, the file and the bound or the byte.
 */
async function readCheckedFile(
  path: string,
  field: string,
  rule: {
    readonly forbidden: number;
    readonly noLinks: boolean;
    readonly fix: (mode: string, path: string) => string;
    readonly bound: InputBound;
    /** Words a file that cannot be opened or read (a link aside); by default, BrokerConfigError naming its errno. */
    readonly cannotRead?: ((error: unknown) => Error) | undefined;
  },
  uid: number | undefined,
): Promise<string> {
  /** The file could not be opened, examined or read (ENOENT, EACCES, EIO…): named with its errno, the error kept as cause. */
  const unreadable = (error: unknown): Error => {
    const code = (error as NodeJS.ErrnoException).code;
    // Under O_NOFOLLOW, ELOOP is the link refused; with links followed, it is a loop of links.
    if (code === "ELOOP" && rule.noLinks) {
      return new BrokerConfigError(`${field}: "${path}" is a symbolic link; expected the key file itself`, {
        cause: error,
      });
    }
    if (rule.cannotRead !== undefined) return rule.cannotRead(error);
    return new BrokerConfigError(`${field}: cannot read "${path}" (${code ?? "error"})`, { cause: error });
  };
  let handle: Awaited<ReturnType<typeof open>>;
  try {
    // Non-blocking: a FIFO is opened at once and refused below as not a regular file, where a
    // blocking open would wait, silently, for a writer (O_NONBLOCK changes nothing for a file).
    handle = await open(path, constants.O_RDONLY | constants.O_NONBLOCK | (rule.noLinks ? constants.O_NOFOLLOW : 0));
  } catch (error) {
    throw unreadable(error);
  }
  try {
    const info = await handle.stat().catch((error: unknown) => {
      throw unreadable(error);
    });
    if (!info.isFile()) throw new BrokerConfigError(`${field}: "${path}" is not a regular file`);
    if (uid !== undefined && info.uid !== uid && info.uid !== 0) {
      throw new BrokerConfigError(
        `${field}: "${path}" is owned by uid ${info.uid}; expected this user's (uid ${uid}) or root's, since its owner can rewrite it`,
      );
    }
    if ((info.mode & rule.forbidden) !== 0) {
      throw new BrokerConfigError(`${field}: "${path}" ${rule.fix(`0${(info.mode & 0o777).toString(8)}`, path)}`);
    }
    // Worded `field: "path": …`, naming the file as the refusals above do (not the CLI's `--option path: …`).
    const refuse = (message: string) => new BrokerConfigError(message);
    return await readHandleText(handle, `"${path}"`, `${field}:`, rule.bound, refuse).catch((error: unknown) => {
      throw error instanceof BrokerConfigError ? error : unreadable(error);
    });
  } finally {
    await handle.close();
  }
}

/** How readPrivateKeyFile reads: whose file, to what bound, worded how, and whether a link is followed. */
export interface PrivateKeyFileOptions {
  /** The user the file must belong to (default: this process's; root's is accepted too). */
  readonly uid?: number | undefined;
  /** Default: one model key JWK's bound. */
  readonly bound?: InputBound;
  /** Words a file that cannot be opened or read (a link aside); by default, BrokerConfigError naming its errno. */
  readonly cannotRead?: ((error: unknown) => Error) | undefined;
  /**
   * Follow a link and check its target (mode, owner, a regular file), as ssh does for an identity
   * file: a client's API key mounted from a Kubernetes secret volume is a link. Default false: the
   * broker's keys and what cloister up wrote itself must be the files themselves.
   */
  readonly followLinks?: boolean;
}

/**
 * Reads a key file that only its owner can read; refuses shared files (as ssh refuses a loose
 * private key) and, unless `followLinks`, links. Also what `cloister up` reads the secrets of an
 * earlier run with, and the client its API key file, so all say "mode too open" the same way.
 */
export function readPrivateKeyFile(path: string, field: string, options: PrivateKeyFileOptions = {}): Promise<string> {
  return readCheckedFile(
    path,
    field,
    {
      forbidden: 0o077,
      noLinks: options.followLinks !== true,
      fix: (mode, path) => `mode expected 0600 (owner only), found ${mode}; run chmod 600 "${path}"`,
      bound: options.bound ?? KEY_FILE_BOUND,
      cannotRead: options.cannotRead,
    },
    "uid" in options ? options.uid : process.getuid?.(),
  );
}

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
      fix: (mode, path) => `is writable by group or others (mode ${mode}); run chmod go-w "${path}"`,
      bound: CONFIG_FILE_BOUND,
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
    throw new BrokerConfigError(`--config: "${path}": ${(error as Error).message}`);
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
          error instanceof SyntaxError ? `keys.${i}.keyFile: "${keyPath}": ${error.message}` : (error as Error).message,
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
