/**
 * `GET /v1/attestation?enclave=<key id>`: an operator asks for one enclave's document (cloister
 * attest / audit checkpoint --enclave). A pool answers with that member's document only (no other
 * member is tried), and a single enclave is held to a name as a pool is, on every named route.
 */
import { createHash } from "node:crypto";
import { createServer, type IncomingMessage, type Server, type ServerResponse } from "node:http";
import type { AddressInfo } from "node:net";
import { base64url } from "jose";
import { afterEach, describe, expect, it, vi } from "vitest";
import { hashApiKey } from "../../client/cli/api-key-hash.ts";
import { listen } from "../../enclave/http.ts";
import type { AccessLogEntry } from "../../host/access-log.ts";
import { createEnclavePool, createHostApp } from "../../host/app.ts";
import { ApiKeyStore } from "../../host/identity.ts";
import { DEFAULT_HOST_LIMITS } from "../../host/server.ts";
import { ENVELOPE_PREFIX_LENGTH, encodeEnvelopePrefix } from "../../sealed/envelope.ts";
import { countedLines } from "../helpers/counted-lines.ts";

const KEY = "ck_test_0123456789abcdef";
const AUTH = { authorization: `Bearer ${KEY}` };

function documentFor(key: Uint8Array): string {
  const payload = base64url.encode(
    JSON.stringify({ cnf: { jwk: { kty: "OKP", crv: "X25519", x: base64url.encode(key) } } }),
  );
  return `e30.${payload}.c2ln`;
}
const keyIdFor = (key: Uint8Array) => createHash("sha256").update(key).digest().subarray(0, 16).toString("hex");
const keyOf = (n: number) => new Uint8Array(32).fill(n);

const cleanup: (() => Promise<void>)[] = [];
afterEach(async () => {
  vi.restoreAllMocks();
  for (const step of cleanup.splice(0).reverse()) await step();
});

function apiKeys(): ApiKeyStore {
  return new ApiKeyStore({
    version: 1,
    keys: [
      { id: "ops", project: "demo", sha256: hashApiKey(KEY), permissions: ["attest", "chat"], requestsPerMinute: 1000 },
    ],
  });
}

/**
 * A stand-in enclave named `name`: its document is of `enclave.key` (changed to restart it), its
 * nonce answer and checkpoint say its name; `enclave.answer`, when set, answers everything instead.
 * `asked` lists the paths asked of it.
 */
async function fakeEnclave(name: string, key: Uint8Array) {
  const enclave = {
    name,
    key,
    asked: [] as string[],
    answer: undefined as ((res: ServerResponse) => void) | undefined,
    url: "",
    server: undefined as unknown as Server,
  };
  enclave.server = createServer((req: IncomingMessage, res: ServerResponse) => {
    req.resume();
    req.on("end", () => {
      enclave.asked.push(`${req.method} ${req.url}`);
      if (enclave.answer !== undefined) return enclave.answer(res);
      const body =
        req.url === "/attestation" ? { document: documentFor(enclave.key) } : { answer: name, checkpoint: name };
      res.writeHead(200, { "content-type": "application/json" }).end(JSON.stringify(body));
    });
  });
  await new Promise<void>((resolve) => enclave.server.listen(0, "127.0.0.1", resolve));
  enclave.url = `http://127.0.0.1:${(enclave.server.address() as AddressInfo).port}`;
  cleanup.push(() => stop(enclave.server));
  return enclave;
}

function stop(server: Server): Promise<void> {
  return new Promise<void>((resolve) => {
    server.closeAllConnections();
    server.close(() => resolve());
    server.closeAllConnections();
  });
}

async function hostFor(options: { pool: string[] } | { enclaveUrl: string }) {
  // `logged(n)` resolves once the access log holds `n` lines: a line is written as its answer ends.
  const { lines: log, push, atLeast: logged } = countedLines<AccessLogEntry>();
  const pool = "pool" in options ? createEnclavePool(options.pool, { limits: DEFAULT_HOST_LIMITS }) : undefined;
  const app = createHostApp({
    ...(pool === undefined ? { enclaveUrl: (options as { enclaveUrl: string }).enclaveUrl } : { pool }),
    apiKeys: apiKeys(),
    limits: DEFAULT_HOST_LIMITS,
    accessLog: push,
  });
  // As startHost does: a pool knows its members' key ids before the first request.
  if (pool !== undefined) await pool.refresh();
  const host = await listen(app.fetch, "127.0.0.1", 0);
  cleanup.push(() => host.close());
  /** The document, or "status CODE: message", the host answers for `query`. */
  const documentOf = async (query: string) => {
    const response = await fetch(`${host.url}/v1/attestation${query}`, { headers: AUTH });
    const body = (await response.json()) as { document?: string; error?: { code: string; message: string } };
    return response.status === 200 ? body.document : `${response.status} ${body.error?.code}: ${body.error?.message}`;
  };
  /** What a nonce question or checkpoint naming `query` is answered: the enclave's name, or "status CODE". */
  const ask = async (route: "/v1/attestation/challenge" | "/v1/audit/checkpoint", query: string) => {
    const response = await fetch(`${host.url}${route}${query}`, {
      method: "POST",
      headers: { ...AUTH, "content-type": "application/json" },
      body: '{"nonce":"abc"}',
    });
    const body = (await response.json()) as { answer?: string; error?: { code: string } };
    return response.status === 200 ? body.answer : `${response.status} ${body.error?.code}`;
  };
  /** What a sealed request to the key id of `key` is answered: the enclave's name, or "status CODE". */
  const seal = async (key: Uint8Array) => {
    const prefix = encodeEnvelopePrefix(
      "chat",
      createHash("sha256").update(key).digest().subarray(0, 16),
      16,
      new Uint8Array(32).fill(1),
      new Uint8Array(24).fill(2),
    );
    const body = new Uint8Array(ENVELOPE_PREFIX_LENGTH + 16);
    body.set(prefix);
    const response = await fetch(`${host.url}/v1/sealed`, {
      method: "POST",
      headers: { ...AUTH, "content-type": "application/octet-stream" },
      body,
    });
    const answer = (await response.json()) as { answer?: string; error?: { code: string } };
    return response.status === 200 ? answer.answer : `${response.status} ${answer.error?.code}`;
  };
  return { pool, documentOf, ask, seal, log, logged };
}

describe("the access log names the member a sealed request was forwarded to", () => {
  it("gives each sealed request of a pool of two its member's index, and null to a request no member was sent", async () => {
    const [a, b] = [await fakeEnclave("a", keyOf(1)), await fakeEnclave("b", keyOf(2))];
    const { seal, ask, log, logged } = await hostFor({ pool: [a.url, b.url] });
    // The second member first: the index is the one the envelope's key id routed to, not an order.
    const served: (string | undefined)[] = [];
    for (const key of [b.key, a.key, b.key, keyOf(9)]) {
      served.push(await seal(key));
      await logged(served.length);
    }
    expect(served).toEqual(["b", "a", "b", "409 WRONG_ENCLAVE_KEY"]);
    expect(await ask("/v1/attestation/challenge", `?enclave=${keyIdFor(a.key)}`)).toBe("a");
    await logged(5);
    expect(log.map(({ path, status, member }) => [path, status, member])).toEqual([
      ["/v1/sealed", 200, 1],
      ["/v1/sealed", 200, 0],
      ["/v1/sealed", 200, 1],
      ["/v1/sealed", 409, null],
      ["/v1/attestation/challenge", 200, null],
    ]);
  });

  it("names the member a request was sent to when that member refused it, and no member once the host refuses it before sending", async () => {
    const [a, b, c] = [
      await fakeEnclave("a", keyOf(1)),
      await fakeEnclave("b", keyOf(2)),
      await fakeEnclave("c", keyOf(3)),
    ];
    const { seal, log, logged } = await hostFor({ pool: [a.url, b.url, c.url] });
    // a drains (its 503 to everything, documents included); c stops taking connections.
    a.answer = (res) =>
      res
        .writeHead(503, { "content-type": "application/json" })
        .end('{"error":{"code":"ENCLAVE_DRAINING","message":"draining"}}');
    await stop(c.server);
    const served: (string | undefined)[] = [];
    // Sent to a, refused by it; the client re-attests and resends to b; then sent to c, not delivered;
    // then a again, now refused by the host before sending (a is marked, a re-read finds it draining).
    for (const key of [a.key, b.key, c.key, a.key]) {
      served.push(await seal(key));
      await logged(served.length);
    }
    expect(served).toEqual(["409 WRONG_ENCLAVE_KEY", "b", "409 WRONG_ENCLAVE_KEY", "409 WRONG_ENCLAVE_KEY"]);
    expect(log.map(({ status, member }) => [status, member])).toEqual([
      [409, 0],
      [200, 1],
      [409, 2],
      [409, null],
    ]);
    expect(a.asked.filter((asked) => asked === "POST /sealed")).toHaveLength(1);
  });

  it("names a single enclave as member 0, whatever key id the envelope names (it answers that itself)", async () => {
    const only = await fakeEnclave("only", keyOf(1));
    const { seal, log, logged } = await hostFor({ enclaveUrl: only.url });
    expect([await seal(only.key), await seal(keyOf(2))]).toEqual(["only", "only"]);
    await logged(2);
    expect(log.map(({ path, member }) => [path, member])).toEqual([
      ["/v1/sealed", 0],
      ["/v1/sealed", 0],
    ]);
  });
});

describe("GET /v1/attestation?enclave=<key id>: one pool member's document", () => {
  it("answers each named member with its own document, every time, not the least busy one", async () => {
    const [a, b] = [await fakeEnclave("a", keyOf(1)), await fakeEnclave("b", keyOf(2))];
    const { documentOf, ask } = await hostFor({ pool: [a.url, b.url] });
    const [idA, idB] = [keyIdFor(a.key), keyIdFor(b.key)];
    // Without a name, sessions go round the members (as before).
    expect(new Set([await documentOf(""), await documentOf("")])).toEqual(
      new Set([documentFor(a.key), documentFor(b.key)]),
    );
    // The same member asked in a row (round the members, every other answer would be the other's).
    for (const [id, key] of [
      [idA, a.key],
      [idB, b.key],
    ] as const) {
      for (let i = 0; i < 3; i++) expect(await documentOf(`?enclave=${id}`)).toBe(documentFor(key));
    }
    // Its nonce question and checkpoint then go to the same member.
    expect(await ask("/v1/attestation/challenge", `?enclave=${idB}`)).toBe("b");
    expect(await ask("/v1/audit/checkpoint", `?enclave=${idA}`)).toBe("a");
  });

  it("refuses a malformed name (400 ENCLAVE_ID_MALFORMED) and one no member has (409 WRONG_ENCLAVE_KEY), asking no member", async () => {
    const [a, b] = [await fakeEnclave("a", keyOf(1)), await fakeEnclave("b", keyOf(2))];
    const { documentOf } = await hostFor({ pool: [a.url, b.url] });
    const before = a.asked.length + b.asked.length;
    for (const malformed of ["XYZ", keyIdFor(a.key).toUpperCase(), keyIdFor(a.key).slice(1), ""]) {
      expect(await documentOf(`?enclave=${malformed}`)).toMatch(
        /^400 ENCLAVE_ID_MALFORMED: enclave: expected a key id/,
      );
    }
    expect(await documentOf(`?enclave=${keyIdFor(keyOf(9))}`)).toBe(
      `409 WRONG_ENCLAVE_KEY: enclave key id ${keyIdFor(keyOf(9))}: no enclave of this host has it now; re-attest (a client's session), or take a member's current key id from /healthz or the host's log (a restarted member has a new one)`,
    );
    expect(a.asked.length + b.asked.length).toBe(before);
  });

  it("refuses a member marked unreachable, and does not fail over to another when the named one fails", async () => {
    const [a, b] = [await fakeEnclave("a", keyOf(1)), await fakeEnclave("b", keyOf(2))];
    const { pool, documentOf } = await hostFor({ pool: [a.url, b.url] });
    const [idA, idB] = [keyIdFor(a.key), keyIdFor(b.key)];
    // B draining: its refusal is passed on, not A's document given in its stead.
    b.answer = (res) =>
      res
        .writeHead(503, { "content-type": "application/json" })
        .end(JSON.stringify({ error: { code: "ENCLAVE_DRAINING", message: "" } }));
    expect(await documentOf(`?enclave=${idB}`)).toMatch(/^503 ENCLAVE_DRAINING/);
    // B gone (the pool still has it ready): the failure is the client's answer, A is not asked. Its
    // connections closed unanswered, its port still held: a port freed could be taken and answered.
    const askedOfA = a.asked.length;
    b.answer = (res) => res.socket?.destroy();
    expect(await documentOf(`?enclave=${idB}`)).toMatch(/^502 ENCLAVE_UNREACHABLE/);
    expect(a.asked.length).toBe(askedOfA);
    // Marked unreachable now: refused (the pool reads its members again to see whether B is back).
    expect(pool?.status().map((m) => m.state)).toEqual(["ready", "unreachable"]);
    expect(await documentOf(`?enclave=${idB}`)).toBe(
      `409 WRONG_ENCLAVE_KEY: enclave key id ${idB}: that enclave is unreachable; re-attest (a client's session), or see its state in /healthz or the host's log`,
    );
    expect(await documentOf(`?enclave=${idA}`)).toBe(documentFor(a.key));
  });

  it("refuses the named member's document when it has restarted meanwhile (another key id), and learns the new one", async () => {
    const [a, b] = [await fakeEnclave("a", keyOf(1)), await fakeEnclave("b", keyOf(2))];
    const { pool, documentOf } = await hostFor({ pool: [a.url, b.url] });
    const idA = keyIdFor(a.key);
    a.key = keyOf(3);
    expect(await documentOf(`?enclave=${idA}`)).toMatch(new RegExp(`^409 WRONG_ENCLAVE_KEY: enclave key id ${idA}: `));
    expect(pool?.status().map((m) => m.keyId)).toEqual([keyIdFor(keyOf(3)), keyIdFor(b.key)]);
    expect(await documentOf(`?enclave=${keyIdFor(keyOf(3))}`)).toBe(documentFor(keyOf(3)));
  });
});

describe("a single enclave is held to a name as a pool is", () => {
  it("answers its own key id on every named route, and refuses another's (409 WRONG_ENCLAVE_KEY) without forwarding it", async () => {
    const only = await fakeEnclave("only", keyOf(1));
    const { documentOf, ask } = await hostFor({ enclaveUrl: only.url });
    const own = keyIdFor(only.key);
    const other = keyIdFor(keyOf(2));
    // Named first thing after start: the host reads the enclave's document to learn its key id.
    expect(await ask("/v1/attestation/challenge", `?enclave=${own}`)).toBe("only");
    expect(await documentOf(`?enclave=${own}`)).toBe(documentFor(only.key));
    expect(await ask("/v1/audit/checkpoint", `?enclave=${own}`)).toBe("only");
    const forwarded = only.asked.filter((p) => p.startsWith("POST")).length;
    // Its /healthz lists no key id and the host logs none for it (a pool's members only): the
    // operator is sent to what cloister attest prints.
    expect(await documentOf(`?enclave=${other}`)).toBe(
      `409 WRONG_ENCLAVE_KEY: enclave key id ${other}: no enclave of this host has it now; re-attest (a client's session), or take the enclave's current key id from cloister attest without --enclave (a restart makes a new one)`,
    );
    expect(await ask("/v1/attestation/challenge", `?enclave=${other}`)).toBe("409 WRONG_ENCLAVE_KEY");
    expect(await ask("/v1/audit/checkpoint", `?enclave=${other}`)).toBe("409 WRONG_ENCLAVE_KEY");
    expect(only.asked.filter((p) => p.startsWith("POST")).length).toBe(forwarded);
    // Unnamed, as before: forwarded to the one enclave.
    expect(await ask("/v1/attestation/challenge", "")).toBe("only");
  });

  it("after its enclave restarts, takes the new key id from the document it hands out, and refuses the old one", async () => {
    const only = await fakeEnclave("only", keyOf(1));
    const { documentOf, ask } = await hostFor({ enclaveUrl: only.url });
    const old = keyIdFor(only.key);
    const documentReads = () => only.asked.filter((p) => p === "GET /attestation").length;
    expect(await documentOf("")).toBe(documentFor(only.key));
    only.key = keyOf(2);
    expect(await documentOf("")).toBe(documentFor(keyOf(2)));
    // Known from the document just handed out: the nonce question naming it reads no document again.
    const reads = documentReads();
    expect(await ask("/v1/attestation/challenge", `?enclave=${keyIdFor(keyOf(2))}`)).toBe("only");
    expect(documentReads()).toBe(reads);
    expect(await ask("/v1/audit/checkpoint", `?enclave=${old}`)).toBe("409 WRONG_ENCLAVE_KEY");
  });

  it("reads its document again for a name it does not know, at most once a second: a boot it has not handed out is found", async () => {
    const only = await fakeEnclave("only", keyOf(1));
    const { documentOf, ask } = await hostFor({ enclaveUrl: only.url });
    const documentReads = () => only.asked.filter((p) => p === "GET /attestation").length;
    // The host's clock, moved by the test: the once-a-second bound is shown, not timed.
    const realNow = performance.now.bind(performance);
    let later = 0;
    vi.spyOn(performance, "now").mockImplementation(() => realNow() + later);
    // Learned by reading on demand (a session from before the host started names its enclave).
    expect(await ask("/v1/audit/checkpoint", `?enclave=${keyIdFor(only.key)}`)).toBe("only");
    expect(documentReads()).toBe(1);
    // The enclave restarts; no document of the new boot has gone through the host. An operator names
    // the new boot (from the enclave's own log): within the second, refused without a read.
    only.key = keyOf(2);
    const fresh = keyIdFor(only.key);
    expect(await documentOf(`?enclave=${fresh}`)).toMatch(
      new RegExp(`^409 WRONG_ENCLAVE_KEY: enclave key id ${fresh}: `),
    );
    expect(documentReads()).toBe(1);
    // A second on: read again (the one enclave was ready when last read, and is held to no earlier
    // state), found, and answered with that boot's document.
    later += 1000;
    expect(await documentOf(`?enclave=${fresh}`)).toBe(documentFor(only.key));
    expect(await ask("/v1/attestation/challenge", `?enclave=${fresh}`)).toBe("only");
  });

  it("when a name it does not know finds the enclave down, says so (502 ENCLAVE_UNREACHABLE), and serves again once it is back", async () => {
    const only = await fakeEnclave("only", keyOf(1));
    const { documentOf, ask, seal } = await hostFor({ enclaveUrl: only.url });
    // A session from before the host started names its enclave while that enclave is down (booting).
    only.answer = (res) => res.writeHead(503, { "content-type": "application/json" }).end("{}");
    expect(await ask("/v1/audit/checkpoint", `?enclave=${keyIdFor(only.key)}`)).toBe("502 ENCLAVE_UNREACHABLE");
    // The refusal names what the failed read found (the enclave answers 503 whether it is read again or not).
    expect(await documentOf(`?enclave=${keyIdFor(only.key)}`)).toBe(
      "502 ENCLAVE_UNREACHABLE: enclave is unreachable from the host (its document was not read; document: HTTP 503)",
    );
    // Back: the one enclave gets every request again (nothing re-reads a single enclave on a timer, so
    // a refusal for that failed read would last, and tell its clients their key changed: it did not).
    only.answer = undefined;
    expect(await seal(only.key)).toBe("only");
    expect(await documentOf("")).toBe(documentFor(only.key));
    expect(await ask("/v1/attestation/challenge", `?enclave=${keyIdFor(only.key)}`)).toBe("only");
    expect(await seal(only.key)).toBe("only");
  });

  it("a read that found the enclave unreachable tells its code once: the refusal's words alone, or the read's own words", async () => {
    const only = await fakeEnclave("only", keyOf(1));
    const { documentOf } = await hostFor({ enclaveUrl: only.url });
    // The host's clock, moved by the test past the once-a-second bound on reading again.
    const realNow = performance.now.bind(performance);
    let later = 0;
    vi.spyOn(performance, "now").mockImplementation(() => realNow() + later);
    // The connection is dropped before any answer: the read's refusal has the refusal's own words.
    only.answer = (res) => res.socket?.destroy();
    expect(await documentOf(`?enclave=${keyIdFor(only.key)}`)).toBe(
      "502 ENCLAVE_UNREACHABLE: enclave is unreachable from the host (its document was not read)",
    );
    // An answer cut after its headers, a second on: the read's words, without its code (the refusal has it).
    later += 1000;
    only.answer = (res) => {
      res.writeHead(200, { "content-type": "application/json", "content-length": "100" });
      res.write("{", () => res.socket?.destroy());
    };
    expect(await documentOf(`?enclave=${keyIdFor(only.key)}`)).toBe(
      "502 ENCLAVE_UNREACHABLE: enclave is unreachable from the host (its document was not read; document: enclave response was cut)",
    );
  });
});
