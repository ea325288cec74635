/**
 * The rate token of the attestation routes (a document, a nonce answer, a checkpoint), on the wire:
 * given back when the host served nothing for an outage of its own that cost it no enclave's time
 * (no member to ask: NO_ENCLAVE_AVAILABLE; every member asked refused the connection:
 * ENCLAVE_UNREACHABLE), kept when a document was served or an enclave was reached (docs/errors.md,
 * NO_ENCLAVE_AVAILABLE); a sealed request refused at connect by a single enclave keeps it (its body
 * was read; docs/errors.md, ENCLAVE_UNREACHABLE). The key may make one request a minute and the
 * clock is frozen, so a token not given back makes the next request 429.
 */
import { createServer } from "node:http";
import { createServer as createNetServer } from "node:net";
import { afterEach, describe, expect, it } from "vitest";
import { hashApiKey } from "../../client/cli/api-key-hash.ts";
import { createHostApp } from "../../host/app.ts";
import { ApiKeyStore } from "../../host/identity.ts";
import { EnclavePool, type PoolMember } from "../../host/pool.ts";
import { DEFAULT_HOST_LIMITS } from "../../host/server.ts";
import { ENVELOPE_PREFIX_LENGTH, encodeEnvelopePrefix } from "../../sealed/envelope.ts";
import { closeNow, listenInRange } from "../helpers/listen-in-range.ts";
import { refusedPort } from "../helpers/refused-port.ts";
import { listenOnTestPort } from "../helpers/test-ports.ts";

const KEY = "ck_attest_refund_0123456789";

const cleanup: (() => Promise<void>)[] = [];
afterEach(async () => {
  for (const step of cleanup.splice(0).reverse()) await step();
});

/** The host on a loopback port, with KEY allowed one request a minute (`attest`, and `chat` when asked) and a frozen clock. */
async function host(target: { pool: EnclavePool } | { enclaveUrl: string }, chat = false): Promise<string> {
  const permissions: ("attest" | "chat")[] = chat ? ["attest", "chat"] : ["attest"];
  const apiKeys = new ApiKeyStore(
    {
      version: 1,
      keys: [{ id: "a", project: "p", sha256: hashApiKey(KEY), permissions, requestsPerMinute: 1 }],
    },
    () => 0,
  );
  const app = createHostApp({ ...target, apiKeys, limits: DEFAULT_HOST_LIMITS, accessLog: () => {} });
  const server = await listenInRange(app);
  cleanup.push(() => server.close());
  return server.url;
}

type Route = "document" | "challenge" | "checkpoint";

/** One request on `route`, as `status code` (`-` for an answer that is no host error). */
async function ask(url: string, route: Route): Promise<string> {
  const authorization = `Bearer ${KEY}`;
  const response =
    route === "document"
      ? await fetch(`${url}/v1/attestation`, { headers: { authorization } })
      : await fetch(`${url}/v1/${route === "challenge" ? "attestation/challenge" : "audit/checkpoint"}`, {
          method: "POST",
          headers: { authorization, "content-type": "application/json" },
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

/** An enclave answering every request 503 ENCLAVE_DRAINING (shutting down): reached, offering no new session. */
async function drainingEnclave(): Promise<string> {
  const server = createServer((req, res) => {
    req.resume();
    req.on("end", () =>
      res
        .writeHead(503, { "content-type": "application/json" })
        .end('{"error":{"code":"ENCLAVE_DRAINING","message":"draining"}}'),
    );
  });
  const port = await listenOnTestPort(server);
  cleanup.push(() => closeNow(server));
  return `http://127.0.0.1:${port}`;
}

/** An enclave that accepts each connection and resets it: reached, not refused. */
async function resettingEnclave(): Promise<string> {
  const server = createNetServer((socket) => socket.resetAndDestroy());
  const port = await listenOnTestPort(server);
  cleanup.push(() => new Promise<void>((resolve) => server.close(() => resolve())));
  return `http://127.0.0.1:${port}`;
}

async function refusingUrl(): Promise<string> {
  const held = await refusedPort();
  cleanup.push(() => held.close());
  return `http://127.0.0.1:${held.port}`;
}

describe("host: the attestation routes' rate token when no enclave can serve", () => {
  for (const route of ["document", "challenge", "checkpoint"] as const) {
    it(`a ${route} refused NO_ENCLAVE_AVAILABLE gives the token back; once a member serves, the served one keeps it`, async () => {
      const enclave = await answeringEnclave();
      // Two members (one is no pool), both already found down: no candidate, and no URL is asked.
      const pool = new EnclavePool([enclave.url, await refusingUrl()], {
        fetchText: async () => {
          throw new Error("not asked");
        },
      });
      const [member, other] = pool.members as [PoolMember, PoolMember];
      member.state = "unreachable";
      member.keyId = "aa".repeat(16);
      other.state = "unreachable";
      const url = await host({ pool });
      // One token a minute: without it given back, the second refusal would be 429.
      expect([await ask(url, route), await ask(url, route), await ask(url, route)]).toEqual([
        "503 NO_ENCLAVE_AVAILABLE",
        "503 NO_ENCLAVE_AVAILABLE",
        "503 NO_ENCLAVE_AVAILABLE",
      ]);
      expect(enclave.asked()).toBe(0);
      member.state = "ready";
      expect([await ask(url, route), await ask(url, route)]).toEqual(["200 -", "429 RATE_LIMITED"]);
      expect(enclave.asked()).toBe(1);
    });
  }

  for (const route of ["document", "challenge", "checkpoint"] as const) {
    it(`a ${route} whose single enclave refuses the connection gives the token back; one that reached it and was reset keeps it`, async () => {
      const refusing = await host({ enclaveUrl: await refusingUrl() });
      expect([await ask(refusing, route), await ask(refusing, route)]).toEqual([
        "502 ENCLAVE_UNREACHABLE",
        "502 ENCLAVE_UNREACHABLE",
      ]);
      const resetting = await host({ enclaveUrl: await resettingEnclave() });
      expect([await ask(resetting, route), await ask(resetting, route)]).toEqual([
        "502 ENCLAVE_UNREACHABLE",
        "429 RATE_LIMITED",
      ]);
    });
  }

  it("a new session in a pool gives the token back only when every member it asked refused the connection", async () => {
    const noFetch = {
      fetchText: async () => {
        throw new Error("not asked");
      },
    };
    // Both refused: the host's outage at no cost; then none is left to ask (NO_ENCLAVE_AVAILABLE).
    const refusing = await host({ pool: new EnclavePool([await refusingUrl(), await refusingUrl()], noFetch) });
    expect([await ask(refusing, "document"), await ask(refusing, "document")]).toEqual([
      "502 ENCLAVE_UNREACHABLE",
      "503 NO_ENCLAVE_AVAILABLE",
    ]);
    // The first member reached and reset, the last refused: the token is kept although the last
    // refusal alone would have given it back.
    const mixed = await host({ pool: new EnclavePool([await resettingEnclave(), await refusingUrl()], noFetch) });
    expect([await ask(mixed, "document"), await ask(mixed, "document")]).toEqual([
      "502 ENCLAVE_UNREACHABLE",
      "429 RATE_LIMITED",
    ]);
    // The first member reached and answered draining (failed over from), the last refused: kept too.
    const draining = await host({ pool: new EnclavePool([await drainingEnclave(), await refusingUrl()], noFetch) });
    expect([await ask(draining, "document"), await ask(draining, "document")]).toEqual([
      "502 ENCLAVE_UNREACHABLE",
      "429 RATE_LIMITED",
    ]);
  });

  it("a sealed request a single enclave refuses at connect keeps its token: the host has read its body, and nothing marks the enclave", async () => {
    const url = await host({ enclaveUrl: await refusingUrl() }, true);
    const body = new Uint8Array(ENVELOPE_PREFIX_LENGTH + 64).fill(0x2e);
    body.set(
      encodeEnvelopePrefix(
        "chat",
        new Uint8Array(16).fill(0xaa),
        64,
        new Uint8Array(32).fill(1),
        new Uint8Array(24).fill(2),
      ),
    );
    const send = async () => {
      const response = await fetch(`${url}/v1/sealed`, {
        method: "POST",
        headers: { authorization: `Bearer ${KEY}`, "content-type": "application/octet-stream" },
        body: body as never,
      });
      const code = ((await response.json()) as { error?: { code?: string } }).error?.code;
      return `${response.status} ${code}`;
    };
    // Given back, the second would be read and refused at connect too.
    expect([await send(), await send()]).toEqual(["502 ENCLAVE_UNREACHABLE", "429 RATE_LIMITED"]);
  });
});
