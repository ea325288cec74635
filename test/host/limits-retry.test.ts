/**
 * What a caller the host turns away for a reason of its own is told to do next: NO_ENCLAVE_AVAILABLE's
 * `Retry-After` is the host's `limits.retryAfterSeconds` (as every HOST_BUSY's is).
 */
import { afterEach, describe, expect, it, vi } from "vitest";
import { hashApiKey } from "../../client/cli/api-key-hash.ts";
import { createHostApp } from "../../host/app.ts";
import { ApiKeyStore } from "../../host/identity.ts";
import { EnclavePool, type PoolMember } from "../../host/pool.ts";
import { DEFAULT_HOST_LIMITS } from "../../host/server.ts";

const KEY = "ck_retry_0123456789abcdef";
const OTHER = "ck_retry_other_0123456789ab";
/** A Retry-After no default has. */
const RETRY_AFTER_S = 7;
const limits = { ...DEFAULT_HOST_LIMITS, retryAfterSeconds: RETRY_AFTER_S };

const cleanup: (() => Promise<void>)[] = [];
afterEach(async () => {
  vi.restoreAllMocks();
  for (const step of cleanup.splice(0).reverse()) await step();
});

/** KEY may send one request a minute, OTHER many; the clock is frozen, so no token comes back with time. */
function apiKeys(): ApiKeyStore {
  return new ApiKeyStore(
    {
      version: 1,
      keys: [
        { id: "a", project: "p", sha256: hashApiKey(KEY), permissions: ["chat"], requestsPerMinute: 1 },
        { id: "b", project: "p", sha256: hashApiKey(OTHER), permissions: ["chat", "attest"], requestsPerMinute: 1000 },
      ],
    },
    () => 0,
  );
}

async function answerOf(response: Response): Promise<string> {
  const { error } = (await response.json()) as { error?: { code: string } };
  return `${response.status} ${error?.code ?? "-"} ${response.headers.get("retry-after")}`;
}

describe("host: NO_ENCLAVE_AVAILABLE", () => {
  it("says the host's Retry-After, for a new session and for a nonce question", async () => {
    // Both members already found down: no candidate is offered, and no URL is asked.
    const pool = new EnclavePool(["http://127.0.0.1:9", "http://127.0.0.1:10"], {
      fetchText: async () => {
        throw new Error("not asked");
      },
    });
    for (const member of pool.members as PoolMember[]) member.state = "unreachable";
    const app = createHostApp({ pool, apiKeys: apiKeys(), limits, accessLog: () => {} });
    const authorization = `Bearer ${OTHER}`;
    const session = await app.request("/v1/attestation", { headers: { authorization } });
    expect(await answerOf(session)).toBe(`503 NO_ENCLAVE_AVAILABLE ${RETRY_AFTER_S}`);
    const challenge = await app.request("/v1/attestation/challenge", {
      method: "POST",
      headers: { authorization, "content-type": "application/json" },
      body: "{}",
    });
    expect(await answerOf(challenge)).toBe(`503 NO_ENCLAVE_AVAILABLE ${RETRY_AFTER_S}`);
  });
});
