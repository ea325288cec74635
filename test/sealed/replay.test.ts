import { describe, expect, it } from "vitest";
import { ReplayGuard } from "../../sealed/index.ts";
import { sealedErrorOf, T0 } from "./helpers.ts";

const id = (n: number) => n.toString(16).padStart(32, "0");

describe("ReplayGuard", () => {
  it("accepts within ±window and refuses outside it", async () => {
    const guard = new ReplayGuard({ windowMs: 1000 });
    guard.check(id(1), T0 - 1000, T0);
    guard.check(id(2), T0 + 1000, T0);
    expect((await sealedErrorOf(() => guard.check(id(3), T0 - 1001, T0))).code).toBe("REQUEST_STALE");
    const late = await sealedErrorOf(() => guard.check(id(4), T0 + 7_654_321, T0));
    expect(late.code).toBe("REQUEST_STALE");
    // The host reads this message: the window, never the skew (that would give it the sealed timestamp).
    expect(late.message).toBe("request timestamp: expected within ±1000 ms of enclave time");
    expect(guard.size).toBe(2);
  });

  it("refuses a repeated id for as long as its timestamp is acceptable", async () => {
    const guard = new ReplayGuard({ windowMs: 1000 });
    guard.check(id(1), T0, T0);
    for (const now of [T0, T0 + 500, T0 + 1000]) {
      expect((await sealedErrorOf(() => guard.check(id(1), T0, now))).code).toBe("REQUEST_REPLAYED");
    }
    expect((await sealedErrorOf(() => guard.check(id(1), T0, T0 + 1001))).code).toBe("REQUEST_STALE");
  });

  it("forgets expired ids (bounded memory) and refuses when full of live ids", async () => {
    const guard = new ReplayGuard({ windowMs: 1000, maxEntries: 3 });
    guard.check(id(1), T0, T0);
    guard.check(id(2), T0, T0);
    guard.check(id(3), T0, T0);
    const full = await sealedErrorOf(() => guard.check(id(4), T0, T0));
    expect(full.code).toBe("REPLAY_CACHE_FULL");
    // Once the first ids expire they are swept and room is made.
    guard.check(id(5), T0 + 1500, T0 + 1001);
    expect(guard.size).toBe(1);
  });

  it("does not let a clock stepped backwards revive a forgotten id", async () => {
    const guard = new ReplayGuard({ windowMs: 1000, maxEntries: 1 });
    guard.check(id(1), T0, T0);
    guard.check(id(2), T0 + 1500, T0 + 1500); // sweeps id(1)
    // Enclave clock jumps back to T0: id(1) with timestamp T0 would be in the window of the new
    // clock, but the guard keeps the highest time it has seen.
    expect((await sealedErrorOf(() => guard.check(id(1), T0, T0))).code).toBe("REQUEST_STALE");
  });

  it("checks its options", async () => {
    expect((await sealedErrorOf(() => new ReplayGuard({ windowMs: 0 }))).code).toBe("INVALID_ARGUMENT");
    expect((await sealedErrorOf(() => new ReplayGuard({ maxEntries: 1.5 }))).code).toBe("INVALID_ARGUMENT");
  });
});
