/**
 * enclave/connection-guards.ts's timers: every request's stall watch ends with its request, however
 * its connection ends, so a server under load holds no timer for a request long gone.
 */
import { EventEmitter } from "node:events";
import type { IncomingMessage } from "node:http";
import { connect, type Socket } from "node:net";
import { setFlagsFromString } from "node:v8";
import { runInNewContext } from "node:vm";
import { Hono } from "hono";
import { afterEach, describe, expect, it, vi } from "vitest";
import { type ConnectionGuardOptions, guardConnections, onConnectionClosed } from "../../enclave/connection-guards.ts";
import { listen, type RunningServer } from "../../enclave/http.ts";
import { holdTimeouts } from "../helpers/held-timers.ts";

/** A full garbage collection (node's --expose-gc `gc`, taken without starting node with that flag). */
function fullGc(): void {
  setFlagsFromString("--expose-gc");
  (runInNewContext("gc") as () => void)();
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
const servers: RunningServer[] = [];

afterEach(async () => {
  vi.restoreAllMocks();
  for (const server of servers.splice(0)) await server.close();
});

/**
 * The stall watch's timers (set for `ms`) from now until the test ends, held (never firing by
 * themselves): how many were set, and how many are set and neither cleared nor fired.
 */
function liveStallTimers(ms: number): { set: () => number; count: () => number } {
  const { held } = holdTimeouts(ms);
  return { set: () => held.length, count: () => held.filter((timer) => !timer.cleared && !timer.fired).length };
}

/**
 * Makes this process busy-wait twice `stallMs` right after each of the first `times` checks of the
 * stall watch (its timer of `stallMs`, set again after each check), as a long GC pause or a busy
 * machine would; returns how many it has made. `afterCheck` is told each such check's number (from
 * 1), right after it ran.
 */
function pauseAfterChecks(
  stallMs: number,
  times: number,
  afterCheck: (check: number) => void = () => {},
): () => number {
  const realSetTimeout = globalThis.setTimeout;
  let paused = 0;
  let checks = 0;
  vi.spyOn(globalThis, "setTimeout").mockImplementation(((check: () => void, ms?: number, ...args: unknown[]) => {
    if (ms !== stallMs) return realSetTimeout(check, ms, ...args);
    return realSetTimeout(() => {
      check();
      afterCheck(++checks);
      if (paused === times) return;
      paused++;
      for (const start = performance.now(); performance.now() - start < 2 * stallMs; );
    }, ms);
  }) as typeof realSetTimeout);
  return () => paused;
}

/** A server of `routes` behind guardConnections (16 requests under way, 60 s stall timeout, or `limits`). */
async function guarded(limits: Partial<ConnectionGuardOptions>, routes: (app: Hono) => void): Promise<RunningServer> {
  const app = new Hono();
  app.use(guardConnections({ maxRequestsPerConnection: 16, clientStallTimeoutMs: 60_000, ...limits }));
  routes(app);
  const server = await listen(app.fetch, "127.0.0.1", 0);
  servers.push(server);
  return server;
}

/** A connection to `server`, with everything it has been answered so far. */
function answered(server: RunningServer): { client: Socket; text: () => string } {
  const client = connect(server.port, "127.0.0.1");
  let text = "";
  client.on("data", (chunk: Buffer) => void (text += chunk.toString("latin1")));
  return { client, text: () => text };
}

/**
 * Asks `server` for /big and takes its answer at about 5.7 MB/s (112 KiB every 20 ms), until more
 * than `size` bytes or the connection closes; returns how many bytes it took.
 */
async function readSteadily(server: RunningServer, size: number): Promise<number> {
  const client = connect(server.port, "127.0.0.1");
  let received = 0;
  let allowed = 0;
  const closed = new Promise<void>((resolve) => client.once("close", () => resolve()));
  client.on("error", () => {});
  client.on("data", (chunk: Buffer) => {
    received += chunk.length;
    if (received > size) client.end();
    else if (received >= allowed) client.pause();
  });
  const reader = setInterval(() => {
    allowed += 112 * 1024; // every 20 ms
    client.resume();
  }, 20);
  client.write("GET /big HTTP/1.1\r\nhost: 127.0.0.1\r\n\r\n");
  await closed;
  clearInterval(reader);
  return received;
}

describe("guardConnections", () => {
  it("clears every request's stall watch when a client goes away with pipelined requests under way", async () => {
    const timers = liveStallTimers(60_000);
    const server = await guarded({}, (app) =>
      app.get("/slow", async (c) => {
        await sleep(300);
        return c.text("done");
      }),
    );
    for (let i = 0; i < 5; i++) {
      const client = connect(server.port, "127.0.0.1");
      client.on("error", () => {});
      client.write("GET /slow HTTP/1.1\r\nhost: 127.0.0.1\r\n\r\n".repeat(8));
      await sleep(50);
      client.destroy();
    }
    await sleep(800); // every request's handler has returned, and every connection is closed
    expect(timers.set()).toBeGreaterThan(0);
    expect(timers.count()).toBe(0);
  });

  it("never refuses sequential requests on one keep-alive connection", async () => {
    const server = await guarded({ maxRequestsPerConnection: 2 }, (app) => app.get("/", (c) => c.text("ok")));
    const { client, text } = answered(server);
    for (let i = 0; i < 50; i++) {
      const before = text().length;
      client.write("GET / HTTP/1.1\r\nhost: 127.0.0.1\r\n\r\n");
      for (let j = 0; j < 100 && !text().slice(before).includes("ok"); j++) await sleep(5);
    }
    client.destroy();
    expect(text().split("HTTP/1.1 200").length - 1).toBe(50);
  });
});

describe("guardConnections: the stall watch under a lasting overload", () => {
  const stallMs = 1_000;

  /**
   * A request under the guard, on a connection whose answer waits for room (writableNeedDrain),
   * with a clock of our own: each `check()` comes two periods after the one before (every check
   * late, as under a lasting overload), the client having taken `taken` more bytes since. The
   * stall watch's timer is held: each check fires the one it set last.
   */
  async function overloaded(): Promise<{ check: (taken: number) => void; destroyed: () => boolean }> {
    const { held } = holdTimeouts(stallMs);
    let now = 0;
    vi.spyOn(performance, "now").mockImplementation(() => now);
    const socket = Object.assign(new EventEmitter(), {
      destroyed: false,
      bytesWritten: 0,
      writableLength: 0,
      _handle: { writeQueueSize: 1_000_000 },
      destroy() {
        socket.destroyed = true;
      },
    });
    const outgoing = Object.assign(new EventEmitter(), {
      socket,
      writableNeedDrain: true,
      writableEnded: false,
      writableFinished: false,
    });
    const guard = guardConnections({ maxRequestsPerConnection: 16, clientStallTimeoutMs: stallMs });
    const c = { env: { incoming: { socket }, outgoing } } as unknown as Parameters<typeof guard>[0];
    await guard(c, async () => {});
    return {
      check: (taken) => {
        socket._handle.writeQueueSize -= taken;
        now += 2 * stallMs;
        expect(held.at(-1)?.fire()).toBe(true);
      },
      destroyed: () => socket.destroyed,
    };
  }

  it("closes the connection of a client that takes none of its answer, at the third late check in a row", async () => {
    const request = await overloaded();
    request.check(0);
    request.check(0);
    expect(request.destroyed()).toBe(false);
    request.check(0);
    expect(request.destroyed()).toBe(true);
  });

  it("keeps the connection of a client taking some of its answer between checks, however long it lasts", async () => {
    const request = await overloaded();
    for (let i = 0; i < 20; i++) request.check(1);
    expect(request.destroyed()).toBe(false);
  });
});

describe("onConnectionClosed", () => {
  it("listens once to a connection's close, for all its pipelined requests and for a route that watches it too (the host's)", async () => {
    // Each answer: the connection's "close" listeners added by the guard and by the route, for
    // that request and those before it on the connection.
    const app = new Hono<{ Bindings: { incoming: IncomingMessage } }>();
    const before = new WeakMap<Socket, number>();
    app.use(async (c, next) => {
      const socket = c.env.incoming.socket;
      if (!before.has(socket)) before.set(socket, socket.listenerCount("close"));
      await next();
    });
    app.use(guardConnections({ maxRequestsPerConnection: 16, clientStallTimeoutMs: 60_000 }));
    app.get("/", async (c) => {
      const socket = c.env.incoming.socket;
      const stop = onConnectionClosed(socket, () => {});
      await sleep(50);
      const added = socket.listenerCount("close") - (before.get(socket) ?? Number.NaN);
      stop();
      return c.text(`added ${added};`);
    });
    const server = await listen(app.fetch, "127.0.0.1", 0);
    servers.push(server);
    const { client, text } = answered(server);
    client.write("GET / HTTP/1.1\r\nhost: 127.0.0.1\r\n\r\n".repeat(4));
    // Until the four answers are in (counted by their bodies: each header block has a ";" too, in
    // its charset, so counting ";" stopped after two answers when they came in two reads).
    const answers = () => text().match(/added \S+;/g)?.length ?? 0;
    for (let i = 0; i < 200 && answers() < 4; i++) await sleep(10);
    client.destroy();
    expect(text().match(/added \S+;/g)).toEqual(Array(4).fill("added 1;"));
  });

  it("calls a watcher added once the connection is closed at once, and each watcher once when it closes", async () => {
    const socket = new EventEmitter() as EventEmitter & { destroyed: boolean };
    socket.destroyed = false;
    const calls: string[] = [];
    onConnectionClosed(socket as unknown as Socket, () => calls.push("a"));
    const stopB = onConnectionClosed(socket as unknown as Socket, () => calls.push("b"));
    onConnectionClosed(socket as unknown as Socket, () => calls.push("c"));
    stopB();
    expect(socket.listenerCount("close")).toBe(1);
    socket.destroyed = true;
    socket.emit("close");
    socket.emit("close");
    onConnectionClosed(socket as unknown as Socket, () => calls.push("d"));
    expect(calls).toEqual(["a", "c", "d"]);
  });

  it("keeps no watcher once stopped: the connection's listener holds none of them (a keep-alive connection held its first request's answer)", async () => {
    const socket = new EventEmitter() as EventEmitter & { destroyed: boolean };
    socket.destroyed = false;
    // A watcher holding a large object, as the guard's holds its request's answer; made in a
    // function of its own, so nothing on this test's stack holds the object.
    const watchAndStop = (): WeakRef<object> => {
      const held = { answer: new Uint8Array(1024) };
      onConnectionClosed(socket as unknown as Socket, () => held.answer.fill(0))();
      return new WeakRef(held);
    };
    const first = watchAndStop();
    const stopSecond = onConnectionClosed(socket as unknown as Socket, () => {});
    // A WeakRef's target is kept until the job that made it has ended.
    await new Promise((resolve) => setImmediate(resolve));
    fullGc();
    expect(first.deref()).toBeUndefined();
    stopSecond();
  });
});

describe("guardConnections: onRefused", () => {
  it("tells a request past the bound, and those behind it, from one whose connection closed otherwise", async () => {
    const refused: [string, string][] = [];
    const server = await guarded(
      { maxRequestsPerConnection: 1, onRefused: (c, reason) => refused.push([c.req.path, reason]) },
      (app) => {
        app.get("/slow", async (c) => {
          await sleep(200);
          return c.text("done");
        });
        // Closes its connection as it comes, as a client's reset would.
        app.get("/close", (c) => {
          (c.env as { incoming: IncomingMessage }).incoming.socket.destroy();
          return c.text("closed");
        });
      },
    );
    const send = async (requests: string[]) => {
      const client = connect(server.port, "127.0.0.1");
      client.on("error", () => {});
      client.write(requests.map((path) => `GET ${path} HTTP/1.1\r\nhost: 127.0.0.1\r\n\r\n`).join(""));
      await new Promise((resolve) => client.once("close", resolve));
    };
    await send(["/slow", "/one-too-many", "/behind-it"]);
    await send(["/close", "/after-close"]);
    expect(refused).toEqual([
      ["/one-too-many", "too-many-requests"],
      ["/behind-it", "too-many-requests"],
      ["/after-close", "connection-closed"],
    ]);
  });
});

describe("guardConnections: a client that reads", () => {
  it("never closes the connection of a client taking a large answer handed over whole, steadily", async () => {
    // One chunk of 40 MiB, taken at about 5.7 MB/s (7.3 s): the kernel's buffers (a few MB) fill and
    // drain many times a stall timeout, but the answer as a whole takes longer than twice it. The
    // stall timeout is seconds because a stall of this process (server and client both) right after
    // a check looks like the client's at the next one: at 700 ms, a 1 s stall there cut the
    // connection (seen in a scratch copy).
    const size = 40 * 1024 * 1024;
    const server = await guarded({ clientStallTimeoutMs: 3000 }, (app) =>
      app.get("/big", (c) => c.body(new Uint8Array(size))),
    );
    expect(await readSteadily(server, size)).toBeGreaterThan(size);
  });

  it("never closes the connection of a steady reader because the server itself stalled right after a check", async () => {
    // Right after each of the stall watch's first two checks this process (server and client both)
    // busy-waits twice the stall timeout, as a long GC pause or a busy machine would: the next check
    // then comes before the client could take anything, and counted as the client's stall it cut
    // the connection. The stall timeout is seconds so that no other stall of this process cuts it.
    const stallMs = 1000;
    const pauses = pauseAfterChecks(stallMs, 2);
    const size = 16 * 1024 * 1024; // about 3 s at the pace read below, past the first two checks
    const server = await guarded({ clientStallTimeoutMs: stallMs }, (app) =>
      app.get("/big", (c) => c.body(new Uint8Array(size))),
    );
    const received = await readSteadily(server, size);
    expect(pauses()).toBe(2); // both pauses came while the answer was under way
    expect(received).toBeGreaterThan(size);
  });

  it("still closes the connection of a client that reads nothing when the server stalled right after a check", async () => {
    const stallMs = 1000;
    let serverSide: Socket | undefined;
    // The check of the stall watch that closed the connection (the socket destroyed as it ran).
    let closedAtCheck: number | undefined;
    const pauses = pauseAfterChecks(stallMs, 1, (check) => {
      if (closedAtCheck === undefined && serverSide?.destroyed === true) closedAtCheck = check;
    });
    const server = await guarded({ clientStallTimeoutMs: stallMs }, (app) =>
      app.get("/big", (c) => {
        serverSide = (c.env as { incoming: IncomingMessage }).incoming.socket;
        return c.body(new Uint8Array(16 * 1024 * 1024));
      }),
    );
    const client = connect(server.port, "127.0.0.1");
    client.on("error", () => {});
    client.pause(); // reads nothing: sees no close either, the server's side tells it
    client.write("GET /big HTTP/1.1\r\nhost: 127.0.0.1\r\n\r\n");
    for (let i = 0; i < 200 && serverSide?.destroyed !== true; i++) await sleep(50);
    client.destroy();
    expect(pauses()).toBe(1);
    // Closed by the watch's own check: the first (the client's measure), the pause (two periods),
    // the late second that starts the measure again, the third that finds nothing taken. A machine
    // stalled at the third makes it late too and forgiven (LATE_CHECKS_FORGIVEN): then the fourth,
    // late or not. Counted in checks, not in time, so load cannot flake it.
    expect(closedAtCheck).toBeGreaterThanOrEqual(3);
    expect(closedAtCheck).toBeLessThanOrEqual(4);
  });

  it("keeps the connection of a client waiting on a slow server: a first byte late, answers queued behind it", async () => {
    const server = await guarded({ clientStallTimeoutMs: 100 }, (app) => {
      app.get("/slow", async (c) => {
        await sleep(800); // eight stall timeouts before anything is written
        return c.text("late");
      });
      app.get("/quick", (c) => c.text("quick"));
    });
    const { client, text } = answered(server);
    client.write("GET /slow HTTP/1.1\r\nhost: 127.0.0.1\r\n\r\nGET /quick HTTP/1.1\r\nhost: 127.0.0.1\r\n\r\n");
    for (let i = 0; i < 100 && !text().includes("quick"); i++) await sleep(20);
    client.destroy();
    expect(text()).toMatch(/late[\s\S]*quick/);
  });
});

describe("guardConnections: node internals it reads", () => {
  /** A request as @hono/node-server hands it over, whose whole answer is handed to libuv and not yet all sent. */
  async function answerPending(handle: { writeQueueSize?: number } | undefined) {
    const socket = Object.assign(new EventEmitter(), {
      destroyed: false,
      bytesWritten: 4096,
      writableLength: 0,
      _handle: handle,
      destroy: vi.fn(),
    });
    const outgoing = Object.assign(new EventEmitter(), {
      socket,
      writableNeedDrain: false,
      writableEnded: true,
      writableFinished: false,
    });
    const app = new Hono();
    app.use(guardConnections({ maxRequestsPerConnection: 16, clientStallTimeoutMs: 1_000 }));
    app.get("/", (c) => c.text("ok"));
    await app.request("/", {}, { incoming: { socket }, outgoing });
    vi.advanceTimersByTime(5_000);
    outgoing.emit("close");
    return socket.destroy;
  }

  it("closes a connection whose write queue stays the same (the stall it watches for)", async () => {
    vi.useFakeTimers();
    try {
      expect(await answerPending({ writeQueueSize: 4096 })).toHaveBeenCalled();
    } finally {
      vi.useRealTimers();
    }
  });

  it("cuts no client when node has no writeQueueSize to read (progress unseen, not stalled)", async () => {
    vi.useFakeTimers();
    try {
      expect(await answerPending(undefined)).not.toHaveBeenCalled();
    } finally {
      vi.useRealTimers();
    }
  });
});

describe("guardConnections: one stall watch for every request", () => {
  /** A connection as node hands it over, whose write queue never moves (a client that reads nothing). */
  function stuckConnection() {
    return Object.assign(new EventEmitter(), {
      destroyed: false,
      bytesWritten: 4096,
      writableLength: 0,
      _handle: { writeQueueSize: 4096 },
      destroy: vi.fn(),
    });
  }

  /** An answer on `socket` handed over whole and not yet all sent (the server waits on its client). */
  function pendingAnswer(socket: ReturnType<typeof stuckConnection>) {
    return Object.assign(new EventEmitter(), {
      socket,
      writableNeedDrain: false,
      writableEnded: true,
      writableFinished: false,
    });
  }

  /** An app answering "ok" behind the guard (a stall timeout of 1 s). */
  function guardedApp(): Hono {
    const app = new Hono();
    app.use(guardConnections({ maxRequestsPerConnection: 16, clientStallTimeoutMs: 1_000 }));
    app.get("/", (c) => c.text("ok"));
    return app;
  }

  it("closes a keep-alive connection whose client stops reading at its second answer, not only at its first", async () => {
    vi.useFakeTimers();
    try {
      const app = guardedApp();
      const socket = stuckConnection();
      const first = pendingAnswer(socket);
      await app.request("/", {}, { incoming: { socket }, outgoing: first });
      first.emit("close"); // the first answer taken whole
      const second = pendingAnswer(socket);
      await app.request("/", {}, { incoming: { socket }, outgoing: second });
      vi.advanceTimersByTime(5_000);
      expect(socket.destroy).toHaveBeenCalled();
    } finally {
      vi.useRealTimers();
    }
  });

  it("closes every stalled connection the one timer watches, whichever came first or ended first", async () => {
    vi.useFakeTimers();
    try {
      const app = guardedApp();
      const sockets = [stuckConnection(), stuckConnection(), stuckConnection()];
      const answers = sockets.map(pendingAnswer);
      for (const [i, socket] of sockets.entries()) {
        await app.request("/", {}, { incoming: { socket }, outgoing: answers[i] });
        vi.advanceTimersByTime(400); // each comes at another point of the sweep's period
      }
      answers[0]?.emit("close"); // the first ends: the others are still watched
      vi.advanceTimersByTime(5_000);
      expect(sockets.map((socket) => socket.destroy.mock.calls.length > 0)).toEqual([false, true, true]);
    } finally {
      vi.useRealTimers();
    }
  });
});
