/**
 * The proxy's `x-request-id` (client/proxy.ts): every answer carries one (a 200, a stream, the
 * proxy's own 4xx refusals, a 5xx), as the openai SDKs read it into `_request_id`, so that an app's
 * log line can be joined to the proxy's. Each is fresh (two identical requests get two ids; a caller's
 * own `x-request-id` is not echoed) and is the one the proxy's log line for that request names.
 */
import { afterEach, describe, expect, it } from "vitest";
import { attestedModelId, createProxyApp } from "../../client/proxy.ts";
import type { Session } from "../../client/sdk.ts";
import { closeServers, connectTo } from "./helpers.ts";

afterEach(closeServers);

const TOKEN = "local-token-0123456789abcdef0123456789";
const REQUEST_ID = /^req_[0-9a-f]{32}$/;

/** The session, with chat throwing a fault of no known kind (the proxy's 500 internal_error). */
function faultyChat(session: Session): Session {
  return new Proxy(session, {
    get(target, name) {
      if (name === "chat") {
        return () => {
          throw new TypeError("a fault of the proxy");
        };
      }
      const value = Reflect.get(target, name, target);
      return typeof value === "function" ? value.bind(target) : value;
    },
  });
}

describe("cloister proxy's x-request-id", () => {
  it("is on every answer (200, stream, 4xx, 5xx), fresh per request, and the one its log line names", async () => {
    const log: string[] = [];
    const { session } = await connectTo();
    const { session: failing } = await connectTo({ script: [new Error("engine down")] });
    const ok = createProxyApp({ session, token: TOKEN, log: (line) => log.push(line) });
    const down = createProxyApp({ session: failing, token: TOKEN, log: (line) => log.push(line) });
    const faulty = createProxyApp({ session: faultyChat(session), token: TOKEN, log: (line) => log.push(line) });
    const model = attestedModelId(session);
    const post = (body: unknown, headers: Record<string, string> = {}) => ({
      method: "POST",
      headers: { authorization: `Bearer ${TOKEN}`, "content-type": "application/json", ...headers },
      body: typeof body === "string" ? body : JSON.stringify(body),
    });
    const chat = { model, messages: [{ role: "user", content: "hi" }] };
    const cases: [string, () => Response | Promise<Response>, number][] = [
      ["a chat completion", () => ok.request("/v1/chat/completions", post(chat)), 200],
      ["the same request again", () => ok.request("/v1/chat/completions", post(chat)), 200],
      ["a stream", () => ok.request("/v1/chat/completions", post({ ...chat, stream: true })), 200],
      ["a completion", () => ok.request("/v1/completions", post({ model, prompt: "hi" })), 200],
      ["the model list", () => ok.request("/v1/models", { headers: { authorization: `Bearer ${TOKEN}` } }), 200],
      ["/healthz", () => ok.request("/healthz"), 200],
      [
        "a caller's own x-request-id",
        () =>
          ok.request("/v1/chat/completions", post(chat, { "x-request-id": "req_0123456789abcdef0123456789abcdef" })),
        200,
      ],
      ["a malformed body", () => ok.request("/v1/chat/completions", post("{not json")), 400],
      [
        "a tool message",
        () => ok.request("/v1/chat/completions", post({ model, messages: [{ role: "tool", content: "x" }] })),
        400,
      ],
      ["no token", () => ok.request("/v1/models"), 401],
      ["another model", () => ok.request("/v1/chat/completions", post({ ...chat, model: "other" })), 404],
      ["no such route", () => ok.request("/v1/embeddings", post({})), 404],
      ["another method", () => ok.request("/v1/models", post({})), 405],
      ["another host", () => ok.request("http://evil.example/healthz"), 421],
      ["an engine failure", () => down.request("/v1/chat/completions", post(chat)), 502],
      [
        "an engine failure before a stream's first token",
        () => down.request("/v1/chat/completions", post({ ...chat, stream: true })),
        502,
      ],
      ["a fault of the proxy", () => faulty.request("/v1/chat/completions", post(chat)), 500],
    ];
    const ids: string[] = [];
    for (const [name, send, status] of cases) {
      const response = await send();
      await response.text();
      expect(response.status, name).toBe(status);
      const id = response.headers.get("x-request-id");
      expect(id, name).toMatch(REQUEST_ID);
      ids.push(id as string);
    }
    // Fresh per request: identical requests too, and a caller's own id is not taken.
    expect(new Set(ids).size).toBe(cases.length);
    expect(ids).not.toContain("req_0123456789abcdef0123456789abcdef");
    // Each request's log line names the id its answer carried, in the order they were sent.
    const lines = log.map((line) => JSON.parse(line) as { type: string; status: number; xRequestId?: unknown });
    const access = lines.filter((line) => line.type === "proxy");
    expect(access.map((line) => [line.status, line.xRequestId])).toEqual(
      cases.map(([, , status], i) => [status, ids[i]]),
    );
  });
});
