/**
 * Errors of the local inference engine. Each has a stable `code` the enclave server maps to a
 * response in one place (ENGINE_BUSY → 429/503). Messages name the field, the expected and the
 * found value, and never carry prompt text, generated text or key material.
 */

export type EngineErrorCode =
  | "MODEL_DIGEST_MISMATCH"
  | "MODEL_NOT_FOUND"
  | "MODEL_CHANGED_DURING_LOAD"
  | "MODEL_LOAD_FAILED"
  | "ENGINE_OPTIONS"
  | "ENGINE_BUSY"
  | "ENGINE_ABORTED"
  | "ENGINE_CLOSED"
  | "ENGINE_REQUEST"
  | "PROMPT_TOO_LONG"
  | "GENERATION_FAILED";

export class EngineError extends Error {
  readonly code: EngineErrorCode;

  constructor(code: EngineErrorCode, message: string, options?: { cause?: unknown }) {
    super(message, options?.cause === undefined ? undefined : { cause: options.cause });
    this.name = new.target.name;
    this.code = code;
  }
}

/** The model file's SHA-256 differs from the pinned digest; the model was not loaded. */
export class ModelDigestMismatchError extends EngineError {
  readonly expected: string;
  readonly found: string;

  constructor(path: string, expected: string, found: string) {
    super("MODEL_DIGEST_MISMATCH", `model file ${path}: sha256 expected ${expected}, found ${found}; refusing to load`);
    this.expected = expected;
    this.found = found;
  }
}

/** All sequences are busy and the wait queue is full: the caller should answer 429/503. */
export class EngineBusyError extends EngineError {
  constructor(sequences: number, maxQueue: number) {
    super(
      "ENGINE_BUSY",
      `engine busy: all ${sequences} sequences in use and the wait queue is full (limit ${maxQueue})`,
    );
  }
}
