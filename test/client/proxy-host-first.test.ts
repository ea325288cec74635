/**
 * The proxy refuses a request whose Host is not loopback (421, DNS rebinding) before it looks at the
 * token (SECURITY.md: "refused (421) before the token is looked at"): a rebound page, which has no
 * token, is told 421 whatever it sends as Authorization, never 401; and a 401 or 421, refused before
 * the body is read, closes the connection (README: "a 401, 421 or 413, refused before the body is
 * read, closes it"), while a refusal after the body is read keeps it.
 */
import { request } from "node:http";
import { afterEach, describe, expect, it } from "vitest";
import { createProxyApp } from "../../client/proxy.ts";
import { closeServers, connectTo, serve } from "./helpers.ts";

afterEach(closeServers);

const TOKEN = "local-token-0123456789abcdef0123456789";

/** One POST on node:http, its status and the connection header of its answer. */
function post(url: string, headers: Record<string, string>, body: string) {
  return new Promise<{ status: number; code: string; connection: string | undefined }>((resolve, reject) => {
    const { hostname, port } = new URL(url);
    const sent = request(
      {
        hostname,
        port,
        path: "/v1/chat/completions",
        method: "POST",
        headers: { ...headers, "content-type": "application/json", "content-length": String(Buffer.byteLength(body)) },
      },
      (response) => {
        let text = "";
        response.on("data", (chunk: Buffer) => (text += chunk.toString()));
        response.on("end", () =>
          resolve({
            status: response.statusCode ?? 0,
            code: (JSON.parse(text) as { error: { code: string } }).error.code,
            connection: response.headers.connection,
          }),
        );
      },
    );
    sent.on("error", reject);
    sent.end(body);
  });
}

describe("proxy: the Host before the token", () => {
  it("answers a non-loopback Host 421 with no token, a wrong one or the right one, never 401", async () => {
    const { session } = await connectTo({});
    const app = createProxyApp({ session, token: TOKEN });
    const authorizations: [string, Record<string, string>][] = [
      ["none", {}],
      ["wrong", { authorization: `Bearer ${"w".repeat(TOKEN.length)}` }],
      ["right", { authorization: `Bearer ${TOKEN}` }],
    ];
    for (const [name, authorization] of authorizations) {
      for (const [method, path] of [
        ["GET", "/v1/models"],
        ["POST", "/v1/chat/completions"],
        ["POST", "/v1/nothing"],
      ]) {
        const response = await app.request(path as string, {
          method: method as string,
          headers: { host: "rebound.example:8787", ...authorization },
        });
        expect(response.status, `${name} ${method} ${path}`).toBe(421);
        expect(((await response.json()) as { error: { code: string } }).error.code).toBe("host_not_loopback");
      }
    }
    // The same request on a loopback Host without the token: the token's refusal.
    expect((await app.request("/v1/models", { headers: { host: "127.0.0.1:8787" } })).status).toBe(401);
  });

  it("closes the connection of a 401 or 421 (its body unread), keeps it after a 404 that read the body", async () => {
    const { session } = await connectTo({});
    const url = await serve(createProxyApp({ session, token: TOKEN }).fetch);
    const body = JSON.stringify({ model: "x", messages: [{ role: "user", content: "hi" }] });
    expect(await post(url, {}, body)).toEqual({ status: 401, code: "invalid_api_key", connection: "close" });
    expect(await post(url, { host: "rebound.example", authorization: `Bearer ${TOKEN}` }, body)).toEqual({
      status: 421,
      code: "host_not_loopback",
      connection: "close",
    });
    // The model refused after the body was read: the app's pooled connection stays usable.
    expect(await post(url, { authorization: `Bearer ${TOKEN}` }, body)).toEqual({
      status: 404,
      code: "model_not_found",
      connection: "keep-alive",
    });
  });
});
