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
  reject: (error: unknown) => void;
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

  /** Resolves with a release function once a slot is free; throws HOST_BUSY when full. */
  acquire(): Promise<() => void> {
    if (this.inFlight < this.options.maxInFlight) {
      this.inFlight++;
      return Promise.resolve(this.releaser());
    }
    if (this.queue.length >= this.options.maxQueued) {
      return Promise.reject(hostBusy(this.options.retryAfterSeconds));
    }
    return new Promise((resolve, reject) => {
      const waiter: Waiter = {
        resolve,
        reject,
        timer: setTimeout(() => {
          const index = this.queue.indexOf(waiter);
          if (index >= 0) this.queue.splice(index, 1);
          reject(hostBusy(this.options.retryAfterSeconds));
        }, this.options.queueTimeoutMs),
      };
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
