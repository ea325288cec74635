/**
 * Backpressure: at most `maxInFlight` sealed requests are forwarded at once; up to `maxQueued`
 * more wait (FIFO) for at most `queueTimeoutMs`; beyond that the host answers 503 with
 * Retry-After instead of piling work onto the enclave.
 *
 * A slot is a count, not an object: `release` gives back one, so it must be called once per slot
 * taken. The host's one user, host/app.ts's HeldSlot, gives each back once however its request
 * ends (a request can reach two releases: its own, then its catch's), so a once-guard here too
 * was a second closure and flag per request for nothing.
 */
import { hostBusy } from "./errors.ts";

export interface LimiterOptions {
  readonly maxInFlight: number;
  readonly maxQueued: number;
  readonly queueTimeoutMs: number;
  readonly retryAfterSeconds: number;
}

interface Waiter {
  /** Called with the slot already counted as this waiter's. */
  resolve: () => void;
  timer: ReturnType<typeof setTimeout>;
}

export class ConcurrencyLimiter {
  private inFlight = 0;
  private readonly queue: Waiter[] = [];

  constructor(private readonly options: LimiterOptions) {
    if (!(options.maxInFlight >= 1 && options.maxQueued >= 0 && options.queueTimeoutMs >= 0)) {
      throw new RangeError("limiter: maxInFlight ≥ 1, maxQueued ≥ 0 and queueTimeoutMs ≥ 0 are required");
    }
  }

  get active(): number {
    return this.inFlight;
  }

  get queued(): number {
    return this.queue.length;
  }

  /** Takes a slot when one is free now (nobody waits then): true; else false, nothing taken. */
  tryAcquire(): boolean {
    if (this.inFlight >= this.options.maxInFlight) return false;
    this.inFlight++;
    return true;
  }

  /**
   * Resolves once a slot is taken; throws HOST_BUSY when full. When `signal` aborts while the
   * request waits (its client went away), it leaves the queue at once and this rejects with the
   * signal's reason: a request nobody waits for holds no place another could have.
   */
  acquire(signal?: AbortSignal): Promise<void> {
    if (signal?.aborted) return Promise.reject(signal.reason);
    if (this.tryAcquire()) return Promise.resolve();
    if (this.queue.length >= this.options.maxQueued) {
      return Promise.reject(hostBusy(this.options.retryAfterSeconds));
    }
    return new Promise((resolve, reject) => {
      const leave = (error: unknown) => {
        clearTimeout(waiter.timer);
        signal?.removeEventListener("abort", onAbort);
        const index = this.queue.indexOf(waiter);
        if (index >= 0) this.queue.splice(index, 1);
        reject(error);
      };
      const onAbort = () => leave(signal?.reason);
      const waiter: Waiter = {
        resolve: () => {
          signal?.removeEventListener("abort", onAbort);
          resolve();
        },
        timer: setTimeout(() => leave(hostBusy(this.options.retryAfterSeconds)), this.options.queueTimeoutMs),
      };
      signal?.addEventListener("abort", onAbort, { once: true });
      this.queue.push(waiter);
    });
  }

  /** Gives back one slot taken (by tryAcquire or acquire): to the request that has waited longest, if any. Once per slot. */
  release(): void {
    const next = this.queue.shift();
    if (next === undefined) {
      this.inFlight--;
      return;
    }
    clearTimeout(next.timer);
    next.resolve();
  }
}
