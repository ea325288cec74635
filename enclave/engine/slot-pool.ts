/**
 * A fixed set of slots (context sequences) behind a bounded FIFO wait queue.
 *
 * `acquire` hands out a free slot at once; when none is free the caller waits in arrival order, up
 * to `maxQueue` waiters; beyond that the call is refused at once with ENGINE_BUSY so the server can
 * answer 429/503 instead of piling up work. A waiter whose AbortSignal fires leaves the queue and is
 * rejected with ENGINE_ABORTED. `close` rejects every waiter with ENGINE_CLOSED.
 *
 * It knows nothing about models; the engine decides which free slot suits a request (`choose`).
 */
import { EngineBusyError, EngineError } from "./errors.ts";

type Waiter<T> = {
  resolve: (slot: T) => void;
  reject: (error: unknown) => void;
  detach: () => void;
};

export class SlotPool<T> {
  readonly #slots: readonly T[];
  readonly #free: T[];
  readonly #waiters: Waiter<T>[] = [];
  readonly #maxQueue: number;
  #closed = false;

  constructor(slots: readonly T[], maxQueue: number) {
    if (slots.length === 0) throw new EngineError("ENGINE_OPTIONS", "slot pool: expected at least 1 slot, found 0");
    if (!Number.isInteger(maxQueue) || maxQueue < 0) {
      throw new EngineError("ENGINE_OPTIONS", `slot pool: maxQueue expects an integer >= 0, found ${maxQueue}`);
    }
    this.#slots = [...slots];
    this.#free = [...slots];
    this.#maxQueue = maxQueue;
  }

  get size(): number {
    return this.#slots.length;
  }

  get freeCount(): number {
    return this.#free.length;
  }

  get queued(): number {
    return this.#waiters.length;
  }

  get maxQueue(): number {
    return this.#maxQueue;
  }

  /**
   * Take a slot. `choose` picks among the free slots (default: the first). Rejects with
   * ENGINE_BUSY when every slot is taken and `maxQueue` callers already wait, ENGINE_ABORTED when
   * `signal` fires first, ENGINE_CLOSED after `close`.
   */
  acquire(signal?: AbortSignal, choose?: (free: readonly T[]) => T): Promise<T> {
    if (this.#closed) return Promise.reject(new EngineError("ENGINE_CLOSED", "engine is closed"));
    if (signal?.aborted) return Promise.reject(abortedError(signal));
    if (this.#free.length > 0 && this.#waiters.length === 0) {
      const slot = choose === undefined ? this.#free[0]! : choose(this.#free);
      const index = this.#free.indexOf(slot);
      if (index < 0) throw new EngineError("ENGINE_OPTIONS", "slot pool: choose returned a slot that is not free");
      this.#free.splice(index, 1);
      return Promise.resolve(slot);
    }
    if (this.#waiters.length >= this.#maxQueue) {
      return Promise.reject(new EngineBusyError(this.#slots.length, this.#maxQueue));
    }
    return new Promise<T>((resolve, reject) => {
      const onAbort = (): void => {
        const index = this.#waiters.indexOf(waiter);
        if (index >= 0) this.#waiters.splice(index, 1);
        reject(abortedError(signal!));
      };
      const waiter: Waiter<T> = {
        resolve,
        reject,
        detach: () => signal?.removeEventListener("abort", onAbort),
      };
      signal?.addEventListener("abort", onAbort, { once: true });
      this.#waiters.push(waiter);
    });
  }

  /** Give a slot back: the longest-waiting caller gets it, else it becomes free. */
  release(slot: T): void {
    if (!this.#slots.includes(slot)) throw new EngineError("ENGINE_OPTIONS", "slot pool: released a foreign slot");
    if (this.#free.includes(slot)) throw new EngineError("ENGINE_OPTIONS", "slot pool: slot released twice");
    const waiter = this.#waiters.shift();
    if (waiter !== undefined && !this.#closed) {
      waiter.detach();
      waiter.resolve(slot);
      return;
    }
    this.#free.push(slot);
  }

  /** Refuse new callers and reject everyone still waiting. Slots in use stay with their holders. */
  close(): void {
    this.#closed = true;
    for (const waiter of this.#waiters.splice(0)) {
      waiter.detach();
      waiter.reject(new EngineError("ENGINE_CLOSED", "engine closed while the request waited for a sequence"));
    }
  }
}

function abortedError(signal: AbortSignal): EngineError {
  return new EngineError("ENGINE_ABORTED", "request aborted before a sequence became free", { cause: signal.reason });
}
