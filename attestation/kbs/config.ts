/**
 * The key broker's configuration file (`cloister kbs serve --config F`):
 *
 *   { "version": 1,
 *     "keys": [ { "keyFile": "keys/tiny-v1.jwk", "policy": "release-policy.json" } ] }
 *
 * `keyFile`: a model key JWK (`cloister kbs keygen`), whose `kid` is the key id; it must be a
 * private regular file (no group or other access, not a symbolic link), like an SSH key.
 * `policy`: the release policy, a client-policy file (path) or the same JSON inline. Relative paths
 * are relative to the configuration file. Errors name the field, the expected and the found value.
 */
import { constants } from "node:fs";
import { lstat, open, readFile, realpath } from "node:fs/promises";
import { dirname, resolve } from "node:path";
import { z } from "zod";
import { ClientError } from "../../client/errors.ts";
import { parseClientPolicy } from "../../client/policy.ts";
import { modelKeyFromJwk } from "../../models/sealed.ts";
import type { BrokerKey } from "./broker.ts";

export class BrokerConfigError extends Error {
  readonly code = "KBS_CONFIG_INVALID";
}

const ConfigSchema = z.strictObject({
  version: z.literal(1),
  keys: z
    .array(
      z.strictObject({
        keyFile: z.string().min(1),
        policy: z.union([z.string().min(1), z.record(z.string(), z.unknown())]),
      }),
    )
    .min(1),
});

/** Reads a key file that only its owner can read; refuses links and shared files. */
export async function readPrivateKeyFile(path: string, field: string): Promise<string> {
  let handle: Awaited<ReturnType<typeof open>>;
  try {
    handle = await open(path, constants.O_RDONLY | constants.O_NOFOLLOW);
  } catch (error) {
    const code = (error as NodeJS.ErrnoException).code;
    throw new BrokerConfigError(
      code === "ELOOP"
        ? `${field}: "${path}" is a symbolic link; expected the key file itself`
        : `${field}: cannot read "${path}" (${code ?? "error"})`,
    );
  }
  try {
    const info = await handle.stat();
    if (!info.isFile()) throw new BrokerConfigError(`${field}: "${path}" is not a regular file`);
    if ((info.mode & 0o077) !== 0) {
      throw new BrokerConfigError(
        `${field}: "${path}" mode expected 0600 (owner only), found 0${(info.mode & 0o777).toString(8)}; run chmod 600`,
      );
    }
    return await handle.readFile("utf8");
  } finally {
    await handle.close();
  }
}

/**
 * Reads a configuration or policy file that nobody but its owner can change: whoever can write a
 * release policy decides who gets the key (e.g. by trusting the simulator).
 */
async function readProtectedFile(path: string, field: string): Promise<string> {
  const info = await lstat(path).catch((error: unknown) => {
    throw new BrokerConfigError(
      `${field}: cannot read "${path}" (${(error as NodeJS.ErrnoException).code ?? "error"})`,
    );
  });
  if (info.isSymbolicLink()) {
    // The link's target is checked instead: a link kept in a protected directory is fine.
    return readProtectedFile(await realpath(path), field);
  }
  if (!info.isFile()) throw new BrokerConfigError(`${field}: "${path}" is not a regular file`);
  if ((info.mode & 0o022) !== 0) {
    throw new BrokerConfigError(
      `${field}: "${path}" is writable by group or others (mode 0${(info.mode & 0o777).toString(8)}); run chmod go-w`,
    );
  }
  return readFile(path, "utf8");
}

export async function loadBrokerConfig(path: string): Promise<BrokerKey[]> {
  let json: unknown;
  try {
    json = JSON.parse(await readProtectedFile(path, "--config"));
  } catch (error) {
    if (error instanceof BrokerConfigError) throw error;
    throw new BrokerConfigError(`--config: "${path}" is not JSON`);
  }
  const parsed = ConfigSchema.safeParse(json);
  if (!parsed.success) {
    const issue = parsed.error.issues[0];
    throw new BrokerConfigError(`broker config ${issue?.path.join(".") || "(root)"}: ${issue?.message ?? "invalid"}`);
  }
  const base = dirname(resolve(path));
  const keys: BrokerKey[] = [];
  const seen = new Set<string>();
  for (const [i, entry] of parsed.data.keys.entries()) {
    const keyPath = resolve(base, entry.keyFile);
    const keyText = await readPrivateKeyFile(keyPath, `keys.${i}.keyFile`);
    let modelKey: ReturnType<typeof modelKeyFromJwk>;
    try {
      modelKey = modelKeyFromJwk(JSON.parse(keyText), `keys.${i}.keyFile`);
    } catch (error) {
      throw new BrokerConfigError(
        error instanceof SyntaxError ? `keys.${i}.keyFile: "${keyPath}" is not JSON` : (error as Error).message,
      );
    }
    if (seen.has(modelKey.keyId)) throw new BrokerConfigError(`keys.${i}: key id "${modelKey.keyId}" is listed twice`);
    seen.add(modelKey.keyId);
    let policyValue: unknown = entry.policy;
    if (typeof entry.policy === "string") {
      const policyPath = resolve(base, entry.policy);
      policyValue = await readProtectedFile(policyPath, `keys.${i}.policy`);
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
  return keys;
}
