/**
 * The proxy's mapping of a policy refusal (client/proxy.ts fromClientError): PROMPT_TOO_LONG becomes
 * OpenAI's context_length_exceeded only on the enclave's word (origin "enclave", a sealed error
 * frame the SDK authenticated). The SDK makes policy errors only from such frames today; a policy
 * error said to come from the host (as a later change might make one) keeps its own code, so the
 * untrusted host can never make an app believe its prompt is over the model's context. The
 * session's chat is a stand-in that fails with the error given; the app is asked in process.
 */
import { afterEach, describe, expect, it } from "vitest";
import { ClientError, type ClientErrorOrigin } from "../../client/errors.ts";
import { attestedModelId, createProxyApp } from "../../client/proxy.ts";
import type { Session } from "../../client/sdk.ts";
import { closeServers, connectTo } from "./helpers.ts";

afterEach(closeServers);

const TOKEN = "local-token-0123456789abcdef0123456789";

/** The session, its chat failing at once with a policy-kind PROMPT_TOO_LONG said by `origin`. */
function refusingAs(origin: ClientErrorOrigin) {
  return (session: Session): Session =>
    new Proxy(session, {
      get(target, name) {
        if (name === "chat") {
          return () =>
            (async function* () {
              yield* [];
              throw new ClientError("policy", "PROMPT_TOO_LONG", "enclave refused the request: PROMPT_TOO_LONG", {
                origin,
              });
            })();
        }
        const value: unknown = Reflect.get(target, name, target);
        return typeof value === "function" ? value.bind(target) : value;
      },
    });
}

describe("proxy: a policy refusal PROMPT_TOO_LONG", () => {
  it("is context_length_exceeded from the enclave only; said by the host, it keeps its own code", async () => {
    const { session } = await connectTo({});
    const found: Record<string, unknown> = {};
    for (const origin of ["enclave", "host"] as const) {
      const app = createProxyApp({ session: refusingAs(origin)(session), token: TOKEN, log: () => {} });
      const response = await app.request("/v1/chat/completions", {
        method: "POST",
        headers: { authorization: `Bearer ${TOKEN}`, "content-type": "application/json" },
        body: JSON.stringify({ model: attestedModelId(session), messages: [{ role: "user", content: "hello" }] }),
      });
      const body = (await response.json()) as { error: { type: string; code: string } };
      found[origin] = { status: response.status, type: body.error.type, code: body.error.code };
    }
    expect(found).toEqual({
      enclave: { status: 400, type: "invalid_request_error", code: "context_length_exceeded" },
      host: { status: 400, type: "invalid_request_error", code: "prompt_too_long" },
    });
  });
});
