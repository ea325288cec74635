/**
 * `cloister proxy`'s log lines for a streamed request: the access line when the answer starts and
 * the stream's line (proxy-stream) when it ends, each one line of JSON written through
 * stringifyJsonVisibly, as cli-json-visible.test.ts shows the access line of a 404 is (U+202E in its
 * path escaped). A stream line's path cannot carry such a character: hono routes the
 * percent-decoded path, and only the two completion routes stream, so the line names one of them
 * whatever the caller wrote (shown below with an encoded "s"); this test shows the line is made by
 * the same writer, so a path or outcome that could hold untrusted text would be escaped there too.
 */
import { afterEach, describe, expect, it, vi } from "vitest";
import { stringifyJsonVisibly } from "../../attestation/untrusted-text.ts";
import { attestedModelId, createProxyApp } from "../../client/proxy.ts";
import { usage } from "../enclave/helpers.ts";
import { closeServers, connectTo } from "./helpers.ts";

vi.mock("../../attestation/untrusted-text.ts", async (importOriginal) => {
  const actual = await importOriginal<typeof import("../../attestation/untrusted-text.ts")>();
  return { ...actual, stringifyJsonVisibly: vi.fn(actual.stringifyJsonVisibly) };
});

afterEach(closeServers);

const TOKEN = "local-token-0123456789abcdef0123456789";

describe("cloister proxy's log lines of a streamed request", () => {
  it("the access line and the stream's line, each one line of JSON written visibly, the stream's naming its route and outcome", async () => {
    const { session } = await connectTo({
      script: [
        { type: "text", text: "Hel" },
        { type: "text", text: "lo" },
        { type: "done", stopReason: "eog", usage },
      ],
    });
    const log: string[] = [];
    const app = createProxyApp({ session, token: TOKEN, log: (line) => log.push(line) });
    const visible = vi.mocked(stringifyJsonVisibly);
    visible.mockClear();
    const response = await app.request("/v1/chat/completion%73", {
      method: "POST",
      headers: { authorization: `Bearer ${TOKEN}`, "content-type": "application/json" },
      body: JSON.stringify({
        model: attestedModelId(session),
        messages: [{ role: "user", content: "hi" }],
        stream: true,
      }),
    });
    expect(response.status).toBe(200);
    expect(await response.text()).toContain("data: [DONE]");
    const xRequestId = response.headers.get("x-request-id");
    expect(xRequestId).toMatch(/^req_[0-9a-f]{32}$/);
    // The access line as the answer starts; the stream's when its body has been read to the end,
    // both naming the request's x-request-id.
    expect(log.map((line) => JSON.parse(line))).toEqual([
      expect.objectContaining({ type: "proxy", method: "POST", path: "/v1/chat/completions", status: 200, xRequestId }),
      {
        type: "proxy-stream",
        time: expect.any(String),
        path: "/v1/chat/completions",
        outcome: "complete",
        xRequestId,
      },
    ]);
    for (const line of log) expect(line).not.toContain("\n");
    // Both written by the visible writer (the stream's line too, not a JSON.stringify of its own).
    expect(visible.mock.results.map((result) => result.value)).toEqual(log);
  });

  it("two streams under way at once: each one's two lines carry its own x-request-id, the other's never", async () => {
    const { session } = await connectTo({
      script: [
        { type: "text", text: "Hel" },
        { type: "text", text: "lo" },
        { type: "done", stopReason: "eog", usage },
      ],
    });
    const log: string[] = [];
    const app = createProxyApp({ session, token: TOKEN, log: (line) => log.push(line) });
    const ask = () =>
      app.request("/v1/chat/completions", {
        method: "POST",
        headers: { authorization: `Bearer ${TOKEN}`, "content-type": "application/json" },
        body: JSON.stringify({
          model: attestedModelId(session),
          messages: [{ role: "user", content: "hi" }],
          stream: true,
        }),
      });
    // Both started (their access lines written, first then second) before either body is read; the
    // second is read to its end first, so the stream lines come in the other order.
    const first = await ask();
    const second = await ask();
    expect(await second.text()).toContain("data: [DONE]");
    expect(await first.text()).toContain("data: [DONE]");
    const firstId = first.headers.get("x-request-id");
    const secondId = second.headers.get("x-request-id");
    expect(firstId).toMatch(/^req_[0-9a-f]{32}$/);
    expect(secondId).toMatch(/^req_[0-9a-f]{32}$/);
    expect(firstId).not.toBe(secondId);
    const lines = log.map((line) => JSON.parse(line) as { type: string; outcome?: string; xRequestId?: unknown });
    expect(lines.map((line) => [line.type, line.xRequestId])).toEqual([
      ["proxy", firstId],
      ["proxy", secondId],
      ["proxy-stream", secondId],
      ["proxy-stream", firstId],
    ]);
  });
});
