/**
 * README.md's list of what `cloister proxy` serves names every route the proxy itself lists (in its
 * 404's message), /healthz among them, and /healthz answers as README says: without the token, and
 * `{"status": "ok"}`.
 */
import { afterEach, describe, expect, it } from "vitest";
import { createProxyApp } from "../../client/proxy.ts";
import { closeServers, connectTo, serve } from "../client/helpers.ts";
import { pageSection } from "../helpers/doc-pages.ts";

afterEach(closeServers);

const TOKEN = "local-token-0123456789abcdef0123456789";

describe("README on the proxy's routes", () => {
  it("names each route the proxy lists, and /healthz answers without the token", async () => {
    const { session } = await connectTo({});
    const url = await serve(createProxyApp({ session, token: TOKEN }).fetch);
    const unknown = await fetch(`${url}/v1/nothing`, { headers: { authorization: `Bearer ${TOKEN}` } });
    const { error } = (await unknown.json()) as { error: { message: string } };
    const listed = [...error.message.matchAll(/\/(?:v1\/)?[a-z{}/]+/g)].map((m) => m[0]);
    expect(listed).toEqual(["/v1/models", "/v1/models/{id}", "/v1/chat/completions", "/v1/completions", "/healthz"]);
    const sentence = pageSection("README.md", "It serves `GET /v1/models`", "405 with `allow`");
    const named = listed.filter((route) => sentence.includes(` ${route}\``));
    expect(named).toEqual(listed);
    expect(sentence).toContain('without the token `GET /healthz` (`{"status": "ok"}`');
    const health = await fetch(`${url}/healthz`);
    expect({ status: health.status, body: await health.json() }).toEqual({ status: 200, body: { status: "ok" } });
  });
});
