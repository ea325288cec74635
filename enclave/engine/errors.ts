/**
 * Errors of the local inference engine. Each has a stable `code` the enclave server maps to a
 * response in one place (ENGINE_BUSY → 429/503). Messages name the field, the expected and the
 * found value, and never carry prompt text, generated text or key material. They are EnclaveErrors,
 * so the enclave's one error-to-HTTP mapping covers them.
 */
import type { Stats } from "node:fs";
import { describeFileKind, fileMessage } from "../../attestation/bounded-read.ts";
import { EnclaveError } from "../errors.ts";

export type EngineErrorCode =
  | "MODEL_DIGEST_MISMATCH"
  | "MODEL_NOT_FOUND"
  | "MODEL_SIZE_MISMATCH"
  | "MODEL_CHANGED_DURING_LOAD"
  | "MODEL_LOAD_FAILED"
  | "MODEL_NO_ROOM"
  | "CHAT_WRAPPER_UNAVAILABLE"
  | "CHAT_WRAPPER_TIMEOUT"
  | "CHAT_WRAPPER_FAILED"
  | "ENGINE_OPTIONS"
  | "ENGINE_BUSY"
  | "ENGINE_ABORTED"
  | "ENGINE_CLOSED"
  | "ENGINE_REQUEST"
  | "PROMPT_TOO_LONG"
  | "CHAT_TEMPLATE_REFUSED"
  | "GENERATION_FAILED";

/** HTTP status each code maps to where the enclave answers in plain HTTP (see enclave/errors.ts). */
const STATUS: Readonly<Record<EngineErrorCode, EnclaveError["status"]>> = {
  MODEL_DIGEST_MISMATCH: 500,
  MODEL_NOT_FOUND: 500,
  MODEL_SIZE_MISMATCH: 500,
  MODEL_CHANGED_DURING_LOAD: 500,
  MODEL_LOAD_FAILED: 500,
  MODEL_NO_ROOM: 500,
  CHAT_WRAPPER_UNAVAILABLE: 500,
  CHAT_WRAPPER_TIMEOUT: 500,
  CHAT_WRAPPER_FAILED: 500,
  ENGINE_OPTIONS: 500,
  ENGINE_BUSY: 503,
  ENGINE_ABORTED: 409,
  ENGINE_CLOSED: 503,
  ENGINE_REQUEST: 400,
  PROMPT_TOO_LONG: 413,
  CHAT_TEMPLATE_REFUSED: 422,
  GENERATION_FAILED: 500,
};

export class EngineError extends EnclaveError {
  declare readonly code: EngineErrorCode;

  constructor(code: EngineErrorCode, message: string, options?: { cause?: unknown }) {
    super(code, STATUS[code], message, options);
    this.name = new.target.name;
  }
}

/**
 * MODEL_NOT_FOUND for a --model path that is there but is not a regular file (a directory, a FIFO):
 * bad input (client/cli/program.ts isBadInput) by this class, not by a missing cause. `info`, the
 * path's stat, says what was found (describeFileKind). The path is written as fileMessage writes it
 * (quoted, its control characters escaped, when it would not read back as itself).
 */
export class ModelNotAFileError extends EngineError {
  readonly found: string;

  constructor(path: string, info: Stats) {
    const found = describeFileKind(info);
    super(
      "MODEL_NOT_FOUND",
      fileMessage(path, "--model file", `expected a regular file, found ${found}; give the model file's path`),
    );
    this.found = found;
  }
}

/**
 * MODEL_NOT_FOUND for a model file that cannot be opened or looked at (`error`, the operating
 * system's, is its cause: its errno is named); one that is not a regular file is ModelNotAFileError.
 * The path is always the command's --model (`cloister enclave`, `cloister model run`): the message
 * names the option (the path written by fileMessage) and what to do.
 */
export function modelNotFound(path: string, error: unknown): EngineError {
  const code = (error as { code?: unknown }).code;
  return new EngineError(
    "MODEL_NOT_FOUND",
    fileMessage(
      path,
      "--model file",
      code === "ENOENT"
        ? "not found; check the path, or put the model file there"
        : `cannot be read (${String(code)}); check that this user may read it`,
    ),
    { cause: error },
  );
}

/**
 * The model file's SHA-256 differs from the pinned digest; the model was not loaded. `path`, the
 * file the operator gave (EngineOptions.modelName), is written as fileMessage writes it.
 */
export class ModelDigestMismatchError extends EngineError {
  readonly expected: string;
  readonly found: string;

  constructor(path: string, expected: string, found: string) {
    super(
      "MODEL_DIGEST_MISMATCH",
      fileMessage(path, "model file", `sha256 expected ${expected}, found ${found}; refusing to load`),
    );
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
