/**
 * Backpressure: at most `maxInFlight` sealed requests are forwarded at once; up to `maxQueued`
 * more wait (FIFO) for at most `queueTimeoutMs`; beyond that the host answers 503 with
 * Retry-After instead of piling work onto the enclave.
 */
import { hostBusy } from "./errors.ts";

export interface LimiterOptions {
  readonly maxInFlight: number;
  readonly maxQueued: number;
  readonly queueTimeoutMs: number;
  readonly retryAfterSeconds: number;
}

interface Waiter {
  resolve: (release: () => void) => void;
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

  /** A release function when a slot is free now (nobody waits then), else null: acquire without the wait. */
  tryAcquire(): (() => void) | null {
    if (this.inFlight >= this.options.maxInFlight) return null;
    this.inFlight++;
    return this.releaser();
  }

  /**
   * Resolves with a release function once a slot is free; throws HOST_BUSY when full. When `signal`
   * aborts while the request waits (its client went away), it leaves the queue at once and this
   * rejects with the signal's reason: a request nobody waits for holds no place another could have.
   */
  acquire(signal?: AbortSignal): Promise<() => void> {
    if (signal?.aborted) return Promise.reject(signal.reason);
    const free = this.tryAcquire();
    if (free !== null) return Promise.resolve(free);
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
        resolve: (release) => {
          signal?.removeEventListener("abort", onAbort);
          resolve(release);
        },
        timer: setTimeout(() => leave(hostBusy(this.options.retryAfterSeconds)), this.options.queueTimeoutMs),
      };
      signal?.addEventListener("abort", onAbort, { once: true });
      this.queue.push(waiter);
    });
  }

  private releaser(): () => void {
    let released = false;
    return () => {
      if (released) return;
      released = true;
      const next = this.queue.shift();
      if (next === undefined) {
        this.inFlight--;
        return;
      }
      clearTimeout(next.timer);
      next.resolve(this.releaser());
    };
  }
}
