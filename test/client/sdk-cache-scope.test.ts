/**
 * SECURITY.md, "Non-goals and known limits", and README: KV-cache reuse is limited to requests
 * that carry the same cache scope, which the SDK seals into each request (`tenant`): random per
 * session by default, or derived from a secret `cacheScope` the caller shares between its own
 * sessions; never derived from the API key, which the host sees. The enclave and engine tests show
 * that the enclave passes the sealed value on and the engine reuses state only within it; only the
 * SDK's argument checks were tested, so a scope made from the API key, a constant one, or one that
 * ignored `cacheScope` failed no test. Read here as the engine is given it, through a real session.
 */
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { type ConnectOptions, connect } from "../../client/sdk.ts";
import { fetchTransport, type Transport } from "../../client/transport.ts";
import { listen, type RunningServer } from "../../enclave/http.ts";
import { createEnclaveApp } from "../../enclave/server.ts";
import type { Enclave } from "../../enclave/service.ts";
import { bootWith, ScriptedEngine, usage } from "../enclave/helpers.ts";
import { devPolicy } from "./helpers.ts";

const engine = new ScriptedEngine(() => [
  { type: "text", text: "ok" },
  { type: "done", stopReason: "eog", usage },
]);
let enclave: Enclave;
let server: RunningServer;

beforeAll(async () => {
  enclave = await bootWith(engine);
  server = await listen(createEnclaveApp(enclave).fetch, "127.0.0.1", 0);
});
afterAll(async () => {
  await server?.close();
  await enclave?.close();
});

/** The cache scope the engine was given for each of two requests of one session. */
async function scopesOf(options: Pick<ConnectOptions, "apiKey" | "cacheScope">): Promise<unknown[]> {
  const inner = fetchTransport(fetch);
  const transport: Transport = (url, request) =>
    inner(`${server.url}${new URL(url).pathname.replace(/^\/v1\//, "/")}`, request);
  const session = await connect({ url: "http://enclave.test", policy: await devPolicy(), transport, ...options });
  const from = engine.requests.length;
  expect((await session.complete("hello")).text).toBe("ok");
  expect((await session.complete("hello again")).text).toBe("ok");
  return engine.requests.slice(from).map((request) => request.tenant);
}

describe("the SDK's sealed cache scope (the request's tenant)", () => {
  it("is one random value per session: two sessions of one API key share none", async () => {
    const first = await scopesOf({ apiKey: "key-one" });
    const second = await scopesOf({ apiKey: "key-one" });
    for (const scopes of [first, second]) {
      expect(scopes[0]).toMatch(/^[0-9a-f]{32}$/);
      expect(scopes[1]).toBe(scopes[0]);
    }
    expect(second[0]).not.toBe(first[0]);
  });

  it("is the same for sessions given one cacheScope, whatever their API keys, and differs for another", async () => {
    const secret = "a secret shared by my own sessions";
    const [shared] = await scopesOf({ apiKey: "key-one", cacheScope: secret });
    expect(shared).toMatch(/^[0-9a-f]{32}$/);
    expect(await scopesOf({ apiKey: "key-two", cacheScope: secret })).toEqual([shared, shared]);
    const [other] = await scopesOf({ apiKey: "key-one", cacheScope: `${secret}!` });
    expect(other).not.toBe(shared);
    const [random] = await scopesOf({ apiKey: "key-one" });
    expect(random).not.toBe(shared);
    // Not the secret itself, which the enclave (and its audit) would then hold.
    expect(shared).not.toContain(Buffer.from(secret).toString("hex").slice(0, 32));
  });
});
