import { createServer, type IncomingMessage, type ServerResponse } from "node:http";
import type { AddressInfo } from "node:net";
import { afterEach, describe, expect, it } from "vitest";
import { hashApiKey } from "../../client/cli/api-key-hash.ts";
import { listen, type RunningServer } from "../../enclave/http.ts";
import { createHostApp } from "../../host/app.ts";
import { ApiKeyStore } from "../../host/identity.ts";
import { EnclavePool, type PoolMember } from "../../host/pool.ts";
import { DEFAULT_HOST_LIMITS } from "../../host/server.ts";
import { ENVELOPE_PREFIX_LENGTH, encodeEnvelopePrefix } from "../../sealed/envelope.ts";

const cleanup: (() => Promise<void>)[] = [];
afterEach(async () => {
  for (const step of cleanup.splice(0).reverse()) await step();
});

function envelope(keyId: Uint8Array, size: number): Uint8Array {
  const out = new Uint8Array(ENVELOPE_PREFIX_LENGTH + size).fill(0x2e);
  out.set(encodeEnvelopePrefix("chat", keyId, size, new Uint8Array(32).fill(1), new Uint8Array(24).fill(2)));
  return out;
}

describe("the per-key rate limit in a pool", () => {
  it("a request naming a member the host already marked unreachable pays its token: a key past its rate cannot make the host read bodies while a member is down", async () => {
    const up = createServer((_req: IncomingMessage, res: ServerResponse) => res.end("x"));
    await new Promise<void>((r) => up.listen(0, "127.0.0.1", r));
    cleanup.push(
      () =>
        new Promise<void>((r) => {
          up.close(() => r());
          up.closeAllConnections();
        }),
    );
    const upUrl = `http://127.0.0.1:${(up.address() as AddressInfo).port}`;
    // The second member's URL is never contacted: it is marked unreachable from the start.
    const pool = new EnclavePool([upUrl, "http://127.0.0.1:9"], {
      fetchText: async () => {
        throw new Error("refused");
      },
    });
    const [a, b] = pool.members as [PoolMember, PoolMember];
    a.keyId = "aa".repeat(16);
    a.state = "ready";
    b.keyId = "bb".repeat(16);
    b.state = "unreachable";
    const key = "ck_test_0123456789abcdef";
    const apiKeys = new ApiKeyStore({
      version: 1,
      keys: [{ id: "k", project: "p", sha256: hashApiKey(key), permissions: ["chat"], requestsPerMinute: 2 }],
    });
    let bodyBytesRead = 0;
    const app = createHostApp({
      pool,
      apiKeys,
      limits: DEFAULT_HOST_LIMITS,
      accessLog: (e) => {
        bodyBytesRead += e.requestBytes;
      },
    });
    const host: RunningServer = await listen(app.fetch, "127.0.0.1", 0);
    cleanup.push(() => host.close());
    const statuses: number[] = [];
    for (let i = 0; i < 6; i++) {
      const response = await fetch(`${host.url}/v1/sealed`, {
        method: "POST",
        headers: { authorization: `Bearer ${key}`, "content-type": "application/octet-stream" },
        body: envelope(new Uint8Array(16).fill(0xbb), 64 * 1024) as never,
      });
      statuses.push(response.status);
      await response.arrayBuffer();
    }
    // Two a minute: two bodies read (each refused 409, the client re-attests), then 429 before any body.
    expect(statuses).toEqual([409, 409, 429, 429, 429, 429]);
    expect(bodyBytesRead).toBeLessThan(3 * 64 * 1024);
  });
});
