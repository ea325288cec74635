/**
 * End to end, real processes: bad input to the host (and, as a compromised host would send it,
 * straight to the enclave) gets a clear 4xx with a stable error code, never a crash: both
 * processes still run and answer afterwards. Also: an unreachable host is a transport error.
 */
import { request as httpRequest, type IncomingHttpHeaders } from "node:http";
import { afterAll, beforeAll, describe, expect, it, onTestFinished } from "vitest";
import { connect, type Session } from "../../client/sdk.ts";
import { openResponseFrames, type ResponseEvent, sealRequest } from "../../sealed/index.ts";
import { refusedPort } from "../helpers/refused-port.ts";
import { bootDeployment, type E2eDeployment } from "./helpers/deployment.ts";
import { clientErrorOf, drain } from "./helpers/stream.ts";
import { ENVELOPE_OFFSETS } from "./helpers/tamper-proxy.ts";

const GREEDY_CHAT_ANSWER =
  " The host only forwards sealed bytes and the enclave keeps every prompt private inside a confidential virtual machine.";
const HOST_MAX_REQUEST_BYTES = 1024 * 1024;
const ENCLAVE_MAX_SEALED_BYTES = 16 * 1024 * 1024 + 1024;

let deployment: E2eDeployment;
let session: Session;
let hostUrl: string;
let apiKey: string;

beforeAll(async () => {
  deployment = await bootDeployment("sim-snp");
  hostUrl = deployment.running.hostUrl;
  apiKey = deployment.files.apiKey;
  session = await connect({ url: hostUrl, policy: deployment.files.policy, apiKey });
});

afterAll(async () => {
  await deployment?.stop();
});

async function post(
  url: string,
  body: Uint8Array | string | ReadableStream<Uint8Array>,
  options: { auth?: string | null; contentType?: string } = {},
) {
  const headers: Record<string, string> = { "content-type": options.contentType ?? "application/octet-stream" };
  const auth = options.auth === undefined ? `Bearer ${apiKey}` : options.auth;
  if (auth !== null) headers.authorization = auth;
  const response = await fetch(url, {
    method: "POST",
    headers,
    body: body as BodyInit,
    ...(body instanceof ReadableStream ? { duplex: "half" } : {}),
  } as RequestInit);
  const text = await response.text();
  let json: { error?: { code?: string; message?: string } } = {};
  try {
    json = JSON.parse(text);
  } catch {
    // not JSON: the assertions below fail with the status and text
  }
  return { status: response.status, code: json.error?.code, message: json.error?.message ?? "", text };
}

/**
 * POSTs a body of up to `total` bytes, one 64 KiB chunk at a time (chunked, or with `total` as its
 * declared Content-Length), and stops sending as soon as the server answers (a server may answer
 * before it has read the whole body).
 */
function streamUntilAnswered(
  url: string,
  total: number,
  options: { declareLength?: boolean; contentType?: string } = {},
): Promise<{ status: number; headers: IncomingHttpHeaders; body: string; sent: number }> {
  return new Promise((resolve, reject) => {
    let answered = false;
    let sent = 0;
    const req = httpRequest(url, {
      method: "POST",
      headers: {
        authorization: `Bearer ${apiKey}`,
        "content-type": options.contentType ?? "application/octet-stream",
        ...(options.declareLength === true ? { "content-length": String(total) } : {}),
      },
    });
    req.on("response", (response) => {
      answered = true;
      const chunks: Buffer[] = [];
      response.on("data", (c: Buffer) => chunks.push(c));
      response.on("end", () =>
        resolve({
          status: response.statusCode ?? 0,
          headers: response.headers,
          body: Buffer.concat(chunks).toString("utf8"),
          sent,
        }),
      );
    });
    req.on("error", (error) => {
      // Writing into a connection the server has closed after answering is expected.
      if (!answered) reject(error);
    });
    const chunk = new Uint8Array(64 * 1024);
    const next = () => {
      if (answered || req.destroyed) return;
      if (sent >= total) {
        req.end();
        return;
      }
      const part = chunk.subarray(0, Math.min(chunk.length, total - sent));
      sent += part.length;
      req.write(part, () => setTimeout(next, 2));
    };
    next();
  });
}

/** A well-formed envelope sealed to this enclave (optionally with another client clock). */
async function validEnvelope(now?: number): Promise<Uint8Array> {
  const sealed = await sealRequest({
    enclavePublicKey: session.enclave.sealingPublicKey,
    kind: "chat",
    body: { messages: [{ role: "user", content: "hello" }] },
    ...(now === undefined ? {} : { now }),
  });
  return sealed.envelope;
}

function edit(envelope: Uint8Array, change: (bytes: Uint8Array, view: DataView) => void): Uint8Array {
  const copy = new Uint8Array(envelope);
  change(copy, new DataView(copy.buffer));
  return copy;
}

describe("identity: missing or wrong API keys are refused before anything else", () => {
  const routes = [
    { method: "GET", path: "/v1/attestation" },
    { method: "POST", path: "/v1/attestation/challenge" },
    { method: "POST", path: "/v1/sealed" },
  ];
  for (const route of routes) {
    for (const auth of [null, "Bearer ck_not-a-real-key", "Basic dXNlcjpwYXNz"]) {
      it(`${route.method} ${route.path} with ${auth === null ? "no" : `"${auth.split(" ")[0]} …"`} Authorization → 401 UNAUTHENTICATED`, async () => {
        const headers: Record<string, string> = auth === null ? {} : { authorization: auth };
        const response = await fetch(`${hostUrl}${route.path}`, {
          method: route.method,
          headers,
          ...(route.method === "POST" ? { body: await validEnvelope() } : {}),
        } as RequestInit);
        expect(response.status).toBe(401);
        const body = (await response.json()) as { error: { code: string; message: string } };
        expect(body.error.code).toBe("UNAUTHENTICATED");
        expect(JSON.stringify(body)).not.toContain("not-a-real-key");
      });
    }
  }

  it("the SDK reports a wrong API key as a configuration error, before any verification", async () => {
    const error = await clientErrorOf(
      connect({ url: hostUrl, policy: deployment.files.policy, apiKey: "ck_wrong-key-for-this-host" }),
    );
    expect(error.kind).toBe("configuration");
    expect(error.code).toBe("UNAUTHENTICATED");
    expect(error.message).not.toContain("wrong-key-for-this-host");
  });
});

describe("malformed sealed requests → 4xx with a stable code", () => {
  const cases: { name: string; body: () => Promise<Uint8Array>; status: number; code: string }[] = [
    { name: "an empty body", body: async () => new Uint8Array(), status: 400, code: "ENVELOPE_MALFORMED" },
    {
      name: "50 bytes of noise",
      body: async () => new Uint8Array(50).fill(0xa5),
      status: 400,
      code: "ENVELOPE_MALFORMED",
    },
    {
      name: "an unknown protocol version (2)",
      body: async () => edit(await validEnvelope(), (b) => void (b[ENVELOPE_OFFSETS.version] = 2)),
      status: 400,
      code: "UNSUPPORTED_VERSION",
    },
    {
      name: "an unknown kind byte",
      body: async () => edit(await validEnvelope(), (b) => void (b[ENVELOPE_OFFSETS.kind] = 9)),
      status: 400,
      code: "ENVELOPE_MALFORMED",
    },
    {
      name: "a ciphertext length that does not match the body",
      body: async () =>
        edit(await validEnvelope(), (_, v) =>
          v.setUint32(ENVELOPE_OFFSETS.length, v.getUint32(ENVELOPE_OFFSETS.length) + 1),
        ),
      status: 400,
      code: "ENVELOPE_MALFORMED",
    },
    {
      name: "a ciphertext length over 16 MiB",
      body: async () => edit(await validEnvelope(), (_, v) => v.setUint32(ENVELOPE_OFFSETS.length, 0xffff_ffff)),
      status: 400,
      code: "ENVELOPE_MALFORMED",
    },
    {
      name: "trailing bytes after the ciphertext",
      body: async () => {
        const e = await validEnvelope();
        const longer = new Uint8Array(e.length + 1);
        longer.set(e);
        return longer;
      },
      status: 400,
      code: "ENVELOPE_MALFORMED",
    },
    {
      name: "an unknown enclave key id",
      body: async () =>
        edit(await validEnvelope(), (b) => b.fill(0x42, ENVELOPE_OFFSETS.keyId, ENVELOPE_OFFSETS.length)),
      status: 409,
      code: "WRONG_ENCLAVE_KEY",
    },
    {
      name: "this enclave's key id over a ciphertext of zeros",
      body: async () => edit(await validEnvelope(), (b) => b.fill(0, ENVELOPE_OFFSETS.ciphertext)),
      status: 400,
      code: "DECRYPTION_FAILED",
    },
    {
      name: "a request sealed with a client clock 10 minutes behind",
      body: () => validEnvelope(Date.now() - 10 * 60_000),
      status: 400,
      code: "REQUEST_STALE",
    },
    {
      name: "a body over the host's 1 MiB limit",
      body: async () => new Uint8Array(HOST_MAX_REQUEST_BYTES + 1),
      status: 413,
      code: "BODY_TOO_LARGE",
    },
  ];
  for (const c of cases) {
    it(`${c.name} → ${c.status} ${c.code}`, async () => {
      const result = await post(`${hostUrl}/v1/sealed`, await c.body());
      expect({ status: result.status, code: result.code }).toEqual({ status: c.status, code: c.code });
      expect(result.message.length).toBeGreaterThan(0);
    });
  }

  it("an oversize body streamed without a Content-Length → 413 BODY_TOO_LARGE, Connection: close", async () => {
    const result = await streamUntilAnswered(`${hostUrl}/v1/sealed`, 4 * HOST_MAX_REQUEST_BYTES);
    expect(result.status).toBe(413);
    expect(result.headers.connection).toBe("close");
    expect(JSON.parse(result.body)).toMatchObject({ error: { code: "BODY_TOO_LARGE" } });
    // The host stopped reading soon after its limit instead of taking in the whole body.
    expect(result.sent).toBeLessThan(4 * HOST_MAX_REQUEST_BYTES);
  });

  it("a body the enclave can open but does not accept → a sealed REQUEST_INVALID error (the SDK refuses it before sending)", async () => {
    // Sealed by hand: the SDK checks the enclave's limits first and never sends this body.
    const { envelope, context } = await sealRequest({
      enclavePublicKey: session.enclave.sealingPublicKey,
      kind: "chat",
      body: { messages: [] },
    });
    const response = await fetch(`${hostUrl}/v1/sealed`, {
      method: "POST",
      headers: { authorization: `Bearer ${apiKey}`, "content-type": "application/octet-stream" },
      body: envelope as BodyInit,
    });
    expect(response.status).toBe(200);
    const events: ResponseEvent[] = [];
    for await (const event of openResponseFrames(context, response.body as ReadableStream<Uint8Array>)) {
      events.push(event);
    }
    expect(events).toEqual([expect.objectContaining({ type: "error", code: "REQUEST_INVALID" })]);
    const local = await drain(session.chat([]));
    expect(local.error).toMatchObject({ name: "ClientError", kind: "configuration", code: "BAD_MESSAGES" });
  });
});

describe("malformed attestation challenges and unknown routes", () => {
  const challenge = `/v1/attestation/challenge`;
  const cases: { name: string; body: string; status: number; code: string }[] = [
    { name: "not JSON", body: "nonce=please", status: 400, code: "CHALLENGE_MALFORMED" },
    { name: "no nonce field", body: "{}", status: 400, code: "CHALLENGE_MALFORMED" },
    { name: "a nonce that is not a string", body: '{"nonce": 42}', status: 400, code: "CHALLENGE_MALFORMED" },
    { name: "an 8-byte nonce", body: '{"nonce":"AAAAAAAAAAA"}', status: 400, code: "CHALLENGE_MALFORMED" },
    {
      name: "a body over 1 KiB",
      body: JSON.stringify({ nonce: "A".repeat(2000) }),
      status: 413,
      code: "BODY_TOO_LARGE",
    },
  ];
  for (const c of cases) {
    it(`challenge with ${c.name} → ${c.status} ${c.code}`, async () => {
      const result = await post(`${hostUrl}${challenge}`, c.body, { contentType: "application/json" });
      expect({ status: result.status, code: result.code }).toEqual({ status: c.status, code: c.code });
    });
  }

  it("unknown routes and methods → 404 NOT_FOUND", async () => {
    for (const [method, path] of [
      ["GET", "/v2/sealed"],
      ["GET", "/v1/sealed"],
      ["DELETE", "/v1/attestation"],
    ] as const) {
      const response = await fetch(`${hostUrl}${path}`, { method, headers: { authorization: `Bearer ${apiKey}` } });
      expect(response.status, `${method} ${path}`).toBe(404);
      expect(((await response.json()) as { error: { code: string } }).error.code).toBe("NOT_FOUND");
    }
  });
});

describe("the enclave itself refuses garbage (as a compromised host would send it)", () => {
  const enclave = () => deployment.running.enclaveUrl;
  it("malformed, unknown-version and unknown-key envelopes → 4xx with the protocol's codes", async () => {
    const envelope = await validEnvelope();
    const cases: [Uint8Array, number, string][] = [
      [new Uint8Array(3), 400, "ENVELOPE_MALFORMED"],
      [edit(envelope, (b) => void (b[0] = 0x7f)), 400, "UNSUPPORTED_VERSION"],
      [edit(envelope, (b) => b.fill(1, ENVELOPE_OFFSETS.keyId, ENVELOPE_OFFSETS.length)), 409, "WRONG_ENCLAVE_KEY"],
      [edit(envelope, (b) => void (b[ENVELOPE_OFFSETS.kind] = 2)), 400, "HEADER_MISMATCH"],
    ];
    for (const [body, status, code] of cases) {
      const result = await post(`${enclave()}/sealed`, body, { auth: null });
      expect({ status: result.status, code: result.code }).toEqual({ status, code });
    }
  });

  it(`a body over ${ENCLAVE_MAX_SEALED_BYTES} bytes, declared or streamed → 413 BODY_TOO_LARGE, Connection: close, the rest unread`, async () => {
    for (const declareLength of [true, false]) {
      const total = declareLength ? ENCLAVE_MAX_SEALED_BYTES + 1 : 2 * ENCLAVE_MAX_SEALED_BYTES;
      const result = await streamUntilAnswered(`${enclave()}/sealed`, total, { declareLength });
      expect(result.status).toBe(413);
      expect(result.headers.connection).toBe("close");
      expect(JSON.parse(result.body)).toMatchObject({ error: { code: "BODY_TOO_LARGE" } });
      expect(result.sent).toBeLessThan(total);
    }
  });

  it("a malformed challenge → 400 CHALLENGE_MALFORMED", async () => {
    const result = await post(`${enclave()}/attestation/challenge`, "[", {
      auth: null,
      contentType: "application/json",
    });
    expect({ status: result.status, code: result.code }).toEqual({ status: 400, code: "CHALLENGE_MALFORMED" });
  });

  it("a nonce question over 1 KiB, declared or streamed → 413 BODY_TOO_LARGE, the rest unread", async () => {
    for (const path of ["/attestation/challenge", "/audit/checkpoint"]) {
      for (const declareLength of [true, false]) {
        const total = 8 * 1024 * 1024;
        const result = await streamUntilAnswered(`${enclave()}${path}`, total, {
          declareLength,
          contentType: "application/json",
        });
        expect(result.status, `${path} ${declareLength}`).toBe(413);
        expect(JSON.parse(result.body)).toMatchObject({ error: { code: "BODY_TOO_LARGE" } });
        expect(result.sent).toBeLessThan(total);
      }
    }
  });
});

describe("after all the bad input", () => {
  it("both processes still run and answer: health checks and a genuine sealed chat", async () => {
    expect(await deployment.crashed()).toBeNull();
    for (const url of [hostUrl, deployment.running.enclaveUrl]) {
      const response = await fetch(`${url}/healthz`);
      expect(response.status).toBe(200);
      expect(await response.json()).toMatchObject({ status: "ok" });
    }
    const result = await drain(session.chat([{ role: "user", content: "What does the enclave do?" }]));
    expect(result.error).toBeUndefined();
    expect(result.text).toBe(GREEDY_CHAT_ANSWER);
  });

  it("a host nobody listens on → transport error HOST_UNREACHABLE", async () => {
    // A port held refused for the test, not a port-0 pick freed: another process could take that.
    const { port, close } = await refusedPort();
    onTestFinished(close);
    const error = await clientErrorOf(
      connect({ url: `http://127.0.0.1:${port}`, policy: deployment.files.policy, apiKey }),
    );
    expect(error.kind).toBe("transport");
    expect(error.code).toBe("HOST_UNREACHABLE");
    expect(error.message).toContain(`127.0.0.1:${port}`);
  });
});
