/**
 * The host's Retry-After on a refusal (429, 503): kept on the SDK's ClientError as
 * retryAfterSeconds when it is whole seconds (anything else is dropped), and sent on by the proxy
 * as `retry-after` (openai SDKs wait that long before retrying).
 */
import { afterEach, expect, it } from "vitest";
import { attestedModelId, createProxyApp } from "../../client/proxy.ts";
import { fetchTransport, type Transport } from "../../client/transport.ts";
import { closeServers, connectTo, serve } from "./helpers.ts";

afterEach(closeServers);
const TOKEN = "local-token-0123456789abcdef0123456789";

function refusingHost(status: number, code: string, retryAfter: string | null): Transport {
  const inner = fetchTransport(fetch);
  return (url, request) => {
    if (!url.endsWith("/sealed")) return inner(url, request);
    const text = JSON.stringify({ error: { code, message: "slow down" } });
    return Promise.resolve({
      status,
      header: (name: string) => (name.toLowerCase() === "retry-after" ? retryAfter : null),
      body: [new TextEncoder().encode(text)],
      text: async () => text,
    });
  };
}

for (const [status, code, sent, kept] of [
  [429, "RATE_LIMITED", "7", 7],
  [503, "HOST_BUSY", " 30 ", 30],
  [429, "RATE_LIMITED", "Wed, 21 Oct 2015 07:28:00 GMT", undefined],
  [429, "RATE_LIMITED", "7.5", undefined],
  [429, "RATE_LIMITED", "1234567", undefined],
  [429, "RATE_LIMITED", null, undefined],
] as const) {
  it(`a host ${status} with Retry-After ${JSON.stringify(sent)}: retryAfterSeconds ${kept}, and the proxy's retry-after`, async () => {
    const { session } = await connectTo({ transport: refusingHost(status, code, sent) });
    const error = await session.complete("hi").catch((e: unknown) => e);
    expect(error).toMatchObject({ kind: "transport", code, retryAfterSeconds: kept });
    const url = await serve(createProxyApp({ session, token: TOKEN }).fetch);
    const response = await fetch(`${url}/v1/chat/completions`, {
      method: "POST",
      headers: { authorization: `Bearer ${TOKEN}`, "content-type": "application/json" },
      body: JSON.stringify({ model: attestedModelId(session), messages: [{ role: "user", content: "hi" }] }),
    });
    expect(response.status).toBe(status);
    expect(response.headers.get("retry-after")).toBe(kept === undefined ? null : String(kept));
    // A 429 as OpenAI's own (rate_limit_exceeded); a 503 as the SDK's code, lower-case (OpenAI names none).
    expect(((await response.json()) as { error: { code: string } }).error.code).toBe(
      code === "RATE_LIMITED" ? "rate_limit_exceeded" : "host_busy",
    );
  });
}
