/**
 * The host's server (host/server.ts startHost) as a hostile client meets it: requests refused
 * before the app sees them (node cannot parse them, or @hono/node-server cannot make a URL of them)
 * get the JSON error body with a code, and a line in the access log, with sizes only; a request
 * that asks for `100 Continue` gets it only once the host reads its body.
 */
import { existsSync } from "node:fs";
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { hashApiKey } from "../../client/cli/api-key-hash.ts";
import type { AccessLogEntry } from "../../host/access-log.ts";
import { ApiKeyStore } from "../../host/identity.ts";
import { startHost } from "../../host/server.ts";
import { countedLines } from "../helpers/counted-lines.ts";
import { rawExchange } from "../helpers/raw-http.ts";

const MARKER = "CLIENT-BYTES-MARKER";
const KEY = "ck_server_test_key_0123456789";

/**
 * Runs `run` against a host on a free port; `log` holds its access-log lines as written, and
 * `lines(n)` resolves once it holds `n` of them (an event, not a wait).
 */
async function withHost(
  run: (port: number, log: AccessLogEntry[], lines: (n: number) => Promise<void>) => Promise<void>,
): Promise<void> {
  const { lines: log, push, atLeast: lines } = countedLines<AccessLogEntry>();
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
    accessLog: push,
    auditDir: null,
  });
  try {
    await run(host.port, log, lines);
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
          member: null,
          requestBytes: 0,
          headersMs: 0,
          durationMs: 0,
          outcome: "error",
          bodySized: true,
        })),
      );
    });
  });

  it("writes one line for a parse error inside a body the app is reading: the app's, with its method, path and key, and what the client got", async () => {
    await withHost(async (port, log, lines) => {
      const answer = await rawExchange(
        port,
        `POST /v1/sealed HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Bearer ${KEY}\r\n` +
          "Content-Type: application/octet-stream\r\nTransfer-Encoding: chunked\r\nExpect: 100-continue\r\n\r\n",
        // The app reads the body (its 100 Continue), and the first chunk's size is no hex number.
        (line) => (line === "HTTP/1.1 100 Continue" ? `${MARKER}\r\n\r\n` : undefined),
      );
      expect(answer).toContain("REQUEST_UNREADABLE");
      expect(answer).not.toContain(MARKER);
      await lines(1);
      // A line of the server's own (its clientError's, before its answer went out) is written by
      // now; the app's is its first. A later request's line then follows it, and nothing between.
      expect(await rawExchange(port, "OPTIONS * HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")).toContain("REQUEST_UNREADABLE");
      await lines(2);
      expect(log.map(({ method, path }) => [method, path])).toEqual([
        ["POST", "/v1/sealed"],
        ["OPTIONS", "(unparsed)"],
      ]);
      const body = answer.slice(answer.lastIndexOf("\r\n\r\n") + 4);
      expect(answer.split("\r\n").filter((line) => line.startsWith("HTTP/1.1 "))).toEqual([
        "HTTP/1.1 100 Continue",
        "HTTP/1.1 400 Bad Request",
      ]);
      expect(log[0]).toMatchObject({
        method: "POST",
        path: "/v1/sealed",
        keyId: "k",
        status: 400,
        responseBytes: Buffer.byteLength(body),
        outcome: "error",
      });
    });
  });
});

/**
 * Sends a POST's `headers` (with `Expect: 100-continue` and `Connection: close`) and the 32-byte body
 * only once the host answers `100 Continue`. Resolves with the host's first answer's status line and
 * everything it wrote before closing.
 */
async function expectContinue(port: number, path: string, headers: string): Promise<{ first: string; all: string }> {
  let first = "";
  const all = await rawExchange(
    port,
    `POST ${path} HTTP/1.1\r\nHost: 127.0.0.1\r\n${headers}Content-Length: 32\r\n` +
      "Expect: 100-continue\r\nConnection: close\r\n\r\n",
    (line) => {
      first = line;
      return line === "HTTP/1.1 100 Continue" ? MARKER.padEnd(32, ".") : undefined;
    },
  );
  return { first, all };
}

describe("startHost: Expect: 100-continue", () => {
  const status = (all: string) =>
    all.split("\r\n").find((line) => line.startsWith("HTTP/1.1 ") && !line.includes(" 100 "));
  const code = (all: string) =>
    (JSON.parse(all.slice(all.lastIndexOf("\r\n\r\n") + 4)) as { error: { code: string } }).error.code;

  it("answers 401 without 100 Continue to a request with no key or a wrong one: its body is never sent", async () => {
    await withHost(async (port) => {
      for (const auth of ["", "Authorization: Bearer ck_not_a_key_of_this_host_000\r\n"]) {
        const { first, all } = await expectContinue(
          port,
          "/v1/sealed",
          `${auth}Content-Type: application/octet-stream\r\n`,
        );
        expect(first).toBe("HTTP/1.1 401 Unauthorized");
        expect(code(all)).toBe("UNAUTHENTICATED");
        expect(all).not.toContain("100 Continue");
      }
    });
  });

  it("answers any refusal before the body so (415 here), and a challenge's key without the permission (403)", async () => {
    await withHost(async (port) => {
      const auth = `Authorization: Bearer ${KEY}\r\n`;
      const wrongType = await expectContinue(port, "/v1/sealed", `${auth}Content-Type: text/plain\r\n`);
      expect([wrongType.first, code(wrongType.all)]).toEqual([
        "HTTP/1.1 415 Unsupported Media Type",
        "CONTENT_TYPE_UNSUPPORTED",
      ]);
      const noAttest = await expectContinue(
        port,
        "/v1/attestation/challenge",
        `${auth}Content-Type: application/json\r\n`,
      );
      expect([noAttest.first, code(noAttest.all)]).toEqual(["HTTP/1.1 403 Forbidden", "FORBIDDEN"]);
    });
  });

  it("sends 100 Continue to an authorised request as its body is read, and then answers it", async () => {
    await withHost(async (port) => {
      const { first, all } = await expectContinue(
        port,
        "/v1/sealed",
        `Authorization: Bearer ${KEY}\r\nContent-Type: application/octet-stream\r\n`,
      );
      expect(first).toBe("HTTP/1.1 100 Continue");
      // The body was read: 32 bytes that are no envelope.
      expect(status(all)).toBe("HTTP/1.1 400 Bad Request");
      expect(code(all)).toMatch(/^ENVELOPE_/);
    });
  });
});

describe("startHost: a refused start makes nothing", () => {
  // Each refused before the audit directory is made (prepareAuditDir) or a collector is built.
  it.each([
    ["a URL with a password", ["http://op:hunter2@127.0.0.1:9"], /enclaveUrl: expected no user name or password/],
    ["a URL that is not http:", ["ftp://127.0.0.1:9"], /enclaveUrl: expected an http: URL/],
    ["a good URL, then a refused one", ["http://127.0.0.1:9", "http://127.0.0.1:9 "], /enclaveUrl: expected no space/],
    ["no URL at all", [], /expected at least one enclave URL/],
  ])("%s: rejects, and the audit directory is not made", async (_name, enclaveUrls, expected) => {
    const root = await mkdtemp(join(tmpdir(), "cloister-refused-start-"));
    try {
      const auditDir = join(root, "audit");
      const started = startHost({
        enclaveUrls,
        apiKeys: new ApiKeyStore({ version: 1, keys: [] }),
        hostname: "127.0.0.1",
        port: 0,
        accessLog: () => {},
        auditDir,
      });
      const error = await started.then(
        async (host) => {
          await host.close();
          return null;
        },
        (caught: unknown) => caught,
      );
      expect(error).toBeInstanceOf(RangeError);
      expect((error as Error).message).toMatch(expected);
      expect((error as Error).message).not.toContain("hunter2");
      expect(existsSync(auditDir)).toBe(false);
    } finally {
      await rm(root, { recursive: true, force: true });
    }
  });
});
