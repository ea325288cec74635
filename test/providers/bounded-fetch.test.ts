/**
 * fetchBounded, the one HTTP request of the evidence providers (AMD KDS, Azure IMDS), against
 * loopback servers only.
 */
import { createServer, type Server } from "node:http";
import type { AddressInfo } from "node:net";
import { afterEach, describe, expect, it } from "vitest";
import { FetchProblem, fetchBounded } from "../../attestation/providers/bounded-fetch.ts";
import { rejectionOf } from "../helpers/rejections.ts";

const servers: Server[] = [];

async function listen(host: string, handler: Parameters<typeof createServer>[1]): Promise<string> {
  const server = createServer(handler);
  servers.push(server);
  await new Promise<void>((resolve) => server.listen(0, host, resolve));
  return `http://${host}:${(server.address() as AddressInfo).port}`;
}

afterEach(async () => {
  for (const server of servers.splice(0)) {
    server.closeAllConnections();
    await new Promise((resolve) => server.close(resolve));
  }
});

describe("fetchBounded", () => {
  it("follows no redirect: a 302 to another host is a failed fetch, and that host is asked nothing", async () => {
    const elsewhere: Array<string | undefined> = [];
    const target = await listen("127.0.0.2", (request, response) => {
      elsewhere.push(request.headers.metadata as string | undefined);
      response.writeHead(200).end("secret-free");
    });
    const origin = await listen("127.0.0.1", (_, response) => {
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
    const origin = await listen("127.0.0.1", (_, response) => {
      response.writeHead(200).end("ok");
    });
    expect(new TextDecoder().decode(await fetchBounded(fetch, `${origin}/`, {}, 2_000, 1024))).toBe("ok");
  });

  it("shows no fetch message that may quote the URL's credentials (node's own, for http:/u:p@…)", async () => {
    // Node's fetch quotes the URL as written, with no "://": "Request cannot be constructed from a
    // URL that includes credentials: http:/op:hunter2@127.0.0.1:1/vcek".
    for (const url of ["http:/op:hunter2@127.0.0.1:1/vcek", "http://op:hunter2@127.0.0.1:1/vcek"]) {
      const error = await rejectionOf(fetchBounded(fetch, url, {}, 2_000, 1024), FetchProblem);
      expect((error.cause as Error).message, url).toContain("hunter2");
      expect(error.message, url).toBe("unreachable (TypeError, its message not shown (it may quote a URL))");
    }
  });
});
