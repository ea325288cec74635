/**
 * The host's server (host/server.ts startHost) as a hostile client meets it: requests refused
 * before the app sees them (node cannot parse them, or @hono/node-server cannot make a URL of them)
 * get the JSON error body with a code, and a line in the access log, with sizes only.
 */
import { describe, expect, it } from "vitest";
import type { AccessLogEntry } from "../../host/access-log.ts";
import { ApiKeyStore, hashApiKey } from "../../host/identity.ts";
import { startHost } from "../../host/server.ts";
import { rawExchange } from "../helpers/raw-http.ts";

const MARKER = "CLIENT-BYTES-MARKER";

async function withHost(run: (port: number, log: AccessLogEntry[]) => Promise<void>): Promise<void> {
  const log: AccessLogEntry[] = [];
  const host = await startHost({
    // Never reached: every request here is refused before the app.
    enclaveUrls: ["http://127.0.0.1:9"],
    apiKeys: new ApiKeyStore({
      version: 1,
      keys: [
        {
          id: "k",
          project: "p",
          sha256: hashApiKey("ck_server_test_key_0123456789"),
          permissions: ["chat"],
          requestsPerMinute: 60,
        },
      ],
    }),
    hostname: "127.0.0.1",
    port: 0,
    accessLog: (entry) => log.push(entry),
    auditDir: null,
  });
  try {
    await run(host.port, log);
  } finally {
    await host.close();
  }
}

describe("startHost: requests refused before the app", () => {
  it("logs node's refusals (a malformed request, headers too large) and @hono/node-server's (a bad Host header, OPTIONS *)", async () => {
    await withHost(async (port, log) => {
      const answers = [
        await rawExchange(port, `GET /${MARKER} HTTP/1.1 ${MARKER}\r\n\r\n`),
        await rawExchange(port, `GET / HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Big: ${MARKER.repeat(2000)}\r\n\r\n`),
        await rawExchange(port, `POST /v1/sealed HTTP/1.1\r\nHost: ${MARKER} ${MARKER}\r\n\r\n`),
        await rawExchange(port, "OPTIONS * HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n"),
      ];
      const codes = answers.map((text) => {
        expect(text).not.toContain(MARKER);
        return (JSON.parse(text.slice(text.indexOf("\r\n\r\n") + 4)) as { error: { code: string } }).error.code;
      });
      expect(codes).toEqual(["REQUEST_UNREADABLE", "HEADERS_TOO_LARGE", "REQUEST_UNREADABLE", "REQUEST_UNREADABLE"]);
      expect(JSON.stringify(log)).not.toContain(MARKER);
      expect(log.map(({ time, responseBytes, ...entry }) => ({ ...entry, bodySized: responseBytes > 0 }))).toEqual(
        [
          ["(unparsed)", 400],
          ["(unparsed)", 431],
          ["POST", 400],
          ["OPTIONS", 400],
        ].map(([method, status]) => ({
          method,
          path: "(unparsed)",
          status,
          keyId: null,
          requestBytes: 0,
          headersMs: 0,
          durationMs: 0,
          outcome: "error",
          bodySized: true,
        })),
      );
    });
  });
});
