/**
 * The enclave's side of the key broker protocol (attestation/kbs/protocol.ts): at boot, after its
 * attestation document exists and before it loads a sealed model, it asks the broker for a
 * challenge, answers it with its attested Ed25519 key, and receives the model key boxed to its
 * attested X25519 key. The broker's URL is configuration, not trust: a wrong or impostor broker can
 * only withhold the key or send one that fails the sealed file's authentication.
 */
import { base64url } from "jose";
import type { AttestationCollateral } from "../attestation/collateral.ts";
import { ModelKeyUnwrapError, unwrapModelKey } from "../attestation/kbs/protocol.ts";
import { FetchProblem, openBounded } from "../attestation/providers/bounded-fetch.ts";
import { describeUrlText } from "../attestation/url-text.ts";
import { EnclaveError } from "./errors.ts";
import { throwIfStoppedBy } from "./stop.ts";

/**
 * Most bytes read of one broker answer. A challenge, a wrapped key or a refusal is well under 2 KiB;
 * the broker's URL is not trusted (often plain HTTP), so whoever answers in its place must not make
 * the enclave buffer more than this at boot.
 */
export const MAX_KBS_RESPONSE_BYTES = 64 * 1024;

export interface ModelKeyRequest {
  readonly kbsUrl: string;
  readonly keyId: string;
  readonly document: string;
  readonly documentDigest: string;
  /** The collateral served with the document (the broker checks the TCB status with it), or null. */
  readonly collateral: AttestationCollateral | null;
  /** Signs a nonce answer with the attested key (Enclave.answerNonce). */
  answer(nonce: Uint8Array): Promise<string>;
  readonly sealingSecretKey: Uint8Array;
  /** This boot's public values, named when the broker refuses the key (nothing secret). */
  readonly publicValues: BootPublicValues;
  readonly timeoutMs?: number;
  /**
   * How long the boot keeps asking while the broker says it is busy or rate-limits this address
   * (503 KBS_BUSY, 429 KBS_RATE_LIMITED), waiting what its Retry-After says each time (default
   * KBS_RETRY_FOR_MS); a refused challenge (KBS_CHALLENGE_UNKNOWN) is asked for afresh once, at
   * once; every other refusal stops the boot at once.
   */
  readonly retryForMs?: number;
  /** Told of each wait, and of the one fresh challenge after a refused one (the boot logs it). */
  readonly onRetry?: (message: string) => void;
  /**
   * Aborting stops the request under way or the wait before the next, and it rejects with the
   * signal's reason (the boot stopped by SIGTERM), not with an error about the broker.
   */
  readonly signal?: AbortSignal;
}

/**
 * What this boot is, as the broker's release policy judges it: the TEE mode (--tee), the launch
 * measurement (SNP MEASUREMENT or TDX MRTD, hex) and the manifest's model.sha256. All public: a
 * refusal names them so the operator can compare them with the release policy, which the broker
 * does not tell the enclave (attestation/kbs/broker.ts).
 */
export interface BootPublicValues {
  readonly tee: string;
  readonly measurementField: "MEASUREMENT" | "MRTD";
  readonly measurement: string;
  readonly modelSha256: string;
}

/**
 * What to do when the broker did not answer. The boot does not ask again (only a busy broker is, or
 * one that refused its challenge): its unit's restart does, as docs/deploy.md step 4 says.
 */
const UNREACHABLE_STEP =
  "check that the key broker runs at that URL (--kbs-url) and that this enclave can reach it; this boot does " +
  "not ask again: start the broker, then start the enclave again (its unit's Restart= does so)";

/**
 * What to do about a broker's refusal (4xx) of `code`, after its words. The release policy is what
 * to look at only when the broker judged this enclave (KBS_ATTESTATION_FAILED, KBS_KEY_NOT_IN_MANIFEST,
 * and any code this boot does not know): then this boot's own public values, which the broker does
 * not tell the enclave it expected. The other refusals are of the request, not of the enclave.
 */
function refusalStep(code: string, message: string, request: ModelKeyRequest): string {
  const restart = "start the enclave again (its unit's Restart= does so)";
  switch (code) {
    case "KBS_KEY_UNKNOWN":
      return (
        `the broker holds no key "${request.keyId}": check the manifest's model.keyId against the --key-id given to ` +
        "cloister kbs keygen, and that the broker's configuration lists that key file (cloister kbs check)"
      );
    // Said only of the second challenge (requestModelKey asks once more after the first is refused).
    case "KBS_CHALLENGE_UNKNOWN":
      return (
        "this boot asked twice, each time with a fresh challenge, and the broker refused both as expired (60 s), " +
        "already used, or not its own: several brokers answer at --kbs-url (each request may reach another), or " +
        `the broker restarts between requests: point --kbs-url at one broker, then ${restart}`
      );
    case "KBS_REQUEST_MALFORMED":
    case "KBS_REQUEST_TOO_LARGE":
      return (
        "the broker could not take this boot's release request as it is (its words name what): check that the " +
        "enclave and the broker run the same Cloister version"
      );
    case "KBS_REQUEST_INCOMPLETE":
    case "REQUEST_TIMEOUT":
    case "REQUEST_UNREADABLE":
    case "HEADERS_TOO_LARGE":
      return `the broker did not receive this boot's request whole (a proxy or the network between them): ${restart}`;
    case "KBS_HOST_NOT_LOOPBACK":
      return (
        "this broker serves a key released to the simulator to loopback only: give --kbs-url a loopback address " +
        "(http://127.0.0.1:PORT)"
      );
    case "NOT_FOUND":
      return "no key broker route there: check that --kbs-url is the URL the broker's /v1/kbs/ routes are under";
  }
  // A nonce answer signed too far from the broker's time: the clocks differ, not the image. (Not so
  // VERIFICATION_TIME_SKEW: the broker verifies the evidence and appraises it at the one time it
  // reads from its own clock, so this enclave's clock does not enter it.)
  if (code === "KBS_ATTESTATION_FAILED" && message.includes("(NONCE_STALE)")) {
    return (
      "this VM's clock and the broker's differ by more than its release policy's freshness.maxClockSkewSeconds: " +
      `set both by NTP, then ${restart}`
    );
  }
  const own = request.publicValues;
  return (
    `this enclave: tee ${own.tee}, ${own.measurementField} ${own.measurement}, model.sha256 ${own.modelSha256}; ` +
    `compare them with the broker's release policy for key id "${request.keyId}"; the broker's log names what it expected`
  );
}

/** How long a boot retries a busy or rate-limiting broker, by default. */
export const KBS_RETRY_FOR_MS = 120_000;
/** Bounds on one wait between attempts, whatever the broker's Retry-After says (seconds → ms). */
const KBS_RETRY_MIN_MS = 500;
const KBS_RETRY_MAX_MS = 30_000;

/** A broker's refusal that says to come back later: busy (503 KBS_BUSY) or rate-limited (429). */
class BrokerBusyError extends EnclaveError {
  constructor(
    message: string,
    readonly retryAfterMs: number,
  ) {
    super("BOOT_KBS_REFUSED", 500, message);
  }
}

/**
 * A broker's refusal of the challenge this boot answered (KBS_CHALLENGE_UNKNOWN): expired, used, or
 * another broker's. `refused` is the broker's words without the next step, told when asking again.
 */
class ChallengeRefusedError extends EnclaveError {
  constructor(
    message: string,
    readonly refused: string,
  ) {
    super("BOOT_KBS_REFUSED", 500, message);
  }
}

/**
 * Returns the 32-byte model key, or throws an EnclaveError naming the broker's answer. A broker
 * that is busy or rate-limits this address is asked again (a fresh challenge each time) after its
 * Retry-After, for up to `retryForMs`. A refused challenge (KBS_CHALLENGE_UNKNOWN: the broker
 * restarted between the challenge and the release) is asked for afresh once, at once; refused
 * again, the boot stops: a broker that keeps refusing its own challenges needs its operator.
 */
export async function requestModelKey(request: ModelKeyRequest): Promise<Uint8Array> {
  const deadline = performance.now() + (request.retryForMs ?? KBS_RETRY_FOR_MS);
  let challengeRefused = false;
  for (;;) {
    try {
      return await requestModelKeyOnce(request);
    } catch (error) {
      // A refusal that came while a stop was pending is still the broker's refusal.
      throwIfStoppedBy(error, request.signal);
      if (error instanceof ChallengeRefusedError && !challengeRefused) {
        challengeRefused = true;
        request.signal?.throwIfAborted(); // refused, and stopped meanwhile: not asked again
        request.onRetry?.(`${error.refused}; asking once more, with a fresh challenge`);
        continue;
      }
      if (!(error instanceof BrokerBusyError) || performance.now() + error.retryAfterMs > deadline) throw error;
      request.signal?.throwIfAborted(); // busy, and stopped meanwhile: not asked again
      request.onRetry?.(`${error.message}; asking again in ${error.retryAfterMs} ms`);
      await wait(error.retryAfterMs, request.signal);
    }
  }
}

/** Resolves after `ms`, or rejects with `signal`'s reason as soon as it aborts. */
function wait(ms: number, signal: AbortSignal | undefined): Promise<void> {
  return new Promise((resolve, reject) => {
    if (signal?.aborted) {
      reject(signal.reason);
      return;
    }
    const onAbort = () => {
      clearTimeout(timer);
      reject(signal?.reason);
    };
    const timer = setTimeout(() => {
      signal?.removeEventListener("abort", onAbort);
      resolve();
    }, ms);
    signal?.addEventListener("abort", onAbort, { once: true });
  });
}

async function requestModelKeyOnce(request: ModelKeyRequest): Promise<Uint8Array> {
  const base = request.kbsUrl.replace(/\/+$/, "");
  const timeoutMs = request.timeoutMs ?? 15_000;
  const post = async (path: string, body: unknown): Promise<unknown> => {
    // Refused in words naming the broker (no answer) or the path asked (an answer that is a
    // redirect, too large or cut off); the URL is shown by describeUrlText: no credentials, no query.
    const refusedFetch = (error: unknown, found: string): never => {
      if (!(error instanceof FetchProblem)) throw error;
      // The boot's stop cut the request short (bounded-fetch.ts): the stop's reason, not a refusal.
      throwIfStoppedBy(error.cause, request.signal);
      throw error.status === null
        ? new EnclaveError(
            "BOOT_KBS_UNREACHABLE",
            500,
            `boot: key broker ${describeUrlText(base)} ${path}: ${error.message}; ${UNREACHABLE_STEP}`,
            { cause: error },
          )
        : new EnclaveError("BOOT_KBS_BAD_RESPONSE", 500, `boot: key broker ${path}: ${found}${error.message}`, {
            cause: error,
          });
    };
    // No redirect is followed (openBounded): it would carry this boot's attested answer to
    // whatever host the redirect names.
    const answer = await openBounded(
      fetch,
      `${base}${path}`,
      {
        method: "POST",
        headers: { "content-type": "application/json" },
        body: JSON.stringify(body),
        ...(request.signal === undefined ? {} : { signal: request.signal }),
      },
      timeoutMs,
      MAX_KBS_RESPONSE_BYTES,
    ).catch((error: unknown) => refusedFetch(error, ""));
    // Streamed with a byte count: past the limit the rest is not read and the connection closes.
    const text = new TextDecoder().decode(
      await answer.read().catch((error: unknown) => refusedFetch(error, `HTTP ${answer.status}, `)),
    );
    let json: unknown;
    try {
      json = JSON.parse(text);
    } catch {
      // No `cause`: JSON.parse's message quotes the body.
      throw new EnclaveError(
        "BOOT_KBS_BAD_RESPONSE",
        500,
        `boot: key broker ${path}: HTTP ${answer.status}, body is not JSON`,
      );
    }
    if (answer.status < 200 || answer.status > 299) {
      const refusal = (json as { error?: { code?: unknown; message?: unknown } } | null)?.error;
      const code = typeof refusal?.code === "string" ? refusal.code.slice(0, 64).replace(/[^A-Z0-9_]/g, "?") : "?";
      const message =
        typeof refusal?.message === "string" ? refusal.message.slice(0, 600).replace(/[^\x20-\x7e]/g, "?") : "";
      const said = `(HTTP ${answer.status} ${code}): ${message}`;
      const refused = `boot: key broker refused key "${request.keyId}" ${said}`;
      if ((answer.status === 503 && code === "KBS_BUSY") || (answer.status === 429 && code === "KBS_RATE_LIMITED")) {
        const seconds = Number(answer.headers.get("retry-after"));
        const wait = Number.isFinite(seconds) && seconds > 0 ? seconds * 1000 : KBS_RETRY_MIN_MS * 2;
        throw new BrokerBusyError(refused, Math.min(KBS_RETRY_MAX_MS, Math.max(KBS_RETRY_MIN_MS, wait)));
      }
      // A 5xx (but a busy broker's) is the broker failing, not refusing this enclave (its own fault,
      // 500 INTERNAL, whose cause is in its log; or a proxy's): told apart, so no one looks for the
      // fault in this enclave's attestation.
      if (answer.status >= 500) {
        throw new EnclaveError("BOOT_KBS_FAILED", 500, `boot: key broker failed on key "${request.keyId}" ${said}`);
      }
      // The broker's words as they are, then what to do about this refusal.
      const stepped = `${refused}; ${refusalStep(code, message, request)}`;
      if (code === "KBS_CHALLENGE_UNKNOWN") throw new ChallengeRefusedError(stepped, refused);
      throw new EnclaveError("BOOT_KBS_REFUSED", 500, stepped);
    }
    return json;
  };

  const challengeBody = (await post("/v1/kbs/challenge", {})) as { challenge?: unknown } | null;
  let challenge: Uint8Array;
  try {
    if (typeof challengeBody?.challenge !== "string") throw new Error("challenge");
    challenge = base64url.decode(challengeBody.challenge);
  } catch (error) {
    throw new EnclaveError("BOOT_KBS_BAD_RESPONSE", 500, "boot: key broker challenge: expected base64url", {
      cause: error,
    });
  }
  if (challenge.length !== 32) {
    throw new EnclaveError(
      "BOOT_KBS_BAD_RESPONSE",
      500,
      `boot: key broker challenge: expected 32 bytes, found ${challenge.length}`,
    );
  }
  const released = (await post("/v1/kbs/release", {
    keyId: request.keyId,
    document: request.document,
    ...(request.collateral === null ? {} : { collateral: request.collateral }),
    challenge: challengeBody.challenge,
    answer: await request.answer(challenge),
  })) as { wrapped?: unknown } | null;
  try {
    return unwrapModelKey(released?.wrapped, request.sealingSecretKey, {
      keyId: request.keyId,
      challenge,
      documentDigest: request.documentDigest,
    });
  } catch (error) {
    if (error instanceof ModelKeyUnwrapError) {
      throw new EnclaveError("BOOT_MODEL_KEY_INVALID", 500, `boot: ${error.code}: ${error.message}`, { cause: error });
    }
    throw error;
  }
}
