/**
 * fetchBounded, the one HTTP request of the evidence providers (AMD KDS, Azure IMDS), against
 * loopback servers only.
 */
import { createServer, type Server } from "node:http";
import { inspect } from "node:util";
import { afterEach, describe, expect, it, onTestFinished } from "vitest";
import { FetchProblem, fetchBounded, stoppedBy } from "../../attestation/providers/bounded-fetch.ts";
import { stoppedBy as enclaveStoppedBy } from "../../enclave/stop.ts";
import { refusedPort } from "../helpers/refused-port.ts";
import { rejectionOf } from "../helpers/rejections.ts";
import { listenOnTestPort } from "../helpers/test-ports.ts";

const servers: Server[] = [];

/** A server of `handler` on 127.0.0.1, at a port of the tests' range: its origin. */
async function listen(handler: Parameters<typeof createServer>[1]): Promise<string> {
  const server = createServer(handler);
  servers.push(server);
  return `http://127.0.0.1:${await listenOnTestPort(server)}`;
}

afterEach(async () => {
  for (const server of servers.splice(0)) {
    server.closeAllConnections();
    await new Promise((resolve) => server.close(resolve));
  }
});

describe("fetchBounded", () => {
  it("follows no redirect: a 302 to another origin is a failed fetch, and that origin is asked nothing", async () => {
    const elsewhere: Array<string | undefined> = [];
    const target = await listen((request, response) => {
      elsewhere.push(request.headers.metadata as string | undefined);
      response.writeHead(200).end("secret-free");
    });
    const origin = await listen((_, response) => {
      response.writeHead(302, { location: `${target}/metadata/instance` }).end();
    });
    const error = await rejectionOf(
      fetchBounded(fetch, `${origin}/metadata/THIM`, { headers: { Metadata: "true" } }, 2_000, 1024),
      FetchProblem,
    );
    expect(error.message).toBe(`expected no redirect, found HTTP 302 to "${target}/metadata/instance" (not followed)`);
    expect(elsewhere).toEqual([]);
  });

  it("returns the body of a 200 answer", async () => {
    const origin = await listen((_, response) => {
      response.writeHead(200).end("ok");
    });
    expect(new TextDecoder().decode(await fetchBounded(fetch, `${origin}/`, {}, 2_000, 1024))).toBe("ok");
  });

  it("shows no fetch message that may quote the URL's credentials (node's own, for http:/u:p@…)", async () => {
    // Node's fetch quotes the URL as written, with no "://": "Request cannot be constructed from a
    // URL that includes credentials: http:/op:hunter2@127.0.0.1:1/vcek".
    for (const url of ["http:/op:hunter2@127.0.0.1:1/vcek", "http://op:hunter2@127.0.0.1:1/vcek"]) {
      const error = await rejectionOf(fetchBounded(fetch, url, {}, 2_000, 1024), FetchProblem);
      expect(error.message, url).toBe("unreachable (TypeError, its message not shown (it may quote a URL))");
      // Nor its cause: a caller that logs the error object whole prints the cause's message and stack.
      expect(inspect(error, { depth: 10 }), url).not.toContain("hunter2");
      expect(error.cause, url).toMatchObject({ name: "TypeError" });
    }
  });

  it("keeps the code of a refused connection as its cause's code, and no URL", async () => {
    // A port held refused for the test (not a server's port freed, which another process could take).
    const { port, close } = await refusedPort();
    onTestFinished(close);
    const closed = `http://127.0.0.1:${port}`;
    const url = closed.replace("http://", "http://op:hunter2@");
    // fetch refuses credentials before connecting; without them, the connection is refused.
    for (const [asked, code] of [
      [url, undefined],
      [`${closed}/vcek?token=hunter2`, "ECONNREFUSED"],
    ] as const) {
      const error = await rejectionOf(fetchBounded(fetch, asked, {}, 2_000, 1024), FetchProblem);
      expect(inspect(error, { depth: 10 }), asked).not.toContain("hunter2");
      expect((error.cause as { code?: unknown }).code, asked).toBe(code);
    }
  });

  it("keeps the caller's stop as the cause, whether fetch rejects with its reason or an AbortError caused by it", async () => {
    const reason = new Error("SIGTERM");
    const abortError = new DOMException("This operation was aborted", "AbortError");
    Object.defineProperty(abortError, "cause", { value: reason });
    const otherAbort = new DOMException("This operation was aborted", "AbortError");
    Object.defineProperty(otherAbort, "cause", { value: new Error("another stop") });
    for (const [name, rejection, stop] of [
      ["the reason", reason, true],
      ["an AbortError caused by the reason", abortError, true],
      ["an AbortError caused by something else", otherAbort, false],
    ] as const) {
      const controller = new AbortController();
      controller.abort(reason);
      const fetchFn = (() => Promise.reject(rejection)) as unknown as typeof fetch;
      const error = await rejectionOf(
        fetchBounded(fetchFn, "http://127.0.0.1:47001/", { signal: controller.signal }, 2_000, 1024),
        FetchProblem,
      );
      // The stop itself, as the enclave's boot tells it (enclave/stop.ts): one rule for both.
      expect(error.cause === rejection, name).toBe(stop);
      expect(stoppedBy(error.cause, controller.signal), name).toBe(stop);
      expect(enclaveStoppedBy(error.cause, controller.signal), name).toBe(stop);
    }
  });
});
