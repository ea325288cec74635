/**
 * The OpenAI-compatible proxy (client/proxy.ts) over a session attested to an in-process enclave
 * with a scripted engine: failures before the first token are HTTP errors in OpenAI's shape; a
 * failure mid-stream is an error event and never `[DONE]`; malformed or unsupported requests are
 * refused naming the parameter; answers never carry the audit opening; OpenAI's model, method and
 * context-length errors. (With the real `openai` SDK and a real deployment:
 * test/e2e/proxy.test.ts.)
 */
import { request as httpRequest } from "node:http";
import { afterEach, describe, expect, it, vi } from "vitest";
import { attestedModelId, createProxyApp, PROXY_MAX_BODY_BYTES } from "../../client/proxy.ts";
import type { ChatEvent, Session } from "../../client/sdk.ts";
import { listen } from "../../enclave/http.ts";
import { REQUEST_LIMITS as L } from "../../sealed/request-limits.ts";
import { usage } from "../enclave/helpers.ts";
import { closeServers, connectTo, enclaveSays, type Script, serve } from "./helpers.ts";

afterEach(closeServers);

const TOKEN = "local-token-0123456789abcdef0123456789";

async function proxyFor(script?: Script, wrap: (session: Session) => Session = (s) => s) {
  const { session, paths } = await connectTo(script === undefined ? {} : { script });
  const log: string[] = [];
  const url = await serve(
    createProxyApp({ session: wrap(session), token: TOKEN, log: (line) => log.push(line) }).fetch,
  );
  const model = attestedModelId(session);
  const post = (path: string, body: unknown, token = TOKEN) =>
    fetch(`${url}${path}`, {
      method: "POST",
      headers: { authorization: `Bearer ${token}`, "content-type": "application/json" },
      body: typeof body === "string" ? body : JSON.stringify(body),
    });
  const get = (path: string, init: RequestInit = {}) =>
    fetch(`${url}${path}`, { ...init, headers: { authorization: `Bearer ${TOKEN}` } });
  return { url, model, post, get, log, paths };
}

/**
 * The session, with every done event its chat and completeStream hand the proxy kept in `done`, and
 * the arguments of every such call in `calls`.
 */
function tapDoneEvents(done: Extract<ChatEvent, { type: "done" }>[], calls: unknown[][] = []) {
  const tap = (events: AsyncGenerator<ChatEvent>) =>
    (async function* () {
      for await (const event of events) {
        if (event.type === "done") done.push(event);
        yield event;
      }
    })();
  return (session: Session): Session =>
    new Proxy(session, {
      get(target, name) {
        if (name === "chat") {
          return (...args: Parameters<Session["chat"]>) => {
            calls.push(args);
            return tap(target.chat(...args));
          };
        }
        if (name === "completeStream") {
          return (...args: Parameters<Session["completeStream"]>) => {
            calls.push(args);
            return tap(target.completeStream(...args));
          };
        }
        const value: unknown = Reflect.get(target, name, target);
        return typeof value === "function" ? value.bind(target) : value;
      },
    });
}

/**
 * An engine error that keeps its code: ScriptedEngine stamps GENERATION_FAILED on what it throws,
 * and this is what enclave/engine.ts throws for a prompt over the model's context size.
 */
class PromptTooLong extends Error {
  get code(): string {
    return "PROMPT_TOO_LONG";
  }
  set code(_stamped: string) {}
}

/** An engine error that keeps the code it is given (as PromptTooLong keeps its own). */
class EngineRefusal extends Error {
  constructor(
    readonly kept: string,
    message: string,
  ) {
    super(message);
  }
  get code(): string {
    return this.kept;
  }
  set code(_stamped: string) {}
}

/** Reads a body to its end, or to the point where the transfer was cut. */
async function readUntilCut(response: Response): Promise<{ text: string; cut: boolean }> {
  const reader = response.body!.getReader();
  const decoder = new TextDecoder();
  let text = "";
  try {
    for (;;) {
      const { done, value } = await reader.read();
      if (done) return { text, cut: false };
      text += decoder.decode(value, { stream: true });
    }
  } catch {
    return { text, cut: true };
  }
}

/** Wraps a session so that its chat throws `error` (a fault of the proxy itself, as far as the app can tell). */
function throwingChat(error: unknown) {
  return (session: Session): Session =>
    new Proxy(session, {
      get(target, name) {
        if (name === "chat") {
          return () => {
            throw error;
          };
        }
        const value: unknown = Reflect.get(target, name, target);
        return typeof value === "function" ? value.bind(target) : value;
      },
    });
}

const ask = (model: string, extra: Record<string, unknown> = {}) => ({
  model,
  messages: [{ role: "user", content: "hello" }],
  ...extra,
});

describe("proxy: the cloister field of an answer", () => {
  it("carries the receipt and the audit requestIdHash, never the audit opening (JSON and SSE)", async () => {
    const done: Extract<ChatEvent, { type: "done" }>[] = [];
    const { model, post } = await proxyFor(undefined, tapDoneEvents(done));
    const answers = [
      ["/v1/chat/completions", ask(model)],
      ["/v1/chat/completions", ask(model, { stream: true, stream_options: { include_usage: true } })],
      ["/v1/completions", { model, prompt: "hi" }],
      ["/v1/completions", { model, prompt: "hi", stream: true }],
    ] as const satisfies readonly (readonly [string, Record<string, unknown>])[];
    for (const [path, body] of answers) {
      const response = await post(path, body);
      expect(response.status).toBe(200);
      const bytes = await response.text();
      // The SDK did get an opening from the enclave for this answer: it must not reach the app.
      const event = done.at(-1)!;
      expect(event.audit?.opening).toMatch(/^[0-9a-f]{64}$/);
      expect(bytes).not.toContain(event.audit!.opening);
      expect(bytes).not.toContain("opening");
      const last = "stream" in body ? bytes.split("\n\n").find((e) => e.includes('"cloister"'))! : bytes;
      expect(JSON.parse(last.replace(/^data: /, ""))).toMatchObject({
        cloister: { receipt: event.receipt, audit: { requestIdHash: event.audit!.requestIdHash } },
      });
    }
    expect(done).toHaveLength(answers.length);
  });

  it("carries what PII the enclave redacted from the prompt (kinds and counts), or null (JSON and SSE)", async () => {
    const { model, post } = await proxyFor();
    const withEmail = [{ role: "user", content: "mail bob@example.org" }];
    for (const [body, redacted] of [
      [ask(model), null],
      [ask(model, { messages: withEmail }), { email: 1 }],
      [ask(model, { messages: withEmail, stream: true }), { email: 1 }],
      [{ model, prompt: "call +1 415 555 0100 or +1 415 555 0101", stream: true }, { phone: 2 }],
    ] as const) {
      const path = "prompt" in body ? "/v1/completions" : "/v1/chat/completions";
      const bytes = await (await post(path, body)).text();
      const last = "stream" in body ? bytes.split("\n\n").find((e) => e.includes('"cloister"'))! : bytes;
      expect(JSON.parse(last.replace(/^data: /, "")).cloister.redacted, JSON.stringify(body)).toEqual(redacted);
    }
  });
});

describe("proxy: a redaction the attested manifest does not make, said after the text", () => {
  it("streams an error event after the text (REDACTIONS_NOT_ATTESTED), never [DONE]", async () => {
    // The manifest redacts phone numbers only; the enclave's final frame says it redacted an email.
    const { session } = await connectTo({
      overrides: { requestPolicy: { pii: { mode: "redact", entities: ["phone"], reason: null } } },
    });
    const url = await serve(createProxyApp({ session, token: TOKEN }).fetch);
    enclaveSays({ email: 1 });
    try {
      const response = await fetch(`${url}/v1/chat/completions`, {
        method: "POST",
        headers: { authorization: `Bearer ${TOKEN}`, "content-type": "application/json" },
        body: JSON.stringify({
          model: attestedModelId(session),
          stream: true,
          messages: [{ role: "user", content: "hi" }],
        }),
      });
      expect(response.status).toBe(200);
      // The transfer is cut after the error event: read what arrived, then the cut.
      const reader = (response.body as ReadableStream<Uint8Array>).getReader();
      const decoder = new TextDecoder();
      let text = "";
      let cut = false;
      for (let i = 0; i < 1000; i++) {
        const chunk = await reader.read().catch(() => null);
        if (chunk === null) cut = true;
        if (chunk === null || chunk.done) break;
        text += decoder.decode(chunk.value, { stream: true });
      }
      const events = text.split("\n\n").filter((e) => e !== "");
      expect(events.some((e) => e.includes('"content":"ok"'))).toBe(true);
      expect(text).not.toContain("[DONE]");
      expect(cut).toBe(true);
      const last = JSON.parse((events.at(-1) as string).replace(/^data: /, ""));
      expect(last.error).toMatchObject({ type: "cloister_verification_error", code: "redactions_not_attested" });
      expect(last.error.message).toContain("already shown came from an enclave whose PII redaction did not match");
    } finally {
      vi.restoreAllMocks();
    }
  });
});

describe("proxy: OpenAI's routes and errors", () => {
  it("GET /v1/models/{id}: the model /v1/models lists (id sent as it is or %2F-encoded), else model_not_found", async () => {
    const { model, get } = await proxyFor();
    const listed = ((await (await get("/v1/models")).json()) as { data: unknown[] }).data[0];
    for (const id of [model, encodeURIComponent(model)]) {
      const response = await get(`/v1/models/${id}`);
      expect(response.status, id).toBe(200);
      expect(await response.json()).toEqual(listed);
    }
    const other = await get("/v1/models/gpt-4o");
    expect(other.status).toBe(404);
    expect(await other.json()).toEqual({
      error: {
        type: "invalid_request_error",
        code: "model_not_found",
        param: "model",
        message: `model: this proxy serves only the attested model ${JSON.stringify(model)}, found "gpt-4o"`,
      },
    });
  });

  it("a request without model is a 400 naming the missing field, not a 404 about undefined", async () => {
    const { post } = await proxyFor();
    for (const body of [{ messages: [{ role: "user", content: "hi" }] }, { model: null, prompt: "hi" }]) {
      const path = "prompt" in body ? "/v1/completions" : "/v1/chat/completions";
      const response = await post(path, body);
      expect(response.status).toBe(400);
      const { error } = (await response.json()) as { error: { message: string } };
      expect(error).toMatchObject({
        type: "invalid_request_error",
        code: "missing_required_parameter",
        param: "model",
      });
      expect(error.message).not.toContain("undefined");
    }
    const notString = await post("/v1/chat/completions", { model: 7, messages: [{ role: "user", content: "hi" }] });
    expect(notString.status).toBe(400);
    expect(await notString.json()).toMatchObject({ error: { code: "invalid_value", param: "model" } });
  });

  it("stream_options without stream is refused, as OpenAI does", async () => {
    const { model, post } = await proxyFor();
    for (const stream of [undefined, false]) {
      const response = await post(
        "/v1/chat/completions",
        ask(model, { stream, stream_options: { include_usage: true } }),
      );
      expect(response.status).toBe(400);
      expect(await response.json()).toMatchObject({
        error: { type: "invalid_request_error", code: "invalid_value", param: "stream_options" },
      });
    }
    const nulled = await post("/v1/chat/completions", ask(model, { stream_options: null }));
    expect(nulled.status).toBe(200);
  });

  it("a known route with another method is a 405 with allow, in OpenAI's shape", async () => {
    const { get, post } = await proxyFor();
    const cases: [() => Promise<Response>, string][] = [
      [() => get("/v1/chat/completions"), "POST"],
      [() => get("/v1/completions"), "POST"],
      [() => get("/v1/chat/completions", { method: "PUT" }), "POST"],
      [() => post("/v1/models", {}), "GET, HEAD"],
      [() => get("/v1/models/x", { method: "DELETE" }), "GET, HEAD"],
      [() => post("/healthz", {}), "GET, HEAD"],
    ];
    for (const [send, allow] of cases) {
      const response = await send();
      expect(response.status).toBe(405);
      expect(response.headers.get("allow")).toBe(allow);
      expect(await response.json()).toMatchObject({
        error: { type: "invalid_request_error", code: "method_not_allowed", param: null },
      });
    }
    expect((await get("/v1/models", { method: "HEAD" })).status).toBe(200);
    expect((await get("/v1/nothing")).status).toBe(404);
  });

  it("the enclave's refusals of the request itself are policy errors, not retried: a retry is refused again", async () => {
    // [engine code, OpenAI code, status, type]: ENGINE_REQUEST (a field the engine refuses),
    // CHAT_TEMPLATE_REFUSED (a conversation shape the model's template did not render) and
    // PROMPT_TOO_LONG (over the context) are the request's fault: 400s. CHAT_WRAPPER_FAILED (a new
    // shape, refused until the enclave restarts) is the enclave's fault, not the app's request: a 500.
    const cases = [
      ["ENGINE_REQUEST", "engine_request", 400, "invalid_request_error"],
      ["CHAT_TEMPLATE_REFUSED", "chat_template_refused", 400, "invalid_request_error"],
      ["CHAT_WRAPPER_FAILED", "chat_wrapper_failed", 500, "api_error"],
      ["PROMPT_TOO_LONG", "context_length_exceeded", 400, "invalid_request_error"],
    ] as const;
    for (const [engineCode, openAiCode, status, type] of cases) {
      const refusal = () => new EngineRefusal(engineCode, "refused");
      const { session } = await connectTo({ script: [refusal()] });
      const error = await (async () => {
        for await (const _ of session.chat([{ role: "user", content: "hi" }])) {
          // nothing is answered
        }
      })().catch((e: unknown) => e);
      expect(error, engineCode).toMatchObject({ kind: "policy", code: engineCode, origin: "enclave" });
      const { model, post } = await proxyFor([refusal(), refusal()]);
      for (const stream of [false, true]) {
        const response = await post("/v1/chat/completions", ask(model, { stream }));
        const body = (await response.json()) as { error: { type: string; code: string } };
        expect(
          { status: response.status, retry: response.headers.get("x-should-retry"), ...body.error },
          `${engineCode} stream ${stream}`,
        ).toMatchObject({ status, retry: "false", type, code: openAiCode });
      }
    }
  });

  it("the enclave's PROMPT_TOO_LONG is a 400 context_length_exceeded, not retried (stream or not)", async () => {
    const { model, post } = await proxyFor([new PromptTooLong("prompt: expected fewer than 2048 tokens")]);
    for (const stream of [false, true]) {
      const response = await post("/v1/chat/completions", ask(model, { stream }));
      expect(response.status).toBe(400);
      expect(response.headers.get("x-should-retry")).toBe("false");
      expect(await response.json()).toMatchObject({
        error: { type: "invalid_request_error", code: "context_length_exceeded" },
      });
    }
  });
});

describe("proxy: the enclave's policy refuses the prompt", () => {
  it("is a 400 invalid_request_error with the enclave's code, not retried (stream or not)", async () => {
    const { model, post } = await proxyFor();
    // The dev manifest's rule no-private-keys blocks this prompt in the enclave (POLICY_BLOCKED).
    const prompt = "-----BEGIN PRIVATE KEY-----";
    for (const stream of [false, true]) {
      const response = await post(
        "/v1/chat/completions",
        ask(model, { stream, messages: [{ role: "user", content: prompt }] }),
      );
      expect(response.status).toBe(400);
      expect(response.headers.get("x-should-retry")).toBe("false");
      expect(await response.json()).toMatchObject({
        error: { type: "invalid_request_error", code: "policy_blocked", param: null },
      });
    }
  });
});

/**
 * A proxy over a session whose clock the test moves (`clock.ms`): ten minutes on, the enclave's
 * signed answers are outside the policy's clock skew, and a re-verification fails.
 */
async function proxyWithClock() {
  const clock = { ms: Date.now() };
  const { session, paths } = await connectTo({ connect: { now: () => new Date(clock.ms), reattestAfterMs: 60_000 } });
  const url = await serve(createProxyApp({ session, token: TOKEN }).fetch);
  const model = attestedModelId(session);
  const post = (path = "/v1/chat/completions", body: unknown = ask(model)) =>
    fetch(`${url}${path}`, {
      method: "POST",
      headers: { authorization: `Bearer ${TOKEN}`, "content-type": "application/json" },
      body: typeof body === "string" ? body : JSON.stringify(body),
    });
  return { clock, session, paths, url, model, post };
}

describe("proxy: a session whose re-verification failed", () => {
  it("refuses while the enclave does not verify, and verifies again before the next request", async () => {
    const { clock, session, paths, url, post } = await proxyWithClock();
    // Ten minutes on, the enclave's signed answers are outside the policy's clock skew: the
    // re-verification fails, nothing is sealed, and the session keeps no verified enclave.
    clock.ms += 10 * 60_000;
    const refused = await post();
    expect(refused.status).toBe(502);
    expect(((await refused.json()) as { error: { type: string } }).error.type).toBe("cloister_verification_error");
    expect(session.attested).toBe(false);
    const models = await fetch(`${url}/v1/models`, { headers: { authorization: `Bearer ${TOKEN}` } });
    expect(models.status).toBe(502);
    expect(paths.filter((p) => p === "/sealed")).toEqual([]);
    // The clock right again: the next request verifies the enclave first, then is answered.
    clock.ms -= 10 * 60_000;
    const answered = await post();
    expect(answered.status).toBe(200);
    expect(session.attested).toBe(true);
    expect(paths.filter((p) => p === "/sealed").length).toBe(1);
  });
});

describe("proxy: loopback callers only", () => {
  it("answers 421 to a request naming another host (DNS rebinding), before the token or any route", async () => {
    const { session } = await connectTo({});
    const log: string[] = [];
    const app = createProxyApp({ session, token: TOKEN, log: (line) => log.push(line) });
    for (const path of ["/healthz", "/v1/models"]) {
      const rebound = await app.request(path, {
        headers: { host: "evil.example:8787", authorization: `Bearer ${TOKEN}` },
      });
      expect(rebound.status, path).toBe(421);
      expect(await rebound.json()).toMatchObject({
        error: {
          code: "host_not_loopback",
          message:
            'request Host: expected a loopback name (127.0.0.0/8, [::1] or localhost; any port), found "evil.example:8787"',
        },
      });
    }
    // The Host as untrusted text: control characters replaced, cut short (its length named).
    const long = `${"a".repeat(70)}\u001b[2J.example`;
    const rebound = await app.request("/healthz", { headers: { host: long } });
    expect(((await rebound.json()) as { error: { message: string } }).error.message).toBe(
      `request Host: expected a loopback name (127.0.0.0/8, [::1] or localhost; any port), found "${"a".repeat(64)}"… (82 characters)`,
    );
    const escaped = await app.request("/healthz", { headers: { host: "evil\u001b[2J.example" } });
    expect(((await escaped.json()) as { error: { message: string } }).error.message).toMatch(
      /found "evil\uFFFD\[2J\.example"$/,
    );
    // Its log lines keep no Host.
    expect(log).toHaveLength(4);
    expect(log.join("\n")).not.toMatch(/evil|aaaa/);
    const local = await app.request("/v1/models", {
      headers: { host: "127.0.0.1:8787", authorization: `Bearer ${TOKEN}` },
    });
    expect(local.status).toBe(200);
  });
});

describe("proxy: web pages in the user's browser", () => {
  it("get no CORS grant: a preflight is refused without access-control-allow-origin, and a simple POST without the token reaches nothing", async () => {
    const calls: unknown[][] = [];
    const { model, url, log } = await proxyFor(undefined, tapDoneEvents([], calls));
    const origin = "https://evil.example";
    // What a browser asks before a page may send Authorization (not a CORS-safelisted header).
    const preflight = await fetch(`${url}/v1/chat/completions`, {
      method: "OPTIONS",
      headers: {
        origin,
        "access-control-request-method": "POST",
        "access-control-request-headers": "authorization, content-type",
      },
    });
    expect(preflight.status).toBeGreaterThanOrEqual(400);
    expect(preflight.headers.get("access-control-allow-origin")).toBeNull();
    // A "simple" request a page may send without a preflight (no-cors, text/plain): no token, so 401.
    const simple = await fetch(`${url}/v1/chat/completions`, {
      method: "POST",
      headers: { origin, "content-type": "text/plain" },
      body: JSON.stringify(ask(model)),
    });
    expect(simple.status).toBe(401);
    expect(simple.headers.get("access-control-allow-origin")).toBeNull();
    // Even with the token (a page cannot have it), nothing grants the page a read of the answer.
    const withToken = await fetch(`${url}/v1/chat/completions`, {
      method: "POST",
      headers: { origin, authorization: `Bearer ${TOKEN}`, "content-type": "application/json" },
      body: JSON.stringify(ask(model)),
    });
    expect(withToken.headers.get("access-control-allow-origin")).toBeNull();
    expect(calls).toHaveLength(1);
    expect(log.map((l) => JSON.parse(l).status)).toEqual([preflight.status, 401, 200]);
  });
});

describe("proxy: its local token", () => {
  it("is required: an empty, short or non-printable token is refused when the app is made, never matched", async () => {
    const { session } = await connectTo({});
    // An empty token would match a request with no Authorization header at all.
    const open = await (async () =>
      createProxyApp({ session, token: "" }).request("/v1/models", { headers: { host: "127.0.0.1" } }))().catch(
      () => null,
    );
    expect(open?.status ?? 0).not.toBe(200);
    for (const token of ["", "short", `${"x".repeat(40)} y`, "x".repeat(257)]) {
      expect(() => createProxyApp({ session, token }), JSON.stringify(token.length)).toThrow(
        /token: expected 32\.\.256 printable characters/,
      );
    }
    // Never the token itself in the refusal.
    expect(() => createProxyApp({ session, token: "secret-but-short" })).toThrow(/^(?!.*secret-but-short)/s);
  });
});

describe("proxy: failures", () => {
  it("a failure mid-stream is an error event after the text so far, no [DONE], and a cut transfer", async () => {
    const { model, post, log } = await proxyFor([{ type: "text", text: "partial" }, new Error("decode failed")]);
    const response = await post("/v1/chat/completions", ask(model, { stream: true }));
    expect(response.status).toBe(200);
    expect(response.headers.get("content-type")).toContain("text/event-stream");
    const { text, cut } = await readUntilCut(response);
    // Not a cleanly ended body either: a reader that ignores the error event still sees a failure.
    expect(cut).toBe(true);
    // One line for the stream, its outcome: the cut the proxy made is not an app that left (client_gone).
    await new Promise((resolve) => setTimeout(resolve, 200));
    expect(log.map((l) => JSON.parse(l)).filter((l) => l.type === "proxy-stream")).toEqual([
      expect.objectContaining({
        type: "proxy-stream",
        path: "/v1/chat/completions",
        outcome: "generation_failed",
        xRequestId: response.headers.get("x-request-id"),
      }),
    ]);
    const events = text
      .split("\n\n")
      .filter((e) => e.startsWith("data: "))
      .map((e) => e.slice("data: ".length));
    expect(events).not.toContain("[DONE]");
    const parsed = events.map((e) => JSON.parse(e) as Record<string, unknown>);
    const texts = parsed.flatMap((e) =>
      Array.isArray(e.choices) ? e.choices.map((c) => (c as { delta: { content?: string } }).delta.content ?? "") : [],
    );
    expect(texts.join("")).toBe("partial");
    expect(parsed.at(-1)).toMatchObject({ error: { type: "api_error", code: "generation_failed" } });
  });

  /** A chat request through a proxy whose host answers every sealed request with `status` and `error`. */
  async function chatWithHostAnswering(status: number, error: { code: string; message: string }) {
    const { fetchTransport } = await import("../../client/transport.ts");
    const real = fetchTransport(fetch);
    const { session } = await connectTo({
      transport: (url, request) =>
        url.endsWith("/sealed")
          ? Promise.resolve({ status, header: () => null, body: [], text: async () => JSON.stringify({ error }) })
          : real(url, request),
    });
    const url = await serve(createProxyApp({ session, token: TOKEN }).fetch);
    return fetch(`${url}/v1/chat/completions`, {
      method: "POST",
      headers: { authorization: `Bearer ${TOKEN}`, "content-type": "application/json" },
      body: JSON.stringify(ask(attestedModelId(session))),
    });
  }

  it("a fault of the proxy itself is a 500 internal_error whose log line names the error's class and code, never its message", async () => {
    class Broken extends Error {
      readonly code = "EBROKEN";
    }
    const { model, post, log } = await proxyFor(
      undefined,
      throwingChat(new Broken("the prompt was: my card is 4111 1111 1111 1111")),
    );
    const response = await post("/v1/chat/completions", ask(model));
    expect(response.status).toBe(500);
    expect(((await response.json()) as { error: { code: string } }).error.code).toBe("internal_error");
    expect(log.map((l) => JSON.parse(l))).toContainEqual(
      expect.objectContaining({ type: "proxy", status: 500, fault: "Broken EBROKEN" }),
    );
    expect(log.join("\n")).not.toContain("4111");
  });

  it("a fault's code or class name not of the usual shape is left out of its log line (it may carry the request); a thrown non-Error is logged and answered too", async () => {
    const coded = Object.assign(new Error("x"), { code: "card 4111 1111 1111 1111" });
    class Named extends Error {}
    Object.defineProperty(Named, "name", { value: "card 4111 1111 1111 1111" });
    for (const [error, fault] of [
      [coded, "Error"],
      [new Named("x"), "Error"],
      ["card 4111 1111 1111 1111", "a thrown string"],
    ] as const) {
      const { model, post, log } = await proxyFor(undefined, throwingChat(error));
      const response = await post("/v1/chat/completions", ask(model));
      // In OpenAI's shape, even for a thrown value that is not an Error (hono's onError never sees one).
      expect({ status: response.status, body: await response.json() }).toMatchObject({
        status: 500,
        body: { error: { code: "internal_error" } },
      });
      expect(log.map((l) => JSON.parse(l))).toContainEqual(expect.objectContaining({ status: 500, fault }));
      expect(log.join("\n")).not.toContain("4111");
    }
  });

  it("a host's redirect (not followed) is a 502 host_redirect the openai SDKs do not retry", async () => {
    const { fetchTransport } = await import("../../client/transport.ts");
    const real = fetchTransport(fetch);
    const { session } = await connectTo({
      transport: (url, request) =>
        url.endsWith("/sealed")
          ? Promise.resolve({
              status: 307,
              header: (name: string) => (name.toLowerCase() === "location" ? "http://elsewhere.test/" : null),
              body: [],
              text: async () => "",
            })
          : real(url, request),
    });
    const url = await serve(createProxyApp({ session, token: TOKEN }).fetch);
    const model = attestedModelId(session);
    const response = await fetch(`${url}/v1/chat/completions`, {
      method: "POST",
      headers: { authorization: `Bearer ${TOKEN}`, "content-type": "application/json" },
      body: JSON.stringify(ask(model)),
    });
    expect(response.status).toBe(502);
    expect(response.headers.get("x-should-retry")).toBe("false");
    expect(await response.json()).toMatchObject({ error: { type: "api_error", code: "host_redirect" } });
  });

  it("the host's 413 is a request_too_large the openai SDKs do not retry", async () => {
    const response = await chatWithHostAnswering(413, {
      code: "BODY_TOO_LARGE",
      message: "request body: expected at most 1048576 bytes",
    });
    expect(response.status).toBe(413);
    expect(response.headers.get("x-should-retry")).toBe("false");
    expect(await response.json()).toMatchObject({
      error: { type: "invalid_request_error", code: "request_too_large" },
    });
  });

  it("a host's HTTP error claiming PROMPT_TOO_LONG is an ordinary host error, not context_length_exceeded", async () => {
    // Only the enclave's authenticated error frame says the prompt is over the context size: the
    // untrusted host must not be able to make an app believe so (and, say, cut its prompts).
    for (const status of [413, 400]) {
      const response = await chatWithHostAnswering(status, { code: "PROMPT_TOO_LONG", message: "too long" });
      const body = (await response.json()) as { error: { type: string; code: string } };
      expect({ status: response.status, ...body.error }, String(status)).toMatchObject({
        status: 502,
        type: "api_error",
        code: "prompt_too_long",
      });
    }
  });

  it("each host error: its HTTP status, OpenAI type and code, and whether openai SDKs retry it", async () => {
    // [host status, host code, proxy status, type, code, retried, what the message starts with]
    const cases = [
      [503, "ENGINE_BUSY", 503, "api_error", "engine_busy", true, "http://enclave.test/v1/sealed: HTTP 503"],
      [503, "HOST_BUSY", 503, "api_error", "host_busy", true, "http://enclave.test/v1/sealed: HTTP 503"],
      // OpenAI's own 429 (a limit on requests a minute): its type and code, for apps that switch on them.
      [429, "RATE_LIMITED", 429, "requests", "rate_limit_exceeded", true, "http://enclave.test/v1/sealed: HTTP 429"],
      [504, "HOST_TIMEOUT", 504, "api_error", "host_timeout", true, "http://enclave.test/v1/sealed: HTTP 504"],
      [504, "ENCLAVE_TIMEOUT", 504, "api_error", "enclave_timeout", true, "http://enclave.test/v1/sealed: HTTP 504"],
      [502, "ENCLAVE_UNREACHABLE", 502, "api_error", "enclave_unreachable", true, "http://enclave.test/v1/sealed"],
      [500, "INTERNAL", 502, "api_error", "internal", true, "http://enclave.test/v1/sealed: HTTP 500"],
      // Its enclave refuses until restarted, but through a pool host a retry re-attests to another
      // member (the host answers WRONG_ENCLAVE_KEY for it): left to retry (docs/errors.md).
      [503, "AUDIT_FAILED", 502, "api_error", "audit_failed", true, "http://enclave.test/v1/sealed: HTTP 503"],
      // The host refused the API key: the proxy's configuration to fix, not a request's argument.
      [401, "UNAUTHENTICATED", 502, "cloister_verification_error", "unauthenticated", false, "configuration: "],
      // An enclave refusal of the envelope (the host's claim of one): never retried as a host error.
      [400, "DECRYPTION_FAILED", 502, "cloister_verification_error", "decryption_failed", false, "integrity: "],
    ] as const;
    for (const [hostStatus, hostCode, status, type, code, retried, starts] of cases) {
      const response = await chatWithHostAnswering(hostStatus, { code: hostCode, message: "no" });
      const body = (await response.json()) as { error: { type: string; code: string; message: string } };
      expect(
        {
          status: response.status,
          type: body.error.type,
          code: body.error.code,
          retry: response.headers.get("x-should-retry"),
          starts: body.error.message.startsWith(starts),
        },
        hostCode,
      ).toEqual({ status, type, code, retry: retried ? null : "false", starts: true });
    }
  });

  it("an app that leaves before the first token is logged 499, not as a failure of the host (502)", async () => {
    const { model, url, log, paths } = await proxyFor([{ pauseMs: 2000 }, { type: "text", text: "late" }]);
    for (const stream of [false, true]) {
      const leaving = new AbortController();
      const asking = fetch(`${url}/v1/chat/completions`, {
        method: "POST",
        headers: { authorization: `Bearer ${TOKEN}`, "content-type": "application/json" },
        body: JSON.stringify(ask(model, { stream })),
        signal: leaving.signal,
      });
      // The app leaves once its request is sealed and sent, while the engine has not answered. (A
      // fixed 100 ms could end before the request reached the proxy on a loaded machine: then
      // nothing was logged.)
      const sent = paths.filter((p) => p === "/sealed").length + 1;
      await vi.waitFor(() => expect(paths.filter((p) => p === "/sealed")).toHaveLength(sent), {
        timeout: 10_000,
        interval: 5,
      });
      leaving.abort();
      await expect(asking).rejects.toThrow();
      const deadline = Date.now() + 5_000;
      while (log.filter((l) => JSON.parse(l).type === "proxy").length < (stream ? 2 : 1) && Date.now() < deadline) {
        await new Promise((resolve) => setTimeout(resolve, 20));
      }
    }
    const lines = log.map((l) => JSON.parse(l)).filter((l) => l.type === "proxy");
    expect(lines.map((l) => [l.path, l.status])).toEqual([
      ["/v1/chat/completions", 499],
      ["/v1/chat/completions", 499],
    ]);
  });

  it("an app that leaves mid-stream aborts the sealed request: the SDK's signal fires, the answer stops being pulled", async () => {
    const script: Script = Array.from({ length: 40 }, (_, i) => [
      { type: "text" as const, text: `t${i} ` },
      { pauseMs: 25 },
    ]).flat();
    const done: Extract<ChatEvent, { type: "done" }>[] = [];
    const calls: unknown[][] = [];
    const { model, url, log } = await proxyFor(
      [...script, { type: "done", stopReason: "eog", usage }],
      tapDoneEvents(done, calls),
    );
    const leaving = new AbortController();
    const response = await fetch(`${url}/v1/chat/completions`, {
      method: "POST",
      headers: { authorization: `Bearer ${TOKEN}`, "content-type": "application/json" },
      body: JSON.stringify(ask(model, { stream: true })),
      signal: leaving.signal,
    });
    const reader = response.body!.getReader();
    await reader.read(); // the role chunk, at least
    leaving.abort();
    const deadline = Date.now() + 5_000;
    while (!log.some((l) => JSON.parse(l).type === "proxy-stream") && Date.now() < deadline) {
      await new Promise((resolve) => setTimeout(resolve, 20));
    }
    expect(log.map((l) => JSON.parse(l)).filter((l) => l.type === "proxy-stream")).toEqual([
      expect.objectContaining({ outcome: "client_gone", xRequestId: response.headers.get("x-request-id") }),
    ]);
    expect(calls).toHaveLength(1);
    const { signal } = (calls[0] as unknown[])[1] as { signal: AbortSignal };
    expect(signal.aborted).toBe(true);
    // Well before the 40 texts' second: the answer is not read to its end for nobody.
    await new Promise((resolve) => setTimeout(resolve, 300));
    expect(done).toEqual([]);
  });

  it("a stream the proxy's stop cuts at the end of its grace is logged as cut by the stop, not as an app gone", async () => {
    // An answer far longer than the grace: its second text comes 30 s after the first.
    const { session } = await connectTo({
      script: [{ type: "text", text: "first " }, { pauseMs: 30_000 }, { type: "text", text: "late" }],
    });
    const log: string[] = [];
    const cutting = new AbortController();
    const app = createProxyApp({ session, token: TOKEN, log: (line) => log.push(line), cutting: cutting.signal });
    const server = await listen(app.fetch, "127.0.0.1", 0);
    const response = await fetch(`${server.url}/v1/chat/completions`, {
      method: "POST",
      headers: { authorization: `Bearer ${TOKEN}`, "content-type": "application/json" },
      body: JSON.stringify(ask(attestedModelId(session), { stream: true })),
    });
    const reader = response.body!.getReader();
    await reader.read(); // the role chunk, at least: the stream is under way
    await server.close(100, () => cutting.abort());
    await expect(
      (async () => {
        while (!(await reader.read()).done) {}
      })(),
    ).rejects.toThrow();
    await vi.waitFor(() => expect(log.some((l) => JSON.parse(l).type === "proxy-stream")).toBe(true), {
      timeout: 5_000,
      interval: 5,
    });
    expect(log.map((l) => JSON.parse(l)).filter((l) => l.type === "proxy-stream")).toEqual([
      expect.objectContaining({
        path: "/v1/chat/completions",
        outcome: "cut_at_stop",
        xRequestId: response.headers.get("x-request-id"),
      }),
    ]);
  });

  it("a failure before the first token is an HTTP error in OpenAI's shape (stream or not)", async () => {
    const { model, post } = await proxyFor([new Error("engine down")]);
    for (const stream of [false, true]) {
      const response = await post("/v1/chat/completions", ask(model, { stream }));
      expect(response.status).toBe(502);
      expect(await response.json()).toMatchObject({ error: { type: "api_error", code: "generation_failed" } });
    }
  });

  it("error messages describe the app's own values as the SDK does: strings by length, names only when they look like one", async () => {
    const { model, post } = await proxyFor();
    const long = "x".repeat(5000);
    const cases: [unknown, string][] = [
      [ask(model, { n: long }), "n: expected 1 (one choice per request), found a string of 5000 characters"],
      [ask(model, { n: 2 }), "n: expected 1 (one choice per request), found 2"],
      [ask(model, { temperature: long }), "temperature: expected a number in 0..2, found a string of 5000 characters"],
      [ask(model, { top_p: { a: 1 } }), "top_p: expected a number in 0..1, found a value of type object"],
      [
        ask(model, { logprobs: long }),
        "logprobs: only false is supported by this proxy, found a string of 5000 characters",
      ],
      [
        { model, messages: [{ role: long, content: "x" }] },
        "messages[0].role: expected system, developer, user or assistant, found a string of 5000 characters",
      ],
      [
        { model, messages: [{ role: "tool", content: "x" }] },
        'messages[0].role: tools are not supported by this proxy (expected system, developer, user or assistant), found "tool"',
      ],
      [
        {
          model,
          messages: [
            { role: "user", content: "x" },
            { role: "function", name: "f", content: "x" },
          ],
        },
        'messages[1].role: tools are not supported by this proxy (expected system, developer, user or assistant), found "function"',
      ],
      [
        { model, messages: [{ role: "robot", content: "x" }] },
        'messages[0].role: expected system, developer, user or assistant, found "robot"',
      ],
      [
        { model, messages: [{ role: "user", content: [{ type: long }] }] },
        "messages[0].content[0]: only text parts are supported, found type a string of 5000 characters",
      ],
      [
        { model, messages: [{ role: "user", content: [{ type: "image_url" }] }] },
        'messages[0].content[0]: only text parts are supported, found type "image_url"',
      ],
    ];
    for (const [body, message] of cases) {
      const response = await post("/v1/chat/completions", body);
      expect(response.status).toBe(400);
      expect(((await response.json()) as { error: { message: string } }).error.message).toBe(message);
    }
  });

  it("refuses malformed and unsupported requests naming the parameter, with x-should-retry: false", async () => {
    const { model, post, url } = await proxyFor();
    const cases: [unknown, number, string, string | null][] = [
      ["{not json", 400, "invalid_value", "body"],
      [{ ...ask(model), messages: [] }, 400, "invalid_value", "messages"],
      // A tool's result, as tools themselves (tools, tool_calls): unsupported, not malformed.
      [
        { model, messages: [{ role: "tool", tool_call_id: "c", content: "x" }] },
        400,
        "unsupported_parameter",
        "messages[0].role",
      ],
      [{ model, messages: [{ role: "function", content: "x" }] }, 400, "unsupported_parameter", "messages[0].role"],
      [ask(model, { tools: [{ type: "function", function: { name: "f" } }] }), 400, "unsupported_parameter", "tools"],
      [ask(model, { n: 2 }), 400, "unsupported_parameter", "n"],
      [{ model, messages: [{ role: "robot", content: "x" }] }, 400, "invalid_value", "messages[0].role"],
      [
        { model, messages: [{ role: "user", content: [{ type: "image_url", image_url: { url: "x" } }] }] },
        400,
        "unsupported_parameter",
        "messages[0].content[0]",
      ],
      [ask(model, { temperature: 3 }), 400, "invalid_value", "temperature"],
      [ask(model, { logprobs: true }), 400, "unsupported_parameter", "logprobs"],
      [ask(model, { response_format: { type: "json_object" } }), 400, "unsupported_parameter", "response_format"],
      [ask(model, { stream: "yes" }), 400, "invalid_value", "stream"],
      [
        { model, messages: [{ role: "user", content: "x", name: "bob" }] },
        400,
        "unsupported_parameter",
        "messages[0].name",
      ],
      [
        {
          model,
          messages: [
            { role: "system", content: "x" },
            { role: "assistant", content: "y", tool_calls: [] },
          ],
        },
        400,
        "unsupported_parameter",
        "messages[1].tool_calls",
      ],
      [
        { model, messages: [{ role: "user", content: [{ type: "text", text: "x", cache_control: {} }] }] },
        400,
        "unsupported_parameter",
        "messages[0].content[0].cache_control",
      ],
      [ask("other"), 404, "model_not_found", "model"],
      // Past the enclave's limits, as the SDK checks them before sealing (sealed/request-limits.ts).
      // Their param is the OpenAI parameter the SDK named on its error (ClientError.field).
      [ask(model, { stop: Array.from({ length: 9 }, (_, i) => `s${i}`) }), 400, "bad_option", "stop"],
      [ask(model, { stop: "x".repeat(65) }), 400, "bad_option", "stop"],
      [ask(model, { stop: ["a", ""] }), 400, "bad_option", "stop"],
      [
        { model, messages: Array.from({ length: 257 }, () => ({ role: "user", content: "x" })) },
        400,
        "bad_messages",
        "messages",
      ],
      [
        {
          model,
          messages: [
            { role: "user", content: "hi" },
            { role: "user", content: "x".repeat(1_000_001) },
          ],
        },
        400,
        "bad_messages",
        "messages[1].content",
      ],
    ];
    for (const [body, status, code, param] of cases) {
      const response = await post("/v1/chat/completions", body);
      expect({ status: response.status, retry: response.headers.get("x-should-retry") }).toEqual({
        status,
        retry: "false",
      });
      expect(await response.json()).toMatchObject({ error: { code, param } });
    }
    const noPrompt = await post("/v1/completions", { model, prompt: ["a", "b"] });
    expect(await noPrompt.json()).toMatchObject({ error: { param: "prompt" } });
    const longPrompt = await post("/v1/completions", { model, prompt: "x".repeat(1_000_001) });
    expect({ status: longPrompt.status, body: await longPrompt.json() }).toMatchObject({
      status: 400,
      body: { error: { code: "bad_prompt", param: "prompt" } },
    });
    // The auth scheme is case-insensitive (RFC 9110 11.1); the token is not.
    const lowerScheme = await fetch(`${url}/v1/models`, { headers: { authorization: `bearer ${TOKEN}` } });
    expect(lowerScheme.status).toBe(200);
    const wrongToken = await post("/v1/chat/completions", ask(model), "wrong-token");
    expect(wrongToken.status).toBe(401);
    expect(await wrongToken.json()).toMatchObject({ error: { type: "authentication_error", code: "invalid_api_key" } });
    // Last: the 413 comes before the body is read, with "Connection: keep-alive", and
    // @hono/node-server then drains the body for 500 ms at most and closes the connection. On a
    // loaded machine fetch had already put it back in its pool, and the next request here failed
    // on it ("other side closed", 2 runs of 20).
    const tooBig = await post("/v1/chat/completions", ask(model, { padding: "x".repeat(PROXY_MAX_BODY_BYTES) }));
    expect(tooBig.status).toBe(413);
  });

  it("bounds a body of unstated length while reading it: 413 before the app has finished sending", async () => {
    const { url } = await proxyFor();
    const { hostname, port } = new URL(url);
    // Chunked, with no Content-Length, and never ended: a proxy that buffered the whole body first
    // would wait for its end forever.
    const status = await new Promise<number>((resolve, reject) => {
      const request = httpRequest(
        {
          hostname,
          port,
          method: "POST",
          path: "/v1/chat/completions",
          headers: { authorization: `Bearer ${TOKEN}`, "content-type": "application/json" },
        },
        (response) => {
          response.resume();
          request.destroy();
          resolve(response.statusCode ?? 0);
        },
      );
      request.on("error", reject);
      // Not answered in time: what a buffering proxy does (0, "no answer").
      setTimeout(() => {
        request.destroy();
        resolve(0);
      }, 10_000).unref();
      const chunk = Buffer.alloc(1024 * 1024, 0x20);
      for (let sent = 0; sent <= PROXY_MAX_BODY_BYTES; sent += chunk.length) request.write(chunk);
    });
    expect(status).toBe(413);
  });

  it("refuses a member named twice (JSON.parse would keep the last), naming where, never the values", async () => {
    const { model, post } = await proxyFor();
    const m = JSON.stringify(model);
    const cases: [string, string][] = [
      // The first model is not the attested one: a check of either copy would pass what the other says.
      [`{"model":"other","model":${m},"messages":[{"role":"user","content":"hi"}]}`, "model"],
      [`{"model":${m},"messages":[{"role":"user","content":"hi"}],"stream":true,"stream":false}`, "stream"],
      [
        `{"model":${m},"messages":[{"role":"user","content":"secret one","content":"secret two"}]}`,
        "messages[0].content",
      ],
    ];
    for (const [text, param] of cases) {
      const response = await post("/v1/chat/completions", text);
      expect(response.status, text).toBe(400);
      const body = (await response.json()) as { error: { message: string; param: string; code: string } };
      expect(body.error).toMatchObject({ code: "invalid_value", param });
      expect(body.error.message).toContain("appears twice");
      expect(body.error.message).not.toContain("secret");
    }
    // JSON that does not parse says where when V8 does, and never quotes the text (V8's message would).
    for (const [text, where] of [
      ['{"model": sk-not-json', "not valid JSON"],
      ['{"model": 1,}', "not valid JSON (at position 12)"],
    ]) {
      const broken = await post("/v1/chat/completions", text);
      const { error } = (await broken.json()) as { error: { message: string; param: string } };
      expect(error).toMatchObject({ param: "body" });
      expect(error.message).toBe(`request body: expected a JSON object, found text that is ${where}`);
    }
  });

  it("names the parameter of a value of the wrong type, with what it expected and what it found", async () => {
    const { model, post } = await proxyFor();
    const cases: [string, unknown, string, RegExp][] = [
      ["/v1/chat/completions", { model, messages: ["hi"] }, "messages[0]", /expected an object, found a string/],
      [
        "/v1/chat/completions",
        { model, messages: [{ role: "user", content: ["hi"] }] },
        "messages[0].content[0]",
        /expected an object, found a string/,
      ],
      ["/v1/chat/completions", { model, messages: "hi" }, "messages", /found a string of 2 characters/],
      ["/v1/chat/completions", { model, messages: [{ role: "user", content: 5 }] }, "messages[0].content", /found 5/],
      ["/v1/chat/completions", ask(model, { stop: 5 }), "stop", /found 5/],
      ["/v1/chat/completions", ask(model, { user: 5 }), "user", /expected a string, found 5/],
      [
        "/v1/chat/completions",
        ask(model, { stream: true, stream_options: "x" }),
        "stream_options",
        /expected an object/,
      ],
      [
        "/v1/chat/completions",
        ask(model, { stream: true, stream_options: { include_usage: "yes" } }),
        "stream_options.include_usage",
        /expected a boolean, found a string/,
      ],
      [
        "/v1/chat/completions",
        ask(model, { stream: true, stream_options: { include_usage: true, chunk_size: 4 } }),
        "stream_options.chunk_size",
        /not supported/,
      ],
      ["/v1/completions", { model, prompt: ["a", "b"] }, "prompt", /found an array of 2 items/],
      ["/v1/chat/completions", ask(model, { stream: "yes" }), "stream", /expected a boolean, found a string/],
      [
        "/v1/chat/completions",
        { model, messages: [{ role: "user", content: [{ type: "text", text: 5 }] }] },
        "messages[0].content[0].text",
        /expected a string, found 5/,
      ],
      ["/v1/chat/completions", ask(model, { response_format: "text" }), "response_format", /expected an object/],
      [
        "/v1/chat/completions",
        ask(model, { response_format: { type: "text", json_schema: {} } }),
        "response_format.json_schema",
        /not supported/,
      ],
    ];
    for (const [path, body, param, message] of cases) {
      const response = await post(path, body);
      expect(response.status, param).toBe(400);
      const { error } = (await response.json()) as { error: { message: string; param: string } };
      expect(error.param, JSON.stringify(body)).toBe(param);
      expect(error.message.startsWith(`${param}: `), error.message).toBe(true);
      expect(error.message).toMatch(message);
    }
    // null is absent, as for every other parameter (OpenAI's stream is nullable): a whole answer.
    const nullStream = await post("/v1/chat/completions", ask(model, { stream: null }));
    expect(nullStream.status).toBe(200);
    expect(await nullStream.json()).toMatchObject({ object: "chat.completion" });
  });

  it("refuses every parameter it does not honour, and accepts the neutral values of the common ones", async () => {
    const { model, post } = await proxyFor();
    const refused: [string, Record<string, unknown>, string][] = [
      ["/v1/completions", { echo: true }, "echo"],
      ["/v1/completions", { suffix: " the end" }, "suffix"],
      ["/v1/completions", { best_of: 3 }, "best_of"],
      ["/v1/chat/completions", { presence_penalty: 0.5 }, "presence_penalty"],
      ["/v1/chat/completions", { frequency_penalty: 1 }, "frequency_penalty"],
      ["/v1/chat/completions", { top_k: 40 }, "top_k"],
      ["/v1/chat/completions", { reasoning_effort: "high" }, "reasoning_effort"],
      ["/v1/chat/completions", { modalities: ["text", "audio"] }, "modalities"],
      ["/v1/chat/completions", { tools: [] }, "tools"],
      ["/v1/chat/completions", { echo: false }, "echo"], // a completions-only parameter
    ];
    for (const [path, extra, param] of refused) {
      const body = path === "/v1/completions" ? { model, prompt: "hi", ...extra } : ask(model, extra);
      const response = await post(path, body);
      expect(response.status, param).toBe(400);
      expect(response.headers.get("x-should-retry")).toBe("false");
      expect(await response.json()).toMatchObject({ error: { code: "unsupported_parameter", param } });
    }
    const topP = await post("/v1/chat/completions", ask(model, { top_p: 0 }));
    expect(await topP.json()).toMatchObject({ error: { code: "invalid_value", param: "top_p" } });
    const neutral = await post("/v1/completions", {
      model,
      prompt: "hi",
      echo: false,
      best_of: 1,
      frequency_penalty: 0,
      presence_penalty: 0,
      logprobs: null,
      user: "u-1",
    });
    expect(neutral.status).toBe(200);
    const chat = await post("/v1/chat/completions", ask(model, { tools: null, presence_penalty: 0, store: false }));
    expect(chat.status).toBe(200);
    // A message key the proxy does not honour is accepted only as null (as top-level parameters are).
    const nullName = await post("/v1/chat/completions", {
      model,
      messages: [{ role: "user", content: "hi", name: null }],
    });
    expect(nullName.status).toBe(200);
  });

  it("hands the SDK what the app asked: roles mapped, text parts joined, max_completion_tokens or max_tokens, stop as a list", async () => {
    const calls: unknown[][] = [];
    const { model, post } = await proxyFor(undefined, tapDoneEvents([], calls));
    const chat = await post("/v1/chat/completions", {
      model,
      messages: [
        { role: "developer", content: "be brief" },
        { role: "system", content: "s" },
        { role: "assistant", content: "a" },
        {
          role: "user",
          content: [
            { type: "text", text: "how " },
            { type: "text", text: "are you" },
          ],
        },
      ],
      max_completion_tokens: 5,
      stop: "x",
      temperature: 0.5,
      top_p: 0.9,
      seed: 7,
    });
    expect(chat.status).toBe(200);
    const completion = await post("/v1/completions", { model, prompt: "hi", max_tokens: 9, stop: ["a", "b"] });
    expect(completion.status).toBe(200);
    const [service, file] = model.split("/");
    const expectModel = { service, file };
    const args = calls.map(([content, options]) => {
      const { signal, ...rest } = options as { signal?: AbortSignal };
      expect(signal).toBeInstanceOf(AbortSignal);
      return [content, rest];
    });
    expect(args).toEqual([
      [
        [
          { role: "system", content: "be brief" },
          { role: "system", content: "s" },
          { role: "assistant", content: "a" },
          { role: "user", content: "how are you" },
        ],
        { maxTokens: 5, stop: ["x"], temperature: 0.5, topP: 0.9, seed: 7, expectModel },
      ],
      ["hi", { maxTokens: 9, stop: ["a", "b"], expectModel }],
    ]);
  });

  it("text content parts are joined; the developer role is a system message; usage is reported", async () => {
    const { model, post } = await proxyFor([
      { type: "text", text: "fine" },
      { type: "done", stopReason: "eog", usage: { ...usage, completionTokens: 1 } },
    ]);
    const response = await post("/v1/chat/completions", {
      model,
      messages: [
        { role: "developer", content: "be brief" },
        {
          role: "user",
          content: [
            { type: "text", text: "how " },
            { type: "text", text: "are you" },
          ],
        },
      ],
    });
    expect(response.status).toBe(200);
    expect(await response.json()).toMatchObject({
      object: "chat.completion",
      choices: [{ message: { role: "assistant", content: "fine" }, finish_reason: "stop" }],
      usage: { prompt_tokens: 3, completion_tokens: 1, total_tokens: 4 },
    });
  });
});

/** The data of each server-sent event of a body that ends cleanly: parsed JSON, or the text `[DONE]`. */
async function sseData(response: Response): Promise<unknown[]> {
  const text = await response.text();
  return text
    .split("\n\n")
    .filter((e) => e.startsWith("data: "))
    .map((e) => e.slice("data: ".length))
    .map((data) => (data === "[DONE]" ? data : JSON.parse(data)));
}

describe("proxy: answers, streamed chunk by chunk or whole", () => {
  const TWO_CHUNKS: Script = [
    { type: "text", text: "Hel" },
    { type: "text", text: "lo" },
    { type: "done", stopReason: "maxTokens", usage: { ...usage, completionTokens: 2 } },
  ];
  const done = (data: unknown[]) => data.find((d) => typeof d === "object" && d !== null && "cloister" in d);

  it("chat: the assistant role first, a chunk per text, the finish_reason, usage only when asked, then [DONE]", async () => {
    const { model, post } = await proxyFor(TWO_CHUNKS);
    const common = { object: "chat.completion.chunk", model };
    const plain = await sseData(await post("/v1/chat/completions", ask(model, { stream: true })));
    expect(plain).toEqual([
      {
        ...common,
        id: expect.any(String),
        created: expect.any(Number),
        choices: [{ index: 0, delta: { role: "assistant", content: "" }, finish_reason: null }],
      },
      expect.objectContaining({ choices: [{ index: 0, delta: { content: "Hel" }, finish_reason: null }] }),
      expect.objectContaining({ choices: [{ index: 0, delta: { content: "lo" }, finish_reason: null }] }),
      expect.objectContaining({ choices: [{ index: 0, delta: {}, finish_reason: "length" }] }),
      "[DONE]",
    ]);
    // Without include_usage no chunk has a usage field (OpenAI's shape); every chunk is one answer's.
    const chunks = plain.slice(0, -1) as Record<string, unknown>[];
    expect(chunks.filter((c) => "usage" in c)).toEqual([]);
    expect(new Set(chunks.map((c) => c.id)).size).toBe(1);
    expect(chunks.every((c) => c.object === "chat.completion.chunk" && c.model === model)).toBe(true);

    const withUsage = await sseData(
      await post("/v1/chat/completions", ask(model, { stream: true, stream_options: { include_usage: true } })),
    );
    expect(withUsage).toHaveLength(6);
    expect((withUsage.slice(0, 4) as Record<string, unknown>[]).map((c) => c.usage)).toEqual([null, null, null, null]);
    expect(withUsage.slice(4)).toEqual([
      {
        id: (withUsage[0] as { id: string }).id,
        created: (withUsage[0] as { created: number }).created,
        object: "chat.completion.chunk",
        model,
        choices: [],
        usage: { prompt_tokens: 3, completion_tokens: 2, total_tokens: 5 },
      },
      "[DONE]",
    ]);
    // include_usage must be true itself, not merely present (a value other than a boolean is refused:
    // see "names the parameter of a value of the wrong type").
    const notTrue = await sseData(
      await post("/v1/chat/completions", ask(model, { stream: true, stream_options: { include_usage: false } })),
    );
    expect(notTrue).toHaveLength(5);
    expect((notTrue.slice(0, -1) as Record<string, unknown>[]).filter((c) => "usage" in c)).toEqual([]);
  });

  it("completions: no role chunk, text chunks, the finish_reason with empty text, then [DONE]", async () => {
    const { model, post } = await proxyFor(TWO_CHUNKS);
    const data = await sseData(await post("/v1/completions", { model, prompt: "hi", stream: true }));
    expect(data).toEqual([
      expect.objectContaining({ object: "text_completion", choices: [{ index: 0, text: "Hel", finish_reason: null }] }),
      expect.objectContaining({ object: "text_completion", choices: [{ index: 0, text: "lo", finish_reason: null }] }),
      expect.objectContaining({
        object: "text_completion",
        choices: [{ index: 0, text: "", finish_reason: "length" }],
      }),
      "[DONE]",
    ]);
    expect(done(data)).toBeDefined();
  });

  it("a whole (not streamed) answer carries the enclave's finish_reason, chat and completions", async () => {
    const { model, post } = await proxyFor(TWO_CHUNKS);
    const chat = await post("/v1/chat/completions", ask(model));
    expect(await chat.json()).toMatchObject({
      choices: [{ message: { role: "assistant", content: "Hello" }, finish_reason: "length" }],
    });
    const text = await post("/v1/completions", { model, prompt: "hi" });
    expect(await text.json()).toMatchObject({
      object: "text_completion",
      choices: [{ index: 0, text: "Hello", finish_reason: "length" }],
      usage: { prompt_tokens: 3, completion_tokens: 2, total_tokens: 5 },
    });
  });

  it("an enclave whose audit keeps no commitments: cloister.audit is null, JSON and SSE", async () => {
    const { session } = await connectTo({ overrides: { audit: { enabled: false, reason: "test: no audit" } } });
    const url = await serve(createProxyApp({ session, token: TOKEN }).fetch);
    const model = attestedModelId(session);
    const post = (path: string, body: unknown) =>
      fetch(`${url}${path}`, {
        method: "POST",
        headers: { authorization: `Bearer ${TOKEN}`, "content-type": "application/json" },
        body: JSON.stringify(body),
      });
    const json = await post("/v1/chat/completions", ask(model));
    expect(json.status).toBe(200);
    expect(((await json.json()) as { cloister: unknown }).cloister).toEqual({
      receipt: expect.any(String),
      audit: null,
      redacted: null,
    });
    const sse = await sseData(await post("/v1/completions", { model, prompt: "hi", stream: true }));
    expect((done(sse) as { cloister: unknown }).cloister).toEqual({
      receipt: expect.any(String),
      audit: null,
      redacted: null,
    });
  });
});

describe("proxy: the edges of its request checks", () => {
  it("takes each numeric parameter at its limits, and refuses it just past them or as a fraction where a whole number is due", async () => {
    const { model, post } = await proxyFor();
    for (const extra of [
      { temperature: L.temperature.min },
      { temperature: L.temperature.max },
      { top_p: L.topP.max },
      { max_tokens: L.maxTokens.min },
      { max_completion_tokens: L.maxTokens.max },
      { seed: L.seed.min },
      { seed: L.seed.max },
    ]) {
      expect((await post("/v1/chat/completions", ask(model, extra))).status, JSON.stringify(extra)).toBe(200);
    }
    for (const [extra, message] of [
      [{ temperature: L.temperature.max + 0.001 }, "temperature: expected a number in 0..2, found 2.001"],
      [{ temperature: -0.001 }, "temperature: expected a number in 0..2, found -0.001"],
      [{ max_tokens: L.maxTokens.max + 1 }, "max_tokens: expected a number in 1..1000000, found 1000001"],
      [{ max_tokens: 0 }, "max_tokens: expected a number in 1..1000000, found 0"],
      [{ max_tokens: 1.5 }, "max_tokens: expected an integer, found 1.5"],
      [{ seed: 0.5 }, "seed: expected an integer, found 0.5"],
    ] as const) {
      const response = await post("/v1/chat/completions", ask(model, extra));
      expect(response.status, message).toBe(400);
      expect(((await response.json()) as { error: { message: string } }).error.message).toBe(message);
    }
  });

  it("takes the token only as the whole of a Bearer credential", async () => {
    const { url } = await proxyFor();
    for (const authorization of [`xBearer ${TOKEN}`, `Basic eA==, Bearer ${TOKEN}`, `Bearer ${TOKEN}x`]) {
      const response = await fetch(`${url}/v1/models`, { headers: { authorization } });
      expect(response.status, authorization.slice(0, 8)).toBe(401);
    }
  });

  it("takes only the four roles, not a name every object has (constructor, toString)", async () => {
    const { model, post } = await proxyFor();
    for (const role of ["constructor", "toString", "__proto__"]) {
      const response = await post("/v1/chat/completions", { model, messages: [{ role, content: "hi" }] });
      const { error } = (await response.json()) as { error: { code: string; param: string; message: string } };
      expect({ status: response.status, code: error.code, param: error.param }, role).toEqual({
        status: 400,
        code: "invalid_value",
        param: "messages[0].role",
      });
      expect(error.message).toMatch(/^messages\[0\]\.role: expected system, developer, user or assistant, found /);
    }
  });

  it("calls a parameter named like an object's own members (constructor, toString) unsupported, not neutral", async () => {
    const { model, post } = await proxyFor();
    for (const name of ["constructor", "toString", "hasOwnProperty"]) {
      const response = await post("/v1/chat/completions", { ...ask(model), [name]: 0 });
      const { error } = (await response.json()) as { error: { code: string; param: string; message: string } };
      expect({ status: response.status, code: error.code, param: error.param }, name).toEqual({
        status: 400,
        code: "unsupported_parameter",
        param: name,
      });
      expect(error.message, name).toBe(`${name}: not supported by this proxy (the attested enclave cannot honour it)`);
    }
  });

  it("refuses a model name that only begins with the attested one, in a request or GET /v1/models/{id}", async () => {
    const { model, post, get } = await proxyFor();
    const longer = await post("/v1/chat/completions", ask(`${model}x`));
    expect({ status: longer.status, body: await longer.json() }).toMatchObject({
      status: 404,
      body: { error: { code: "model_not_found", param: "model" } },
    });
    expect((await get(`/v1/models/${model}x`)).status).toBe(404);
  });

  it("refuses every response_format type but text, and a prompt of another type, as its own check (not the SDK's)", async () => {
    const { model, post } = await proxyFor();
    for (const type of ["json_schema", "json_object", "Text", null]) {
      const response = await post("/v1/chat/completions", ask(model, { response_format: { type } }));
      expect(await response.json(), String(type)).toMatchObject({
        error: { code: "unsupported_parameter", param: "response_format" },
      });
    }
    for (const prompt of [["a", "b"], 5, undefined]) {
      const response = await post("/v1/completions", { model, prompt });
      expect(await response.json(), JSON.stringify(prompt)).toMatchObject({
        error: { code: "invalid_value", param: "prompt" },
      });
    }
  });

  it("reads a body of exactly 4 MiB (the bound docs/errors.md states), and answers one byte more with 413", async () => {
    const { model, post } = await proxyFor();
    const bound = 4 * 1024 * 1024;
    const sized = (bytes: number) => {
      const head = JSON.stringify(ask(model, { padding: "" }));
      return head.replace('"padding":""', `"padding":"${"x".repeat(bytes - head.length)}"`);
    };
    const atLimit = await post("/v1/chat/completions", sized(bound));
    // Read whole, then refused for what it says (padding is no parameter), not for its size.
    expect({ status: atLimit.status, body: await atLimit.json() }).toMatchObject({
      status: 400,
      body: { error: { code: "unsupported_parameter", param: "padding" } },
    });
    // The rest of that body is never read: the answer says the connection closes, or the app's next
    // request on it fails once the server drops it (as the host's and the enclave's 413s say).
    const tooLarge = await post("/v1/chat/completions", sized(bound + 1));
    expect({ status: tooLarge.status, connection: tooLarge.headers.get("connection") }).toEqual({
      status: 413,
      connection: "close",
    });
  });
});

describe("proxy: what an OpenAI app sends by default", () => {
  it("accepts the values of the parameters it does not honour that change nothing (tool_choice none, an empty logit_bias…)", async () => {
    const { model, post } = await proxyFor();
    const neutral: Record<string, unknown> = {
      tool_choice: "none",
      parallel_tool_calls: false,
      function_call: "none",
      logit_bias: {},
      metadata: {},
      modalities: ["text"],
      safety_identifier: "u-1",
      prompt_cache_key: "k-1",
      n: 1,
      response_format: { type: "text" },
      user: "u-1",
      store: false,
      logprobs: false,
    };
    for (const [name, value] of Object.entries(neutral)) {
      const response = await post("/v1/chat/completions", ask(model, { [name]: value }));
      expect({ name, status: response.status }).toEqual({ name, status: 200 });
    }
    const all = await post("/v1/chat/completions", ask(model, { ...neutral, parallel_tool_calls: true }));
    expect(all.status).toBe(200);
    const completion = await post("/v1/completions", { model, prompt: "hi", logit_bias: {} });
    expect(completion.status).toBe(200);
  });

  it("refuses their values that would change the answer, naming the parameter, what it takes and what it found", async () => {
    const { model, post } = await proxyFor();
    const refused: [Record<string, unknown>, string, string][] = [
      [
        { tool_choice: "auto" },
        "tool_choice",
        'only "none" (this proxy sends no tools) is supported by this proxy, found "auto"',
      ],
      [{ tool_choice: "required" }, "tool_choice", 'found "required"'],
      [{ tool_choice: { type: "function", function: { name: "f" } } }, "tool_choice", "found a value of type object"],
      [
        { function_call: "auto" },
        "function_call",
        'only "none" (this proxy sends no functions) is supported by this proxy, found "auto"',
      ],
      [
        { parallel_tool_calls: "yes" },
        "parallel_tool_calls",
        "only a boolean (this proxy sends no tools) is supported",
      ],
      [{ logit_bias: { "50256": -100 } }, "logit_bias", "only {} (no bias) is supported by this proxy"],
      [{ logit_bias: [] }, "logit_bias", "found an empty array"],
      [{ metadata: { app: "x" } }, "metadata", "only {} (nothing is stored) is supported"],
      [{ modalities: ["text", "audio"] }, "modalities", 'only ["text"] is supported'],
      [{ modalities: [] }, "modalities", "found an empty array"],
      [{ safety_identifier: 7 }, "safety_identifier", "expected a string, found 7"],
      [{ prompt_cache_key: {} }, "prompt_cache_key", "expected a string, found a value of type object"],
    ];
    for (const [extra, param, message] of refused) {
      const response = await post("/v1/chat/completions", ask(model, extra));
      expect({ param, status: response.status, retry: response.headers.get("x-should-retry") }).toEqual({
        param,
        status: 400,
        retry: "false",
      });
      const { error } = (await response.json()) as { error: { message: string } };
      expect(error).toMatchObject({ type: "invalid_request_error", param });
      expect(error.message).toContain(`${param}: `);
      expect(error.message).toContain(message);
    }
    // Chat-only parameters stay refused on /v1/completions.
    const onCompletions = await post("/v1/completions", { model, prompt: "hi", tool_choice: "none" });
    expect(await onCompletions.json()).toMatchObject({
      error: { code: "unsupported_parameter", param: "tool_choice" },
    });
  });

  it("refuses max_tokens and max_completion_tokens together, as OpenAI does, rather than taking one silently", async () => {
    const { model, post } = await proxyFor();
    for (const [maxTokens, maxCompletionTokens] of [
      [9, 5],
      [5, 5],
    ]) {
      const response = await post(
        "/v1/chat/completions",
        ask(model, { max_tokens: maxTokens, max_completion_tokens: maxCompletionTokens }),
      );
      expect({ status: response.status, retry: response.headers.get("x-should-retry") }).toEqual({
        status: 400,
        retry: "false",
      });
      const { error } = (await response.json()) as { error: { message: string } };
      expect(error).toMatchObject({
        type: "invalid_request_error",
        code: "invalid_parameter_combination",
        param: "max_tokens",
      });
      expect(error.message).toContain(
        `max_tokens and max_completion_tokens: expected at most one of them, found both (${maxTokens} and ${maxCompletionTokens})`,
      );
    }
    // Either alone, or the other one null, is taken.
    const alone = await post("/v1/chat/completions", ask(model, { max_tokens: 5, max_completion_tokens: null }));
    expect(alone.status).toBe(200);
  });
});

describe("proxy: a bad request while the enclave does not verify", () => {
  it("is refused as bad (400) before any upstream work, not as the outage (502)", async () => {
    const { clock, session, paths, model, post } = await proxyWithClock();
    // Ten minutes on, the re-verification fails: the session keeps no verified enclave, and the next
    // request would verify it again first.
    clock.ms += 10 * 60_000;
    expect((await post()).status).toBe(502);
    expect(session.attested).toBe(false);
    const upstream = paths.length;
    const bad: [string, unknown, string, string][] = [
      ["/v1/chat/completions", "{not json", "invalid_value", "body"],
      ["/v1/chat/completions", { messages: [{ role: "user", content: "hi" }] }, "missing_required_parameter", "model"],
      ["/v1/chat/completions", { ...ask(model), model: 7 }, "invalid_value", "model"],
      ["/v1/chat/completions", { ...ask(model), messages: [] }, "invalid_value", "messages"],
      ["/v1/chat/completions", ask(model, { temperature: 3 }), "invalid_value", "temperature"],
      ["/v1/chat/completions", ask(model, { tools: [{ type: "function" }] }), "unsupported_parameter", "tools"],
      ["/v1/chat/completions", ask(model, { stream: "yes" }), "invalid_value", "stream"],
      ["/v1/completions", { model, prompt: ["a", "b"] }, "invalid_value", "prompt"],
      ["/v1/completions", { model, prompt: "hi", suffix: "x" }, "unsupported_parameter", "suffix"],
      // Past the enclave's limits, as the SDK checks them (client/sdk.ts checkRequestArguments): before the
      // re-verification too.
      [
        "/v1/chat/completions",
        ask(model, { stop: Array.from({ length: 9 }, (_, i) => `s${i}`) }),
        "bad_option",
        "stop",
      ],
      ["/v1/chat/completions", ask(model, { stop: "x".repeat(65) }), "bad_option", "stop"],
      [
        "/v1/chat/completions",
        { model, messages: Array.from({ length: 257 }, () => ({ role: "user", content: "x" })) },
        "bad_messages",
        "messages",
      ],
      [
        "/v1/chat/completions",
        { model, messages: [{ role: "user", content: "x".repeat(1_000_001) }] },
        "bad_messages",
        "messages[0].content",
      ],
      ["/v1/completions", { model, prompt: "x".repeat(1_000_001) }, "bad_prompt", "prompt"],
      ["/v1/completions", { model, prompt: "hi", stop: ["a", ""] }, "bad_option", "stop"],
    ];
    for (const [path, body, code, param] of bad) {
      const response = await post(path, body);
      expect({ param, status: response.status }).toEqual({ param, status: 400 });
      expect(await response.json()).toMatchObject({ error: { type: "invalid_request_error", code, param } });
    }
    // Nothing was asked of the host for them: the session is still the one that failed.
    expect(paths.length).toBe(upstream);
    expect(session.attested).toBe(false);
    // A well-formed request is the one that meets the outage.
    const good = await post();
    expect(good.status).toBe(502);
    expect(paths.length).toBeGreaterThan(upstream);
  });
});

describe("proxy: an unknown route", () => {
  it("is a 404 like the other refusals: x-should-retry false, and the connection kept (its bounded body read)", async () => {
    const { get, post } = await proxyFor();
    for (const send of [() => get("/v1/nothing"), () => post("/v1/nothing", { model: "x" })]) {
      const response = await send();
      expect({
        status: response.status,
        retry: response.headers.get("x-should-retry"),
        connection: response.headers.get("connection"),
      }).toEqual({ status: 404, retry: "false", connection: "keep-alive" });
      expect(await response.json()).toMatchObject({
        error: { type: "invalid_request_error", code: "not_found", param: null },
      });
    }
    // The body it reads is bounded as on every /v1 route.
    const tooLarge = await post("/v1/nothing", { padding: "x".repeat(PROXY_MAX_BODY_BYTES) });
    expect(tooLarge.status).toBe(413);
    // A known route with another method and a body: the same.
    const wrongMethod = await post("/v1/models", { model: "x" });
    expect({ status: wrongMethod.status, connection: wrongMethod.headers.get("connection") }).toEqual({
      status: 405,
      connection: "keep-alive",
    });
  });
});
