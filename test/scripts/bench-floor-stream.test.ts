/**
 * bench-e2e.ts's floor request (scripts/bench-floor-stream.ts) against a scripted bare proxy on
 * loopback: a refusal (the proxy's 502 for an enclave it cannot reach) fails naming the status, not
 * as JSON.parse's "Unexpected end of JSON input"; an answer with no token count fails naming it; a
 * good answer gives its text and tokens.
 */
import { Agent, createServer, type Server } from "node:http";
import type { AddressInfo } from "node:net";
import { afterEach, describe, expect, it } from "vitest";
import { floorStream } from "../../scripts/bench-floor-stream.ts";

const TENANT = "0123456789abcdef0123456789abcdef";
const servers: Server[] = [];
const agents: Agent[] = [];

afterEach(async () => {
  for (const agent of agents.splice(0)) agent.destroy();
  await Promise.all(servers.splice(0).map((s) => new Promise((resolve) => s.close(resolve))));
});

/** A bare proxy that answers every request `status` with `body`; its URL. */
async function proxy(status: number, body: string): Promise<string> {
  const server = createServer((req, res) => {
    req.resume();
    req.on("end", () => res.writeHead(status, { "content-type": "text/plain" }).end(body));
  });
  servers.push(server);
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  return `http://127.0.0.1:${(server.address() as AddressInfo).port}/generate`;
}

function agent(): Agent {
  const made = new Agent({ keepAlive: true });
  agents.push(made);
  return made;
}

describe("bench-e2e floor stream", () => {
  it("fails naming the status of a refusal (the bare proxy's 502, a 500), whatever its body", async () => {
    for (const [status, body] of [
      [502, ""],
      [500, 'text\n{"tokens":3}'],
    ] as const) {
      await expect(floorStream(agent(), await proxy(status, body), 8, TENANT)).rejects.toThrow(
        `floor stream: the bare proxy answered HTTP ${status}, expected 200`,
      );
    }
  });

  it("fails naming the token count an answer lacks, not with JSON.parse's words", async () => {
    await expect(floorStream(agent(), await proxy(200, "some text, then no count"), 8, TENANT)).rejects.toThrow(
      "floor stream: the answer's last line: expected JSON with a token count, found none",
    );
  });

  it("reads a good answer's text and token count", async () => {
    const result = await floorStream(agent(), await proxy(200, 'Once upon\n{"tokens":7}'), 8, TENANT);
    expect(result).toMatchObject({ text: "Once upon", tokens: 7 });
    expect(result.ttftMs).toBeGreaterThanOrEqual(0);
  });
});
