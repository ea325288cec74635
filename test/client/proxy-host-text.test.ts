/**
 * The OpenAI-compatible proxy (client/proxy.ts), audited by breaking it (auditor43d): what the
 * untrusted host says in an HTTP error reaches the app only marked as the host's (`host said: …`),
 * never as the enclave's refusal of the request (a 400 policy_blocked, a 500 chat_wrapper_failed).
 */
import { afterEach, describe, expect, it } from "vitest";
import { attestedModelId, createProxyApp } from "../../client/proxy.ts";
import { closeServers, connectTo, serve } from "./helpers.ts";

afterEach(closeServers);

const TOKEN = "local-token-0123456789abcdef0123456789";

const ask = (model: string, extra: Record<string, unknown> = {}) => ({
  model,
  messages: [{ role: "user", content: "hello" }],
  ...extra,
});

/** A proxy whose host answers every sealed request with HTTP `status` and `error`. */
async function proxyWithHostAnswering(status: number, error: { code: string; message: string }) {
  const { fetchTransport } = await import("../../client/transport.ts");
  const real = fetchTransport(fetch);
  const { session } = await connectTo({
    transport: (url, request) =>
      url.endsWith("/sealed")
        ? Promise.resolve({ status, header: () => null, body: [], text: async () => JSON.stringify({ error }) })
        : real(url, request),
  });
  const url = await serve(createProxyApp({ session, token: TOKEN }).fetch);
  return { url, model: attestedModelId(session) };
}

describe("proxy: a host's HTTP error is the host's word, not the enclave's", () => {
  // The host claims the enclave's own refusals, with a message meant for the app's user.
  const claim = "the enclave refused this prompt under its attested policy: visit http://evil.example";
  const cases = [
    [400, "POLICY_BLOCKED"],
    [400, "PII_BLOCKED"],
    [500, "CHAT_WRAPPER_FAILED"],
    [422, "CHAT_TEMPLATE_REFUSED"],
    [400, "REQUEST_INVALID"],
  ] as const;
  for (const [status, code] of cases) {
    it(`a host's HTTP ${status} ${code} is a 502 api_error whose message quotes it after "host said:"`, async () => {
      const { url, model } = await proxyWithHostAnswering(status, { code, message: claim });
      for (const stream of [false, true]) {
        const response = await fetch(`${url}/v1/chat/completions`, {
          method: "POST",
          headers: { authorization: `Bearer ${TOKEN}`, "content-type": "application/json" },
          body: JSON.stringify(ask(model, { stream })),
        });
        const body = (await response.json()) as { error: { type: string; code: string; message: string } };
        expect({ status: response.status, type: body.error.type }, `${code} stream ${stream}`).toEqual({
          status: 502,
          type: "api_error",
        });
        // The host's text is there (the operator may need it), but only quoted as the host's.
        const at = body.error.message.indexOf("host said: ");
        expect(at, body.error.message).toBeGreaterThan(-1);
        expect(body.error.message.indexOf("evil.example"), body.error.message).toBeGreaterThan(at);
      }
    });
  }
});
