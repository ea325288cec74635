/**
 * listen's numeric options (enclave/http.ts) are checked before the server is made: node reads 0
 * as "never" for a keep-alive, first-request or headers timeout and as "no bound" for
 * maxConnections, so a 0, a fraction or an absurd value must be refused, naming the option, what
 * it expects and what it found, rather than quietly turning a limit off.
 */
import { describe, expect, it } from "vitest";
import { type ListenOptions, listen, listenBeforeServing } from "../../enclave/http.ts";

const ok = () => new Response("ok");

/** listen's refusal of `options`, or null when it listened (the server then closed). */
async function refusal(options: ListenOptions): Promise<unknown> {
  try {
    const server = await listen(ok, "127.0.0.1", 0, options);
    await server.close();
    return null;
  } catch (error) {
    return error;
  }
}

describe("listen: numeric options", () => {
  it.each([
    [{ keepAliveTimeoutMs: 0 }, "keepAliveTimeoutMs: expected an integer of 1..86400000 (ms), found 0"],
    [{ keepAliveTimeoutMs: -5 }, "keepAliveTimeoutMs: expected an integer of 1..86400000 (ms), found -5"],
    [{ keepAliveTimeoutMs: 1.5 }, "keepAliveTimeoutMs: expected an integer of 1..86400000 (ms), found 1.5"],
    [{ keepAliveTimeoutMs: Number.NaN }, "keepAliveTimeoutMs: expected an integer of 1..86400000 (ms), found NaN"],
    [{ keepAliveTimeoutMs: 2 ** 31 }, "keepAliveTimeoutMs: expected an integer of 1..86400000 (ms), found 2147483648"],
    [{ firstRequestTimeoutMs: 0 }, "firstRequestTimeoutMs: expected an integer of 1..86400000 (ms), found 0"],
    [{ headersTimeoutMs: 0 }, "headersTimeoutMs: expected an integer of 1..120000 (ms), found 0"],
    [{ headersTimeoutMs: 120_001 }, "headersTimeoutMs: expected an integer of 1..120000 (ms), found 120001"],
    [{ maxConnections: 0 }, "maxConnections: expected an integer of 1..1000000, found 0"],
    [
      { maxConnectionsPerClient: { max: 0, clientOf: (address: string) => address } },
      "maxConnectionsPerClient.max: expected an integer of 1..1000000, found 0",
    ],
  ] as const)("refuses %o", async (options, message) => {
    const error = await refusal(options);
    expect(error).toBeInstanceOf(RangeError);
    expect((error as Error).message).toBe(message);
  });

  it("refuses them in listenBeforeServing too", async () => {
    await expect(listenBeforeServing(ok, "127.0.0.1", 0, { keepAliveTimeoutMs: 0 })).rejects.toThrow(
      "keepAliveTimeoutMs: expected an integer of 1..86400000 (ms), found 0",
    );
  });

  it("takes each at its bounds", async () => {
    expect(
      await refusal({
        keepAliveTimeoutMs: 86_400_000,
        firstRequestTimeoutMs: 1,
        headersTimeoutMs: 120_000,
        maxConnections: 1_000_000,
        maxConnectionsPerClient: { max: 1, clientOf: (address) => address },
      }),
    ).toBeNull();
  });
});
