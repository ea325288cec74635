/**
 * `cloister policy init`'s self-check refuses a session whose document is not the one the policy
 * was pinned from. connect() checks the pinned key id first, and one boot signs one document, so a
 * real host cannot show another document under that key id without the enclave's key: the seam is
 * connect(), here the real one against a real deployment, its session's documentDigest replaced.
 */
import { stat, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { afterEach, beforeAll, describe, expect, it, vi } from "vitest";
import { toHex, utf8 } from "../../attestation/bytes.ts";
import { sha256 } from "../../attestation/crypto.ts";
import { operatorPublicKey } from "../enclave/helpers.ts";
import { inProcessCli } from "../helpers/cli-in-process.ts";
import { testDirectory } from "../helpers/test-directory.ts";
import { closeServers, serveDeployment } from "./helpers.ts";

/** The documentDigest the next sessions report instead of their own, or null: their own. */
const replacement: { digest: string | null } = { digest: null };
const sessions: string[] = [];

vi.mock("../../client/sdk.ts", async (importOriginal) => {
  const real = await importOriginal<typeof import("../../client/sdk.ts")>();
  return {
    ...real,
    connect: async (options: Parameters<typeof real.connect>[0]) => {
      const session = await real.connect(options);
      sessions.push(session.enclave.documentDigest);
      const digest = replacement.digest;
      if (digest === null) return session;
      return { enclave: { ...session.enclave, documentDigest: digest } } as unknown as typeof session;
    },
  };
});

const run = inProcessCli();
const dir = await testDirectory("cloister-policy-init-digest-");
let keyFile: string;
let operatorKey: string;

beforeAll(async () => {
  keyFile = join(dir, "api-key");
  await writeFile(keyFile, "ck_policy_init_digest_0123456789\n", { mode: 0o600 });
  operatorKey = join(dir, "operator.public.jwk");
  await writeFile(operatorKey, JSON.stringify(await operatorPublicKey()));
});
afterEach(async () => {
  replacement.digest = null;
  sessions.length = 0;
  await closeServers();
});

function policyInit(url: string, ...more: string[]): string[] {
  return ["policy", "init", "--url", url, "--operator-key", operatorKey, "--api-key-file", keyFile, ...more];
}

describe("policy init: the self-check's document digest", () => {
  it("accepts the session of the very document it pinned from", async () => {
    const { url } = await serveDeployment();
    const out = join(dir, "same.json");
    const result = await run(policyInit(url, "--allow-simulator", "--out", out));
    expect(result.code, result.stderr).toBe(0);
    expect(sessions).toHaveLength(1);
  });

  it("refuses a session that verified another document, naming both digests and writing nothing", async () => {
    const { url } = await serveDeployment();
    const other = toHex(await sha256(utf8("another document")));
    replacement.digest = other;
    const out = join(dir, "other.json");
    const result = await run(policyInit(url, "--allow-simulator", "--out", out));
    expect(result.code).toBe(1);
    // The real connect() accepted the deployment: the comparison is what refused.
    expect(sessions).toHaveLength(1);
    const pinned = sessions[0];
    expect(pinned).toMatch(/^[0-9a-f]{64}$/);
    expect(pinned).not.toBe(other);
    expect(result.stderr).toBe(
      `cloister: POLICY_INIT_SELF_CHECK_FAILED: the generated policy does not accept this deployment: document digest: expected ${pinned} (the document the values were taken from), found ${other} (the host answered the check with another document than the one pinned)\n`,
    );
    expect(result.stdout).toBe("");
    await expect(stat(out)).rejects.toMatchObject({ code: "ENOENT" });
  });
});
