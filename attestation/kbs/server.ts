/**
 * The key broker's HTTP API (protocol.ts): `POST /v1/kbs/challenge`, `POST /v1/kbs/release`,
 * `GET /healthz`. Every answer is JSON; refusals are `{error: {code, message}}` with the
 * BrokerError's status. One log line per release attempt, with public values only (key id,
 * outcome, code, TEE, measurement, timing): never a key, wrapped or not.
 */
import { Hono } from "hono";
import { bodyLimit } from "hono/body-limit";
import { KEY_ID_PATTERN } from "../../models/key-id.ts";
import { BrokerError, type KeyBroker, type ReleaseRecord } from "./broker.ts";

/** Largest release request accepted (an attestation document with its certificate chains). */
export const MAX_RELEASE_BYTES = 1024 * 1024;

export interface ReleaseLogEntry {
  readonly event: "release";
  readonly outcome: "released" | "refused";
  readonly keyId: string | null;
  readonly code: string | null;
  readonly stage: string | null;
  readonly tee: string | null;
  readonly simulated: boolean | null;
  readonly measurement: string | null;
  readonly ms: number;
}

function errorJson(code: string, message: string) {
  return { error: { code, message } };
}

/**
 * Challenges each client address may take per minute (default 60). Challenges are free to ask for
 * and each outstanding one holds a slot, so without a per-address limit one caller could keep the
 * broker's table full and stop every enclave from booting.
 */
export interface BrokerAppOptions {
  readonly challengesPerMinute?: number;
  readonly now?: () => number;
}

/** Fixed one-minute windows per address, at most 10 000 addresses remembered. */
class AddressLimiter {
  readonly #windows = new Map<string, { start: number; count: number }>();

  constructor(
    private readonly perMinute: number,
    private readonly now: () => number,
  ) {}

  /** Seconds until `address` may try again, or 0 when this attempt is allowed (and counted). */
  take(address: string): number {
    const now = this.now();
    let window = this.#windows.get(address);
    if (window === undefined || now - window.start >= 60_000) {
      if (this.#windows.size >= 10_000) {
        for (const [key, w] of this.#windows) if (now - w.start >= 60_000) this.#windows.delete(key);
        if (this.#windows.size >= 10_000) return 1;
      }
      window = { start: now, count: 0 };
      this.#windows.set(address, window);
    }
    if (window.count >= this.perMinute) return Math.max(1, Math.ceil((window.start + 60_000 - now) / 1000));
    window.count++;
    return 0;
  }
}

type BrokerEnv = { Bindings: { incoming?: { socket?: { remoteAddress?: string } } } };

export function createBrokerApp(
  broker: KeyBroker,
  log: (entry: ReleaseLogEntry) => void = () => {},
  options: BrokerAppOptions = {},
): Hono<BrokerEnv> {
  const app = new Hono<BrokerEnv>();
  const limiter = new AddressLimiter(options.challengesPerMinute ?? 60, options.now ?? (() => Date.now()));
  app.onError((error, c) => {
    if (error instanceof BrokerError) {
      if (error.status === 503) c.header("Retry-After", "1");
      return c.json(errorJson(error.code, error.message), error.status);
    }
    return c.json(errorJson("INTERNAL", "internal error in the key broker"), 500);
  });
  app.notFound((c) => c.json(errorJson("NOT_FOUND", "no such route"), 404));

  app.get("/healthz", (c) => c.json({ status: "ok", keys: broker.keyIds.length }));

  app.post("/v1/kbs/challenge", (c) => {
    const address = c.env?.incoming?.socket?.remoteAddress ?? "unknown";
    const wait = limiter.take(address);
    if (wait > 0) {
      c.header("Retry-After", String(wait));
      return c.json(
        errorJson("KBS_RATE_LIMITED", "key broker: too many challenges from this address; retry later"),
        429,
      );
    }
    return c.json(broker.challenge());
  });

  app.post(
    "/v1/kbs/release",
    bodyLimit({
      maxSize: MAX_RELEASE_BYTES,
      onError: (c) =>
        c.json(errorJson("KBS_REQUEST_TOO_LARGE", `release request: expected at most ${MAX_RELEASE_BYTES} bytes`), 413),
    }),
    async (c) => {
      const started = performance.now();
      let keyId: string | null = null;
      try {
        let body: unknown;
        try {
          body = await c.req.json();
        } catch {
          throw new BrokerError("KBS_REQUEST_MALFORMED", 400, "release request: body is not JSON");
        }
        const named = (body as { keyId?: unknown } | null)?.keyId;
        keyId = typeof named === "string" && KEY_ID_PATTERN.test(named) ? named : null;
        const { wrapped, record } = await broker.release(body);
        log(entry("released", keyId, null, null, record, started));
        return c.json({ wrapped });
      } catch (error) {
        const refusal = error instanceof BrokerError ? error : null;
        log(
          entry(
            "refused",
            keyId,
            refusal?.code ?? "INTERNAL",
            refusal?.stage ?? null,
            refusal?.evidence ?? null,
            started,
          ),
        );
        throw error;
      }
    },
  );
  return app;
}

function entry(
  outcome: ReleaseLogEntry["outcome"],
  keyId: string | null,
  code: string | null,
  stage: string | null,
  record: Pick<ReleaseRecord, "tee" | "simulated" | "measurement"> | null,
  started: number,
): ReleaseLogEntry {
  return {
    event: "release",
    outcome,
    keyId,
    code,
    stage,
    tee: record?.tee ?? null,
    simulated: record?.simulated ?? null,
    measurement: record?.measurement ?? null,
    ms: Math.round((performance.now() - started) * 100) / 100,
  };
}
