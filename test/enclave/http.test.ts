/**
 * The HTTP listener's shutdown (enclave/http.ts), shared by the enclave, the host and the key
 * broker: with a grace period, answers under way finish and new connections are refused; after it,
 * what is still open is cut. So a rolling restart loses no answer in progress.
 */
import { describe, expect, it } from "vitest";
import { listen, listenLoopback } from "../../enclave/http.ts";

/** A handler that streams `chunks` lines, `gapMs` apart. */
function slowStream(chunks: number, gapMs: number) {
  return () =>
    new Response(
      new ReadableStream<Uint8Array>({
        async start(controller) {
          for (let i = 0; i < chunks; i++) {
            controller.enqueue(new TextEncoder().encode(`line ${i}\n`));
            await new Promise((r) => setTimeout(r, gapMs));
          }
          controller.close();
        },
      }),
    );
}

async function firstChunkThenRest(url: string): Promise<{ first: Promise<void>; body: Promise<string> }> {
  const response = await fetch(url);
  const reader = (response.body as ReadableStream<Uint8Array>).getReader();
  let resolveFirst: () => void = () => {};
  const first = new Promise<void>((r) => {
    resolveFirst = r;
  });
  const body = (async () => {
    let text = "";
    for (;;) {
      const { done, value } = await reader.read();
      if (done) return text;
      text += new TextDecoder().decode(value);
      resolveFirst();
    }
  })();
  return { first, body };
}

describe("listener shutdown", () => {
  it("with a grace period, lets an answer under way finish, refuses new connections, then closes", async () => {
    const server = await listen(slowStream(6, 80), "127.0.0.1", 0);
    const { first, body } = await firstChunkThenRest(server.url);
    await first;
    const started = performance.now();
    const closed = server.close(5000);
    await new Promise((r) => setTimeout(r, 30));
    await expect(fetch(server.url)).rejects.toThrow();
    expect(await body).toBe([0, 1, 2, 3, 4, 5].map((i) => `line ${i}\n`).join(""));
    await closed;
    // Closed once the answer ended (keep-alive connection closed when idle), long before the deadline.
    expect(performance.now() - started).toBeLessThan(2500);
  });

  it("cuts what is still open when the grace period ends", async () => {
    const server = await listen(slowStream(100, 50), "127.0.0.1", 0);
    const { first, body } = await firstChunkThenRest(server.url);
    await first;
    const started = performance.now();
    await server.close(200);
    expect(performance.now() - started).toBeGreaterThanOrEqual(150);
    await expect(body).rejects.toThrow();
  });

  it("without one, closes at once", async () => {
    const server = await listen(slowStream(100, 50), "127.0.0.1", 0);
    const { first, body } = await firstChunkThenRest(server.url);
    await first;
    await server.close();
    await expect(body).rejects.toThrow();
  });
});

describe("listenLoopback (the proxy's and the web page's listener)", () => {
  const hello = () => new Response("hello");

  /** Whether this machine has an IPv6 loopback (where it has none, nobody can bind [::1] either). */
  const ipv6 = async () => {
    const { createServer } = await import("node:net");
    const probe = createServer();
    return new Promise<boolean>((resolve) => {
      probe.once("error", () => resolve(false));
      probe.listen(0, "::1", () => probe.close(() => resolve(true)));
    });
  };

  it("answers on 127.0.0.1 and on [::1] at the same port, and closes both", async () => {
    const server = await listenLoopback(hello, 0);
    expect(server.url).toBe(`http://127.0.0.1:${server.port}`);
    expect(await (await fetch(`http://127.0.0.1:${server.port}/`)).text()).toBe("hello");
    if (await ipv6()) expect(await (await fetch(`http://[::1]:${server.port}/`)).text()).toBe("hello");
    await server.close();
    await expect(fetch(`http://127.0.0.1:${server.port}/`)).rejects.toThrow();
    await expect(fetch(`http://[::1]:${server.port}/`)).rejects.toThrow();
  });

  it("refuses a port another process holds on [::1] (where localhost may resolve), releasing 127.0.0.1", async () => {
    // Without an IPv6 loopback there is no [::1] to hold: the case cannot arise.
    if (!(await ipv6())) return;
    const { createServer } = await import("node:net");
    const squatter = createServer();
    const port = await new Promise<number>((resolve) =>
      squatter.listen(0, "::1", () => resolve((squatter.address() as { port: number }).port)),
    );
    try {
      await expect(listenLoopback(hello, port)).rejects.toMatchObject({ code: "EADDRINUSE", address: "[::1]" });
      // 127.0.0.1 was let go again: a plain listener can take it.
      const v4 = await listen(hello, "127.0.0.1", port);
      await v4.close();
    } finally {
      await new Promise((resolve) => squatter.close(resolve));
    }
  });
});
