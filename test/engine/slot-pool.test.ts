import { describe, expect, it } from "vitest";
import { EngineError } from "../../enclave/engine/errors.ts";
import { SlotPool } from "../../enclave/engine/slot-pool.ts";
import { EnclaveError } from "../../enclave/errors.ts";

function codeOf(error: unknown): unknown {
  return error instanceof EngineError ? error.code : error;
}

describe("SlotPool", () => {
  it("hands out free slots at once, then queues FIFO up to the limit, then refuses with ENGINE_BUSY", async () => {
    const pool = new SlotPool(["a", "b"], 2);
    expect(await pool.acquire()).toBe("a");
    expect(await pool.acquire()).toBe("b");
    const order: string[] = [];
    const w1 = pool.acquire().then((slot) => order.push(`w1:${slot}`));
    const w2 = pool.acquire().then((slot) => order.push(`w2:${slot}`));
    expect(pool.queued).toBe(2);
    await expect(pool.acquire()).rejects.toSatisfy((e) => codeOf(e) === "ENGINE_BUSY");
    expect(pool.queued).toBe(2);
    pool.release("b");
    pool.release("a");
    await Promise.all([w1, w2]);
    expect(order).toEqual(["w1:b", "w2:a"]);
    expect(pool.freeCount).toBe(0);
  });

  it("maxQueue 0 refuses as soon as every slot is busy, as an EnclaveError with status 503", async () => {
    const pool = new SlotPool([1], 0);
    await pool.acquire();
    const busy = await pool.acquire().catch((e: unknown) => e);
    expect(codeOf(busy)).toBe("ENGINE_BUSY");
    expect(busy).toBeInstanceOf(EnclaveError);
    expect((busy as EnclaveError).status).toBe(503);
  });

  it("an aborted waiter leaves the queue and the next waiter gets the slot", async () => {
    const pool = new SlotPool(["x"], 4);
    await pool.acquire();
    const controller = new AbortController();
    const aborted = pool.acquire(controller.signal);
    const next = pool.acquire();
    controller.abort();
    await expect(aborted).rejects.toSatisfy((e) => codeOf(e) === "ENGINE_ABORTED");
    expect(pool.queued).toBe(1);
    pool.release("x");
    expect(await next).toBe("x");
  });

  it("rejects an already aborted signal without taking a slot", async () => {
    const pool = new SlotPool(["x"], 4);
    await expect(pool.acquire(AbortSignal.abort())).rejects.toSatisfy((e) => codeOf(e) === "ENGINE_ABORTED");
    expect(pool.freeCount).toBe(1);
  });

  it("close rejects waiters with ENGINE_CLOSED and refuses new callers", async () => {
    const pool = new SlotPool(["x"], 4);
    await pool.acquire();
    const waiting = pool.acquire();
    pool.close();
    await expect(waiting).rejects.toSatisfy((e) => codeOf(e) === "ENGINE_CLOSED");
    await expect(pool.acquire()).rejects.toSatisfy((e) => codeOf(e) === "ENGINE_CLOSED");
  });

  it("uses choose among free slots and refuses double or foreign releases", async () => {
    const pool = new SlotPool(["a", "b", "c"], 1);
    expect(await pool.acquire(undefined, (free) => free[2]!)).toBe("c");
    pool.release("c");
    expect(() => pool.release("c")).toThrow(/released twice/);
    expect(() => pool.release("z")).toThrow(/foreign/);
  });
});
