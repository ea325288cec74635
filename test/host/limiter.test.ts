/**
 * The host's forwarding limiter (host/limiter.ts) on its own: slots, the FIFO queue, its timeout
 * and the HOST_BUSY it answers with. The host's use of it is in app.test.ts, where a slot released
 * twice (a pool member's 503) is counted once (host/app.ts HeldSlot: the limiter has no guard).
 */
import { afterEach, describe, expect, it, vi } from "vitest";
import { ConcurrencyLimiter, type LimiterOptions } from "../../host/limiter.ts";

const options = (overrides: Partial<LimiterOptions> = {}): LimiterOptions => ({
  maxInFlight: 1,
  maxQueued: 2,
  queueTimeoutMs: 1000,
  retryAfterSeconds: 7,
  ...overrides,
});

afterEach(() => {
  vi.useRealTimers();
});

describe("the forwarding limiter", () => {
  it("refuses limits it cannot keep", () => {
    for (const bad of [{ maxInFlight: 0 }, { maxQueued: -1 }, { queueTimeoutMs: -1 }, { maxInFlight: Number.NaN }]) {
      expect(() => new ConcurrencyLimiter(options(bad)), JSON.stringify(bad)).toThrow(
        "limiter: maxInFlight ≥ 1, maxQueued ≥ 0 and queueTimeoutMs ≥ 0 are required",
      );
    }
  });

  it("hands a freed slot to the request that has waited longest", async () => {
    const limiter = new ConcurrencyLimiter(options());
    await limiter.acquire();
    const served: string[] = [];
    const waiter = (name: string) =>
      limiter.acquire().then((slot) => {
        served.push(name);
        return slot;
      });
    const first = waiter("first");
    const second = waiter("second");
    expect({ active: limiter.active, queued: limiter.queued }).toEqual({ active: 1, queued: 2 });
    limiter.release();
    await first;
    limiter.release();
    await second;
    limiter.release();
    expect(served).toEqual(["first", "second"]);
    expect({ active: limiter.active, queued: limiter.queued }).toEqual({ active: 0, queued: 0 });
  });

  it("takes a waiter whose signal aborts out of the queue at once, rejecting with the signal's reason", async () => {
    const limiter = new ConcurrencyLimiter(options({ maxQueued: 1 }));
    await limiter.acquire();
    const controller = new AbortController();
    const waiting = limiter.acquire(controller.signal).catch((error: unknown) => error);
    expect(limiter.queued).toBe(1);
    controller.abort(new Error("client gone"));
    expect(await waiting).toMatchObject({ message: "client gone" });
    expect(limiter.queued).toBe(0);
    // Its place is the next request's, and the freed slot goes to that one.
    const next = limiter.acquire();
    limiter.release();
    await next;
    limiter.release();
    expect({ active: limiter.active, queued: limiter.queued }).toEqual({ active: 0, queued: 0 });
    // A signal already aborted never waits.
    await expect(limiter.acquire(AbortSignal.abort(new Error("gone before")))).rejects.toThrow("gone before");
  });

  it("refuses a request that waited queueTimeoutMs with HOST_BUSY and its Retry-After, and takes it out of the queue", async () => {
    vi.useFakeTimers();
    const limiter = new ConcurrencyLimiter(options({ maxQueued: 1, queueTimeoutMs: 500 }));
    await limiter.acquire();
    const waiting = limiter.acquire().catch((error: unknown) => error);
    await vi.advanceTimersByTimeAsync(499);
    expect(limiter.queued).toBe(1);
    await vi.advanceTimersByTimeAsync(1);
    expect(await waiting).toMatchObject({ code: "HOST_BUSY", status: 503, retryAfterSeconds: 7 });
    expect(limiter.queued).toBe(0);
    // Its place is free again: the next request waits instead of being refused, and gets the slot.
    const next = limiter.acquire();
    expect(limiter.queued).toBe(1);
    limiter.release();
    await next;
    limiter.release();
    expect(limiter.active).toBe(0);
  });
  it("refuses at once a request past a full queue, however long the wait would be", async () => {
    vi.useFakeTimers();
    const limiter = new ConcurrencyLimiter(options({ maxQueued: 1, queueTimeoutMs: 60_000 }));
    await limiter.acquire();
    const waiting = limiter.acquire();
    const refused = limiter.acquire().catch((error: unknown) => error);
    // Refused before any timer runs: no place in the queue was made for it.
    await vi.advanceTimersByTimeAsync(0);
    expect(await Promise.race([refused, "still waiting"])).toMatchObject({ code: "HOST_BUSY", retryAfterSeconds: 7 });
    expect({ active: limiter.active, queued: limiter.queued }).toEqual({ active: 1, queued: 1 });
    limiter.release();
    await waiting;
    limiter.release();
  });

  it("leaves no timer and no abort listener behind for a waiter, served, aborted or timed out", async () => {
    vi.useFakeTimers();
    const limiter = new ConcurrencyLimiter(options({ maxQueued: 3, queueTimeoutMs: 500 }));
    await limiter.acquire();
    const watched = () => {
      const controller = new AbortController();
      const added = vi.spyOn(controller.signal, "addEventListener");
      const removed = vi.spyOn(controller.signal, "removeEventListener");
      const listeners = () => ({
        added: added.mock.calls.map((call) => call[1]),
        removed: removed.mock.calls.map((call) => call[1]),
      });
      return { controller, listeners };
    };
    const served = watched();
    const aborted = watched();
    const servedSlot = limiter.acquire(served.controller.signal);
    const abortedWait = limiter.acquire(aborted.controller.signal).catch((error: unknown) => error);
    expect(vi.getTimerCount()).toBe(2);
    aborted.controller.abort(new Error("client gone"));
    expect(await abortedWait).toMatchObject({ message: "client gone" });
    limiter.release();
    await servedSlot;
    // Both left the queue: their timers are cleared, their listeners removed.
    expect(vi.getTimerCount()).toBe(0);
    for (const { listeners } of [served, aborted]) {
      const { added, removed } = listeners();
      expect(added).toHaveLength(1);
      expect(removed).toEqual(added);
    }
    const timedOut = watched();
    const timedOutWait = limiter.acquire(timedOut.controller.signal).catch((error: unknown) => error);
    await vi.advanceTimersByTimeAsync(500);
    expect(await timedOutWait).toMatchObject({ code: "HOST_BUSY" });
    expect(timedOut.listeners().removed).toEqual(timedOut.listeners().added);
    limiter.release();
    expect({ active: limiter.active, queued: limiter.queued }).toEqual({ active: 0, queued: 0 });
  });
});

describe("the forwarding limiter's tryAcquire", () => {
  it("takes a free slot at once and takes none while every slot is held, queued requests keeping their turn", async () => {
    const limiter = new ConcurrencyLimiter(options());
    expect(limiter.tryAcquire()).toBe(true);
    expect(limiter.tryAcquire()).toBe(false);
    const waiting = limiter.acquire();
    expect({ active: limiter.active, queued: limiter.queued }).toEqual({ active: 1, queued: 1 });
    limiter.release();
    // The freed slot went to the request that waited, not to a newcomer.
    expect(limiter.tryAcquire()).toBe(false);
    await waiting;
    limiter.release();
    expect(limiter.active).toBe(0);
    expect(limiter.tryAcquire()).toBe(true);
    expect(limiter.active).toBe(1);
    limiter.release();
    expect(limiter.active).toBe(0);
  });
});
