/**
 * Errors of the sealed protocol. Each failure has its own class and a stable `code`, so callers
 * (and tests) can tell a dropped frame from a tampered one without parsing messages.
 *
 * Messages name the field, the expected and the found value only where those values are public
 * (header bytes, sizes, sequence numbers). They never contain plaintext, keys, nonces or request
 * ids. Decryption failure has one fixed, uninformative message.
 */

export type SealedErrorCode =
  | "INVALID_ARGUMENT"
  | "REQUEST_TOO_LARGE"
  | "ENVELOPE_MALFORMED"
  | "UNSUPPORTED_VERSION"
  | "WRONG_ENCLAVE_KEY"
  | "DECRYPTION_FAILED"
  | "HEADER_MISMATCH"
  | "REQUEST_MALFORMED"
  | "REQUEST_STALE"
  | "REQUEST_REPLAYED"
  | "REPLAY_CACHE_FULL"
  | "FRAME_MALFORMED"
  | "FRAME_TAMPERED"
  | "FRAME_DROPPED"
  | "FRAME_REORDERED"
  | "FRAME_REPLAYED"
  | "STREAM_TRUNCATED"
  | "DATA_AFTER_FINAL"
  | "SEALER_CLOSED"
  | "RECEIPT_INVALID";

/**
 * Base class of the protocol's refusals: every error `sealed/` throws for a request, frame or receipt
 * it refuses is one of these. Three lower-level errors are not:
 * `LowOrderKeyError` (crypto.ts; the opener turns it into DECRYPTION_FAILED, the sealers into
 * INVALID_ARGUMENT, the key broker into its own refusal); `ResponseTooLargeError` (bytes.ts' bounded
 * reader for HTTP bodies: it carries its own code, RESPONSE_TOO_LARGE, and each reader turns it into
 * its own refusal; it is not a SealedError, so no handler of protocol refusals takes it for one); and
 * a plain `Error` for a one-shot key used twice or a secretbox input under 32 bytes (crypto.ts; a
 * programming error in sealed/ itself, never a peer's input: request.ts asks each ephemeral key for
 * its shared key once, right after making it, and the frame sealer always passes the 32 zero bytes).
 */
export class SealedError extends Error {
  readonly code: SealedErrorCode;

  constructor(code: SealedErrorCode, message: string, options?: { cause?: unknown }) {
    super(message, options?.cause === undefined ? undefined : { cause: options.cause });
    this.code = code;
    this.name = new.target.name;
  }
}

/** A caller passed an invalid value (wrong key length, unserialisable body, ...). */
export class SealedInvalidArgumentError extends SealedError {
  constructor(message: string, options?: { cause?: unknown }) {
    super("INVALID_ARGUMENT", message, options);
  }
}

/** A request too large to seal: its ciphertext would be over the largest one the enclave takes. */
export class RequestTooLargeError extends SealedError {
  constructor(message: string) {
    super("REQUEST_TOO_LARGE", message);
  }
}

/** The request envelope's structure is wrong (length, sizes, kind byte). */
export class EnvelopeMalformedError extends SealedError {
  constructor(message: string) {
    super("ENVELOPE_MALFORMED", message);
  }
}

/** The envelope's version byte names a protocol version this code does not speak. */
export class UnsupportedVersionError extends SealedError {
  constructor(found: number) {
    super("UNSUPPORTED_VERSION", `envelope version: expected 1, found ${found}`);
  }
}

/** The envelope is addressed to another enclave key (key id mismatch). */
export class WrongEnclaveKeyError extends SealedError {
  constructor() {
    super("WRONG_ENCLAVE_KEY", "envelope key id: expected this enclave's sealing key id, found another");
  }
}

/** Authenticated decryption failed. The message is fixed on purpose. */
export class DecryptionFailedError extends SealedError {
  constructor() {
    super("DECRYPTION_FAILED", "decryption failed");
  }
}

/** The header the host delivered is not the header the client sealed (header swap or bit flip). */
export class HeaderMismatchError extends SealedError {
  constructor() {
    super("HEADER_MISMATCH", "envelope header: expected the header bound inside the sealed request, found another");
  }
}

/** The decrypted request is not a valid v1 request (field named, value withheld). */
export class RequestMalformedError extends SealedError {
  constructor(message: string, options?: { cause?: unknown }) {
    super("REQUEST_MALFORMED", message, options);
  }
}

/**
 * The request's timestamp lies outside the accepted clock window. The message names the window
 * only: the host reads it, and the skew found would give it the sealed timestamp (plaintext), a
 * stable mark of the client's clock.
 */
export class RequestStaleError extends SealedError {
  constructor(windowMs: number) {
    super("REQUEST_STALE", `request timestamp: expected within ±${windowMs} ms of enclave time`);
  }
}

/** The request id was already accepted inside the current window. */
export class RequestReplayedError extends SealedError {
  constructor() {
    super("REQUEST_REPLAYED", "request id: expected an id not seen in the replay window, found a repeated id");
  }
}

/** The replay cache is full of live ids; the request is refused rather than an id forgotten. */
export class ReplayCacheFullError extends SealedError {
  constructor(maxEntries: number) {
    super("REPLAY_CACHE_FULL", `replay cache: expected fewer than ${maxEntries} live request ids, found ${maxEntries}`);
  }
}

/** A response frame's framing or (authenticated) content is structurally wrong. */
export class FrameMalformedError extends SealedError {
  constructor(message: string, options?: { cause?: unknown }) {
    super("FRAME_MALFORMED", message, options);
  }
}

/** A response frame failed authentication: ciphertext, MAC or its clear seq was altered. */
export class FrameTamperedError extends SealedError {
  constructor(seq: number) {
    super("FRAME_TAMPERED", `response frame with clear seq ${seq}: authentication failed`);
  }
}

/** A frame is missing: a later frame arrived and the missing one never did. */
export class FrameDroppedError extends SealedError {
  constructor(expected: number, found: number) {
    super("FRAME_DROPPED", `response frame seq: expected ${expected}, found ${found}; frame ${expected} never arrived`);
  }
}

/** Frames arrived out of order: the missing frame arrived after a later one. */
export class FrameReorderedError extends SealedError {
  constructor(expected: number, found: number) {
    super(
      "FRAME_REORDERED",
      `response frame seq: expected ${expected}, found ${found}; frame ${expected} arrived late`,
    );
  }
}

/** A frame that was already delivered arrived again. */
export class FrameReplayedError extends SealedError {
  constructor(expected: number, found: number) {
    super("FRAME_REPLAYED", `response frame seq: expected ${expected}, found already-delivered ${found}`);
  }
}

/** The stream ended before its final (or error) frame. */
export class StreamTruncatedError extends SealedError {
  constructor(message: string) {
    super("STREAM_TRUNCATED", message);
  }
}

/** Bytes followed the final (or error) frame. */
export class DataAfterFinalError extends SealedError {
  constructor(bytes: number) {
    super("DATA_AFTER_FINAL", `response stream: expected end after the final frame, found ${bytes} more bytes`);
  }
}

/** The enclave tried to seal a frame after the final or error frame (a programming error). */
export class SealerClosedError extends SealedError {
  constructor() {
    super("SEALER_CLOSED", "response sealer: expected an open stream, found one already ended by its final frame");
  }
}
