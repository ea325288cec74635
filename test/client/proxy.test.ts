/**
 * The OpenAI-compatible proxy (client/proxy.ts) over a session attested to an in-process enclave
 * with a scripted engine: failures before the first token are HTTP errors in OpenAI's shape; a
 * failure mid-stream is an error event and never `[DONE]`; malformed or unsupported requests are
 * refused naming the parameter. (With the real `openai` SDK and a real deployment:
 * test/e2e/proxy.test.ts.)
 */
import { afterEach, describe, expect, it } from "vitest";
import { attestedModelId, createProxyApp, PROXY_MAX_BODY_BYTES } from "../../client/proxy.ts";
import { usage } from "../enclave/helpers.ts";
import { closeServers, connectTo, type Script, serve } from "./helpers.ts";

afterEach(closeServers);

const TOKEN = "local-token-0123456789abcdef0123456789";

async function proxyFor(script?: Script) {
  const { session } = await connectTo(script === undefined ? {} : { script });
  const log: string[] = [];
  const url = await serve(createProxyApp({ session, token: TOKEN, log: (line) => log.push(line) }).fetch);
  const model = attestedModelId(session);
  const post = (path: string, body: unknown, token = TOKEN) =>
    fetch(`${url}${path}`, {
      method: "POST",
      headers: { authorization: `Bearer ${token}`, "content-type": "application/json" },
      body: typeof body === "string" ? body : JSON.stringify(body),
    });
  return { url, model, post, log };
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

const ask = (model: string, extra: Record<string, unknown> = {}) => ({
  model,
  messages: [{ role: "user", content: "hello" }],
  ...extra,
});

describe("proxy: a session whose re-verification failed", () => {
  it("refuses while the enclave does not verify, and verifies again before the next request", async () => {
    let clock = Date.now();
    const { session, paths } = await connectTo({ connect: { now: () => new Date(clock), reattestAfterMs: 60_000 } });
    const url = await serve(createProxyApp({ session, token: TOKEN }).fetch);
    const model = attestedModelId(session);
    const post = () =>
      fetch(`${url}/v1/chat/completions`, {
        method: "POST",
        headers: { authorization: `Bearer ${TOKEN}`, "content-type": "application/json" },
        body: JSON.stringify(ask(model)),
      });
    // Ten minutes on, the enclave's signed answers are outside the policy's clock skew: the
    // re-verification fails, nothing is sealed, and the session keeps no verified enclave.
    clock += 10 * 60_000;
    const refused = await post();
    expect(refused.status).toBe(502);
    expect(((await refused.json()) as { error: { type: string } }).error.type).toBe("cloister_verification_error");
    expect(session.attested).toBe(false);
    const models = await fetch(`${url}/v1/models`, { headers: { authorization: `Bearer ${TOKEN}` } });
    expect(models.status).toBe(502);
    expect(paths.filter((p) => p === "/sealed")).toEqual([]);
    // The clock right again: the next request verifies the enclave first, then is answered.
    clock -= 10 * 60_000;
    const answered = await post();
    expect(answered.status).toBe(200);
    expect(session.attested).toBe(true);
    expect(paths.filter((p) => p === "/sealed").length).toBe(1);
  });
});

describe("proxy: loopback callers only", () => {
  it("answers 421 to a request naming another host (DNS rebinding), before the token or any route", async () => {
    const { session } = await connectTo({});
    const app = createProxyApp({ session, token: TOKEN });
    for (const path of ["/healthz", "/v1/models"]) {
      const rebound = await app.request(path, {
        headers: { host: "evil.example:8787", authorization: `Bearer ${TOKEN}` },
      });
      expect(rebound.status, path).toBe(421);
      expect(await rebound.json()).toMatchObject({ error: { code: "host_not_loopback" } });
    }
    const local = await app.request("/v1/models", {
      headers: { host: "127.0.0.1:8787", authorization: `Bearer ${TOKEN}` },
    });
    expect(local.status).toBe(200);
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
    expect(log.map((l) => JSON.parse(l))).toContainEqual(
      expect.objectContaining({ type: "proxy-stream", path: "/v1/chat/completions", outcome: "generation_failed" }),
    );
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

  it("the host's 413 is a request_too_large the openai SDKs do not retry", async () => {
    const { fetchTransport } = await import("../../client/transport.ts");
    const real = fetchTransport(fetch);
    const { session } = await connectTo({
      transport: (url, request) =>
        url.endsWith("/sealed")
          ? Promise.resolve({
              status: 413,
              header: () => null,
              body: [],
              text: async () =>
                JSON.stringify({
                  error: { code: "BODY_TOO_LARGE", message: "request body: expected at most 1048576 bytes" },
                }),
            })
          : real(url, request),
    });
    const url = await serve(createProxyApp({ session, token: TOKEN }).fetch);
    const response = await fetch(`${url}/v1/chat/completions`, {
      method: "POST",
      headers: { authorization: `Bearer ${TOKEN}`, "content-type": "application/json" },
      body: JSON.stringify(ask(attestedModelId(session))),
    });
    expect(response.status).toBe(413);
    expect(response.headers.get("x-should-retry")).toBe("false");
    expect(await response.json()).toMatchObject({
      error: { type: "invalid_request_error", code: "request_too_large" },
    });
  });

  it("a failure before the first token is an HTTP error in OpenAI's shape (stream or not)", async () => {
    const { model, post } = await proxyFor([new Error("engine down")]);
    for (const stream of [false, true]) {
      const response = await post("/v1/chat/completions", ask(model, { stream }));
      expect(response.status).toBe(502);
      expect(await response.json()).toMatchObject({ error: { type: "api_error", code: "generation_failed" } });
    }
  });

  it("refuses malformed and unsupported requests naming the parameter, with x-should-retry: false", async () => {
    const { model, post, url } = await proxyFor();
    const cases: [unknown, number, string, string | null][] = [
      ["{not json", 400, "invalid_value", "body"],
      [{ ...ask(model), messages: [] }, 400, "invalid_value", "messages"],
      [{ model, messages: [{ role: "tool", content: "x" }] }, 400, "invalid_value", "messages[0].role"],
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
      [ask("other"), 404, "model_not_found", "model"],
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
    const tooBig = await post("/v1/chat/completions", ask(model, { padding: "x".repeat(PROXY_MAX_BODY_BYTES) }));
    expect(tooBig.status).toBe(413);
    // The auth scheme is case-insensitive (RFC 9110 11.1); the token is not.
    const lowerScheme = await fetch(`${url}/v1/models`, { headers: { authorization: `bearer ${TOKEN}` } });
    expect(lowerScheme.status).toBe(200);
    const wrongToken = await post("/v1/chat/completions", ask(model), "wrong-token");
    expect(wrongToken.status).toBe(401);
    expect(await wrongToken.json()).toMatchObject({ error: { type: "authentication_error", code: "invalid_api_key" } });
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
