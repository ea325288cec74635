/**
 * A pool member that refuses the connection of a nonce question or a checkpoint is marked
 * unreachable, as a sealed request's refusal marks it (host/app.ts): the token is given back, and the
 * next question naming it is refused 409 WRONG_ENCLAVE_KEY at its token (the same rule as
 * /v1/sealed), not sent to it again, free, until the pool's next refresh. A single enclave is not
 * marked (nothing would read it again for its own key id). The key may make one request a minute and
 * the clock is frozen, so a token not given back makes the next request 429.
 */
import { createServer } from "node:http";
import { afterEach, describe, expect, it } from "vitest";
import { hashApiKey } from "../../client/cli/api-key-hash.ts";
import { createHostApp } from "../../host/app.ts";
import { ApiKeyStore } from "../../host/identity.ts";
import { EnclavePool, type PoolMember } from "../../host/pool.ts";
import { DEFAULT_HOST_LIMITS } from "../../host/server.ts";
import { closeNow, listenInRange } from "../helpers/listen-in-range.ts";
import { refusedPort } from "../helpers/refused-port.ts";
import { listenOnTestPort } from "../helpers/test-ports.ts";

const KEY = "ck_attest_refused_mark_0123456789";
const REFUSING_KEY_ID = "aa".repeat(16);
const SERVING_KEY_ID = "bb".repeat(16);

const cleanup: (() => Promise<void>)[] = [];
afterEach(async () => {
  for (const step of cleanup.splice(0).reverse()) await step();
});

/** The host on a loopback port, with KEY (`attest`) allowed one request a minute and a frozen clock. */
async function host(pool: EnclavePool): Promise<string> {
  const apiKeys = new ApiKeyStore(
    {
      version: 1,
      keys: [{ id: "a", project: "p", sha256: hashApiKey(KEY), permissions: ["attest"], requestsPerMinute: 1 }],
    },
    () => 0,
  );
  const app = createHostApp({ pool, apiKeys, limits: DEFAULT_HOST_LIMITS, accessLog: () => {} });
  const server = await listenInRange(app);
  cleanup.push(() => server.close());
  return server.url;
}

/** A nonce question or checkpoint, naming `enclave` when given, as `status code` (`-` for an answer that is no host error). */
async function ask(url: string, path: string, enclave?: string): Promise<string> {
  const query = enclave === undefined ? "" : `?enclave=${enclave}`;
  const response = await fetch(`${url}${path}${query}`, {
    method: "POST",
    headers: { authorization: `Bearer ${KEY}`, "content-type": "application/json" },
    body: "{}",
  });
  const text = await response.text();
  let code = "-";
  try {
    code = (JSON.parse(text) as { error?: { code?: string } }).error?.code ?? "-";
  } catch {
    // not JSON
  }
  return `${response.status} ${code}`;
}

/** An enclave answering every request with a small JSON body; it counts what it was asked. */
async function answeringEnclave(): Promise<{ url: string; asked: () => number }> {
  let asked = 0;
  const server = createServer((req, res) => {
    asked++;
    req.resume();
    req.on("end", () => res.writeHead(200, { "content-type": "application/json" }).end('{"answer":1}'));
  });
  const port = await listenOnTestPort(server);
  cleanup.push(() => closeNow(server));
  return { url: `http://127.0.0.1:${port}`, asked: () => asked };
}

async function refusingUrl(): Promise<string> {
  const held = await refusedPort();
  cleanup.push(() => held.close());
  return `http://127.0.0.1:${held.port}`;
}

/** The pool's document reads (its refresh, on demand for a marked member's key id) find nothing. */
const documentsRefused = {
  fetchText: async (): Promise<never> => {
    throw new Error("connection refused");
  },
};

const ROUTES = [
  ["/v1/attestation/challenge", "challenge"],
  ["/v1/audit/checkpoint", "checkpoint"],
] as const;

describe("host: a pool member refusing a nonce question's or checkpoint's connection", () => {
  for (const [path, step] of ROUTES) {
    it(`${step}: named, it is marked (its token given back); the next one naming it is WRONG_ENCLAVE_KEY at its token`, async () => {
      const serving = await answeringEnclave();
      const pool = new EnclavePool([await refusingUrl(), serving.url], documentsRefused);
      const [refusing, other] = pool.members as [PoolMember, PoolMember];
      // Both ready with a key id, as after the host's first refresh: a name of a ready member is
      // routed to it without reading any document.
      refusing.state = "ready";
      refusing.keyId = REFUSING_KEY_ID;
      other.state = "ready";
      other.keyId = SERVING_KEY_ID;
      const url = await host(pool);

      expect(await ask(url, path, REFUSING_KEY_ID)).toBe("502 ENCLAVE_UNREACHABLE");
      expect([refusing.state, refusing.reason, other.state]).toEqual([
        "unreachable",
        { step, words: "connection refused" },
        "ready",
      ]);
      // /healthz shows it to a key that may attest (it takes no token).
      const health = (await (
        await fetch(`${url}/healthz`, { headers: { authorization: `Bearer ${KEY}` } })
      ).json()) as { enclaves: { index: number; state: string; reason: string | null }[] };
      expect(health.enclaves.map(({ index, state, reason }) => ({ index, state, reason }))).toEqual([
        { index: 0, state: "unreachable", reason: `${step}: connection refused` },
        { index: 1, state: "ready", reason: null },
      ]);
      // Unmarked, the token given back would send it to the refusing member again, free (502 again).
      expect([await ask(url, path, REFUSING_KEY_ID), await ask(url, path, REFUSING_KEY_ID)]).toEqual([
        "409 WRONG_ENCLAVE_KEY",
        "429 RATE_LIMITED",
      ]);
      expect(serving.asked()).toBe(0);
    });

    it(`${step}: unnamed, the member offered is marked, and the next one goes to another member`, async () => {
      const serving = await answeringEnclave();
      const pool = new EnclavePool([await refusingUrl(), serving.url], documentsRefused);
      const [refusing, other] = pool.members as [PoolMember, PoolMember];
      refusing.state = "ready";
      refusing.keyId = REFUSING_KEY_ID;
      // Not ready yet: the refusing member is offered first (ready ones rank before the others).
      other.keyId = SERVING_KEY_ID;
      const url = await host(pool);

      expect(await ask(url, path)).toBe("502 ENCLAVE_UNREACHABLE");
      expect(refusing.state).toBe("unreachable");
      expect([await ask(url, path), await ask(url, path)]).toEqual(["200 -", "429 RATE_LIMITED"]);
      expect(serving.asked()).toBe(1);
    });
  }

  for (const [path, step] of ROUTES) {
    it(`${step}: a single enclave refusing it is not marked; its token is given back each time`, async () => {
      const pool = new EnclavePool([await refusingUrl()], documentsRefused);
      const only = pool.members[0] as PoolMember;
      only.state = "ready";
      only.keyId = REFUSING_KEY_ID;
      const url = await host(pool);
      expect([await ask(url, path, REFUSING_KEY_ID), await ask(url, path, REFUSING_KEY_ID)]).toEqual([
        "502 ENCLAVE_UNREACHABLE",
        "502 ENCLAVE_UNREACHABLE",
      ]);
      expect([only.state, only.reason]).toEqual(["ready", null]);
    });
  }
});
