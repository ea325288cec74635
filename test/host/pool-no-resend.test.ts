/**
 * A pool host tells a client to re-attest and reseal (409 WRONG_ENCLAVE_KEY, the SDK then sends the
 * prompt again, to another member) only when the member certainly never read the request: it
 * refused the connection, or answered 503 that it is draining, booting or audit-failed
 * (docs/protocol.md, "Routing to a pool of enclaves"). A member that read the request and then
 * failed, or refused it for another reason, is passed on as it is: a 409 there would have the
 * client run the prompt twice. Nor is a new session sent to another member for a 503 of any other
 * code.
 */
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

const KEY = "ck_test_0123456789abcdef";
const A = "aa".repeat(16);
const B = "bb".repeat(16);

function envelope(keyId: Uint8Array, size: number): Uint8Array {
  const out = new Uint8Array(ENVELOPE_PREFIX_LENGTH + size).fill(0x2e);
  out.set(encodeEnvelopePrefix("chat", keyId, size, new Uint8Array(32).fill(1), new Uint8Array(24).fill(2)));
  return out;
}

/** A member on a loopback port; `seen` lists the paths it was asked for. */
async function member(handle: (req: IncomingMessage, res: ServerResponse) => void) {
  const seen: string[] = [];
  const server = createServer((req, res) => {
    seen.push(req.url ?? "");
    handle(req, res);
  });
  await new Promise<void>((r) => server.listen(0, "127.0.0.1", r));
  cleanup.push(
    () =>
      new Promise<void>((r) => {
        server.close(() => r());
        server.closeAllConnections();
      }),
  );
  return { url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`, seen };
}

/** A host over members A and B, both ready (the pool's refresh never runs), a key of `perMinute`. */
async function hostOver(urls: [string, string], perMinute: number) {
  const pool = new EnclavePool(urls, {
    fetchText: async () => {
      throw new Error("not read in this test");
    },
  });
  const [a, b] = pool.members as [PoolMember, PoolMember];
  a.keyId = A;
  a.state = "ready";
  b.keyId = B;
  b.state = "ready";
  const apiKeys = new ApiKeyStore({
    version: 1,
    keys: [
      {
        id: "k",
        project: "p",
        sha256: hashApiKey(KEY),
        permissions: ["attest", "chat"],
        requestsPerMinute: perMinute,
      },
    ],
  });
  const app = createHostApp({ pool, apiKeys, limits: DEFAULT_HOST_LIMITS, accessLog: () => {} });
  const host: RunningServer = await listen(app.fetch, "127.0.0.1", 0);
  cleanup.push(() => host.close());
  return { host, pool };
}

const sealedTo = (host: RunningServer, keyId: string) =>
  fetch(`${host.url}/v1/sealed`, {
    method: "POST",
    headers: { authorization: `Bearer ${KEY}`, "content-type": "application/octet-stream" },
    body: envelope(Buffer.from(keyId, "hex"), 64) as never,
  });

async function codeOf(response: Response): Promise<string> {
  return `${response.status} ${((await response.json()) as { error: { code: string } }).error.code}`;
}

describe("a pool host sends a client to re-attest only for a request its member never read", () => {
  it("passes on a member's reset after it read the sealed request (502, not 409), the member still offered, the token kept", async () => {
    let bodiesRead = 0;
    const a = await member((req) => {
      // Reads the whole request, as an enclave that opened it would, then the connection is reset.
      req.on("data", () => {});
      req.on("end", () => {
        bodiesRead++;
        req.socket.resetAndDestroy();
      });
    });
    const b = await member((_req, res) => res.end("b"));
    const { host, pool } = await hostOver([a.url, b.url], 1);
    expect(await codeOf(await sealedTo(host, A))).toBe("502 ENCLAVE_UNREACHABLE");
    expect(bodiesRead).toBe(1);
    // Not marked (a 409 now would be the host's own, not this member's), and nothing went to B.
    expect(pool.status().map((m) => m.state)).toEqual(["ready", "ready"]);
    expect(b.seen).toEqual([]);
    // The member was reached: the request paid its one token a minute.
    expect((await sealedTo(host, A)).status).toBe(429);
  });

  it("passes on a member's 503 of another code than draining, booting or audit-failed, the member unmarked", async () => {
    const a = await member((_req, res) => {
      res.writeHead(503, { "content-type": "application/json", "retry-after": "1" });
      res.end(JSON.stringify({ error: { code: "ENGINE_BUSY", message: "busy" } }));
    });
    const b = await member((req, res) => {
      res.writeHead(200, { "content-type": "application/json" }).end(JSON.stringify({ document: "b" }));
      req.resume();
    });
    const { host, pool } = await hostOver([a.url, b.url], 1000);
    const sealed = await sealedTo(host, A);
    expect(sealed.headers.get("retry-after")).toBe("1");
    expect(await codeOf(sealed)).toBe("503 ENGINE_BUSY");
    expect(pool.status().map((m) => m.state)).toEqual(["ready", "ready"]);
    // A new session: the first candidate (A, the rotation's start) answers 503 ENGINE_BUSY, passed
    // on; B is not asked, and A is still offered.
    const session = await fetch(`${host.url}/v1/attestation`, { headers: { authorization: `Bearer ${KEY}` } });
    expect(await codeOf(session)).toBe("503 ENGINE_BUSY");
    expect(b.seen).toEqual([]);
    expect(pool.status().map((m) => m.state)).toEqual(["ready", "ready"]);
    expect(pool.candidates().map((m) => m.index)).toContain(0);
  });
});
