/**
 * An app whose OpenAI base URL lacks `/v1` (OPENAI_BASE_URL=http://127.0.0.1:8787, a common slip)
 * asks the proxy for /chat/completions, /completions or /models: the 404 says to add `/v1`. Any
 * other unknown route keeps the plain 404.
 */
import { afterEach, describe, expect, it } from "vitest";
import { attestedModelId, createProxyApp } from "../../client/proxy.ts";
import { rawExchange } from "../helpers/raw-http.ts";
import { closeServers, connectTo, serve } from "./helpers.ts";

afterEach(closeServers);

const TOKEN = "local-token-0123456789abcdef0123456789";

describe("proxy: an app whose base URL lacks /v1", () => {
  it("gets a 404 naming the fix for each OpenAI route asked without /v1, and the plain 404 elsewhere", async () => {
    const { session } = await connectTo({});
    const url = await serve(createProxyApp({ session, token: TOKEN }).fetch);
    const HINT = `the app's base URL lacks /v1 (OPENAI_BASE_URL=${url}/v1, as cloister proxy prints it)`;
    const model = attestedModelId(session);
    const ask = (method: string, path: string) =>
      fetch(`${url}${path}`, {
        method,
        headers: { authorization: `Bearer ${TOKEN}`, "content-type": "application/json" },
        ...(method === "POST" ? { body: JSON.stringify({ model, messages: [{ role: "user", content: "hi" }] }) } : {}),
      });
    const asked: [string, string][] = [
      ["POST", "/chat/completions"],
      ["POST", "/completions"],
      ["GET", "/models"],
      ["GET", `/models/${encodeURIComponent(model)}`],
    ];
    for (const [method, path] of asked) {
      const response = await ask(method, path);
      const body = (await response.json()) as { error: { message: string; code: string } };
      expect({ path, status: response.status, code: body.error.code, hint: body.error.message.includes(HINT) }).toEqual(
        {
          path,
          status: 404,
          code: "not_found",
          hint: true,
        },
      );
    }
    const elsewhere: [string, string][] = [
      ["GET", "/v1/nothing"],
      ["POST", "/embeddings"],
      ["GET", "/chat/completions/x"],
    ];
    for (const [method, path] of elsewhere) {
      const response = await ask(method, path);
      const body = (await response.json()) as { error: { message: string } };
      expect({ path, status: response.status, hint: body.error.message.includes("/v1 (OPENAI_BASE_URL") }).toEqual({
        path,
        status: 404,
        hint: false,
      });
    }
  });

  it("names a loopback origin only: an absolute-form target's own host (Host loopback) is not shown", async () => {
    const { session } = await connectTo({});
    const url = await serve(createProxyApp({ session, token: TOKEN }).fetch);
    const { port } = new URL(url);
    // The Host header passes loopbackHostOnly; the request target names another host, which
    // @hono/node-server makes the request's URL.
    const answer = await rawExchange(
      Number(port),
      `GET http://evil.example:8080/models HTTP/1.1\r\nHost: 127.0.0.1:${port}\r\n` +
        `Authorization: Bearer ${TOKEN}\r\nConnection: close\r\n\r\n`,
    );
    const body = JSON.parse(answer.slice(answer.indexOf("\r\n\r\n") + 4)) as { error: { message: string } };
    expect({ status: answer.slice(0, answer.indexOf("\r\n")), message: body.error.message }).toEqual({
      status: "HTTP/1.1 404 Not Found",
      message: expect.stringContaining(
        "the app's base URL lacks /v1 (OPENAI_BASE_URL=http://127.0.0.1:PORT/v1, as cloister proxy prints it)",
      ),
    });
    expect(body.error.message).not.toContain("evil.example");
  });
});
