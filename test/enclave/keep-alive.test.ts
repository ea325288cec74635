/**
 * How long a server keeps an idle keep-alive connection (enclave/http.ts): node's 5 s by default, as
 * its `Keep-Alive: timeout=` header says (node's agent, the host's, lets go of a socket a second
 * before it), and the enclave's internal server's longer INTERNAL_KEEP_ALIVE_TIMEOUT_MS, so the host
 * does not open its connections to the enclave again after every quiet spell of 4 s.
 */
import { Agent, request } from "node:http";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { INTERNAL_KEEP_ALIVE_TIMEOUT_MS, listen } from "../../enclave/http.ts";
import { bootDeployment, type E2eDeployment } from "../e2e/helpers/deployment.ts";

/** The `Keep-Alive` header of `url`'s answer to a GET on a keep-alive connection. */
async function keepAliveHeader(url: string): Promise<string | undefined> {
  const agent = new Agent({ keepAlive: true });
  try {
    return await new Promise((resolve, reject) => {
      request(url, { agent }, (res) => {
        res.resume();
        res.on("end", () => resolve(res.headers["keep-alive"] as string | undefined));
      })
        .on("error", reject)
        .end();
    });
  } finally {
    agent.destroy();
  }
}

describe("listen: keep-alive between requests", () => {
  it("keeps node's 5 s by default", async () => {
    const server = await listen(() => new Response("ok"), "127.0.0.1", 0);
    try {
      expect(await keepAliveHeader(server.url)).toBe("timeout=5");
    } finally {
      await server.close();
    }
  });

  it("keeps keepAliveTimeoutMs when given", async () => {
    const server = await listen(() => new Response("ok"), "127.0.0.1", 0, {
      keepAliveTimeoutMs: INTERNAL_KEEP_ALIVE_TIMEOUT_MS,
    });
    try {
      expect(await keepAliveHeader(server.url)).toBe(`timeout=${INTERNAL_KEEP_ALIVE_TIMEOUT_MS / 1000}`);
    } finally {
      await server.close();
    }
  });
});

describe("cloister enclave: its internal server", () => {
  let deployment: E2eDeployment;
  beforeAll(async () => {
    deployment = await bootDeployment();
  }, 120_000);
  afterAll(async () => {
    await deployment?.stop();
  });

  it("keeps the host's idle connections INTERNAL_KEEP_ALIVE_TIMEOUT_MS, the public host node's 5 s", async () => {
    expect(INTERNAL_KEEP_ALIVE_TIMEOUT_MS).toBeGreaterThan(5000);
    expect(await keepAliveHeader(`${deployment.running.enclaveUrl}/healthz`)).toBe(
      `timeout=${INTERNAL_KEEP_ALIVE_TIMEOUT_MS / 1000}`,
    );
    expect(await keepAliveHeader(`${deployment.running.hostUrl}/healthz`)).toBe("timeout=5");
  });
});
