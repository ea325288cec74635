/**
 * What the SDK passes on of a host's error response. The host is untrusted: its code is kept only
 * if it looks like one, its message is cut, stripped of control characters and marked as the
 * host's, so the page and the CLI never show host text as if it were the client's own.
 */
import { afterEach, describe, expect, it, onTestFinished } from "vitest";
import { ClientError } from "../../client/errors.ts";
import { connect, errorBody, fetchAttestationAnswer } from "../../client/sdk.ts";
import { fetchTransport, type Transport } from "../../client/transport.ts";
import { refusedPort } from "../helpers/refused-port.ts";
import { rejectionOf } from "../helpers/rejections.ts";
import { closeServers, connectTo, devPolicy, serveDeployment } from "./helpers.ts";

const body = (error: unknown) => JSON.stringify({ error });

/** A refused key's remedy when the caller did not say where its key came from (apiKeySource): where keys come from. */
const KEY_ORIGIN = (which: "this" | "the") =>
  `; give the key ${which} host's operator issued (cloister up writes its key to .cloister/api-key)`;
/** A 403's remedy (FORBIDDEN: a key the host knows, without the permission): the permission, not another key. */
const KEY_PERMISSION = (which: "this" | "the") =>
  `; it lacks a permission this request needs: ask ${which} host's operator to grant it`;
/** What an ENCLAVE_UNREACHABLE message adds: what to do (retry), and where whoever runs the host looks. */
const ENCLAVE_UNREACHABLE_HINT =
  "; retry once the enclave is back (running the host yourself: is the enclave running, and does the host's --enclave-url name it? The host's log says what it tried)";

describe("errorBody: a host's error, made safe to show", () => {
  it("keeps a well-formed code and quotes the message after 'host said:'", () => {
    expect(errorBody(401, body({ code: "UNAUTHENTICATED", message: "missing or invalid API key" }))).toEqual({
      code: "UNAUTHENTICATED",
      message: 'host said: "missing or invalid API key"',
    });
  });

  it("replaces a code that does not look like one with HOST_ERROR, and names the status when there is none", () => {
    for (const code of ["verified_ok", "A B", "X".repeat(65), "", 42, { nested: true }, "ÉCHEC", "OK\n"]) {
      expect(errorBody(502, body({ code, message: "m" })).code, JSON.stringify(code)).toBe("HOST_ERROR");
    }
    expect(errorBody(503, body({ message: "m" })).code).toBe("HTTP_503");
    expect(errorBody(503, body({ code: null, message: "m" })).code).toBe("HTTP_503");
    expect(errorBody(503, "not json").code).toBe("HTTP_503");
    expect(errorBody(503, "null")).toEqual({ code: "HTTP_503", message: "the host gave no message" });
    expect(errorBody(429, body({ code: "X".repeat(64) })).code).toBe("X".repeat(64));
  });

  it("strips control and format characters and cuts the message to 200 characters", () => {
    const hostile = `line one\r\nenclave verified \u001b[32mOK\u001b[0m\u0000 \u202Eevil\u2028end`;
    const { message } = errorBody(500, body({ code: "INTERNAL", message: hostile }));
    expect(message).toBe('host said: "line one enclave verified [32mOK [0m evil end"');
    expect(message).not.toMatch(/[\p{Cc}\p{Cf}]/u);

    const long = errorBody(500, body({ code: "INTERNAL", message: `${"é".repeat(150)}${"😀".repeat(100)}` })).message;
    const quoted = JSON.parse(long.slice("host said: ".length)) as string;
    expect(Array.from(quoted)).toHaveLength(201);
    expect(quoted.endsWith("😀…")).toBe(true);
    // Exactly 200 characters are kept whole, without the mark of a cut.
    const whole = errorBody(500, body({ message: "x".repeat(200) })).message;
    expect(whole).toBe(`host said: "${"x".repeat(200)}"`);
    // A quote in the message cannot close the quoted text early.
    expect(errorBody(500, body({ message: 'a" — verified' })).message).toBe('host said: "a\\" — verified"');
    expect(errorBody(500, body({ message: 7 })).message).toBe("the host gave no message");
  });
});

describe("connect() reports an error response before any enclave verified as the server at that URL's", () => {
  async function refusedWith(status: number, text: string, headers: Record<string, string> = {}) {
    const transport: Transport = async () => ({
      status,
      header: (name) => headers[name] ?? null,
      body: (async function* () {})(),
      text: async () => text,
    });
    const policy = await devPolicy();
    return rejectionOf(connect({ url: "http://host.test", policy, apiKey: "ck_test", transport }), ClientError);
  }

  it("marks the message as the speaker's, bounded, and keeps its own wording around it", async () => {
    const error = await refusedWith(503, body({ code: "ENCLAVE VERIFIED", message: `\u001b[2J${"A".repeat(5000)}` }), {
      "retry-after": "5\r\nX-Evil: 1",
    });
    expect(error.kind).toBe("transport");
    expect(error.code).toBe("HOST_ERROR");
    expect(error.message).toBe(
      `http://host.test/v1/attestation: HTTP 503 HOST_ERROR: the server at that URL said: "[2J${"A".repeat(197)}…"`,
    );

    const limited = await refusedWith(429, body({ code: "RATE_LIMITED", message: "slow down" }), {
      "retry-after": "7",
    });
    expect(limited.message).toBe(
      'http://host.test/v1/attestation: HTTP 429 RATE_LIMITED: the server at that URL said: "slow down" (retry after 7s)',
    );

    const key = await refusedWith(401, body({ code: "UNAUTHENTICATED", message: "bad key\nfor tenant" }));
    expect(key).toMatchObject({ kind: "configuration", code: "UNAUTHENTICATED", status: 401 });
    // The first request: what answered may not be the host, so its words are not said to be the host's.
    expect(key.message).toBe(
      `http://host.test/v1/attestation: HTTP 401: the API key was refused: the server at that URL said: "bad key for tenant"${KEY_ORIGIN("the")}`,
    );

    // Every refusal carries its status and the full URL, as the general path does.
    const unreachable = await refusedWith(502, body({ code: "ENCLAVE_UNREACHABLE", message: "connect refused" }));
    expect(unreachable).toMatchObject({ kind: "transport", code: "ENCLAVE_UNREACHABLE", status: 502 });
    expect(unreachable.message).toBe(
      `http://host.test/v1/attestation: HTTP 502: the server at that URL reports that it cannot reach the enclave: the server at that URL said: "connect refused"${ENCLAVE_UNREACHABLE_HINT}`,
    );
    const replayed = await refusedWith(409, body({ code: "REQUEST_REPLAYED", message: "seen" }));
    expect(replayed).toMatchObject({ kind: "integrity", code: "REQUEST_REPLAYED", status: 409 });
    expect(replayed.message).toBe(
      'http://host.test/v1/attestation: HTTP 409: the server at that URL reports that the enclave refused the sealed request: REQUEST_REPLAYED: the server at that URL said: "seen"',
    );
  });

  it("names the enclave, not the host, for each code saying the host cannot reach it; integrity for each envelope refusal", async () => {
    for (const [status, code, hint] of [
      [502, "ENCLAVE_UNREACHABLE", ENCLAVE_UNREACHABLE_HINT],
      [504, "ENCLAVE_TIMEOUT", "; retry later (the enclave sent no answer in time: it may be overloaded)"],
    ] as const) {
      const error = await refusedWith(status, body({ code, message: "m" }));
      expect(error, code).toMatchObject({ kind: "transport", code, status, origin: "host" });
      // With what to do: retry, and, for whoever runs the host, where to look.
      expect(error.message).toBe(
        `http://host.test/v1/attestation: HTTP ${status}: the server at that URL reports that it cannot reach the enclave: the server at that URL said: "m"${hint}`,
      );
    }
    for (const code of ["DECRYPTION_FAILED", "HEADER_MISMATCH", "REQUEST_REPLAYED"]) {
      const error = await refusedWith(400, body({ code, message: "m" }));
      expect(error, code).toMatchObject({ kind: "integrity", code, status: 400, origin: "host" });
    }
    // 403 as 401: the key was refused (configuration: the caller's to fix, not a retry); but a key
    // the host knows, lacking a permission: the remedy is the permission, not the key the operator issued.
    const forbidden = await refusedWith(403, body({ code: "FORBIDDEN", message: "m" }));
    expect(forbidden).toMatchObject({ kind: "configuration", code: "FORBIDDEN", status: 403 });
    expect(forbidden.message).toBe(
      `http://host.test/v1/attestation: HTTP 403: the API key was refused: the server at that URL said: "m"${KEY_PERMISSION("the")}`,
    );
  });
});

describe("connect() names the URL it could not use", () => {
  const BASE_URL_HINT =
    "; is url (--url) the host's base URL, as cloister up prints it (not the enclave's or the key broker's address, no path)?";

  it("a 404 on the attestation route names the full URL requested and says what --url must be", async () => {
    const requested: string[] = [];
    const transport: Transport = async (url) => {
      requested.push(url);
      return {
        status: 404,
        header: () => null,
        body: (async function* () {})(),
        text: async () => body({ code: "NOT_FOUND", message: "no such route" }),
      };
    };
    const policy = await devPolicy();
    for (const url of ["http://127.0.0.1:8443", "http://127.0.0.1:8080/v1"]) {
      const error = await connect({ url, policy, apiKey: "ck_test", transport }).catch((e) => e);
      expect(error).toMatchObject({ kind: "transport", code: "NOT_FOUND", status: 404 });
      // Whatever answers there may not be the host (the enclave's port answers just so): not "host said".
      expect(error.message).toBe(
        `${requested.at(-1)}: HTTP 404 NOT_FOUND: the server at that URL said: "no such route"${BASE_URL_HINT}`,
      );
    }
    const silent: Transport = async () => ({
      status: 404,
      header: () => null,
      body: (async function* () {})(),
      text: async () => "",
    });
    const none = await connect({ url: "http://127.0.0.1:8443", policy, apiKey: "ck_test", transport: silent }).catch(
      (e) => e,
    );
    expect(none.message).toBe(
      `http://127.0.0.1:8443/v1/attestation: HTTP 404 HTTP_404: the server at that URL gave no message${BASE_URL_HINT}`,
    );
    expect(requested).toEqual(["http://127.0.0.1:8443/v1/attestation", "http://127.0.0.1:8080/v1/v1/attestation"]);
  });

  it("HOST_UNREACHABLE gives the cause: a refused connection, and https to a plain-HTTP host", async () => {
    const { createServer } = await import("node:http");
    const plain = createServer((_req, res) => res.end("{}"));
    await new Promise<void>((resolve) => plain.listen(0, "127.0.0.1", resolve));
    const port = (plain.address() as { port: number }).port;
    // A port held refused for the test (not a port-0 pick freed, which another process could take).
    const { port: closedPort, close } = await refusedPort();
    onTestFinished(close);
    try {
      const policy = await devPolicy();
      for (const transportOptions of [{}, { fetch: globalThis.fetch }]) {
        const refusal = (url: string) =>
          connect({ url, policy, apiKey: "ck_test", ...transportOptions }).catch((e) => e);
        const tls = await refusal(`https://127.0.0.1:${port}`);
        expect(tls).toMatchObject({ kind: "transport", code: "HOST_UNREACHABLE" });
        expect(tls.message).toMatch(
          new RegExp(
            `^cannot reach the host at https://127\\.0\\.0\\.1:${port} \\((EPROTO|ERR_SSL_WRONG_VERSION_NUMBER): the TLS handshake failed: the server answered in plain HTTP; use an http:// URL for it, or put TLS in front of it\\)$`,
          ),
        );
        const refused = await refusal(`http://127.0.0.1:${closedPort}`);
        expect(refused.message).toBe(
          `cannot reach the host at http://127.0.0.1:${closedPort} (ECONNREFUSED: nothing listens there; is the host running, and is this its port?)`,
        );
      }
    } finally {
      await new Promise((resolve) => plain.close(resolve));
    }
  });
});

describe("connect() follows no redirect", () => {
  // A host that redirects every request to a second server, which counts what reaches it.
  async function redirectingHost(status: number) {
    const { createServer } = await import("node:http");
    const reached: string[] = [];
    const target = createServer((req, res) => {
      reached.push(`${req.method} ${req.url} ${req.headers.authorization ?? ""}`);
      res.end("{}");
    });
    await new Promise<void>((resolve) => target.listen(0, "127.0.0.1", resolve));
    const targetPort = (target.address() as { port: number }).port;
    const host = createServer((req, res) => {
      res.writeHead(status, { location: `http://127.0.0.1:${targetPort}${req.url}` }).end();
    });
    await new Promise<void>((resolve) => host.listen(0, "127.0.0.1", resolve));
    const url = `http://127.0.0.1:${(host.address() as { port: number }).port}`;
    const close = () => Promise.all([target, host].map((s) => new Promise((resolve) => s.close(resolve))));
    return { url, reached, close };
  }

  for (const status of [300, 302, 307]) {
    it(`refuses a ${status} with HOST_REDIRECT over node:http and over fetch, and sends nothing to its target`, async () => {
      const host = await redirectingHost(status);
      try {
        const policy = await devPolicy();
        for (const transportOptions of [{}, { fetch: globalThis.fetch }]) {
          const error = await connect({ url: host.url, policy, apiKey: "ck_secret_key", ...transportOptions }).catch(
            (e) => e,
          );
          expect(error).toBeInstanceOf(ClientError);
          expect(error).toMatchObject({ kind: "transport", code: "HOST_REDIRECT", status });
          expect(error.message).toBe(
            `${host.url}/v1/attestation: the server at that URL answered with a redirect (HTTP ${status}), which the SDK does not follow: give the address it redirects to`,
          );
        }
        expect(host.reached).toEqual([]);
      } finally {
        await host.close();
      }
    });
  }

  it("names a browser's opaque redirect (status 0) without a status", async () => {
    const transport: Transport = async () => ({
      status: 0,
      header: () => null,
      body: (async function* () {})(),
      text: async () => "",
    });
    const error = await connect({
      url: "http://host.test",
      policy: await devPolicy(),
      apiKey: "ck_test",
      transport,
    }).catch((e) => e);
    expect(error).toMatchObject({ kind: "transport", code: "HOST_REDIRECT" });
    expect(error.message).toBe(
      "http://host.test/v1/attestation: the server at that URL answered with a redirect, which the SDK does not follow: give the address it redirects to",
    );
  });
});

describe("connect() and fetchAttestationAnswer: the host's attestation answer", () => {
  const answering =
    (text: string): Transport =>
    async () => ({
      status: 200,
      header: () => null,
      body: (async function* () {})(),
      text: async () => text,
    });

  it("refuses a base URL with a query or fragment before asking anything (BAD_URL), its token never shown", async () => {
    // The routes go after the base URL: behind a query or fragment they would never reach the host,
    // and the messages that name the URL asked (the one below, a 404's) would repeat the query.
    const policy = await devPolicy();
    for (const [url, shown] of [
      ["http://host.test/?token=s3cret", '"http://host.test/?… (the rest not shown)"'],
      ["http://host.test/base#s3cret", '"http://host.test/base#… (the rest not shown)"'],
      ["http://host.test/?", '"http://host.test/?… (the rest not shown)"'],
    ] as const) {
      let asked = 0;
      const transport: Transport = async () => {
        asked++;
        return { status: 200, header: () => null, body: (async function* () {})(), text: async () => "not json" };
      };
      const message = `url: expected the host's base URL without a query or fragment (each route is added after it), found ${shown}`;
      for (const attempt of [
        () => connect({ url, policy, apiKey: "ck_test", transport }),
        () => fetchAttestationAnswer({ url, apiKey: "ck_test", transport }),
      ]) {
        const error = await attempt().catch((e: unknown) => e);
        expect(error, url).toMatchObject({ kind: "configuration", code: "BAD_URL", message });
        expect(String((error as Error).message)).not.toContain("s3cret");
      }
      expect(asked, url).toBe(0);
    }
  });

  it("fetchAttestationAnswer refuses a malformed enclaveKeyId (BAD_OPTION) before it is put in a URL, and asks for a well-formed one", async () => {
    const asked: string[] = [];
    const transport: Transport = async (url) => {
      asked.push(url);
      return answering('{"document":"d"}')(url, { method: "GET", headers: {} });
    };
    const id = "0123456789abcdef0123456789abcdef";
    for (const bad of [id.toUpperCase(), `${id}&enclave=${id}`, `../${id.slice(3)}`, id.slice(2), "", 42, null]) {
      const error = await rejectionOf(
        fetchAttestationAnswer({ url: "http://host.test", apiKey: "ck_test", transport, enclaveKeyId: bad as string }),
        ClientError,
      );
      expect(error, String(bad)).toMatchObject({ kind: "configuration", code: "BAD_OPTION", field: "enclaveKeyId" });
      expect(error.message).toMatch(/^enclaveKeyId: expected an enclave key id of 32 lower-case hex digits, found /);
    }
    expect(asked).toEqual([]);
    await fetchAttestationAnswer({ url: "http://host.test", apiKey: "ck_test", transport, enclaveKeyId: id });
    expect(asked).toEqual([`http://host.test/v1/attestation?enclave=${id}`]);
  });

  it("refuses an answer that is not a JSON object with a string document (BAD_RESPONSE), both ways, before verifying anything", async () => {
    const policy = await devPolicy();
    // Each names the URL asked and asks whether it is a Cloister host's base URL: something else
    // answering there (a web server, an API of another kind) is the likely cause.
    const hint =
      "; is url (--url) the host's base URL, as cloister up prints it (not the enclave's or the key broker's address, no path)?";
    const said = (problem: string) => `attestation: http://host.test/v1/attestation: ${problem}${hint}`;
    const noDocument = (found: string) => said(`response field document: expected a string, found ${found}`);
    for (const [text, message] of [
      ['{"document":42}', noDocument("number")],
      ['{"document":null}', noDocument("null")],
      ["{}", noDocument("undefined")],
      ["not json", said("expected a JSON object, found text that is not JSON")],
      ["null", said("expected a JSON object, found null")],
      ["42", said("expected a JSON object, found a number")],
      ['"a document"', said("expected a JSON object, found a string")],
    ] as const) {
      const transport = answering(text);
      await expect(connect({ url: "http://host.test", policy, apiKey: "ck_test", transport })).rejects.toMatchObject({
        kind: "transport",
        code: "BAD_RESPONSE",
        message,
      });
      await expect(
        fetchAttestationAnswer({ url: "http://host.test", apiKey: "ck_test", transport }),
      ).rejects.toMatchObject({ kind: "transport", code: "BAD_RESPONSE", message });
    }
  });
});

describe("the host's other answers: shapes, size bounds, deadlines and aborts", () => {
  afterEach(closeServers);

  it("refuses a challenge answer that is not JSON or has no string answer, naming the route", async () => {
    for (const [text, problem] of [
      ["not json", "response is not JSON"],
      ['{"answer":7}', "response field answer: expected a string, found number"],
      ['{"answer":null}', "response field answer: expected a string, found object"],
      ["{}", "response field answer: expected a string, found undefined"],
    ] as const) {
      const real = fetchTransport(fetch);
      const transport: Transport = (url, request) =>
        url.includes("/attestation/challenge")
          ? Promise.resolve({ status: 200, header: () => null, body: [], text: async () => text })
          : real(url, request);
      const error = await connectTo({ transport }).catch((e: unknown) => e);
      expect(error, text).toMatchObject({
        kind: "transport",
        code: "BAD_RESPONSE",
        message: expect.stringMatching(/^\/v1\/attestation\/challenge\?enclave=[^:]+: /),
      });
      expect((error as Error).message.endsWith(`: ${problem}`), (error as Error).message).toBe(true);
    }
  });

  it("reads at most 4 MiB of an attestation answer, 256 KiB of a signed nonce answer, 64 KiB of an error body", async () => {
    const asked: [string, number][] = [];
    const real = fetchTransport(fetch);
    const transport: Transport = async (url, request) => {
      const route = new URL(url).pathname;
      if (route === "/sealed") {
        const text = async (max: number) => {
          asked.push([route, max]);
          return "{}";
        };
        return { status: 500, header: () => null, body: [], text };
      }
      const response = await real(url, request);
      const text = (max: number) => {
        asked.push([route, max]);
        return response.text(max);
      };
      return { ...response, text };
    };
    const { session } = await connectTo({ transport });
    await session.auditCheckpoint();
    await expect(session.complete("hi")).rejects.toMatchObject({ code: "HTTP_500" });
    expect(asked).toEqual([
      ["/attestation", 4 * 1024 * 1024],
      ["/attestation/challenge", 256 * 1024],
      ["/audit/checkpoint", 256 * 1024],
      ["/sealed", 64 * 1024],
    ]);
  });

  it("an attestation the host does not answer in attestationTimeoutMs is HOST_TIMEOUT, the caller's abort ABORTED", async () => {
    const policy = await devPolicy();
    // Answers only when the request is aborted, with the abort's reason, as fetch does.
    const silent: Transport = (_url, request) =>
      new Promise((_, reject) => request.signal?.addEventListener("abort", () => reject(request.signal?.reason)));
    const options = { url: "http://host.test", policy, apiKey: "ck_test", transport: silent };
    await expect(connect({ ...options, attestationTimeoutMs: 50 })).rejects.toMatchObject({
      kind: "transport",
      code: "HOST_TIMEOUT",
      message: "the host at http://host.test did not answer in time",
    });
    // The caller's own timeout is the caller's abort (said to have timed out), not the SDK's deadline.
    const { session } = await connectTo({
      transport: (url, request) =>
        url.endsWith("/sealed") ? silent(url, request) : fetchTransport(fetch)(url, request),
    });
    await expect(session.complete("hi", { signal: AbortSignal.timeout(50) })).rejects.toMatchObject({
      kind: "transport",
      code: "ABORTED",
      message: "request timed out: the caller's signal (AbortSignal.timeout) fired",
    });
  });
});

describe("apiKeySource: where the key came from, named by every refusal of it, never the key", () => {
  afterEach(closeServers);

  it("a re-verification refused after a successful connect names it; without it, where keys come from", async () => {
    for (const apiKeySource of ["--api-key-file my-key", undefined]) {
      const { url } = await serveDeployment({ refuse: (path, n) => path === "/v1/attestation" && n > 0 });
      const session = await connect({
        url,
        policy: await devPolicy(),
        apiKey: "ck_source_test_0123456789",
        reattestAfterMs: 1,
        ...(apiKeySource === undefined ? {} : { apiKeySource }),
      });
      await new Promise((resolve) => setTimeout(resolve, 5));
      const error = (await session.complete("hello").catch((e: unknown) => e)) as ClientError;
      expect(error).toBeInstanceOf(ClientError);
      expect(error.code).toBe("UNAUTHENTICATED");
      expect(error.origin).toBe("host");
      expect(error.message).not.toContain("ck_source_test");
      if (apiKeySource === undefined) {
        expect(error.message).toBe(
          `host refused the API key: host said: "missing or unknown API key (Authorization: Bearer <key>)"${KEY_ORIGIN("this")}`,
        );
      } else {
        expect(error.message).toBe(
          'host refused the API key: host said: "missing or unknown API key (Authorization: Bearer <key>)"; the key sent came from --api-key-file my-key: give the key this host issued',
        );
      }
    }
  });

  it("a refusal of the first request names it too, without saying the host refused (nothing has shown it is one)", async () => {
    const { url } = await serveDeployment({ refuse: (path) => path === "/v1/attestation" });
    const error = await rejectionOf(
      connect({
        url,
        policy: await devPolicy(),
        apiKey: "ck_source_test_0123456789",
        apiKeySource: "--api-key-file my-key",
      }),
      ClientError,
    );
    expect(error).toMatchObject({ kind: "configuration", code: "UNAUTHENTICATED", status: 401, origin: "host" });
    expect(error.message).toBe(
      `${url}/v1/attestation: HTTP 401: the API key was refused: the server at that URL said: "missing or unknown API key (Authorization: Bearer <key>)"; the key sent came from --api-key-file my-key: give the key the host issued`,
    );
  });

  it("a 403 (a key the host knows, lacking the permission) names where it came from and the permission as the remedy", async () => {
    const transport: Transport = async () => ({
      status: 403,
      header: () => null,
      body: (async function* () {})(),
      text: async () => body({ code: "FORBIDDEN", message: 'API key lacks the "attest" permission' }),
    });
    const error = await rejectionOf(
      connect({
        url: "http://host.test",
        policy: await devPolicy(),
        apiKey: "ck_source_test_0123456789",
        apiKeySource: "--api-key-file my-key",
        transport,
      }),
      ClientError,
    );
    expect(error).toMatchObject({ kind: "configuration", code: "FORBIDDEN", status: 403 });
    expect(error.message).not.toContain("ck_source_test");
    expect(error.message).toBe(
      'http://host.test/v1/attestation: HTTP 403: the API key was refused: the server at that URL said: "API key lacks the \\"attest\\" permission"' +
        `; the key sent came from --api-key-file my-key${KEY_PERMISSION("the")}`,
    );
  });

  it("a malformed key is named by it instead of apiKey", async () => {
    const error = (await connect({
      url: "http://127.0.0.1:9",
      policy: await devPolicy(),
      apiKey: "ck two",
      apiKeySource: "CLOISTER_API_KEY",
    }).catch((e: unknown) => e)) as ClientError;
    expect(error.code).toBe("BAD_API_KEY");
    expect(error.message).toMatch(/^CLOISTER_API_KEY: expected printable ASCII without white space/);
  });
});
