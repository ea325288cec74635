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
import { ResponseTooLargeError, readBoundedText } from "../client/transport.ts";
import { EnclaveError } from "./errors.ts";

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
  readonly timeoutMs?: number;
}

/** Returns the 32-byte model key, or throws an EnclaveError naming the broker's answer. */
export async function requestModelKey(request: ModelKeyRequest): Promise<Uint8Array> {
  const base = request.kbsUrl.replace(/\/+$/, "");
  const timeoutMs = request.timeoutMs ?? 15_000;
  const post = async (path: string, body: unknown): Promise<unknown> => {
    let response: Response;
    try {
      response = await fetch(`${base}${path}`, {
        method: "POST",
        headers: { "content-type": "application/json" },
        body: JSON.stringify(body),
        signal: AbortSignal.timeout(timeoutMs),
      });
    } catch (error) {
      throw new EnclaveError(
        "BOOT_KBS_UNREACHABLE",
        500,
        `boot: key broker ${base} unreachable (${(error as Error).name === "TimeoutError" ? `no answer in ${timeoutMs} ms` : ((error as { cause?: { code?: string } }).cause?.code ?? (error as Error).message)})`,
        { cause: error },
      );
    }
    let text: string;
    try {
      // Streamed with a byte count: past the limit the rest is not read and the connection closes.
      text = await readBoundedText(response.body ?? [], MAX_KBS_RESPONSE_BYTES);
    } catch (error) {
      const problem =
        error instanceof ResponseTooLargeError
          ? `expected at most ${MAX_KBS_RESPONSE_BYTES} bytes, found more`
          : (error as Error).name === "TimeoutError"
            ? `not whole within ${timeoutMs} ms`
            : "cut off";
      throw new EnclaveError(
        "BOOT_KBS_BAD_RESPONSE",
        500,
        `boot: key broker ${path}: HTTP ${response.status}, body: ${problem}`,
        {
          cause: error,
        },
      );
    }
    let json: unknown;
    try {
      json = JSON.parse(text);
    } catch {
      // No `cause`: JSON.parse's message quotes the body.
      throw new EnclaveError(
        "BOOT_KBS_BAD_RESPONSE",
        500,
        `boot: key broker ${path}: HTTP ${response.status}, body is not JSON`,
      );
    }
    if (!response.ok) {
      const refusal = (json as { error?: { code?: unknown; message?: unknown } } | null)?.error;
      const code = typeof refusal?.code === "string" ? refusal.code.slice(0, 64).replace(/[^A-Z0-9_]/g, "?") : "?";
      const message =
        typeof refusal?.message === "string" ? refusal.message.slice(0, 600).replace(/[^\x20-\x7e]/g, "?") : "";
      throw new EnclaveError(
        "BOOT_KBS_REFUSED",
        500,
        `boot: key broker refused key "${request.keyId}" (HTTP ${response.status} ${code}): ${message}`,
      );
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
