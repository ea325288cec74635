/**
 * Replay protection for sealed requests: a request is accepted only when its timestamp lies within
 * ±windowMs of the enclave's clock and its request id has not been accepted before.
 *
 * An id is remembered until its own timestamp + windowMs; after that the timestamp rule alone
 * refuses it, so forgetting it opens no gap. The guard's clock never runs backwards (it uses the
 * largest `now` it has seen), so a clock stepped back cannot revive a forgotten id. Memory is
 * bounded by `maxEntries`: when that many ids are live, new requests are refused
 * (REPLAY_CACHE_FULL) rather than an id forgotten early. The cache lives in enclave memory; a new
 * boot has a new sealing key, so requests sealed to a previous boot cannot be opened at all.
 */
import { ReplayCacheFullError, RequestReplayedError, RequestStaleError, SealedInvalidArgumentError } from "./errors.ts";

/** The window ReplayGuard keeps when given none (the enclave's): ±120 000 ms of its clock. */
export const DEFAULT_REPLAY_WINDOW_MS = 120_000;

export interface ReplayGuardOptions {
  /** Accepted clock skew either way and how long ids are remembered; default DEFAULT_REPLAY_WINDOW_MS. */
  readonly windowMs?: number;
  /** Most live ids remembered; default 100 000. */
  readonly maxEntries?: number;
}

export class ReplayGuard {
  readonly windowMs: number;
  readonly maxEntries: number;
  /** request id → time (ms) after which the id can be forgotten. */
  readonly #expiries = new Map<string, number>();
  #clock = Number.NEGATIVE_INFINITY;
  #nextSweep = Number.NEGATIVE_INFINITY;
  #lastSweep = Number.NEGATIVE_INFINITY;

  constructor(options: ReplayGuardOptions = {}) {
    const windowMs = options.windowMs ?? DEFAULT_REPLAY_WINDOW_MS;
    const maxEntries = options.maxEntries ?? 100_000;
    if (!Number.isSafeInteger(windowMs) || windowMs < 1) {
      throw new SealedInvalidArgumentError(`ReplayGuard windowMs: expected a positive integer, found ${windowMs}`);
    }
    if (!Number.isSafeInteger(maxEntries) || maxEntries < 1) {
      throw new SealedInvalidArgumentError(`ReplayGuard maxEntries: expected a positive integer, found ${maxEntries}`);
    }
    this.windowMs = windowMs;
    this.maxEntries = maxEntries;
  }

  /** Number of ids currently remembered. */
  get size(): number {
    return this.#expiries.size;
  }

  /**
   * Accepts and records the request, or throws REQUEST_STALE, REQUEST_REPLAYED or
   * REPLAY_CACHE_FULL. Call only after the request was authenticated.
   */
  check(requestId: string, timestamp: number, now: number): void {
    if (!Number.isFinite(now))
      throw new SealedInvalidArgumentError(`ReplayGuard now: expected a time in ms, found ${now}`);
    this.#clock = Math.max(this.#clock, now);
    const clock = this.#clock;
    const skew = timestamp - clock;
    if (!Number.isFinite(skew) || Math.abs(skew) > this.windowMs) throw new RequestStaleError(this.windowMs);
    // Sweep on a schedule, or when full (at most once per clock tick, so a full cache does not
    // make every request walk the whole map).
    const full = this.#expiries.size >= this.maxEntries;
    if (clock >= this.#nextSweep || (full && clock > this.#lastSweep)) this.#sweep(clock);
    if (this.#expiries.has(requestId)) throw new RequestReplayedError();
    if (this.#expiries.size >= this.maxEntries) throw new ReplayCacheFullError(this.maxEntries);
    this.#expiries.set(requestId, timestamp + this.windowMs);
  }

  #sweep(clock: number): void {
    for (const [id, expiry] of this.#expiries) if (expiry < clock) this.#expiries.delete(id);
    this.#lastSweep = clock;
    this.#nextSweep = clock + Math.max(1, Math.floor(this.windowMs / 4));
  }
}
